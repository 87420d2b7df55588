"""Losses: SimpleLoss, plain callables with errordef, LeastSquares and its from_data."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite.loss import LeastSquares, SimpleLoss
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS
from zfitlite.to_loss import as_loss

RNG = np.random.default_rng(4242)
LINE_X = np.linspace(-1.0, 3.0, 25)
LINE_SIGMA = 0.2 + 0.05 * np.abs(LINE_X)
LINE_Y = 0.8 - 1.3 * LINE_X + RNG.normal(0.0, LINE_SIGMA)


def _quad(x):
    return (x[0] - 2.0) ** 2 + 3.0 * (x[1] + 1.0) ** 2


def _quad_np(x):
    x = np.asarray(x)  # fails under JAX tracing: numpy backend
    return float((x[0] - 2.0) ** 2 + 3.0 * (x[1] + 1.0) ** 2)


def _quad_float(x):
    a = float(x[0])  # fails under JAX tracing: numpy backend
    return (a - 2.0) ** 2 + 3.0 * (x[1] + 1.0) ** 2


def _quad_jax(x):
    return jnp.sum(jnp.array([1.0, 3.0]) * (x - jnp.array([2.0, -1.0])) ** 2)


def weighted_line_solution(x, y, sigma):
    """Analytic weighted linear least squares for y = a + b x: (a, b) and their errors."""
    A = np.stack([np.ones_like(x), x], axis=1) / sigma[:, None]
    rhs = y / sigma
    normal = A.T @ A
    coef = np.linalg.solve(normal, A.T @ rhs)
    cov = np.linalg.inv(normal)
    return coef, np.sqrt(np.diag(cov))


# -- SimpleLoss ----------------------------------------------------------------------------


def test_errordef_from_argument():
    loss = SimpleLoss(_quad, errordef=0.5)
    assert loss.errordef == 0.5


def test_errordef_from_function_attribute():
    def f(x):
        return (x[0] - 1.0) ** 2

    f.errordef = 1.0
    assert SimpleLoss(f).errordef == 1.0


def test_errordef_argument_wins_over_attribute():
    def f(x):
        return (x[0] - 1.0) ** 2

    f.errordef = 1.0
    assert SimpleLoss(f, errordef=0.5).errordef == 0.5


def test_missing_errordef_raises():
    def f(x):
        return x[0] ** 2

    with pytest.raises(ValueError, match=r"loss 'f' has no errordef: set it on the function"):
        SimpleLoss(f)


@pytest.mark.parametrize(
    ("errordef", "exc", "match"),
    [
        (0.0, ValueError, r"errordef must be a finite positive number, got 0\.0"),
        (-1.0, ValueError, r"errordef must be a finite positive number, got -1\.0"),
        (float("nan"), ValueError, r"errordef must be a finite positive number, got nan"),
        ("0.5", TypeError, r"errordef must be a positive number, got '0\.5'"),
        (True, TypeError, r"errordef must be a positive number, got True"),
    ],
)
def test_bad_errordef(errordef, exc, match):
    with pytest.raises(exc, match=match):
        SimpleLoss(_quad, errordef=errordef)


def test_non_callable_raises():
    with pytest.raises(TypeError, match=r"SimpleLoss needs a callable func, got list"):
        SimpleLoss([1.0, 2.0], errordef=1.0)


def test_non_callable_gradient_raises():
    with pytest.raises(TypeError, match=r"SimpleLoss: gradient must be a callable or None"):
        SimpleLoss(_quad, errordef=1.0, gradient=3.0)


def test_unknown_backend_raises():
    with pytest.raises(ValueError, match=r"backend='torch' is not known"):
        SimpleLoss(_quad, errordef=1.0, backend="torch")


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_user_gradient_and_hessian_are_used(backend):
    calls = {"grad": 0, "hess": 0}

    def grad(x):
        calls["grad"] += 1
        return np.array([2.0 * (x[0] - 2.0), 6.0 * (x[1] + 1.0)])

    def hess(x):
        calls["hess"] += 1
        return np.diag([2.0, 6.0])

    func = _quad_jax if backend == "jax" else _quad_np
    loss = SimpleLoss(func, errordef=1.0, gradient=grad, hessian=hess, backend=backend)
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [10.0, 10.0])
    assert result.valid
    assert result.info["backend"] == backend
    np.testing.assert_allclose(result.x, [2.0, -1.0], atol=1e-5)
    # every gradient/Hessian evaluation of the fit went through the user's functions
    assert calls["grad"] == result.info["ngrad"] > 0
    assert calls["hess"] == result.info["nhess"] > 0
    before = dict(calls)
    errs = result.hesse()
    # JAX (compiled functions, cached per loss): hesse() reuses the Hessian the fit
    # measured at its end point; numpy builds its functions anew and calls again
    assert calls["hess"] == before["hess"] + (0 if backend == "jax" else 1)
    # covariance = 2 * errordef * H^-1 with H = diag(2, 6)
    np.testing.assert_allclose(
        [errs["p0"]["error"], errs["p1"]["error"]], [1.0, np.sqrt(1.0 / 3.0)], rtol=1e-12
    )


def test_user_gradient_is_used_by_bfgs():
    calls = {"grad": 0}

    def grad(x):
        calls["grad"] += 1
        return np.array([2.0 * (x[0] - 2.0), 6.0 * (x[1] + 1.0)])

    loss = SimpleLoss(_quad_np, errordef=1.0, gradient=grad, backend="numpy")
    result = ScipyBFGS(tol=1e-10).minimize(loss, [5.0, 5.0])
    assert result.valid
    np.testing.assert_allclose(result.x, [2.0, -1.0], atol=1e-6)
    # numerical Hessian from the user's gradient: 2 gradient calls per parameter at least
    assert calls["grad"] >= result.info["ngrad"] > 0


@pytest.mark.parametrize(
    ("func", "expected"),
    [(_quad_jax, "jax"), (_quad, "jax"), (_quad_np, "numpy"), (_quad_float, "numpy")],
    ids=["jax.numpy", "pure-arithmetic", "np.asarray", "float(x[0])"],
)
def test_backend_auto_detection(func, expected):
    loss = SimpleLoss(func, errordef=1.0)
    assert loss.backend_request == "auto"
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [0.0, 0.0])
    assert result.info["backend"] == expected
    assert result.valid
    np.testing.assert_allclose(result.x, [2.0, -1.0], atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_backend_forced(backend):
    loss = SimpleLoss(_quad, errordef=1.0, backend=backend)
    result = LevenbergMarquardt(tol=1e-10).minimize(loss, [0.0, 0.0])
    assert result.info["backend"] == backend
    np.testing.assert_allclose(result.x, [2.0, -1.0], atol=1e-6)


def test_value_and_call():
    loss = SimpleLoss(_quad, errordef=1.0)
    assert loss.value([0.0, 0.0]) == pytest.approx(7.0, rel=1e-15)
    assert loss([2.0, -1.0]) == 0.0


# -- a plain callable ----------------------------------------------------------------------


def test_plain_callable_wrapper_is_reused():
    def f(x):
        return (x[0] - 1.0) ** 2

    f.errordef = 1.0
    w = as_loss(f)
    assert as_loss(f) is w
    assert w.func is f
    r1 = LevenbergMarquardt().minimize(f, [0.0])
    r2 = LevenbergMarquardt().minimize(f, [3.0])
    assert r1.loss is w and r2.loss is w


def test_plain_callable_errordef_change_is_seen():
    def f(x):
        return (x[0] - 1.0) ** 2

    f.errordef = 1.0
    w = as_loss(f)
    assert w.errordef == 1.0
    f.errordef = 0.5
    assert as_loss(f) is w
    assert w.errordef == 0.5
    # the changed errordef reaches the fit: error = sqrt(2 * errordef / H) with H = 2
    result = LevenbergMarquardt(tol=1e-10).minimize(f, [0.0])
    assert result.errordef == 0.5
    np.testing.assert_allclose(result.hesse()["p0"]["error"], np.sqrt(0.5), rtol=1e-6)


def test_plain_callable_without_errordef():
    def f(x):
        return x[0] ** 2

    with pytest.raises(ValueError, match=r"loss 'f' has no errordef"):
        as_loss(f)
    with pytest.raises(ValueError, match=r"errordef"):
        LevenbergMarquardt().minimize(f, [1.0])


def test_plain_callable_errordef_removed_later():
    def f(x):
        return x[0] ** 2

    f.errordef = 1.0
    w = as_loss(f)
    f.errordef = None
    with pytest.raises(ValueError, match=r"has no errordef"):
        w.errordef  # noqa: B018


def test_as_loss_rejects_non_loss():
    with pytest.raises(TypeError, match=r"a loss must be a callable with an errordef attribute"):
        as_loss(3.0)


def test_as_loss_passes_losses_through():
    loss = SimpleLoss(_quad, errordef=1.0)
    assert as_loss(loss) is loss


# -- LeastSquares --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_least_squares_value_is_sum_of_squares(backend):
    data = np.array([1.0, 2.0, 4.0])

    def res(p):
        return data - p[0] * np.array([1.0, 1.0, 1.0]) if backend == "numpy" else data - p[0]

    loss = LeastSquares(res, backend=backend)
    assert loss.errordef == 1.0
    for p0 in (0.0, 1.5, -3.0):
        expected = float(np.sum((data - p0) ** 2))
        assert loss.value([p0]) == pytest.approx(expected, rel=1e-14)
    assert loss.is_least_squares


def test_least_squares_non_callable():
    with pytest.raises(TypeError, match=r"LeastSquares needs a callable residuals, got str"):
        LeastSquares("r")


def _line_np(x, p):
    p = np.asarray(p)  # fails under JAX tracing
    return p[0] + p[1] * x


def _line_jax(x, p):
    return p[0] + p[1] * jnp.asarray(x)


@pytest.mark.parametrize(("model", "backend"), [(_line_np, "numpy"), (_line_jax, "jax")])
def test_from_data_straight_line_matches_analytic(model, backend):
    loss = LeastSquares.from_data(model, LINE_X, LINE_Y, LINE_SIGMA)
    result = LevenbergMarquardt(tol=1e-12).minimize(loss, [0.0, 0.0])
    assert result.valid
    assert result.info["backend"] == backend
    coef, err = weighted_line_solution(LINE_X, LINE_Y, LINE_SIGMA)
    np.testing.assert_allclose(result.x, coef, rtol=1e-6)
    # chi-square at the minimum
    chi2 = np.sum(((LINE_Y - coef[0] - coef[1] * LINE_X) / LINE_SIGMA) ** 2)
    np.testing.assert_allclose(result.fmin, chi2, rtol=1e-9)
    errs = result.hesse()
    np.testing.assert_allclose([errs["p0"]["error"], errs["p1"]["error"]], err, rtol=1e-6)


@pytest.mark.parametrize("model", [_line_np, _line_jax], ids=["numpy", "jax"])
def test_from_data_nan_y_is_masked(model):
    y = LINE_Y.copy()
    nan_at = [0, 7, 8, 24]
    y[nan_at] = np.nan
    keep = np.ones(y.size, dtype=bool)
    keep[nan_at] = False
    masked = LeastSquares.from_data(model, LINE_X, y, LINE_SIGMA)
    dropped = LeastSquares.from_data(model, LINE_X[keep], y[keep], LINE_SIGMA[keep])
    np.testing.assert_array_equal(masked.data["mask"], keep)
    assert masked.value([0.3, -1.0]) == pytest.approx(dropped.value([0.3, -1.0]), rel=1e-14)
    r_masked = LevenbergMarquardt(tol=1e-12).minimize(masked, [0.0, 0.0])
    r_dropped = LevenbergMarquardt(tol=1e-12).minimize(dropped, [0.0, 0.0])
    assert r_masked.valid and r_dropped.valid
    assert np.isfinite(r_masked.fmin)
    coef, err = weighted_line_solution(LINE_X[keep], y[keep], LINE_SIGMA[keep])
    np.testing.assert_allclose(r_masked.x, coef, rtol=1e-6)
    np.testing.assert_allclose(r_masked.x, r_dropped.x, rtol=1e-9)
    np.testing.assert_allclose(r_masked.fmin, r_dropped.fmin, rtol=1e-9)
    e = r_masked.hesse()
    np.testing.assert_allclose([e["p0"]["error"], e["p1"]["error"]], err, rtol=1e-6)


def test_from_data_scalar_sigma_and_default_sigma():
    loss1 = LeastSquares.from_data(_line_np, LINE_X, LINE_Y, 0.5)
    loss_default = LeastSquares.from_data(_line_np, LINE_X, LINE_Y)
    p = [0.1, 0.2]
    r = LINE_Y - 0.1 - 0.2 * LINE_X
    assert loss1.value(p) == pytest.approx(np.sum((r / 0.5) ** 2), rel=1e-14)
    assert loss_default.value(p) == pytest.approx(np.sum(r**2), rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, r"sigma must be finite and > 0 for every observed y; sigma\[0\] = 0\.0"),
        (
            {"sigma": np.where(np.arange(25) == 3, -0.1, 0.2)},
            r"sigma must be finite and > 0 for every observed y; sigma\[3\] = -0\.1",
        ),
        (
            {"x": LINE_X[:-1]},
            r"x and y must have the same length: x has shape \(24,\), y has shape \(25,\)",
        ),
        ({"y": np.full(25, np.nan)}, r"every y is NaN \(missing\): there is nothing to fit"),
        ({"y": np.ones((25, 2))}, r"y must be one-dimensional, got shape \(25, 2\)"),
    ],
    ids=["sigma-zero", "sigma-negative", "length-mismatch", "all-nan-y", "2d-y"],
)
def test_from_data_bad_inputs(kwargs, match):
    args = {"x": LINE_X, "y": LINE_Y, "sigma": LINE_SIGMA, **kwargs}
    with pytest.raises(ValueError, match=match):
        LeastSquares.from_data(_line_np, args["x"], args["y"], args["sigma"])


def test_from_data_non_callable_model():
    with pytest.raises(TypeError, match=r"from_data needs a callable model\(x, p\)"):
        LeastSquares.from_data(None, LINE_X, LINE_Y)


def test_from_data_sigma_at_missing_point_is_ignored():
    y = LINE_Y.copy()
    y[2] = np.nan
    sigma = LINE_SIGMA.copy()
    sigma[2] = 0.0  # not observed: no error
    loss = LeastSquares.from_data(_line_np, LINE_X, y, sigma)
    assert np.isfinite(loss.value([0.0, 0.0]))


def test_simple_loss_is_exported():
    assert zfitlite.SimpleLoss is SimpleLoss
    assert zfitlite.LeastSquares is LeastSquares
