"""Array operations for solver loops, so one solver body runs eagerly or compiled.

A native solver (Levenberg-Marquardt on residuals) is written once as pure functions
over an explicit state, using only the operations of an :class:`ArrayOps`: the array
namespace ``xp``, ``where``, ``cond``, ``while_loop``, ``fori_loop`` and ``svd``.
:class:`NumpyOps` runs them as plain Python and numpy (a low-overhead eager loop);
the JAX backend's ops run them through ``lax`` so the whole solve compiles to one
program (and vectorises under ``vmap``). Solver files never import jax themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["NATIVE_CACHE_ATTR", "ArrayOps", "NumpyOps", "forget_native", "numpy_ops"]

#: Attribute on a user's residual function holding the native solver functions built
#: from it (so losses sharing the function share one compiled solver).
NATIVE_CACHE_ATTR = "__zfitlite_lsq__"


def forget_native(func: Callable) -> None:
    """Drop the native solver functions remembered on ``func`` (the next solve retraces)."""
    try:
        delattr(func, NATIVE_CACHE_ATTR)
    except (AttributeError, TypeError):
        pass


class ArrayOps:
    """The operations a native solver loop may use (the numpy implementation).

    Attributes
    ----------
    name : str
        The backend's name.
    xp : module
        The array namespace (``numpy`` or ``jax.numpy``).
    compiles : bool
        True when :meth:`jit` really compiles.
    """

    name = "numpy"
    xp: Any = np
    compiles = False

    def while_loop(self, cond: Callable[[Any], Any], body: Callable[[Any], Any], state: Any) -> Any:
        """``while cond(state): state = body(state)``."""
        while cond(state):
            state = body(state)
        return state

    def fori_loop(self, lo: int, hi: int, body: Callable[[int, Any], Any], val: Any) -> Any:
        """``for i in range(lo, hi): val = body(i, val)``."""
        for i in range(lo, hi):
            val = body(i, val)
        return val

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)`` (only one runs)."""
        return true_fn(*operands) if pred else false_fn(*operands)

    def where(self, pred: Any, a: Any, b: Any) -> Any:
        """Elementwise select; on numpy a Python scalar condition picks without copying."""
        if isinstance(pred, (bool, np.bool_)):
            return a if pred else b
        return np.where(pred, a, b)

    def svd(self, A: Any) -> tuple[Any, Any, Any]:
        """Thin SVD ``A = U diag(s) Vt``."""
        return np.linalg.svd(A, full_matrices=False)

    def jit(self, fn: Callable, static_argnums: tuple[int, ...] = ()) -> Callable:
        """Compile ``fn`` (identity on numpy)."""
        return fn


class NumpyOps(ArrayOps):
    """Plain Python control flow and numpy arrays."""


numpy_ops = NumpyOps()
