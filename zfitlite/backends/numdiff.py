"""Numerical derivatives with step control, for losses that give no derivatives.

Steps are relative to each parameter's scale: ``h_i = c * max(|x_i|, 0.1 * typical_i)``,
with ``typical_i`` the parameter's step size, else its start value, else 1, so that a
parameter of size 1e-4 gets a step of its own size and not one of size 1e-6.
First derivatives use central differences with one Richardson extrapolation
(error O(h^4), about 1e-12 relative on smooth functions); second derivatives use
the four-point central formula (error O(h^2)), or central differences of an exact
gradient when one exists.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["gradient", "hessian", "hessian_from_gradient", "jacobian", "steps"]

_EPS = np.finfo(np.float64).eps
_C_FIRST = _EPS ** (1 / 5)  # Richardson-extrapolated central difference
_C_SECOND = _EPS ** (1 / 4)


def steps(x: np.ndarray, typical: np.ndarray | None, c: float) -> np.ndarray:
    """Per-parameter steps, adjusted so that ``x + h`` is exactly representable."""
    scale = np.abs(x) if typical is None else np.maximum(np.abs(x), 0.1 * typical)
    scale = np.where(scale > 0, scale, 1.0)
    h = c * scale
    return (x + h) - x


def _central(
    func: Callable[[np.ndarray], np.ndarray], x: np.ndarray, i: int, h: float
) -> np.ndarray:
    xp = x.copy()
    xm = x.copy()
    xp[i] += h
    xm[i] -= h
    return (np.asarray(func(xp)) - np.asarray(func(xm))) / (2 * h)


def jacobian(
    func: Callable[[np.ndarray], np.ndarray], x: np.ndarray, typical: np.ndarray | None = None
) -> np.ndarray:
    """Jacobian ``d func_k / d x_i`` of a vector function, shape ``(m, n)`` (``(n,)`` for scalars)."""
    x = np.asarray(x, dtype=np.float64)
    h = steps(x, typical, _C_FIRST)
    cols = []
    for i in range(x.size):
        d1 = _central(func, x, i, h[i])
        d2 = _central(func, x, i, 2 * h[i])
        cols.append((4.0 * d1 - d2) / 3.0)
    return np.stack(cols, axis=-1)


def gradient(
    func: Callable[[np.ndarray], float], x: np.ndarray, typical: np.ndarray | None = None
) -> np.ndarray:
    """Gradient of a scalar function by Richardson-extrapolated central differences."""
    return np.asarray(jacobian(func, x, typical), dtype=np.float64).reshape(-1)


def hessian(
    func: Callable[[np.ndarray], float],
    x: np.ndarray,
    typical: np.ndarray | None = None,
    f0: float | None = None,
) -> np.ndarray:
    """Hessian of a scalar function from values only (four-point formula), symmetric."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    h = steps(x, typical, _C_SECOND)
    f0 = float(func(x)) if f0 is None else f0
    H = np.empty((n, n))

    def at(delta: dict[int, float]) -> float:
        y = x.copy()
        for k, d in delta.items():
            y[k] += d
        return float(func(y))

    for i in range(n):
        H[i, i] = (at({i: h[i]}) - 2.0 * f0 + at({i: -h[i]})) / (h[i] * h[i])
        for j in range(i):
            v = (
                at({i: h[i], j: h[j]})
                - at({i: h[i], j: -h[j]})
                - at({i: -h[i], j: h[j]})
                + at({i: -h[i], j: -h[j]})
            ) / (4.0 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return H


def hessian_from_gradient(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, typical: np.ndarray | None = None
) -> np.ndarray:
    """Hessian as the symmetrised Jacobian of an exact gradient."""
    H = jacobian(grad, x, typical)
    return 0.5 * (H + H.T)
