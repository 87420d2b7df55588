"""Levenberg-Marquardt on residuals: a scaled trust-region Gauss-Newton method.

For ``F(x) = sum(r(x)**2)`` each iteration solves, in scaled coordinates
``z = D x`` (``D``: the running maximum of the Jacobian's column norms, Moré 1978),

    minimise ||J h + r||^2  subject to  ||D h|| <= delta,

whose solution is the damped step ``(J^T J + lam D^2) h = -J^T r`` with ``lam = 0``
whenever the Gauss-Newton step already fits in the trust region (so close to the
minimum the method is pure Gauss-Newton and converges fast). ``lam`` is found by
Moré's safeguarded Newton iteration on ``||D h(lam)|| = delta``, done cheaply on one
thin SVD of the scaled Jacobian per accepted point: a rejected step costs one residual
evaluation and a few vector operations, never a new factorisation. The trust radius
follows MINPACK (``delta_0 = factor * ||D x_0||``; shrink by quadratic interpolation
when the gain ratio is below 1/4, double the step length above 3/4 or when the step
is pure Gauss-Newton; accept steps with ratio >= 1e-4).

Optional geodesic acceleration (Transtrum & Sethna 2012): with the velocity step
``v`` and the second directional derivative ``r''`` of the residuals along ``v``
(exact from the backend or one extra residual evaluation by finite differences),
the acceleration ``a`` solves the same damped system with ``J^T r''``; the step
``v + a/2`` is taken when ``2 ||D a|| / ||D v|| <= alpha``.

Polishing steps (structured secant, Dennis, Gay & Welsch 1981, as in NL2SOL): on a
problem whose residuals do not vanish at the minimum Gauss-Newton converges only
linearly, at the rate set by the neglected curvature ``S = sum_i r_i Hess(r_i)`` (0.6 per
iteration on NIST ENSO, MGH09, Thurber). Every accepted step updates a secant estimate of
``S`` from the Jacobians and residuals at both ends (no extra evaluation); once the fit is
statistically converged (``EDM < goal``) and the Gauss-Newton step lies inside the trust
region, the step of the augmented model ``J^T J + S`` is taken instead when its solve
(fixed-point sweeps on the loop's SVD, no new factorisation) converges and its step fits
the region too. The last steps then converge
superlinearly, so reaching the numerically settled point costs fewer evaluations. Before the
goal holds (far from the minimum, where one secant pair is a poor estimate) the step is
Levenberg-Marquardt's.

Bounds: a parameter sitting on a bound with the gradient pushing outwards is held
(its column masked out of the step), and every trial point is clipped into the box.

Convergence keeps zfit's meaning, scaled to the problem: with the Gauss-Newton
Hessian ``2 J^T J`` the EDM is ``||U^T r||^2``, the part of the residual the linear
model can still explain. Converged means

    EDM < tol * errordef * min(1, s^2),   s^2 = F / (m - n),

so converged always implies ``EDM < tol * errordef`` (zfit's rule), and on a problem
whose residual sum is tiny (NIST Lanczos1: 1e-25) the goal shrinks with it: lowering
``tol`` buys correct digits whatever the scale of the loss. Once below the goal the loop
goes on until the fit is numerically settled (:mod:`zfitlite.criterion`'s rule): the next
Gauss-Newton step would move the parameters by at most ``xtol`` (1e-8) relative to their
scaled size (MINPACK's xtol test), or the EDM is at most ``ftol`` (1e-14) times ``F``
(MINPACK's ftol test); near the minimum Gauss-Newton converges fast, so this costs one or
two iterations and gives the certified digits. ``aim`` (0 by default) additionally ends
a fit whose EDM is ``aim`` times below the goal. When no step
can lower the loss any more (floating-point precision is exhausted) the fit is
converged if the goal or the plain rule ``EDM < tol * errordef`` holds, ``NO_STEP``
otherwise.

Everything here is a pure function of an explicit :class:`LSQState`, written with the
operations of an :class:`~zfitlite.backends.ops.ArrayOps`: the numpy driver runs them
as an eager Python loop (whose steps are :func:`lsq_step_eager`: the same arithmetic with
Python scalars and control flow, so the same iterates at a fraction of the Python cost);
on JAX the whole solve (loop included) compiles into one program, cached per residual
function and reused for new data of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from ..backends.ops import NATIVE_CACHE_ATTR, ArrayOps, numpy_ops, remembered
from ..criterion import (
    FTOL_REL,
    SINGULAR_RTOL,
    float_max,
    float_min,
    free_mask,
    lsq_goal,
    settled,
    singular_jacobian,
)
from ..exceptions import LossOutputError
from ..status import RUNNING, Status
from .driver import Outcome

#: An array of the solver's namespace: numpy, or a traced JAX array inside a program.
Array: TypeAlias = Any

__all__ = [
    "LSQFunctions",
    "LSQSettings",
    "LSQSolver",
    "LSQState",
    "eager_functions",
    "lsq_init",
    "lsq_step",
    "lsq_step_eager",
    "native_functions",
]

_EPS = float(np.finfo(float).eps)


class LSQSettings(NamedTuple):
    """The numbers of one solve (traced arguments on JAX, so changing them never recompiles)."""

    tol_errordef: float  # tol * errordef
    xtol: float  # with EDM < goal, a Gauss-Newton step below xtol * ||D x|| ends the fit
    aim: float  # keep stepping until EDM < aim * goal
    maxfev: float  # budget of residual + Jacobian evaluations (inf: the evaluator enforces it)
    max_reject: float  # consecutive rejected steps before giving up
    factor: float  # initial trust radius, relative to ||D x0||
    geodesic_alpha: float  # acceleration accepted when 2 ||D a|| / ||D v|| <= alpha
    nobs: float = -1.0  # observed residuals for the EDM goal's s^2 (< 0: all of them)
    ftol: float = FTOL_REL  # with EDM < goal, EDM <= ftol * F also ends the fit


@dataclass(frozen=True, eq=False)
class LSQFunctions:
    """The residual functions of one problem, all taking ``(x, args)``.

    ``second_directional(x, v, r, J, args)`` is the second derivative of the residuals
    along ``v`` (needed only with geodesic acceleration). Compared by identity, so it can
    key a compiled-program cache.
    """

    residuals: Callable[[Any, tuple], Any]
    jacobian: Callable[[Any, tuple], Any]
    second_directional: Callable[..., Any] | None = None
    fd_cost: int = 0  # residual evaluations per second-directional derivative
    ops: ArrayOps | None = None  # the ops the functions were built for (native ones)


class LSQState(NamedTuple):
    """Everything that changes during a least-squares Levenberg-Marquardt run.

    Shapes for ``m`` residuals, ``n`` parameters and ``k = min(m, n)``; scalars are 0-d
    arrays (float unless said otherwise).
    """

    x: Array  # (n,) the current point
    r: Array  # (m,) residuals at x
    f: Array  # sum of squares at x
    J: Array  # (m, n) Jacobian at x
    D: Array  # (n,) Moré's scaling: running max of the column norms
    U: Array  # (m, k) thin SVD of the masked, scaled Jacobian J[:, free] / D
    s: Array  # (k,)
    Vt: Array  # (k, n)
    uf: Array  # (k,) U^T r
    edm: Array  # ||U^T r||^2
    delta: Array  # trust radius in scaled units
    lam: Array  # damping of the last step (0: pure Gauss-Newton)
    niter: Array  # int: accepted steps
    nfev: Array  # int: residual evaluations
    njev: Array  # int: Jacobian evaluations
    nreject: Array  # int: consecutive rejected steps
    status: Array  # int: RUNNING or a Status value
    S: Array  # (n, n) secant estimate of the residual curvature sum_i r_i Hess(r_i)


def _observed(xp: Any, cfg: LSQSettings, m: int) -> Any:
    """The number of observed residuals: ``cfg.nobs`` when set, else ``m``."""
    if isinstance(cfg.nobs, (int, float)):  # a number (eager loops): no array made
        return cfg.nobs if cfg.nobs >= 0 else m
    return xp.where(cfg.nobs >= 0, cfg.nobs, m)


def _factorise(ops: ArrayOps, x: Any, r: Any, J: Any, D: Any, lower: Any, upper: Any) -> tuple:
    """Scaling update, free mask, factors of the scaled free Jacobian, and the EDM."""
    xp = ops.xp
    JtJ, colsq = _gram_and_column_norms(ops, J)
    D = xp.maximum(D, xp.sqrt(colsq))
    D = ops.where(D > 0, D, 1.0)  # a column that has always been zero: unit scale
    g = r @ J
    free = free_mask(x, g, lower, upper)
    U, s, Vt, uf = _scaled_factors(ops, J, r, g, D, free, JtJ)
    uf = ops.where(_significant(s), uf, 0.0)
    return D, U, s, Vt, uf, uf @ uf


#: The factors of a tall scaled Jacobian ``A = J[:, free] / D`` come from its n x n Gram
#: matrix ``A^T A`` (one ``m n^2`` product and an ``n x n`` eigendecomposition, instead of
#: an ``m x n`` SVD) when it has at least this many rows and ``GRAM_RATIO`` times more rows
#: than columns, and is well conditioned (``s_min > GRAM_RCOND * s_max``: squaring the
#: condition number then still leaves about 8 digits in every singular value).
#: Otherwise, where rank is in doubt, the SVD of ``A`` itself. NIST's problems (m <= 250)
#: never take the Gram route.
GRAM_MIN_ROWS = 1000
GRAM_RATIO = 20
GRAM_RCOND = 1e-4


def gram_route(ops: ArrayOps, m: int, n: int) -> bool:
    """True when an ``(m, n)`` Jacobian's factors come from its Gram matrix (static, by
    shape): see :data:`GRAM_MIN_ROWS`. Batched JAX solves (``vmap``, where a ``cond`` runs
    both branches) keep the SVD."""
    vectorised = ops.compiles and ops.batched() is ops
    return m >= GRAM_MIN_ROWS and m >= GRAM_RATIO * n and n > 0 and not vectorised


def _gram_and_column_norms(ops: ArrayOps, J: Any) -> tuple[Any, Any]:
    """``(J^T J or None, squared column norms of J)``: on the Gram route the product the
    factors need, and the norms from its diagonal; elsewhere None and the norms alone."""
    if gram_route(ops, *J.shape):
        JtJ = J.T @ J
        return JtJ, ops.xp.diagonal(JtJ)
    return None, (J * J).sum(axis=0)


def _gram_project(Vt: Any, s: Any, wJtv: Any) -> Any:
    """``U^T v = V^T A^T v / s`` from Gram factors, given ``A^T v = w * (v @ J)``
    (``w``: the scaling, 0 for held columns); a zero singular value divides by one."""
    return (Vt @ wJtv) / (s + (s == 0))


def _scaled_factors(
    ops: ArrayOps, J: Any, r: Any, g: Any, D: Any, free: Any, JtJ: Any = None
) -> tuple[Any, Any, Any, Any]:
    """``U, s, Vt, U^T r`` of the scaled free Jacobian ``A = J[:, free] / D``.

    ``g = r @ J`` (known to the caller), ``free`` a mask or None (every column free) and
    ``JtJ`` the caller's ``J^T J`` if it has it. On the SVD route ``U`` is ``A``'s (m, k)
    thin factor; on the Gram route (:func:`gram_route`) no m x n array is made: the
    singular values and ``V`` come from ``eigh(A^T A)``, ``U^T r = V^T A^T r / s`` from
    the gradient, and ``U`` is an empty ``(0, n)`` array (the rest of the solver reads
    ``U`` only through :func:`_project`). Where the Gram matrix is ill conditioned, the
    SVD of ``A`` gives ``s``, ``Vt`` and ``U^T r`` instead.
    """
    xp = ops.xp
    m, n = J.shape
    w = 1.0 / D if free is None else ops.where(free, 1.0 / D, 0.0)
    if not gram_route(ops, m, n):
        U, s, Vt = ops.svd(J * w)
        return U, s, Vt, r @ U
    G = (J.T @ J if JtJ is None else JtJ) * xp.outer(w, w)
    ev, V = xp.linalg.eigh(G)
    ev, V = ev[::-1], V[:, ::-1]  # descending, as the SVD's
    s = xp.sqrt(xp.maximum(ev, 0.0))
    # a column held at its bound (w = 0) is an exact zero of G, not a doubt about the rank:
    # the condition is judged over the free columns (their singular values come first)
    nfree = (w > 0).sum()
    s_free = s[xp.maximum(nfree - 1, 0)]
    well = xp.all(xp.isfinite(ev)) & (nfree > 0) & (s_free > GRAM_RCOND * s[0])

    def gram(_: Any) -> tuple[Any, Any, Any]:
        return s, V.T, _gram_project(V.T, s, w * g)

    def svd(_: Any) -> tuple[Any, Any, Any]:
        U, s2, Vt2 = ops.svd(J * w)
        return s2, Vt2, r @ U

    s, Vt, uf = ops.cond(well, gram, svd, None)
    return xp.zeros((0, n), dtype=J.dtype), s, Vt, uf


def _project(st: LSQState, v: Any) -> Any:
    """``U^T v`` of the state's factors: ``v @ U``, or on the Gram route (``U`` empty)
    ``V^T (J^T v / D) / s`` (:func:`_gram_project`); where ``s`` is negligible the
    callers' factors drop it."""
    if st.U.shape[0] == st.J.shape[0]:
        return v @ st.U
    return _gram_project(st.Vt, st.s, (v @ st.J) / st.D)


def _significant(s: Any) -> Any:
    """Singular values that count (the others are treated as exact zeros)."""
    return s > s[0] * _EPS * 1e3


def _all_significant(s: np.ndarray) -> bool:
    """``_significant(s).all()`` on numpy, from two Python floats: ``s`` comes sorted in
    descending order (the SVD's, and the Gram route's), so its last value decides (the
    same comparison, so the same answer; a NaN compares False, as there)."""
    if s.shape[0] == 0:
        return True
    return float(s[-1]) > float(s[0]) * _EPS * 1e3


def _inverse_factors(xp: Any, s: Any, lam: Any) -> Any:
    """``s / (s^2 + lam)`` with the pseudo-inverse's zero for negligible singular values."""
    valid = _significant(s)
    return xp.where(valid, s / xp.where(valid, s * s + lam, 1.0), 0.0)


def trust_region_step(ops: ArrayOps, s: Any, uf: Any, Vt: Any, delta: Any) -> tuple[Any, Any]:
    """The scaled step ``z`` with ``||z|| <= delta`` and its damping ``lam`` (Moré's iteration).

    Follows the secular-equation solver of scipy's ``trf`` (``solve_lsq_trust_region``):
    Newton's method on ``phi(lam) = ||z(lam)|| - delta`` with safeguarding bounds.
    """
    xp = ops.xp
    valid = _significant(s)
    s_safe = ops.where(valid, s, 1.0)
    coef_gn = ops.where(valid, uf / s_safe, 0.0)
    gn_norm = xp.sqrt(coef_gn @ coef_gn)
    suf = s * uf
    full_rank = valid.all()

    def phi(lam: Any) -> tuple[Any, Any]:
        denom = s * s + lam
        denom = ops.where(denom > 0, denom, 1.0)
        p = suf / denom
        p_norm = xp.sqrt(p @ p)
        p_norm = ops.where(p_norm > 0, p_norm, 1.0)
        return p_norm - delta, -(suf * suf / denom**3).sum() / p_norm

    phi0 = gn_norm - delta
    phi0_prime = -ops.where(valid, uf * uf / s_safe**4, 0.0).sum() / ops.where(
        gn_norm > 0, gn_norm, 1.0
    )
    lam_upper = xp.sqrt(suf @ suf) / delta
    lam_lower = ops.where(
        full_rank & (phi0_prime < 0), -phi0 / xp.minimum(phi0_prime, -1e-300), 0.0
    )
    lam0 = xp.maximum(1e-3 * lam_upper, xp.sqrt(xp.maximum(lam_lower * lam_upper, 0.0)))

    def body(carry: tuple) -> tuple:
        i, lam, lo, hi, _ = carry
        lam = ops.where((lam < lo) | (lam > hi), xp.maximum(1e-3 * hi, xp.sqrt(lo * hi)), lam)
        ph, dph = phi(lam)
        hi = ops.where(ph < 0, lam, hi)
        ratio = ph / dph
        lo = xp.maximum(lo, lam - ratio)
        finished = xp.abs(ph) < 0.01 * delta
        lam = ops.where(finished, lam, lam - (ph + delta) * ratio / delta)
        return i + 1, lam, lo, hi, finished

    def more(carry: tuple) -> Any:
        return (carry[0] < 10) & ~carry[4]

    carry = (0 * s.shape[0], lam0, lam_lower, lam_upper, gn_norm <= delta)
    lam = ops.while_loop(more, body, carry)[1]
    inside = gn_norm <= delta
    lam = ops.where(inside, 0.0, lam)
    coef = ops.where(inside, coef_gn, suf / ops.where(s * s + lam > 0, s * s + lam, 1.0))
    z = -(Vt.T @ coef)
    z_norm = xp.sqrt(z @ z)
    # on the boundary, land on it exactly (the secular iteration stops within 1 %)
    z = ops.where(inside | (z_norm == 0), z, z * (delta / ops.where(z_norm > 0, z_norm, 1.0)))
    return z, lam


def lsq_init(
    fns: LSQFunctions,
    ops: ArrayOps,
    x0: Any,
    lower: Any,
    upper: Any,
    cfg: LSQSettings,
    args: tuple,
) -> LSQState:
    """The state at the start: the residuals at ``x0`` and placeholders for the rest.

    The Jacobian, its factorisation and the trust radius are filled in by the first
    :func:`lsq_step` (``njev == 0``), so the compiled program holds one copy of them.
    """
    xp = ops.xp
    r = fns.residuals(x0, args)
    f = r @ r
    m, n = r.shape[0], x0.shape[0]
    k = min(m, n)
    mu = 0 if gram_route(ops, m, n) else m  # the Gram route keeps no U
    zero = xp.asarray(0)
    status = ops.where(xp.isfinite(f), RUNNING, int(Status.NONFINITE))
    return LSQState(
        x=x0,
        r=r,
        f=f,
        J=xp.zeros((m, n)),
        D=xp.ones(n),
        U=xp.zeros((mu, k)),
        s=xp.zeros(k),
        Vt=xp.zeros((k, n)),
        uf=xp.zeros(k),
        edm=xp.asarray(np.inf),
        delta=xp.asarray(1.0),
        lam=xp.asarray(0.0),
        niter=zero,
        nfev=1 + zero,
        njev=zero,
        nreject=zero,
        status=status,
        S=xp.zeros((n, n)),
    )


def _check_done(ops: ArrayOps, st: LSQState, cfg: LSQSettings) -> Any:
    """The status after a step: RUNNING, CONVERGED, MAXITER or NO_STEP."""
    xp = ops.xp
    m, n = st.J.shape
    goal = lsq_goal(xp, cfg.tol_errordef, st.f, _observed(xp, cfg, m), n)
    xnorm = xp.sqrt(((st.D * st.x) ** 2).sum())
    # the Gauss-Newton step from here, relative to x: below xtol it hardly changes a digit
    valid = _significant(st.s)
    coef = ops.where(valid, st.uf / ops.where(valid, st.s, 1.0), 0.0)
    # statistically converged and numerically settled (zfitlite.criterion's rule)
    precise = settled(xp.sqrt(coef @ coef), xnorm, st.edm, st.f, cfg.xtol, cfg.ftol, xp)
    converged = (st.edm < cfg.aim * goal) | (st.edm == 0) | ((st.edm < goal) & precise)
    stuck = (st.nreject >= cfg.max_reject) | (st.delta <= _EPS * xnorm) | (st.delta <= 1e-300)
    status = ops.where(converged, int(Status.CONVERGED), RUNNING)
    status = ops.where((status == RUNNING) & stuck, int(Status.NO_STEP), status)
    status = ops.where(
        (status == RUNNING) & (st.nfev + st.njev >= cfg.maxfev), int(Status.MAXITER), status
    )
    return ops.where(st.status == RUNNING, status, st.status)


def lsq_step(
    fns: LSQFunctions,
    ops: ArrayOps,
    st: LSQState,
    lower: Any,
    upper: Any,
    cfg: LSQSettings,
    args: tuple,
    geodesic: bool,
) -> LSQState:
    """One trust-region iteration: a trial step, its gain ratio, and the new state.

    The first call (``njev == 0``) takes no step: it evaluates the Jacobian at the start,
    factorises it and sets the initial trust radius.
    """
    xp = ops.xp
    fresh = st.njev == 0
    z, lam = trust_region_step(ops, st.s, st.uf, st.Vt, st.delta)
    z, secant = _secant_step(ops, st, cfg, z, lam)
    h = z / st.D
    nfev = st.nfev
    if geodesic:
        assert fns.second_directional is not None, "geodesic acceleration needs r''"
        rpp = fns.second_directional(st.x, h, st.r, st.J, args)
        nfev = nfev + ops.where(fresh, 0, fns.fd_cost)
        a_scaled = -(st.Vt.T @ (_inverse_factors(xp, st.s, lam) * _project(st, rpp)))
        ratio = 2.0 * xp.sqrt(a_scaled @ a_scaled) / xp.maximum(xp.sqrt(z @ z), 1e-300)
        use = xp.isfinite(a_scaled).all() & (ratio <= cfg.geodesic_alpha) & ~secant
        h = ops.where(use, h + 0.5 * a_scaled / st.D, h)
    x_new = xp.clip(st.x + h, lower, upper)
    h = x_new - st.x
    Jh = st.J @ h
    dirder = st.r @ Jh
    pred = -2.0 * dirder - Jh @ Jh - ops.where(secant, h @ (st.S @ h), 0.0)
    tiny = ~(xp.abs(h) > 4 * _EPS * xp.abs(st.x)).any()

    def evaluate(x_new: Any) -> tuple[Any, Any]:
        r_new = fns.residuals(x_new, args)
        return r_new, r_new @ r_new

    def skip(x_new: Any) -> tuple[Any, Any]:
        return st.r, ops.where(fresh, st.f, np.inf)

    r_new, f_new = ops.cond(tiny | fresh, skip, evaluate, x_new)
    nfev = nfev + ops.where(tiny | fresh, 0, 1)
    finite = xp.isfinite(f_new)
    actred = st.f - f_new
    rho = ops.where((pred > 0) & finite, actred / ops.where(pred > 0, pred, 1.0), -1.0)
    # MINPACK's trust-radius update
    pnorm = xp.sqrt(((st.D * h) ** 2).sum())
    delta = ops.where(st.niter == 0, xp.minimum(st.delta, pnorm), st.delta)
    denom = dirder + 0.5 * actred
    temp = ops.where(actred >= 0, 0.5, 0.5 * dirder / ops.where(denom != 0, denom, -1.0))
    temp = ops.where(~finite | (f_new > 100.0 * st.f) | (temp < 0.1), 0.1, temp)
    shrunk = temp * xp.minimum(delta, pnorm / 0.1)
    grown = ops.where((lam == 0) | (rho >= 0.75), 2.0 * pnorm, delta)
    delta = ops.where(rho < 0.25, shrunk, grown)
    delta = ops.where(tiny, 0.0 * delta, delta)
    accept = fresh | ((rho >= 1e-4) & ~tiny)

    def refresh(_: Any) -> tuple:
        J_new = fns.jacobian(x_new, args)
        ok = xp.isfinite(J_new).all()
        # one selected Jacobian serves the factors, the secant update and the new state
        # (under jit the Jacobian is then computed once, not once per reader)
        J_use = ops.where(ok, J_new, st.J)
        # the scaling starts from the first Jacobian's column norms
        D_old = ops.where(fresh, 0.0 * st.D, st.D)
        fac = _factorise(ops, x_new, r_new, J_use, D_old, lower, upper)
        return ok, J_use, fac

    def keep(_: Any) -> tuple:
        return xp.asarray(False), st.J, (st.D, st.U, st.s, st.Vt, st.uf, st.edm)

    # J_new is the new Jacobian where it was accepted and finite, else the old one
    ok, J_new, (D, U, s, Vt, uf, e) = ops.cond(accept, refresh, keep, None)
    moved = accept & ok
    if ops.compiles:
        S = ops.where(moved & ~fresh, _secant_update(xp, st.S, h, st.J, st.r, J_new, r_new), st.S)
    else:  # eager: update only when it is kept
        S = _secant_update(xp, st.S, h, st.J, st.r, J_new, r_new) if moved & ~fresh else st.S
    xnorm = xp.sqrt(((D * x_new) ** 2).sum())
    delta = ops.where(fresh, cfg.factor * ops.where(xnorm > 0, xnorm, 1.0), delta)
    new = LSQState(
        x=ops.where(moved, x_new, st.x),
        r=ops.where(moved, r_new, st.r),
        f=ops.where(moved, f_new, st.f),
        J=J_new,
        D=ops.where(moved, D, st.D),
        U=ops.where(moved, U, st.U),
        s=ops.where(moved, s, st.s),
        Vt=ops.where(moved, Vt, st.Vt),
        uf=ops.where(moved, uf, st.uf),
        edm=ops.where(moved, e, st.edm),
        delta=ops.where(accept & ~ok, 0.25 * delta, delta),
        lam=lam,
        niter=st.niter + ops.where(moved & ~fresh, 1, 0),
        nfev=nfev,
        njev=st.njev + ops.where(accept, 1, 0),
        nreject=ops.where(moved, 0, st.nreject + 1),
        status=ops.where(fresh & ~ok, int(Status.NONFINITE), st.status),
        S=S,
    )
    return new._replace(status=_check_done(ops, new, cfg))


def _secant_update(xp: Any, S: Any, h: Any, J: Any, r: Any, J_new: Any, r_new: Any) -> Any:
    """The structured secant update of ``S ~ sum_i r_i Hess(r_i)`` after the step ``h``
    (Dennis, Gay and Welsch 1981, NL2SOL): ``S h = y# = (J_new - J)^T r_new`` with the
    symmetric rank-two update that is closest in the metric of ``y = J_new^T r_new - J^T r``,
    after sizing ``S`` down by ``min(1, |h^T y#| / |h^T S h|)``. Costs no evaluation: the
    Jacobians and residuals at both ends are known. Skipped when ``y^T h <= 0`` or the
    result is not finite.
    """
    ysharp = r_new @ (J_new - J)
    y = r_new @ J_new - r @ J
    ys = y @ h
    shs = h @ (S @ h)
    size = xp.minimum(1.0, xp.abs(h @ ysharp) / xp.where(shs != 0, xp.abs(shs), 1.0))
    S0 = S * xp.where(shs != 0, size, 1.0)
    w = ysharp - S0 @ h
    ys_safe = xp.where(ys > 0, ys, 1.0)
    upd = (xp.outer(w, y) + xp.outer(y, w)) / ys_safe - (w @ h) * xp.outer(y, y) / ys_safe**2
    S_new = S0 + upd
    good = (ys > 0) & xp.all(xp.isfinite(S_new))
    return xp.where(good, S_new, S)


#: Fixed-point sweeps of the polishing solve (:func:`_secant_step`).
SECANT_SWEEPS = 8


def _secant_step(ops: ArrayOps, st: LSQState, cfg: LSQSettings, z: Any, lam: Any) -> tuple:
    """The polishing step: once the fit is statistically converged (``EDM < goal``) and the
    Gauss-Newton step is inside the trust region, the Newton step of the augmented model
    ``J^T J + S`` (:func:`_secant_update`) replaces it when the solve below converges and
    its step fits in the region too. Gauss-Newton converges only linearly on a problem
    whose residuals do not vanish at the minimum (rate: the relative size of ``S``); the
    secant term makes the last steps superlinear (NL2SOL's augmented model). Returns the
    scaled step and whether it is the secant one. Nothing changes while all parameters are
    not free (a held parameter keeps the Gauss-Newton step).

    The augmented system is solved with the factors the loop already has, without a new
    factorisation (cheap to compile, and as cheap under ``vmap`` as outside it): starting
    from the Gauss-Newton step ``z0 = -(A^T A)^-1 A^T r`` (``A = J / D``, from its SVD),
    :data:`SECANT_SWEEPS` sweeps of ``z <- z0 - (A^T A)^-1 S~ z`` (``S~ = D^-1 S D^-1``).
    They converge exactly when ``S`` is small next to ``J^T J``, i.e. where Gauss-Newton is
    slow but converging -- the case the polish is for; the step is used only when the last
    sweep changed it by less than a tenth (and the gain ratio of the trust region still
    guards it).
    """
    xp = ops.xp
    m, n = st.J.shape
    goal = lsq_goal(xp, cfg.tol_errordef, st.f, _observed(xp, cfg, m), n)
    D = st.D
    full_rank = _significant(st.s).all() & (st.s.shape[0] == n)
    polishing = (st.edm < goal) & (lam == 0) & full_rank & xp.any(st.S != 0)
    if not ops.compiles and not polishing:  # eager: the sweeps below would be discarded
        return z, np.False_
    s_safe = ops.where(full_rank, st.s, 1.0)
    inv_s2 = 1.0 / (s_safe * s_safe)
    z0 = -(st.Vt.T @ (st.uf / s_safe))  # the Gauss-Newton step (scaled)
    St = st.S / D[:, None] / D[None, :]

    def more(carry: tuple) -> Any:
        return polishing & (carry[0] < SECANT_SWEEPS)

    def sweep(carry: tuple) -> tuple:
        i, za, _last = carry
        return i + 1, z0 - st.Vt.T @ (inv_s2 * (st.Vt @ (St @ za))), za

    # no sweep unless polishing (compiled, most steps; under vmap, while any member is)
    _, za, last = ops.while_loop(more, sweep, (0 * st.niter, z0, z0))
    change = xp.sqrt((za - last) @ (za - last))
    size = xp.sqrt(za @ za)
    ok = xp.isfinite(size) & (change <= 0.1 * size)
    use = polishing & ok & (size <= st.delta)
    return ops.where(use, za, z), use


def trust_update_eager(
    f: float,
    f_new: float,
    pred: float,
    dirder: float,
    pnorm: float,
    delta: float,
    lam: float,
    first: bool,
    tiny: bool,
) -> tuple[float, bool]:
    """:func:`lsq_step`'s gain ratio, MINPACK trust-radius update and acceptance test on
    Python scalars, for the eager loops (this module's and :mod:`.lm_sparse`'s).

    ``pred``: the model's predicted reduction; ``dirder = r^T J h``; ``pnorm = ||D h||``;
    ``first``: no step accepted yet (the radius starts at most at the first step's
    length); ``tiny``: the step changes no parameter. Returns the new radius and whether
    the step is accepted.
    """
    finite = math.isfinite(f_new)
    actred = f - f_new
    rho = actred / pred if (pred > 0 and finite) else -1.0
    if first:
        delta = float_min(delta, pnorm)
    denom = dirder + 0.5 * actred
    temp = 0.5 if actred >= 0 else 0.5 * dirder / (denom if denom != 0 else -1.0)
    if not finite or f_new > 100.0 * f or temp < 0.1:
        temp = 0.1
    shrunk = temp * float_min(delta, pnorm / 0.1)
    grown = 2.0 * pnorm if (lam == 0 or rho >= 0.75) else delta
    delta = shrunk if rho < 0.25 else grown
    if tiny:
        delta = 0.0 * delta
    return delta, rho >= 1e-4 and not tiny


def _sqrt(a: float) -> float:
    """``np.sqrt`` of a Python float (NaN below zero, as there, instead of an error)."""
    return math.sqrt(a) if a >= 0 else math.nan


def trust_region_step_eager(
    s: np.ndarray, uf: np.ndarray, Vt: np.ndarray, delta: float
) -> tuple[np.ndarray, float]:
    """:func:`trust_region_step` on numpy with Python scalars and control flow (the same
    arithmetic, so the same step); the secular iteration runs only while it is needed."""
    full_rank = _all_significant(s)
    coef_gn = _gauss_newton_coef(s, uf)
    gn_norm = math.sqrt(coef_gn @ coef_gn)
    if gn_norm <= delta:
        return -(Vt.T @ coef_gn), 0.0
    if not delta > 0:  # no room (the loop is about to stop): numpy's divisions by zero
        return trust_region_step(numpy_ops, s, uf, Vt, np.float64(delta))
    suf = s * uf
    s2 = s * s
    suf2 = suf * suf
    s2_min_positive = bool(s2[-1] > 0)  # s is sorted: then s^2 + lam > 0 for lam >= 0

    def phi(lam: float) -> tuple[float, float]:
        denom = s2 + lam
        if not (lam >= 0 and s2_min_positive):
            denom = np.where(denom > 0, denom, 1.0)
        p = suf / denom
        p_norm = math.sqrt(p @ p)
        p_norm = p_norm if p_norm > 0 else 1.0
        return p_norm - delta, float(-(suf2 / denom**3).sum() / p_norm)

    phi0 = gn_norm - delta
    lam_lower = 0.0  # Newton's lower bound on lam, known at full rank only
    if full_rank:
        phi0_prime = float(-(uf * uf / s**4).sum()) / (gn_norm if gn_norm > 0 else 1.0)
        if phi0_prime < 0:
            lam_lower = -phi0 / float_min(phi0_prime, -1e-300)
    lam_upper = math.sqrt(suf @ suf) / delta
    lam = float_max(1e-3 * lam_upper, _sqrt(float_max(lam_lower * lam_upper, 0.0)))
    lo, hi = lam_lower, lam_upper
    for _ in range(10):
        if lam < lo or lam > hi:
            lam = float_max(1e-3 * hi, _sqrt(lo * hi))
        ph, dph = phi(lam)
        if ph < 0:
            hi = lam
        ratio = float(np.float64(ph) / dph)  # numpy's division: dph may underflow to 0
        lo = float_max(lo, lam - ratio)
        if abs(ph) < 0.01 * delta:
            break
        lam = lam - (ph + delta) * ratio / delta
    denom = s2 + lam
    if not (lam >= 0 and s2_min_positive):
        denom = np.where(denom > 0, denom, 1.0)
    z = -(Vt.T @ (suf / denom))
    z_norm = math.sqrt(z @ z)
    if z_norm != 0:
        z = z * (delta / (z_norm if z_norm > 0 else 1.0))
    return z, lam


def _factorise_eager(
    x: np.ndarray,
    r: np.ndarray,
    J: np.ndarray,
    D: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    bounded: bool,
) -> tuple:
    """:func:`_factorise` on numpy after the first Jacobian, the EDM a Python float: the
    scaling is already positive (so it stays so: no unit fallback), without bounds every
    column is free (no free-mask test), and a full-rank ``uf`` is not re-masked."""
    JtJ, colsq = _gram_and_column_norms(numpy_ops, J)
    D = np.maximum(D, np.sqrt(colsq))  # >= the old D > 0 (J is finite)
    g = r @ J
    free = free_mask(x, g, lower, upper) if bounded else None
    U, s, Vt, uf = _scaled_factors(numpy_ops, J, r, g, D, free, JtJ)
    if not _all_significant(s):
        uf = np.where(_significant(s), uf, 0.0)
    return D, U, s, Vt, uf, float(uf @ uf)


def _gauss_newton_coef(s: np.ndarray, uf: np.ndarray) -> np.ndarray:
    """``uf / s`` over the significant singular values, 0 elsewhere (numpy)."""
    if _all_significant(s):
        return uf / s
    valid = _significant(s)
    return np.where(valid, uf / np.where(valid, s, 1.0), 0.0)


def _secant_update_eager(
    S: np.ndarray,
    h: np.ndarray,
    J: np.ndarray,
    r: np.ndarray,
    J_new: np.ndarray,
    r_new: np.ndarray,
) -> np.ndarray:
    """:func:`_secant_update` on numpy with Python scalars (the same arithmetic)."""
    ysharp = r_new @ (J_new - J)
    y = r_new @ J_new - r @ J
    ys = float(y @ h)
    shs = float(h @ (S @ h))
    S0 = S * float_min(1.0, abs(float(h @ ysharp)) / abs(shs)) if shs != 0 else S * 1.0
    w = ysharp - S0 @ h
    ys_safe = ys if ys > 0 else 1.0
    outer = w[:, None] * y  # np.outer's products, without its call
    upd = (outer + outer.T) / ys_safe - float(w @ h) * (y[:, None] * y) / (ys_safe * ys_safe)
    S_new = S0 + upd
    return S_new if ys > 0 and np.isfinite(S_new).all() else S


def status_eager(st: Any, cfg: LSQSettings, m: int, n: int, step_norm: Callable[[], float]) -> int:
    """:func:`_check_done`'s rule on Python scalars, for the eager loops (this module's
    and :mod:`.lm_sparse`'s): the same tests in the same order. ``st`` has ``status, x,
    f, D, edm, nreject, delta, nfev, njev``; ``step_norm()`` is the scaled length of the
    Gauss-Newton step, asked for only below the goal (where the settled test matters)."""
    if st.status != RUNNING:
        return int(st.status)
    goal = lsq_goal(np, cfg.tol_errordef, st.f, _observed(np, cfg, m), n)
    xnorm = math.sqrt(float(((st.D * st.x) ** 2).sum()))
    if (st.edm < cfg.aim * goal) or st.edm == 0:
        return int(Status.CONVERGED)
    if st.edm < goal and settled(step_norm(), xnorm, st.edm, st.f, cfg.xtol, cfg.ftol, np):
        return int(Status.CONVERGED)
    if st.nreject >= cfg.max_reject or st.delta <= _EPS * xnorm or st.delta <= 1e-300:
        return int(Status.NO_STEP)
    if st.nfev + st.njev >= cfg.maxfev:
        return int(Status.MAXITER)
    return RUNNING


def _check_done_eager(st: LSQState, cfg: LSQSettings) -> int:
    """:func:`_check_done` on numpy with Python control flow (:func:`status_eager`)."""

    def step_norm() -> float:
        coef = _gauss_newton_coef(st.s, st.uf)
        return math.sqrt(coef @ coef)

    m, n = st.J.shape
    return status_eager(st, cfg, m, n, step_norm)


def _first_step_eager(
    fns: LSQFunctions,
    st: LSQState,
    lower: np.ndarray,
    upper: np.ndarray,
    cfg: LSQSettings,
    args: tuple,
) -> LSQState:
    """:func:`lsq_step`'s first call (``njev == 0``) on numpy: no trial point (the zero
    step leaves the start as it is, clipped into the box), the Jacobian there, its
    factorisation and the initial trust radius ``factor * ||D x0||``."""
    x_new = np.clip(st.x, lower, upper)
    J_new = fns.jacobian(x_new, args)
    ok = bool(np.isfinite(J_new).all())
    D, U, s, Vt, uf, e = _factorise(
        numpy_ops, x_new, st.r, J_new if ok else st.J, 0.0 * st.D, lower, upper
    )
    xnorm = math.sqrt(((D * x_new) ** 2).sum())
    delta = cfg.factor * (xnorm if xnorm > 0 else 1.0)
    if ok:
        new = st._replace(
            x=x_new,
            J=J_new,
            D=D,
            U=U,
            s=s,
            Vt=Vt,
            uf=uf,
            edm=float(e),
            delta=delta,
            lam=0.0,
            njev=int(st.njev) + 1,
            nreject=0,
        )
    else:
        new = st._replace(
            delta=0.25 * delta,
            lam=0.0,
            njev=int(st.njev) + 1,
            nreject=int(st.nreject) + 1,
            status=int(Status.NONFINITE),
        )
    return new._replace(status=_check_done_eager(new, cfg))


def lsq_step_eager(
    fns: LSQFunctions,
    st: LSQState,
    lower: np.ndarray,
    upper: np.ndarray,
    cfg: LSQSettings,
    args: tuple,
    bounded: bool = True,
) -> LSQState:
    """:func:`lsq_step` for the eager numpy loop, without geodesic acceleration: the same
    arithmetic on the same values, so the same iterates.

    Written with Python control flow and Python scalars: work whose result a ``where``
    would discard is not done (the secular iteration when the Gauss-Newton step fits, the
    polishing sweeps and the secant update when they are not used, the factorisation of
    a rejected point), and the scalar bookkeeping costs no numpy calls. ``bounded=False``
    (no finite bound on any parameter) skips the clipping and the free-mask test.
    """
    if st.njev == 0:
        return _first_step_eager(fns, st, lower, upper, cfg, args)
    s, uf, Vt, D, x, r, J = st.s, st.uf, st.Vt, st.D, st.x, st.r, st.J
    f = float(st.f)
    delta0 = float(st.delta)
    z, lam = trust_region_step_eager(s, uf, Vt, delta0)
    secant = False
    if lam == 0:  # polishing needs a Gauss-Newton step
        z, use = _secant_step(numpy_ops, st, cfg, z, lam)
        secant = bool(use)
    h = z / D
    x_new = np.clip(x + h, lower, upper) if bounded else x + h
    h = x_new - x
    Jh = J @ h
    dirder = float(r @ Jh)
    pred = -2.0 * dirder - float(Jh @ Jh) - (float(h @ (st.S @ h)) if secant else 0.0)
    tiny = not (np.abs(h) > 4 * _EPS * np.abs(x)).any()
    nfev = int(st.nfev)
    if tiny:
        r_new, f_new = r, math.inf
    else:
        r_new = fns.residuals(x_new, args)
        f_new = float(r_new @ r_new)
        nfev += 1
    pnorm = math.sqrt(((D * h) ** 2).sum())
    delta, accept = trust_update_eager(
        f, f_new, pred, dirder, pnorm, delta0, lam, int(st.niter) == 0, tiny
    )
    new = None
    if accept:
        J_new = fns.jacobian(x_new, args)
        if np.isfinite(J_new).all():
            D_n, U_n, s_n, Vt_n, uf_n, e_n = _factorise_eager(
                x_new, r_new, J_new, D, lower, upper, bounded
            )
            new = st._replace(
                x=x_new,
                r=r_new,
                f=f_new,
                J=J_new,
                D=D_n,
                U=U_n,
                s=s_n,
                Vt=Vt_n,
                uf=uf_n,
                edm=e_n,
                delta=delta,
                lam=lam,
                niter=int(st.niter) + 1,
                nfev=nfev,
                njev=int(st.njev) + 1,
                nreject=0,
                S=_secant_update_eager(st.S, h, J, r, J_new, r_new),
            )
    if new is None:  # rejected, or a non-finite Jacobian at the trial point
        new = st._replace(
            delta=0.25 * delta if accept else delta,
            lam=lam,
            nfev=nfev,
            njev=int(st.njev) + (1 if accept else 0),
            nreject=int(st.nreject) + 1,
        )
    return new._replace(status=_check_done_eager(new, cfg))


_FD_GEODESIC_STEP = 0.1


def eager_functions(evaluator: Any, precise: bool = False) -> LSQFunctions:
    """Residual functions through the evaluator (counted, budgeted), for the eager loop.

    The second directional derivative is a finite difference along the step
    (Transtrum & Sethna's recipe, one extra residual evaluation). ``precise``: the
    backend's most accurate Jacobian (numpy's Richardson-extrapolated differences, not
    its plain central ones); geodesic acceleration asks for it, because the second
    difference above divides the Jacobian's error by the step.
    """

    def residuals(x: Any, args: tuple) -> Any:
        return evaluator.residuals(x)

    def jacobian(x: Any, args: tuple) -> Any:
        return evaluator.jacobian(x, precise)

    def second_directional(x: Any, v: Any, r: Any, J: Any, args: tuple) -> Any:
        t = _FD_GEODESIC_STEP
        r1 = evaluator.residuals(x + t * v)
        return (2.0 / t) * ((r1 - r) / t - J @ v)

    return LSQFunctions(residuals, jacobian, second_directional, fd_cost=1)


def native_functions(ops: ArrayOps, residuals_args: Callable) -> LSQFunctions:
    """Pure residual, Jacobian and second-directional functions for a compiled loop.

    Built from ``residuals_args(x, *args)`` with the backend's derivatives and remembered
    on that function, so every loss sharing it (``LeastSquares.from_data`` with the same
    model and new data) reuses one compiled solver.
    """
    xp = ops.xp

    def build() -> LSQFunctions:

        def residuals(x: Any, args: tuple) -> Any:
            r = xp.asarray(residuals_args(x, *args))
            if xp.iscomplexobj(r):  # static under tracing: costs nothing per call
                raise LossOutputError(
                    f"the residuals are complex ({r.dtype}); they must be real: return e.g. "
                    "the concatenation of r.real and r.imag"
                )
            return xp.reshape(r, (-1,))

        second = ops.second_directional(residuals)

        def second_directional(x: Any, v: Any, r: Any, J: Any, args: tuple) -> Any:
            return second(x, v, args)

        return LSQFunctions(residuals, ops.jacobian(residuals), second_directional, 0, ops)

    return remembered(residuals_args, NATIVE_CACHE_ATTR, ops, build)


def lsq_postprocess(ops: ArrayOps, st: LSQState, cfg: LSQSettings, bounded: bool = True) -> Outcome:
    """The finishing step: final status, Gauss-Newton gradient and Hessian, final EDM.

    A fit that cannot move but meets its goal (or zfit's rule ``EDM < tol * errordef``)
    converged; a converged fit whose scaled Jacobian has lost rank is ``SINGULAR``.
    Without bounds (``bounded=False``) no column is ever held, so the state's SVD is the
    one of ``J / D`` and the rank test reads it instead of factorising again (one SVD
    less in the compiled program).
    """
    xp = ops.xp
    m, n = st.J.shape
    goal = lsq_goal(xp, cfg.tol_errordef, st.f, _observed(xp, cfg, m), n)
    met = (st.edm < goal) | (st.edm < cfg.tol_errordef)
    status = ops.where((st.status == int(Status.NO_STEP)) & met, int(Status.CONVERGED), st.status)
    H = 2.0 * st.J.T @ st.J
    if (bounded or m == 0 or n == 0) and gram_route(ops, m, n):
        # a well-conditioned Gram matrix has full rank; only where it is not, the SVD
        G = H / xp.outer(st.D, st.D)
        ok = xp.isfinite(G).all()
        s2 = xp.linalg.eigvalsh(ops.where(ok, G, 0.0))
        well = ok & (s2[0] > GRAM_RCOND**2 * s2[-1])
        singular = ops.cond(
            well,
            lambda _: xp.asarray(False),
            lambda _: singular_jacobian(ops.svd, xp, st.J, st.D),
            None,
        )
    elif bounded or m == 0 or n == 0:
        singular = singular_jacobian(ops.svd, xp, st.J, st.D)
    else:
        # st.J is finite once a Jacobian was accepted; the first one failing is NONFINITE
        singular = ~xp.isfinite(st.J).all() | (st.s[-1] <= st.s[0] * SINGULAR_RTOL)
    status = ops.where((status == int(Status.CONVERGED)) & singular, int(Status.SINGULAR), status)
    return Outcome(
        x=st.x,
        f=st.f,
        g=2.0 * (st.r @ st.J),
        H=H,
        edm=st.edm,
        status=status,
        niter=st.niter,
        nfev=st.nfev,
        njev=st.njev,
        lam=st.lam,
        delta=st.delta,
    )


@dataclass(frozen=True)
class LSQSolver:
    """Levenberg-Marquardt on residuals as a native solver for :func:`.driver.solve`.

    Configuration (functions, ops, bounds, settings) plus the four pure functions; the
    same object runs eagerly (numpy ops), compiled and batched (JAX ops).
    """

    fns: LSQFunctions
    ops: ArrayOps
    lower: Array
    upper: Array
    cfg: LSQSettings
    geodesic: bool = False
    #: False when no parameter has a finite bound (known before the solve): the final rank
    #: test then reuses the loop's SVD (see :func:`lsq_postprocess`)
    bounded: bool = True
    #: On numpy (eager), without geodesic acceleration, the steps run
    #: :func:`lsq_step_eager` (the same iterates at a fraction of the Python cost);
    #: False: always :func:`lsq_step`
    lean: bool = True

    def init(self, x0: Array, args: tuple) -> LSQState:
        return lsq_init(self.fns, self.ops, x0, self.lower, self.upper, self.cfg, args)

    def step(self, state: LSQState, args: tuple) -> LSQState:
        if self.lean and not self.ops.compiles and not self.geodesic:
            return lsq_step_eager(
                self.fns, state, self.lower, self.upper, self.cfg, args, self.bounded
            )
        return lsq_step(
            self.fns, self.ops, state, self.lower, self.upper, self.cfg, args, self.geodesic
        )

    def terminate(self, state: LSQState) -> Array:
        return state.status != RUNNING

    def postprocess(self, state: LSQState, args: tuple) -> Outcome:
        return lsq_postprocess(self.ops, state, self.cfg, self.bounded)
