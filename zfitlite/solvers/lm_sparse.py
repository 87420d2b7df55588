"""Levenberg-Marquardt on residuals with a sparse or large Jacobian: iterative steps.

The method of :mod:`~zfitlite.solvers.lm_least_squares` (MINPACK's scaled trust region,
the same gain ratio, acceptance and radius update, the same convergence rule), with the
linear algebra done by LSMR (Fong & Saunders 2011) on the Jacobian instead of a thin SVD:
nothing ``n x n`` and nothing dense ``m x n`` is formed, so the cost of an iteration
follows the Jacobian's nonzeros. This is what scipy ``least_squares``' ``trf`` does with
``tr_solver="lsmr"`` and Ceres's iterative linear solvers.

At each accepted point, with ``A = J[:, free] / D`` (Moré's column scaling ``D``, held
parameters masked out):

* the Gauss-Newton step ``z_gn = argmin ||A z + r||`` (one LSMR solve, to a tight
  tolerance once the EDM nears its goal: :func:`gauss_newton`) gives the EDM ``||A z_gn||^2`` (the part of the residual the linear model can still
  explain: ``g^T H^-1 g / 2`` with ``g = 2 J^T r`` and the Gauss-Newton Hessian
  ``H = 2 J^T J``, exactly the dense solver's ``||U^T r||^2``) and the numerically-settled
  test (the length of ``z_gn`` against ``||D x||``);
* a step that does not fit the trust radius ``delta`` is the damped one,
  ``z(lam) = argmin ||A z + r||^2 + lam ||z||^2`` (LSMR with ``damp = sqrt(lam)``), with
  ``lam`` found by a safeguarded secant iteration on ``1 / ||z(lam)|| = 1 / delta`` to 10 %
  (MINPACK's ``lmpar`` tolerance), then scaled onto the boundary as the dense solver does.

A rejected step costs one residual evaluation and one to a few LSMR solves; an accepted
one a Jacobian and one LSMR solve more. The Jacobian may be a ``scipy.sparse`` matrix
(a loss with ``jac_sparsity`` or a ``jacobian`` returning one) or a dense array (a large
problem, where LSMR's ``m n`` products are cheaper than an ``m n^2`` SVD).

Differences from the dense solver: no geodesic acceleration and no polishing (secant)
step (both need ``n x n`` or extra solves); the fit's result holds the gradient but no
Hessian (``result.hesse()`` computes one when asked). A converged fit whose scaled
Jacobian has a null direction (one more LSMR solve at the end: :func:`has_null_direction`),
or a free parameter that no residual depends on, is ``SINGULAR``.

Everything is a pure function of an explicit :class:`SparseLSQState`, run by
:func:`.driver.solve` (numpy only: the loop is eager).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from ..backends.ops import ArrayOps, numpy_ops
from ..criterion import SINGULAR_RTOL, free_mask, lsq_goal
from ..status import RUNNING, Status
from .driver import Outcome
from .lm_least_squares import LSQSettings, status_eager, trust_update_eager
from .lm_least_squares import _observed as _dense_observed

__all__ = [
    "ITERATIVE_MIN_PARAMS",
    "NULL_FRACTION",
    "REFINE_FACTOR",
    "IterativeSettings",
    "SparseFunctions",
    "SparseJacobianSeen",
    "SparseLSQSolver",
    "SparseLSQState",
    "column_norms",
    "damped_step",
    "detecting",
    "eager_sparse_functions",
    "gauss_newton",
    "has_null_direction",
    "iterative",
    "minimize_sparse",
    "scaled_jacobian",
    "seeded",
    "sparse_init",
    "sparse_step",
]

_EPS = float(np.finfo(float).eps)


class IterativeSettings(NamedTuple):
    """The tolerances of the LSMR solves.

    ``rtol`` is LSMR's ``atol = btol`` for the Gauss-Newton solve that measures the EDM:
    the error of ``sqrt(EDM)`` is at most about ``rtol * cond(A) * ||r||``, far below the
    goal ``sqrt(tol * errordef * F / (m - n))`` for any reasonable problem.
    ``step_rtol`` is for the damped trial steps (the gain ratio guards them).
    ``maxiter`` bounds the iterations of one solve (None: LSMR's ``min(m, n)``).
    """

    rtol: float = 1e-10
    step_rtol: float = 1e-6
    maxiter: int | None = None


_DEFAULT_ITERATIVE = IterativeSettings()


@dataclass(frozen=True, eq=False)
class SparseFunctions:
    """``residuals(x) -> (m,)`` and ``jacobian(x) -> (m, n)`` (sparse or dense)."""

    residuals: Callable[[np.ndarray], np.ndarray]
    jacobian: Callable[[np.ndarray], Any]


class SparseLSQState(NamedTuple):
    """Everything that changes during a run (``m`` residuals, ``n`` parameters)."""

    x: np.ndarray  # (n,) the current point
    r: np.ndarray  # (m,) residuals at x
    f: float  # sum of squares at x
    J: Any  # (m, n) Jacobian at x: scipy.sparse CSR, or a dense array
    D: np.ndarray  # (n,) Moré's scaling: running max of the column norms
    A: Any  # (m, n) the scaled, masked Jacobian J[:, free] / D
    zgn: np.ndarray  # (n,) the scaled Gauss-Newton step at x
    edm: float  # ||A zgn||^2
    singular: bool  # the last Gauss-Newton solve found A rank-deficient
    delta: float  # trust radius in scaled units
    lam: float  # damping of the last step (0: pure Gauss-Newton)
    niter: int  # accepted steps
    nfev: int  # residual evaluations
    njev: int  # Jacobian evaluations
    nreject: int  # consecutive rejected steps
    status: int  # RUNNING or a Status value
    nlsmr: int  # LSMR iterations, all solves together


def column_norms(J: Any) -> np.ndarray:
    """The Euclidean norms of the columns of ``J`` (sparse or dense)."""
    if scipy.sparse.issparse(J):
        Jc = J.tocsr()
        sq = np.bincount(Jc.indices, weights=Jc.data * Jc.data, minlength=Jc.shape[1])
        return np.sqrt(sq)
    return np.sqrt(np.einsum("ij,ij->j", J, J))


class _RowWise(scipy.sparse.linalg.LinearOperator):
    """A CSR matrix ``A`` as a linear operator whose transpose products use ``A^T`` in
    CSR (``At``), fixed at construction."""

    def __init__(self, A: Any, At: Any) -> None:
        super().__init__(np.float64, A.shape)
        self.A, self.At = A, At

    def _matvec(self, v: np.ndarray) -> np.ndarray:
        return self.A @ v

    def _rmatvec(self, v: np.ndarray) -> np.ndarray:
        return self.At @ v


def scaled_jacobian(J: Any, scale: np.ndarray) -> Any:
    """``J * scale`` column by column (``scale``: ``1 / D`` for free parameters, 0 for held
    ones); no densification. A sparse ``J`` gives a ``LinearOperator`` holding the scaled
    matrix in CSR and its transpose in CSR too (LSMR's ``A^T v`` products then run
    row-wise, about twice as fast as through the CSC view of a CSR matrix)."""
    if scipy.sparse.issparse(J):
        A = J.tocsr(copy=True)
        A.data = A.data * scale[A.indices]
        At = A.T.tocsr()
        return _RowWise(A, At)
    return J * scale


def _lsmr(A: Any, b: np.ndarray, damp: float, rtol: float, maxiter: int | None) -> tuple:
    """``(z, istop, itn)`` of ``argmin ||A z - b||^2 + damp^2 ||z||^2``."""
    out = scipy.sparse.linalg.lsmr(
        A, b, damp=damp, atol=rtol, btol=rtol, conlim=1.0 / SINGULAR_RTOL, maxiter=maxiter
    )
    return out[0], int(out[1]), int(out[2])


#: The Gauss-Newton solve runs first to ``step_rtol``; it is refined to ``rtol`` (warm
#: started) only when its EDM is below this many times the goal, where the convergence
#: decision needs the EDM's digits. Far from the minimum a loose step is as good a step.
REFINE_FACTOR = 1e4


def gauss_newton(
    A: Any, r: np.ndarray, it: IterativeSettings, goal: float = np.inf
) -> tuple[np.ndarray, float, bool, int]:
    """``(z, edm, singular, iterations)``: the scaled Gauss-Newton step ``argmin ||A z + r||``,
    the EDM ``||A z||^2``, and whether LSMR found ``A`` ill-conditioned beyond
    :data:`~zfitlite.criterion.SINGULAR_RTOL` (its ``istop`` 3 or 6).

    Solved to ``it.step_rtol`` first, then, when the EDM is within :data:`REFINE_FACTOR`
    of ``goal`` (always with the default ``goal=inf``), on to ``it.rtol`` from there.
    """
    z, istop, itn = _lsmr(A, -r, 0.0, it.step_rtol, it.maxiter)
    Az = A @ z
    edm = float(Az @ Az)
    if it.rtol < it.step_rtol and edm < REFINE_FACTOR * goal and istop not in (3, 6):
        out = scipy.sparse.linalg.lsmr(
            A,
            -r,
            atol=it.rtol,
            btol=it.rtol,
            conlim=1.0 / SINGULAR_RTOL,
            maxiter=it.maxiter,
            x0=z,
        )
        z, istop, itn = out[0], int(out[1]), itn + int(out[2])
        Az = A @ z
        edm = float(Az @ Az)
    return z, edm, istop in (3, 6), itn


#: A random direction keeping more than this fraction of its length outside the row space
#: of ``A`` (:func:`has_null_direction`) means a rank-deficient Jacobian.
NULL_FRACTION = 1e-6


def has_null_direction(A: Any, free: np.ndarray) -> bool:
    """True when the scaled Jacobian ``A`` has a null direction among the free parameters.

    Matrix-free: for a fixed random ``v`` (over the free parameters) one LSMR solve of the
    consistent system ``A y = A v`` started from 0 gives the minimum-norm ``y``, the
    projection of ``v`` onto ``A``'s row space; what is left, ``v - y``, lies in the null
    space. A fraction above :data:`NULL_FRACTION` of ``||v||`` flags a rank deficiency
    (a random ``v`` has a component of about ``1 / sqrt(n)`` along any null direction;
    directions with singular values below about 1e-12 of the largest count as null, where
    the SVD path's threshold is :data:`~zfitlite.criterion.SINGULAR_RTOL`).
    """
    if not free.any():
        return False
    v = np.where(free, np.random.default_rng(0).standard_normal(free.size), 0.0)
    y, _, _ = _lsmr(A, A @ v, 0.0, 1e-12, None)
    return bool(np.linalg.norm(v - y) > NULL_FRACTION * np.linalg.norm(v))


def damped_step(
    A: Any,
    r: np.ndarray,
    zgn: np.ndarray,
    delta: float,
    lam_prev: float,
    it: IterativeSettings,
) -> tuple[np.ndarray, float, int]:
    """``(z, lam, iterations)``: the scaled trust-region step of length at most ``delta``.

    The Gauss-Newton step ``zgn`` when it fits (``lam = 0``); otherwise ``z(lam)`` with
    ``||z(lam)||`` within 10 % of ``delta`` (a safeguarded secant iteration on
    ``psi(lam) = 1 / ||z(lam)|| - 1 / delta``, nearly linear in ``lam``; each value one
    LSMR solve from 0: LSMR's warm start would damp the correction, not the step), scaled
    onto the boundary. ``lam`` is bracketed
    by 0 (``psi < 0``) and ``||A^T r|| / delta`` (where ``||z|| <= delta`` for certain).
    """
    gn_norm = float(np.sqrt(zgn @ zgn))
    if gn_norm <= delta:
        return zgn, 0.0, 0
    g = A.T @ r
    hi = float(np.sqrt(g @ g)) / delta
    lo, psi_lo = 0.0, (1.0 / gn_norm - 1.0 / delta if gn_norm > 0 else -np.inf)
    psi_hi = None
    lam = lam_prev if lo < lam_prev < hi else max(1e-3 * hi, 1e-300)
    z, itn = zgn, 0
    for _ in range(8):
        z, _, k = _lsmr(A, -r, np.sqrt(lam), it.step_rtol, it.maxiter)
        itn += k
        norm = float(np.sqrt(z @ z))
        if abs(norm - delta) <= 0.1 * delta or norm == 0:
            break
        psi = 1.0 / norm - 1.0 / delta
        if psi < 0:
            lo, psi_lo = lam, psi
        else:
            hi, psi_hi = lam, psi
        # secant through the bracket (or its lower end and this point), kept inside it
        if psi_hi is not None and np.isfinite(psi_lo):
            new = lo - psi_lo * (hi - lo) / (psi_hi - psi_lo)
        else:
            new = lam * 10.0
        lam = new if lo < new < hi else max(1e-3 * hi, np.sqrt(lo * hi))
    norm = float(np.sqrt(z @ z))
    if norm > 0:
        z = z * (delta / norm)  # on the boundary, exactly (as the dense solver)
    return z, float(lam), itn


def _measure(
    fns: SparseFunctions,
    x: np.ndarray,
    r: np.ndarray,
    J: Any,
    D_old: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    it: IterativeSettings,
    goal: float = np.inf,
) -> tuple:
    """At an accepted point: the scaling, the masked scaled Jacobian, the Gauss-Newton step
    and the EDM (``(D, A, zgn, edm, singular, iterations)``; ``goal``: the EDM goal there,
    see :func:`gauss_newton`)."""
    norms = column_norms(J)
    D = np.maximum(D_old, norms)
    D = np.where(D > 0, D, 1.0)  # a column that has always been zero: unit scale
    free = free_mask(x, J.T @ r, lower, upper)
    A = scaled_jacobian(J, np.where(free, 1.0 / D, 0.0))
    zgn, edm, singular, itn = gauss_newton(A, r, it, goal)
    # a free parameter that no residual depends on: the Jacobian has lost rank
    singular = singular or bool(np.any(free & (norms == 0)))
    return D, A, zgn, edm, singular, itn


def sparse_init(fns: SparseFunctions, x0: np.ndarray, cfg: LSQSettings) -> SparseLSQState:
    """The state at the start: the residuals at ``x0``; the Jacobian and the first
    Gauss-Newton solve come with the first :func:`sparse_step` (``njev == 0``)."""
    r = fns.residuals(x0)
    f = float(r @ r)
    n = x0.shape[0]
    status = RUNNING if np.isfinite(f) else int(Status.NONFINITE)
    return SparseLSQState(
        x=x0,
        r=r,
        f=f,
        J=None,
        D=np.zeros(n),
        A=None,
        zgn=np.zeros(n),
        edm=np.inf,
        singular=False,
        delta=1.0,
        lam=0.0,
        niter=0,
        nfev=1,
        njev=0,
        nreject=0,
        status=status,
        nlsmr=0,
    )


def _observed(cfg: LSQSettings, m: int) -> float:
    """The observed residuals for the goal's ``s^2`` (the dense solver's rule)."""
    return float(_dense_observed(np, cfg, m))


def check_done(st: SparseLSQState, cfg: LSQSettings) -> int:
    """The status after a step: RUNNING, CONVERGED, MAXITER or NO_STEP (the dense
    solver's rule, :func:`~.lm_least_squares._check_done`)."""
    return status_eager(
        st, cfg, st.r.shape[0], st.x.shape[0], lambda: float(np.sqrt(st.zgn @ st.zgn))
    )


def sparse_step(
    fns: SparseFunctions,
    st: SparseLSQState,
    lower: np.ndarray,
    upper: np.ndarray,
    cfg: LSQSettings,
    it: IterativeSettings,
) -> SparseLSQState:
    """One trust-region iteration (the dense :func:`~.lm_least_squares.lsq_step`'s rules).

    The first call (``njev == 0``) takes no step: it evaluates the Jacobian at the start,
    solves for the Gauss-Newton step and sets the initial trust radius.
    """
    if st.njev == 0:
        J = fns.jacobian(st.x)
        if not _finite(J):
            return st._replace(status=int(Status.NONFINITE), njev=1)
        goal = lsq_goal(np, cfg.tol_errordef, st.f, _observed(cfg, st.r.shape[0]), st.x.shape[0])
        D, A, zgn, edm, singular, itn = _measure(
            fns, st.x, st.r, J, np.zeros_like(st.D), lower, upper, it, float(goal)
        )
        xnorm = float(np.sqrt(np.sum((D * st.x) ** 2)))
        new = st._replace(
            J=J,
            D=D,
            A=A,
            zgn=zgn,
            edm=edm,
            singular=singular,
            delta=cfg.factor * (xnorm if xnorm > 0 else 1.0),
            njev=1,
            nlsmr=st.nlsmr + itn,
        )
        return new._replace(status=check_done(new, cfg))
    z, lam, itn = damped_step(st.A, st.r, st.zgn, st.delta, st.lam, it)
    nlsmr = st.nlsmr + itn
    x_new = np.clip(st.x + z / st.D, lower, upper)
    h = x_new - st.x
    Jh = st.J @ h
    dirder = float(st.r @ Jh)
    pred = -2.0 * dirder - float(Jh @ Jh)
    tiny = not np.any(np.abs(h) > 4 * _EPS * np.abs(st.x))
    nfev = st.nfev
    if tiny:
        r_new, f_new = st.r, np.inf
    else:
        r_new = fns.residuals(x_new)
        f_new = float(r_new @ r_new)
        nfev += 1
    # the gain ratio and MINPACK's trust-radius update: the dense solver's rule
    pnorm = float(np.sqrt(np.sum((st.D * h) ** 2)))
    delta, accept = trust_update_eager(
        float(st.f), f_new, pred, dirder, pnorm, float(st.delta), lam, st.niter == 0, tiny
    )
    if not accept:
        new = st._replace(delta=delta, lam=lam, nfev=nfev, nreject=st.nreject + 1, nlsmr=nlsmr)
        return new._replace(status=check_done(new, cfg))
    J_new = fns.jacobian(x_new)
    if not _finite(J_new):
        new = st._replace(
            delta=0.25 * delta,
            lam=lam,
            nfev=nfev,
            njev=st.njev + 1,
            nreject=st.nreject + 1,
            nlsmr=nlsmr,
        )
        return new._replace(status=check_done(new, cfg))
    goal = lsq_goal(np, cfg.tol_errordef, f_new, _observed(cfg, r_new.shape[0]), st.x.shape[0])
    D, A, zgn, edm, singular, k = _measure(
        fns, x_new, r_new, J_new, st.D, lower, upper, it, float(goal)
    )
    new = SparseLSQState(
        x=x_new,
        r=r_new,
        f=f_new,
        J=J_new,
        D=D,
        A=A,
        zgn=zgn,
        edm=edm,
        singular=singular,
        delta=delta,
        lam=lam,
        niter=st.niter + 1,
        nfev=nfev,
        njev=st.njev + 1,
        nreject=0,
        status=RUNNING,
        nlsmr=nlsmr + k,
    )
    return new._replace(status=check_done(new, cfg))


def _finite(J: Any) -> bool:
    data = J.data if scipy.sparse.issparse(J) else J
    return bool(np.isfinite(data).all())


def sparse_postprocess(
    st: SparseLSQState, cfg: LSQSettings, lower: np.ndarray, upper: np.ndarray
) -> Outcome:
    """The final status (a stalled fit meeting its goal converged; a converged fit whose
    scaled Jacobian lost rank is ``SINGULAR``: :func:`has_null_direction`), the gradient
    ``2 J^T r`` and the EDM. The :class:`~.driver.Outcome`'s Hessian is None: nothing
    ``n x n`` is formed."""
    m, n = st.r.shape[0], st.x.shape[0]
    status = st.status
    if st.J is not None:
        goal = lsq_goal(np, cfg.tol_errordef, st.f, _observed(cfg, m), n)
        met = st.edm < goal or st.edm < cfg.tol_errordef
        if status == int(Status.NO_STEP) and met:
            status = int(Status.CONVERGED)
        g = 2.0 * np.asarray(st.J.T @ st.r).reshape(-1)
        if status == int(Status.CONVERGED) and (
            st.singular or has_null_direction(st.A, free_mask(st.x, g, lower, upper))
        ):
            status = int(Status.SINGULAR)
    else:
        g = np.full(n, np.nan)
    return Outcome(
        x=st.x,
        f=st.f,
        g=g,
        H=None,
        edm=st.edm,
        status=status,
        niter=st.niter,
        nfev=st.nfev,
        njev=st.njev,
        lam=st.lam,
        delta=st.delta,
    )


@dataclass(frozen=True)
class SparseLSQSolver:
    """Levenberg-Marquardt with LSMR steps as a native solver for :func:`.driver.solve`
    (numpy ops, eager loop): configuration plus four pure functions."""

    fns: SparseFunctions
    lower: np.ndarray
    upper: np.ndarray
    cfg: LSQSettings
    it: IterativeSettings = _DEFAULT_ITERATIVE

    @property
    def ops(self) -> ArrayOps:
        return numpy_ops

    def init(self, x0: np.ndarray, args: tuple) -> SparseLSQState:
        return sparse_init(self.fns, x0, self.cfg)

    def step(self, state: SparseLSQState, args: tuple) -> SparseLSQState:
        return sparse_step(self.fns, state, self.lower, self.upper, self.cfg, self.it)

    def terminate(self, state: SparseLSQState) -> bool:
        return state.status != RUNNING

    def postprocess(self, state: SparseLSQState, args: tuple) -> Outcome:
        return sparse_postprocess(state, self.cfg, self.lower, self.upper)


#: With ``linear_solver="auto"``, a dense numpy Jacobian takes the iterative path above
#: this many parameters (an ``m n^2`` SVD per step costs more than LSMR's ``m n`` products).
ITERATIVE_MIN_PARAMS = 1000


class SparseJacobianSeen(Exception):
    """Raised out of the dense solver by :func:`detecting` on the first sparse Jacobian."""

    def __init__(self, x: np.ndarray, J: Any) -> None:
        super().__init__("sparse Jacobian")
        self.x, self.J = x, J


def eager_sparse_functions(evaluator: Any) -> SparseFunctions:
    """Residuals and Jacobian through the evaluator (counted, budgeted)."""
    return SparseFunctions(evaluator.residuals, evaluator.jacobian)


def iterative(evaluator: Any) -> bool:
    """``linear_solver="auto"``'s choice before any evaluation: LSMR for a loss whose
    Jacobian is known to be sparse (``jac_sparsity``, or sparse in an earlier fit) and for a
    numpy loss above :data:`ITERATIVE_MIN_PARAMS` parameters (a Jacobian that turns out
    sparse at its first call is caught by :func:`detecting`)."""
    if evaluator.compiled.backend != "numpy":
        return False
    return bool(getattr(evaluator.loss, "sparse_jacobian", False)) or (
        evaluator.n > ITERATIVE_MIN_PARAMS
    )


def detecting(evaluator: Any, fns: Any, seen: list, linear_solver: str = "auto") -> Any:
    """The dense solver's functions (:class:`~.lm_least_squares.LSQFunctions`), raising
    :class:`SparseJacobianSeen` when the Jacobian comes back sparse (with
    ``linear_solver="svd"``: converting it to a dense array); the last residuals are kept
    in ``seen`` (``[x, r]``) so that the iterative solver can start from them without
    evaluating again. ``fns`` itself where no Jacobian can be sparse (numpy backend
    without a user ``jacobian`` or ``jac_sparsity``): the small fits' loop pays nothing."""
    loss = evaluator.loss
    maybe_sparse = (
        getattr(loss, "jacobian_func", None) is not None
        or getattr(loss, "jac_sparsity", None) is not None
    )
    if evaluator.compiled.backend != "numpy" or not maybe_sparse:
        return fns
    densify = linear_solver == "svd"

    def residuals(x: Any, args: tuple) -> Any:
        r = fns.residuals(x, args)
        seen[:] = [x, r]  # the solver never writes into its points: no copy
        return r

    def jacobian(x: Any, args: tuple) -> Any:
        J = fns.jacobian(x, args)
        if scipy.sparse.issparse(J):
            if densify:
                return J.toarray()
            raise SparseJacobianSeen(np.array(x), J)
        return J

    return type(fns)(residuals, jacobian, fns.second_directional, fns.fd_cost, fns.ops)


def seeded(fns: SparseFunctions, x0: np.ndarray, r0: np.ndarray | None, J0: Any) -> SparseFunctions:
    """``fns`` answering the first residual and Jacobian requests at ``x0`` with ``r0`` and
    ``J0`` (already evaluated, and counted, by the dense solver's start)."""
    pending = {"r": r0, "J": J0}

    def residuals(x: np.ndarray) -> np.ndarray:
        r = pending.pop("r", None)
        return r if r is not None and np.array_equal(x, x0) else fns.residuals(x)

    def jacobian(x: np.ndarray) -> Any:
        J = pending.pop("J", None)
        return J if J is not None and np.array_equal(x, x0) else fns.jacobian(x)

    return SparseFunctions(residuals, jacobian)


def minimize_sparse(
    minimizer: Any,
    evaluator: Any,
    params: Any,
    fns: SparseFunctions | None = None,
) -> Any:
    """The iterative least-squares solve for :class:`~.levenberg_marquardt.LevenbergMarquardt`:
    its :class:`~.base.SolverOutput` (gradient and EDM, no Hessian)."""
    from .driver import solve

    if fns is None:
        fns = eager_sparse_functions(evaluator)
    cfg = minimizer._lsq_settings(evaluator, compiled=False)
    x0 = params.values.copy()
    solver = SparseLSQSolver(fns, params.lower, params.upper, cfg, _iterative_settings(minimizer))
    states: list[SparseLSQState] = []
    report = minimizer._lsq_reporter()

    def keep(st: SparseLSQState) -> None:
        states[:] = [st]
        if report is not None:
            report(st)

    out = solve(solver, x0, (), keep)
    st = states[0]
    extras = {
        "lambda": float(out.lam),
        "trust_radius": float(out.delta),
        "method": "gauss-newton",
        "loop": "eager",
        "linear_solver": "lsmr",
        "lsmr_iterations": st.nlsmr,
        "geodesic": False,
    }
    out = out._replace(
        f=float(out.f),
        edm=float(out.edm),
        niter=int(out.niter),
        nfev=int(out.nfev),
        njev=int(out.njev),
    )
    return minimizer._native_output(
        out, evaluator, x0, "residuals", extras, invert=False, hessian_psd=True
    )


def _iterative_settings(minimizer: Any) -> IterativeSettings:
    o = minimizer.options
    return IterativeSettings(
        rtol=float(o.get("lsmr_rtol", 1e-10)),
        step_rtol=float(o.get("lsmr_step_rtol", 1e-6)),
        maxiter=None if o.get("lsmr_maxiter") is None else int(o["lsmr_maxiter"]),
    )
