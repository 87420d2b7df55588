"""ScipyMinimize: :func:`scipy.optimize.minimize` with leaspy's defaults and reporting.

This is the generic wrapper of leaspy's ``ScipyMinimize`` personalisation algorithm: one
call of scipy with scipy's own options (BFGS with a gradient, Powell without, unless a
method is named), its convergence issues reported through a logger. Unlike the
method-specific minimizers (:mod:`~zfitlite.solvers.scipy_local`) it does not run scipy
again until *our* EDM is small: it takes scipy's answer. The FitResult still tells the
truth: it is converged (and valid) when the EDM at scipy's answer, from the backend's
gradient and Hessian, is below ``tol * errordef`` (zfit's rule), whatever scipy said; a
run scipy did not call a success is reported through the logger all the same.
"""

from __future__ import annotations

import contextvars
import pprint
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..matrix_free import dense_ok, measure_auto
from ..result import FitResult
from ..status import Status
from ._scipy_common import (
    METHODS,
    bounded_methods,
    dense_or_none,
    niter_of,
    onto_bounds,
    run_minimize,
    scipy_status,
    start_info,
)
from .base import BaseMinimizer, ScipyProgress, SolverOutput

__all__ = ["ScipyMinimize"]

_PROBLEM_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "zfitlite_problem_id", default=None
)
#: ``patient_id`` is leaspy's name of ``problem_id``: leaspy's format strings work unchanged.
_FORMAT_FIELDS = (
    "problem_id",
    "patient_id",
    "optimization_result_pformat",
    "optimization_result_obj",
)


class _Anything:
    """Stands in for any field when a format string is checked (attributes, items, specs)."""

    def __getattr__(self, name: str) -> _Anything:
        return self

    def __getitem__(self, key: Any) -> _Anything:
        return self

    def __format__(self, spec: str) -> str:
        return ""


class ScipyMinimize(BaseMinimizer):
    """:func:`scipy.optimize.minimize` with scipy's options, as leaspy's ``ScipyMinimize``.

    Parameters
    ----------
    method : str, optional
        Any method of :func:`scipy.optimize.minimize` (case-insensitive). None: BFGS when
        the loss has an exact gradient (JAX autodiff, or a ``gradient`` given to
        :class:`~zfitlite.loss.SimpleLoss`), else Powell.
    options : dict, optional
        scipy's options for the method, merged over the defaults of that method:
        :attr:`DEFAULT_SCIPY_MINIMIZE_PARAMS_WITH_JACOBIAN` for BFGS
        (``{"gtol": 1e-2, "maxiter": 200}``),
        :attr:`DEFAULT_SCIPY_MINIMIZE_PARAMS_WITHOUT_JACOBIAN` for Powell
        (``{"ftol": 1e-4, "xtol": 1e-4, "maxiter": 200}``), none (scipy's own) for any
        other method. They are passed to scipy unchanged; scipy warns about unknown ones.
    logger : callable, optional
        ``logger(text)`` receives the report of a run that scipy did not call a success.
        Default: ``print`` unless the method is BFGS (whose "precision loss" stops are
        frequent and harmless at ``gtol=1e-2``), in which case nothing is reported.
    format_convergence_issues : str, optional
        Format of that report, with the fields ``problem_id`` (the loss's ``name``, the
        ``problem_id`` given to :meth:`minimize`, or ``"problem"``; also as
        ``patient_id``, leaspy's name, so leaspy's format strings work unchanged),
        ``optimization_result_pformat`` (scipy's result, pretty-printed) and
        ``optimization_result_obj`` (scipy's result itself). Default
        :attr:`DEFAULT_FORMAT_CONVERGENCE_ISSUES`.
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`; ``maxiter`` is zfitlite's
        budget of loss evaluations, scipy's own limit is the ``maxiter`` option.

    Notes
    -----
    Status: ``CONVERGED`` when scipy reported success and the EDM is below
    ``tol * errordef``; ``NOT_CONVERGED`` when scipy reported success but the EDM is
    larger (scipy's tolerances were too loose for ``tol``: chain the result into a
    method-specific minimizer such as :class:`~zfitlite.minimize.ScipyBFGS`); otherwise
    scipy's failure mapped onto ``MAXITER``, ``NO_STEP``, ``NONFINITE`` or
    ``BACKEND_FAILURE``. ``info`` holds scipy's result (``original``), ``method``,
    ``scipy_success``, ``scipy_message`` and ``problem_id``.

    Gradients and Hessians are the backend's (exact or numerical) and are passed to the
    methods that use them; the Hessian only where scipy requires one, or where it is
    exact. Bounds are passed to the methods that honour them (Nelder-Mead, Powell,
    L-BFGS-B, TNC, SLSQP, trust-constr, COBYLA, COBYQA); other methods refuse a bounded
    problem with ``ValueError``. ``init`` seeds the methods that can use it
    (``hess_inv0`` for BFGS, ``direc`` for Powell, ``initial_simplex`` for Nelder-Mead,
    ...) unless the option is given.

    Examples
    --------
    >>> import zfitlite
    >>> def f(x):
    ...     return (x[0] - 1.0) ** 2 + (x[1] + 2.0) ** 2
    >>> loss = zfitlite.SimpleLoss(f, errordef=1.0, backend="numpy", name="subject-17")
    >>> minimizer = zfitlite.minimize.ScipyMinimize(options={"maxiter": 1}, logger=print)
    >>> result = minimizer.minimize(loss, [0.0, 0.0])  # doctest: +ELLIPSIS
    <!> subject-17:
    ...
    >>> result.valid
    False
    """

    DEFAULT_SCIPY_MINIMIZE_PARAMS_WITH_JACOBIAN: ClassVar[dict[str, Any]] = {
        "method": "BFGS",
        "options": {"gtol": 1e-2, "maxiter": 200},
    }
    DEFAULT_SCIPY_MINIMIZE_PARAMS_WITHOUT_JACOBIAN: ClassVar[dict[str, Any]] = {
        "method": "Powell",
        "options": {"ftol": 1e-4, "xtol": 1e-4, "maxiter": 200},
    }
    DEFAULT_FORMAT_CONVERGENCE_ISSUES: ClassVar[str] = (
        "<!> {problem_id}:\n{optimization_result_pformat}"
    )
    _DEFAULT_NAME = "ScipyMinimize"
    # not listed among the minimizers that honour bounds (its default BFGS does not);
    # each instance lets bounds through to _minimize, which refuses them per method
    SUPPORTS_BOUNDS = False

    def __init__(
        self,
        method: str | None = None,
        options: Mapping[str, Any] | None = None,
        logger: Callable[[str], Any] | None = None,
        format_convergence_issues: str | None = None,
        tol: float | None = None,
        verbosity: int | None = None,
        criterion: Any = None,
        strategy: Any = None,
        maxiter: int | str | None = None,
        name: str | None = None,
        callback: Any = None,
        progress: bool | None = None,
    ) -> None:
        super().__init__(
            tol=tol,
            verbosity=verbosity,
            criterion=criterion,
            strategy=strategy,
            maxiter=maxiter,
            name=name,
            options=None,
            callback=callback,
            progress=progress,
        )
        self.SUPPORTS_BOUNDS = True  # decided per method in _minimize  # pyright: ignore[reportAttributeAccessIssue]
        if method is not None:
            if not isinstance(method, str) or method.lower() not in METHODS:
                known = ", ".join(m.name for m in METHODS.values())
                raise ValueError(
                    f"ScipyMinimize: unknown method {method!r}; scipy.optimize.minimize has {known}"
                )
        self.method = method
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        self.custom_options: dict[str, Any] = dict(options or {})
        self.options = dict(self.custom_options)
        if logger is not None and not callable(logger):
            raise TypeError(
                f"logger must be a callable taking a string (e.g. print), got {logger!r}"
            )
        self.logger = logger
        fmt = (
            self.DEFAULT_FORMAT_CONVERGENCE_ISSUES
            if format_convergence_issues is None
            else format_convergence_issues
        )
        if not isinstance(fmt, str):
            raise TypeError(f"format_convergence_issues must be a str, got {fmt!r}")
        try:
            fmt.format(**dict.fromkeys(_FORMAT_FIELDS, _Anything()))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"format_convergence_issues {fmt!r} is not a valid format: {exc!r}; the fields "
                f"are {', '.join(_FORMAT_FIELDS)}"
            ) from None
        self.format_convergence_issues = fmt

    def _extra_settings(self) -> dict[str, Any]:
        return {"method": self.method or "auto"}

    # -- public helpers ------------------------------------------------------------------
    def scipy_minimize_params(self, has_jacobian: bool) -> dict[str, Any]:
        """The method and options scipy will get: ``{"method": ..., "options": {...}}``.

        Parameters
        ----------
        has_jacobian : bool
            Whether the loss has an exact gradient (decides the method when none was named).
        """
        with_jac = self.DEFAULT_SCIPY_MINIMIZE_PARAMS_WITH_JACOBIAN
        without = self.DEFAULT_SCIPY_MINIMIZE_PARAMS_WITHOUT_JACOBIAN
        method = self.method or (with_jac if has_jacobian else without)["method"]
        defaults: Mapping[str, Any] = {}
        for d in (with_jac, without) if has_jacobian else (without, with_jac):
            if d["method"].lower() == method.lower():
                defaults = d["options"]
                break
        return {"method": method, "options": {**defaults, **self.custom_options}}

    def default_logger(self, method: str) -> Callable[[str], Any] | None:
        """The logger used for ``method``: the one given, else ``print`` unless BFGS."""
        if self.logger is not None:
            return self.logger
        return None if method.upper() == "BFGS" else print

    def minimize(
        self,
        loss: Any,
        params: Any = None,
        init: FitResult | None = None,
        *,
        problem_id: str | None = None,
    ) -> FitResult:
        """Minimize ``loss``; see :meth:`BaseMinimizer.minimize`.

        Parameters
        ----------
        problem_id : str, optional
            Names the problem in convergence reports (default: the loss's ``name``, else
            ``"problem"``); :func:`~zfitlite.minimize_batch` passes each member's id.
        """
        token = _PROBLEM_ID.set(None if problem_id is None else str(problem_id))
        try:
            return super().minimize(loss, params, init)
        finally:
            _PROBLEM_ID.reset(token)

    # -- solver --------------------------------------------------------------------------
    def _problem_id(self, loss: Any) -> str:
        given = _PROBLEM_ID.get()
        if given is not None:
            return given
        name = getattr(loss, "name", None)
        return str(name) if name and name != "<lambda>" else "problem"

    def _report_issue(self, method: str, problem_id: str, res: Any, text: str) -> None:
        logger = self.default_logger(method)
        if logger is None:
            return
        logger(
            self.format_convergence_issues.format(
                problem_id=problem_id,
                patient_id=problem_id,
                optimization_result_pformat=text,
                optimization_result_obj=res,
            )
        )

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        has_jac = evaluator.has_exact_gradient
        spec = self.scipy_minimize_params(has_jac)
        method_name = spec["method"]
        method = METHODS[method_name.lower()]
        opts = dict(spec["options"])
        if params.has_bounds and not method.bounds:
            raise ValueError(
                f"ScipyMinimize(method={method_name!r}) cannot honour parameter bounds "
                f"(lower/upper); use a method that can ({', '.join(bounded_methods())}), or "
                "a minimizer such as LevenbergMarquardt, ScipyLBFGSB or ScipyTrustConstr, or "
                "remove the bounds"
            )
        info = start_info(params, init, evaluator.errordef) if method.start is not None else None
        x0 = params.values.copy()
        if info is not None and method.start is not None:
            seeded = method.start(x0, info, params, {**method.options, **opts})
            for key, value in seeded.items():
                opts.setdefault(key, value)
        problem_id = self._problem_id(evaluator.loss)
        progress = ScipyProgress(self) if self._listening() else None
        try:
            with warnings.catch_warnings():
                # scipy only warns about an unknown option (checked before any evaluation)
                warnings.filterwarnings(
                    "error", "Unknown solver options", scipy.optimize.OptimizeWarning
                )
                res = run_minimize(
                    method,
                    evaluator,
                    params,
                    x0,
                    opts,
                    progress,
                    hessian=evaluator.compiled.exact_derivatives,
                )
        except scipy.optimize.OptimizeWarning as exc:
            raise ValueError(
                f"ScipyMinimize(method={method_name!r}): {exc}; check the spelling, the options "
                f"are those of scipy.optimize.show_options('minimize', {method_name!r})"
            ) from None
        except np.linalg.LinAlgError as exc:
            out = self._fallback(evaluator, Status.BACKEND_FAILURE)
            out.message = (
                f"{Status.BACKEND_FAILURE.message}: scipy's {method_name} raised a "
                f"linear-algebra error: {exc}"
            )
            out.extras = {"method": method_name, "problem_id": problem_id}
            self._report_issue(method_name, problem_id, None, repr(exc))
            return out

        x = onto_bounds(np.asarray(res.x, dtype=np.float64), params)
        m = measure_auto(evaluator, x, params, criterion.goal)  # inside the budget
        success = bool(res.success)
        scipy_msg = str(getattr(res, "message", "")).strip()
        edm_text = f"EDM {m.edm:.3g} {'<' if m.edm < m.goal else '>='} goal {m.goal:.3g}"
        message = None
        if success and m.edm < m.goal:
            status = Status.CONVERGED
        elif success:
            status = Status.NOT_CONVERGED
            message = (
                f"{status.message} [scipy's {method_name} reported success ({scipy_msg}) with "
                f"its options {opts if len(str(opts)) < 200 else '...'}, but the {edm_text}]"
            )
        else:
            status = scipy_status(res)
            if status is Status.CONVERGED:  # pragma: no cover - success is False here
                status = Status.BACKEND_FAILURE
            if m.edm < m.goal and status not in (Status.NONFINITE, Status.BACKEND_FAILURE):
                # zfit's rule: our EDM decides (scipy's "precision loss" at a minimum it
                # cannot improve on is not a failure); scipy's complaint is still reported
                status = Status.CONVERGED
                message = (
                    f"{status.message} [{edm_text}; scipy's {method_name} reported: {scipy_msg}]"
                )
            else:
                message = f"{status.message} [scipy's {method_name}: {scipy_msg}; {edm_text}]"
            self._report_issue(method_name, problem_id, res, pprint.pformat(res))
        return SolverOutput(
            x=x,
            fmin=m.f,
            status=status,
            niter=niter_of(res) if progress is None else progress.niter,
            edm=m.edm,
            gradient=m.g,
            hessian=m.H,
            inv_hessian=dense_or_none(getattr(res, "hess_inv", None)) if dense_ok(x.size) else None,
            message=message,
            original=res,
            extras={
                "method": method_name,
                "scipy_success": success,
                "scipy_message": scipy_msg,
                "problem_id": problem_id,
            },
        )
