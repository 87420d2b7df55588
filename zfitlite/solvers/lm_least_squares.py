"""Levenberg-Marquardt on residuals: damped Gauss-Newton with Moré scaling and Nielsen's update.

For ``F(x) = sum(r(x)**2)`` the step solves, in the least-squares sense,

    minimise ||J h + r||^2 + mu ||D h||^2

through a QR factorisation of the stacked matrix ``[J; sqrt(mu) D]`` (never forming
``J^T J``, which squares the condition number). ``D`` holds the running maximum of the
Jacobian's column norms (Moré 1978), so the damping is invariant to parameter units.
The damping follows Nielsen (1999): after a step with gain ratio ``rho > 0``,
``mu *= max(1/3, 1 - (2 rho - 1)^3)``; after a rejected step ``mu *= nu; nu *= 2``.

Convergence keeps zfit's meaning, with the scale of the problem taken into account:
with the Gauss-Newton Hessian ``2 J^T J`` the EDM is ``||Q^T r||^2``, the part of the
residual that the model can still explain. Converged means

    EDM < tol * errordef * min(1, s^2),   s^2 = F / (m - n),

so converged always implies ``EDM < tol * errordef`` (the zfit rule), and on a problem
whose residual sum is tiny (NIST Lanczos1: 1e-25) the goal shrinks with it: lowering
``tol`` buys correct digits whatever the scale of the loss. When no step can lower the
loss any more (floating-point precision is exhausted) the fit is converged if the plain
rule ``EDM < tol * errordef`` holds, and ``NO_STEP`` otherwise.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = [
    "column_scale",
    "lsq_edm",
    "lsq_goal",
    "lsq_predicted_reduction",
    "lsq_step",
    "nielsen_update",
]


def column_scale(J: np.ndarray, D: np.ndarray | None = None) -> np.ndarray:
    """Moré's scaling: the running maximum of the column norms (1 for all-zero columns)."""
    norms = np.linalg.norm(J, axis=0)
    norms = np.where(norms > 0, norms, 1.0) if D is None else np.maximum(D, norms)
    return norms


def lsq_edm(J: np.ndarray, r: np.ndarray, free: np.ndarray | None = None) -> float:
    """``EDM = r^T J (J^T J)^-1 J^T r``, computed as ``||Q^T r||^2`` (stable)."""
    if free is not None:
        if not free.any():
            return 0.0
        J = J[:, free]
    Q, _ = np.linalg.qr(J, mode="reduced")
    qr = Q.T @ r
    return float(qr @ qr)


def lsq_goal(tol: float, errordef: float, f: float, m: int, n: int) -> float:
    """The EDM goal ``tol * errordef * min(1, s^2)`` with ``s^2 = F / (m - n)``."""
    dof = m - n if m > n else max(m, 1)
    s2 = f / dof
    return tol * errordef * min(1.0, s2) if s2 > 0 else tol * errordef * np.finfo(float).tiny


def lsq_step(
    J: np.ndarray, r: np.ndarray, D: np.ndarray, mu: float, free: np.ndarray
) -> np.ndarray:
    """The damped Gauss-Newton step over the free parameters (zero for the others)."""
    h = np.zeros(J.shape[1])
    if not free.any():
        return h
    Jf = J[:, free]
    A = np.vstack([Jf, np.sqrt(mu) * np.diag(D[free])])
    b = np.concatenate([-r, np.zeros(Jf.shape[1])])
    Q, R = np.linalg.qr(A, mode="reduced")
    try:
        h[free] = scipy.linalg.solve_triangular(R, Q.T @ b)
    except (np.linalg.LinAlgError, ValueError):
        h[free] = np.linalg.lstsq(A, b, rcond=None)[0]
    return h


def lsq_predicted_reduction(J: np.ndarray, r: np.ndarray, h: np.ndarray) -> float:
    """``||r||^2 - ||r + J h||^2``: the reduction the linear model predicts (inf for a huge step)."""
    lin = r + J @ h
    return float(r @ r - lin @ lin)


def nielsen_update(mu: float, nu: float, rho: float) -> tuple[float, float]:
    """Nielsen's damping update for a step with gain ratio ``rho``."""
    if rho > 0:
        return mu * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0
    return mu * nu, 2.0 * nu
