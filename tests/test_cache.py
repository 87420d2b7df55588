"""Graph caching: a second fit of the same loss and layout does not trace; a reset does."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS


def counting_loss():
    traces = {"n": 0}

    def f(x):
        traces["n"] += 1  # runs only while JAX traces
        return jnp.sum((x - jnp.arange(x.shape[0])) ** 2)

    f.errordef = 1.0
    return f, traces


def test_second_minimize_does_not_trace_again():
    f, traces = counting_loss()
    loss = zfitlite.SimpleLoss(f, errordef=1.0)
    r1 = LevenbergMarquardt(tol=1e-10).minimize(loss, [5.0, 5.0, 5.0])
    first = traces["n"]
    assert first >= 2  # detection plus value/gradient/hessian compilations
    r2 = LevenbergMarquardt(tol=1e-10).minimize(
        loss, [-1.0, 2.0, 7.0]
    )  # same layout, new values, new minimizer
    r3 = ScipyBFGS(tol=1e-10).minimize(loss, [1.0, 1.0, 1.0])
    assert traces["n"] == first
    for r in (r1, r2, r3):
        np.testing.assert_allclose(r.x, [0.0, 1.0, 2.0], atol=1e-6)


def test_plain_callable_reuses_its_compiled_functions():
    f, traces = counting_loss()
    LevenbergMarquardt().minimize(f, [3.0, 3.0])
    first = traces["n"]
    LevenbergMarquardt().minimize(f, [4.0, 4.0])
    assert traces["n"] == first


def test_new_layout_traces_once_more():
    f, traces = counting_loss()
    loss = zfitlite.SimpleLoss(f, errordef=1.0)
    LevenbergMarquardt().minimize(loss, [1.0, 1.0])
    two = traces["n"]
    LevenbergMarquardt().minimize(loss, [1.0, 1.0, 1.0])
    three = traces["n"]
    assert three > two
    LevenbergMarquardt().minimize(loss, [2.0, 2.0])
    LevenbergMarquardt().minimize(loss, [2.0, 2.0, 2.0])
    assert traces["n"] == three


def test_reset_invalidates_and_retraces():
    f, traces = counting_loss()
    loss = zfitlite.SimpleLoss(f, errordef=1.0)
    minimizer = LevenbergMarquardt()
    minimizer.minimize(loss, [1.0, 1.0])
    first = traces["n"]
    assert loss.cache_size > 0
    # the minimizer depends on the loss: give it something cached and reset the loss
    minimizer.cached("compiled-loop", lambda: object())
    assert minimizer.cache_size == 1
    loss.reset_cache_self()
    assert loss.cache_size == 0
    assert minimizer.cache_size == 0
    minimizer.minimize(loss, [1.0, 1.0])
    assert traces["n"] > first


def test_cache_dependency_rules():
    a = zfitlite.GraphCachable()
    b = zfitlite.GraphCachable()
    c = zfitlite.GraphCachable()
    b.add_cache_deps(a)
    c.add_cache_deps([b])
    for obj in (a, b, c):
        obj.cached("k", lambda: 1)
    b.reset_cache_self()
    assert (a.cache_size, b.cache_size, c.cache_size) == (1, 0, 0)
    b.cached("k", lambda: 1)
    c.cached("k", lambda: 1)
    a.reset_cache_self()
    assert (a.cache_size, b.cache_size, c.cache_size) == (0, 0, 0)
    b.add_cache_deps([object()])  # allowed by default
    with pytest.raises(TypeError, match="not a GraphCachable"):
        b.add_cache_deps([object()], allow_non_cachable=False)
    with pytest.raises(TypeError, match="GraphCachable"):
        a.register_cacher(object())


def test_auto_backend_detected_once_per_function():
    """A new loss of the same function does not run the backend detection again."""
    x = np.linspace(0.0, 3.0, 10)
    y = 2.0 * np.exp(-0.7 * x)
    calls = []

    def residuals(b):
        calls.append(type(b).__name__)
        return y - np.asarray(b)[0] * np.exp(-np.asarray(b)[1] * x)  # numpy only

    first = zfitlite.LeastSquares(residuals, backend="auto").backend_for(2)
    seen = len(calls)
    assert first.name == "numpy" and seen > 0
    again = zfitlite.LeastSquares(residuals, backend="auto").backend_for(2)
    assert again is first and len(calls) == seen
    # another number of parameters is detected anew
    zfitlite.LeastSquares(residuals, backend="auto").backend_for(3)
    assert len(calls) > seen


def test_compiled_lm_result_round_trip():
    """The compiled LM's one-vector outcome unpacks to the same numbers as the eager loop."""
    from zfitlite.solvers.driver import Outcome, pack_flat, unpack_flat

    out = Outcome(
        x=np.array([1.0, 2.0]),
        f=3.0,
        g=np.array([0.1, 0.2]),
        H=np.array([[4.0, 1.0], [1.0, 5.0]]),
        edm=1e-9,
        status=0,
        niter=7,
        nfev=9,
        njev=8,
        lam=0.5,
        delta=2.0,
    )
    back = unpack_flat(pack_flat(np, out), 2)
    assert np.array_equal(back.H, out.H) and np.array_equal(back.x, out.x)
    assert (back.status, back.niter, back.nfev, back.njev) == (0, 7, 9, 8)
    assert isinstance(back.niter, int) and back.f == 3.0 and back.delta == 2.0
