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

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import scipy.linalg

from ..backends import get_backend
from ..backends.ops import numpy_ops, remembered_jit
from ..criterion import bounded_edm, free_mask, parameter_scale, point_settled, relative_tolerances
from ..exceptions import MaximumIterationReached
from ..status import Status
from .base import BaseMinimizer, IterationState, SolverOutput
from .lm_least_squares import (
    LSQSettings,
    eager_functions,
    finish_status,
    native_functions,
    pack,
    solve_compiled,
    solve_eager,
    unpack,
)

__all__ = ["LMState", "LevenbergMarquardt"]


@dataclass(frozen=True)
class LMState:
    """Everything that changes during a Levenberg-Marquardt run."""

    x: np.ndarray
    f: float
    g: np.ndarray
    H: np.ndarray
    lam: float
    edm: float
    niter: int = 0
    nreject: int = 0


@dataclass(frozen=True)
class LMConfig:
    """The numbers that define the damping schedule."""

    rho_min: float
    rho_max: float
    lam0: float
    lam_up: float
    lam_down: float
    lam_max: float
    max_reject: int


def damping_scale(H: np.ndarray) -> np.ndarray:
    """Marquardt's diagonal ``|diag H|``, floored so that no direction is undamped."""
    d = np.abs(np.diag(H))
    floor = max(d.max(initial=0.0) * 1e-12, 1e-300)
    return np.where(
        np.isfinite(d) & (d > floor), d, max(floor, 1.0 if d.max(initial=0.0) == 0 else floor)
    )


def damped_step(g: np.ndarray, H: np.ndarray, lam: float) -> np.ndarray | None:
    """Solve ``(H + lam * D) h = -g``; None when the damped matrix is not positive definite."""
    A = H + lam * np.diag(damping_scale(H))
    try:
        c = scipy.linalg.cho_factor(A)
    except (np.linalg.LinAlgError, ValueError):
        return None
    h = -scipy.linalg.cho_solve(c, g)
    return h if np.all(np.isfinite(h)) else None


def bounded_step(g: np.ndarray, H: np.ndarray, lam: float, free: np.ndarray) -> np.ndarray | None:
    """:func:`damped_step` in the subspace of the free parameters (zero for the others)."""
    h = np.zeros_like(g)
    if not free.any():
        return h
    sub = damped_step(g[free], H[np.ix_(free, free)], lam)
    if sub is None:
        return None
    h[free] = sub
    return h


def predicted_reduction(g: np.ndarray, H: np.ndarray, h: np.ndarray) -> float:
    """Reduction of the loss predicted by the quadratic model, ``-(g.h + h.H.h / 2)``."""
    return float(-(g @ h + 0.5 * h @ H @ h))


def update_damping(lam: float, rho: float, cfg: LMConfig) -> float:
    """The damping after an accepted step with gain ratio ``rho``."""
    if rho < cfg.rho_min:
        return min(lam * cfg.lam_up, cfg.lam_max)
    if rho <= cfg.rho_max:
        return max(lam / cfg.lam_down, 1e-15)
    return lam


def _singular(J: np.ndarray, D: np.ndarray) -> bool:
    """True when the scaled Jacobian has lost rank: some direction no longer moves the loss."""
    if not np.all(np.isfinite(J)) or J.size == 0:
        return True
    s = np.linalg.svd(J / D, compute_uv=False)
    return bool(s[-1] <= s[0] * 1e3 * np.finfo(float).eps)


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

        On the JAX backend, without ``callback`` and below verbosity 6, the whole
        least-squares solve runs as one compiled program (``info["loop"] ==
        "compiled"``), cached per residual function: a second fit, or a fit of
        ``LeastSquares.from_data`` with the same model and new data of the same shape,
        does not compile again.

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
        if not (
            o["lam0"] > 0 and o["lam_up"] > 1 and o["lam_down"] > 1 and int(o["max_reject"]) >= 1
        ):
            raise ValueError(
                f"invalid LevenbergMarquardt options {o}: need lam0 > 0, lam_up > 1, lam_down > 1, "
                "max_reject >= 1"
            )

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
            int(o["max_reject"]),
        )

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        if evaluator.has_residuals and self.options["use_residuals"]:
            return self._minimize_least_squares(evaluator, params)
        return self._minimize_hessian(evaluator, criterion, params)

    def _lsq_settings(self, evaluator: Any, compiled: bool) -> LSQSettings:
        budget = evaluator.maxiter - evaluator.ncalls if compiled else np.inf
        return self.lsq_settings(evaluator.errordef, budget)

    def lsq_settings(self, errordef: float, maxfev: float) -> LSQSettings:
        """The numbers of one least-squares solve (also used by ``minimize_batch``)."""
        o = self.options
        return LSQSettings(
            tol_errordef=self.tol * errordef,
            xtol=relative_tolerances(self.tol)[0] if o["xtol"] is None else float(o["xtol"]),
            aim=float(o["aim"]),
            maxfev=float(maxfev),
            max_reject=float(o["max_reject"]),
            factor=float(o["factor"]),
            geodesic_alpha=float(o["geodesic_alpha"]),
            ftol=relative_tolerances(self.tol)[1] if o["ftol"] is None else float(o["ftol"]),
        )

    def _minimize_least_squares(self, evaluator: Any, params: Any) -> SolverOutput:
        """Trust-region Gauss-Newton on the residual Jacobian (one loop, eager or compiled)."""
        geodesic = bool(self.options["geodesic"])
        compiled = evaluator.compiled
        ops = get_backend(compiled.backend).ops
        residuals_args = compiled.native.get("residuals_args")
        x0 = params.values.copy()
        lower, upper = params.lower, params.upper
        if (
            ops.compiles
            and residuals_args is not None
            and self.callback is None
            and self.verbosity < 6
        ):
            cfg = self._lsq_settings(evaluator, compiled=True)
            fns = native_functions(ops, residuals_args)
            solve = remembered_jit(
                ops,
                residuals_args,
                ("lm_solve", ops.name, geodesic),
                lambda: (
                    lambda x0, lo, hi, cfg, args: solve_compiled(
                        (fns, geodesic), x0, lo, hi, cfg, args, ops
                    )
                ),
            )
            try:
                # one compiled loop: a Ctrl-C is only seen once it returns (then the result
                # is INTERRUPTED at the best point known before the loop, the start)
                packed = solve(x0, lower, upper, cfg, compiled.native["args"])
            except (KeyboardInterrupt, MaximumIterationReached):
                raise
            except Exception as exc:
                # tracing the user's residuals failed: say which loss and what to do
                raise evaluator.wrap_error(
                    exc, "residuals (compiled Levenberg-Marquardt)", x0
                ) from exc
            st = unpack(packed)
            evaluator.add_counts(nres=st.nfev, njac=st.njev, x=st.x, value=st.f)
            mode = "compiled"
        else:
            cfg = self._lsq_settings(evaluator, compiled=False)
            final = solve_eager(
                eager_functions(evaluator),
                numpy_ops,
                x0,
                lower,
                upper,
                cfg,
                geodesic,
                self._report_lsq,
            )
            st = unpack(pack(np, final))
            mode = "eager"
        if st.status == Status.NONFINITE:
            # the start is not finite: the strategy decides (DefaultStrategy raises)
            self.strategy.handle_nonfinite("residuals", x0, st.f, evaluator.record)
        status = finish_status(st, cfg)
        if status is Status.MAXITER:
            raise MaximumIterationReached(f"maxiter={evaluator.maxiter} evaluations reached")
        J, r = st.J, st.r
        if status is Status.CONVERGED and _singular(J, st.D):
            status = Status.SINGULAR
        H = 2.0 * J.T @ J
        try:
            inv = np.linalg.inv(H)
        except np.linalg.LinAlgError:
            inv = None
        return SolverOutput(
            x=st.x,
            fmin=st.f,
            status=status,
            niter=st.niter,
            edm=st.edm,
            gradient=2.0 * J.T @ r,
            hessian=H,
            inv_hessian=inv,
            extras={
                "lambda": st.lam,
                "trust_radius": st.delta,
                "method": "gauss-newton",
                "loop": mode,
                "geodesic": geodesic,
            },
        )

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
        """zfit's mode 0: damped Newton on the loss's Hessian (the one loop for scalar losses)."""
        cfg = self._config()
        goal = criterion.goal
        lower, upper = params.lower, params.upper
        x = params.values.copy()
        f, g = evaluator.value_gradient(x)
        H = evaluator.hessian(x)
        state = LMState(
            x=x, f=f, g=g, H=H, lam=cfg.lam0, edm=bounded_edm(g, H, free_mask(x, g, lower, upper))
        )
        status = Status.NOT_CONVERGED
        reported = -1
        while True:
            if state.niter != reported:
                self._report(
                    IterationState(
                        state.niter, state.x.copy(), state.f, state.edm, {"lambda": state.lam}
                    )
                )
                reported = state.niter
            # statistically converged and numerically settled (zfitlite.criterion's rule)
            if state.edm < goal and point_settled(
                state.g,
                state.H,
                state.x,
                state.edm,
                state.f,
                free_mask(state.x, state.g, lower, upper),
                *relative_tolerances(self.tol),
                scale=parameter_scale(params),
            ):
                status = Status.CONVERGED
                break
            h = bounded_step(state.g, state.H, state.lam, free_mask(state.x, state.g, lower, upper))
            if h is None:
                state = replace(
                    state,
                    lam=min(max(state.lam, 1e-8) * cfg.lam_up, cfg.lam_max),
                    nreject=state.nreject + 1,
                )
            else:
                x_new = np.clip(state.x + h, lower, upper)
                h = x_new - state.x
                pred = predicted_reduction(state.g, state.H, h)
                f_new = evaluator.value(x_new) if np.any(h != 0) else state.f
                if np.isfinite(f_new) and f_new < state.f and pred > 0:
                    rho = (state.f - f_new) / pred
                    f_new, g_new = evaluator.value_gradient(x_new)
                    H_new = evaluator.hessian(x_new)
                    state = LMState(
                        x=x_new,
                        f=f_new,
                        g=g_new,
                        H=H_new,
                        lam=update_damping(state.lam, rho, cfg),
                        edm=bounded_edm(g_new, H_new, free_mask(x_new, g_new, lower, upper)),
                        niter=state.niter + 1,
                        nreject=0,
                    )
                    continue
                state = replace(
                    state, lam=min(state.lam * cfg.lam_up, cfg.lam_max), nreject=state.nreject + 1
                )
            if state.nreject >= cfg.max_reject or state.lam >= cfg.lam_max:
                # no lower point: precision is exhausted; below the goal that is converged
                status = Status.CONVERGED if state.edm < goal else Status.NO_STEP
                break
        return SolverOutput(
            x=state.x,
            fmin=state.f,
            status=status,
            niter=state.niter,
            edm=state.edm,
            gradient=state.g,
            hessian=state.H,
            extras={"lambda": state.lam},
        )
