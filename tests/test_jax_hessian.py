"""JAX Hessians of losses over many events: column by column, exact, less memory."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from zfitlite.backends import get_backend  # noqa: E402
from zfitlite.backends.jax_backend import (  # noqa: E402
    HESSIAN_BY_COLUMNS_SIZE,
    _hessian,
    _largest_array,
)

EVENTS = np.random.default_rng(5).normal(0.3, 1.7, 2 * HESSIAN_BY_COLUMNS_SIZE)


def _nll(p, x):
    mu, s = p[0], p[1]
    return jnp.sum(0.5 * ((x - mu) / s) ** 2) + x.shape[0] * jnp.log(s)


def _analytic(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    mu, s = p
    d = x - mu
    n = x.size
    h_ms = 2.0 * d.sum() / s**3
    return np.array([[n / s**2, h_ms], [h_ms, 3.0 * (d * d).sum() / s**4 - n / s**2]])


@pytest.mark.parametrize("events", [EVENTS, EVENTS[:50]], ids=["many", "few"])
def test_the_hessian_is_exact_with_data_as_arguments(events: np.ndarray) -> None:
    p = np.array([0.1, 1.4])
    loss = get_backend("jax").scalar(_nll, 2, args=(events,))
    np.testing.assert_allclose(loss.hessian(p), _analytic(p, events), rtol=1e-12)


def test_large_data_goes_column_by_column_and_equals_jax_hessian() -> None:
    p = jnp.asarray([0.1, 1.4])
    x = jnp.asarray(EVENTS)
    assert _largest_array(jax, _nll, p, x) >= EVENTS.size
    by_columns = jax.jit(_hessian(jax, _nll))(p, x)
    np.testing.assert_allclose(by_columns, jax.hessian(_nll)(p, x), rtol=1e-13)
    np.testing.assert_allclose(by_columns, _analytic(np.asarray(p), EVENTS), rtol=1e-12)
    small = jnp.asarray(EVENTS[:50])
    assert _largest_array(jax, _nll, p, small) < HESSIAN_BY_COLUMNS_SIZE


def test_captured_and_generated_arrays_count() -> None:
    """Data closed over, or made inside the loss, are seen as well as arguments."""
    p = jnp.asarray([0.1, 1.4])

    def captured(q):
        return _nll(q, jnp.asarray(EVENTS))

    def generated(q):
        return _nll(q, jnp.linspace(-3.0, 3.0, 3 * HESSIAN_BY_COLUMNS_SIZE))

    assert _largest_array(jax, captured, p) >= EVENTS.size
    assert _largest_array(jax, generated, p) >= 3 * HESSIAN_BY_COLUMNS_SIZE
    np.testing.assert_allclose(
        jax.jit(_hessian(jax, captured))(p), _analytic(np.asarray(p), EVENTS), rtol=1e-12
    )


def test_hesse_after_a_fit_reuses_the_hessian_the_fit_measured() -> None:
    """The fit's last exact Hessian is at the result's x: hesse() takes it, no new call."""
    import zfitlite
    from zfitlite.minimize import ScipyBFGS

    loss = zfitlite.SimpleLoss(lambda p: _nll(p, jnp.asarray(EVENTS)), errordef=0.5, backend="jax")
    fit = ScipyBFGS().minimize(loss, [0.0, 1.0])
    assert fit.valid, fit.message
    compiled = loss.compiled(2)
    fresh = np.asarray(compiled.hessian(fit.x))
    assert fit._known_hessian is not None and fit._known_hessian[0] is compiled
    np.testing.assert_array_equal(fit._known_hessian[2], fresh)
    n, s = EVENTS.size, fit.x[1]  # analytic: sigma(mu) = s / sqrt(n), errordef 0.5
    assert fit.hesse()["p0"]["error"] == pytest.approx(s / np.sqrt(n), rel=1e-6)
    # hesse() reads the known matrix (four times the curvature: half the error)
    twin = ScipyBFGS().minimize(loss, [0.0, 1.0])
    twin._known_hessian = (compiled, twin.x, 4.0 * fresh)
    assert twin.hesse()["p0"]["error"] == pytest.approx(0.5 * s / np.sqrt(n), rel=1e-6)
