"""The one small interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Backend", "CompiledLoss"]

Array = np.ndarray


@dataclass(frozen=True)
class CompiledLoss:
    """Callables over numpy float64 arrays, built by a backend for one parameter layout.

    Every callable takes a 1-D numpy array and returns numpy data (a Python float for
    values). ``residuals``/``jacobian`` exist for least-squares losses only.
    ``native`` holds the backend's own pure functions (for compiled solver loops).
    """

    backend: str
    value: Callable[[Array], float]
    value_and_gradient: Callable[[Array], tuple[float, Array]]
    hessian: Callable[[Array], Array]
    residuals: Callable[[Array], Array] | None = None
    jacobian: Callable[[Array], Array] | None = None
    exact_derivatives: bool = True
    native: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Turns a user's function into :class:`CompiledLoss` callables.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"jax"`` or ``"tensorflow"``.
    compiles : bool
        True when building traces/compiles (so the result is worth caching).
    """

    name: str = ""
    compiles: bool = False

    @abstractmethod
    def traceable(self, func: Callable, n: int) -> bool:
        """True when ``func`` can be traced by this backend for an input of size ``n``."""

    @abstractmethod
    def scalar(
        self,
        func: Callable,
        n: int,
        *,
        gradient: Callable | None = None,
        hessian: Callable | None = None,
        typical: Array | None = None,
    ) -> CompiledLoss:
        """Build callables for a scalar loss ``func(x) -> float``."""

    @abstractmethod
    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Array | None = None,
    ) -> CompiledLoss:
        """Build callables for a least-squares loss ``sum(residuals(x)**2)``."""
