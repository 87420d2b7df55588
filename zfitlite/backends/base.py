"""The one small interface every backend implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import LossOutputError
from .ops import ArrayOps, numpy_ops

__all__ = [
    "COMPLEX_FIX",
    "SCALAR_FIX",
    "Backend",
    "CompiledLoss",
    "RawCounter",
    "real_scalar",
]

#: The fix appended to "the loss returned an array ... where a scalar is due".
SCALAR_FIX = "return a single number, e.g. the sum (for a vector of residuals use LeastSquares)"
#: The fix appended to "... is complex".
COMPLEX_FIX = "it must be real: return e.g. the squared modulus abs(z)**2, or z.real"

Array = np.ndarray


def real_scalar(v: Any, where: str | Callable[[], str] = "") -> float:
    """``v`` as a Python float, or a :class:`~zfitlite.exceptions.LossOutputError` (a
    ``ValueError``) saying why a loss value is not a real scalar and what to return instead.

    ``where`` (e.g. ``" at x=[1. 2.]"``, or a callable returning it, formatted only when
    the message is needed) is inserted into the message.
    """
    if type(v) is float or type(v) is np.float64:  # the common case, kept cheap
        return float(v)
    arr = np.asarray(v)
    if arr.dtype.kind in "fiub" and arr.size == 1:
        return float(arr.reshape(()))
    if callable(where):
        where = where()
    if arr.dtype.kind == "c":
        raise LossOutputError(f"the loss returned a complex value {v!r}{where}; {COMPLEX_FIX}")
    if arr.size != 1:
        raise LossOutputError(
            f"the loss returned an array of shape {arr.shape}{where} where a scalar is due; "
            + SCALAR_FIX
        )
    if arr.dtype.kind not in "fiub":
        raise LossOutputError(
            f"the loss returned {v!r} of type {type(v).__name__}{where}; it must be a real "
            "number: return a float"
        )
    return float(arr.reshape(()))


def after_x(f: Callable, args: tuple, x: Any) -> Any:
    """``f(x, *args)``; with :func:`functools.partial`, a function of ``x`` with its data bound."""
    return f(x, *args)


class RawCounter(threading.local):
    """Counts calls of the user's own functions (value, gradient, Hessian, residuals,
    Jacobian), per thread, so that fits in several threads sharing one cached
    :class:`CompiledLoss` each see their own calls (the evaluator reads differences)."""

    n: int = 0

    def wrap(self, f: Callable | None) -> Any:
        """``f`` counting one call of its own per call (None stays None)."""
        if f is None:
            return None

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return f(*args, **kwargs)

        return counted


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
    raw: RawCounter | None = None
    costs: dict[str, int] | None = None
    #: ``hvp(x, v)``: the Hessian times ``v`` without forming the Hessian (JAX:
    #: forward-over-reverse); None where the backend has none (the evaluator then
    #: differences two gradients).
    hvp: Callable[[Array, Array], Array] | None = None
    #: ``hessian_at(x, f, g)``: the Hessian at ``x`` given the value ``f`` and gradient
    #: ``g`` there, where knowing them saves calls (numpy with an exact gradient: forward
    #: differences of it, ``n`` gradient calls instead of ``4 n``; numpy from values: the
    #: centre value is not computed again); None elsewhere. Its calls:
    #: ``costs["hessian_at"]``.
    hessian_at: Callable[[Array, float, Array], Array] | None = None
    #: ``jacobian_precise(x)``: a more accurate residual Jacobian where ``jacobian`` is a
    #: cheaper estimate (numpy's finite differences: Richardson-extrapolated against plain
    #: central ones); None where ``jacobian`` is already the best there is. Its calls:
    #: ``costs["jacobian_precise"]``.
    jacobian_precise: Callable[[Array], Array] | None = None


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
        typical: Any = None,
        args: tuple = (),
    ) -> CompiledLoss:
        """Build callables for a scalar loss ``func(x, *args) -> float``.

        ``gradient`` and ``hessian``, when given, take ``(x, *args)`` too. ``typical``
        (scales, or a :class:`~zfitlite.backends.numdiff.Scales` with the bounds) is for
        backends that difference numerically.
        """

    @abstractmethod
    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Any = None,
        args: tuple = (),
    ) -> CompiledLoss:
        """Build callables for a least-squares loss ``sum(residuals(x, *args)**2)``.

        ``jacobian(x, *args)``, when given, returns the ``(m, n)`` residual Jacobian.
        """

    @property
    def ops(self) -> ArrayOps:
        """The operations native solver loops use on this backend (eager numpy here)."""
        return numpy_ops
