"""One status enumeration for every minimizer, with human-readable messages.

Success is derived from the status: only :attr:`Status.CONVERGED` is a success.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

#: The status code of a native solver's state while its loop runs (not a :class:`Status`:
#: no result ever carries it). The one definition every solver loop uses.
RUNNING: Final = -1


class Status(IntEnum):
    """Outcome of a minimization.

    The integer values are stable and are what :meth:`FitResult.to_dict` stores.
    """

    CONVERGED = 0
    MAXITER = 1
    NO_STEP = 2
    NONFINITE = 3
    INTERRUPTED = 4
    NOT_CONVERGED = 5
    LOSS_RAISED = 6
    BACKEND_FAILURE = 7
    SINGULAR = 8

    @property
    def message(self) -> str:
        """A sentence saying what the status means and what to try next."""
        return _MESSAGES[self]

    @property
    def success(self) -> bool:
        """True only for :attr:`CONVERGED`."""
        return self is Status.CONVERGED


_MESSAGES = {
    Status.CONVERGED: "converged: EDM below tol * errordef",
    Status.MAXITER: (
        "stopped: the maximum number of loss evaluations (maxiter) was reached before the "
        "EDM fell below tol * errordef; raise maxiter or start closer to the minimum"
    ),
    Status.NO_STEP: (
        "stopped: no step that lowers the loss could be found although the EDM is above "
        "tol * errordef; the loss may be too noisy for this tol, or the start is on a plateau"
    ),
    Status.NONFINITE: (
        "stopped: the loss returned NaN or inf and the strategy could not recover; check the "
        "loss's domain or use PushbackStrategy / bounds"
    ),
    Status.INTERRUPTED: (
        "stopped: interrupted by the user; the best point so far is reported (its EDM is not "
        "computed); to go on, pass this result to minimize() again"
    ),
    Status.NOT_CONVERGED: (
        "stopped: the solver finished but the EDM is still above tol * errordef; try another "
        "minimizer, a better start, or chain this result into a second minimizer"
    ),
    Status.LOSS_RAISED: (
        "stopped: the loss raised an exception during the fit; the best point before it is "
        "reported; make the loss return a number wherever the minimizer may step (bounds keep "
        "it inside its domain)"
    ),
    Status.BACKEND_FAILURE: (
        "stopped: the wrapped solver reported a failure (see info['original']); try another "
        "minimizer or a better start"
    ),
    Status.SINGULAR: (
        "stopped where the loss does not depend on some parameter(s) (singular Hessian): the "
        "minimum and its uncertainties are not determined; the fit may have run onto a plateau "
        "(e.g. an exponential rate going to infinity); start elsewhere, add bounds, or fix the "
        "redundant parameter"
    ),
}
