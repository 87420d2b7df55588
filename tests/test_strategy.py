"""Strategies: non-finite losses, losses that raise, losses of the wrong kind."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite import FailMinimizeNaN, FitResult, Status
from zfitlite.evaluator import LossEvaluationError
from zfitlite.loss import SimpleLoss
from zfitlite.minimize import (
    DefaultStrategy,
    DefaultToyStrategy,
    LevenbergMarquardt,
    PushbackStrategy,
    ScipyBFGS,
    ZfitStrategy,
)
from zfitlite.strategy import NonFiniteRecord

MINIMIZERS = (LevenbergMarquardt, ScipyBFGS)
WHAT_TO_DO = r"Check the loss's domain, add bounds, or use PushbackStrategy\(nan_tolerance=\.\.\.\) or DefaultToyStrategy"


class NanCounter:
    """x - log(x)/2 (minimum at 0.5), NaN for x < 0; counts the NaNs it returned.

    From x = 2 the Newton step (-6) lands at x = -4, so every solver meets NaN.
    """

    def __init__(self):
        self.nans = 0

    def __call__(self, x):
        if x[0] < 0:
            self.nans += 1
            return float("nan")
        return float(x[0] - 0.5 * np.log(x[0]))


def nan_region_jax(x):
    return jnp.where(x[0] < 0, jnp.nan, x[0] - 0.5 * jnp.log(jnp.abs(x[0])))


# -- pushback -------------------------------------------------------------------------------


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_pushback_recovers_numpy(minimizer):
    f = NanCounter()
    loss = SimpleLoss(f, errordef=0.5, backend="numpy")
    result = minimizer(tol=1e-10, strategy=PushbackStrategy()).minimize(loss, [2.0])
    assert f.nans > 0, "the test must make the solver meet NaN"
    assert result.valid
    assert result.status is Status.CONVERGED
    np.testing.assert_allclose(result.x, [0.5], atol=1e-6)
    np.testing.assert_allclose(result.fmin, 0.5 + 0.5 * np.log(2.0), rtol=1e-12)
    # the Hesse error of x - log(x)/2 at 0.5: H = 1/(2 x^2) = 2, error = sqrt(2 * 0.5 / 2)
    np.testing.assert_allclose(result.hesse()["p0"]["error"], np.sqrt(0.5), rtol=1e-5)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_pushback_recovers_jax(minimizer):
    loss = SimpleLoss(nan_region_jax, errordef=0.5, backend="jax")
    assert np.isnan(loss.value([-4.0]))
    result = minimizer(tol=1e-10, strategy=PushbackStrategy()).minimize(loss, [2.0])
    assert result.info["backend"] == "jax"
    assert result.valid
    np.testing.assert_allclose(result.x, [0.5], atol=1e-6)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_default_strategy_pushes_back_too(minimizer):
    f = NanCounter()
    result = minimizer(tol=1e-10).minimize(SimpleLoss(f, errordef=0.5, backend="numpy"), [2.0])
    assert isinstance(result.minimizer.strategy, DefaultStrategy)
    assert f.nans > 0
    assert result.valid
    np.testing.assert_allclose(result.x, [0.5], atol=1e-6)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_tolerance_zero_gives_up(minimizer):
    f = NanCounter()
    with pytest.raises(
        FailMinimizeNaN, match=r"the loss's value was not finite \(1 times; last at x="
    ):
        minimizer(strategy=PushbackStrategy(nan_tolerance=0)).minimize(
            SimpleLoss(f, errordef=0.5, backend="numpy"), [2.0]
        )
    assert f.nans >= 1


# -- a loss that is NaN everywhere except at the start ---------------------------------------


def only_at_start(x):
    return 1.0 if x[0] == 2.0 else float("nan")


only_at_start.errordef = 1.0


# Regression test (found while writing these tests; fixed): at the start the value is finite but the numerical gradient/Hessian are NaN; the
# strategy's gradient pushback at the last finite point has dx = 0 and returns a ZERO
# gradient (and a positive Hessian), so EDM = 0 and the fit reports a valid CONVERGED
# minimum at the start instead of raising FailMinimizeNaN.
@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_everywhere_but_start_default_raises(minimizer):
    with pytest.raises(FailMinimizeNaN, match=r"gradient is not finite.*DefaultToyStrategy"):
        minimizer(strategy=DefaultStrategy()).minimize(only_at_start, [2.0])


# Regression test (found while writing these tests; fixed): same cause as above: DefaultToyStrategy returns valid=True, status CONVERGED.
@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_everywhere_but_start_toy_invalid(minimizer):
    result = minimizer(strategy=DefaultToyStrategy()).minimize(only_at_start, [2.0])
    assert isinstance(result, FitResult)
    assert result.valid is False
    assert result.status is not Status.CONVERGED
    assert result.status is Status.NONFINITE
    assert result.message


# -- a loss that is NaN at the start ---------------------------------------------------------


def nan_at_start(x):
    return float("nan") if x[0] > 1.0 else (x[0] - 0.5) ** 2


nan_at_start.errordef = 1.0


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_at_start_default_raises(minimizer):
    with pytest.raises(FailMinimizeNaN, match=r"not finite \(at the start point") as info:
        minimizer().minimize(nan_at_start, [2.0])
    assert re.search(WHAT_TO_DO, str(info.value))


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_at_start_pushback_raises(minimizer):
    with pytest.raises(FailMinimizeNaN, match=r"not finite \(at the start point"):
        minimizer(strategy=PushbackStrategy(nan_tolerance=1000)).minimize(nan_at_start, [2.0])


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_nan_at_start_toy_invalid(minimizer):
    result = minimizer(strategy=DefaultToyStrategy()).minimize(nan_at_start, [2.0])
    assert isinstance(result, FitResult)
    assert result.valid is False
    assert result.converged is False
    assert result.status is Status.NONFINITE
    assert result.message.startswith(Status.NONFINITE.message)
    np.testing.assert_array_equal(result.x, [2.0])
    assert not np.isfinite(result.fmin)
    assert "valid" in str(result)


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_infinite_at_start_default_raises(value):
    def f(x):
        return value

    f.errordef = 1.0
    with pytest.raises(FailMinimizeNaN, match=r"not finite \(at the start point"):
        LevenbergMarquardt().minimize(f, [1.0])


def test_strategy_class_is_instantiated():
    result = LevenbergMarquardt(strategy=DefaultToyStrategy).minimize(nan_at_start, [2.0])
    assert isinstance(result.minimizer.strategy, DefaultToyStrategy)
    assert result.status is Status.NONFINITE


def test_strategy_wrong_type():
    with pytest.raises(TypeError, match=r"strategy must be a ZfitStrategy instance"):
        LevenbergMarquardt(strategy="toy")


# -- a loss that raises ------------------------------------------------------------------


def always_raises(x):
    raise RuntimeError("boom: the model diverged")


always_raises.errordef = 1.0


class RaisesBelowOne:
    def __init__(self):
        self.raised = 0

    def __call__(self, x):
        if x[0] < 1.0:
            self.raised += 1
            raise RuntimeError("boom: below one")
        return float(x[0] ** 2 + x[1] ** 2)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_loss_raises_default(minimizer):
    with pytest.raises(
        LossEvaluationError,
        match=r"the loss raised RuntimeError while computing its value.* at x=\[3\. 1\.\]: boom: the model diverged",
    ) as info:
        minimizer().minimize(always_raises, [3.0, 1.0])
    assert isinstance(info.value.__cause__, RuntimeError)
    assert isinstance(info.value, zfitlite.ZfitliteError)
    assert isinstance(info.value, RuntimeError)


# Regression test (found while writing these tests; fixed): the loss raises at the very first evaluation; DefaultToyStrategy gives status
# NONFINITE with the generic NaN message instead of LOSS_RAISED with the loss's message:
# BaseMinimizer._make_result overwrites any status with NONFINITE (and the message with
# None) when fmin is not finite, and the fallback's fmin is inf when no finite value was seen.
@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_loss_raises_at_start_toy(minimizer):
    result = minimizer(strategy=DefaultToyStrategy()).minimize(always_raises, [3.0, 1.0])
    assert result.valid is False
    assert result.status is Status.LOSS_RAISED
    assert "boom: the model diverged" in result.message


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_loss_raises_later_toy(minimizer):
    f = RaisesBelowOne()
    loss = SimpleLoss(f, errordef=1.0, backend="numpy")
    result = minimizer(strategy=DefaultToyStrategy()).minimize(loss, [3.0, 1.0])
    assert f.raised == 1
    assert isinstance(result, FitResult)
    assert result.valid is False
    assert result.status is Status.LOSS_RAISED
    assert result.message.startswith(Status.LOSS_RAISED.message)
    assert "RuntimeError" in result.message and "boom: below one" in result.message
    # the result is the best finite point seen, and its fmin is the loss there
    assert result.x[0] >= 1.0
    assert result.fmin == pytest.approx(float(result.x @ result.x), rel=1e-12)
    assert result.fmin <= 10.0


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_loss_raises_later_default(minimizer):
    f = RaisesBelowOne()
    with pytest.raises(LossEvaluationError, match=r"RuntimeError.*: boom: below one"):
        minimizer().minimize(SimpleLoss(f, errordef=1.0, backend="numpy"), [3.0, 1.0])
    assert f.raised == 1


# -- a loss of the wrong kind --------------------------------------------------------------


def vector_np(x):
    return np.array([x[0] ** 2, 1.0])


def vector_jax(x):
    return jnp.stack([x[0] ** 2, 1.0])


def complex_np(x):
    return complex(float(x[0]) ** 2, 1.0)


def complex_jax(x):
    return x[0] ** 2 + 1j


# Regression test (found while writing these tests; fixed): the evaluator's "where a scalar is due" check never runs: the numpy backend's
# numerical gradient (_as_float: "cannot reshape array of size 2 into shape ()") and the
# JAX backend's jnp.reshape(func(x), ()) fail first, so the message is a reshape error
# that says nothing about a scalar being required.
@pytest.mark.parametrize("minimizer", MINIMIZERS)
@pytest.mark.parametrize(
    ("func", "backend"), [(vector_np, "numpy"), (vector_jax, "jax"), (vector_jax, "auto")]
)
def test_vector_loss_message(minimizer, func, backend):
    loss = SimpleLoss(func, errordef=1.0, backend=backend)
    with pytest.raises(LossEvaluationError, match=r"scalar"):
        minimizer().minimize(loss, [2.0, 1.0])


@pytest.mark.parametrize(("func", "backend"), [(vector_np, "numpy"), (vector_jax, "jax")])
def test_vector_loss_raises_loss_evaluation_error(func, backend):
    loss = SimpleLoss(func, errordef=1.0, backend=backend)
    with pytest.raises(LossEvaluationError, match=r"\(2,\)|size 2"):
        LevenbergMarquardt().minimize(loss, [2.0, 1.0])


def test_vector_loss_value_says_scalar():
    """A value-only evaluation reaches the evaluator's own check."""
    loss = SimpleLoss(vector_np, errordef=1.0, backend="numpy")
    ev = LevenbergMarquardt().create_evaluator(loss, [2.0, 1.0])
    with pytest.raises(
        LossEvaluationError,
        match=r"the loss returned an array of shape \(2,\) at x=\[2\. 1\.\] where a scalar is due",
    ):
        ev.value([2.0, 1.0])


@pytest.mark.parametrize("minimizer", MINIMIZERS)
@pytest.mark.parametrize(
    ("func", "backend"), [(complex_np, "numpy"), (complex_jax, "jax"), (complex_jax, "auto")]
)
def test_complex_loss_message(minimizer, func, backend):
    loss = SimpleLoss(func, errordef=1.0, backend=backend)
    with pytest.raises(LossEvaluationError, match=r"(?s)(?=.*complex)(?=.*real)"):
        minimizer().minimize(loss, [2.0, 1.0])


def test_complex_loss_value_says_complex():
    loss = SimpleLoss(complex_np, errordef=1.0, backend="numpy")
    ev = LevenbergMarquardt().create_evaluator(loss, [2.0, 1.0])
    with pytest.raises(
        LossEvaluationError, match=r"the loss returned a complex value \(4\+1j\) .* it must be real"
    ):
        ev.value([2.0, 1.0])


@pytest.mark.parametrize("value", ["1.0", None], ids=["str", "none"])
def test_non_number_loss(value):
    def f(x):
        return value

    f.errordef = 1.0
    loss = SimpleLoss(f, errordef=1.0, backend="numpy")
    with pytest.raises(LossEvaluationError, match=rf"the loss returned {value!r} of type"):
        LevenbergMarquardt().minimize(loss, [2.0])


def test_wrong_gradient_shape():
    loss = SimpleLoss(
        lambda x: float(x[0] ** 2 + x[1] ** 2),
        errordef=1.0,
        gradient=lambda x: np.zeros(3),
        backend="numpy",
    )
    with pytest.raises(
        LossEvaluationError, match=r"the loss's gradient has shape \(3,\), expected \(2,\)"
    ):
        LevenbergMarquardt().minimize(loss, [1.0, 1.0])


# -- the strategy itself -------------------------------------------------------------------


@pytest.mark.parametrize("penalty", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_nan_penalty(penalty):
    with pytest.raises(ValueError, match=r"nan_penalty must be a finite positive number"):
        PushbackStrategy(nan_penalty=penalty)


@pytest.mark.parametrize("tolerance", [-1, 2.5])
def test_bad_nan_tolerance(tolerance):
    with pytest.raises(ValueError, match=r"nan_tolerance must be a non-negative integer"):
        DefaultStrategy(nan_tolerance=tolerance)


def test_strategy_flags_and_repr():
    assert DefaultStrategy().raise_on_failure is True
    assert PushbackStrategy().raise_on_failure is True
    assert DefaultToyStrategy().raise_on_failure is False
    assert issubclass(DefaultToyStrategy, DefaultStrategy)
    assert issubclass(DefaultStrategy, ZfitStrategy)
    s = PushbackStrategy(nan_penalty=7.0, nan_tolerance=3)
    assert repr(s) == "PushbackStrategy(nan_penalty=7.0, nan_tolerance=3)"


def test_pushback_value_penalty_grows():
    s = PushbackStrategy(nan_penalty=10.0, nan_tolerance=2)
    rec = NonFiniteRecord(errordef=0.5, last_x=np.array([1.0, 1.0]), last_value=3.0)
    x = np.array([1.0, 3.0])
    assert s.handle_nonfinite("value", x, float("nan"), rec) == 3.0 + 10.0 * 0.5 * 1
    assert rec.count == 1
    # the gradient points from the last finite point towards x (so a step goes back)
    g = s.handle_nonfinite("gradient", x, np.array([np.nan, np.nan]), rec)
    np.testing.assert_allclose(g, 10.0 * 0.5 * 2 * np.array([0.0, 2.0]) / 4.0, rtol=1e-15)
    with pytest.raises(FailMinimizeNaN, match=r"3 times"):
        s.handle_nonfinite("value", x, float("nan"), rec)


def test_pushback_without_finite_point_raises():
    s = PushbackStrategy()
    rec = NonFiniteRecord()
    with pytest.raises(FailMinimizeNaN, match=r"at the start point"):
        s.handle_nonfinite("value", np.array([1.0]), float("nan"), rec)


def test_one_strategy_serves_many_fits():
    strategy = PushbackStrategy(nan_tolerance=5)
    m = LevenbergMarquardt(tol=1e-10, strategy=strategy)
    for _ in range(8):  # the NaN count lives in the fit, not in the strategy
        f = NanCounter()
        result = m.minimize(SimpleLoss(f, errordef=0.5, backend="numpy"), [2.0])
        assert f.nans > 0
        assert result.valid


class _RaisesOnCall:
    """``(p0 - 1)**2 + (p1 - 2)**2`` that raises on its ``fail_at``-th call; remembers
    every value it returned."""

    def __init__(self, fail_at: int, func=None) -> None:
        self.fail_at, self.calls, self.returned = fail_at, 0, []
        self.func = func or (lambda p: (p[0] - 1.0) ** 2 + (p[1] - 2.0) ** 2)

    def __call__(self, p):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError(f"call {self.calls}")
        value = float(self.func(p))
        self.returned.append((np.array(p, dtype=float), value))
        return value


@pytest.mark.parametrize("make", [LevenbergMarquardt, ScipyBFGS], ids=["lm", "bfgs"])
def test_a_failure_keeps_the_best_point_computed(make):
    """The 7th call raises inside the numerical gradient at the start: the start's value,
    computed by the 1st call, is the best point, on the error and on a toy's result; the
    toy strategy then calls the failing loss no more (no EDM for an invalid result)."""
    f = _RaisesOnCall(7)
    with pytest.raises(LossEvaluationError, match=r"RuntimeError.*call 7") as info:
        make().minimize(SimpleLoss(f, errordef=1.0, backend="numpy"), [0.0, 0.0])
    assert f.calls == 7
    assert info.value.best_value == 5.0
    np.testing.assert_array_equal(info.value.best_x, [0.0, 0.0])
    assert info.value.param_names == ("p0", "p1")

    f = _RaisesOnCall(7)
    result = make(strategy=DefaultToyStrategy()).minimize(
        SimpleLoss(f, errordef=1.0, backend="numpy"), [0.0, 0.0]
    )
    assert f.calls == 7  # before: 25, the EDM's gradient and Hessian at the start
    assert result.status is Status.LOSS_RAISED and not result.valid
    assert result.fmin == 5.0 and np.isnan(result.edm)
    np.testing.assert_array_equal(result.x, [0.0, 0.0])


def test_a_failure_later_keeps_the_lowest_value_seen():
    """With an analytic gradient every call is at a point of the fit: the lowest value
    returned before the failure is ``best_value``, at its ``x``."""

    def rosenbrock(p):
        return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2

    def gradient(p):
        return np.array(
            [-2.0 * (1.0 - p[0]) - 400.0 * p[0] * (p[1] - p[0] ** 2), 200.0 * (p[1] - p[0] ** 2)]
        )

    f = _RaisesOnCall(12, rosenbrock)
    loss = SimpleLoss(f, errordef=1.0, backend="numpy", gradient=gradient)
    with pytest.raises(LossEvaluationError) as info:
        ScipyBFGS().minimize(loss, [-1.2, 1.0])
    x_best, v_best = min(f.returned, key=lambda xv: xv[1])
    assert len(f.returned) == 11 and v_best < f.returned[0][1] == pytest.approx(24.2)
    assert info.value.best_value == v_best
    np.testing.assert_array_equal(info.value.best_x, x_best)
