"""Profiling a loss: minimise over all parameters but one, which is held fixed."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from ._progress import progress_iter
from .params import Params

__all__ = ["PROFILE_TOL", "Profiler", "default_solver", "set_default_solver"]

#: The tolerance of the profile fits.
PROFILE_TOL = 1e-10
_make_default_solver: Callable[[float], Any] | None = None


def set_default_solver(make: Callable[[float], Any]) -> None:
    """Register how to build the profile's default solver (done by :mod:`zfitlite.solvers`,
    which sits above this module: the profile never imports a solver)."""
    global _make_default_solver
    _make_default_solver = make


def default_solver(tol: float = PROFILE_TOL) -> Any:
    """A fresh default solver (Levenberg-Marquardt) at ``tol`` (default :data:`PROFILE_TOL`)."""
    if _make_default_solver is None:  # pragma: no cover - zfitlite/__init__ imports solvers
        raise RuntimeError("no profile solver registered; import zfitlite.solvers first")
    return _make_default_solver(tol)


class Profiler:
    """Evaluates the profiled loss ``min over x_{-i} of F(x) with x_i = t``.

    Each profile point is a fit of the other parameters with ``solver`` (default:
    :func:`default_solver`, Levenberg-Marquardt at tol 1e-10) on the loss's own
    (compiled) value, gradient and Hessian, warm-started from the previous point of the
    same parameter.
    """

    def __init__(self, loss: Any, params: Params, x0: np.ndarray, solver: Any = None) -> None:
        self.solver = default_solver() if solver is None else solver
        self.loss = loss
        self.params = params
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.compiled = loss.compiled(len(params), params.difference_scales())
        self.errordef = loss.errordef
        self._last: dict[Hashable, np.ndarray] = {}
        self.nfits = 0

    def minimum(self) -> tuple[float, np.ndarray]:
        """Polish the minimum itself to the profile tolerance: ``(F, x)``."""
        return self.profile(None, 0.0)

    def profile(self, i: int | None, t: float) -> tuple[float, np.ndarray]:
        """Return ``(F, x)`` at the profile minimum with parameter ``i`` fixed to ``t``
        (``i=None``: nothing fixed, the full minimum)."""
        if i is None:
            return self.profile_fixed((), (), key=None)
        return self.profile_fixed((i,), (t,), key=i)

    def profile_fixed(
        self, indices: Sequence[int], values: Sequence[Any], key: Hashable = "auto"
    ) -> tuple[float, np.ndarray]:
        """Return ``(F, x)`` at the minimum over the other parameters with those at
        ``indices`` fixed to ``values``.

        Parameters
        ----------
        indices : sequence of int
            Parameters held fixed (empty: the full minimum).
        values : sequence of float
            Their values.
        key : hashable, optional
            Warm-start slot: the fit starts from the last point found under the same key
            (default: the tuple of indices).
        """
        from .loss import SimpleLoss

        if key == "auto":
            key = tuple(int(i) for i in indices)
        p = self.params
        start = self._last.get(key, self.x0).copy()
        mask = np.ones(len(p), dtype=bool)
        for i, t in zip(indices, values):
            start[i] = t
            mask[i] = False
        if not mask.any():
            return float(self.compiled.value(start)), start
        c = self.compiled

        def full(y: np.ndarray) -> np.ndarray:
            x = start.copy()
            x[mask] = y
            return x

        sub = SimpleLoss(
            lambda y: c.value(full(y)),
            errordef=self.errordef,
            gradient=lambda y: c.value_and_gradient(full(y))[1][mask],
            hessian=lambda y: c.hessian(full(y))[np.ix_(mask, mask)],
            backend="numpy",
        )
        y0 = np.clip(start[mask], p.lower[mask], p.upper[mask])
        sub_params = Params(
            tuple(np.array(p.names)[mask]), y0, p.lower[mask], p.upper[mask], p.stepsize[mask]
        )
        res = self.solver.minimize(sub, sub_params)
        self.nfits += 1
        x = full(res.x)
        self._last[key] = x
        return res.fmin, x

    def scan(
        self, i: int, values: Sequence[float], progress: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Profile parameter ``i`` at each of ``values``.

        The points are visited outwards from the minimum on each side, so that every
        fit starts from its neighbour's solution.

        Parameters
        ----------
        i : int
            The parameter.
        values : sequence of float
            Where to fix it.
        progress : bool, optional
            A progress bar (see :mod:`zfitlite._progress`).

        Returns
        -------
        f : numpy.ndarray
            The profiled loss at each value (in the order given).
        x : numpy.ndarray
            ``(len(values), n)`` the full parameter vectors there.
        """
        t = np.asarray(values, dtype=np.float64)
        center = self.x0[i]
        above = [int(k) for k in np.argsort(t) if t[k] >= center]
        below = [int(k) for k in np.argsort(-t) if t[k] < center]
        f = np.empty(t.size)
        xs = np.empty((t.size, len(self.params)))
        name = self.params.names[i]
        order = progress_iter(
            above + below, progress, desc=f"profile {name}", unit="point", total=t.size
        )
        for n, k in enumerate(order):
            if n == len(above):  # back to the minimum before going down
                self._last.pop(("scan", i), None)
            f[k], xs[k] = self.profile_fixed((i,), (t[k],), key=("scan", i))
        return f, xs

    def scan2d(
        self,
        i: int,
        j: int,
        xvalues: Sequence[float],
        yvalues: Sequence[float],
        progress: bool | None = None,
    ) -> np.ndarray:
        """Profile the pair ``(i, j)`` on a grid: ``F[k, c]`` at ``(xvalues[c], yvalues[k])``.

        The grid is walked row by row, alternating direction, so each fit starts from a
        neighbouring solution.

        Returns
        -------
        numpy.ndarray
            ``(len(yvalues), len(xvalues))`` profiled loss values (``contour``'s layout).
        """
        xv = np.asarray(xvalues, dtype=np.float64)
        yv = np.asarray(yvalues, dtype=np.float64)
        cells = [
            (k, c)
            for k in range(yv.size)
            for c in (range(xv.size) if k % 2 == 0 else range(xv.size - 1, -1, -1))
        ]
        out = np.empty((yv.size, xv.size))
        names = self.params.names
        key = ("grid", i, j)
        self._last.pop(key, None)
        for k, c in progress_iter(
            cells, progress, desc=f"profile {names[i]}, {names[j]}", unit="point"
        ):
            out[k, c] = self.profile_fixed((i, j), (xv[c], yv[k]), key=key)[0]
        return out
