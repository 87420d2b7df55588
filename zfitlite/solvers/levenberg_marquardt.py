"""Levenberg-Marquardt: a damped Newton method on the loss's Hessian (zfit's mode 0).

The step solves ``(H + lam * D) h = -g`` with ``D`` the diagonal of ``|H|`` (Marquardt's
scaling, so the step does not depend on the units of the parameters). The gain ratio
``rho`` = actual / predicted reduction steers the damping: below ``rho_min`` the model
was too optimistic and ``lam`` grows; between ``rho_min`` and ``rho_max`` the model is
trusted and ``lam`` shrinks; above ``rho_max`` it stays.

Fixed relative to zfit's implementation: the EDM is computed from the post-step gradient
and the *undamped* Hessian; a Hessian that is not positive definite raises the damping
until the damped matrix is (so negative curvature does not stall the solver); bounds are
honoured by projecting each trial point into the box; "no step found" and maxiter give an
invalid result with a status, never an assertion or None.

The solver is configuration (this class) plus pure functions over an explicit
:class:`LMState`; :meth:`LevenbergMarquardt._minimize` is the one driver loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeAlias

import numpy as np

from .._composite import observed_points
from ..backends import get_backend
from ..backends.ops import (
    COMPILE_POLICIES,
    ArrayOps,
    jit_on_repeat,
    numpy_ops,
    remembered,
)
from ..criterion import (
    FTOL_REL,
    XTOL_REL,
    bounded_edm_ops,
    free_mask,
    point_settled_ops,
    relative_tolerances,
    scale_of,
)
from ..exceptions import MaximumIterationReached
from ..status import RUNNING, Status
from . import lm_sparse
from .base import BaseMinimizer, IterationState, SolverOutput
from .driver import Outcome, pack, pack_flat, solve, unpack, unpack_flat
from .lm_least_squares import LSQSettings, LSQSolver, eager_functions, native_functions

__all__ = ["LMConfig", "LMSolver", "LMState", "LevenbergMarquardt"]

#: An array of the solver's namespace: numpy, or a traced JAX array inside a program.
Array: TypeAlias = Any


class LMConfig(NamedTuple):
    """The numbers of a damped-Hessian solve (traced on JAX: changing them never recompiles)."""

    rho_min: float  # below: the model was too optimistic, the damping grows
    rho_max: float  # between rho_min and rho_max the damping shrinks
    lam0: float  # initial damping
    lam_up: float
    lam_down: float
    lam_max: float  # damping at which the solve gives up (NO_STEP)
    max_reject: float  # consecutive rejected steps before giving up
    tol_errordef: float = np.inf  # the goal: converged when EDM < tol * errordef
    maxfev: float = np.inf  # evaluations budget (inf: the evaluator enforces maxiter)
    xtol: float = XTOL_REL  # numerically settled: the Newton step is at most xtol relative
    ftol: float = FTOL_REL  # ... or the EDM is at most ftol * |f| (zfitlite.criterion)


class LMState(NamedTuple):
    """Everything that changes during a damped-Hessian Levenberg-Marquardt run (``n``
    parameters; scalars are 0-d arrays or Python numbers)."""

    x: Array  # (n,) the current point
    f: Array  # the loss at x
    g: Array  # (n,) its gradient
    H: Array  # (n, n) its Hessian (undamped)
    lam: Array  # the damping for the next step
    edm: Array  # the EDM over the parameters free of their bounds
    niter: Array  # int: accepted steps
    nreject: Array  # int: consecutive rejected steps
    nfev: Array  # int: loss evaluations (value, or value + gradient + Hessian)
    status: Array  # int: RUNNING or a Status value
    scale: Array  # (n,) each parameter's size for the relative step test (its start, box)


@dataclass(frozen=True, eq=False)
class HessFunctions:
    """``value(x, args)`` and ``value_gradient_hessian(x, args)`` of a scalar loss."""

    value: Callable[[Any, tuple], Any]
    value_gradient_hessian: Callable[[Any, tuple], tuple[Any, Any, Any]]


def damping_scale(xp: Any, H: Array, free: Array) -> Array:
    """Marquardt's diagonal ``|diag H|`` over the free parameters, floored so that no
    direction is undamped."""
    d = xp.abs(xp.diagonal(H))
    dmax = xp.max(xp.where(free, d, 0.0))
    floor = xp.maximum(dmax * 1e-12, 1e-300)
    fallback = xp.where(dmax == 0, xp.maximum(floor, 1.0), floor)
    return xp.where(xp.isfinite(d) & (d > floor), d, fallback)


def damped_step(ops: ArrayOps, g: Array, H: Array, lam: Array, free: Array) -> tuple:
    """``(h, ok)``: ``(H + lam * D) h = -g`` over the free parameters (zero for the others);
    ``ok`` is False when the damped matrix is not positive definite."""
    xp = ops.xp
    n = g.shape[0]
    A = H + lam * xp.diag(damping_scale(xp, H, free))
    A = xp.where(free[:, None] & free[None, :], A, xp.eye(n))
    h, ok = ops.cholesky_solve(A, -xp.where(free, g, 0.0))
    return xp.where(free, h, 0.0), ok


def update_damping(xp: Any, lam: Array, rho: Array, cfg: LMConfig) -> Array:
    """The damping after an accepted step with gain ratio ``rho``."""
    up = xp.minimum(lam * cfg.lam_up, cfg.lam_max)
    down = xp.maximum(lam / cfg.lam_down, 1e-15)
    return xp.where(rho < cfg.rho_min, up, xp.where(rho <= cfg.rho_max, down, lam))


def lm_init(
    fns: HessFunctions,
    ops: ArrayOps,
    x0: Array,
    lower: Array,
    upper: Array,
    cfg: LMConfig,
    args: tuple,
) -> LMState:
    """The state at ``x0``: value, gradient, Hessian and EDM (converged at once if below
    goal and numerically settled, :func:`converged_at`)."""
    xp = ops.xp
    f, g, H = fns.value_gradient_hessian(x0, args)
    free = free_mask(x0, g, lower, upper)
    edm = bounded_edm_ops(ops, g, H, free)
    scale = scale_of(xp, x0, lower, upper)
    done = converged_at(ops, g, H, x0, edm, f, free, scale, cfg)
    status = xp.where(done, int(Status.CONVERGED), RUNNING)
    status = xp.where(xp.isfinite(f), status, int(Status.NONFINITE))
    zero = xp.asarray(0)
    return LMState(x0, f, g, H, xp.asarray(cfg.lam0), edm, zero, zero, 1 + zero, status, scale)


def converged_at(
    ops: ArrayOps,
    g: Array,
    H: Array,
    x: Array,
    edm: Array,
    f: Array,
    free: Array,
    scale: Array,
    cfg: LMConfig,
) -> Array:
    """:mod:`zfitlite.criterion`'s rule: statistically converged (``EDM < goal``) and
    numerically settled (:func:`~zfitlite.criterion.point_settled_ops`)."""
    below = edm < cfg.tol_errordef
    if not ops.compiles and not bool(below):
        return below
    return below & point_settled_ops(ops, g, H, x, edm, f, free, cfg.xtol, cfg.ftol, scale)


def lm_step(
    fns: HessFunctions,
    ops: ArrayOps,
    st: LMState,
    lower: Array,
    upper: Array,
    cfg: LMConfig,
    args: tuple,
) -> LMState:
    """One damped Newton step: solve, clip into the box, accept on a real decrease."""
    xp = ops.xp
    h, ok = damped_step(ops, st.g, st.H, st.lam, free_mask(st.x, st.g, lower, upper))
    x_new = xp.clip(st.x + h, lower, upper)
    h = x_new - st.x
    pred = -(st.g @ h + 0.5 * h @ st.H @ h)
    moved = ok & xp.any(h != 0)
    f_new = ops.cond(moved, lambda x: fns.value(x, args), lambda x: st.f, x_new)
    accept = moved & xp.isfinite(f_new) & (f_new < st.f) & (pred > 0)
    rho = (st.f - f_new) / xp.where(pred > 0, pred, 1.0)

    def fresh(x: Array) -> tuple:
        f2, g2, H2 = fns.value_gradient_hessian(x, args)
        free2 = free_mask(x, g2, lower, upper)
        edm2 = bounded_edm_ops(ops, g2, H2, free2)
        done = converged_at(ops, g2, H2, x, edm2, f2, free2, st.scale, cfg)
        return f2, g2, H2, edm2, xp.asarray(done)

    def keep(x: Array) -> tuple:
        return st.f, st.g, st.H, st.edm, xp.asarray(False)

    f2, g2, H2, edm, done = ops.cond(accept, fresh, keep, x_new)
    # a rejected step (or no positive-definite damped matrix) raises the damping
    lam_reject = xp.where(ok, st.lam, xp.maximum(st.lam, 1e-8)) * cfg.lam_up
    lam = xp.where(
        accept, update_damping(xp, st.lam, rho, cfg), xp.minimum(lam_reject, cfg.lam_max)
    )
    nreject = xp.where(accept, 0, st.nreject + 1)
    nfev = st.nfev + xp.where(moved, 1, 0) + xp.where(accept, 1, 0)
    converged = accept & done
    stuck = ~accept & ((nreject >= cfg.max_reject) | (lam >= cfg.lam_max))
    # no lower point: precision is exhausted; below the goal that is converged
    stuck_status = xp.where(edm < cfg.tol_errordef, int(Status.CONVERGED), int(Status.NO_STEP))
    status = xp.where(converged, int(Status.CONVERGED), xp.where(stuck, stuck_status, RUNNING))
    status = xp.where((status == RUNNING) & (nfev >= cfg.maxfev), int(Status.MAXITER), status)
    return LMState(
        x=ops.where(accept, x_new, st.x),
        f=f2,
        g=g2,
        H=H2,
        lam=lam,
        edm=edm,
        niter=st.niter + xp.where(accept, 1, 0),
        nreject=nreject,
        nfev=nfev,
        status=xp.where(st.status == RUNNING, status, st.status),
        scale=st.scale,
    )


def lm_postprocess(ops: ArrayOps, st: LMState) -> Outcome:
    """The end of a damped-Hessian solve: the state's point, derivatives and EDM."""
    xp = ops.xp
    return Outcome(
        x=st.x,
        f=st.f,
        g=st.g,
        H=st.H,
        edm=st.edm,
        status=st.status,
        niter=st.niter,
        nfev=st.nfev,
        njev=st.nfev,
        lam=st.lam,
        delta=xp.asarray(0.0),
    )


@dataclass(frozen=True)
class LMSolver:
    """Levenberg-Marquardt on the loss's Hessian (zfit's mode 0) as a native solver."""

    fns: HessFunctions
    ops: ArrayOps
    lower: Array
    upper: Array
    cfg: LMConfig

    def init(self, x0: Array, args: tuple) -> LMState:
        return lm_init(self.fns, self.ops, x0, self.lower, self.upper, self.cfg, args)

    def step(self, state: LMState, args: tuple) -> LMState:
        return lm_step(self.fns, self.ops, state, self.lower, self.upper, self.cfg, args)

    def terminate(self, state: LMState) -> Array:
        return state.status != RUNNING

    def postprocess(self, state: LMState, args: tuple) -> Outcome:
        return lm_postprocess(self.ops, state)


def eager_hess_functions(evaluator: Any) -> HessFunctions:
    """Value, and value-gradient-Hessian, through the evaluator (counted, budgeted, with
    non-finite values handed to the strategy)."""

    def value(x: Any, args: tuple) -> float:
        return evaluator.value(x)

    def value_gradient_hessian(x: Any, args: tuple) -> tuple:
        f, g = evaluator.value_gradient(x)
        return f, g, evaluator.hessian(x)

    return HessFunctions(value, value_gradient_hessian)


def native_hess_functions(ops: ArrayOps, value: Callable[[Any, tuple], Any]) -> HessFunctions:
    """Value and value-gradient-Hessian of ``value(x, args)`` from the backend (remembered
    on ``value``), for the compiled and batched solves."""

    def build() -> HessFunctions:
        value_and_grad = ops.value_and_grad(value)
        hessian = ops.hessian(value)

        def vgh(x: Any, args: tuple) -> tuple:
            f, g = value_and_grad(x, args)
            return f, g, hessian(x, args)

        return HessFunctions(value, vgh)

    return remembered(value, _HESS_CACHE_ATTR, type(ops).__name__, build)


_HESS_CACHE_ATTR = "__zfitlite_lm_hessian__"


def _compiled_lsq_solve(ops: Any, fns: Any, geodesic: bool, bounded: bool) -> Any:
    """``(inputs, args) -> flat outcome``: the whole least-squares solve, to be jitted.

    ``inputs`` is ``[x0, lower, upper, settings]`` in one vector (n = (size - 8) / 3) and
    the result is :func:`~.driver.pack_flat`'s vector, so a warm fit moves one array to
    the device and one back.
    """
    nset = len(LSQSettings._fields)

    def run(inputs: Any, args: tuple) -> Any:
        n = (inputs.shape[0] - nset) // 3
        x0, lo, hi = inputs[:n], inputs[n : 2 * n], inputs[2 * n : 3 * n]
        cfg = LSQSettings(*(inputs[3 * n + i] for i in range(nset)))
        return pack_flat(
            ops.xp, solve(LSQSolver(fns, ops, lo, hi, cfg, geodesic, bounded), x0, args)
        )

    return run


class LevenbergMarquardt(BaseMinimizer):
    """Levenberg-Marquardt minimizer (damped Newton on the loss's Hessian).

    Parameters
    ----------
    tol : float, optional
        Converged when ``EDM < tol * errordef`` (default 1e-3) and numerically settled
        (:mod:`zfitlite.criterion`: one or two more Newton steps near the minimum).
    mode : int, optional
        0 (default): damping ``H + lam * diag|H|`` on the loss's Hessian, zfit's mode 0.
    rho_min, rho_max : float, optional
        Gain-ratio window in which the quadratic model is trusted and the damping is
        lowered (defaults 0.1 and 2.0, as in zfit).
    verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        Options for the damped-Hessian loop (scalar losses): ``lam0`` (initial damping,
        1e-3), ``lam_up`` (11), ``lam_down`` (9), ``max_reject`` (60 consecutive rejected
        steps before giving up; shared with the least-squares loop).

        Options for least-squares losses (see :mod:`zfitlite.solvers.lm_least_squares`
        for the method and for how ``tol`` maps onto its stopping rule):
        ``use_residuals`` (True: on a :class:`~zfitlite.loss.LeastSquares` loss run the
        trust-region Gauss-Newton method on the residual Jacobian; False: the
        damped-Hessian loop on the sum of squares), ``factor`` (initial trust radius
        relative to the scaled start, 10; MINPACK's 100 lets the first step of NIST BoxBOD
        jump onto a plateau), ``xtol`` (None: 1e-8, lower for ``tol`` below 1e-6; see
        :func:`zfitlite.criterion.relative_tolerances`) and ``ftol`` (None: 1e-14, lower
        for ``tol`` below 1e-3): a fit whose EDM is below its goal goes on until the next
        Gauss-Newton step would move the parameters by at most ``xtol`` relative to their
        scaled size or the EDM is at most ``ftol`` times the residual sum (numerically
        settled, :mod:`zfitlite.criterion`), ``geodesic`` (False: add
        Transtrum-Sethna geodesic acceleration, exact on JAX, one extra residual
        evaluation per step otherwise), ``geodesic_alpha`` (0.75: the largest accepted
        ``2 |a| / |v|``), ``aim`` (0: when positive, a fit whose EDM is ``aim`` times
        below its goal also stops; a fit that stalls below its goal is still converged).

        ``linear_solver`` (``"auto"``): ``"svd"`` takes each step from a thin SVD of the
        dense Jacobian (:mod:`~zfitlite.solvers.lm_least_squares`); ``"lsmr"`` from
        iterative LSMR solves on the Jacobian, sparse or dense, with nothing ``n x n``
        formed (:mod:`~zfitlite.solvers.lm_sparse`; numpy, eager loop; no geodesic
        acceleration); ``"auto"`` takes LSMR when the Jacobian is sparse (a loss with
        ``jac_sparsity``, or a ``jacobian`` returning a ``scipy.sparse`` matrix, seen at
        its first call) or, on the numpy backend, above 1,000 parameters. ``lsmr_rtol``
        (1e-10: LSMR's tolerance for the Gauss-Newton solve that measures the EDM, once
        the EDM is within 1e4 of its goal), ``lsmr_step_rtol`` (1e-6: for the damped
        trial steps and the Gauss-Newton solves before that) and ``lsmr_maxiter`` (None:
        LSMR's default) tune the iterative solves.

        On the JAX backend, without ``callback`` and below verbosity 6, the whole
        least-squares solve runs as one compiled program (``info["loop"] ==
        "compiled"``), cached per residual function: a later fit, or a fit of
        ``LeastSquares.from_data`` with the same model and new data of the same shape,
        does not compile again. ``compile`` (``"auto"``) says when: ``"auto"`` runs the
        first fit of a residual function and data shape in the eager loop (the same
        algorithm, on the compiled residuals and Jacobian: a NIST problem's first fit
        0.08-0.2 s instead of 0.5-0.65 s) and compiles the solver on the second fit;
        ``"always"`` compiles on the first fit; ``"never"`` keeps the eager loop.

    Examples
    --------
    >>> import numpy as np, zfitlite
    >>> def chi2(x):
    ...     return (x[0] - 1.0) ** 2 + 10 * (x[1] + 2.0) ** 2
    >>> chi2.errordef = 1.0
    >>> result = zfitlite.minimize.LevenbergMarquardt(tol=1e-8).minimize(chi2, [0.0, 0.0])
    >>> np.round(result.x, 6).tolist()
    [1.0, -2.0]
    """

    _DEFAULT_NAME = "LevenbergMarquardt"
    _OPTIONS: ClassVar[dict[str, Any]] = {
        "lam0": 1e-3,
        "lam_up": 11.0,
        "lam_down": 9.0,
        "use_residuals": True,
        "factor": 10.0,
        "xtol": None,
        "ftol": None,
        "geodesic": False,
        "geodesic_alpha": 0.75,
        "aim": 0.0,
        "max_reject": 60,
        "linear_solver": "auto",
        "lsmr_rtol": 1e-10,
        "lsmr_step_rtol": 1e-6,
        "lsmr_maxiter": None,
        "compile": "auto",
    }
    SUPPORTS_BOUNDS = True

    def __init__(
        self,
        tol: float | None = None,
        mode: int | None = None,
        rho_min: float | None = None,
        rho_max: float | None = None,
        verbosity: int | None = None,
        options: dict | None = None,
        maxiter: int | str | None = None,
        criterion: Any = None,
        strategy: Any = None,
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
            options=options,
            callback=callback,
            progress=progress,
        )
        mode = 0 if mode is None else mode
        if mode != 0:
            raise ValueError(
                f"LevenbergMarquardt mode {mode!r} is not available; mode 0 is implemented"
            )
        self.mode = mode
        self.rho_min = 0.1 if rho_min is None else float(rho_min)
        self.rho_max = 2.0 if rho_max is None else float(rho_max)
        if not 0 < self.rho_min < self.rho_max:
            raise ValueError(
                f"need 0 < rho_min < rho_max, got rho_min={self.rho_min}, rho_max={self.rho_max}"
            )
        o = self.options
        if o["compile"] not in COMPILE_POLICIES:
            raise ValueError(
                f"LevenbergMarquardt: compile must be one of {COMPILE_POLICIES}, got "
                f"{o['compile']!r}"
            )
        if o["linear_solver"] not in ("auto", "svd", "lsmr"):
            raise ValueError(
                f"LevenbergMarquardt: linear_solver must be 'auto', 'svd' or 'lsmr', got "
                f"{o['linear_solver']!r}"
            )
        if not (
            o["lam0"] > 0 and o["lam_up"] > 1 and o["lam_down"] > 1 and int(o["max_reject"]) >= 1
        ):
            raise ValueError(
                f"invalid LevenbergMarquardt options {o}: need lam0 > 0, lam_up > 1, lam_down > 1, "
                "max_reject >= 1"
            )

    def vectorised_core(self, kind: str, has_bounds: bool) -> str | None:
        """``"lm"`` (the residual method) on a least-squares loss with ``use_residuals``,
        else ``"lm_hessian"`` (the damped-Hessian method on the loss value); both honour
        bounds."""
        return "lm" if kind == "lsq" and self.options["use_residuals"] else "lm_hessian"

    def _extra_settings(self) -> dict[str, Any]:
        return {"mode": self.mode, "rho_min": self.rho_min, "rho_max": self.rho_max}

    def _config(self) -> LMConfig:
        o = self.options
        return LMConfig(
            self.rho_min,
            self.rho_max,
            float(o["lam0"]),
            float(o["lam_up"]),
            float(o["lam_down"]),
            1e20,
            float(int(o["max_reject"])),
            xtol=relative_tolerances(self.tol)[0],
            ftol=relative_tolerances(self.tol)[1],
        )

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        if evaluator.has_residuals and self.options["use_residuals"]:
            return self._minimize_least_squares(evaluator, params)
        return self._minimize_hessian(evaluator, criterion, params)

    def _lsq_settings(self, evaluator: Any, compiled: bool) -> LSQSettings:
        budget = evaluator.maxiter - evaluator.ncalls if compiled else np.inf
        nobs = observed_points(evaluator.loss, evaluator.params.values)  # masked, constraints
        return self.lsq_settings(evaluator.errordef, budget, -1.0 if nobs is None else nobs)

    def lsq_settings(self, errordef: float, maxfev: float, nobs: float = -1.0) -> LSQSettings:
        """The numbers of one least-squares solve (also used by ``minimize_batch``;
        ``nobs``: the observed residuals, < 0 when every residual counts)."""
        o = self.options
        xtol, ftol = relative_tolerances(self.tol)
        return LSQSettings(
            self.tol * errordef,
            xtol if o["xtol"] is None else float(o["xtol"]),
            float(o["aim"]),
            float(maxfev),
            float(o["max_reject"]),
            float(o["factor"]),
            float(o["geodesic_alpha"]),
            float(nobs),
            ftol if o["ftol"] is None else float(o["ftol"]),
        )

    def _minimize_least_squares(self, evaluator: Any, params: Any) -> SolverOutput:
        """Trust-region Gauss-Newton on the residual Jacobian (one loop, eager or compiled)."""
        geodesic = bool(self.options["geodesic"])
        compiled = evaluator.compiled
        ops = get_backend(compiled.backend).ops
        residuals_args = compiled.native.get("residuals_args")
        x0 = params.values.copy()
        lower, upper = params.lower, params.upper
        solver_choice = self.options["linear_solver"]
        if solver_choice == "lsmr" or (solver_choice == "auto" and lm_sparse.iterative(evaluator)):
            return lm_sparse.minimize_sparse(self, evaluator, params)
        run, call = None, ()
        if (
            ops.compiles
            and residuals_args is not None
            and self.callback is None
            and self.verbosity < 6
        ):
            cfg = self._lsq_settings(evaluator, compiled=True)
            # one vector in (start, bounds, settings), one vector out: one copy each way
            inputs = np.concatenate([x0, lower, upper, np.asarray(cfg, dtype=np.float64)])
            call = (inputs, compiled.native["args"])
            run = jit_on_repeat(
                ops,
                residuals_args,
                ("lm_solve", ops.name, geodesic, params.has_bounds),
                lambda: _compiled_lsq_solve(
                    ops, native_functions(ops, residuals_args), geodesic, params.has_bounds
                ),
                (inputs.shape[0], compiled.native["args_signature"]),
                self.options["compile"],
            )
        if run is not None:
            try:
                # one compiled loop: a Ctrl-C is only seen once it returns (then the result
                # is INTERRUPTED at the best point known before the loop, the start)
                flat = run(*call)
                out = unpack_flat(flat, x0.shape[0])
            except (KeyboardInterrupt, MaximumIterationReached):
                raise
            except Exception as exc:
                # tracing the user's residuals failed: say which loss and what to do
                raise evaluator.wrap_error(
                    exc, "residuals (compiled Levenberg-Marquardt)", x0
                ) from exc
            evaluator.add_counts(nres=out.nfev, njac=out.njev, x=out.x, value=out.f)
            mode = "compiled"
        else:
            cfg = self._lsq_settings(evaluator, compiled=False)
            seen: list = []
            solver = LSQSolver(
                lm_sparse.detecting(
                    evaluator, eager_functions(evaluator, geodesic), seen, solver_choice
                ),
                numpy_ops,
                lower,
                upper,
                cfg,
                geodesic,
                params.has_bounds,
            )
            try:
                out = unpack(pack(np, solve(solver, x0, (), self._lsq_reporter())))
            except lm_sparse.SparseJacobianSeen as sig:  # the first Jacobian is sparse
                r0 = seen[1] if seen and np.array_equal(seen[0], sig.x) else None
                fns = lm_sparse.seeded(
                    lm_sparse.eager_sparse_functions(evaluator), sig.x, r0, sig.J
                )
                return lm_sparse.minimize_sparse(self, evaluator, params, fns)
            mode = "eager"
        extras = {
            "lambda": out.lam,
            "trust_radius": out.delta,
            "method": "gauss-newton",
            "loop": mode,
            "geodesic": geodesic,
        }
        # the Gauss-Newton Hessian 2 J^T J is positive semi-definite by construction
        return self._native_output(out, evaluator, x0, "residuals", extras, hessian_psd=True)

    def _lsq_reporter(self) -> Any:
        """The eager loop's per-step report: once per accepted step (after the first
        Jacobian), or None when nobody listens (then the loop runs as ``while_loop``)."""
        if not self._listening():
            return None
        reported = [-1]

        def report(st: Any) -> None:
            if st.njev > 0 and int(st.niter) != reported[0]:
                reported[0] = int(st.niter)
                self._report_lsq(st)

        return report

    def _report_lsq(self, st: Any) -> None:
        self._report(
            IterationState(
                int(st.niter),
                np.array(st.x),
                float(st.f),
                float(st.edm),
                {"lambda": float(st.lam), "trust_radius": float(st.delta)},
            )
        )

    def _minimize_hessian(self, evaluator: Any, criterion: Any, params: Any) -> SolverOutput:
        """zfit's mode 0: damped Newton on the loss's Hessian, through the one driver."""
        cfg = self._config()._replace(tol_errordef=criterion.goal)
        solver = LMSolver(
            eager_hess_functions(evaluator), numpy_ops, params.lower, params.upper, cfg
        )
        report: Callable[[LMState], None] | None = None
        if self._listening():
            reported = [-1]

            def report_state(st: LMState) -> None:
                if int(st.niter) != reported[0]:
                    reported[0] = int(st.niter)
                    self._report(
                        IterationState(
                            int(st.niter),
                            np.array(st.x),
                            float(st.f),
                            float(st.edm),
                            {"lambda": float(st.lam)},
                        )
                    )

            report = report_state
        x0 = params.values.copy()
        out = unpack(pack(np, solve(solver, x0, (), report)))
        return self._native_output(out, evaluator, x0, "value", {"lambda": out.lam}, invert=False)
