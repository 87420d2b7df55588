"""Non-finite losses during a fit, across minimizers (test_strategy.py has LM and BFGS).

* ``PushbackStrategy`` recovers where a finite region exists;
* ``DefaultToyStrategy`` returns an invalid result (``NONFINITE``) instead of raising;
* a result whose ``fmin`` is not finite is never valid.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from zfitlite import FailMinimizeNaN, FitResult, SimpleLoss, Status
from zfitlite.minimize import (
    DefaultToyStrategy,
    DifferentialEvolution,
    LevenbergMarquardt,
    Minuit,
    PushbackStrategy,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyNelderMead,
    ScipyPowell,
    ScipyTruncNC,
)
from zfitlite.solvers.base import BaseMinimizer, SolverOutput

LOCAL = (LevenbergMarquardt, ScipyBFGS, ScipyLBFGSB, ScipyNelderMead, ScipyPowell, Minuit)


class LogLoss:
    """x - log(x)/2: minimum 0.5 at x = 1/2, NaN for x <= 0; counts the NaNs it returned.

    From x = 3 every minimizer here steps below zero at least once.
    """

    def __init__(self):
        self.nans = 0

    def __call__(self, x):
        if x[0] <= 0:
            self.nans += 1
            return float("nan")
        return float(x[0] - 0.5 * np.log(x[0]))


class NanAboveTwo:
    """(x-1.5)^2 + (y-0.5)^2 + (x-1.5)^4/2, NaN for x > 2; minimum 0 at (1.5, 0.5)."""

    def __init__(self):
        self.nans = 0

    def __call__(self, x):
        if x[0] > 2.0:
            self.nans += 1
            return float("nan")
        return float((x[0] - 1.5) ** 2 + (x[1] - 0.5) ** 2 + 0.5 * (x[0] - 1.5) ** 4)


def nan_above_two_jax(x):
    d = x[0] - 1.5
    return jnp.where(x[0] > 2.0, jnp.nan, d**2 + (x[1] - 0.5) ** 2 + 0.5 * d**4)


LOG_FMIN = 0.5 + 0.5 * np.log(2.0)


@pytest.mark.parametrize("minimizer", LOCAL, ids=lambda m: m.__name__)
def test_pushback_recovers_near_the_edge_of_the_domain(minimizer):
    f = LogLoss()
    result = minimizer(tol=1e-8, strategy=PushbackStrategy()).minimize(
        SimpleLoss(f, errordef=0.5, backend="numpy"), [3.0]
    )
    assert f.nans > 0, "the test must make the solver meet NaN"
    assert result.valid and result.status is Status.CONVERGED
    np.testing.assert_allclose(result.x, [0.5], atol=1e-3)
    np.testing.assert_allclose(result.fmin, LOG_FMIN, rtol=1e-7)


@pytest.mark.parametrize(
    "minimizer", (ScipyNelderMead, ScipyPowell, ScipyTruncNC), ids=lambda m: m.__name__
)
def test_pushback_recovers_from_a_nan_region_beside_the_minimum(minimizer):
    f = NanAboveTwo()
    result = minimizer(tol=1e-8, strategy=PushbackStrategy()).minimize(
        SimpleLoss(f, errordef=1.0, backend="numpy"), [-3.0, 3.0]
    )
    assert f.nans > 0
    assert result.valid
    np.testing.assert_allclose(result.x, [1.5, 0.5], atol=1e-3)
    assert 0.0 <= result.fmin < 1e-6


@pytest.mark.parametrize(
    "minimizer", (LevenbergMarquardt, ScipyNelderMead, Minuit), ids=lambda m: m.__name__
)
def test_pushback_recovers_on_jax(minimizer):
    # started next to the NaN region, the first simplex / derivative steps cross x = 2
    loss = SimpleLoss(nan_above_two_jax, errordef=1.0, backend="jax")
    assert np.isnan(loss.value([2.5, 0.0]))
    result = minimizer(tol=1e-8, strategy=PushbackStrategy()).minimize(loss, [1.99, 3.0])
    assert result.info["backend"] == "jax"
    assert result.valid
    np.testing.assert_allclose(result.x, [1.5, 0.5], atol=1e-3)


@pytest.mark.parametrize("minimizer", LOCAL, ids=lambda m: m.__name__)
def test_toy_strategy_gives_up_with_an_invalid_result(minimizer):
    """Past nan_tolerance the default raises; DefaultToyStrategy returns NONFINITE at the best point."""
    with pytest.raises(FailMinimizeNaN, match=r"not finite \(1 times; last at x=") as info:
        minimizer(strategy=PushbackStrategy(nan_tolerance=0)).minimize(
            SimpleLoss(LogLoss(), errordef=0.5, backend="numpy"), [3.0]
        )
    assert info.value.best_value <= 3.0 - 0.5 * np.log(3.0)  # the best point is attached
    f = LogLoss()
    result = minimizer(strategy=DefaultToyStrategy(nan_tolerance=0)).minimize(
        SimpleLoss(f, errordef=0.5, backend="numpy"), [3.0]
    )
    assert f.nans >= 1  # (finite differences may meet more than the evaluator counts)
    assert isinstance(result, FitResult)
    assert result.valid is False and result.converged is False
    assert result.status is Status.NONFINITE
    assert result.message.startswith(Status.NONFINITE.message)
    assert "not finite (1 times" in result.message
    # the best finite point seen, and the loss there
    assert np.isfinite(result.fmin)
    assert result.fmin == pytest.approx(f(result.x), rel=1e-12)
    assert result.fmin <= 3.0 - 0.5 * np.log(3.0)


def test_toy_strategy_on_a_global_minimizer():
    def nowhere_finite(x):
        return float("nan")

    nowhere_finite.errordef = 1.0
    params = {"a": {"value": 0.5, "lower": 0.0, "upper": 1.0}}
    with pytest.raises(FailMinimizeNaN, match=r"at the start point"):
        DifferentialEvolution(seed=1).minimize(nowhere_finite, params)
    result = DifferentialEvolution(seed=1, strategy=DefaultToyStrategy()).minimize(
        nowhere_finite, params
    )
    assert result.status is Status.NONFINITE and not result.valid
    assert not np.isfinite(result.fmin)
    np.testing.assert_array_equal(result.x, [0.5])


class _ClaimsConvergence(BaseMinimizer):
    """A solver that says CONVERGED at a point where the loss is NaN."""

    def _minimize(self, evaluator, criterion, params, init):
        return SolverOutput(
            x=params.values.copy(),
            fmin=float("nan"),
            status=Status.CONVERGED,
            niter=1,
            edm=0.0,
            gradient=np.zeros(len(params)),
            hessian=np.eye(len(params)),
        )


@pytest.mark.parametrize("fmin", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_fmin_is_never_valid(fmin):
    def f(x):
        return float((x[0] - 1.0) ** 2)

    f.errordef = 1.0
    result = _ClaimsConvergence().minimize(f, [0.0])
    assert result.status is Status.NONFINITE and not result.valid and not result.converged
    good = LevenbergMarquardt().minimize(f, [0.0])
    assert good.valid
    forged = FitResult(
        params=good.params_spec, fmin=fmin, edm=0.0, status=Status.CONVERGED, tol=1e-3, errordef=1.0
    )
    assert forged.valid is False
