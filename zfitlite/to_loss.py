"""The one door from what users pass as a loss to a :class:`~zfitlite.loss.BaseLoss`.

:func:`as_loss` sits above both :mod:`zfitlite.loss` (our losses) and
:mod:`zfitlite.adapters` (zfit losses, iminuit costs), so neither imports the other
back.
"""

from __future__ import annotations

from typing import Any

from .adapters import adapt_external
from .backends.ops import remembered, same_callable
from .loss import (
    _ERRORDEF_HELP,
    _WRAPPER_ATTR,
    BaseLoss,
    LeastSquares,
    SimpleLoss,
    _CallableLoss,
    _constraint_list,
)

__all__ = ["as_loss", "with_constraints"]


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


def with_constraints(loss: Any, constraints: Any) -> BaseLoss:
    """A copy of ``loss`` with Gaussian ``constraints`` added (see :mod:`zfitlite.constraints`).

    Parameters
    ----------
    loss : LeastSquares, SimpleLoss or a callable with ``errordef``
    constraints : GaussianConstraint or list of them

    Returns
    -------
    BaseLoss
        A :class:`LeastSquares` with extra whitened residuals, or a :class:`SimpleLoss`
        with ``errordef * chi2`` of the constraints added.
    """
    loss = as_loss(loss)
    extra = _constraint_list(constraints)
    if isinstance(loss, LeastSquares):
        new = LeastSquares(
            loss.user_residuals,
            params=loss.params,
            jacobian=loss.user_jacobian,
            errordef=loss.errordef,
            backend=loss.backend_request,
            name=loss.name,
            args=loss.user_args,
            weights=loss.weights,
            loss=loss.robust,
            f_scale=loss.f_scale,
            constraints=[*loss.constraints, *extra],
        )
        new.data = loss.data
        if loss.padded_args is not None:
            k = len(loss.user_args) + 1  # the padded data and weights, the new terms
            new.padded_args = (*loss.padded_args[:k], *new.args[k:])
        return new
    if isinstance(loss, SimpleLoss):
        return SimpleLoss(
            loss.user_func,
            params=loss.params,
            errordef=loss.errordef,
            gradient=loss.user_gradient,
            hessian=loss.user_hessian,
            backend=loss.backend_request,
            name=loss.name,
            args=loss.user_args,
            constraints=[*loss.constraints, *extra],
        )
    raise TypeError(f"cannot add constraints to a {type(loss).__name__}")
