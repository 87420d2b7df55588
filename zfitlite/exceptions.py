"""Exceptions raised by zfitlite."""

from __future__ import annotations


class ZfitliteError(Exception):
    """Base class of zfitlite's own exceptions."""


class MaximumIterationReached(ZfitliteError):
    """Raised inside a fit when the evaluator's budget (``maxiter``) is spent.

    The minimizer catches it and returns an invalid :class:`~zfitlite.FitResult`
    with status ``MAXITER``; users only see it when calling an evaluator directly.
    """


class FailMinimizeNaN(ZfitliteError):
    """The loss kept returning non-finite values and the strategy gave up."""


class BackendNotAvailable(ZfitliteError, ImportError):
    """An optional backend was requested but its package is not installed."""
