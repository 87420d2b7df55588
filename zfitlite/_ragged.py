"""Ragged data: padding to a few bucket sizes, so compiled programs are reused.

Single fits (:meth:`~zfitlite.loss.LeastSquares.from_data`) pad their observed points to
:func:`bucket_size` with masked points; :func:`~zfitlite.batch.minimize_batch` accepts a
list of arrays per data argument (one per member, of different lengths) and pads them
with NaN, its rule for missing observations (:func:`batch_data`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["batch_data", "bucket_size", "is_ragged", "pad_ragged", "pad_rows"]

#: The smallest bucket.
MIN_BUCKET = 8


def bucket_size(k: int) -> int:
    """The bucket for ``k`` points: the smallest of 8, 12, 16, 24, 32, 48, ... that holds it.

    Powers of two and one and a half times them: at most a third of the rows is padding,
    and data of 1 to 22 points use four programs (8, 12, 16, 24).

    Examples
    --------
    >>> [bucket_size(k) for k in (1, 8, 9, 13, 22, 100)]
    [8, 8, 12, 16, 24, 128]
    """
    if k <= MIN_BUCKET:
        return MIN_BUCKET
    p = 1 << (math.ceil(math.log2(k)) - 1)  # k in (p, 2p]
    return p + p // 2 if k <= p + p // 2 else 2 * p


def pad_rows(a: np.ndarray, size: int, fill: float | None = None) -> np.ndarray:
    """``a`` padded along axis 0 to ``size`` rows with ``fill`` (None: repeat the last row)."""
    a = np.asarray(a)
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    if fill is None:
        tail = np.repeat(a[-1:], extra, axis=0)
    else:
        tail = np.full((extra, *a.shape[1:]), fill, dtype=a.dtype)
    return np.concatenate([a, tail])


def is_ragged(arg: Any) -> bool:
    """True for a list or tuple of arrays (one per member) whose leading lengths differ,
    or a 1-D object array of arrays."""
    if isinstance(arg, np.ndarray):
        return arg.dtype == object and arg.ndim == 1
    if not isinstance(arg, (list, tuple)) or not arg:
        return False
    if not all(hasattr(a, "__len__") for a in arg):
        return False
    lengths = {np.shape(a)[0] if np.ndim(a) else -1 for a in arg}
    return len(lengths) > 1


def pad_ragged(members: Sequence[Any], size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(padded, lengths)``: members stacked along a new batch axis, NaN-padded.

    Float members are padded with NaN (missing: masked by the batch); integer members
    with their last entry.
    """
    arrays = [np.asarray(a) for a in members]
    lengths = np.array([a.shape[0] for a in arrays])
    size = int(lengths.max()) if size is None else size
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= {"b", "i", "u"}:
        return np.stack([pad_rows(a, size) for a in arrays]), lengths
    return np.stack([pad_rows(a.astype(np.float64), size, np.nan) for a in arrays]), lengths


def batch_data(loss: Any, args: Sequence[Any]) -> tuple:
    """The data arguments of ``minimize_batch`` for ``loss``: ragged lists padded, and the
    loss's own terms (weights, robust scale, constraints) appended per member.

    Parameters
    ----------
    loss : any loss accepted by ``minimize_batch``
    args : sequence
        What the user passed: arrays with a leading batch axis, or lists of per-member
        arrays of different lengths (ragged: padded with NaN to the bucket size of the
        longest, :func:`bucket_size`). For a
        :meth:`~zfitlite.loss.LeastSquares.from_data` loss ``(x, y)`` or ``(x, y,
        sigma)``; for another loss the data of its own residual function.

    Returns
    -------
    tuple
        The arrays for the residual function the solvers see (``loss.residuals_func``).
    """
    from ._composite import CompositeResiduals, ConstrainedScalar

    args = list(args)
    if args and any(is_ragged(a) for a in args):
        size = max(
            (max(np.shape(m)[0] for m in a) for a in args if is_ragged(a)),
            default=0,
        )
        size = bucket_size(size)  # batches of similar lengths share compiled programs
        args = [pad_ragged(a, size)[0] if is_ragged(a) else a for a in args]
    func = getattr(loss, "residuals_func", None) or getattr(loss, "func", None)
    if not isinstance(func, (CompositeResiduals, ConstrainedScalar)):
        if args and getattr(loss, "data", None) is not None and len(args) == 2:
            args.append(_template_sigma(loss, args[1]))
        return tuple(args)
    own = tuple(loss.args)
    nuser = len(own) - (4 if isinstance(func, CompositeResiduals) else 3)  # then its terms
    from_data = getattr(loss, "data", None) is not None
    if from_data and "cov" in loss.data:
        raise ValueError(
            "minimize_batch does not take a from_data loss with cov=: whiten each member's "
            "data yourself, or fit them one by one"
        )
    if len(args) == len(own) and all(a is b for a, b in zip(args, own)):
        args = []  # minimize_batch passed the loss's own args back
    if not args:
        args = list(own[:nuser])  # the loss's own data, with its batch axis
    elif from_data and len(args) == nuser - 1:
        args.append(_template_sigma(loss, args[1]))
    batch = np.shape(args[0])[0]
    extras = list(own[nuser:])
    if isinstance(func, CompositeResiduals) and from_data:
        # the weights of from_data's own (padded) points: NaN marks the members' missing ones
        extras[0] = np.float64(1.0)
    tiled = [np.broadcast_to(np.asarray(e), (batch, *np.shape(e))).copy() for e in extras]
    return (*args, *tiled)


def _template_sigma(loss: Any, y: Any) -> np.ndarray:
    """The members' sigma when ``minimize_batch`` gets ``(x, y)`` for a from_data loss: the
    loss's own sigma when it is one number for every point."""
    sigma = np.asarray(loss.data["sigma"])[np.asarray(loss.data["mask"])]
    if sigma.size and np.all(sigma == sigma[0]):
        return np.full(np.shape(y), float(sigma[0]))
    raise ValueError(
        "minimize_batch: the from_data loss has per-point sigma; pass the members' sigma "
        "as a third data argument, args=(x, y, sigma)"
    )
