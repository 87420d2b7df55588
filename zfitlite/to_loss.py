"""The one door from what users pass as a loss to a :class:`~zfitlite.loss.BaseLoss`.

:func:`as_loss` sits above both :mod:`zfitlite.loss` (our losses) and
:mod:`zfitlite.adapters` (zfit losses, iminuit costs), so neither imports the other
back.
"""

from __future__ import annotations

from typing import Any

from .adapters import adapt_external
from .backends.ops import remembered, same_callable
from .loss import _ERRORDEF_HELP, _WRAPPER_ATTR, BaseLoss, _CallableLoss

__all__ = ["as_loss"]


def as_loss(obj: Any) -> BaseLoss:
    """Turn what users pass as a loss into a :class:`BaseLoss`.

    A plain callable needs an ``errordef`` attribute. Its wrapper is remembered on the
    callable, so fitting the same function again reuses its compiled functions.

    Raises
    ------
    ValueError
        For a callable without ``errordef``.
    TypeError
        For anything that is not a loss.
    """
    if isinstance(obj, BaseLoss):
        return obj
    adapted = adapt_external(obj)
    if adapted is not None:
        return adapted
    if callable(obj):
        if getattr(obj, "errordef", None) is None:
            name = getattr(obj, "__name__", type(obj).__name__)
            raise ValueError(f"loss '{name}' has no errordef: {_ERRORDEF_HELP}")
        return remembered(
            obj,
            _WRAPPER_ATTR,
            "loss",
            lambda: _CallableLoss(obj),
            valid=lambda w: isinstance(w, _CallableLoss) and same_callable(w.func, obj),
        )
    raise TypeError(
        f"a loss must be a callable with an errordef attribute, a zfitlite loss or a FitResult; "
        f"got {type(obj).__name__}"
    )
