"""Finite differences that respect bounds: no step leaves the box, derivatives stay right."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite.backends import numdiff
from zfitlite.backends.numdiff import Scales


def _f(x):
    """Smooth, but treated as defined for x[0] >= 0 only: it raises below."""
    if x[0] < 0:
        raise ValueError(f"evaluated outside the bound at x={x}")
    return 3.0 * x[0] + x[0] ** 2 + x[0] ** 3 + (x[1] - 1.0) ** 2 + 0.5 * x[0] * x[1]


def _grad(x):
    return np.array(
        [3.0 + 2.0 * x[0] + 3.0 * x[0] ** 2 + 0.5 * x[1], 2.0 * (x[1] - 1.0) + 0.5 * x[0]]
    )


def _hess(x):
    return np.array([[2.0 + 6.0 * x[0], 0.5], [0.5, 2.0]])


#: scales as a fit passes them (the start values' magnitudes), and the box a >= 0
BOX = Scales(np.ones(2), np.array([0.0, -np.inf]), np.array([np.inf, np.inf]))


@pytest.mark.parametrize("a", [0.0, 1e-9, 1e-5, 0.3])
def test_derivatives_on_and_near_a_bound_stay_inside_and_are_accurate(a):
    x = np.array([a, 0.2])
    np.testing.assert_allclose(numdiff.gradient(_f, x, BOX), _grad(x), rtol=1e-8, atol=1e-9)
    # second derivatives one-sided are first order: error ~ h * f''' (h ~ 1e-4)
    np.testing.assert_allclose(numdiff.hessian(_f, x, BOX), _hess(x), rtol=1e-6, atol=2e-4)
    np.testing.assert_allclose(
        numdiff.hessian_from_gradient(_grad, x, BOX), _hess(x), rtol=1e-6, atol=2e-4
    )


def test_without_bounds_the_central_stencil_crosses_zero():
    """The same point without the box: the central stencil evaluates below 0 and raises."""
    with pytest.raises(ValueError, match="outside the bound"):
        numdiff.gradient(_f, np.array([0.0, 0.2]), np.ones(2))


def test_an_upper_bound_differences_downwards():
    def g(x):
        if x[0] > 2.0:
            raise ValueError("above the bound")
        return np.sin(x[0]) + x[0] ** 2

    box = Scales(np.ones(1), np.array([-np.inf]), np.array([2.0]))
    x = np.array([2.0])
    np.testing.assert_allclose(numdiff.gradient(g, x, box), [np.cos(2.0) + 4.0], rtol=1e-9)
    np.testing.assert_allclose(numdiff.hessian(g, x, box), [[2.0 - np.sin(2.0)]], rtol=1e-3)


@pytest.mark.parametrize(
    "minimizer", ["LevenbergMarquardt", "ScipyLBFGSB", "ScipyTrustConstr", "Minuit"]
)
def test_a_minimum_on_a_bound_where_the_loss_ends(minimizer):
    """The loss raises below a = 0, and its minimum over a >= 0 is at a = 0 (the gradient
    pushes outwards): a numpy-backend fit ends on the bound instead of failing."""
    if minimizer == "Minuit":
        pytest.importorskip("iminuit")
    loss = zfitlite.SimpleLoss(_f, errordef=1.0, backend="numpy")
    params = {"a": {"value": 1.0, "lower": 0.0}, "b": 0.0}
    result = getattr(zfitlite.minimize, minimizer)().minimize(loss, params)
    assert result.x[0] == 0.0 and result.params_at_limit == ["a"]
    assert result.converged and not result.valid  # at a limit: converged, not valid
    # d f / d b = 0 at b = 1; tol 1e-3 allows (b - 1)^2 <~ 1e-3
    assert result.x[1] == pytest.approx(1.0, abs=0.035)
    # the Hessian at the bound is differenced inside the box: [[2, 0.5], [0.5, 2]], so
    # the error of b is sqrt(2 * errordef * (H^-1)_bb) = sqrt(2 * 2 / 3.75)
    errors = result.hesse()
    assert errors["b"]["error"] == pytest.approx(np.sqrt(4.0 / 3.75), rel=1e-4)
