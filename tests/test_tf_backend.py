"""The TensorFlow backend: tf.function graphs, GradientTape derivatives, float64, caching."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import zfitlite  # noqa: E402
from zfitlite import FitResult, Status  # noqa: E402
from zfitlite.backends import detect_backend, get_backend  # noqa: E402
from zfitlite.evaluator import LossEvaluationError  # noqa: E402
from zfitlite.exceptions import BackendNotAvailable  # noqa: E402
from zfitlite.loss import LeastSquares, SimpleLoss  # noqa: E402
from zfitlite.minimize import (  # noqa: E402
    DefaultToyStrategy,
    LevenbergMarquardt,
    Minuit,
    PushbackStrategy,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyTrustNCG,
)

F64 = tf.float64
RNG = np.random.default_rng(7)
DATA = RNG.normal(0.7, 1.4, 2000)
DATA_TF = tf.constant(DATA, F64)
MU, SIGMA = DATA.mean(), DATA.std()  # the analytic maximum-likelihood estimates
MINIMIZERS = (LevenbergMarquardt, ScipyBFGS, ScipyTrustNCG, Minuit)


def gauss_nll(x):
    return tf.reduce_sum(tf.math.log(x[1]) + 0.5 * ((DATA_TF - x[0]) / x[1]) ** 2)


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def rosenbrock_tf(x):
    return tf.square(1.0 - x[0]) + 100.0 * tf.square(x[1] - tf.square(x[0]))


T = np.linspace(0.0, 4.0, 60)
Y = 2.5 * np.exp(-1.3 * T) + 0.01 * RNG.normal(size=T.size)


def exp_model(t, p):
    return p[0] * tf.exp(-p[1] * t)


def exp_reference():
    """The least-squares solution by scipy (MINPACK) at tight tolerances, for comparison."""
    from scipy.optimize import least_squares

    sol = least_squares(
        lambda p: (Y - p[0] * np.exp(-p[1] * T)) / 0.01,
        [1.0, 1.0],
        method="lm",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    return sol.x


def counting(func):
    """``func`` with a Python side effect that runs only while TensorFlow traces it."""
    traces = {"n": 0}

    def wrapped(x, *args):
        traces["n"] += 1
        return func(x, *args)

    return wrapped, traces


# -- availability and detection --------------------------------------------------------------


def test_import_zfitlite_does_not_import_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import zfitlite
        import zfitlite.minimize
        from zfitlite.backends import BACKEND_NAMES, detect_backend
        assert "tensorflow" in BACKEND_NAMES
        def f(x):
            return float(np.sum((np.asarray(x) - 1.0) ** 2))
        f.errordef = 1.0
        r = zfitlite.minimize.ScipyBFGS().minimize(f, [0.0, 0.0])
        assert r.valid
        assert detect_backend(f, 2).name == "numpy"
        assert "tensorflow" not in sys.modules, "tensorflow was imported"
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_tensorflow_names_the_extra(monkeypatch):
    from zfitlite import backends

    monkeypatch.delitem(backends._INSTANCES, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(BackendNotAvailable, match=r"pip install zfitlite\[tensorflow\]"):
        get_backend("tensorflow")
    with pytest.raises(BackendNotAvailable):
        SimpleLoss(gauss_nll, errordef=0.5, backend="tensorflow").value([0.5, 1.0])
    # detection does not try it and does not fail
    assert detect_backend(lambda x: np.sum(np.asarray(x) ** 2), 2).name == "numpy"


def test_detection_picks_tensorflow_for_tf_code():
    assert detect_backend(gauss_nll, 2).name == "tensorflow"
    assert detect_backend(rosenbrock_tf, 2).name == "tensorflow"
    # arithmetic that JAX traces stays on JAX (JAX is tried first)
    assert detect_backend(rosenbrock, 2).name == "jax"
    # numpy code does not trace in graph mode: numpy
    assert detect_backend(lambda x: float(np.sum(np.asarray(x) ** 2)), 2).name == "numpy"
    loss = SimpleLoss(gauss_nll, errordef=0.5)
    assert loss.backend_for(2).name == "tensorflow"


def test_tf_function_fails_cleanly_under_jax():
    """A TF function handed to the JAX tracer is rejected by it, then taken by TensorFlow."""
    jax_backend = get_backend("jax")
    assert jax_backend.traceable(gauss_nll, 2) is False
    assert jax_backend.traceable(rosenbrock_tf, 2) is False
    assert get_backend("tensorflow").traceable(gauss_nll, 2) is True


def test_traceable_rules():
    backend = get_backend("tensorflow")
    assert backend.traceable(lambda x: tf.reduce_sum(x**2), 3)
    assert not backend.traceable(lambda x: float(x[0]), 3)  # needs a concrete value
    assert not backend.traceable(lambda x: np.sum(np.asarray(x)), 3)


# -- scalar losses on every minimizer -------------------------------------------------------


@pytest.mark.parametrize("minimizer", MINIMIZERS, ids=lambda m: m.__name__)
def test_gaussian_nll(minimizer):
    loss = SimpleLoss(gauss_nll, errordef=0.5, backend="tensorflow")
    result = minimizer(tol=1e-8).minimize(loss, [0.5, 1.0])
    assert result.valid, result.message
    assert result.info["backend"] == "tensorflow"
    np.testing.assert_allclose(result.x, [MU, SIGMA], rtol=1e-6)
    errors = result.hesse()
    # analytic Hesse errors of the Gaussian MLE: sigma/sqrt(n), sigma/sqrt(2n)
    np.testing.assert_allclose(errors["p0"]["error"], SIGMA / np.sqrt(DATA.size), rtol=1e-6)
    np.testing.assert_allclose(errors["p1"]["error"], SIGMA / np.sqrt(2 * DATA.size), rtol=1e-6)


@pytest.mark.parametrize("minimizer", MINIMIZERS, ids=lambda m: m.__name__)
def test_rosenbrock(minimizer):
    loss = SimpleLoss(rosenbrock_tf, errordef=1.0)
    result = minimizer(tol=1e-10).minimize(loss, [-1.2, 1.0])
    assert result.valid, result.message
    np.testing.assert_allclose(result.x, [1.0, 1.0], rtol=1e-5)


def test_exact_derivatives_match_analytic():
    loss = SimpleLoss(rosenbrock_tf, errordef=1.0, backend="tensorflow")
    compiled = loss.compiled(2)
    x = np.array([-1.2, 1.0])
    v, g = compiled.value_and_gradient(x)
    assert v == pytest.approx(24.2, rel=1e-15)
    np.testing.assert_allclose(g, [-215.6, -88.0], rtol=1e-14)
    np.testing.assert_allclose(
        compiled.hessian(x), [[2 - 400 * 1.0 + 1200 * 1.44, 480.0], [480.0, 200.0]], rtol=1e-14
    )
    assert isinstance(v, float)
    assert g.dtype == np.float64


def test_user_derivatives_are_used():
    calls = {"g": 0, "h": 0}

    def grad(x):
        calls["g"] += 1
        return 2.0 * (np.asarray(x) - 3.0)

    def hess(x):
        calls["h"] += 1
        return 2.0 * np.eye(2)

    loss = SimpleLoss(
        lambda x: tf.reduce_sum((x - 3.0) ** 2),
        errordef=1.0,
        gradient=grad,
        hessian=hess,
        backend="tensorflow",
    )
    result = ScipyTrustNCG(tol=1e-10).minimize(loss, [0.0, 1.0])
    assert result.valid
    np.testing.assert_allclose(result.x, [3.0, 3.0], atol=1e-8)
    assert calls["g"] > 0 and calls["h"] > 0


# -- least squares ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "minimizer", (LevenbergMarquardt, ScipyBFGS, ScipyTrustNCG, Minuit), ids=lambda m: m.__name__
)
def test_least_squares_curve_fit(minimizer):
    loss = LeastSquares.from_data(exp_model, T, Y, sigma=0.01)
    assert loss.backend_for(2).name == "tensorflow"
    result = minimizer(tol=1e-10).minimize(loss, [1.0, 1.0])
    assert result.valid, result.message
    np.testing.assert_allclose(result.x, exp_reference(), rtol=1e-7)


def test_least_squares_hesse_is_the_gauss_newton_covariance():
    loss = LeastSquares.from_data(exp_model, T, Y, sigma=0.01)
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    p = result.x
    e = np.exp(-p[1] * T)
    J = -np.stack([e, -p[0] * T * e], axis=1) / 0.01
    cov = np.linalg.inv(J.T @ J)  # 2 * errordef * H^-1 with H = 2 J^T J (+ r-terms, ~0 here)
    errors = result.hesse()
    np.testing.assert_allclose(
        [errors["p0"]["error"], errors["p1"]["error"]], np.sqrt(np.diag(cov)), rtol=1e-2
    )


def test_least_squares_lm_runs_the_eager_loop():
    loss = LeastSquares.from_data(exp_model, T, Y, sigma=0.01)
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    assert get_backend("tensorflow").ops.compiles is False
    assert result.info["loop"] == "eager"
    assert result.valid


def test_least_squares_jacobian_matches_analytic():
    loss = LeastSquares.from_data(exp_model, T, Y, sigma=0.01, backend="tensorflow")
    compiled = loss.compiled(2)
    p = np.array([2.0, 1.1])
    e = np.exp(-p[1] * T)
    expected = -np.stack([e, -p[0] * T * e], axis=1) / 0.01
    np.testing.assert_allclose(compiled.jacobian(p), expected, rtol=1e-13)
    r = compiled.residuals(p)
    np.testing.assert_allclose(r, (Y - p[0] * e) / 0.01, rtol=1e-13)
    v, g = compiled.value_and_gradient(p)
    np.testing.assert_allclose(g, 2.0 * expected.T @ r, rtol=1e-12)
    assert v == pytest.approx(r @ r, rel=1e-14)


def test_reverse_mode_jacobian_for_few_residuals():
    """More parameters than residuals: the Jacobian comes from tape.jacobian."""
    A = RNG.normal(size=(2, 4))

    def residuals(x):
        return tf.linalg.matvec(tf.constant(A), x) - 1.0

    loss = LeastSquares(residuals, backend="tensorflow")
    np.testing.assert_allclose(loss.compiled(4).jacobian(np.ones(4)), A, rtol=1e-15)


def test_least_squares_args_and_user_jacobian():
    def residuals(p, t, y):
        return y - p[0] * tf.exp(-p[1] * t)

    def jacobian(p, t, y):
        e = np.exp(-p[1] * np.asarray(t))
        return -np.stack([e, -p[0] * np.asarray(t) * e], axis=1)

    loss = LeastSquares(residuals, jacobian=jacobian, backend="tensorflow", args=(T, Y))
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    assert result.valid
    np.testing.assert_allclose(result.x, exp_reference(), rtol=1e-7)


def test_from_data_masks_missing_observations():
    y = Y.copy()
    y[[3, 17]] = np.nan
    loss = LeastSquares.from_data(exp_model, T, y, sigma=0.01)
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    assert result.valid and np.all(np.isfinite(result.x))
    assert loss.compiled(2).residuals(result.x).shape == (T.size - 2,)


# -- bounds --------------------------------------------------------------------------------


@pytest.mark.parametrize("minimizer", (LevenbergMarquardt, ScipyLBFGSB, Minuit))
def test_bounds_are_honoured(minimizer):
    loss = SimpleLoss(gauss_nll, errordef=0.5, backend="tensorflow")
    params = {"mu": {"value": 0.2, "upper": 0.5}, "sigma": {"value": 1.0, "lower": 0.1}}
    result = minimizer(tol=1e-8).minimize(loss, params)
    assert result.x[0] == pytest.approx(0.5, abs=1e-6)  # the minimum is at MU > 0.5
    # sigma at mu = 0.5: sqrt(mean((data - 0.5)**2))
    np.testing.assert_allclose(result.x[1], np.sqrt(np.mean((DATA - 0.5) ** 2)), rtol=1e-5)


def test_bounded_least_squares_lm():
    loss = LeastSquares.from_data(exp_model, T, Y, sigma=0.01)
    result = LevenbergMarquardt(tol=1e-10).minimize(
        loss, {"a": {"value": 1.0, "upper": 2.0}, "k": {"value": 1.0}}
    )
    assert result.x[0] == pytest.approx(2.0, abs=1e-9)


# -- NaN and errors -----------------------------------------------------------------------


def nan_region(x):
    return tf.where(x[0] < 0, tf.constant(np.nan, F64), x[0] - 0.5 * tf.math.log(tf.abs(x[0])))


@pytest.mark.parametrize("minimizer", (LevenbergMarquardt, ScipyBFGS))
def test_nan_region_pushback_recovers(minimizer):
    loss = SimpleLoss(nan_region, errordef=0.5)
    assert np.isnan(loss.value([-4.0]))
    result = minimizer(tol=1e-10, strategy=PushbackStrategy()).minimize(loss, [2.0])
    assert result.info["backend"] == "tensorflow"
    assert result.valid
    np.testing.assert_allclose(result.x, [0.5], atol=1e-6)


@pytest.mark.parametrize("minimizer", (LevenbergMarquardt, ScipyBFGS, Minuit))
def test_nan_loss_gives_invalid_result(minimizer):
    def always_nan(x):
        return tf.reduce_sum(x) * tf.constant(np.nan, F64)

    loss = SimpleLoss(always_nan, errordef=1.0, backend="tensorflow")
    result = minimizer(strategy=DefaultToyStrategy()).minimize(loss, [1.0, 2.0])
    assert isinstance(result, FitResult)
    assert result.valid is False
    assert result.status is Status.NONFINITE
    assert result.message


def test_nan_residuals_give_invalid_result():
    loss = LeastSquares(lambda x: x * tf.constant(np.nan, F64), backend="tensorflow")
    result = LevenbergMarquardt(strategy=DefaultToyStrategy()).minimize(loss, [1.0, 2.0])
    assert result.valid is False
    assert result.status is Status.NONFINITE


def test_vector_loss_is_an_error():
    loss = SimpleLoss(lambda x: x**2, errordef=1.0, backend="tensorflow")
    with pytest.raises(LossEvaluationError, match=r"shape \(2,\) where a scalar is due"):
        ScipyBFGS().minimize(loss, [1.0, 2.0])


def test_float32_loss_is_rejected_with_a_clear_message():
    def f32(x):
        return tf.cast(tf.reduce_sum(x**2), tf.float32)

    assert detect_backend(f32, 2).name == "tensorflow"
    loss = SimpleLoss(f32, errordef=1.0)
    with pytest.raises(LossEvaluationError, match=r"float32 tensor; zfitlite works in float64"):
        LevenbergMarquardt().minimize(loss, [1.0, 2.0])
    res32 = LeastSquares(lambda x: tf.cast(x, tf.float32), backend="tensorflow")
    with pytest.raises(LossEvaluationError, match=r"residuals is a float32 tensor"):
        LevenbergMarquardt().minimize(res32, [1.0, 2.0])


def test_complex_loss_is_rejected():
    loss = SimpleLoss(
        lambda x: tf.complex(tf.reduce_sum(x**2), tf.constant(1.0, F64)),
        errordef=1.0,
        backend="tensorflow",
    )
    with pytest.raises(LossEvaluationError, match=r"complex.*must be real"):
        ScipyBFGS().minimize(loss, [1.0, 2.0])


def test_wrong_user_gradient_and_jacobian_shapes():
    loss = SimpleLoss(
        lambda x: tf.reduce_sum(x**2),
        errordef=1.0,
        gradient=lambda x: np.zeros(3),
        backend="tensorflow",
    )
    with pytest.raises(LossEvaluationError, match=r"gradient has shape \(3,\), expected \(2,\)"):
        ScipyBFGS().minimize(loss, [1.0, 2.0])
    lsq = LeastSquares(lambda x: x - 1.0, jacobian=lambda x: np.eye(3), backend="tensorflow")
    with pytest.raises(LossEvaluationError, match=r"jacobian has shape \(3, 3\)"):
        LevenbergMarquardt().minimize(lsq, [1.0, 2.0])


def test_loss_raising_in_graph_mode():
    def bad(x):
        raise RuntimeError("boom")

    loss = SimpleLoss(bad, errordef=1.0, backend="tensorflow")
    with pytest.raises(LossEvaluationError, match="boom"):
        ScipyBFGS().minimize(loss, [1.0])


# -- graph caching -------------------------------------------------------------------------


def test_second_minimize_does_not_retrace():
    f, traces = counting(gauss_nll)
    loss = SimpleLoss(f, errordef=0.5)
    r1 = LevenbergMarquardt(tol=1e-8).minimize(loss, [0.5, 1.0])
    first = traces["n"]
    assert first >= 3  # detection, value, gradient, Hessian
    graph = loss.compiled(2).native["value"]
    count = graph.experimental_get_tracing_count()
    r2 = LevenbergMarquardt(tol=1e-8).minimize(loss, [1.0, 2.0])
    r3 = ScipyBFGS(tol=1e-8).minimize(loss, [0.0, 1.5])
    r4 = ScipyTrustNCG(tol=1e-8).minimize(r3)
    assert traces["n"] == first
    assert graph.experimental_get_tracing_count() == count == 1
    for r in (r1, r2, r3, r4):
        np.testing.assert_allclose(r.x, [MU, SIGMA], rtol=1e-6)


def test_plain_callable_reuses_its_graphs():
    f, traces = counting(rosenbrock_tf)
    f.errordef = 1.0
    ScipyBFGS().minimize(f, [-1.2, 1.0])
    first = traces["n"]
    ScipyBFGS().minimize(f, [0.0, 0.0])
    assert traces["n"] == first


def test_reset_cache_retraces():
    f, traces = counting(gauss_nll)
    loss = SimpleLoss(f, errordef=0.5)
    minimizer = LevenbergMarquardt(tol=1e-8)
    minimizer.minimize(loss, [0.5, 1.0])
    first = traces["n"]
    loss.reset_cache_self()
    assert loss.cache_size == 0
    minimizer.minimize(loss, [0.5, 1.0])
    assert traces["n"] > first


def test_resetting_a_dependency_retraces():
    f, traces = counting(gauss_nll)
    loss = SimpleLoss(f, errordef=0.5)
    dep = zfitlite.GraphCachable()
    loss.add_cache_deps(dep)
    ScipyBFGS(tol=1e-8).minimize(loss, [0.5, 1.0])
    first = traces["n"]
    ScipyBFGS(tol=1e-8).minimize(loss, [0.5, 1.0])
    assert traces["n"] == first
    dep.reset_cache_self()
    ScipyBFGS(tol=1e-8).minimize(loss, [0.5, 1.0])
    assert traces["n"] > first


def test_new_data_of_the_same_shape_does_not_retrace():
    traces = {"n": 0}

    def model(t, p):
        traces["n"] += 1
        return p[0] * tf.exp(-p[1] * t)

    y2 = 1.5 * np.exp(-0.7 * T) + 0.01 * RNG.normal(size=T.size)
    loss1 = LeastSquares.from_data(model, T, Y, sigma=0.01, backend="tensorflow")
    r1 = LevenbergMarquardt(tol=1e-10).minimize(loss1, [1.0, 1.0])
    first = traces["n"]
    loss2 = LeastSquares.from_data(model, T, y2, sigma=0.01, backend="tensorflow")
    r2 = LevenbergMarquardt(tol=1e-10).minimize(loss2, [1.0, 1.0])
    assert traces["n"] == first  # the data are graph inputs, not constants
    np.testing.assert_allclose(r1.x, exp_reference(), rtol=1e-7)
    np.testing.assert_allclose(r2.x, [1.5, 0.7], rtol=2e-2)
    assert not np.allclose(r1.x, r2.x)
    # other data shapes trace again; a reset forgets the shared graphs
    loss3 = LeastSquares.from_data(model, T[:-5], Y[:-5], sigma=0.01, backend="tensorflow")
    LevenbergMarquardt(tol=1e-10).minimize(loss3, [1.0, 1.0])
    second = traces["n"]
    assert second > first
    loss2.reset_cache_self()
    LevenbergMarquardt(tol=1e-10).minimize(loss2, [1.0, 1.0])
    assert traces["n"] > second


def test_batch_of_tensorflow_residuals_is_fitted_member_by_member_on_tensorflow():
    """minimize_batch falls back to one fit per member for a TF loss, on the TF backend,
    with the NaN entries masked: the same answers as the numpy residuals."""
    rng = np.random.default_rng(1)
    t = np.broadcast_to(np.linspace(0.0, 4.0, 12), (4, 12)).copy()
    amp, rate = rng.uniform(1, 3, 4), rng.uniform(0.3, 1.0, 4)
    y = amp[:, None] * np.exp(-rate[:, None] * t) + 0.01 * rng.normal(size=(4, 12))
    y[0, 3] = np.nan

    def res_tf(p, t, y):
        return y - p[0] * tf.exp(-p[1] * t)

    def res_np(p, t, y):
        return y - p[0] * np.exp(-p[1] * t)

    lm = LevenbergMarquardt(tol=1e-10)
    on_tf = zfitlite.minimize_batch(lm, LeastSquares(res_tf), [1.0, 0.5], args=(t, y))
    on_np = zfitlite.minimize_batch(
        lm, LeastSquares(res_np, backend="numpy"), [1.0, 0.5], args=(t, y)
    )
    assert on_tf.valid.all() and on_np.valid.all()
    assert [r.info["backend"] for r in on_tf] == ["tensorflow"] * 4
    np.testing.assert_allclose(on_tf.x, on_np.x, rtol=1e-9)
    # the masked point is left out, not propagated
    kept = ~np.isnan(y[0])
    single = lm.minimize(
        LeastSquares(res_np, backend="numpy", args=(t[0][kept], y[0][kept])), [1.0, 0.5]
    )
    np.testing.assert_allclose(on_tf.x[0], single.x, rtol=1e-9)


def test_a_loss_using_gather_has_a_dense_gradient():
    """tf.gather makes the tape return IndexedSlices; the backend hands back a dense array."""

    def loss(x):
        return tf.reduce_sum(
            (tf.gather(x, [0, 1, 1]) - tf.constant([1.0, 2.0, 2.0], tf.float64)) ** 2
        )

    result = ScipyBFGS(tol=1e-10).minimize(
        SimpleLoss(loss, errordef=1.0, backend="tensorflow"), [0.0, 0.0]
    )
    assert result.valid and result.info["backend"] == "tensorflow"
    np.testing.assert_allclose(result.x, [1.0, 2.0], atol=1e-4)  # EDM < 1e-10: ~1e-5 in x
