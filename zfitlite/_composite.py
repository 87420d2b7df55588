"""Residuals and scalar losses with the terms real data need, built once per user function.

:class:`CompositeResiduals` turns a user's ``residuals(x, *data)`` into

    [ robust(sqrt(w) * r) where w > 0 else 0 ,  sqrt(errordef) * W (x[idx] - mu) ]

(per-point weights ``w``, 0 for a masked or padded point; a robust loss; Gaussian
constraints as whitened extra rows). Everything that changes between fits (weights,
``f_scale``, ``mu``, ``W``) is data: the composite's arguments are
``(x, *data, w, f_scale, mu, W)``, so compiled solvers keyed on the composite are reused
for new weights, masks, scales and priors. One composite exists per user function and
structure (robust loss, constrained positions), remembered on the user function.

:class:`ConstrainedScalar` does the same for a scalar loss: ``f(x, *data) + errordef *
|W (x[idx] - mu)|^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .backends.ops import remembered
from .robust import namespace, transform

__all__ = ["CompositeResiduals", "ConstrainedScalar", "composite_residuals", "observed_count"]

_COMPOSITE_ATTR = "__zfitlite_composite__"


def _take(xp: Any, x: Any, idx: tuple[int, ...]) -> Any:
    if xp is np:
        return np.asarray(x)[list(idx)]
    if xp.__name__.startswith("tensorflow"):
        import tensorflow as tf

        return tf.gather(x, list(idx))
    return x[np.asarray(idx)]


class CompositeResiduals:
    """``(x, *data, w, f_scale, mu, W) -> residuals`` (see the module notes); picklable.

    Attributes
    ----------
    base : callable
        The user's residuals ``base(x, *data)``.
    loss : str or callable
        The robust loss (``"linear"``: none).
    idx : tuple of int
        The constrained parameters' positions (empty: no constraint rows).
    """

    def __init__(self, base: Callable, loss: Any, idx: tuple[int, ...]) -> None:
        self.base = base
        self.loss = loss
        self.idx = idx
        self.__name__ = getattr(base, "__name__", type(base).__name__)

    def __call__(self, x: Any, *args: Any) -> Any:
        data, (w, f_scale, mu, W) = args[:-4], args[-4:]
        r = self.base(x, *data)
        xp = namespace(r) if not isinstance(r, (list, tuple, float)) else np
        if xp is np:
            r = np.asarray(r, dtype=np.float64)
        r = xp.reshape(r, (-1,))
        observed = w > 0
        r = xp.where(observed, r * xp.sqrt(xp.where(observed, w, 1.0)), 0.0)
        r = transform(xp, self.loss, r, f_scale)
        r = xp.where(observed, r, 0.0)
        if self.idx:
            rc = xp.matmul(W, _take(xp, x, self.idx) - mu)
            r = xp.concatenate([r, xp.reshape(rc, (-1,))])
        return r

    def __repr__(self) -> str:
        return f"<CompositeResiduals of {self.__name__} loss={self.loss!r} constrained={self.idx}>"


class CompositeJacobian:
    """The Jacobian of :class:`CompositeResiduals` from a user's Jacobian (no robust loss)."""

    def __init__(self, jacobian: Callable, idx: tuple[int, ...]) -> None:
        self.jacobian = jacobian
        self.idx = idx

    def __call__(self, x: Any, *args: Any) -> np.ndarray:
        data = args[:-4]
        w, _, _, W = (np.asarray(a) for a in args[-4:])
        J = np.asarray(self.jacobian(x, *data), dtype=np.float64)
        J = np.where((w > 0)[:, None], J * np.sqrt(np.where(w > 0, w, 1.0))[:, None], 0.0)
        if self.idx:
            Jc = np.zeros((len(self.idx), J.shape[1]))
            Jc[:, list(self.idx)] = W
            J = np.concatenate([J, Jc])
        return J


def composite_residuals(base: Callable, loss: Any, idx: tuple[int, ...]) -> CompositeResiduals:
    """The composite of ``base`` for this structure, one per structure (remembered on ``base``)."""
    key = ("composite", loss, idx)
    return remembered(base, _COMPOSITE_ATTR, key, lambda: CompositeResiduals(base, loss, idx))


class ConstrainedScalar:
    """``(x, *data, mu, W, errordef) -> f(x, *data) + errordef * |W (x[idx] - mu)|^2``."""

    def __init__(self, func: Callable, idx: tuple[int, ...]) -> None:
        self.func = func
        self.idx = idx
        self.__name__ = getattr(func, "__name__", type(func).__name__)

    def __call__(self, x: Any, *args: Any) -> Any:
        data, (mu, W, errordef) = args[:-3], args[-3:]
        f = self.func(x, *data)
        xp = namespace(f) if not isinstance(f, (float, int)) else np
        if xp is np:
            x = np.asarray(x, dtype=np.float64)
        rc = xp.matmul(W, _take(xp, x, self.idx) - mu)
        return f + errordef * xp.sum(rc * rc)


class ConstrainedGradient:
    """The gradient of :class:`ConstrainedScalar` from a user's gradient (numpy)."""

    def __init__(self, gradient: Callable, idx: tuple[int, ...]) -> None:
        self.gradient, self.idx = gradient, idx

    def __call__(self, x: Any, *args: Any) -> np.ndarray:
        mu, W, errordef = (np.asarray(a) for a in args[-3:])
        g = np.array(self.gradient(x, *args[:-3]), dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        g_c = 2.0 * errordef * W.T @ (W @ (x[list(self.idx)] - mu))
        np.add.at(g, list(self.idx), g_c)
        return g


class ConstrainedHessian:
    """The Hessian of :class:`ConstrainedScalar` from a user's Hessian (numpy)."""

    def __init__(self, hessian: Callable, idx: tuple[int, ...]) -> None:
        self.hessian, self.idx = hessian, idx

    def __call__(self, x: Any, *args: Any) -> np.ndarray:
        _, W, errordef = (np.asarray(a) for a in args[-3:])
        H = np.array(self.hessian(x, *args[:-3]), dtype=np.float64)
        idx = np.asarray(self.idx)
        np.add.at(H, (idx[:, None], idx[None, :]), 2.0 * errordef * W.T @ W)
        return H


def constrained_scalar(func: Callable, idx: tuple[int, ...]) -> ConstrainedScalar:
    """One :class:`ConstrainedScalar` per function and structure (remembered on ``func``)."""
    key = ("scalar", idx)
    return remembered(func, _COMPOSITE_ATTR, key, lambda: ConstrainedScalar(func, idx))


def observed_count(func: Callable, args: tuple) -> int | None:
    """The observed residuals of ``func(x, *args)`` when known from its data, else None.

    Knows :class:`CompositeResiduals` (points with weight > 0, plus one per constraint
    row) and ``minimize_batch``'s member losses (a NaN mask in front of the data).
    """
    nan_mask = None
    if type(func).__name__ == "_MaskedResiduals" and args:
        nan_mask = np.asarray(args[0], dtype=bool)
        func, args = func.func, args[1:]
    if isinstance(func, CompositeResiduals):
        w = np.asarray(args[-4])
        if w.ndim == 0:  # one weight for all: the count needs the residuals' length
            return None if nan_mask is None else int(nan_mask.size - nan_mask.sum())
        ok = w > 0
        if nan_mask is not None:
            ok = ok & ~nan_mask[: w.shape[0]]
        return int(ok.sum()) + len(func.idx)
    if nan_mask is not None:
        return int(nan_mask.size - nan_mask.sum())
    return None


def observed_in_member(xp: Any, func: Callable, mask: Any, data: tuple) -> Any:
    """As :func:`observed_count` inside a vectorised batch member (``xp`` arrays)."""
    m = mask.shape[0]
    nobs = m - xp.sum(mask)
    if isinstance(func, CompositeResiduals) and data[-4].ndim == 1:
        w = data[-4]
        nobs = nobs - xp.sum((w <= 0) & ~mask[: w.shape[0]])
    return nobs
