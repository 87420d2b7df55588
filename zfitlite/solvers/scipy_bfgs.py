"""ScipyBFGS lives with the other scipy local minimizers in :mod:`.scipy_local`.

This module keeps ``from zfitlite.solvers.scipy_bfgs import ScipyBFGS`` working.
"""

from __future__ import annotations

from .scipy_local import ScipyBFGS

__all__ = ["ScipyBFGS"]
