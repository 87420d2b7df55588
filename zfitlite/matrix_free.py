"""Convergence at large n without dense n x n algebra.

Above :data:`DENSE_LIMIT` free parameters the end-of-fit measure (EDM and curvature)
never forms the Hessian: the EDM ``g^T H^-1 g / 2`` comes from conjugate gradients on
Hessian-vector products (:meth:`~zfitlite.evaluator.LossEvaluator.hessian_vector`: JAX
forward-over-reverse, one gradient's cost each; elsewhere two gradients), and the same
iteration checks the curvature (a direction with ``p^T H p < 0`` is negative curvature
for certain). Nothing n x n is computed or kept in the result; ``result.hesse()``,
``covariance()`` and ``correlation()`` compute the dense Hessian when asked.

At or below the limit the dense path is kept: there an exact Hessian and one Cholesky
factorisation are cheap (``n = 500``: about 20 ms) and they give the covariance for free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .criterion import Measure, free_mask, measure

__all__ = [
    "CGEDM",
    "DENSE_LIMIT",
    "MatrixFreeMeasure",
    "cg_edm",
    "dense_ok",
    "measure_auto",
    "measure_matrix_free",
    "small_or_none",
]

#: Above this many parameters the end of a fit does no dense n x n work (see module doc).
DENSE_LIMIT = 500
#: A Rayleigh quotient below ``-NEGATIVE_CURVATURE`` times the largest one seen is
#: negative curvature for certain (as ``solvers.base.NEGATIVE_CURVATURE``).
NEGATIVE_CURVATURE = 1e-6


def dense_ok(n: int) -> bool:
    """Whether dense n x n work (Hessian, Cholesky, a densified inverse) is cheap at ``n``."""
    return n <= DENSE_LIMIT


@dataclass
class CGEDM:
    """The end of :func:`cg_edm`.

    ``edm`` is ``g^T y / 2`` with ``y`` the CG solution of ``H y = g``; when CG stopped
    before its tolerance, plus the estimate ``|r|^2 / q_min`` of what remains (``q_min``
    the smallest Rayleigh quotient seen), and ``converged`` is False. ``curvature`` is the
    most negative Rayleigh quotient relative to the largest, when CG met certain negative
    curvature (then ``edm`` is inf), else None.
    """

    edm: float
    iterations: int
    converged: bool
    curvature: float | None


def cg_edm(
    hvp: Callable[[np.ndarray], np.ndarray],
    g: np.ndarray,
    rtol: float = 1e-6,
    maxiter: int | None = None,
) -> CGEDM:
    """``g^T H^-1 g / 2`` by conjugate gradients on Hessian-vector products ``hvp(v)``.

    CG's iterates raise ``g^T y_k`` monotonically towards ``g^T H^-1 g``; it stops when
    the residual is below ``rtol * |g|`` (default: at most ``min(10 n, 1000)`` products;
    rounding makes CG need more than ``n`` on ill-conditioned problems).
    """
    g = np.asarray(g, dtype=np.float64)
    n = g.size
    gnorm = float(np.linalg.norm(g))
    if n == 0 or gnorm == 0.0:
        return CGEDM(0.0, 0, True, None)
    if not np.isfinite(gnorm):
        return CGEDM(float("inf"), 0, False, None)
    maxiter = min(10 * n, 1000) if maxiter is None else maxiter
    y = np.zeros(n)
    r = g.copy()
    p = r.copy()
    rr = gnorm * gnorm
    qmax, qmin = 0.0, float("inf")
    k = 0
    while k < maxiter:
        k += 1
        Ap = np.asarray(hvp(p), dtype=np.float64)
        pAp = float(p @ Ap)
        pp = float(p @ p)
        if not np.isfinite(pAp):
            return CGEDM(float("inf"), k, False, None)
        q = pAp / pp
        qmax = max(qmax, abs(q))
        if q <= 0.0:
            if q < -NEGATIVE_CURVATURE * qmax:
                return CGEDM(float("inf"), k, False, q / qmax)
            # numerically flat along p: the EDM along it is unbounded
            return CGEDM(float("inf"), k, False, None)
        qmin = min(qmin, q)
        alpha = rr / pAp
        y += alpha * p
        r -= alpha * Ap
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= rtol * gnorm:
            return CGEDM(0.5 * float(g @ y), k, True, None)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGEDM(0.5 * float(g @ y) + 0.5 * rr / qmin, k, False, None)


@dataclass
class MatrixFreeMeasure(Measure):
    """A :class:`~zfitlite.criterion.Measure` without a Hessian (``H`` is None)."""

    cg_iterations: int = 0
    curvature: float | None = None


def measure_matrix_free(evaluator: Any, x: np.ndarray, params: Any, goal: float) -> Measure:
    """Value, gradient and EDM at ``x`` from Hessian-vector products; no Hessian."""
    f, g = evaluator.value_gradient_reusing(x)
    if params.has_bounds:
        free = np.asarray(free_mask(x, g, params.lower, params.upper), dtype=bool)
    else:
        free = np.ones(x.size, dtype=bool)
    everywhere = bool(free.all())

    def hvp(v: np.ndarray) -> np.ndarray:
        if everywhere:
            return evaluator.hessian_vector(x, v)
        full = np.zeros(x.size)
        full[free] = v
        return evaluator.hessian_vector(x, full)[free]

    cg = cg_edm(hvp, g[free])
    return MatrixFreeMeasure(
        x=x,
        f=float(f),
        g=g,
        H=None,
        edm=cg.edm,
        goal=goal,
        free=free,
        cg_iterations=cg.iterations,
        curvature=cg.curvature,
    )


def measure_auto(evaluator: Any, x: np.ndarray, params: Any, goal: float) -> Measure:
    """:func:`~zfitlite.criterion.measure` (dense) up to :data:`DENSE_LIMIT` parameters,
    :func:`measure_matrix_free` above."""
    if dense_ok(x.size):
        return measure(evaluator, x, params, goal)
    return measure_matrix_free(evaluator, x, params, goal)


def small_or_none(matrix: np.ndarray | None, n: int) -> np.ndarray | None:
    """``matrix`` when n x n arrays are cheap at ``n``, else None (not kept in a result)."""
    return matrix if dense_ok(n) else None
