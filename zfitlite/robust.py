"""Robust losses for least squares, with the meaning of scipy's ``least_squares(loss=...)``.

scipy minimises ``0.5 * sum(f_scale**2 * rho((r / f_scale)**2))``; zfitlite's
:class:`~zfitlite.loss.LeastSquares` minimises ``sum(r~**2)`` with the transformed
residuals

    r~ = r * sqrt(rho(z) / z),   z = (r / f_scale)**2,

so that ``sum(r~**2) = sum(f_scale**2 * rho(z))``: the same objective up to the factor
1/2, hence the same minimum, and the Gauss-Newton structure (residuals and their
Jacobian) is kept, so Levenberg-Marquardt (single, compiled and batched) and
``ScipyLeastSquares`` fit it unchanged. ``rho(z) / z`` is smooth with value 1 at
``z = 0`` for every built-in loss (written so that it, and its derivatives, are finite
there), so a residual of exactly zero is harmless for autodiff.

What the errors mean under a robust loss: ``hesse()`` and profile errors are computed
from the robust objective as if it were a chi-square (``errordef`` 1): close to the
minimum, points with ``|r| << f_scale`` count fully and outliers count with the
down-weighted curvature of ``rho``. When the data have no outliers they agree with the
plain least-squares errors; with outliers they are the curvature errors of the robust
(M-) estimator, not a sandwich (Huber-White) estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ROBUST_LOSSES", "rho_over_z", "robust_key", "scipy_rho"]

#: The built-in robust losses (scipy's names).
ROBUST_LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")


def namespace(a: Any) -> Any:
    """The array namespace of ``a``: ``jax.numpy``, TensorFlow's numpy API, or numpy."""
    module = type(a).__module__
    if module.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    if module.startswith("tensorflow"):
        import tensorflow.experimental.numpy as tnp  # pyright: ignore[reportMissingImports]

        return tnp
    return np


def robust_key(loss: Any) -> Any:
    """Validate ``loss`` (a name or a callable ``rho(z)``); the key that identifies it."""
    if loss is None:
        return "linear"
    if isinstance(loss, str):
        if loss not in ROBUST_LOSSES:
            raise ValueError(
                f"loss must be one of {list(ROBUST_LOSSES)} or a callable rho(z), got {loss!r}"
            )
        return loss
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a name or a callable rho(z), got {type(loss).__name__}")


def rho_over_z(xp: Any, loss: str | Callable, z: Any) -> Any:
    """``rho(z) / z`` (1 at ``z = 0``), elementwise, finite with finite derivatives."""
    small = z < 1e-6
    zs = xp.where(small, 1.0, z)  # the safe argument of the large-z branch
    if loss == "soft_l1":
        return 2.0 / (xp.sqrt(1.0 + z) + 1.0)
    if loss == "huber":
        big = z > 1.0
        zb = xp.where(big, z, 4.0)
        return xp.where(big, (2.0 * xp.sqrt(zb) - 1.0) / zb, 1.0)
    if loss == "cauchy":
        return xp.where(small, 1.0 - z / 2.0 + z * z / 3.0, xp.log1p(zs) / zs)
    if loss == "arctan":
        return xp.where(small, 1.0 - z * z / 3.0, xp.arctan(zs) / zs)
    # a user's rho(z) (rho(0) = 0, rho'(0) = 1, as scipy requires of its losses)
    out = loss(zs)  # pyright: ignore[reportCallIssue]
    if getattr(out, "ndim", 1) == 2:  # scipy's convention: rows rho, rho', rho''
        out = out[0]
    return xp.where(small, 1.0, out / zs)


def scipy_rho(loss: str | Callable) -> Any:
    """What to pass to scipy's ``least_squares(loss=...)`` for ``loss`` (for comparisons)."""
    if isinstance(loss, str):
        return loss

    def rho(z: np.ndarray) -> np.ndarray:
        h = 1e-6 * np.maximum(1.0, z)
        f0 = np.asarray(loss(z))
        f1 = (np.asarray(loss(z + h)) - np.asarray(loss(z - h))) / (2 * h)
        f2 = (np.asarray(loss(z + h)) - 2 * f0 + np.asarray(loss(z - h))) / (h * h)
        return np.stack([f0, f1, f2])

    return rho


def transform(xp: Any, loss: str | Callable, r: Any, f_scale: Any) -> Any:
    """The robust residuals ``r * sqrt(rho(z) / z)`` with ``z = (r / f_scale)**2``."""
    if loss == "linear":
        return r
    z = (r / f_scale) ** 2
    return r * xp.sqrt(rho_over_z(xp, loss, z))
