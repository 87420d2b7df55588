"""Shared plumbing of the minimizers that wrap :mod:`scipy.optimize`.

scipy owns its loop; zfitlite keeps its own meaning of convergence. One table,
:data:`~zfitlite.solvers.scipy_methods.METHODS` (in :mod:`.scipy_methods`), says for every method of :func:`scipy.optimize.minimize` which
derivatives it uses, whether it takes bounds, the options zfitlite exposes (with their
first-round defaults), which of them are tolerances to tighten, which receive the
evaluation budget, and how a previous result (``init``) seeds it. The classes of
:mod:`~zfitlite.solvers.scipy_local` are one line each on top of that table, and
:class:`~zfitlite.solvers.scipy_minimize.ScipyMinimize` reads the same table.

The loop of rounds (:class:`ScipyRoundsMinimizer`, through the one rounds loop
:func:`zfitlite.solvers.rounds.run_rounds` that :class:`~zfitlite.solvers.minuit.Minuit`
also uses; the measure at a point is :func:`zfitlite.criterion.measure`):

1. run the scipy method from ``x`` with the current options;
2. at its answer, evaluate the exact (or numerical) gradient and Hessian and the EDM
   (over the parameters not held by a bound);
3. converged when the EDM is below the goal; otherwise tighten the tolerances
   (:func:`~zfitlite.solvers.rounds.tighten`: from how far the EDM still is from the goal, never less than a
   factor 10 per round) and go on from where scipy stopped, at most ``max_rounds``
   times. Everything depends only on the values seen, so a fit is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..criterion import (
    EPS,
    Measure,
    bounded_edm,
    free_mask,
    measure,
    onto_active_bounds,
    parameter_scale,
    settled_measure,
)
from ..matrix_free import dense_ok, measure_auto
from ..status import Status
from ._trust_krylov import TRUST_KRYLOV
from .base import BaseMinimizer, ScipyProgress, SolverOutput
from .rounds import round_end, run_rounds, tighten
from .scipy_methods import (
    METHODS,
    ScipyMethod,
    StartInfo,
    bounded_methods,
    dense_or_none,
    hessian_directions,
    posdef_or_none,
    simplex_around,
    start_info,
    usable_inv_hessian,
)

__all__ = [
    "METHODS",
    "Measure",
    "ScipyLocalMinimizer",
    "ScipyMethod",
    "ScipyRoundsMinimizer",
    "StartInfo",
    "best_point",
    "bounded_edm",
    "bounded_methods",
    "dense_or_none",
    "free_mask",
    "hessian_directions",
    "measure",
    "niter_of",
    "onto_active_bounds",
    "onto_bounds",
    "posdef_or_none",
    "run_minimize",
    "scipy_bounds",
    "scipy_status",
    "settled_measure",
    "simplex_around",
    "start_info",
    "tighten",
    "usable_inv_hessian",
]


# -- what a previous result tells a method ------------------------------------------------


# -- bounds ---------------------------------------------------------------------------------
def scipy_bounds(params: Any, keep_feasible: bool = False) -> scipy.optimize.Bounds | None:
    """The parameters' bounds as :class:`scipy.optimize.Bounds`, or None when there are none."""
    if not params.has_bounds:
        return None
    return scipy.optimize.Bounds(params.lower, params.upper, keep_feasible=keep_feasible)


def onto_bounds(x: np.ndarray, params: Any) -> np.ndarray:
    """``x`` clipped into the bounds and put exactly on a bound it is within ``rtol=1e-8`` of.

    Interior-point and derivative-free methods approach a bound without landing on it;
    on the bound, the EDM leaves out a parameter that its bound holds.
    """
    x = np.asarray(x, dtype=np.float64)
    if not params.has_bounds:
        return x
    lo, hi = params.lower, params.upper
    x = np.clip(x, lo, hi)
    near = params.at_limit(x)
    to_lower = near & (np.abs(x - lo) <= np.abs(hi - x))
    return np.where(to_lower, lo, np.where(near, hi, x))


# -- the EDM at scipy's answer ----------------------------------------------------------


# -- scipy's verdict --------------------------------------------------------------------
_MAXITER_WORDS = ("maximum number", "iteration limit", "max_nfev", "maxfev", "maxfun", "exceeded")
_NO_STEP_WORDS = (
    "precision loss",
    "line search",
    "linear search",
    "abnormal",
    "positive directional derivative",
    "not positive definite",
    "rounding errors",
    "too small",
)


def scipy_status(res: Any) -> Status:
    """zfitlite's status for a scipy ``OptimizeResult`` (scipy's own verdict, not our EDM)."""
    fun = np.asarray(getattr(res, "fun", np.nan), dtype=np.float64)
    if not np.all(np.isfinite(fun)):
        return Status.NONFINITE
    if bool(getattr(res, "success", False)):
        return Status.CONVERGED
    msg = str(getattr(res, "message", "")).lower()
    if any(w in msg for w in _MAXITER_WORDS):
        return Status.MAXITER
    if any(w in msg for w in _NO_STEP_WORDS):
        return Status.NO_STEP
    return Status.BACKEND_FAILURE


# -- per-method seeding from init ---------------------------------------------------------


# -- the table ------------------------------------------------------------------------------


# -- the loop of rounds ---------------------------------------------------------------------
class ScipyRoundsMinimizer(BaseMinimizer):
    """Runs a scipy solver in rounds until *our* EDM is below the goal.

    Subclasses implement :meth:`_first_options`, :meth:`_run` and may override
    :meth:`_measure` and :meth:`_next_options`. Every subclass accepts the option
    ``max_rounds`` (default 5).
    """

    _TIGHTEN: ClassVar[Mapping[str, str]] = {}
    _TOL_FLOOR: ClassVar[float | Mapping[str, float]] = 0.0
    _LINALG_HINT: ClassVar[str] = "try another minimizer"

    def __init__(
        self,
        tol: float | None = None,
        verbosity: int | None = None,
        criterion: Any = None,
        strategy: Any = None,
        maxiter: int | str | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        progress: bool | None = None,
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
            progress=progress,
        )
        self._user_options = frozenset(options or ())
        rounds = self.options.get("max_rounds", 1)
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
            raise ValueError(
                f"{type(self).__name__}: option max_rounds must be an integer >= 1, got {rounds!r}"
            )

    # hooks -------------------------------------------------------------------------------
    def _first_options(
        self, evaluator: Any, params: Any, x: np.ndarray, info: StartInfo
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _run(
        self, evaluator: Any, params: Any, x: np.ndarray, opts: dict[str, Any], progress: Any
    ) -> Any:
        raise NotImplementedError

    def _measure(self, evaluator: Any, x: np.ndarray, params: Any, criterion: Any) -> Measure:
        # dense up to DENSE_LIMIT parameters, Hessian-vector products above
        return measure_auto(evaluator, x, params, criterion.goal)

    def _onto_active_bounds(
        self, evaluator: Any, m: Measure, params: Any, criterion: Any
    ) -> Measure | None:
        return onto_active_bounds(evaluator, m, params, m.goal)

    def _next_options(
        self,
        opts: dict[str, Any],
        res: Any,
        m: Measure,
        info: StartInfo,
        params: Any,
    ) -> dict[str, Any]:
        return tighten(opts, self._TIGHTEN, m, self._TOL_FLOOR)

    def _seed(self, hooked: Mapping[str, Any]) -> dict[str, Any]:
        """Options from a seeding hook, except those the user set explicitly."""
        return {k: v for k, v in hooked.items() if k not in self._user_options}

    # the loop ----------------------------------------------------------------------------
    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        info = start_info(params, init, evaluator.errordef)
        x0 = params.values.copy()
        opts = self._first_options(evaluator, params, x0, info)
        state = {"round": 1}
        progress = self._progress(lambda _: dict(state))
        niter = 0

        def run(round_: int, x: np.ndarray) -> tuple[Any, np.ndarray]:
            nonlocal niter
            state["round"] = round_
            res = self._run(evaluator, params, x, opts, progress)
            niter += niter_of(res)
            return res, onto_bounds(np.asarray(res.x, dtype=np.float64), params)

        def measure_at(x: np.ndarray) -> Measure:
            m = self._measure(evaluator, x, params, criterion)
            if not m.edm < m.goal:
                m = self._onto_active_bounds(evaluator, m, params, criterion) or m
            return m

        def next_round(res: Any, m: Measure, round_: int) -> None:
            nonlocal opts
            opts = self._next_options(opts, res, m, info, params)
            if self.verbosity >= 2:
                tols = ", ".join(f"{k}={opts[k]:.2e}" for k in self._TIGHTEN if k in opts)
                print(
                    f"  {self.name}: round {round_} stopped at {round_end(m.edm, m.goal)} "
                    f"({_message(res)}); again with {tols}"
                )

        def stuck(res: Any, m: Measure, x_start: np.ndarray) -> bool:
            return not bool(getattr(res, "success", True)) and np.array_equal(m.x, x_start)

        try:
            scale = parameter_scale(params)
            done = run_rounds(
                int(self.options["max_rounds"]),
                run,
                measure_at,
                x0,
                next_round,
                stuck=stuck,
                settled=lambda m: settled_measure(m, self.tol, scale),
                best=lambda: best_point(evaluator, params),
                value=evaluator.value,
                bounds=(params.lower, params.upper) if params.has_bounds else None,
            )
        except np.linalg.LinAlgError as exc:
            return self._linalg_failure(evaluator, exc, state["round"], niter)
        m, res, round_ = done.measure, done.result, done.rounds
        status = Status.NOT_CONVERGED if done.status is None else done.status
        improved = done.improved
        message = None
        if (
            status is not Status.CONVERGED
            and not improved
            and self._stalled_but_converged(m, criterion)
        ):
            status = Status.CONVERGED
        if status is not Status.CONVERGED:
            verdict = scipy_status(res)
            if verdict in (Status.MAXITER, Status.NONFINITE, Status.BACKEND_FAILURE):
                status = verdict
            elif not improved:
                status = Status.NO_STEP
            hint = f"; {self._LINALG_HINT}" if "linalg" in _message(res).lower() else ""
            message = (
                f"{status.message} [scipy: {_message(res)}; EDM {m.edm:.3g}, goal {m.goal:.3g}, "
                f"after {round_} round(s)]{hint}"
            )
        return SolverOutput(
            x=m.x,
            fmin=m.f,
            status=status,
            niter=niter if progress is None else progress.niter,
            edm=m.edm,
            gradient=m.g,
            hessian=m.H,
            inv_hessian=dense_or_none(getattr(res, "hess_inv", None))
            if dense_ok(m.x.size)
            else None,  # not densified at large n; the operator stays in `original`
            message=message,
            original=res,
            extras={"rounds": round_, "scipy_message": _message(res)},
        )

    def _stalled_but_converged(self, m: Measure, criterion: Any) -> bool:
        """Whether a fit that can no longer improve counts as converged (see ScipyLeastSquares)."""
        return False

    def _progress(self, extras: Callable[[Any], dict[str, Any]]) -> ScipyProgress | None:
        """A per-iteration callback for scipy, only when someone listens (it costs time)."""
        return ScipyProgress(self, extras) if self._listening() else None

    def _linalg_failure(
        self, evaluator: Any, exc: Exception, round_: int, niter: int
    ) -> SolverOutput:
        out = self._fallback(evaluator, Status.BACKEND_FAILURE)
        out.niter = niter
        out.message = (
            f"{Status.BACKEND_FAILURE.message}: scipy raised a linear-algebra error in round "
            f"{round_} ({exc}); {self._LINALG_HINT}"
        )
        out.extras = {"rounds": round_}
        return out


def best_point(evaluator: Any, params: Any) -> np.ndarray | None:
    """The lowest finite point the evaluator saw (on the bounds as a round's end is), or None."""
    if not np.isfinite(evaluator.best_value):
        return None
    return onto_bounds(np.asarray(evaluator.best_x, dtype=np.float64), params)


def niter_of(res: Any) -> int:
    """Iterations of a scipy result (``nit``; ``njev`` for least_squares, which has none)."""
    n = getattr(res, "nit", None)
    if n is None:
        n = getattr(res, "njev", None)
    return int(n) if n is not None else 0


def _message(res: Any) -> str:
    return str(getattr(res, "message", "")).strip()


class ScipyLocalMinimizer(ScipyRoundsMinimizer):
    """Base of the :func:`scipy.optimize.minimize` wrappers; a subclass names its method.

    A subclass sets ``_METHOD = METHODS["..."]``; its options (``_OPTIONS``), whether it
    honours bounds (``SUPPORTS_BOUNDS``) and its default name follow from the table.
    """

    _METHOD: ClassVar[ScipyMethod]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        method = cls.__dict__.get("_METHOD")
        if method is not None:
            cls._OPTIONS = {**method.options, "max_rounds": 5}
            cls._TIGHTEN = method.tighten
            cls._TOL_FLOOR = dict(method.floor)
            cls.SUPPORTS_BOUNDS = method.bounds
            cls._DEFAULT_NAME = cls.__name__
            if method.name == "dogleg":
                cls._LINALG_HINT = (
                    "dogleg needs a positive-definite Hessian; use ScipyTrustNCG or "
                    "ScipyTrustKrylov where the loss has negative curvature"
                )

    def _first_options(
        self, evaluator: Any, params: Any, x: np.ndarray, info: StartInfo
    ) -> dict[str, Any]:
        method = self._METHOD
        opts = {k: v for k, v in self.options.items() if k in method.options and v is not None}
        if "scale" in opts:  # TNC wants an array
            opts["scale"] = np.asarray(opts["scale"], dtype=np.float64)
        if method.start is not None:
            opts.update(self._seed(method.start(x, info, params, opts)))
        for key in method.budget:  # COBYLA wants at least n + 2; the evaluator stops first
            opts[key] = max(evaluator.maxiter, x.size + 2)
        return opts

    def _next_options(
        self,
        opts: dict[str, Any],
        res: Any,
        m: Measure,
        info: StartInfo,
        params: Any,
    ) -> dict[str, Any]:
        new = super()._next_options(opts, res, m, info, params)
        if self._METHOD.restart is not None:
            new.update(self._METHOD.restart(res, m, info, params, new))
        return {k: v for k, v in new.items() if v is not None}

    def _run(
        self, evaluator: Any, params: Any, x: np.ndarray, opts: dict[str, Any], progress: Any
    ) -> Any:
        return run_minimize(self._METHOD, evaluator, params, x, opts, progress, hessian=True)


def run_minimize(
    method: ScipyMethod,
    evaluator: Any,
    params: Any,
    x: np.ndarray,
    opts: Mapping[str, Any],
    progress: Any,
    hessian: bool,
) -> Any:
    """One call of :func:`scipy.optimize.minimize` with the evaluator's value, gradient, Hessian.

    The gradient is passed when the method uses it (``value_gradient`` shared by scipy's
    ``fun`` and ``jac``, so each point costs one call), the Hessian when ``hessian`` is
    True and the method uses it (or always, where scipy requires it), the bounds when
    there are any.
    """
    callback = progress
    if progress is not None and method.callback_x:

        def callback(x: np.ndarray) -> None:
            last = evaluator.record
            same = last.last_x is not None and np.array_equal(last.last_x, x)
            progress(scipy.optimize.OptimizeResult(x=x, fun=last.last_value if same else np.nan))

    # trust-krylov with a clean trlib workspace: scipy's reads uninitialised memory, so its
    # steps would depend on what the process freed before (zfitlite.solvers._trust_krylov)
    name: Any = TRUST_KRYLOV if method.name == "trust-krylov" else method.name
    kwargs: dict[str, Any] = {"method": name, "options": dict(opts), "callback": callback}
    fun = evaluator.value_gradient if method.gradient else evaluator.value
    bounds = scipy_bounds(params, method.keep_feasible)
    if bounds is not None and method.clip:
        lower, upper, value = params.lower, params.upper, evaluator.value

        def fun(x: np.ndarray) -> float:
            return value(np.clip(x, lower, upper))

    if method.hessian and (hessian or method.hessian_required):
        kwargs["hess"] = evaluator.hessian
    if bounds is not None:
        kwargs["bounds"] = bounds
    guard = _StallGuard(fun, method.gradient) if method.stall_stop else None
    if guard is not None:
        fun = guard
    if method.gradient:
        pair = _OnePerPoint(fun)
        fun, kwargs["jac"] = pair.value, pair.gradient
    try:
        return scipy.optimize.minimize(fun, x, **kwargs)
    except _Stalled:
        assert guard is not None
        return guard.result()


class _OnePerPoint:
    """scipy's ``fun`` and ``jac`` from one ``value_and_gradient(x) -> (f, g)`` call per
    point (what ``jac=True`` does through scipy's ``MemoizeJac``, whose two ``np.all(x ==
    last)`` tests per point cost ~6 us: ~80 us of a ~1.4 ms ``ScipyBFGS`` fit of a 3-d
    bowl). A point is the same when its bytes are."""

    def __init__(self, value_and_gradient: Callable[[np.ndarray], Any]) -> None:
        self._vg = value_and_gradient
        self._key: bytes | None = None
        self._f: Any = None
        self._g: Any = None

    def _at(self, x: np.ndarray) -> None:
        key = x.tobytes()
        if key != self._key:
            self._key = None  # stays unset if the call raises
            self._f, self._g = self._vg(x)
            self._key = key

    def value(self, x: np.ndarray) -> Any:
        self._at(x)
        return self._f

    def gradient(self, x: np.ndarray) -> Any:
        self._at(x)
        return self._g


#: A round of a gradient-tolerance method (BFGS, CG) ends after this many evaluations in a
#: row that change the loss by no more than :data:`STALL_ULPS` units of its last place
#: from the best value of the round. With a large loss (an NLL of 10^6 events: about
#: 2e6) the gradient's float64 floor (~1e-3 there) lies above scipy's ``gtol`` (1e-5),
#: and scipy's line search went on for 45 evaluations in which the loss changed by at
#: most one unit in its last place, before it gave up ("precision loss"). The round's
#: end is measured as any other (EDM, settled test), so a stop that comes too early only
#: costs the next round.
STALL_EVALUATIONS = 5
STALL_ULPS = 4.0


class _Stalled(Exception):
    """Raised inside scipy's loop by :class:`_StallGuard` (caught in :func:`run_minimize`)."""


class _StallGuard:
    """The loss for scipy, ending the round once it stalls at rounding level (see
    :data:`STALL_EVALUATIONS`); :meth:`result` is then the round's answer: the best point."""

    def __init__(self, fun: Callable[[np.ndarray], Any], with_gradient: bool) -> None:
        self.fun = fun
        self.with_gradient = with_gradient
        self.best_f = np.inf
        self.best_x: np.ndarray | None = None
        self.best_out: Any = None
        self.calls = 0
        self.flat = 0
        self.improved = 0  # points better than all before: about scipy's iterations

    def __call__(self, x: np.ndarray) -> Any:
        out = self.fun(x)
        self.calls += 1
        f = float(out[0] if self.with_gradient else out)
        band = STALL_ULPS * EPS * abs(self.best_f) if math.isfinite(self.best_f) else 0.0
        if f < self.best_f - band:
            self.best_f, self.best_x, self.best_out, self.flat = f, np.array(x), out, 0
            self.improved += 1
        elif abs(f - self.best_f) <= band:
            self.flat += 1
            if self.flat >= STALL_EVALUATIONS:
                raise _Stalled
        else:
            self.flat = 0
        return out

    def result(self) -> scipy.optimize.OptimizeResult:
        out = self.best_out
        res = scipy.optimize.OptimizeResult(
            x=self.best_x,
            fun=self.best_f,
            success=False,
            status=2,
            nit=max(self.improved - 1, 0),
            nfev=self.calls,
            message=(
                f"stopped: precision loss, the loss changed by at most {STALL_ULPS:g} units "
                f"in its last place over {STALL_EVALUATIONS} evaluations"
            ),
        )
        if self.with_gradient:
            res.jac = np.asarray(out[1])
        return res
