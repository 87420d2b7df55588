"""Shared fixtures: the backends every core test runs on."""

from __future__ import annotations

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

BACKENDS = ("numpy", "jax")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend a test loss is written for."""
    return request.param


@pytest.fixture
def xp(backend: str):
    """The array module matching ``backend`` (numpy or jax.numpy)."""
    return np if backend == "numpy" else jax.numpy
