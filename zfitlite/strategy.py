"""Strategies: what happens when the loss returns NaN or inf during a fit.

A strategy is configuration only; the count of non-finite values met so far lives in
the evaluator's record of the current fit, so one strategy object serves many fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exceptions import FailMinimizeNaN

__all__ = [
    "DefaultStrategy",
    "DefaultToyStrategy",
    "NonFiniteRecord",
    "PushbackStrategy",
    "ZfitStrategy",
    "nonfinite_at_start_message",
]

_NAN_FIX = (
    "Check the loss's domain, add bounds, or use PushbackStrategy(nan_tolerance=...) "
    "or DefaultToyStrategy to get an invalid result instead of this error"
)


def _fmt(x: Any) -> str:
    return np.array2string(np.asarray(x), precision=6)


def _was(what: str) -> str:
    return "were" if what.endswith("s") else "was"


def nonfinite_at_start_message(what: str, x: Any) -> str:
    """The message for a loss whose ``what`` (value, residuals, ...) is NaN/inf at the start."""
    return (
        f"the loss's {what} {_was(what)} not finite (at the start point; last at x={_fmt(x)}). "
        f"{_NAN_FIX}"
    )


@dataclass
class NonFiniteRecord:
    """The evaluator's per-fit memory of finite points and non-finite encounters."""

    count: int = 0
    last_x: np.ndarray | None = None
    last_value: float | None = None
    errordef: float = 1.0
    points: list[np.ndarray] = field(default_factory=list)


class ZfitStrategy:
    """Base strategy: how to replace a non-finite value, and whether failure raises.

    Parameters
    ----------
    nan_penalty : float, default 100
        A non-finite value is replaced by the last finite value plus
        ``nan_penalty * errordef * count``, so the minimizer backs away.
    nan_tolerance : int, default 30
        After this many non-finite values in one fit the strategy gives up.

    Attributes
    ----------
    raise_on_failure : bool
        True: giving up raises :class:`~zfitlite.exceptions.FailMinimizeNaN`.
        False: the fit returns an invalid result with status ``NONFINITE``.
    """

    raise_on_failure: bool = True

    def __init__(self, nan_penalty: float = 100.0, nan_tolerance: int = 30) -> None:
        if not (np.isfinite(nan_penalty) and nan_penalty > 0):
            raise ValueError(f"nan_penalty must be a finite positive number, got {nan_penalty}")
        if int(nan_tolerance) != nan_tolerance or nan_tolerance < 0:
            raise ValueError(f"nan_tolerance must be a non-negative integer, got {nan_tolerance}")
        self.nan_penalty = float(nan_penalty)
        self.nan_tolerance = int(nan_tolerance)

    def handle_nonfinite(
        self, what: str, x: np.ndarray, value: Any, record: NonFiniteRecord
    ) -> Any:
        """Return a replacement for a non-finite ``value`` of kind ``what`` at ``x``, or raise.

        Parameters
        ----------
        what : {"value", "gradient", "hessian", "residuals", "jacobian"}
        x : numpy.ndarray
            Where the loss was evaluated.
        value : float or numpy.ndarray
            The non-finite output.
        record : NonFiniteRecord
            The fit's record (updated here: ``count`` grows by one).
        """
        record.count += 1
        if record.last_x is None:
            raise FailMinimizeNaN(nonfinite_at_start_message(what, x))
        if record.count > self.nan_tolerance:
            raise FailMinimizeNaN(
                f"the loss's {what} {_was(what)} not finite ({record.count} times; last at "
                f"x={_fmt(x)}). {_NAN_FIX}"
            )
        penalty = self.nan_penalty * record.errordef * record.count
        dx = np.asarray(x, dtype=np.float64) - record.last_x
        dist2 = float(dx @ dx)
        if what == "value":
            assert record.last_value is not None  # set with last_x
            return float(record.last_value) + penalty
        if dist2 == 0.0 or not np.all(np.isfinite(dx)):
            raise FailMinimizeNaN(
                f"the loss's {what} is not finite at x={_fmt(x)}, where its value is finite: "
                "there is no direction to push back in. Check the loss's derivatives there, "
                "or use DefaultToyStrategy to get an invalid result instead of this error"
            )
        if what == "gradient":
            return penalty * dx / dist2
        if what == "hessian":
            return np.eye(dx.size) * penalty / dist2
        raise FailMinimizeNaN(
            f"the loss's {what} {_was(what)} not finite at x={_fmt(x)}, and a pushback is not "
            f"defined for {what}. {_NAN_FIX}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nan_penalty={self.nan_penalty}, nan_tolerance={self.nan_tolerance})"


class PushbackStrategy(ZfitStrategy):
    """Replace non-finite values by a penalty above the last finite value (backs the minimizer off).

    Gives up with :class:`~zfitlite.exceptions.FailMinimizeNaN` after ``nan_tolerance``
    non-finite values in one fit.
    """


class DefaultStrategy(PushbackStrategy):
    """The default: push back from non-finite regions, raise when that keeps failing."""


class DefaultToyStrategy(DefaultStrategy):
    """Like :class:`DefaultStrategy`, but giving up returns an invalid result instead of raising.

    Meant for toy studies, where one failed fit out of thousands must not stop the loop.
    """

    raise_on_failure = False
