"""BaseMinimizer: the common front of every minimizer.

``minimize`` normalises the loss and parameters, handles chaining (a FitResult as the
loss or as ``init``), builds the evaluator and the criterion, runs the solver's
``_minimize`` and turns whatever happened (convergence, maxiter, non-finite loss,
Ctrl-C) into a :class:`~zfitlite.result.FitResult`. It never returns None.

A solver implements ``_minimize(evaluator, criterion, params, init, report) ->
SolverOutput``. Everything that changes during a run lives in the solver's own local
state and in the evaluator; the minimizer object holds configuration only.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.linalg.lapack

from .._progress import make_bar, should_show
from ..cache import GraphCachable
from ..criterion import EDM, ConvergenceCriterion, free_mask, parameter_scale, trustworthy
from ..evaluator import LossEvaluationError, LossEvaluator
from ..exceptions import FailMinimizeNaN, MaximumIterationReached, ZfitliteError
from ..loss import BaseLoss
from ..params import Params, make_params
from ..result import Approximations, FitResult
from ..status import Status
from ..strategy import DefaultStrategy, ZfitStrategy
from ..to_loss import as_loss

__all__ = ["BaseMinimizer", "IterationState", "ScipyProgress", "SolverOutput"]

#: The option values kept in :meth:`BaseMinimizer.settings` (plain data).
_PLAIN_OPTION = (int, float, str, bool, type(None))

DEFAULT_TOL = 1e-3
#: The progress bar of the fit running in this thread (or None): a context variable, not
#: state on the minimizer, so one minimizer object can fit in several threads at once.
_FIT_BAR: contextvars.ContextVar[Any] = contextvars.ContextVar("zfitlite_fit_bar", default=None)


@dataclass
class IterationState:
    """What a callback receives once per iteration.

    Attributes
    ----------
    iteration : int
    x : numpy.ndarray
    fmin : float
        The loss at ``x``.
    edm : float
        The EDM at ``x`` (NaN where the solver does not know it cheaply).
    extras : dict
        Solver-specific values, e.g. the Levenberg-Marquardt damping ``lambda``.
    """

    iteration: int
    x: np.ndarray
    fmin: float
    edm: float
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SolverOutput:
    """What a solver's ``_minimize`` returns to the driver.

    ``edm``/``gradient``/``hessian`` may be left None: the driver then evaluates the
    exact (or numerical) gradient and Hessian at ``x`` and computes the EDM itself.
    """

    x: np.ndarray
    fmin: float
    status: Status
    niter: int
    edm: float | None = None
    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    inv_hessian: np.ndarray | None = None
    message: str | None = None
    original: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: True when ``hessian`` is positive semi-definite by construction (Gauss-Newton's
    #: ``2 J^T J``): the result then skips the negative-curvature test
    hessian_psd: bool = False
    #: The Hessian the EDM was measured with at ``x`` (exact, or the evaluator's numerical
    #: one), where ``hessian`` is another approximation kept for the uncertainties
    #: (Minuit's Hesse): the scale-free and negative-curvature checks behind ``valid`` read
    #: this one, so that they test the same Hessian as the EDM. None: ``hessian``.
    measured_hessian: np.ndarray | None = None
    #: True: the result's ``approx.inv_hessian`` is the inverse of ``hessian``, computed
    #: when first read (:class:`~zfitlite.approximations.Approximations`)
    invert_hessian: bool = False


class ScipyProgress:
    """A scipy ``callback(intermediate_result)`` that counts iterations and reports each one.

    Parameters
    ----------
    minimizer : BaseMinimizer
        Whose ``_report`` (verbosity, user callback) receives the iteration.
    extras : callable, optional
        ``extras(intermediate_result) -> dict`` of solver-specific values to report.
    """

    def __init__(
        self, minimizer: BaseMinimizer, extras: Callable[[Any], dict[str, Any]] | None = None
    ) -> None:
        self.minimizer = minimizer
        self.extras = extras or (lambda _: {})
        self.niter = 0

    def __call__(self, intermediate_result: Any) -> None:
        self.niter += 1
        self.minimizer._report(
            IterationState(
                self.niter,
                np.array(intermediate_result.x),
                float(intermediate_result.fun),
                float("nan"),
                self.extras(intermediate_result),
            )
        )


def _check_tol(tol: Any) -> float:
    if tol is None:
        return DEFAULT_TOL
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)):
        raise TypeError(f"tol must be a positive number, got {tol!r}")
    tol = float(tol)
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(
            f"tol must be a finite number > 0, got {tol}; the default is {DEFAULT_TOL}"
        )
    return tol


def _check_maxiter(maxiter: Any) -> int | str:
    if maxiter is None or maxiter == "auto":
        return "auto"
    if (
        isinstance(maxiter, bool)
        or not isinstance(maxiter, (int, np.integer, float))
        or int(maxiter) != maxiter
    ):
        raise TypeError(f"maxiter must be a positive integer or 'auto', got {maxiter!r}")
    if maxiter <= 0:
        raise ValueError(
            f"maxiter must be a positive integer or 'auto', got {maxiter}; leave it None for "
            "the default ('auto': 5000 + 1000 * n_params evaluations)"
        )
    return int(maxiter)


def _check_verbosity(verbosity: Any) -> int:
    if verbosity is None:
        return 0
    if (
        isinstance(verbosity, bool)
        or not isinstance(verbosity, (int, np.integer))
        or not 0 <= verbosity <= 10
    ):
        raise ValueError(
            f"verbosity must be an integer from 0 (quiet) to 10 (every evaluation), got {verbosity!r}"
        )
    return int(verbosity)


class BaseMinimizer(GraphCachable):
    """Base of every zfitlite minimizer.

    Parameters
    ----------
    tol : float, optional
        Converged means ``EDM < tol * errordef`` (default 1e-3).
    verbosity : int, optional
        0 quiet; 1-5 a line at start and end; 6-9 a line per iteration; 10 every evaluation.
    criterion : ConvergenceCriterion subclass, optional
        Default :class:`~zfitlite.criterion.EDM`.
    strategy : ZfitStrategy, optional
        What to do on NaN; default :class:`~zfitlite.strategy.DefaultStrategy`.
    maxiter : int or "auto", optional
        Budget of loss evaluations (value, gradient, Hessian, residuals, Jacobian each
        count one). "auto" is ``5000 + 1000 * n_params``.
    name : str, optional
    options : dict, optional
        Solver-specific options; unknown keys raise ``ValueError``.
    callback : callable, optional
        ``callback(state: IterationState)`` once per iteration.
    progress : bool, optional
        A progress bar (iterations, current loss and EDM) in a terminal or Jupyter.
        None (default): shown with ``verbosity >= 1`` when someone watches (never with
        ``CI`` set or output to a file or pipe; see :mod:`zfitlite._progress`); global
        searches and multi-starts show theirs whenever someone watches. True or False
        force it.
    """

    _DEFAULT_NAME: ClassVar[str] = "BaseMinimizer"
    _OPTIONS: ClassVar[dict[str, Any]] = {}
    SUPPORTS_BOUNDS: ClassVar[bool] = False

    def __init__(
        self,
        tol: float | None = None,
        verbosity: int | None = None,
        criterion: type[ConvergenceCriterion] | None = None,
        strategy: ZfitStrategy | None = None,
        maxiter: int | str | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        callback: Callable[[IterationState], Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        GraphCachable.__init__(self)
        self.tol = _check_tol(tol)
        self.verbosity = _check_verbosity(verbosity)
        if criterion is None:
            criterion = EDM
        if not (isinstance(criterion, type) and issubclass(criterion, ConvergenceCriterion)):
            raise TypeError(
                f"criterion must be a ConvergenceCriterion subclass such as EDM, got {criterion!r}"
            )
        self.criterion = criterion
        if strategy is None:
            strategy = DefaultStrategy()
        elif isinstance(strategy, type) and issubclass(strategy, ZfitStrategy):
            strategy = strategy()
        if not isinstance(strategy, ZfitStrategy):
            raise TypeError(
                f"strategy must be a ZfitStrategy instance such as DefaultStrategy(), got {strategy!r}"
            )
        self.strategy = strategy
        self.maxiter = _check_maxiter(maxiter)
        self.name = name or self._DEFAULT_NAME
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, got {type(options).__name__}")
        unknown = set(options or {}) - set(self._OPTIONS)
        if unknown:
            allowed = sorted(self._OPTIONS) or "none"
            raise ValueError(
                f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; check the spelling, "
                f"allowed: {allowed}"
            )
        self.options: dict[str, Any] = {**self._OPTIONS, **(options or {})}
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self.callback = callback
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"progress must be True, False or None (auto), got {progress!r}")
        self.progress = progress

    # -- public API ----------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The minimizer's configuration as plain data (stored in results)."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "tol": self.tol,
            "maxiter": self.maxiter,
            "verbosity": self.verbosity,
            "criterion": self.criterion.__name__,
            "strategy": type(self.strategy).__name__,
            "options": {k: v for k, v in self.options.items() if isinstance(v, _PLAIN_OPTION)},
            **self._extra_settings(),
        }

    def _extra_settings(self) -> dict[str, Any]:
        return {}

    def vectorised_core(self, kind: str, has_bounds: bool) -> str | None:
        """The native core that :func:`~zfitlite.minimize_batch` may vectorise for this
        minimizer: the *same* algorithm, run under ``vmap``.

        ``kind`` is ``"lsq"`` (a least-squares loss) or ``"scalar"``. None (the default)
        means the minimizer has no vectorisable core for this loss: the batch then runs
        this very minimizer member by member. Never a substitute algorithm.
        """
        return None

    def _native_output(
        self,
        out: Any,
        evaluator: LossEvaluator,
        x0: np.ndarray,
        what: str,
        extras: dict[str, Any],
        invert: bool = True,
        hessian_psd: bool = False,
    ) -> SolverOutput:
        """The :class:`SolverOutput` of a native solver's :class:`~.driver.Outcome` (host
        numpy): a non-finite start goes to the strategy (for ``what``, e.g. "residuals"),
        a spent budget raises, and with ``invert`` the result's inverse Hessian is the
        inverse of ``out.H``, computed when first read (``hessian_psd``: positive
        semi-definite by construction, no curvature check)."""
        status = Status(out.status)
        if status is Status.NONFINITE:
            # the start is not finite: the strategy decides (DefaultStrategy raises)
            self.strategy.handle_nonfinite(what, x0, out.f, evaluator.record)
        if status is Status.MAXITER:
            raise MaximumIterationReached(f"maxiter={evaluator.maxiter} evaluations reached")
        return SolverOutput(
            x=out.x,
            fmin=out.f,
            status=status,
            niter=out.niter,
            edm=out.edm,
            gradient=out.g,
            hessian=out.H,
            extras=extras,
            hessian_psd=hessian_psd,
            invert_hessian=invert,
        )

    def _maxiter_for(self, n: int) -> int:
        return 5000 + 1000 * n if self.maxiter == "auto" else int(self.maxiter)

    def create_evaluator(
        self,
        loss: Any = None,
        params: Any = None,
        numpy_converter: Any = None,
        strategy: ZfitStrategy | None = None,
    ) -> LossEvaluator:
        """Wrap ``loss`` for ``params``: numpy output, counters, maxiter, NaN to the strategy.

        ``numpy_converter`` keeps zfit's signature; only None is accepted (the evaluator
        always returns float64 numpy arrays), anything else is refused rather than ignored.
        """
        if loss is None:
            raise ValueError("create_evaluator needs the loss")
        if numpy_converter is not None:
            raise ValueError(
                "numpy_converter is not supported: the evaluator always returns float64 numpy "
                "arrays; convert its outputs yourself if you need another type"
            )
        loss = as_loss(loss)
        p = make_params(params, loss)
        return LossEvaluator(
            loss,
            p,
            strategy or self.strategy,
            self._maxiter_for(len(p)),
            self.verbosity,
            auto_budget=self.maxiter == "auto",
        )

    def create_criterion(self, loss: Any = None, params: Any = None) -> ConvergenceCriterion:
        """The convergence criterion for ``loss``: converged when below ``tol * errordef``."""
        return self.criterion(
            tol=self.tol, loss=None if loss is None else as_loss(loss), params=params
        )

    def minimize(self, loss: Any, params: Any = None, init: FitResult | None = None) -> FitResult:
        """Minimize ``loss`` with respect to ``params``.

        Parameters
        ----------
        loss : callable with errordef, BaseLoss or FitResult
            A FitResult continues from it: its loss, parameters and values are taken.
        params : optional
            Any parameter form of :func:`~zfitlite.params.make_params`; values given here
            win over those of ``init``.
        init : FitResult, optional
            A previous result: start values and, where this minimizer can use them, step
            sizes and an inverse-Hessian estimate.

        Returns
        -------
        FitResult
            Always (never None); a failed fit gives ``valid=False`` with a status and a
            message (see :class:`~zfitlite.status.Status`):

            * ``MAXITER``: the budget was spent; the best point seen is reported.
            * ``INTERRUPTED``: Ctrl-C (``KeyboardInterrupt``, also one raised by the loss)
              stopped the fit; the result holds the best (lowest finite) point seen, its EDM
              is not computed (NaN) and nothing more is evaluated. The loss, its compiled
              functions and the minimizer are left as before the fit, so the next fit works.
              A compiled JAX solve (Levenberg-Marquardt on a ``LeastSquares`` JAX loss) runs
              as one XLA program that Python cannot interrupt: the Ctrl-C takes effect when
              it returns.
            * ``NONFINITE`` / ``LOSS_RAISED``: only with a strategy whose
              ``raise_on_failure`` is False (:class:`~zfitlite.strategy.DefaultToyStrategy`);
              the best finite point seen is reported, the message holds the reason.

        Raises
        ------
        ValueError, TypeError
            Bad arguments (parameters, bounds the minimizer cannot honour, a loss without
            ``errordef``), before anything is evaluated.
        LossEvaluationError
            The loss raised, or returned a vector, a complex number or a derivative of the
            wrong shape (with the default strategy; :class:`DefaultToyStrategy` returns an
            invalid result with status ``LOSS_RAISED`` for a loss that raises). The original
            exception is chained; ``best_x``/``best_value`` hold the best point seen.
        FailMinimizeNaN
            The loss kept returning NaN/inf and the default strategy gave up
            (:class:`DefaultToyStrategy`: an invalid result with status ``NONFINITE``);
            ``best_x``/``best_value`` hold the best point seen.
        """
        loss, p, init = resolve_inputs(loss, params, init)
        errordef = loss.errordef
        if p.has_bounds and not self.SUPPORTS_BOUNDS:
            raise ValueError(
                f"{type(self).__name__} cannot honour parameter bounds (lower/upper); use one of "
                f"{', '.join(supporting_bounds())}, or remove the bounds"
            )
        self.add_cache_deps(loss)
        evaluator = LossEvaluator(
            loss,
            p,
            self.strategy,
            self._maxiter_for(len(p)),
            self.verbosity,
            auto_budget=self.maxiter == "auto",
        )
        criterion = self.create_criterion(loss, p)
        if self.verbosity >= 1:
            print(
                f"{self.name}: minimizing {len(p)} parameter(s) {list(p.names)} with the {evaluator.backend} "
                f"backend, goal EDM < {criterion.goal:.3g}"
            )
        start = time.perf_counter()
        bar = self._fit_bar()
        token = _FIT_BAR.set(bar)
        try:
            with evaluator.silenced():
                out = self._minimize(evaluator, criterion, p, init)
        except MaximumIterationReached:
            out = self._fallback(evaluator, Status.MAXITER)
        except FailMinimizeNaN as exc:
            if self.strategy.raise_on_failure:
                _with_best(exc, evaluator, p)
                raise
            out = self._fallback(evaluator, Status.NONFINITE, str(exc))
        except LossEvaluationError as exc:
            if self.strategy.raise_on_failure:
                _with_best(exc, evaluator, p)
                raise
            out = self._fallback(evaluator, Status.LOSS_RAISED, str(exc))
        except KeyboardInterrupt:
            out = self._fallback(evaluator, Status.INTERRUPTED)
        finally:
            _FIT_BAR.reset(token)
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - start
        result = self._make_result(out, evaluator, criterion, p, loss, errordef, elapsed)
        if self.verbosity >= 1:
            print(
                f"{self.name}: {result.status.name}, valid={result.valid}, fmin={result.fmin:.10g}, "
                f"edm={result.edm:.3g}, {evaluator.ncalls} evaluations, {elapsed:.3g} s"
            )
        return result

    # -- solver side ---------------------------------------------------------------------
    def _minimize(
        self,
        evaluator: LossEvaluator,
        criterion: ConvergenceCriterion,
        params: Params,
        init: FitResult | None,
    ) -> SolverOutput:
        raise NotImplementedError

    #: True for minimizers that draw their own bar (global searches, multi-starts).
    _OWN_PROGRESS: ClassVar[bool] = False

    def _fit_bar(self) -> Any:
        """This fit's progress bar, or None (see the ``progress`` parameter)."""
        if self._OWN_PROGRESS:
            return None
        show = self.progress if self.progress is not None else self.verbosity >= 1
        if not (show and should_show(self.progress)):
            return None
        return make_bar(True, desc=self.name, unit="iter")

    def _listening(self) -> bool:
        """Whether anyone receives :meth:`_report` (a callback, verbosity >= 6, a bar);
        solvers whose per-iteration reports cost time skip them otherwise."""
        return self.callback is not None or self.verbosity >= 6 or _FIT_BAR.get() is not None

    def _report(self, state: IterationState) -> None:
        """Print (verbosity >= 6), tick the progress bar and call the callback for one iteration."""
        bar = _FIT_BAR.get()
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"f={state.fmin:.10g} edm={state.edm:.3g}", refresh=False)
        if self.verbosity >= 6:
            extras = " ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in state.extras.items()
            )
            print(
                f"  iter {state.iteration:4d}  f={state.fmin:.12g}  edm={state.edm:.3g}  {extras}"
            )
        if self.callback is not None:
            self.callback(state)

    def _fallback(
        self, evaluator: LossEvaluator, status: Status, message: str | None = None
    ) -> SolverOutput:
        """A solver output at the best point seen, for runs that stopped abnormally."""
        x = evaluator.best_x.copy()
        return SolverOutput(
            x=x,
            fmin=evaluator.best_value,
            status=status,
            niter=-1,
            message=None if message is None else f"{status.message}: {message}",
        )

    def _make_result(
        self,
        out: SolverOutput,
        evaluator: LossEvaluator,
        criterion: ConvergenceCriterion,
        params: Params,
        loss: BaseLoss,
        errordef: float,
        elapsed: float,
    ) -> FitResult:
        status, message = out.status, out.message
        g, H, ihess, e = out.gradient, out.hessian, out.inv_hessian, out.edm
        fmin = out.fmin
        if status in (Status.INTERRUPTED, Status.LOSS_RAISED):
            # the user asked to stop, or the loss raised: evaluate nothing more (the EDM of
            # an invalid result stays unknown rather than calling a failing loss again)
            e = float("nan") if e is None else e
        elif status is Status.MAXITER and (e is None or g is None):
            # the budget is spent. Where derivatives are exact (a compiling backend, or
            # the user's gradient and Hessian) the EDM of the best point costs one value
            # and gradient and one Hessian beyond the budget (the documented allowance);
            # with finite differences nothing more is evaluated and the EDM stays NaN
            e, g, H, fmin = _edm_after_budget(evaluator, criterion, out, e, g, H, fmin)
        elif e is None or g is None:
            try:
                # inside the budget: the final gradient and Hessian are real work too
                fmin, g = evaluator.value_gradient_reusing(out.x)
                H = evaluator.hessian(out.x)
                # the criterion measures the end point (a user's criterion decides here)
                e = criterion.calculate(Approximations(g, H, None))
            except MaximumIterationReached:
                e = float("nan")
                status = Status.MAXITER
                message = (
                    f"{Status.MAXITER.message}: the budget maxiter={evaluator.maxiter} left no "
                    "room for the gradient and Hessian at the end point (the EDM); raise maxiter"
                )
            except (FailMinimizeNaN, LossEvaluationError, ValueError, np.linalg.LinAlgError) as exc:
                e = float("nan")
                message = message or f"the EDM could not be computed at the end point: {exc}"
        if not math.isfinite(fmin) and status in (Status.CONVERGED, Status.NOT_CONVERGED):
            status = Status.NONFINITE
            message = None
        elif status is Status.CONVERGED and not (math.isfinite(e) and e < criterion.goal):
            status = Status.NOT_CONVERGED
            message = None
        elif status is Status.CONVERGED and H is not None and g is not None and not out.hessian_psd:
            # the checks use the Hessian the EDM was measured with (see SolverOutput)
            Hm = H if out.measured_hessian is None else out.measured_hessian
            curvature = _negative_curvature(out.x, g, Hm, params)
            doubt = None if curvature is not None else _scale_doubt(out.x, g, Hm, e, fmin, params)
            # (not NOT_CONVERGED's own message: the EDM is below the goal here)
            if doubt is not None:
                status = Status.NOT_CONVERGED
                message = f"stopped: {doubt}"
            elif curvature is not None:
                status = Status.NOT_CONVERGED
                message = (
                    "stopped: the EDM is below tol * errordef, but the Hessian at the end point "
                    f"has a negative eigenvalue ({curvature:.3g} of its largest), so this is not a "
                    "minimum (a saddle point, or finite-difference derivatives swamped by noise "
                    "in the loss); restart from another point, use a derivative-free minimizer "
                    "with a larger tol, or give the loss exact derivatives (backend='jax')"
                )
        info = {
            **evaluator.counts(),
            "niter": out.niter,
            "time": elapsed,
            "backend": evaluator.backend,
            "original": out.original,
            **out.extras,
        }
        result = FitResult(
            params=params.with_values(out.x),
            fmin=fmin,
            edm=e if e is not None else float("nan"),
            status=status,
            tol=self.tol,
            errordef=errordef,
            loss=loss,
            minimizer=self,
            criterion=criterion,
            approx=Approximations(g, H, ihess, invert=out.invert_hessian),
            info=info,
            message=message,
        )
        last = evaluator.last_hessian
        if last is not None:
            result._known_hessian = (evaluator.compiled, *last)
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tol={self.tol}, name={self.name!r})"


def _edm_after_budget(
    evaluator: LossEvaluator,
    criterion: ConvergenceCriterion,
    out: SolverOutput,
    e: float | None,
    g: np.ndarray | None,
    H: np.ndarray | None,
    fmin: float,
) -> tuple[float, np.ndarray | None, np.ndarray | None, float]:
    """The EDM of a MAXITER result, measured only where that is cheap (see ``_make_result``)."""
    compiled = evaluator.compiled
    if compiled.raw is None or compiled.exact_derivatives:
        try:
            with evaluator.unbudgeted():
                fmin, g = evaluator.value_gradient_reusing(out.x)
                H = evaluator.hessian(out.x)
            return criterion.calculate(Approximations(g, H, None)), g, H, fmin
        except (FailMinimizeNaN, LossEvaluationError, ValueError, np.linalg.LinAlgError):
            return float("nan"), g, H, fmin
    last = evaluator.last_value_gradient
    if g is None and last is not None and last[0] is not None and np.array_equal(last[0], out.x):
        g = last[2].copy()  # the solver's last evaluation was here: free
    return (float("nan") if e is None else e), g, H, fmin


def _scale_doubt(
    x: np.ndarray, g: np.ndarray, H: np.ndarray, e: float, f: float, params: Params
) -> str | None:
    """Why a converged result is not trusted on a scale-free test (:func:`trustworthy`)."""
    free = None
    if params.has_bounds:
        free = free_mask(np.asarray(x), np.asarray(g), params.lower, params.upper)
    return trustworthy(g, H, x, e, f, free, scale=parameter_scale(params))


#: An eigenvalue below ``-NEGATIVE_CURVATURE`` times the largest one is negative curvature
#: for certain: well above the rounding of an exact or Gauss-Newton Hessian (~1e-16) and of
#: a numerical one at a true minimum (~1e-8 relative).
NEGATIVE_CURVATURE = 1e-6


def _negative_curvature(
    x: np.ndarray, g: np.ndarray, H: np.ndarray, params: Params
) -> float | None:
    """The most negative eigenvalue of the free parameters' Hessian relative to the largest
    absolute one, when the Hessian has clearly negative curvature; None when it does not.

    A parameter held at its bound by the gradient is left out (it is at its optimum there).
    The Cholesky test settles the usual, positive-definite case in one LAPACK call.
    """
    H = np.asarray(H, dtype=np.float64)
    if params.has_bounds:
        free = free_mask(np.asarray(x), np.asarray(g), params.lower, params.upper)
        H = H[np.ix_(free, free)]
    if H.size == 0 or not np.isfinite(H).all():
        return None
    H = 0.5 * H + 0.5 * H.T
    if scipy.linalg.lapack.dpotrf(H)[1] == 0:  # pyright: ignore[reportAttributeAccessIssue]
        return None
    w = np.linalg.eigvalsh(H)
    scale = float(np.abs(w).max())
    if scale > 0 and w[0] < -NEGATIVE_CURVATURE * scale:
        return float(w[0] / scale)
    return None


def resolve_inputs(loss: Any, params: Any, init: FitResult | None) -> tuple[BaseLoss, Params, Any]:
    """The loss, parameters and init of a ``minimize`` call.

    A FitResult given as the loss chains: its loss is refitted from its values (and it
    becomes ``init`` unless one is given).
    """
    if isinstance(loss, FitResult):
        if init is None:
            init = loss
        if loss.loss is None:
            raise ValueError(
                "this FitResult holds no loss (loaded from a file?); pass the loss and init=result"
            )
        source = loss
        loss = source.loss
        if params is None and getattr(loss, "params", None) is None:
            params = source.params_spec
    if init is not None and not isinstance(init, FitResult):
        raise TypeError(f"init must be a FitResult, got {type(init).__name__}")
    loss = as_loss(loss)
    return loss, make_params(params, loss, init), init


def _with_best(exc: ZfitliteError, evaluator: LossEvaluator, params: Params) -> None:
    """Attach the best point seen during the fit to ``exc`` (for the user's next try)."""
    if np.isfinite(evaluator.best_value):
        exc.best_x = evaluator.best_x.copy()
        exc.best_value = float(evaluator.best_value)
    exc.param_names = tuple(params.names)


def supporting_bounds() -> list[str]:
    """Names of the minimizer classes that honour bounds."""
    found: list[str] = []

    def walk(cls: type) -> None:
        for sub in cls.__subclasses__():
            if (
                sub.SUPPORTS_BOUNDS
                and not sub.__name__.startswith(("_", "Base"))
                and sub.__name__ not in found
            ):
                found.append(sub.__name__)
            walk(sub)

    walk(BaseMinimizer)
    return sorted(found)
