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
import scipy.sparse

from .backends.ops import remembered
from .robust import namespace, transform

__all__ = [
    "CompositeResiduals",
    "ConstrainedScalar",
    "composite_residuals",
    "fixed_count",
    "observed_count",
    "observed_points",
]

_COMPOSITE_ATTR = "__zfitlite_composite__"


def _take(xp: Any, x: Any, idx: tuple[int, ...]) -> Any:
    if xp is np:
        return np.asarray(x)[list(idx)]
    if xp.__name__.startswith("tensorflow"):
        import tensorflow as tf

        return tf.gather(x, list(idx))
    return x[np.asarray(idx)]


def _xp_of(r: Any) -> Any:
    return namespace(r) if not isinstance(r, (list, tuple, float, np.ndarray)) else np


def _flat(r: Any) -> Any:
    xp = _xp_of(r)
    if xp is np:
        r = np.asarray(r, dtype=np.float64)
    return xp.reshape(r, (-1,))


def _is_float(a: Any) -> bool:
    dtype = getattr(a, "dtype", None)
    if dtype is None:
        return isinstance(a, float)
    try:
        return np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).kind == "f"
    except TypeError:
        return False


def _fill(a: Any) -> Any:
    """``a`` with NaN replaced by 0 (float arrays; others unchanged)."""
    if not _is_float(a):
        return a
    xp = _xp_of(a)
    return xp.where(xp.isnan(a), 0.0, a)


def has_nan(args: tuple) -> bool:
    """Whether any float array in ``args`` holds NaN (host arrays only)."""
    return any(_is_float(a) and bool(np.isnan(np.asarray(a)).any()) for a in args)


def missing_at(base: Callable, x: Any, data: tuple) -> np.ndarray:
    """The residuals of ``base(x, *data)`` that are missing (NaN only because of NaN data)."""
    with np.errstate(all="ignore"):
        raw = np.asarray(_flat(base(x, *data)), dtype=np.float64)
        filled = np.asarray(_flat(base(x, *(_fill(a) for a in data))), dtype=np.float64)
    return np.isnan(raw) & ~np.isnan(filled)


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
    fill_nan : bool
        The data hold NaN (missing values): ``minimize_batch``'s rule, a residual is missing
        when it is NaN with the data as given but not with the NaNs replaced by 0.
    """

    def __init__(
        self, base: Callable, loss: Any, idx: tuple[int, ...], fill_nan: bool = False
    ) -> None:
        self.base = base
        self.loss = loss
        self.idx = idx
        self.fill_nan = fill_nan
        self.__name__ = getattr(base, "__name__", type(base).__name__)

    def __call__(self, x: Any, *args: Any) -> Any:
        data, (w, f_scale, mu, W) = args[:-4], args[-4:]
        if self.fill_nan:
            r = _flat(self.base(x, *(_fill(a) for a in data)))
            xp = _xp_of(r)
            raw = _flat(self.base(x, *data))
            r = xp.where(xp.isnan(raw) & ~xp.isnan(r), 0.0, r)
        else:
            r = _flat(self.base(x, *data))
            xp = _xp_of(r)
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
    """The Jacobian of :class:`CompositeResiduals` from a user's Jacobian (no robust loss).

    With ``base`` (data holding NaN), the rows of missing residuals are 0 and the Jacobian
    is taken on the data with NaN replaced by 0.
    """

    def __init__(
        self, jacobian: Callable, idx: tuple[int, ...], base: Callable | None = None
    ) -> None:
        self.jacobian = jacobian
        self.idx = idx
        self.base = base

    def __call__(self, x: Any, *args: Any) -> np.ndarray:
        data = args[:-4]
        w, _, _, W = (np.asarray(a) for a in args[-4:])
        if self.base is not None:
            missing = missing_at(self.base, x, data)
            w = np.where(missing, 0.0, np.broadcast_to(w, missing.shape))
            data = tuple(_fill(a) for a in data)
        J = self.jacobian(x, *data)
        if scipy.sparse.issparse(J):
            return self._sparse(J, w, W)
        J = np.asarray(J, dtype=np.float64)
        w = np.broadcast_to(w, J.shape[:1])
        J = np.where((w > 0)[:, None], J * np.sqrt(np.where(w > 0, w, 1.0))[:, None], 0.0)
        if self.idx:
            Jc = np.zeros((len(self.idx), J.shape[1]))
            Jc[:, list(self.idx)] = W
            J = np.concatenate([J, Jc])
        return J

    def _sparse(self, J: Any, w: Any, W: Any) -> Any:
        """The sparse form of ``__call__``: rows weighted, constraint rows appended (CSR)."""
        J = scipy.sparse.csr_matrix(J, dtype=np.float64)
        w = np.broadcast_to(w, J.shape[:1])
        J = scipy.sparse.diags(np.where(w > 0, np.sqrt(np.where(w > 0, w, 1.0)), 0.0)) @ J
        if self.idx:
            Jc = np.zeros((len(self.idx), J.shape[1]))
            Jc[:, list(self.idx)] = W
            J = scipy.sparse.vstack([J, scipy.sparse.csr_matrix(Jc)])
        return scipy.sparse.csr_matrix(J)


def composite_residuals(
    base: Callable, loss: Any, idx: tuple[int, ...], fill_nan: bool = False
) -> CompositeResiduals:
    """The composite of ``base`` for this structure, one per structure (remembered on ``base``)."""
    key = ("composite", loss, idx, fill_nan)
    return remembered(
        base, _COMPOSITE_ATTR, key, lambda: CompositeResiduals(base, loss, idx, fill_nan)
    )


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
    if _batch_member(func) and args:
        nan_mask = np.asarray(args[0], dtype=bool)
        func, args = func.func, args[1:]
    if isinstance(func, CompositeResiduals) and func.fill_nan and nan_mask is None:
        return None  # which points are missing depends on the residuals: see observed_points
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


def _batch_member(func: Callable) -> bool:
    """``func`` is a ``minimize_batch`` member's residuals (a NaN mask in front of its data)."""
    return type(func).__name__ == "_MaskedResiduals"


def fixed_count(func: Callable, args: tuple) -> bool:
    """:func:`observed_count` of ``func(x, *args)`` cannot change while ``args`` is this
    tuple: a composite's weights are its own read-only copy (``LeastSquares`` makes one)
    or one number. A batch member's NaN mask and NaN data (counted from the residuals)
    are not fixed this way."""
    if _batch_member(func):
        return False
    if not isinstance(func, CompositeResiduals):
        return True  # no weights, no mask: nothing to count
    if func.fill_nan:
        return False
    w = args[-4]
    return isinstance(w, np.float64) or (isinstance(w, np.ndarray) and not w.flags.writeable)


def observed_in_member(xp: Any, func: Callable, mask: Any, data: tuple) -> Any:
    """As :func:`observed_count` inside a vectorised batch member (``xp`` arrays)."""
    m = mask.shape[0]
    nobs = m - xp.sum(mask)
    if isinstance(func, CompositeResiduals) and data[-4].ndim == 1:
        w = data[-4]
        nobs = nobs - xp.sum((w <= 0) & ~mask[: w.shape[0]])
    return nobs


def observed_points(loss: Any, x: Any) -> int | None:
    """The observed residuals of ``loss`` for a fit starting at ``x``, or None if unknown.

    As ``loss.nobs``, and for a loss whose data hold NaN, counted from the residuals at
    ``x`` (a residual that is NaN only because of NaN data is missing).
    """
    func = getattr(loss, "residuals_func", None)
    if not (isinstance(func, CompositeResiduals) and func.fill_nan):
        return getattr(loss, "nobs", None)
    args = tuple(loss.args)
    w = np.asarray(args[-4])
    missing = missing_at(func.base, np.asarray(x, dtype=np.float64), args[:-4])
    ok = ~missing if w.ndim == 0 else ~missing & (w > 0)
    return int(ok.sum()) + len(func.idx)
