"""Progress bars for long work, shown only where a person is watching.

One rule for the whole package (batches, global searches, multi-starts, profile scans,
plot scans, fits with verbosity on):

* ``progress=True`` always shows a bar, ``progress=False`` never does;
* ``progress=None`` (the default) means *auto*: a bar when stderr is a terminal or the
  code runs in a Jupyter kernel, and none when the environment variable ``CI`` is set,
  under a test runner capturing stderr, or when output goes to a file or a pipe;
* the environment variable ``ZFITLITE_PROGRESS`` (``0``/``1``) replaces the automatic
  choice for every ``progress=None``.

Bars come from :mod:`tqdm.auto` (a widget in Jupyter, text in a terminal) and write to
stderr unless a ``file`` is given.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["NullBar", "make_bar", "progress_iter", "should_show"]

_FALSE = {"0", "false", "no", "off", ""}


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - a broken IPython
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def should_show(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show a bar: ``progress`` if given, else the automatic choice.

    Parameters
    ----------
    progress : bool or None
        True or False force the answer; None is automatic (see the module notes).
    stream : file, optional
        The stream the bar would write to (default ``sys.stderr``).

    Returns
    -------
    bool

    Examples
    --------
    >>> should_show(False)
    False
    >>> should_show(True)
    True
    """
    if progress is not None:
        return bool(progress)
    env = os.environ.get("ZFITLITE_PROGRESS")
    if env is not None:
        return env.strip().lower() not in _FALSE
    if os.environ.get("CI", "").strip().lower() not in _FALSE:
        return False
    if _in_jupyter():
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


class NullBar:
    """A bar that shows nothing: the same methods as a tqdm bar, all no-ops."""

    n = 0

    def update(self, n: float = 1) -> None:
        """Count ``n`` more steps (nothing shown)."""
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Ignore a status text."""

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
        """Ignore a description."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_bar(
    progress: bool | None,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    file: TextIO | None = None,
    **kwargs: Any,
) -> Any:
    """A tqdm bar when :func:`should_show` says so, else a :class:`NullBar`.

    Parameters
    ----------
    progress : bool or None
        See :func:`should_show`.
    total : float, optional
        Number of steps expected (None: a counter without a percentage).
    desc : str, optional
        Label in front of the bar.
    unit : str
        What one step is ("fit", "point", "generation", ...).
    file : file, optional
        Where to write (default stderr).
    **kwargs
        Passed to tqdm.

    Returns
    -------
    tqdm.tqdm or NullBar
        Use it as a context manager, or call ``close()``.

    Examples
    --------
    >>> with make_bar(False, total=3, desc="demo") as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    """
    if not should_show(progress, file):
        return NullBar()
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    # a bar that is forced on but writes to a non-terminal must still print; tqdm's
    # ``disable=None`` would silence it
    return tqdm(total=total, desc=desc, unit=unit, file=file, disable=False, **kwargs)


def progress_iter(
    iterable: Any,
    progress: bool | None,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    file: TextIO | None = None,
    **kwargs: Any,
) -> Any:
    """Iterate over ``iterable``, counting each item on a bar once the caller is done with it.

    A step is counted when the next item is asked for (so the bar shows finished work),
    and the bar is closed when the loop ends, breaks or raises.

    Parameters
    ----------
    iterable : iterable
    progress : bool or None
        See :func:`should_show`.
    total : int, optional
        Default ``len(iterable)`` where it has one.
    desc, unit, file, **kwargs
        As for :func:`make_bar`.

    Yields
    ------
    The items of ``iterable``.

    Examples
    --------
    >>> [x * 2 for x in progress_iter([1, 2, 3], False)]
    [2, 4, 6]
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    bar = make_bar(progress, total=total, desc=desc, unit=unit, file=file, **kwargs)
    try:
        first = True
        for item in iterable:
            if not first:
                bar.update(1)
            first = False
            yield item
        if not first:
            bar.update(1)
    finally:
        bar.close()
