"""Numerical derivatives with step control, for losses that give no derivatives.

Steps are relative to each parameter's scale: ``h_i = c * max(|x_i|, 0.1 * typical_i)``,
with ``typical_i`` the parameter's step size, else its start value, else 1, so that a
parameter of size 1e-4 gets a step of its own size and not one of size 1e-6.
First derivatives use central differences with one Richardson extrapolation
(error O(h^4), about 1e-12 relative on smooth functions), or, for the residual Jacobians
of least-squares losses, plain central differences (error O(h^2), about 1e-10 relative,
half the calls); second derivatives use
the four-point central formula (error O(h^2)), or central differences of an exact
gradient when one exists.

Bounds: given a :class:`Scales` with the parameters' bounds, no point outside them is
evaluated. A parameter within ``2 h`` of a bound is differenced on one side, away from
it (second-order one-sided formula for first derivatives, error O(h^2); first-order for
second derivatives), so a loss that is undefined beyond its bounds (``x ** 1.5`` with
``x >= 0``) can still be fitted to a minimum on the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Scales",
    "gradient",
    "hessian",
    "hessian_from_gradient",
    "hessian_from_gradient_at",
    "jacobian",
    "steps",
]

_EPS = np.finfo(np.float64).eps
_C_FIRST = _EPS ** (1 / 5)  # Richardson-extrapolated central difference
_C_CENTRAL = _EPS ** (1 / 3)  # plain central difference
_C_SECOND = _EPS ** (1 / 4)
_C_ONE_SIDED = _EPS ** (1 / 3)  # second-order one-sided difference
_C_FORWARD = _EPS ** (1 / 2)  # first-order forward difference


@dataclass(frozen=True)
class Scales:
    """Per-parameter scales for the steps and the box that the steps must stay inside.

    Attributes
    ----------
    typical : numpy.ndarray or None
        As the plain ``typical`` array of the functions below.
    lower, upper : numpy.ndarray
        The parameters' bounds (infinite where there is none).
    """

    typical: np.ndarray | None
    lower: np.ndarray
    upper: np.ndarray


#: What the functions below take as ``typical``: scales, or scales with bounds.
Typical = np.ndarray | Scales | None


def _split(typical: Typical) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    if isinstance(typical, Scales):
        return typical.typical, typical.lower, typical.upper
    return typical, None, None


def _sides(
    x: np.ndarray, reach: np.ndarray, lower: np.ndarray | None, upper: np.ndarray | None
) -> np.ndarray:
    """Per parameter: 0 for a central difference (``x +- reach`` inside the bounds), else
    +1 or -1, the side with more room."""
    if lower is None or upper is None:
        return np.zeros(x.size, dtype=np.int64)
    central = (x - reach >= lower) & (x + reach <= upper)
    return np.where(central, 0, np.where(upper - x >= x - lower, 1, -1))


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
    func: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    typical: Typical = None,
    extrapolate: bool = True,
) -> np.ndarray:
    """Jacobian ``d func_k / d x_i`` of a vector function, shape ``(m, n)`` (``(n,)`` for scalars).

    ``extrapolate=False``: plain central differences (step ``eps^(1/3)``, error O(h^2),
    about 1e-10 relative on smooth functions), 2 calls per parameter instead of 4.
    """
    x = np.asarray(x, dtype=np.float64)
    typ, lower, upper = _split(typical)
    c = _C_FIRST if extrapolate else _C_CENTRAL
    h = steps(x, typ, c)
    side = _sides(x, 2 * h if extrapolate else h, lower, upper)
    f0 = np.asarray(func(x)) if side.any() else None
    cols = []
    for i in range(x.size):
        if side[i] == 0:
            d1 = _central(func, x, i, h[i])
            if not extrapolate:
                cols.append(d1)
                continue
            d2 = _central(func, x, i, 2 * h[i])
            cols.append((4.0 * d1 - d2) / 3.0)
        else:  # one-sided, away from the bound: (-3 f0 + 4 f(x + s h) - f(x + 2 s h)) / (2 s h)
            sh = side[i] * h[i] * (_C_ONE_SIDED / c)
            y1 = x.copy()
            y1[i] += sh
            y2 = x.copy()
            y2[i] += 2 * sh
            cols.append((4.0 * np.asarray(func(y1)) - np.asarray(func(y2)) - 3.0 * f0) / (2 * sh))  # pyright: ignore[reportOperatorIssue]
    return np.stack(cols, axis=-1)


def gradient(
    func: Callable[[np.ndarray], float], x: np.ndarray, typical: Typical = None
) -> np.ndarray:
    """Gradient of a scalar function by Richardson-extrapolated central differences."""
    return np.asarray(jacobian(func, x, typical), dtype=np.float64).reshape(-1)  # pyright: ignore[reportArgumentType]


def hessian(
    func: Callable[[np.ndarray], float],
    x: np.ndarray,
    typical: Typical = None,
    f0: float | None = None,
) -> np.ndarray:
    """Hessian of a scalar function from values only (four-point formula), symmetric.

    Near a bound (see :class:`Scales`) a parameter's two stencil points are ``x`` and
    ``x + h`` (or ``x - h``) instead of ``x +- h``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    typ, lower, upper = _split(typical)
    h = steps(x, typ, _C_SECOND)
    side = _sides(x, h, lower, upper)
    f0 = float(func(x)) if f0 is None else f0
    # per parameter: the offsets of its two stencil points and their distance
    hi = np.where(side < 0, 0.0, h)
    lo = np.where(side > 0, 0.0, -h)
    width = hi - lo
    H = np.empty((n, n))

    def at(delta: dict[int, float]) -> float:
        if not any(delta.values()):
            return f0
        y = x.copy()
        for k, d in delta.items():
            y[k] += d
        return float(func(y))

    for i in range(n):
        if side[i] == 0:
            H[i, i] = (at({i: h[i]}) - 2.0 * f0 + at({i: -h[i]})) / (h[i] * h[i])
        else:  # centred at x + s h: (f(x + 2 s h) - 2 f(x + s h) + f(x)) / h^2
            sh = side[i] * h[i]
            H[i, i] = (at({i: 2 * sh}) - 2.0 * at({i: sh}) + f0) / (h[i] * h[i])
        for j in range(i):
            v = (
                at({i: hi[i], j: hi[j]})
                - at({i: hi[i], j: lo[j]})
                - at({i: lo[i], j: hi[j]})
                + at({i: lo[i], j: lo[j]})
            ) / (width[i] * width[j])
            H[i, j] = H[j, i] = v
    return H


def hessian_from_gradient(
    grad: Callable[[np.ndarray], np.ndarray], x: np.ndarray, typical: Typical = None
) -> np.ndarray:
    """Hessian as the symmetrised Jacobian of an exact gradient."""
    H = jacobian(grad, x, typical)
    return 0.5 * (H + H.T)


def hessian_from_gradient_at(
    grad: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    g0: np.ndarray,
    typical: Typical = None,
) -> np.ndarray:
    """Hessian from an exact gradient whose value ``g0`` at ``x`` is known: forward
    differences, ``n`` gradient calls (:func:`hessian_from_gradient` takes ``4 n``).

    Steps ``sqrt(eps)`` times each parameter's scale (relative error about 1e-8, plenty
    for an EDM, a Newton step or parameter errors), taken away from a bound a parameter
    is within one step of. Symmetrised.
    """
    x = np.asarray(x, dtype=np.float64)
    g0 = np.asarray(g0, dtype=np.float64)
    typ, lower, upper = _split(typical)
    h = steps(x, typ, _C_FORWARD)
    side = _sides(x, h, lower, upper)
    cols = []
    for i in range(x.size):
        y = x.copy()
        hi = -h[i] if side[i] < 0 else h[i]
        y[i] += hi
        hi = y[i] - x[i]  # the step taken, exactly
        cols.append((np.asarray(grad(y), dtype=np.float64) - g0) / hi)
    H = np.stack(cols, axis=-1)
    return 0.5 * (H + H.T)
