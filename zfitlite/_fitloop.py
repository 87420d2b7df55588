"""Progress for loops of single fits: per-subject counts and the total time.

leaspy users personalise subject by subject and see a bar with the number of subjects
done and the time; :class:`FitProgress` gives a loop of ``minimize`` calls the same (the
bar follows :mod:`zfitlite._progress`'s rule: shown where someone watches, or when
forced), and :func:`fit_each` is the loop itself. ``minimize_batch`` has its own bar.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ._progress import make_bar

__all__ = ["FitProgress", "fit_each"]


class FitProgress:
    """Count finished fits (valid or not) on a bar and time the whole loop.

    Parameters
    ----------
    total : int, optional
        The number of fits expected.
    progress : bool or None
        True/False force the bar; None is automatic (see :mod:`zfitlite._progress`).
    desc : str
        Label of the bar.

    Examples
    --------
    >>> import zfitlite
    >>> def chi2(x):
    ...     return (x[0] - 1.0) ** 2
    >>> chi2.errordef = 1.0
    >>> with FitProgress(total=2, progress=False) as prog:
    ...     for start in ([0.0], [3.0]):
    ...         _ = prog.done(zfitlite.minimize.Minuit().minimize(chi2, start))
    >>> prog.nfits, prog.nvalid
    (2, 2)
    """

    def __init__(
        self, total: int | None = None, progress: bool | None = None, desc: str = "fits"
    ) -> None:
        self.total = total
        self.progress = progress
        self.desc = desc
        self.nfits = 0
        self.nvalid = 0
        self.start = time.perf_counter()
        self.elapsed = 0.0
        self._bar: Any = None

    def __enter__(self) -> FitProgress:
        self.start = time.perf_counter()
        self._bar = make_bar(
            self.progress, total=self.total, desc=self.desc, unit="subject", leave=True
        )
        return self

    def done(self, result: Any) -> Any:
        """Count one finished fit (its ``valid`` flag decides valid or failed); returns it."""
        self.nfits += 1
        self.nvalid += bool(getattr(result, "valid", False))
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(
                f"valid {self.nvalid}, failed {self.nfits - self.nvalid}", refresh=False
            )
        self.elapsed = time.perf_counter() - self.start
        return result

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start
        if self._bar is not None:
            self._bar.close()

    def summary(self) -> str:
        """One line: fits, valid ones, total time and time per subject."""
        per = self.elapsed / self.nfits if self.nfits else float("nan")
        return (
            f"{self.nfits} fits ({self.nvalid} valid) in {self.elapsed:.3g} s, "
            f"{1e3 * per:.3g} ms per subject"
        )


def fit_each(
    minimizer: Any,
    losses: Iterable[Any],
    starts: Sequence[Any] | Any = None,
    ids: Sequence[Any] | None = None,
    *,
    progress: bool | None = None,
    desc: str = "fits",
) -> tuple[list, FitProgress]:
    """Fit each loss in turn with ``minimizer``, with a per-subject bar and the total time.

    Parameters
    ----------
    minimizer : BaseMinimizer
    losses : iterable of losses
    starts : sequence of start values (one per loss), one start shared by all, or None
        (each loss's own ``params``).
    ids : sequence, optional
        Subject ids, passed to ``ScipyMinimize`` as ``problem_id`` (leaspy's ``patient_id``).
    progress, desc
        As for :class:`FitProgress`.

    Returns
    -------
    (list of FitResult, FitProgress)
        The results in order, and the counts and time (``prog.summary()``).
    """
    losses = list(losses)
    per_loss = starts is not None and len(starts) == len(losses) and hasattr(starts[0], "__len__")
    takes_id = "problem_id" in inspect.signature(minimizer.minimize).parameters
    results = []
    with FitProgress(total=len(losses), progress=progress, desc=desc) as prog:
        for k, loss in enumerate(losses):
            start = starts[k] if per_loss and starts is not None else starts
            kwargs = {"problem_id": ids[k]} if takes_id and ids is not None else {}
            results.append(prog.done(minimizer.minimize(loss, start, **kwargs)))
    return results, prog
