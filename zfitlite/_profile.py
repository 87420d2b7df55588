"""Profiling a loss: minimise over all parameters but one, which is held fixed."""

from __future__ import annotations

from typing import Any

import numpy as np

from .params import Params

__all__ = ["Profiler"]

_PROFILE_TOL = 1e-10


class Profiler:
    """Evaluates the profiled loss ``min over x_{-i} of F(x) with x_i = t``.

    Each profile point is a fit of the other parameters with Levenberg-Marquardt on the
    loss's own (compiled) value, gradient and Hessian, warm-started from the previous
    point of the same parameter.
    """

    def __init__(self, loss: Any, params: Params, x0: np.ndarray) -> None:
        self.loss = loss
        self.params = params
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.compiled = loss.compiled(len(params), params.typical_scale())
        self.errordef = loss.errordef
        self._last: dict[int, np.ndarray] = {}
        self.nfits = 0

    def minimum(self) -> tuple[float, np.ndarray]:
        """Polish the minimum itself to the profile tolerance: ``(F, x)``."""
        return self.profile(None, 0.0)

    def profile(self, i: int | None, t: float) -> tuple[float, np.ndarray]:
        """Return ``(F, x)`` at the profile minimum with parameter ``i`` fixed to ``t``
        (``i=None``: nothing fixed, the full minimum)."""
        from .loss import SimpleLoss
        from .solvers.levenberg_marquardt import LevenbergMarquardt

        p = self.params
        start = self._last.get(i, self.x0).copy()
        mask = np.ones(len(p), dtype=bool)
        if i is not None:
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
        res = LevenbergMarquardt(tol=_PROFILE_TOL).minimize(sub, sub_params)
        self.nfits += 1
        x = full(res.x)
        self._last[i] = x
        return res.fmin, x
