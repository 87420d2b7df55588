"""The least-squares Levenberg-Marquardt loop: compiled on JAX, eager on numpy.

Checks that the compiled program is built once per residual function and data shape
and reused for new data (counted by tracing calls of the model), that it agrees with
the eager loop, that bounds, maxiter and a non-finite start behave the same way on
both paths, and the ``compile`` option: by default a problem's first fit on JAX runs
the eager loop and its second compiles.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite.minimize import DefaultToyStrategy, LevenbergMarquardt

T = np.linspace(0.0, 4.0, 25)
#: Every fit through the compiled solver (the default runs a problem's first fit eagerly).
COMPILED = {"compile": "always"}


def data(
    amplitude: float, rate: float, n: int = 25, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 4.0, n)
    noise = np.random.default_rng(seed).normal(0.0, 0.01, n)
    return t, amplitude * np.exp(-rate * t) + noise


class CountingModel:
    """``a * exp(-k t)``, counting its calls (under jit: one per trace)."""

    def __init__(self, xp):
        self.calls = 0
        self.xp = xp

    def __call__(self, t, p):
        self.calls += 1
        return p[0] * self.xp.exp(-p[1] * t)


def reference(t, y, start):
    """The same fit on the eager numpy path."""
    model = CountingModel(np)
    loss = zfitlite.LeastSquares.from_data(model, t, y, backend="numpy")
    return LevenbergMarquardt(tol=1e-10).minimize(loss, start)


def test_compiled_solve_is_reused_for_new_data_of_the_same_shape():
    model = CountingModel(jnp)
    lm = LevenbergMarquardt(tol=1e-10, options=COMPILED)
    t, y1 = data(2.0, 0.7)
    r1 = lm.minimize(zfitlite.LeastSquares.from_data(model, t, y1, backend="jax"), [1.0, 1.0])
    assert r1.valid and r1.info["loop"] == "compiled"
    traced = model.calls
    assert traced > 0
    # new data, same shape, new loss object, new minimizer: no tracing at all
    _, y2 = data(3.0, 0.4, seed=2)
    r2 = LevenbergMarquardt(tol=1e-10, options=COMPILED).minimize(
        zfitlite.LeastSquares.from_data(model, t, y2, backend="jax"), [1.0, 1.0]
    )
    assert model.calls == traced
    assert r2.valid
    np.testing.assert_allclose(r2.x, reference(t, y2, [1.0, 1.0]).x, rtol=1e-8)
    assert r2.x[0] == pytest.approx(3.0, rel=0.02)
    # another length in the same bucket (25 and 30 points: padded to 32) reuses it too
    t3, y3 = data(2.0, 0.7, n=30)
    lm.minimize(zfitlite.LeastSquares.from_data(model, t3, y3, backend="jax"), [1.0, 1.0])
    assert model.calls == traced
    # a new bucket (40 points: 48) compiles once more
    t4, y4 = data(2.0, 0.7, n=40)
    lm.minimize(zfitlite.LeastSquares.from_data(model, t4, y4, backend="jax"), [1.0, 1.0])
    assert model.calls > traced


def test_a_problems_first_fit_runs_eager_and_its_second_compiles():
    """The default ``compile="auto"``: per residual function and data shape, the first fit
    runs the eager loop (no solver compile), the second compiles the solver and every
    later fit reuses it; both loops give the same fit."""
    model = CountingModel(jnp)
    lm = LevenbergMarquardt(tol=1e-10)
    t, y = data(2.0, 0.7)
    loops = []
    fits = []
    for start in ([1.0, 1.0], [1.5, 0.5], [1.0, 1.0]):
        r = lm.minimize(zfitlite.LeastSquares.from_data(model, t, y, backend="jax"), start)
        loops.append(r.info["loop"])
        fits.append(r)
    assert loops == ["eager", "compiled", "compiled"]
    assert all(r.valid for r in fits)
    np.testing.assert_allclose(fits[0].x, fits[2].x, rtol=1e-10)
    assert fits[0].fmin == pytest.approx(fits[2].fmin, rel=1e-12)
    assert fits[0].info["nres"] == fits[2].info["nres"]
    assert fits[0].info["njac"] == fits[2].info["njac"]
    np.testing.assert_allclose(fits[1].x, reference(t, y, [1.5, 0.5]).x, rtol=1e-8)
    # a new shape starts over: eager first, then compiled
    t4, y4 = data(2.0, 0.7, n=40)
    again = [
        lm.minimize(zfitlite.LeastSquares.from_data(model, t4, y4, backend="jax"), [1.0, 1.0])
        for _ in range(2)
    ]
    assert [r.info["loop"] for r in again] == ["eager", "compiled"]


class SlottedModel:
    """Residuals as a method of an object without ``__dict__``: nothing can be remembered
    on it, so ``"auto"`` cannot count its fits and compiles from the first, as
    ``"always"``."""

    __slots__ = ("t", "y")

    def __init__(self, t, y):
        self.t, self.y = t, y

    def residuals(self, p):
        return self.y - p[0] * jnp.exp(-p[1] * self.t)


def test_auto_compiles_at_once_where_fits_cannot_be_counted():
    t, y = data(2.0, 0.7)
    model = SlottedModel(t, y)
    r = LevenbergMarquardt(tol=1e-10).minimize(
        zfitlite.LeastSquares(model.residuals, backend="jax"), [1.0, 1.0]
    )
    assert r.valid and r.info["loop"] == "compiled"
    np.testing.assert_allclose(r.x, reference(t, y, [1.0, 1.0]).x, rtol=1e-8)


def test_compile_option():
    t, y = data(2.0, 0.7)
    loss = zfitlite.LeastSquares.from_data(CountingModel(jnp), t, y, backend="jax")
    never = LevenbergMarquardt(tol=1e-10, options={"compile": "never"})
    assert [never.minimize(loss, [1.0, 1.0]).info["loop"] for _ in range(3)] == ["eager"] * 3
    # the calls of "never" were not counted: "auto" still starts with an eager fit
    assert LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0]).info["loop"] == "eager"
    with pytest.raises(ValueError, match="compile must be one of"):
        LevenbergMarquardt(options={"compile": True})


def test_reset_cache_forces_a_new_trace():
    model = CountingModel(jnp)
    t, y = data(2.0, 0.7)
    loss = zfitlite.LeastSquares.from_data(model, t, y, backend="jax")
    LevenbergMarquardt(tol=1e-8, options=COMPILED).minimize(loss, [1.0, 1.0])
    traced = model.calls
    LevenbergMarquardt(tol=1e-8, options=COMPILED).minimize(loss, [1.5, 0.5])
    assert model.calls == traced
    loss.reset_cache_self()
    LevenbergMarquardt(tol=1e-8, options=COMPILED).minimize(loss, [1.0, 1.0])
    assert model.calls > traced


class MethodModel:
    """A model whose residuals are a method: ``model.residuals`` is a new bound-method
    object at every access, and bound methods take no attributes."""

    def __init__(self):
        self.calls = 0

    def residuals(self, p, t, y):
        self.calls += 1
        return (y - p[0] * jnp.exp(-p[1] * t)) / 0.01


def test_a_bound_method_compiles_once_and_is_freed_with_its_instance():
    import gc
    import weakref

    model = MethodModel()
    t, y1 = data(2.0, 0.7)
    _, y2 = data(3.0, 0.4, seed=2)
    fit = LevenbergMarquardt(tol=1e-10, options=COMPILED).minimize
    r1 = fit(zfitlite.LeastSquares(model.residuals, args=(t, y1), backend="jax"), [1.0, 1.0])
    traced = model.calls
    r2 = fit(zfitlite.LeastSquares(model.residuals, args=(t, y2), backend="jax"), [1.0, 1.0])
    assert model.calls == traced  # remembered on the instance: no new trace
    assert r1.valid and r2.valid and r2.x[0] == pytest.approx(3.0, rel=0.02)
    zfitlite.LeastSquares(model.residuals, backend="jax").reset_cache_self()
    fit(zfitlite.LeastSquares(model.residuals, args=(t, y1), backend="jax"), [1.0, 1.0])
    assert model.calls > traced  # a reset drops it
    ref = weakref.ref(model)
    del model, r1, r2
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("geodesic", [False, True])
def test_compiled_agrees_with_eager(geodesic):
    t, y = data(2.0, 0.7)
    lm = LevenbergMarquardt(tol=1e-12, options={"geodesic": geodesic, **COMPILED})
    jl = zfitlite.LeastSquares.from_data(CountingModel(jnp), t, y, backend="jax")
    nl = zfitlite.LeastSquares.from_data(CountingModel(np), t, y, backend="numpy")
    rj, rn = lm.minimize(jl, [1.0, 1.0]), lm.minimize(nl, [1.0, 1.0])
    assert rj.info["loop"] == "compiled" and rn.info["loop"] == "eager"
    assert rj.valid and rn.valid
    np.testing.assert_allclose(rj.x, rn.x, rtol=1e-8)
    assert rj.fmin == pytest.approx(rn.fmin, rel=1e-10)
    # uncertainties from the final Jacobian, the same on both paths
    np.testing.assert_allclose(
        rj.covariance(method="approx"), rn.covariance(method="approx"), rtol=1e-5
    )
    assert rj.info["nres"] > 0 and rj.info["njac"] > 0


def test_callback_runs_the_eager_loop_on_jax():
    states = []
    t, y = data(2.0, 0.7)
    loss = zfitlite.LeastSquares.from_data(CountingModel(jnp), t, y, backend="jax")
    result = LevenbergMarquardt(tol=1e-10, callback=states.append).minimize(loss, [1.0, 1.0])
    assert result.info["loop"] == "eager"
    assert result.valid
    assert [s.iteration for s in states] == list(range(len(states)))
    assert states[-1].fmin == pytest.approx(result.fmin)
    assert "trust_radius" in states[0].extras


@pytest.mark.parametrize("backend", ["numpy", "jax", "jax-compiled"])
def test_bounds_hold_and_are_reported(backend):
    """The unconstrained rate is 0.7; with upper=0.5 the fit sits on the bound."""
    xp = np if backend == "numpy" else jnp
    options = COMPILED if backend == "jax-compiled" else None
    t, y = data(2.0, 0.7)
    loss = zfitlite.LeastSquares.from_data(CountingModel(xp), t, y, backend=backend.split("-")[0])
    params = {"a": {"value": 1.0, "lower": 0.0, "upper": 10.0}, "k": {"value": 0.2, "upper": 0.5}}
    seen = []
    for callback in (None, seen.append):
        result = LevenbergMarquardt(tol=1e-8, callback=callback, options=options).minimize(
            loss, params
        )
        assert result.params["k"]["value"] == 0.5
        assert result.params_at_limit == ["k"]
        assert not result.valid  # a parameter at its limit makes the result invalid
        # the other parameter is at its conditional optimum: sum(y e) / sum(e^2)
        e = np.exp(-0.5 * t)
        assert result.params["a"]["value"] == pytest.approx((y @ e) / (e @ e), rel=1e-7)
    assert all(s.x[1] <= 0.5 and s.x[0] >= 0.0 for s in seen)


@pytest.mark.parametrize("backend", ["numpy", "jax", "jax-compiled"])
def test_maxiter_gives_an_invalid_result(backend):
    xp = np if backend == "numpy" else jnp
    options = COMPILED if backend == "jax-compiled" else None
    t, y = data(2.0, 0.7)
    loss = zfitlite.LeastSquares.from_data(CountingModel(xp), t, y, backend=backend.split("-")[0])
    result = LevenbergMarquardt(tol=1e-10, maxiter=4, options=options).minimize(loss, [30.0, 5.0])
    assert result.status is zfitlite.Status.MAXITER
    assert not result.valid
    assert result.info["nres"] + result.info["njac"] <= 4 + 1
    assert np.all(np.isfinite(result.x))


@pytest.mark.parametrize("backend", ["numpy", "jax", "jax-compiled"])
def test_nonfinite_start_is_reported(backend):
    xp = np if backend == "numpy" else jnp
    options = COMPILED if backend == "jax-compiled" else None

    def residuals(p):
        return xp.log(p) - 1.0  # NaN for p < 0

    loss = zfitlite.LeastSquares(residuals, backend=backend.split("-")[0])
    result = LevenbergMarquardt(strategy=DefaultToyStrategy(), options=options).minimize(
        loss, [-1.0, 2.0]
    )
    assert result.status is zfitlite.Status.NONFINITE
    assert not result.valid
    assert result.message


def test_plateau_start_is_not_a_valid_answer():
    """BoxBOD start 1 with MINPACK's initial trust radius jumps onto the b2 -> inf plateau.

    There the b2 column of the Jacobian vanishes; the result must not claim a valid
    minimum at the wrong point. With the default radius (factor 10) it is solved.
    """
    from zfitlite.testing.nist import load_problem

    problem = load_problem("BoxBOD")
    loss = zfitlite.LeastSquares(lambda b: problem.residuals(b), backend="numpy")
    bad = LevenbergMarquardt(tol=1e-10, options={"factor": 100.0}).minimize(loss, problem.starts[0])
    assert not np.allclose(bad.x, problem.certified, rtol=1e-3)
    assert not bad.valid
    good = LevenbergMarquardt(tol=1e-10).minimize(loss, problem.starts[0])
    assert good.valid
    np.testing.assert_allclose(good.x, problem.certified, rtol=1e-6)


def test_signature_token_tells_apart_what_jax_compiles_apart():
    from zfitlite.backends.ops import signature_token

    a = signature_token((np.zeros(5), (jnp.zeros(3), 2.0)))
    same = [
        (np.ones(5), (jnp.ones(3), 7.0)),  # other values
        (np.zeros(5), (jnp.asarray(np.zeros(3)) + 1.0, 2.0)),  # a computed array
    ]
    different = [
        (np.zeros(6), (jnp.zeros(3), 2.0)),  # a shape
        (np.zeros(5, dtype=np.float32), (jnp.zeros(3), 2.0)),  # a dtype
        (np.zeros(5), (np.zeros(3), 2.0)),  # an array type
        (np.zeros(5), [jnp.zeros(3), 2.0]),  # the structure
        (np.zeros(5), (jnp.zeros(3), 2)),  # a Python scalar's type
    ]
    assert all(signature_token(c) == a for c in same)
    assert all(signature_token(c) != a for c in different)
