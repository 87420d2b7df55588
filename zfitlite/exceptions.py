"""Exceptions raised by zfitlite.

What a user meets and what to do (see also :class:`~zfitlite.status.Status`):

* ``ValueError`` / ``TypeError`` before a fit starts: a bad argument (parameters, bounds,
  ``tol``, ``maxiter``, options, a missing ``errordef``, a global minimizer without bounds).
  The message names the argument and the fix; nothing has been evaluated.
* :class:`LossEvaluationError` during a fit: the loss raised, or returned something that
  is not a finite real scalar of the right shape (a vector, a complex number, a gradient
  of the wrong shape). With :class:`~zfitlite.minimize.DefaultToyStrategy` a loss that
  raises gives an invalid result with status ``LOSS_RAISED`` instead.
* :class:`FailMinimizeNaN` during a fit: the loss kept returning NaN/inf and the strategy
  gave up. With :class:`~zfitlite.minimize.DefaultToyStrategy` the fit returns an invalid
  result with status ``NONFINITE`` instead.

Exceptions raised during a fit carry ``best_x``, ``best_value`` and ``param_names``: the
lowest finite value seen before the failure (``best_x`` is None when none was seen).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendNotAvailable",
    "FailMinimizeNaN",
    "LossOutputError",
    "MaximumIterationReached",
    "ZfitliteError",
]


class ZfitliteError(Exception):
    """Base class of zfitlite's own exceptions."""

    #: The best (lowest finite) point seen during the fit that failed, where known.
    best_x: Any = None
    #: The loss at :attr:`best_x` (inf when no finite value was seen).
    best_value: float = float("inf")
    #: The parameter names of :attr:`best_x`.
    param_names: tuple[str, ...] = ()


class MaximumIterationReached(ZfitliteError):
    """Raised inside a fit when the evaluator's budget (``maxiter``) is spent.

    The minimizer catches it and returns an invalid :class:`~zfitlite.FitResult`
    with status ``MAXITER``; users only see it when calling an evaluator directly.
    """


class FailMinimizeNaN(ZfitliteError):
    """The loss kept returning non-finite values and the strategy gave up."""


class LossOutputError(ZfitliteError, ValueError):
    """A loss (or its gradient, Hessian, residuals, Jacobian) returned the wrong kind of output.

    Raised by the backends (a vector where a scalar is due, a complex number, a string);
    the evaluator re-raises it as a :class:`~zfitlite.evaluator.LossEvaluationError`
    that says where. A ``ValueError`` for code that caught the earlier ``ValueError``.
    """


class BackendNotAvailable(ZfitliteError, ImportError):
    """An optional backend was requested but its package is not installed."""
