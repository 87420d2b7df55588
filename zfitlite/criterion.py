"""Convergence criteria. The default, :class:`EDM`, is the expected distance to the minimum.

When a local minimizer stops (the one rule, used by every local minimizer and by the
local polish inside the global ones):

1. **Statistically converged**: ``EDM < goal`` with ``goal = tol * errordef`` (scaled down
   by the residual variance for least squares). This is what ``tol`` means, as in zfit
   and Minuit.
2. **Numerically settled** (:func:`settled`): the next Newton (Gauss-Newton) step would
   change the parameters by at most :data:`XTOL_REL` relative to their size (per
   parameter, :func:`newton_step_rel`; least squares: Moré's scaled norm), or
   the reduction of the loss it predicts, the EDM, is at most :data:`FTOL_REL` times
   ``|f|`` -- MINPACK's ``xtol`` and ``ftol`` tests, Ceres's parameter and function
   tolerances (a ``tol`` below the default lowers both: :func:`relative_tolerances`).
   Both are scale-free: they do not depend on the units of the parameters
   nor on the normalisation of the loss.

A minimizer stops as converged when both hold. Close to a minimum Newton-type steps
converge quadratically, so going from (1) to (2) costs one or two more iterations and
gives the answer to full precision, not only to a fraction of its uncertainty. Gauss-Newton
steps converge only linearly where the residuals do not vanish at the minimum; the
least-squares Levenberg-Marquardt therefore polishes from (1) to (2) with NL2SOL's
structured secant model (:mod:`zfitlite.solvers.lm_least_squares`). Measured on NIST
StRD (54 cases, ``LevenbergMarquardt()`` on ``LeastSquares``, JAX, defaults; shared 2-core
machine under load): stopping at (1) alone, 12 cases at 6 correct digits at a median of 8
residual evaluations; (1) and (2) with Gauss-Newton polishing, 53 at 11; with the secant
polish, 54 at 10 (ENSO and Thurber 33-45 -> 14-25). A fit
that can no longer find a lower point (floating-point precision exhausted) is converged
when (1) holds; ``valid`` then also needs the looser form of (2) in :func:`trustworthy`
(a Newton step of at most :data:`VALID_XTOL` relative, or an EDM of at most
:data:`VALID_FTOL` ``|f|``), else the result says why not.
Where a wrapped method (scipy's, Migrad) stalls below the goal short of (2), the rounds
loop finishes with loss-decreasing Newton steps from the Hessian the EDM was measured with
(:func:`zfitlite.solvers.rounds.newton_finish`).

(2) is also what keeps ``valid`` honest on a loss whose ``errordef`` does not match its
scale (:func:`trustworthy`): a sum of squares declared with ``errordef=1`` whose
residuals are tiny (NIST Lanczos: RSS 1e-25) meets ``EDM < tol`` almost anywhere, but not
``EDM <= FTOL_REL * |f|`` nor a relatively small Newton step until it is at its minimum. A
zero-residual problem (``f -> 0`` at the minimum, where ``EDM / |f|`` stays of order one)
settles through the step test: its Newton steps shrink quadratically towards zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

from .backends.ops import cho_solve, cholesky

__all__ = [
    "EDM",
    "FTOL_REL",
    "VALID_FTOL",
    "VALID_XTOL",
    "XTOL_REL",
    "X_FLOOR",
    "ConvergenceCriterion",
    "Measure",
    "bounded_edm",
    "bounded_edm_ops",
    "edm",
    "float_max",
    "float_min",
    "free_mask",
    "lsq_goal",
    "measure",
    "newton_step",
    "newton_step_rel",
    "onto_active_bounds",
    "parameter_scale",
    "point_settled",
    "point_settled_ops",
    "relative_tolerances",
    "scale_of",
    "settled",
    "settled_measure",
    "singular_hessian",
    "singular_jacobian",
    "step_settled",
    "trustworthy",
]

EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
#: Relative size below which a singular value (or Hessian eigenvalue) counts as zero.
SINGULAR_RTOL = 1e3 * float(np.finfo(np.float64).eps)
#: Numerically settled when the next Newton step changes the parameters by at most this,
#: relative to their scaled size (MINPACK's ``xtol``, Ceres's parameter tolerance).
XTOL_REL = 1e-8
#: ... or when the reduction the Newton step predicts (the EDM) is at most this times
#: ``|f|`` (MINPACK's ``ftol``, Ceres's function tolerance).
FTOL_REL = 1e-14


def _posdef_factor(hessian: np.ndarray) -> tuple[np.ndarray, bool, Any]:
    """``(H_pd, was_posdef, cholesky factor of H_pd or None)`` (see :func:`make_posdef`):
    a positive-definite ``H`` is factorised once, not again by the caller."""
    H = 0.5 * hessian + 0.5 * hessian.T  # (H + H.T) / 2 could overflow where H does not
    c = cholesky(H)
    if c is not None:
        return H, True, c
    w, v = np.linalg.eigh(H)
    absw = np.abs(w)
    floor = max(absw.max(initial=0.0) * 1e-10, np.finfo(float).tiny)
    H_pd = (v * np.maximum(absw, floor)) @ v.T
    return H_pd, False, cholesky(H_pd)


def make_posdef(hessian: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(H_pd, was_posdef)``: ``H`` itself when positive definite, else ``H`` with
    its eigenvalues replaced by their absolute values (floored at 1e-10 of the largest)."""
    H_pd, was_posdef, _ = _posdef_factor(hessian)
    return H_pd, was_posdef


def edm(
    gradient: np.ndarray, hessian: np.ndarray | None = None, inv_hessian: np.ndarray | None = None
) -> float:
    """Expected distance to the minimum, ``EDM = g^T H^-1 g / 2``.

    Parameters
    ----------
    gradient : numpy.ndarray
    hessian : numpy.ndarray, optional
        Used when ``inv_hessian`` is not given; a Hessian that is not positive definite
        is replaced by its absolute-eigenvalue version, so the EDM stays a positive
        distance estimate instead of a meaningless negative number.
    inv_hessian : numpy.ndarray, optional

    Returns
    -------
    float
        ``inf`` when the gradient is not finite.
    """
    g = np.asarray(gradient, dtype=np.float64)
    if g.size == 0:
        return 0.0
    if not np.isfinite(g).all():
        return float("inf")
    if inv_hessian is not None:
        return float(0.5 * g @ np.asarray(inv_hessian) @ g)
    if hessian is None:
        raise ValueError("edm needs a hessian or an inverse hessian")
    H = np.asarray(hessian, dtype=np.float64)
    if not np.isfinite(H).all():
        return float("inf")
    H = 0.5 * H + 0.5 * H.T  # (H + H.T) / 2 could overflow where H itself does not
    # the common case, a positive-definite Hessian: one LAPACK call (Cholesky and solve)
    _, y, info = scipy.linalg.lapack.dposv(H, g)  # pyright: ignore[reportAttributeAccessIssue]
    if info == 0:
        e = 0.5 * float(g @ y)
        if math.isfinite(e) and e >= 0.0:
            return e
    # not positive definite (or not representable): the absolute-eigenvalue version; at
    # the edge of float64 its arithmetic may overflow, which gives inf, not a warning
    with np.errstate(all="ignore"):
        c = _posdef_factor(H)[2]
        if c is None:
            return float("inf")
        e = float(0.5 * g @ cho_solve(c, g))
    return e if math.isfinite(e) and e >= 0.0 else float("inf")


def settled(
    step_norm: Any,
    x_norm: Any,
    edm_value: Any,
    f: Any,
    xtol: Any = XTOL_REL,
    ftol: Any = FTOL_REL,
    xp: Any = np,
) -> Any:
    """Numerically settled (the module's rule 2): a relatively tiny step or predicted reduction.

    Parameters
    ----------
    step_norm, x_norm : float or array
        Norms of the next Newton step and of the parameters, in the same scaling (e.g.
        Marquardt's ``sqrt(diag H)`` or Moré's column norms).
    edm_value, f : float or array
        The EDM (the reduction of the loss the step predicts) and the loss.
    xtol, ftol : float
        :data:`XTOL_REL` and :data:`FTOL_REL` by default.
    xp : module
        The array namespace (works on traced JAX values).
    """
    return (step_norm <= xtol * x_norm) | (edm_value <= ftol * xp.abs(f)) | (edm_value <= 0.0)


def relative_tolerances(tol: float) -> tuple[float, float]:
    """``(xtol, ftol)`` of rule 2 for a given ``tol``: :data:`XTOL_REL`, :data:`FTOL_REL`
    at the default ``tol`` (1e-3) and above; a lower ``tol`` asks for proportionally more
    (``xtol = min(XTOL_REL, 100 tol)``, ``ftol = FTOL_REL * min(1, tol / 1e-3)``)."""
    tol = float(tol)
    return min(XTOL_REL, 100.0 * tol), FTOL_REL * min(1.0, tol / 1e-3)


#: A parameter's size for the relative step test is at least this (a minimum at 0).
X_FLOOR = 1e-8
#: ``valid`` needs at least this much of rule 2 (see :func:`trustworthy`): a Newton step
#: of at most 1e-5 relative, or an EDM of at most 1e-6 ``|f|`` (a point 0.1 sigma off the minimum of
#: a chi-square with up to ~5000 degrees of freedom has a larger one).
VALID_XTOL = 1e-5
VALID_FTOL = 1e-6


def newton_step_rel(
    g: np.ndarray,
    H: np.ndarray,
    x: np.ndarray,
    free: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> float:
    """``max_i |h_i| / max(|x_i|, |scale_i|, X_FLOOR)`` for the Newton step ``h = -H^-1 g``.

    ``scale`` (:func:`parameter_scale`: the start value or a thousandth of the box) gives
    a parameter whose minimum is at 0 its size as the user posed the problem, in its own
    units.

    On the positive-definite part of ``H``, over the ``free`` parameters when given;
    ``inf`` when the step cannot be computed. Per parameter (not a norm), so an
    ill-conditioned direction cannot hide behind well-determined ones: it bounds the
    relative error of every parameter near the minimum.
    """
    g = np.asarray(g, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    size = np.abs(x) if scale is None else np.maximum(np.abs(x), np.abs(scale))
    if free is not None:
        g, H, size = g[free], H[np.ix_(free, free)], size[free]
    if g.size == 0:
        return 0.0
    if not (np.isfinite(g).all() and np.isfinite(H).all()):
        return float("inf")
    if not g.any():
        return 0.0
    h = newton_step(g, H)
    if h is None:
        return float("inf")
    with np.errstate(all="ignore"):
        rel = float(np.max(np.abs(h) / np.maximum(size, X_FLOOR)))
    return rel if math.isfinite(rel) else float("inf")


def newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray | None:
    """The Newton step ``-H^-1 g`` on the positive-definite part of ``H``
    (:func:`make_posdef`), or None where it cannot be factorised or is not finite."""
    with np.errstate(all="ignore"):
        c = _posdef_factor(H)[2]
        if c is None:
            return None
        h = -cho_solve(c, g)
    return h if np.isfinite(h).all() else None


def parameter_scale(params: Any) -> np.ndarray:
    """Each parameter's size for the relative step test when its value is near 0.

    The larger of its start value and a thousandth of its box (where both bounds are
    finite): sizes in the parameter's own units, as the user posed the problem.
    """
    with np.errstate(all="ignore"):
        return scale_of(
            np,
            np.asarray(params.values, dtype=np.float64),
            np.asarray(params.lower, dtype=np.float64),
            np.asarray(params.upper, dtype=np.float64),
        )


def scale_of(xp: Any, x0: Any, lower: Any, upper: Any) -> Any:
    """:func:`parameter_scale` from the start ``x0`` and the bounds, in the array namespace
    ``xp`` (works on traced JAX values: the native solvers take it at their start)."""
    boxed = xp.isfinite(lower) & xp.isfinite(upper)
    width = xp.where(boxed, xp.where(boxed, upper, 0.0) - xp.where(boxed, lower, 0.0), 0.0)
    return xp.maximum(xp.abs(x0), 1e-3 * width)


def _masked_abs_eigh(xp: Any, g: Any, H: Any, free: Any) -> tuple[Any, Any, Any, Any]:
    """``(g over the free parameters, eigenvectors, absolute eigenvalues floored, finite)``
    of the symmetrised Hessian over the ``free`` parameters (held rows and columns become
    the identity; a non-finite Hessian or gradient the identity too, with ``finite`` False).
    Array operators only: the traced versions of the EDM and of the Newton-step test share it.
    """
    n = g.shape[0]
    eye = xp.eye(n)
    Hs = xp.where(free[:, None] & free[None, :], 0.5 * H + 0.5 * H.T, eye)
    gm = xp.where(free, g, 0.0)
    finite = xp.all(xp.isfinite(Hs)) & xp.all(xp.isfinite(gm))
    Hs = xp.where(finite, Hs, eye)
    w, v = xp.linalg.eigh(Hs)
    absw = xp.abs(w)
    w_pd = xp.maximum(absw, xp.maximum(xp.max(absw) * 1e-10, _TINY))
    return gm, v, w_pd, finite


def point_settled_ops(
    ops: Any,
    g: Any,
    H: Any,
    x: Any,
    edm_value: Any,
    f: Any,
    free: Any,
    xtol: Any,
    ftol: Any,
    scale: Any,
) -> Any:
    """:func:`point_settled` for a native solver: the numpy version eagerly, an
    array-namespace version inside a traced (JAX) program (the Newton step on the
    absolute-eigenvalue Hessian over the ``free`` parameters, as :func:`bounded_edm_ops`)."""
    if not ops.compiles:
        return point_settled(
            np.asarray(g),
            np.asarray(H),
            np.asarray(x),
            float(edm_value),
            float(f),
            np.asarray(free, dtype=bool),
            float(xtol),
            float(ftol),
            np.asarray(scale),
        )
    xp = ops.xp
    gm, v, w_pd, finite = _masked_abs_eigh(xp, g, H, free)
    h = xp.where(free, v @ ((v.T @ gm) / w_pd), 0.0)
    return finite & step_settled(xp, h, x, scale, edm_value, f, xtol, ftol)


def step_settled(
    xp: Any, h: Any, x: Any, scale: Any, edm_value: Any, f: Any, xtol: Any, ftol: Any
) -> Any:
    """:func:`settled` for a given (quasi-)Newton step ``h``: per parameter, ``|h_i|`` at
    most ``xtol`` times ``max(|x_i|, |scale_i|, X_FLOOR)`` (as :func:`newton_step_rel`),
    or the EDM at most ``ftol |f|``. Array operators only (traceable under JAX)."""
    size = xp.maximum(xp.maximum(xp.abs(x), xp.abs(scale)), X_FLOOR)
    rel = xp.max(xp.abs(h) / size)
    rel = xp.where(xp.isfinite(rel), rel, xp.inf)
    e = xp.where(xp.isfinite(edm_value), edm_value, xp.inf)
    return settled(rel, 1.0, e, f, xtol, ftol, xp)


def point_settled(
    g: np.ndarray,
    H: np.ndarray,
    x: np.ndarray,
    edm_value: float,
    f: float,
    free: np.ndarray | None = None,
    xtol: float = XTOL_REL,
    ftol: float = FTOL_REL,
    scale: np.ndarray | None = None,
) -> bool:
    """Rule 2 at a point of a scalar loss: :func:`settled` with :func:`newton_step_rel`."""
    if not math.isfinite(edm_value):
        return False
    if edm_value <= ftol * abs(f) or edm_value <= 0.0:
        return True
    return newton_step_rel(g, H, x, free, scale) <= xtol


def trustworthy(
    g: np.ndarray,
    H: np.ndarray,
    x: np.ndarray,
    edm_value: float,
    f: float,
    free: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> str | None:
    """None when a converged fit passes the scale-free check behind ``valid``, else why not.

    ``EDM < tol * errordef`` is an absolute statement; it is trusted when the fit is also
    close to numerically settled: the EDM is at most :data:`VALID_FTOL` ``|f|``, or the
    Newton step changes no parameter by more than :data:`VALID_XTOL` relative. Otherwise
    the scale is ambiguous (a loss whose ``errordef`` does not match its size, e.g. a sum
    of tiny squared residuals declared with ``errordef=1``) and the reason is returned.
    """
    if point_settled(g, H, x, edm_value, f, free, VALID_XTOL, VALID_FTOL, scale):
        return None
    rel = newton_step_rel(g, H, x, free, scale)
    return (
        f"the EDM ({edm_value:.3g}) is below tol * errordef, but the loss's scale is "
        f"ambiguous: the EDM is {edm_value / abs(f) if f else float('inf'):.2g} of |f| "
        f"({abs(f):.3g}) and the Newton step would still change a parameter by {rel:.2g} "
        "relative, so the fit may be far from its minimum; if the loss is a chi-square or a "
        "negative log-likelihood with the right errordef this is fine (lower tol to be "
        "sure), otherwise scale the loss (e.g. divide a sum of squares by the residual "
        "variance) or use LeastSquares"
    )


def free_mask(x: Any, g: Any, lower: Any, upper: Any, at_limit: Any = None) -> Any:
    """Parameters free to move: not on a bound that the gradient pushes against.

    Written with array operators only, so it works on numpy and inside a traced (JAX)
    solver alike. ``at_limit`` (numpy only) marks parameters that are *near* a bound
    without sitting on it (Minuit's sine transform only approaches a bound): those count
    as on the nearer bound.
    """
    if at_limit is None:
        return ~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)))
    lo_side = np.abs(x - lower) <= np.abs(upper - x)
    held = at_limit & ((lo_side & (g > 0)) | (~lo_side & (g < 0)))
    return ~held


def bounded_edm_ops(ops: Any, g: Any, H: Any, free: Any) -> Any:
    """:func:`bounded_edm` for a native solver: the scipy version on numpy (eager), an
    array-namespace version inside a traced (JAX) program.

    The traced version keeps the free parameters by masking (held rows and columns become
    the identity, their gradient zero) instead of slicing, and replaces a Hessian that is
    not positive definite by its absolute-eigenvalue version, as :func:`edm` does.
    """
    if not ops.compiles:
        return bounded_edm(g, H, free)
    xp = ops.xp
    gm, v, w_pd, finite = _masked_abs_eigh(xp, g, H, free)
    y = v.T @ gm
    e = 0.5 * xp.sum(y * y / w_pd)  # equals g^T H^-1 g / 2 where H is positive definite
    return xp.where(finite & xp.isfinite(e) & (e >= 0), e, xp.inf)


def lsq_goal(xp: Any, tol_errordef: Any, f: Any, m: Any, n: int) -> Any:
    """The least-squares EDM goal ``tol * errordef * min(1, s^2)``, ``s^2 = F / (m - n)``.

    Used by every least-squares solver (the native Levenberg-Marquardt, eager, compiled
    and batched, and :class:`~zfitlite.minimize.ScipyLeastSquares`). ``m`` (observed
    residuals) may be an array (one per member of a batch). A perfect fit (``F = 0``) has
    EDM 0: the goal is floored at the smallest normal float so that it stays positive.
    """
    if isinstance(m, (int, float, np.integer, np.floating)):
        dof = m - n if m > n else max(m, 1)  # (a NaN m stays NaN, as with xp.maximum)
    else:
        dof = xp.where(m > n, m - n, xp.maximum(m, 1))
    if isinstance(f, float) and isinstance(dof, (int, float)):
        lower, upper = float_min, float_max  # Python floats (the eager loops): no numpy calls
    else:
        lower, upper = xp.minimum, xp.maximum
    return tol_errordef * upper(lower(1.0, f / dof), _TINY)


def float_min(a: float, b: float) -> float:
    """``np.minimum`` of two Python floats, without a numpy call (NaN wins, as there)."""
    if a != a or b != b:
        return math.nan
    return a if a <= b else b


def float_max(a: float, b: float) -> float:
    """``np.maximum`` of two Python floats, without a numpy call (NaN wins, as there)."""
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


def singular_jacobian(svd: Any, xp: Any, J: Any, D: Any) -> Any:
    """True when the scaled Jacobian ``J / D`` has lost rank (or is not finite).

    ``svd`` is the array ops' thin SVD (``ArrayOps.svd``); traceable under JAX.
    """
    if J.shape[0] == 0 or J.shape[1] == 0:
        return xp.asarray(True)
    finite = xp.all(xp.isfinite(J))
    s = svd(xp.where(finite, J, 0.0) / D)[1]
    return ~finite | (s[-1] <= s[0] * SINGULAR_RTOL)


def singular_hessian(xp: Any, H: Any) -> Any:
    """True when the Hessian has a (relatively) zero eigenvalue, or is not finite."""
    finite = xp.all(xp.isfinite(H))
    ev = xp.linalg.eigvalsh(xp.where(finite, H, 0.0))
    return ~finite | (ev[0] <= xp.abs(ev[-1]) * SINGULAR_RTOL)


def bounded_edm(g: np.ndarray, H: np.ndarray, free: np.ndarray) -> float:
    """EDM over the free parameters (a parameter held by its bound is at its optimum)."""
    if not free.any():
        return 0.0
    return edm(g[free], H[np.ix_(free, free)])


# -- the measure at a point (scipy wrappers, Minuit) -------------------------------------
@dataclass
class Measure:
    """The loss, its derivatives and the EDM at one point (``H`` is None when the EDM
    came from Hessian-vector products: :mod:`zfitlite.matrix_free`)."""

    x: np.ndarray
    f: float
    g: np.ndarray
    H: np.ndarray | None
    edm: float
    goal: float
    free: np.ndarray

    @property
    def gnorm(self) -> float:
        """Largest gradient component over the parameters not held by a bound."""
        g = self.g[self.free]
        return float(np.max(np.abs(g))) if g.size else 0.0


def measure(evaluator: Any, x: np.ndarray, params: Any, goal: float) -> Measure:
    """Value, gradient, Hessian and EDM at ``x`` (EDM over the parameters free of their bounds)."""
    f, g = evaluator.value_gradient_reusing(x)
    H = evaluator.hessian(x, f, g)  # the centre of a differenced Hessian, not recomputed
    if params.has_bounds:
        free = free_mask(x, g, params.lower, params.upper)
        e = bounded_edm(g, H, free)
    else:
        free = np.ones(x.size, dtype=bool)
        e = edm(g, H)
    return Measure(x=x, f=float(f), g=g, H=H, edm=e, goal=goal, free=free)


def settled_measure(m: Measure, tol: float, scale: np.ndarray | None = None) -> bool:
    """Numerically settled at ``m`` (:func:`point_settled` over ``m.free``).

    ``tol``: the minimizer's (:func:`relative_tolerances`); ``scale``: each parameter's
    size when its minimum is at 0 (:func:`parameter_scale`). A measure without a dense
    Hessian (a large problem, see :mod:`zfitlite.matrix_free`) has no Newton step to test:
    there the statistical goal alone decides, and this returns True.
    """
    if m.H is None:
        return True
    return point_settled(m.g, m.H, m.x, m.edm, m.f, m.free, *relative_tolerances(tol), scale)


def onto_active_bounds(evaluator: Any, m: Measure, params: Any, goal: float) -> Measure | None:
    """Try the point where the parameters that the Newton step pushes past a bound sit on it.

    Interior-point and derivative-free methods approach a bound without reaching it (scipy's
    trust-constr stops about a barrier parameter away). When the Newton step from ``m.x``
    (on the positive-definite part of the Hessian) crosses a bound, the parameter is put on
    that bound; the new point is kept if the loss there is not higher. Returns the
    measure at the new point, or None when no parameter qualifies or the loss rose.
    """
    if not params.has_bounds or m.H is None:
        return None
    x, lo, hi = m.x, params.lower, params.upper
    try:
        step = -np.linalg.solve(make_posdef(m.H)[0], m.g)
    except np.linalg.LinAlgError:
        return None
    beyond_lo = np.isfinite(lo) & (x > lo) & (x + step <= lo)
    beyond_hi = np.isfinite(hi) & (x < hi) & (x + step >= hi)
    if not (beyond_lo.any() or beyond_hi.any()):
        return None
    x_new = np.where(beyond_lo, lo, np.where(beyond_hi, hi, x))
    if evaluator.value(x_new) > m.f:
        return None
    return measure(evaluator, x_new, params, goal)


class ConvergenceCriterion:
    """A measure of distance to the minimum; converged when below ``tol * errordef``.

    Parameters
    ----------
    tol : float
    loss : optional
        The loss, for its ``errordef``.
    params : optional
        The parameters (kept for subclasses that need them).
    name : str, optional
    """

    def __init__(
        self, tol: float, loss: Any = None, params: Any = None, name: str | None = None
    ) -> None:
        self.tol = float(tol)
        self.loss = loss
        self.params = params
        self.name = name or type(self).__name__

    @property
    def goal(self) -> float:
        """The threshold ``tol * errordef``."""
        errordef = 1.0 if self.loss is None else self.loss.errordef
        return self.tol * errordef

    def calculate(self, result: Any) -> float:
        """The criterion's value for a result (anything with ``approx``) or for an
        :class:`~zfitlite.result.Approximations` itself.

        Called by the minimizer's driver to measure the end point when the solver did not
        measure it itself; a converged fit must have this below :attr:`goal`.
        """
        raise NotImplementedError

    def converged(self, result: Any) -> bool:
        """True when :meth:`calculate` is below :attr:`goal`."""
        return self.calculate(result) < self.goal

    def __repr__(self) -> str:
        return f"{self.name}(tol={self.tol})"


class EDM(ConvergenceCriterion):
    """Estimated distance to the minimum, ``g^T H^-1 g / 2`` (zfit's and Minuit's measure)."""

    def calculate(self, result: Any) -> float:
        approx = getattr(result, "approx", result)
        if approx.gradient is None:
            raise ValueError("the result holds no gradient; the EDM cannot be computed")
        return edm(
            approx.gradient, approx.hessian, approx.inv_hessian if approx.hessian is None else None
        )
