"""Global minimizers from scipy.optimize. They need bounds and take a seed.

A global minimizer's result is rarely at the minimum to ``tol`` precision; it is meant
to be chained: ``LevenbergMarquardt().minimize(DifferentialEvolution(seed=1).minimize(loss, params))``.
Its status is ``CONVERGED`` only when the EDM at its answer is below ``tol * errordef``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..status import Status
from .base import BaseMinimizer, ScipyProgress, SolverOutput

__all__ = ["DifferentialEvolution"]


def _require_finite_bounds(minimizer: BaseMinimizer, params: Any) -> list[tuple[float, float]]:
    bad = [
        n
        for n, lo, hi in zip(params.names, params.lower, params.upper)
        if not (np.isfinite(lo) and np.isfinite(hi))
    ]
    if bad:
        raise ValueError(
            f"{type(minimizer).__name__} is a global minimizer and needs finite lower and upper bounds on every "
            f"parameter; missing for {bad}. Give them, e.g. params={{'{bad[0]}': {{'value': 1.0, 'lower': 0.0, "
            "'upper': 2.0}}}}"
        )
    return list(zip(params.lower.tolist(), params.upper.tolist()))


class DifferentialEvolution(BaseMinimizer):
    """Differential evolution (:func:`scipy.optimize.differential_evolution`), seeded.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    seed : int, optional
        Seed of the random population (default 0): the same seed gives the same result.
    options : dict, optional
        ``popsize`` (15), ``strategy`` ("best1bin"), ``mutation`` (0.5, 1.0),
        ``recombination`` (0.7), ``maxgen`` (1000 generations), ``polish`` (False: chain
        a local minimizer instead), ``rtol``/``atol`` (scipy's population-spread stop, 0.01 and 0).
    """

    _DEFAULT_NAME = "DifferentialEvolution"
    _OPTIONS: ClassVar[dict[str, Any]] = {
        "popsize": 15,
        "strategy": "best1bin",
        "mutation": (0.5, 1.0),
        "recombination": 0.7,
        "maxgen": 1000,
        "polish": False,
        "rtol": 0.01,
        "atol": 0.0,
    }
    SUPPORTS_BOUNDS = True

    def __init__(
        self,
        tol: float | None = None,
        seed: int | None = 0,
        verbosity: int | None = None,
        options: dict | None = None,
        maxiter: int | str | None = None,
        criterion: Any = None,
        strategy: Any = None,
        name: str | None = None,
        callback: Any = None,
    ) -> None:
        super().__init__(
            tol=tol,
            verbosity=verbosity,
            criterion=criterion,
            strategy=strategy,
            maxiter=maxiter,
            name=name,
            options=options,
            callback=callback,
        )
        self.seed = seed

    def _extra_settings(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _maxiter_for(self, n: int) -> int:
        # a population method needs many evaluations: popsize * n per generation
        if self.maxiter == "auto":
            return int(self.options["popsize"]) * n * (int(self.options["maxgen"]) + 1) + 1000
        return int(self.maxiter)

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        bounds = _require_finite_bounds(self, params)
        progress = ScipyProgress(
            self, lambda r: {"convergence": float(r.get("convergence", np.nan))}
        )

        o = self.options
        res = scipy.optimize.differential_evolution(
            evaluator.value,
            bounds,
            x0=params.values,
            seed=self.seed,
            popsize=o["popsize"],
            strategy=o["strategy"],
            mutation=o["mutation"],
            recombination=o["recombination"],
            maxiter=o["maxgen"],
            polish=o["polish"],
            callback=progress,
            tol=o["rtol"],
            atol=o["atol"],
        )
        # "converged" is decided by the driver from our EDM at res.x
        return SolverOutput(
            x=np.asarray(res.x, dtype=np.float64),
            fmin=float(res.fun),
            status=Status.CONVERGED,
            niter=progress.niter,
            original=res,
            message=None,
        )
