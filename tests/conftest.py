"""Shared fixtures: the backends every core test runs on."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

try:
    import jax
except ImportError:  # the numpy-only session (nox -s "tests(backend='numpy')")
    jax = None
else:
    jax.config.update("jax_enable_x64", True)

# before any JAX computation, as in a user's script: XLA's CPU compiler options
# (zfitlite/backends/_xla_flags.py) are set while JAX's backend has not started yet
import zfitlite  # noqa: F401

BACKENDS = ("numpy", "jax") if jax is not None else ("numpy",)
#: Optional packages that some test files import at module level.
_OPTIONAL = (
    "jax",
    "iminuit",
    "tensorflow",
    "zfit",
    "dask",
    "distributed",
    "psutil",
    "matplotlib",
)
_MISSING = tuple(m for m in _OPTIONAL if importlib.util.find_spec(m) is None)
_NEEDS_MISSING = (
    re.compile(rf"^(?:import|from) (?:{'|'.join(_MISSING)})\b", re.MULTILINE) if _MISSING else None
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out the test files that import a missing optional package at module level."""
    if _NEEDS_MISSING is not None and collection_path.name.startswith("test_"):
        if collection_path.suffix == ".py" and _NEEDS_MISSING.search(collection_path.read_text()):
            return True
    return None


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend a test loss is written for."""
    return request.param


@pytest.fixture
def xp(backend: str):
    """The array module matching ``backend`` (numpy or jax.numpy)."""
    return np if backend == "numpy" else jax.numpy
