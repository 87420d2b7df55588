"""What a minimizer knows about the loss at its minimum (plain data, shared by
:mod:`zfitlite.result` and :mod:`zfitlite._serialize`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Approximations"]


@dataclass
class Approximations:
    """What the minimizer knows about the loss at the minimum (each may be None)."""

    gradient: np.ndarray | None = None
    hessian: np.ndarray | None = None
    inv_hessian: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (or None)."""
        return {k: None if v is None else np.asarray(v).tolist() for k, v in vars(self).items()}
