"""Minimizers made of minimizers: a global search then a local polish, and multi-start.

Both are ordinary :class:`~zfitlite.solvers.base.BaseMinimizer` objects: they take a loss
(or a FitResult), return one :class:`~zfitlite.result.FitResult` whose ``minimizer`` is
themselves, and their results chain into any other minimizer. The parts run through
their own ``minimize``, so each keeps its own tolerance, budget and strategy; the
combined result adds up the evaluation counts and keeps the parts' results in ``info``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ..cache import GraphCachable
from ..evaluator import LossEvaluationError
from ..exceptions import FailMinimizeNaN
from ..params import Params
from ..result import FitResult
from ..status import Status
from .base import BaseMinimizer, resolve_inputs, supporting_bounds

__all__ = ["GlobalLocal", "MultiStart"]

_COUNTS = ("nfev", "ngrad", "nhess", "nres", "njac")


def _check_minimizer(obj: Any, what: str) -> BaseMinimizer:
    if isinstance(obj, type) and issubclass(obj, BaseMinimizer):
        raise TypeError(
            f"{what} must be a minimizer instance, e.g. {obj.__name__}(), not the class"
        )
    if not isinstance(obj, BaseMinimizer):
        raise TypeError(f"{what} must be a zfitlite minimizer, got {type(obj).__name__}")
    return obj


def _with_tol(minimizer: BaseMinimizer, tol: float) -> BaseMinimizer:
    """A copy of ``minimizer`` with another ``tol`` (and its own, empty, graph cache)."""
    if tol == minimizer.tol:
        return minimizer
    new = copy.copy(minimizer)
    GraphCachable.__init__(new)
    new.options = dict(minimizer.options)
    new.tol = tol
    return new


def _combine(
    minimizer: BaseMinimizer,
    final: FitResult,
    parts: list[FitResult],
    elapsed: float,
    extra_info: Mapping[str, Any],
    interrupted: bool = False,
) -> FitResult:
    """``final``'s answer as a result of ``minimizer``, with counts summed over ``parts``.

    ``interrupted``: a part was stopped by Ctrl-C; the result is INTERRUPTED (invalid)
    whatever ``final``'s status.
    """
    info = dict(final.info)
    for key in _COUNTS:
        info[key] = int(sum(int(p.info.get(key, 0)) for p in parts))
    info["niter"] = int(sum(max(int(p.info.get("niter", 0)), 0) for p in parts))
    info["time"] = elapsed
    info.update(extra_info)
    return FitResult(
        params=final.params_spec,
        fmin=final.fmin,
        edm=final.edm,
        status=Status.INTERRUPTED if interrupted else final.status,
        tol=final.tol,
        errordef=final.errordef,
        loss=final.loss,
        minimizer=minimizer,
        criterion=final.criterion,
        approx=final.approx,
        info=info,
        message=Status.INTERRUPTED.message if interrupted else final.message,
    )


class GlobalLocal(BaseMinimizer):
    """A global search followed by a local minimization, as one minimizer.

    ``GlobalLocal(DifferentialEvolution(seed=1), LevenbergMarquardt())`` runs the global
    minimizer on the loss, then the local one from its answer (values, bounds and
    anything the local minimizer can use from the global result), and returns the local
    result.

    Parameters
    ----------
    global_minimizer : BaseMinimizer
        Usually one of the global minimizers (they need bounds on every parameter).
    local_minimizer : BaseMinimizer, optional
        Default :class:`~zfitlite.minimize.LevenbergMarquardt`. It must honour bounds,
        because the global search needs them; a ``ValueError`` names the ones that do.
    tol : float, optional
        Goal of the local phase, ``EDM < tol * errordef``. Default: the local
        minimizer's own ``tol``; a different value runs a copy of the local minimizer
        with this ``tol``.
    verbosity : int, optional
        Lines about the two phases at 1 and above (the parts print by their own
        verbosity).
    name : str, optional
    progress : bool, optional
        Not used by the pair itself: its global and local minimizers show their own bars
        (set ``progress`` on them).

    Notes
    -----
    The result is the local minimizer's (status, ``valid``, ``edm``, approximations),
    with ``minimizer`` set to this object, the evaluation counts of both phases added
    up and ``info["global_result"]`` (the global phase's FitResult),
    ``info["global"]`` (the global search's summary: ``x``, ``fmin``, ``nfev``, ...)
    and ``info["local_info"]`` (the local phase's own ``info``). ``valid`` therefore
    means: the local minimizer converged (EDM below the goal) at the best minimum the
    global search led to, with no parameter on a bound; like any global method it does
    not prove that this minimum is the global one.

    Examples
    --------
    >>> import numpy as np, zfitlite
    >>> from zfitlite.minimize import DifferentialEvolution, GlobalLocal, LevenbergMarquardt
    >>> def rastrigin(x):
    ...     return 20 + np.sum(x**2 - 10 * np.cos(2 * np.pi * x))
    >>> rastrigin.errordef = 1.0
    >>> params = {"a": {"value": 2.6, "lower": -5.12, "upper": 5.12},
    ...           "b": {"value": -3.3, "lower": -5.12, "upper": 5.12}}
    >>> result = GlobalLocal(DifferentialEvolution(seed=1), LevenbergMarquardt(tol=1e-8)).minimize(
    ...     rastrigin, params)
    >>> result.valid, bool(abs(result.fmin) < 1e-12)
    (True, True)
    """

    _DEFAULT_NAME = "GlobalLocal"
    IS_GLOBAL: ClassVar[bool] = True
    SUPPORTS_BOUNDS = True
    _OWN_PROGRESS = True  # its global and local minimizers draw their own bars

    def __init__(
        self,
        global_minimizer: BaseMinimizer,
        local_minimizer: BaseMinimizer | None = None,
        tol: float | None = None,
        verbosity: int | None = None,
        name: str | None = None,
        progress: bool | None = None,
    ) -> None:
        global_minimizer = _check_minimizer(global_minimizer, "global_minimizer")
        if local_minimizer is None:
            from .levenberg_marquardt import LevenbergMarquardt

            local_minimizer = LevenbergMarquardt()
        local_minimizer = _check_minimizer(local_minimizer, "local_minimizer")
        if not local_minimizer.SUPPORTS_BOUNDS:
            raise ValueError(
                f"GlobalLocal: the local minimizer {type(local_minimizer).__name__} cannot honour the bounds "
                f"that the global search needs; use one that can ({', '.join(supporting_bounds())}), or chain "
                "by hand without bounds: local.minimize(loss, global_result.values, init=global_result)"
            )
        super().__init__(
            tol=local_minimizer.tol if tol is None else tol,
            verbosity=verbosity,
            name=name,
            progress=progress,
        )
        self.global_minimizer = global_minimizer
        self.local_minimizer = _with_tol(local_minimizer, self.tol)
        # resetting this minimizer's cache resets its parts'
        self.register_cacher([self.global_minimizer, self.local_minimizer])

    def _extra_settings(self) -> dict[str, Any]:
        return {
            "global_minimizer": self.global_minimizer.settings(),
            "local_minimizer": self.local_minimizer.settings(),
        }

    def minimize(self, loss: Any, params: Any = None, init: FitResult | None = None) -> FitResult:
        """Run the global minimizer, then the local one from its result.

        Parameters
        ----------
        loss, params, init
            As for :meth:`BaseMinimizer.minimize <zfitlite.solvers.base.BaseMinimizer.minimize>`;
            they go to the global minimizer.

        Returns
        -------
        FitResult
            The local phase's answer (see the class notes).
        """
        start = time.perf_counter()
        first = self.global_minimizer.minimize(loss, params, init)
        if first.status is Status.INTERRUPTED:  # Ctrl-C stops both phases
            info = {"global_result": first, "global": first.info.get("global"), "local_info": {}}
            return _combine(self, first, [first], time.perf_counter() - start, info)
        if self.verbosity >= 1:
            print(
                f"{self.name}: global phase ({self.global_minimizer.name}) fmin={first.fmin:.10g}, "
                f"{first.nfev} evaluations; local phase with {self.local_minimizer.name}"
            )
        # the global result's parameters carry the bounds (and step sizes) the search used
        second = self.local_minimizer.minimize(first.loss, first.params_spec, init=first)
        result = _combine(
            self,
            second,
            [first, second],
            time.perf_counter() - start,
            {
                "global_result": first,
                "global": first.info.get("global"),
                "local_info": dict(second.info),
            },
        )
        if self.verbosity >= 1:
            print(
                f"{self.name}: {result.status.name}, valid={result.valid}, fmin={result.fmin:.10g}, "
                f"edm={result.edm:.3g}"
            )
        return result


def _latin_hypercube(rng: np.random.Generator, n_points: int, dim: int) -> np.ndarray:
    """``n_points`` stratified points in ``[0, 1)^dim``: one per slice along every axis."""
    if n_points == 0:
        return np.empty((0, dim))
    strata = np.stack([rng.permutation(n_points) for _ in range(dim)], axis=1)
    return (strata + rng.random((n_points, dim))) / n_points


class MultiStart(BaseMinimizer):
    """A local minimizer run from several seeded start points; the best result wins.

    Parameters
    ----------
    local_minimizer : BaseMinimizer, optional
        Default :class:`~zfitlite.minimize.LevenbergMarquardt`.
    n_starts : int, default 10
        Number of fits. The first starts at the given start values (so ``n_starts=1``
        is the local minimizer alone); the others at points drawn by a Latin hypercube:
        uniformly inside the bounds for a parameter with both bounds, otherwise within
        ``spread`` step sizes of its start value (the step size, else ``|value|``,
        else 1), reflected into a one-sided bound.
    seed : int or None, default 0
        Seed of the start points: the same seed gives bit-for-bit the same result
        (for a deterministic local minimizer). None draws fresh ones on every call.
    tol : float, optional
        Goal of every local fit. Default: the local minimizer's own ``tol``.
    verbosity : int, optional
        At 2 and above one line per start.
    options : dict, optional
        ``spread`` (5.0): half-width, in step sizes, of the region sampled around the
        start for parameters without both bounds.
    name : str, optional
    progress : bool, optional
        A bar over the starts: None (default) when someone watches, True or False to force.

    Notes
    -----
    The best result is the converged one with the lowest ``fmin`` (an unconverged one
    only if no fit converged). It is returned with ``minimizer`` set to this object,
    the evaluation counts of all fits added up, and ``info["starts"]`` (per start, as
    plain data: ``x0``, ``x``, ``fmin``, ``valid``, ``converged``, ``status``, ``nfev``,
    ``error`` when the fit raised), ``info["best_start"]`` (index of the winner) and
    ``info["start_results"]`` (the FitResults). A start whose loss is non-finite or
    raises is recorded and skipped; only when every start fails is the first error
    raised. Bounds are honoured when the local minimizer honours them.

    Examples
    --------
    >>> import zfitlite
    >>> def double_well(x):
    ...     return (x[0] ** 2 - 1) ** 2 + 0.2 * x[0]
    >>> double_well.errordef = 1.0
    >>> local = zfitlite.minimize.LevenbergMarquardt(tol=1e-10)
    >>> result = zfitlite.minimize.MultiStart(local, n_starts=5, seed=1).minimize(double_well, [0.9])
    >>> round(float(result.x[0]), 4), len(result.info["starts"])
    (-1.0241, 5)
    """

    _DEFAULT_NAME = "MultiStart"
    _OPTIONS: ClassVar[dict[str, Any]] = {"spread": 5.0}
    SUPPORTS_BOUNDS = False  # per instance: as its local minimizer
    _OWN_PROGRESS = True  # a bar over the starts

    def __init__(
        self,
        local_minimizer: BaseMinimizer | None = None,
        n_starts: int = 10,
        seed: int | None = 0,
        tol: float | None = None,
        verbosity: int | None = None,
        options: Mapping[str, Any] | None = None,
        name: str | None = None,
        progress: bool | None = None,
    ) -> None:
        if local_minimizer is None:
            from .levenberg_marquardt import LevenbergMarquardt

            local_minimizer = LevenbergMarquardt()
        local_minimizer = _check_minimizer(local_minimizer, "local_minimizer")
        if (
            isinstance(n_starts, bool)
            or not isinstance(n_starts, (int, np.integer))
            or n_starts < 1
        ):
            raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}")
        super().__init__(
            tol=local_minimizer.tol if tol is None else tol,
            verbosity=verbosity,
            name=name,
            options=options,
            progress=progress,
        )
        spread = self.options["spread"]
        if not (isinstance(spread, (int, float)) and np.isfinite(spread) and spread > 0):
            raise ValueError(f"MultiStart option spread must be a number > 0, got {spread!r}")
        self.local_minimizer = _with_tol(local_minimizer, self.tol)
        self.register_cacher(self.local_minimizer)
        self.SUPPORTS_BOUNDS = local_minimizer.SUPPORTS_BOUNDS  # type: ignore[misc]
        self.n_starts = int(n_starts)
        self.seed = None if seed is None else int(seed)

    def _extra_settings(self) -> dict[str, Any]:
        return {
            "n_starts": self.n_starts,
            "seed": self.seed,
            "local_minimizer": self.local_minimizer.settings(),
        }

    def starts(self, params: Params) -> np.ndarray:
        """The start points for ``params``, shape ``(n_starts, n)``; row 0 is ``params.values``.

        Parameters
        ----------
        params : Params

        Returns
        -------
        numpy.ndarray
        """
        x0 = params.values
        lo, hi = params.lower, params.upper
        u = _latin_hypercube(np.random.default_rng(self.seed), self.n_starts - 1, len(params))
        boxed = np.isfinite(lo) & np.isfinite(hi)
        half = float(self.options["spread"]) * params.typical_scale()
        around = x0 + (2.0 * u - 1.0) * half
        # reflect into a one-sided bound, then clip (a reflection can overshoot the other side)
        around = np.where(around < lo, 2 * lo - around, around)
        around = np.where(around > hi, 2 * hi - around, around)
        drawn = np.where(boxed, lo + u * np.where(boxed, hi - lo, 0.0), np.clip(around, lo, hi))
        return np.vstack([x0[None, :], drawn])

    def minimize(self, loss: Any, params: Any = None, init: FitResult | None = None) -> FitResult:
        """Run the local minimizer from every start point and return the best result.

        Parameters
        ----------
        loss, params, init
            As for :meth:`BaseMinimizer.minimize <zfitlite.solvers.base.BaseMinimizer.minimize>`;
            ``init`` is used by the first fit only (start values, step sizes).

        Returns
        -------
        FitResult
            The best fit (see the class notes).
        """
        start_time = time.perf_counter()
        loss, p, init = resolve_inputs(loss, params, init)
        if p.has_bounds and not self.SUPPORTS_BOUNDS:
            raise ValueError(
                f"MultiStart: its local minimizer {type(self.local_minimizer).__name__} cannot honour parameter "
                f"bounds (lower/upper); use one of {', '.join(supporting_bounds())}, or remove the bounds"
            )
        points = self.starts(p)
        results: list[FitResult] = []
        records: list[dict[str, Any]] = []
        errors: list[Exception] = []
        interrupted = False
        from .._progress import progress_iter

        starts = progress_iter(points, self.progress, desc=self.name, unit="start")
        for i, x0 in enumerate(starts):
            try:
                r = self.local_minimizer.minimize(
                    loss, p.with_values(x0), init=init if i == 0 else None
                )
            except (FailMinimizeNaN, LossEvaluationError) as exc:
                errors.append(exc)
                records.append({"x0": x0.tolist(), "error": f"{type(exc).__name__}: {exc}"})
                if self.verbosity >= 2:
                    print(f"  {self.name}: start {i} failed: {exc}")
                continue
            results.append(r)
            interrupted = interrupted or r.status is Status.INTERRUPTED
            records.append(
                {
                    "x0": x0.tolist(),
                    "x": r.x.tolist(),
                    "fmin": r.fmin,
                    "valid": r.valid,
                    "converged": r.converged,
                    "status": r.status.name,
                    "nfev": r.nfev,
                }
            )
            if self.verbosity >= 2:
                print(
                    f"  {self.name}: start {i} -> fmin={r.fmin:.10g} {r.status.name} valid={r.valid}"
                )
            if interrupted:  # Ctrl-C stops the remaining starts too
                break
        if not results:
            raise errors[0]
        best = min(
            range(len(results)),
            key=lambda k: (
                not (results[k].converged or interrupted),  # interrupted: the lowest fmin
                results[k].fmin if np.isfinite(results[k].fmin) else np.inf,
            ),
        )
        best_start = [k for k, rec in enumerate(records) if "error" not in rec][best]
        result = _combine(
            self,
            results[best],
            results,
            time.perf_counter() - start_time,
            {"starts": records, "best_start": best_start, "start_results": results},
            interrupted=interrupted,
        )
        if self.verbosity >= 1:
            print(
                f"{self.name}: best of {len(points)} starts is #{best_start}: {result.status.name}, "
                f"valid={result.valid}, fmin={result.fmin:.10g}"
            )
        return result
