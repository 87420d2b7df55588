"""Convergence criteria. The default, :class:`EDM`, is the expected distance to the minimum."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = [
    "EDM",
    "ConvergenceCriterion",
    "Measure",
    "bounded_edm",
    "bounded_edm_ops",
    "edm",
    "free_mask",
    "lsq_goal",
    "measure",
    "onto_active_bounds",
    "singular_hessian",
    "singular_jacobian",
]

EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
#: Relative size below which a singular value (or Hessian eigenvalue) counts as zero.
SINGULAR_RTOL = 1e3 * float(np.finfo(np.float64).eps)


def _cholesky(H: np.ndarray) -> Any:
    try:
        c = scipy.linalg.cho_factor(H)
    except (np.linalg.LinAlgError, ValueError):
        return None
    return c if np.all(np.isfinite(c[0])) else None


def make_posdef(hessian: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(H_pd, was_posdef)``: ``H`` itself when positive definite, else ``H`` with
    its eigenvalues replaced by their absolute values (floored at 1e-10 of the largest)."""
    H = 0.5 * hessian + 0.5 * hessian.T  # (H + H.T) / 2 could overflow where H does not
    if _cholesky(H) is not None:
        return H, True
    w, v = np.linalg.eigh(H)
    absw = np.abs(w)
    floor = max(absw.max(initial=0.0) * 1e-10, np.finfo(float).tiny)
    return (v * np.maximum(absw, floor)) @ v.T, False


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
        c = _cholesky(make_posdef(H)[0])
        if c is None:
            return float("inf")
        e = float(0.5 * g @ scipy.linalg.cho_solve(c, g))
    return e if math.isfinite(e) and e >= 0.0 else float("inf")


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
    n = g.shape[0]
    eye = xp.eye(n)
    Hs = xp.where(free[:, None] & free[None, :], 0.5 * H + 0.5 * H.T, eye)
    gm = xp.where(free, g, 0.0)
    finite = xp.all(xp.isfinite(Hs)) & xp.all(xp.isfinite(gm))
    Hs = xp.where(finite, Hs, eye)
    w, v = xp.linalg.eigh(Hs)
    absw = xp.abs(w)
    w_pd = xp.maximum(absw, xp.maximum(xp.max(absw) * 1e-10, _TINY))
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
    if isinstance(m, (int, np.integer)):
        dof = m - n if m > n else max(m, 1)
    else:
        dof = xp.where(m > n, m - n, xp.maximum(m, 1))
    return tol_errordef * xp.maximum(xp.minimum(1.0, f / dof), _TINY)


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
    H = evaluator.hessian(x)
    if params.has_bounds:
        free = free_mask(x, g, params.lower, params.upper)
        e = bounded_edm(g, H, free)
    else:
        free = np.ones(x.size, dtype=bool)
        e = edm(g, H)
    return Measure(x=x, f=float(f), g=g, H=H, edm=e, goal=goal, free=free)


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
