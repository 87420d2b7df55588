"""A native BFGS quasi-Newton method: pure functions over an explicit state.

Written with the operations of an :class:`~zfitlite.backends.ops.ArrayOps` only, like
:mod:`zfitlite.solvers.lm_least_squares`, so the whole solve compiles into one program
on JAX and vectorises under ``vmap`` (used by :func:`zfitlite.minimize_batch` for scalar
losses). Each iteration takes the quasi-Newton direction ``p = -Hinv g`` (steepest
descent when that is not a descent direction), a backtracking Armijo line search with
safeguarded quadratic interpolation, and the BFGS update of the inverse Hessian (skipped
when the curvature ``s.y`` is not safely positive; the first update rescales the start
matrix by ``s.y / y.y``, Nocedal & Wright eq. 6.20).

Convergence keeps zfit's meaning: the EDM ``g^T Hinv g / 2`` below ``tol * errordef``;
once below it the loop goes on until the fit is numerically settled
(:mod:`zfitlite.criterion`'s rule: the next quasi-Newton step changes no parameter by more
than ``xtol`` relative, or the EDM is at most ``ftol |f|``). A line search that finds no decrease resets the inverse Hessian once; a second
failure in a row ends the fit (converged if the EDM is below the goal, ``NO_STEP``
otherwise). :func:`bfgs_finish` adds the exact Hessian at the end point, from which the
reported EDM and the covariance are computed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeAlias

import numpy as np

from ..backends.ops import ArrayOps, numpy_ops, remembered
from ..criterion import FTOL_REL, XTOL_REL, relative_tolerances, singular_hessian, step_settled
from ..status import RUNNING, Status
from .base import BaseMinimizer, IterationState, SolverOutput
from .driver import Outcome, pack, solve, unpack

__all__ = [
    "BFGS",
    "BFGSFunctions",
    "BFGSSettings",
    "BFGSSolver",
    "BFGSState",
    "bfgs_init",
    "bfgs_postprocess",
    "bfgs_step",
    "native_bfgs_functions",
]

_BFGS_CACHE_ATTR = "__zfitlite_bfgs__"

#: An array of the solver's namespace: numpy, or a traced JAX array inside a program.
Array: TypeAlias = Any


class BFGSSettings(NamedTuple):
    """The numbers of one solve (traced on JAX: changing them never recompiles)."""

    tol_errordef: float  # tol * errordef
    aim: float  # when positive, EDM < aim * tol_errordef also ends the fit
    maxfev: float  # budget of value-and-gradient evaluations
    c1: float = 1e-4  # Armijo constant
    max_backtrack: float = 40.0  # line-search trials per iteration
    xtol: float = XTOL_REL  # numerically settled: the step is at most xtol relative
    ftol: float = FTOL_REL  # ... or the EDM is at most ftol * |f| (zfitlite.criterion)


@dataclass(frozen=True, eq=False)
class BFGSFunctions:
    """``value_and_grad(x, args)`` and ``hessian(x, args)`` of a scalar loss (compared by identity)."""

    value_and_grad: Callable[[Any, tuple], Any]
    hessian: Callable[[Any, tuple], Any]
    ops: ArrayOps | None = None


class BFGSState(NamedTuple):
    """Everything that changes during a BFGS run."""

    x: Array  # (n,) the current point
    f: Array  # the loss at x
    g: Array  # (n,) its gradient
    Hinv: Array  # (n, n) the quasi-Newton inverse Hessian
    edm: Array  # g^T Hinv g / 2
    niter: Array  # int: accepted steps
    nfev: Array  # int: value-and-gradient evaluations
    nfail: Array  # int: consecutive failed line searches
    status: Array  # int: RUNNING or a Status value
    scale: Array  # (n,) each parameter's size for the relative step test (its start)


def native_bfgs_functions(ops: ArrayOps, value: Callable[[Any, tuple], Any]) -> BFGSFunctions:
    """Value-and-gradient and Hessian of ``value(x, args)`` from the backend, remembered on ``value``."""
    return remembered(
        value,
        _BFGS_CACHE_ATTR,
        type(ops).__name__,
        lambda: BFGSFunctions(ops.value_and_grad(value), ops.hessian(value), ops),
    )


def bfgs_init(
    fns: BFGSFunctions, ops: ArrayOps, x0: Any, cfg: BFGSSettings, args: tuple
) -> BFGSState:
    """The state at ``x0``: value, gradient, unit inverse Hessian."""
    xp = ops.xp
    f, g = fns.value_and_grad(x0, args)
    n = x0.shape[0]
    Hinv = xp.eye(n)
    finite = xp.isfinite(f) & xp.all(xp.isfinite(g))
    zero = xp.asarray(0)
    return BFGSState(
        x=x0,
        f=f,
        g=g,
        Hinv=Hinv,
        edm=0.5 * g @ g,
        niter=zero,
        nfev=1 + zero,
        nfail=zero,
        status=xp.where(finite, RUNNING, int(Status.NONFINITE)),
        scale=xp.abs(x0),
    )


def _line_search(
    fns: BFGSFunctions, ops: ArrayOps, st: BFGSState, p: Any, cfg: BFGSSettings, args: tuple
) -> tuple:
    """Backtracking Armijo search along ``p``: ``(ok, alpha, f_new, g_new, trials)``."""
    xp = ops.xp
    gp = st.g @ p

    def body(c: tuple) -> tuple:
        k, alpha = c[0], c[1]
        f_try, g_try = fns.value_and_grad(st.x + alpha * p, args)
        finite = xp.isfinite(f_try) & xp.all(xp.isfinite(g_try))
        ok = finite & (f_try <= st.f + cfg.c1 * alpha * gp)
        # quadratic interpolation of f along p, kept within [0.1, 0.5] of the last trial
        denom = 2.0 * (f_try - st.f - gp * alpha)
        quad = -gp * alpha * alpha / xp.where(finite & (denom > 0), denom, 1.0)
        quad = xp.where(finite & (denom > 0), quad, 0.1 * alpha)
        nxt = xp.clip(quad, 0.1 * alpha, 0.5 * alpha)
        return k + 1, xp.where(ok, alpha, nxt), ok, f_try, g_try

    def more(c: tuple) -> Any:
        return (~c[2]) & (c[0] < cfg.max_backtrack)

    init = (0 * st.niter, xp.asarray(1.0), xp.asarray(False), st.f, st.g)
    k, alpha, ok, f_new, g_new = ops.while_loop(more, body, init)
    return ok, alpha, f_new, g_new, k


def bfgs_step(
    fns: BFGSFunctions, ops: ArrayOps, st: BFGSState, cfg: BFGSSettings, args: tuple
) -> BFGSState:
    """One iteration: direction, line search, inverse-Hessian update, new status."""
    xp = ops.xp
    n = st.x.shape[0]
    eye = xp.eye(n)
    p = -(st.Hinv @ st.g)
    descent = st.g @ p < 0
    p = xp.where(descent, p, -st.g)
    Hinv = xp.where(descent, st.Hinv, eye)
    ok, alpha, f_new, g_new, trials = _line_search(fns, ops, st, p, cfg, args)
    s = alpha * p
    # a step too small to change x (precision exhausted) is no progress: a failed search
    ok = ok & xp.any(st.x + s != st.x)
    y = g_new - st.g
    sy = s @ y
    curvature = ok & (sy > 1e-10 * xp.sqrt((s @ s) * (y @ y)))
    safe_sy = xp.where(curvature, sy, 1.0)
    # the first update rescales the start matrix (Nocedal & Wright 6.20)
    scale = xp.where((st.niter == 0) & curvature, sy / xp.where(curvature, y @ y, 1.0), 1.0)
    H0 = Hinv * scale
    rho = 1.0 / safe_sy
    A = eye - rho * xp.outer(s, y)
    H_upd = A @ H0 @ A.T + rho * xp.outer(s, s)
    H_new = xp.where(curvature, H_upd, Hinv)
    x_new = xp.where(ok, st.x + s, st.x)
    f_next = xp.where(ok, f_new, st.f)
    g_next = xp.where(ok, g_new, st.g)
    # a failed search restarts from steepest descent once
    H_next = xp.where(ok, H_new, eye)
    edm = 0.5 * g_next @ (H_next @ g_next)
    nfail = xp.where(ok, 0, st.nfail + 1)
    new = BFGSState(
        x=x_new,
        f=f_next,
        g=g_next,
        Hinv=H_next,
        edm=xp.where(ok, edm, st.edm),
        niter=st.niter + xp.where(ok, 1, 0),
        nfev=st.nfev + trials,
        nfail=nfail,
        status=st.status,
        scale=st.scale,
    )
    # zfitlite.criterion's rule: below the goal and numerically settled (the next
    # quasi-Newton step is relatively tiny, or the EDM is at most ftol |f|)
    precise = step_settled(
        xp, new.Hinv @ new.g, new.x, st.scale, new.edm, new.f, cfg.xtol, cfg.ftol
    )
    converged = (
        ((new.edm < cfg.tol_errordef) & precise)
        | (new.edm < cfg.aim * cfg.tol_errordef)
        | (new.edm == 0)
    )
    stuck = nfail >= 2
    status = xp.where(converged, int(Status.CONVERGED), RUNNING)
    status = xp.where(
        (status == RUNNING) & stuck,
        xp.where(new.edm < cfg.tol_errordef, int(Status.CONVERGED), int(Status.NO_STEP)),
        status,
    )
    status = xp.where((status == RUNNING) & (new.nfev >= cfg.maxfev), int(Status.MAXITER), status)
    return new._replace(status=xp.where(st.status == RUNNING, status, st.status))


def bfgs_postprocess(
    fns: BFGSFunctions, ops: ArrayOps, st: BFGSState, cfg: BFGSSettings, args: tuple
) -> Outcome:
    """The finishing step: the exact Hessian at the end point, the EDM from it, the status.

    Where the Hessian is not positive definite (or not finite) the EDM falls back to the
    quasi-Newton estimate. A converged fit whose exact EDM is not below ``tol * errordef``
    is ``NOT_CONVERGED``; one whose Hessian is singular is ``SINGULAR``.
    """
    xp = ops.xp
    H = fns.hessian(st.x, args)
    finite = xp.all(xp.isfinite(H))
    step = xp.linalg.solve(xp.where(finite, H, xp.eye(st.x.shape[0])), st.g)
    edm_exact = 0.5 * st.g @ step
    usable = finite & xp.isfinite(edm_exact) & (edm_exact >= 0)
    edm = xp.where(usable, edm_exact, st.edm)
    conv = st.status == int(Status.CONVERGED)
    status = xp.where(conv & ~(edm < cfg.tol_errordef), int(Status.NOT_CONVERGED), st.status)
    singular = singular_hessian(xp, H)
    status = xp.where((status == int(Status.CONVERGED)) & singular, int(Status.SINGULAR), status)
    return Outcome(
        x=st.x,
        f=st.f,
        g=st.g,
        H=H,
        edm=edm,
        status=status,
        niter=st.niter,
        nfev=st.nfev,
        njev=st.nfev,
        lam=xp.asarray(0.0),
        delta=xp.asarray(0.0),
    )


@dataclass(frozen=True)
class BFGSSolver:
    """The native BFGS as a native solver for :func:`.driver.solve` (no bounds)."""

    fns: BFGSFunctions
    ops: ArrayOps
    cfg: BFGSSettings

    def init(self, x0: Array, args: tuple) -> BFGSState:
        return bfgs_init(self.fns, self.ops, x0, self.cfg, args)

    def step(self, state: BFGSState, args: tuple) -> BFGSState:
        return bfgs_step(self.fns, self.ops, state, self.cfg, args)

    def terminate(self, state: BFGSState) -> Array:
        return state.status != RUNNING

    def postprocess(self, state: BFGSState, args: tuple) -> Outcome:
        return bfgs_postprocess(self.fns, self.ops, state, self.cfg, args)


def eager_bfgs_functions(evaluator: Any) -> BFGSFunctions:
    """Value-and-gradient and Hessian through the evaluator (counted, budgeted, and a
    non-finite value handed to the strategy), for the eager loop."""

    def value_and_grad(x: Any, args: tuple) -> tuple[float, np.ndarray]:
        return evaluator.value_gradient(x)

    def hessian(x: Any, args: tuple) -> np.ndarray:
        return evaluator.hessian(x)

    return BFGSFunctions(value_and_grad, hessian, numpy_ops)


class BFGS(BaseMinimizer):
    """zfitlite's own BFGS quasi-Newton method (no bounds), vectorised by ``minimize_batch``.

    The same algorithm runs a single fit (an eager loop through the evaluator) and, on
    JAX losses, every member of a :func:`~zfitlite.minimize_batch` at once (``vmap`` of
    the same pure functions, compiled once). Converged means ``EDM < tol * errordef``
    with the exact Hessian at the end point.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback, progress
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``aim`` (0: when positive, a fit whose EDM is ``aim`` times below its goal also
        stops; by default it goes on until numerically settled, :mod:`zfitlite.criterion`),
        ``c1`` (1e-4, the Armijo constant), ``max_backtrack`` (40 line-search trials).

    Examples
    --------
    >>> import numpy as np, zfitlite
    >>> def nll(x):
    ...     return 0.5 * ((x[0] + 0.5) / 2.0) ** 2 + 0.5 * (x[1] - 1.5) ** 2
    >>> nll.errordef = 0.5
    >>> fit = zfitlite.minimize.BFGS(tol=1e-8).minimize(nll, [0.0, 0.0])
    >>> fit.valid, np.round(fit.x, 3).tolist()
    (True, [-0.5, 1.5])
    """

    _DEFAULT_NAME = "BFGS"
    _OPTIONS: ClassVar[dict[str, Any]] = {"aim": 0.0, "c1": 1e-4, "max_backtrack": 40}
    SUPPORTS_BOUNDS = False

    def vectorised_core(self, kind: str, has_bounds: bool) -> str | None:
        """``"bfgs"``: this class is the native core (bounded losses are refused)."""
        return None if has_bounds else "bfgs"

    def bfgs_settings(self, errordef: float, maxfev: float) -> BFGSSettings:
        """The numbers of one solve (also used by ``minimize_batch``)."""
        o = self.options
        return BFGSSettings(
            tol_errordef=self.tol * errordef,
            aim=float(o["aim"]),
            maxfev=float(maxfev),
            c1=float(o["c1"]),
            max_backtrack=float(o["max_backtrack"]),
            xtol=relative_tolerances(self.tol)[0],
            ftol=relative_tolerances(self.tol)[1],
        )

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        cfg = self.bfgs_settings(evaluator.errordef, np.inf)  # the evaluator keeps the budget
        solver = BFGSSolver(eager_bfgs_functions(evaluator), numpy_ops, cfg)
        report: Callable[[BFGSState], None] | None = None
        if self._listening():

            def report_state(st: BFGSState) -> None:
                self._report(
                    IterationState(int(st.niter), np.array(st.x), float(st.f), float(st.edm))
                )

            report = report_state

        x0 = params.values.copy()
        out = unpack(pack(np, solve(solver, x0, (), report)))
        return self._native_output(out, evaluator, x0, "value", {"method": "bfgs", "loop": "eager"})
