"""maxiter is a budget of real work: every call of the user's loss counts."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite.minimize import BFGS, LevenbergMarquardt, ScipyBFGS, ScipyLBFGSB, ScipyNelderMead


class CountingRosenbrock:
    """A numpy loss (finite-difference derivatives) that counts its own calls."""

    errordef = 0.5

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, p: np.ndarray) -> float:
        self.calls += 1
        return float(np.sum(100.0 * (p[1:] - p[:-1] ** 2) ** 2 + (1.0 - p[:-1]) ** 2))


MINIMIZERS = [LevenbergMarquardt, ScipyLBFGSB, ScipyBFGS, ScipyNelderMead, BFGS]


@pytest.mark.parametrize("cls", MINIMIZERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("n", [2, 5])
def test_maxiter_bounds_the_real_calls_of_the_loss(cls, n):
    f = CountingRosenbrock()
    loss = zfitlite.SimpleLoss(f, errordef=0.5, backend="numpy")
    result = cls(maxiter=30).minimize(loss, np.full(n, -1.0))
    # the budget holds exactly: a call whose finite differences could overrun it is refused
    assert 0 < f.calls <= 30
    assert result.info["ncalls"] == f.calls
    assert result.status is zfitlite.Status.MAXITER and not result.valid
    # the requests are reported on their own
    assert result.info["nfev"] >= 1


@pytest.mark.parametrize("cls", MINIMIZERS, ids=lambda c: c.__name__)
def test_a_fit_inside_the_budget_counts_the_final_hessian(cls):
    f = CountingRosenbrock()
    loss = zfitlite.SimpleLoss(f, errordef=0.5, backend="numpy")
    result = cls(maxiter=20_000).minimize(loss, np.array([-1.0, 1.0]))
    assert result.valid, result.message
    assert np.allclose(result.x, [1.0, 1.0], atol=0.05)
    # every call of the loss is in the count, the final Hessian (2 n^2 + 1 = 9) included
    assert result.info["ncalls"] == f.calls
    assert result.info["nhess"] >= 1


def test_least_squares_budget_counts_residual_calls():
    t = np.linspace(0.0, 3.0, 20)
    y = 2.0 * np.exp(-0.7 * t)
    calls = [0]

    def residuals(p):
        calls[0] += 1
        return y - p[0] * np.exp(-p[1] * t)

    loss = zfitlite.LeastSquares(residuals, backend="numpy")
    result = LevenbergMarquardt(maxiter=30).minimize(loss, [1.0, 1.0])
    assert calls[0] <= 30 and result.info["ncalls"] == calls[0]
    full = LevenbergMarquardt().minimize(loss, [1.0, 1.0])
    assert full.valid and np.allclose(full.x, [2.0, 0.7], rtol=1e-6)


def test_auto_budget_scales_with_finite_difference_cost():
    loss = zfitlite.SimpleLoss(CountingRosenbrock(), errordef=0.5, backend="numpy")
    ev = ScipyLBFGSB().create_evaluator(loss, np.zeros(4))
    # 5000 + 1000 n evaluations, each priced at one finite-difference gradient (2 n + 1)
    assert ev.maxiter == (5000 + 1000 * 4) * 9
    assert ScipyLBFGSB(maxiter=77).create_evaluator(loss, np.zeros(4)).maxiter == 77
