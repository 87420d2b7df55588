"""Batch problems for tests, docs and benchmarks of :func:`zfitlite.minimize_batch`.

The functions live in an importable module so that process pools and dask workers
unpickle them by reference (one object per worker, so one compiled solver per worker).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "KILL_MARKER_ENV",
    "decay_data",
    "decay_model",
    "decay_residuals",
    "decay_residuals_kill_once",
    "decay_residuals_numpy",
    "gaussian_nll",
    "line_residuals",
]

#: Environment variable naming a marker file: the first dask worker that evaluates
#: :func:`decay_residuals_kill_once` creates it and kills its own process.
KILL_MARKER_ENV = "ZFITLITE_TEST_KILL_MARKER"


def _xp(p: Any) -> Any:
    if type(p).__module__.startswith("jax"):
        import jax.numpy as jnp

        return jnp
    return np


def decay_model(t: Any, p: Any) -> Any:
    """``p[0] * exp(-p[1] * t)`` (numpy or JAX arrays)."""
    return p[0] * _xp(p).exp(-p[1] * t)


def decay_residuals(p: Any, t: Any, y: Any) -> Any:
    """Residuals ``y - p[0] * exp(-p[1] * t)`` of an exponential decay."""
    return y - decay_model(t, p)


def decay_residuals_numpy(p: Any, t: Any, y: Any) -> np.ndarray:
    """:func:`decay_residuals` in plain numpy (does not trace under JAX)."""
    p = np.asarray(p, dtype=np.float64)
    return np.asarray(y) - p[0] * np.exp(-p[1] * np.asarray(t))


def decay_residuals_kill_once(p: Any, t: Any, y: Any) -> Any:
    """:func:`decay_residuals`, but the first dask worker to evaluate it dies.

    The marker file named by :data:`KILL_MARKER_ENV` is created atomically, so exactly
    one worker process exits (``os._exit``), mid-task; outside a dask worker, or once
    the marker exists, this is :func:`decay_residuals`.
    """
    marker = os.environ.get(KILL_MARKER_ENV)
    if marker and _in_dask_worker():
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)
    return decay_residuals(p, t, y)


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def line_residuals(p: Any, x: Any, y: Any) -> Any:
    """Residuals of a straight line ``y - (p[0] + p[1] * x)``."""
    return y - (p[0] + p[1] * x)


def gaussian_nll(p: Any, data: Any) -> Any:
    """Negative log-likelihood of a normal sample in ``(mu, log sigma)``, up to a constant.

    Use with ``errordef = 0.5``. The minimum is at the sample mean and the log of the
    (biased) sample standard deviation.
    """
    xp = _xp(p)
    mu, log_sigma = p[0], p[1]
    z = (data - mu) * xp.exp(-log_sigma)
    return 0.5 * xp.sum(z * z) + data.shape[-1] * log_sigma


gaussian_nll.errordef = 0.5  # type: ignore[attr-defined]


def decay_data(
    batch: int,
    npoints: tuple[int, int] = (5, 20),
    missing: float = 0.1,
    noise: float = 0.02,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A batch of exponential decays ``a * exp(-k t)`` with Gaussian noise.

    Members have between ``npoints[0]`` and ``npoints[1]`` points (shorter members are
    padded with NaN), and a fraction ``missing`` of the others is NaN as well; at least
    three points of each member stay observed.

    Returns
    -------
    dict
        ``t`` and ``y`` of shape ``(batch, npoints[1])``, the true ``params``
        ``(batch, 2)`` and the per-member number of points ``npoints``.
    """
    rng = np.random.default_rng(seed)
    m = npoints[1]
    t = np.tile(np.linspace(0.0, 5.0, m), (batch, 1))
    params = np.column_stack([rng.uniform(1.0, 3.0, batch), rng.uniform(0.3, 1.5, batch)])
    y = params[:, :1] * np.exp(-params[:, 1:] * t) + rng.normal(0.0, noise, (batch, m))
    length = rng.integers(npoints[0], npoints[1] + 1, batch)
    drop = (np.arange(m)[None, :] >= length[:, None]) | (rng.random((batch, m)) < missing)
    drop[:, :3] = False
    y[drop] = np.nan
    return {"t": t, "y": y, "params": params, "npoints": length}
