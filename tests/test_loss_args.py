"""Data as ``args`` of a scalar loss: new data of the same shapes reuses compiled functions."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from zfitlite import SimpleLoss, minimize_batch
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS, ScipyLBFGSB

TRACES: list[int] = []


def gauss_nll(p, data):
    """A Gaussian NLL in (mu, sigma); counts its traces when called with tracers."""
    if not isinstance(p, np.ndarray):
        TRACES.append(1)
    xp = np if isinstance(p, np.ndarray) else jnp
    return xp.sum(xp.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2)


def _toys(n_toys: int, size: int = 300) -> np.ndarray:
    return np.random.default_rng(11).normal(1.0, 2.0, (n_toys, size))


def _analytic(data: np.ndarray) -> np.ndarray:
    return np.array([data.mean(), data.std()])


def test_toys_on_jax_compile_once_and_match_the_analytic_minimum():
    TRACES.clear()
    toys = _toys(4)
    results = [
        ScipyBFGS(tol=1e-10).minimize(
            SimpleLoss(gauss_nll, errordef=0.5, backend="jax", args=(toy,)), [0.0, 1.0]
        )
        for toy in toys
    ]
    for toy, result in zip(toys, results):
        assert result.valid and result.info["backend"] == "jax"
        np.testing.assert_allclose(result.x, _analytic(toy), rtol=1e-6)
    first = len(TRACES)
    assert first > 0
    # a fifth toy: no new trace; a reset of one loss forces one
    loss = SimpleLoss(gauss_nll, errordef=0.5, backend="jax", args=(_toys(5)[4],))
    ScipyBFGS(tol=1e-10).minimize(loss, [0.0, 1.0])
    assert len(TRACES) == first
    loss.reset_cache(loss)
    ScipyBFGS(tol=1e-10).minimize(loss, [0.0, 1.0])
    assert len(TRACES) > first


def test_numpy_args_reach_the_function_and_its_derivatives():
    data = _toys(1)[0]
    seen = []

    def grad(p, d):
        seen.append(d is data)
        r = d - p[0]
        return np.array([-r.sum() / p[1] ** 2, d.size / p[1] - (r @ r) / p[1] ** 3])

    loss = SimpleLoss(gauss_nll, errordef=0.5, gradient=grad, backend="numpy", args=(data,))
    result = ScipyLBFGSB(tol=1e-10).minimize(
        loss, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}}
    )
    assert result.valid and seen and all(seen)
    np.testing.assert_allclose(result.x, _analytic(data), rtol=1e-6)
    hesse = result.hesse()
    assert hesse["mu"]["error"] == pytest.approx(data.std() / np.sqrt(data.size), rel=1e-4)


def test_args_must_be_a_tuple():
    with pytest.raises(TypeError, match="args must be a tuple"):
        SimpleLoss(gauss_nll, errordef=0.5, args=[np.zeros(3)])


def test_batch_member_fits_of_a_jax_loss_share_one_compilation():
    """Member-by-member fits (``vectorize=False``) of a scalar JAX loss compile only once."""
    TRACES.clear()
    toys = _toys(6, size=100)
    loss = SimpleLoss(
        gauss_nll,
        errordef=0.5,
        params={"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}},
        backend="jax",
    )
    res = minimize_batch(LevenbergMarquardt(tol=1e-10), loss, [0.0, 1.0], (toys,), vectorize=False)
    assert res.info["method"] == "each" and res.valid.all()
    np.testing.assert_allclose(res.x, np.array([_analytic(t) for t in toys]), rtol=1e-6)
    traced_for_six = len(TRACES)
    TRACES.clear()
    minimize_batch(LevenbergMarquardt(tol=1e-10), loss, [0.0, 1.0], (toys[:2],), vectorize=False)
    assert len(TRACES) == 0 < traced_for_six  # the programs of the first batch serve
