"""Backends behind one small interface (:class:`~zfitlite.backends.base.Backend`).

``numpy`` is always available; ``jax`` (and ``tensorflow``, its own issue) are imported
lazily, only when a loss needs them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

from ..exceptions import BackendNotAvailable
from .base import Backend, CompiledLoss
from .numpy_backend import NumpyBackend

__all__ = ["BACKEND_NAMES", "Backend", "CompiledLoss", "detect_backend", "get_backend"]

BACKEND_NAMES = ("numpy", "jax")
_INSTANCES: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (``"numpy"`` or ``"jax"``).

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
        else:
            from .jax_backend import JaxBackend, import_jax

            import_jax()
            _INSTANCES[name] = JaxBackend()
    return _INSTANCES[name]


def jax_available() -> bool:
    """True when jax is importable (without importing it)."""
    return "jax" in sys.modules or importlib.util.find_spec("jax") is not None


def detect_backend(func: Callable, n: int) -> Backend:
    """Pick the backend for ``func`` with ``backend="auto"``.

    JAX when jax is installed and ``func`` traces under it for an input of size ``n``;
    numpy otherwise.
    """
    if jax_available():
        try:
            jax_backend = get_backend("jax")
        except BackendNotAvailable:  # pragma: no cover
            return get_backend("numpy")
        if jax_backend.traceable(func, n):
            return jax_backend
    return get_backend("numpy")
