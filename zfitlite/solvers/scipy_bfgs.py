"""ScipyBFGS: scipy's BFGS quasi-Newton method behind zfitlite's contract.

scipy owns its loop; we map its answer onto our statuses. zfit's rule stands: converged
means *our* EDM (exact gradient and Hessian from the backend) is below ``tol * errordef``.
When scipy stops before that, it runs again from where it stopped with a ten times
smaller ``gtol`` and its own inverse-Hessian estimate, at most ``max_rounds`` times.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..criterion import edm
from ..status import Status
from .base import BaseMinimizer, ScipyProgress, SolverOutput

__all__ = ["ScipyBFGS"]


def _usable_inv_hessian(init: Any, names: tuple[str, ...]) -> np.ndarray | None:
    """An inverse-Hessian estimate from a previous result with the same parameters, if positive definite."""
    if init is None or tuple(init.names) != tuple(names):
        return None
    inv = init.approx.inv_hessian
    if inv is None and init.approx.hessian is not None:
        try:
            inv = np.linalg.inv(init.approx.hessian)
        except np.linalg.LinAlgError:
            return None
    if inv is None:
        return None
    inv = 0.5 * (np.asarray(inv) + np.asarray(inv).T)
    if not np.all(np.isfinite(inv)) or np.linalg.eigvalsh(inv).min() <= 0:
        return None
    return inv


class ScipyBFGS(BaseMinimizer):
    """BFGS from :func:`scipy.optimize.minimize`, with gradients from the backend.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``gtol`` (first-round gradient tolerance, default 1e-5), ``max_rounds`` (5),
        ``c1``, ``c2`` (line-search constants, scipy's defaults).

    Notes
    -----
    BFGS cannot honour bounds; use :class:`~zfitlite.minimize.LevenbergMarquardt` for a
    bounded problem. A result passed as ``init`` contributes its inverse-Hessian
    estimate as BFGS's starting matrix (``hess_inv0``).
    """

    _DEFAULT_NAME = "ScipyBFGS"
    _OPTIONS: ClassVar[dict[str, Any]] = {"gtol": 1e-5, "max_rounds": 5, "c1": 1e-4, "c2": 0.9}
    SUPPORTS_BOUNDS = False

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        goal = criterion.goal
        x = params.values.copy()
        hess_inv = _usable_inv_hessian(init, params.names)
        gtol = float(self.options["gtol"])
        res = None
        status = Status.NOT_CONVERGED
        f = g = H = None
        e = float("inf")
        progress = ScipyProgress(self, lambda _: {"gtol": gtol})

        for round_ in range(int(self.options["max_rounds"])):
            opts = {
                "gtol": gtol,
                "maxiter": evaluator.maxiter,
                "c1": self.options["c1"],
                "c2": self.options["c2"],
            }
            if hess_inv is not None:
                opts["hess_inv0"] = hess_inv
            res = scipy.optimize.minimize(
                evaluator.value_gradient,
                x,
                jac=True,
                method="BFGS",
                options=opts,
                callback=progress,
            )
            x = np.asarray(res.x, dtype=np.float64)
            f, g = evaluator.value_gradient(x)
            H = evaluator.hessian(x)
            e = edm(g, H)
            if e < goal:
                status = Status.CONVERGED
                break
            if self.verbosity >= 2:
                print(
                    f"  {self.name}: round {round_ + 1} stopped at EDM {e:.3g} > goal {goal:.3g} "
                    f"({res.message}); tightening gtol to {gtol / 10:.1e}"
                )
            gtol /= 10.0
            inv = np.asarray(res.hess_inv)
            hess_inv = (
                inv
                if np.all(np.isfinite(inv)) and np.linalg.eigvalsh(0.5 * (inv + inv.T)).min() > 0
                else None
            )
        return SolverOutput(
            x=x,
            fmin=float(f),
            status=status,
            niter=progress.niter,
            edm=e,
            gradient=g,
            hessian=H,
            inv_hessian=None if res is None else np.asarray(res.hess_inv),
            original=res,
            extras={"rounds": round_ + 1},
        )
