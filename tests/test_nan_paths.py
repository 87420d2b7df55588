"""One partly-NaN loss, every path, every strategy: the same status and the same point.

The loss is NaN for ``b < 0.25`` (outside its domain) and its minimum lies just inside,
at ``b ~ 0.3``; from ``b = 2`` the first steps overshoot into the NaN region. Every path
through the evaluator's contract (numpy eager, JAX eager, JAX compiled, JAX batched, and
TensorFlow eager) must treat a NaN trial point the same way (a rejected step, or a
strategy's push back), and end at the same point with the same status.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite import LeastSquares, SimpleLoss, Status, minimize_batch
from zfitlite.minimize import (
    BFGS,
    DefaultStrategy,
    DefaultToyStrategy,
    LevenbergMarquardt,
    PushbackStrategy,
)

T = np.linspace(0.0, 4.0, 12)
Y = 2.0 * np.exp(-0.3 * T) + 0.01 * np.sin(7.0 * T)  # deterministic "noise"
X0 = [1.0, 2.0]
STRATEGIES = {
    "DefaultStrategy": DefaultStrategy,
    "PushbackStrategy": PushbackStrategy,
    "DefaultToyStrategy": DefaultToyStrategy,
}


def residuals_np(p, t, y):
    return y - p[0] * np.exp(-p[1] * t) + 0.0 * np.sqrt(p[1] - 0.25)


def residuals_jax(p, t, y):
    return y - p[0] * jnp.exp(-p[1] * t) + 0.0 * jnp.sqrt(p[1] - 0.25)


def residuals_tf(p, t, y):
    import tensorflow as tf

    return y - p[0] * tf.exp(-p[1] * t) + 0.0 * tf.sqrt(p[1] - 0.25)


def chi2_np(p, t, y):
    r = residuals_np(p, t, y)
    return r @ r


def chi2_jax(p, t, y):
    r = residuals_jax(p, t, y)
    return r @ r


chi2_np.errordef = chi2_jax.errordef = 1.0


def _reference():
    """The minimum, from the numpy eager LM (the plain path)."""
    loss = LeastSquares(residuals_np, args=(T, Y), backend="numpy")
    return LevenbergMarquardt(tol=1e-10).minimize(loss, X0)


def test_the_nan_region_is_visited():
    """The test means something: the fit does step into the NaN region on its way."""
    seen = []

    def counting(p, t, y):
        with np.errstate(invalid="ignore"):
            r = residuals_np(p, t, y)
        seen.append(bool(np.isnan(r).any()))
        return r

    res = LevenbergMarquardt(tol=1e-10).minimize(
        LeastSquares(counting, args=(T, Y), backend="numpy"), X0
    )
    assert res.valid and any(seen), seen
    assert res.x[1] > 0.25


def _lm_path(path, strategy):
    lm = LevenbergMarquardt(tol=1e-10, strategy=strategy())
    if path == "numpy-eager":
        return lm.minimize(LeastSquares(residuals_np, args=(T, Y), backend="numpy"), X0)
    if path == "jax-eager":  # a callback keeps the Python loop (JAX functions one by one)
        lm = LevenbergMarquardt(tol=1e-10, strategy=strategy(), callback=lambda state: None)
        res = lm.minimize(LeastSquares(residuals_jax, args=(T, Y), backend="jax"), X0)
        assert res.info["loop"] == "eager"
        return res
    if path == "jax-compiled":
        lm = LevenbergMarquardt(tol=1e-10, strategy=strategy(), options={"compile": "always"})
        res = lm.minimize(LeastSquares(residuals_jax, args=(T, Y), backend="jax"), X0)
        assert res.info["loop"] == "compiled"
        return res
    if path == "jax-batched":
        batch = minimize_batch(lm, LeastSquares(residuals_jax), X0, (T[None], Y[None]))
        assert batch.info["method"] == "lm"
        return batch[0]
    if path == "tensorflow":
        pytest.importorskip("tensorflow")
        return lm.minimize(LeastSquares(residuals_tf, args=(T, Y), backend="tensorflow"), X0)
    raise AssertionError(path)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize(
    "path", ["numpy-eager", "jax-eager", "jax-compiled", "jax-batched", "tensorflow"]
)
def test_levenberg_marquardt_ends_alike_on_every_path(path, strategy):
    ref = _reference()
    assert ref.status is Status.CONVERGED
    res = _lm_path(path, STRATEGIES[strategy])
    assert res.status is ref.status, res.message
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-8)
    assert res.fmin == pytest.approx(ref.fmin, rel=1e-8)


def _bfgs_path(path, strategy):
    bfgs = BFGS(tol=1e-10, strategy=strategy())
    if path == "numpy-eager":
        return bfgs.minimize(SimpleLoss(chi2_np, errordef=1.0, args=(T, Y), backend="numpy"), X0)
    if path == "jax-eager":
        return bfgs.minimize(SimpleLoss(chi2_jax, errordef=1.0, args=(T, Y), backend="jax"), X0)
    if path == "jax-batched":
        batch = minimize_batch(bfgs, chi2_jax, X0, (T[None], Y[None]))
        assert batch.info["method"] == "bfgs"
        return batch[0]
    raise AssertionError(path)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("path", ["numpy-eager", "jax-eager", "jax-batched"])
def test_native_bfgs_ends_alike_on_every_path(path, strategy):
    ref = _reference()
    res = _bfgs_path(path, STRATEGIES[strategy])
    assert res.status is Status.CONVERGED, res.message
    # BFGS and LM stop at different distances from the minimum: both within their goal
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-5)
    assert res.fmin == pytest.approx(ref.fmin, rel=1e-8)


def test_native_bfgs_eager_and_batched_take_the_same_steps_where_the_loss_is_finite():
    """Same algorithm, same numbers: on the loss without its NaN region the eager
    and the batched BFGS agree and take the same number of iterations. (In
    the NaN region the eager path's strategy pushes back with a finite penalty where the
    compiled line search sees NaN, so the paths differ there, within the goal.)"""
    start = [1.5, 0.5]

    def clean(p, t, y):  # the same loss without its NaN region
        r = y - p[0] * jnp.exp(-p[1] * t)
        return r @ r

    clean.errordef = 1.0
    loss = SimpleLoss(clean, errordef=1.0, args=(T, Y), backend="jax")
    eager = BFGS(tol=1e-10).minimize(loss, start)
    batched = minimize_batch(BFGS(tol=1e-10), clean, start, (T[None], Y[None]))[0]
    assert eager.status is batched.status is Status.CONVERGED
    np.testing.assert_allclose(batched.x, eager.x, rtol=1e-9)
    assert batched.info["niter"] == eager.info["niter"]


def test_a_nan_start_is_the_strategys_business_on_every_single_fit_path():
    """At a NaN start DefaultStrategy raises, DefaultToyStrategy gives NONFINITE; the batch
    (no strategy per member) reports NONFINITE for the member."""
    bad = [1.0, 0.1]
    for backend, func in (("numpy", residuals_np), ("jax", residuals_jax)):
        loss = LeastSquares(func, args=(T, Y), backend=backend)
        with pytest.raises(zfitlite.FailMinimizeNaN):
            LevenbergMarquardt().minimize(loss, bad)
        toy = LevenbergMarquardt(strategy=DefaultToyStrategy()).minimize(loss, bad)
        assert toy.status is Status.NONFINITE
    batch = minimize_batch(
        LevenbergMarquardt(), LeastSquares(residuals_jax), bad, (T[None], Y[None])
    )
    assert batch.status[0] == int(Status.NONFINITE)
