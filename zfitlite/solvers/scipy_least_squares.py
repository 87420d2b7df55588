"""ScipyLeastSquares: :func:`scipy.optimize.least_squares` on a LeastSquares loss's residuals.

The residuals and their Jacobian come from the evaluator (the backend: JAX ``jacfwd``,
the user's Jacobian, or numerical differences) and are counted. Convergence keeps
zfitlite's meaning, measured as the Levenberg-Marquardt solver measures it on residuals
(:mod:`~zfitlite.solvers.lm_least_squares`): ``EDM = ||Q^T r||^2`` (the Gauss-Newton EDM,
over the parameters not held by a bound) below ``tol * errordef * min(1, s^2)`` with
``s^2 = F / (m - n)``, so that lowering ``tol`` buys digits even where the residual sum
is tiny. When scipy stops before that, ``ftol``/``xtol``/``gtol`` are tightened (never
below machine epsilon, which scipy refuses) and it runs again from where it stopped.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.optimize
import scipy.sparse

from .._composite import observed_points
from ..criterion import EPS, Measure, free_mask, lsq_goal
from ..exceptions import FailMinimizeNaN
from ..strategy import nonfinite_at_start_message
from ._scipy_common import ScipyRoundsMinimizer, scipy_bounds
from .base import supporting_bounds
from .scipy_methods import StartInfo

__all__ = ["ScipyLeastSquares", "lsq_edm"]

_METHODS = ("trf", "dogbox", "lm")
_HAS_CALLBACK = "callback" in inspect.signature(scipy.optimize.least_squares).parameters


def lsq_edm(J: np.ndarray, r: np.ndarray, free: np.ndarray) -> float:
    """Gauss-Newton EDM ``r^T J (J^T J)^-1 J^T r = ||Q^T r||^2`` over the free columns of ``J``."""
    if not free.any():
        return 0.0
    Q, _ = np.linalg.qr(J[:, free], mode="reduced")
    qr = Q.T @ r
    return float(qr @ qr)


class ScipyLeastSquares(ScipyRoundsMinimizer):
    """:func:`scipy.optimize.least_squares` (trust-region reflective, dogbox or MINPACK's LM).

    Parameters
    ----------
    method : {"trf", "dogbox", "lm"}, default "trf"
        ``"trf"`` and ``"dogbox"`` honour bounds; ``"lm"`` (MINPACK) does not, and a
        bounded fit with it raises ``ValueError`` naming the alternatives.
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``ftol``, ``xtol``, ``gtol`` (1e-8 each, scipy's; tightened between rounds down
        to machine epsilon), ``x_scale`` (default: the parameters' step sizes or
        ``init``'s errors when known, else ``"jac"``), ``tr_solver`` (None: scipy's
        choice), ``max_rounds`` (5).

    Notes
    -----
    Only :class:`~zfitlite.loss.LeastSquares` losses: the method works on residuals, and a
    scalar loss has none (its square root is not a residual vector whose Jacobian gives
    the Gauss-Newton Hessian, and it fails for losses that can be negative, such as a
    negative log-likelihood), so a scalar loss raises ``TypeError`` pointing to the
    scalar minimizers. Robust losses are set on the loss, not here:
    ``LeastSquares(..., loss="soft_l1", f_scale=...)`` (see :mod:`zfitlite.robust`).
    """

    _DEFAULT_NAME = "ScipyLeastSquares"
    _OPTIONS: ClassVar[dict[str, Any]] = {
        "ftol": 1e-8,
        "xtol": 1e-8,
        "gtol": 1e-8,
        "x_scale": None,
        "tr_solver": None,
        "max_rounds": 5,
    }
    _TIGHTEN: ClassVar[Mapping[str, str]] = {"ftol": "frel", "xtol": "x", "gtol": "x"}
    _TOL_FLOOR: ClassVar[float] = EPS
    SUPPORTS_BOUNDS = True  # for "trf" and "dogbox"; "lm" refuses them in _minimize

    def __init__(
        self,
        method: str = "trf",
        tol: float | None = None,
        verbosity: int | None = None,
        criterion: Any = None,
        strategy: Any = None,
        maxiter: int | str | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        callback: Any = None,
        progress: bool | None = None,
    ) -> None:
        if method not in _METHODS:
            raise ValueError(
                f"ScipyLeastSquares: method must be one of {list(_METHODS)}, got {method!r}"
            )
        super().__init__(
            tol=tol,
            verbosity=verbosity,
            criterion=criterion,
            strategy=strategy,
            maxiter=maxiter,
            name=name,
            options=options,
            callback=callback,
            progress=progress,
        )
        self.method = method
        for key in ("ftol", "xtol", "gtol"):
            value = self.options[key]
            if not (isinstance(value, (int, float, np.floating)) and value >= EPS):
                raise ValueError(
                    f"ScipyLeastSquares: option {key} must be a number >= machine epsilon "
                    f"({EPS:.2e}), got {value!r}"
                )

    def _extra_settings(self) -> dict[str, Any]:
        return {"method": self.method}

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> Any:
        if not evaluator.has_residuals:
            raise TypeError(
                "ScipyLeastSquares works on residuals and needs a LeastSquares loss, e.g. "
                "zfitlite.LeastSquares(residuals); for a scalar loss use LevenbergMarquardt, "
                "ScipyTrustConstr, ScipyTrustNCG or ScipyBFGS"
            )
        if self.method == "lm" and params.has_bounds:
            others = [m for m in supporting_bounds() if m != "ScipyLeastSquares"]
            raise ValueError(
                "ScipyLeastSquares(method='lm') (MINPACK) cannot honour parameter bounds "
                "(lower/upper); use ScipyLeastSquares(method='trf') or method='dogbox', or one "
                f"of {', '.join(others)}, or remove the bounds"
            )
        return super()._minimize(evaluator, criterion, params, init)

    def _first_options(
        self, evaluator: Any, params: Any, x: np.ndarray, info: StartInfo
    ) -> dict[str, Any]:
        opts = {k: v for k, v in self.options.items() if k != "max_rounds"}
        if opts["x_scale"] is None:
            opts["x_scale"] = info.sigma.copy() if info.has_sigma else "jac"
        elif not isinstance(opts["x_scale"], str):
            opts["x_scale"] = np.asarray(opts["x_scale"], dtype=np.float64)
        opts["max_nfev"] = evaluator.maxiter
        return opts

    def _run(
        self, evaluator: Any, params: Any, x: np.ndarray, opts: dict[str, Any], progress: Any
    ) -> Any:
        kwargs: dict[str, Any] = dict(opts)
        bounds = scipy_bounds(params)
        if bounds is not None:
            kwargs["bounds"] = bounds  # "trf" nudges a start on a bound inside by itself
        if progress is not None and _HAS_CALLBACK and self.method != "lm":

            def report(intermediate_result: Any) -> None:
                progress(
                    scipy.optimize.OptimizeResult(
                        x=intermediate_result.x, fun=2.0 * float(intermediate_result.cost)
                    )
                )

            kwargs["callback"] = report
        try:
            return scipy.optimize.least_squares(
                evaluator.residuals, x, jac=evaluator.jacobian, method=self.method, **kwargs
            )
        except ValueError as exc:
            if "not finite in the initial point" not in str(exc):
                raise
            # scipy's own check of the start: hand it to the strategy like every solver does
            # (later non-finite residuals are rejected steps inside scipy)
            raise FailMinimizeNaN(nonfinite_at_start_message("residuals", x)) from None

    def _measure(self, evaluator: Any, x: np.ndarray, params: Any, criterion: Any) -> Measure:
        r = evaluator.residuals(x)
        J = evaluator.jacobian(x)
        if scipy.sparse.issparse(J):
            # scipy's steps use the sparse Jacobian (lsmr); this measure is dense (n x n):
            # LevenbergMarquardt's LSMR path is the one for large sparse problems
            J = J.toarray()
        f = float(r @ r)
        g = 2.0 * (J.T @ r)
        H = 2.0 * (J.T @ J)
        if params.has_bounds:
            free = free_mask(x, g, params.lower, params.upper)
        else:
            free = np.ones(x.size, dtype=bool)
        nobs = observed_points(evaluator.loss, x)  # masked points and constraint rows
        m = r.size if nobs is None else int(nobs)
        goal = float(lsq_goal(np, self.tol * evaluator.errordef, f, m, x.size))
        return Measure(x=x, f=f, g=g, H=H, edm=lsq_edm(J, r, free), goal=goal, free=free)

    def _stalled_but_converged(self, m: Measure, criterion: Any) -> bool:
        # as LevenbergMarquardt: when floating-point precision is exhausted (no round can
        # lower the loss), the plain rule EDM < tol * errordef decides
        return bool(m.edm < criterion.goal)

    def _onto_active_bounds(
        self, evaluator: Any, m: Measure, params: Any, criterion: Any
    ) -> Measure | None:
        return None  # trf/dogbox land on bounds themselves
