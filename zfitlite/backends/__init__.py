"""Backends behind one small interface (:class:`~zfitlite.backends.base.Backend`).

``numpy`` is always available; ``jax`` and ``tensorflow`` are imported lazily, only when a
loss needs them (tensorflow is never imported just to detect a backend).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

from ..exceptions import BackendNotAvailable
from . import _xla_flags
from .base import Backend, CompiledLoss
from .numpy_backend import NumpyBackend

# at ``import zfitlite``, before JAX starts its backend: shorter CPU compiles (_xla_flags.py)
_xla_flags.apply()

__all__ = ["BACKEND_NAMES", "Backend", "CompiledLoss", "detect_backend", "get_backend"]

BACKEND_NAMES = ("numpy", "jax", "tensorflow")
_INSTANCES: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (``"numpy"``, ``"jax"`` or ``"tensorflow"``).

    Raises
    ------
    ValueError
        For an unknown name.
    BackendNotAvailable
        When the backend's package is not installed.
    """
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKEND_NAMES} or 'auto'")
    if name not in _INSTANCES:
        if name == "numpy":
            _INSTANCES[name] = NumpyBackend()
        elif name == "jax":
            from .jax_backend import JaxBackend, import_jax

            import_jax()
            _INSTANCES[name] = JaxBackend()
        else:
            from .tf_backend import TensorFlowBackend

            _INSTANCES[name] = TensorFlowBackend()
    return _INSTANCES[name]


def jax_available() -> bool:
    """True when jax is importable (without importing it)."""
    return "jax" in sys.modules or importlib.util.find_spec("jax") is not None


def detect_backend(func: Callable, n: int) -> Backend:
    """Pick the backend for ``func`` with ``backend="auto"``.

    JAX when jax is installed, ``func`` uses JAX or no other numerical library (its module
    imports jax, or it reads or closes over something of jax's; or it is pure Python
    arithmetic: see :mod:`zfitlite.backends._detect`), and it traces under JAX for an
    input of size ``n``; else TensorFlow when tensorflow is already imported (it is never
    imported here) and ``func`` traces in graph mode and returns a ``tf.Tensor``; numpy
    otherwise. A plain numpy function thus never pays for a JAX trace. The choice is
    remembered per function.
    """
    from ._detect import remembered_choice

    return get_backend(remembered_choice(func, n, lambda: _choose(func, n).name))


def _choose(func: Callable, n: int) -> Backend:
    from ._detect import try_jax

    if jax_available() and try_jax(func):
        try:
            jax_backend = get_backend("jax")
        except BackendNotAvailable:  # pragma: no cover
            jax_backend = None
        if jax_backend is not None and jax_backend.traceable(func, n):
            return jax_backend
    if sys.modules.get("tensorflow") is not None:
        try:
            tf_backend = get_backend("tensorflow")
        except BackendNotAvailable:  # pragma: no cover - a broken installation
            tf_backend = None
        if tf_backend is not None and tf_backend.traceable(func, n):
            return tf_backend
    return get_backend("numpy")
