"""iminuit cost functions minimised by zfitlite, checked against iminuit's Migrad + Hesse.

Each cost is fitted by ``iminuit.Minuit`` (strategy 2, ``tol=1e-6``: EDM below
``2e-9 * errordef``) and by zfitlite at ``tol=1e-10`` in the same run. Tolerances:
values within ``1e-3`` of a standard deviation (observed at most 2e-5: Migrad's own stop
and its numerical gradient dominate), Hesse errors within ``1e-3`` relative (observed at
most 7e-5: both are numerical Hessians, iminuit's from its step-size-tuned differences,
ours Richardson-extrapolated).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import norm

from zfitlite.adapters import (
    IminuitCostAdapter,
    IminuitLeastSquaresAdapter,
    adapt_external,
    is_iminuit_cost,
)
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS, ScipyLBFGSB, ScipyMinimize
from zfitlite.params import make_params
from zfitlite.to_loss import as_loss

iminuit = pytest.importorskip("iminuit")
cost = pytest.importorskip("iminuit.cost")

TOL = 1e-10
RNG = np.random.default_rng(2024)

# -- data ----------------------------------------------------------------------------------
LSQ_X = np.linspace(0.0, 2.0, 25)
LSQ_ERR = 0.1 + 0.05 * LSQ_X
LSQ_Y = 1.0 + 2.0 * LSQ_X - 0.7 * LSQ_X**2 + RNG.normal(0.0, LSQ_ERR)
UNBINNED = RNG.normal(0.4, 1.3, 400)
EDGES = np.linspace(-4.0, 4.5, 21)
COUNTS = np.histogram(UNBINNED, EDGES)[0]


def quadratic(x, a, b, c):
    return a + b * x + c * x**2


def normal_pdf(x, mu, sigma):
    return norm.pdf(x, mu, sigma)


def normal_pdf_grad(x, mu, sigma):
    z = (x - mu) / sigma
    f = norm.pdf(x, mu, sigma)
    return np.array([f * z / sigma, f * (z**2 - 1.0) / sigma])


def normal_cdf(xe, mu, sigma):
    return norm.cdf(xe, mu, sigma)


def scaled_cdf(xe, n, mu, sigma):
    return n * norm.cdf(xe, mu, sigma)


def density(x, n, mu, sigma):
    return n, n * norm.pdf(x, mu, sigma)


def _template():
    edges = np.linspace(-3.0, 3.0, 13)
    t_sig = np.histogram(RNG.normal(0.0, 0.8, 2000), edges)[0].astype(float)
    t_bkg = np.histogram(RNG.uniform(-3.0, 3.0, 2000), edges)[0].astype(float)
    data = np.concatenate([RNG.normal(0.0, 0.8, 300), RNG.uniform(-3.0, 3.0, 200)])
    return cost.Template(np.histogram(data, edges)[0], edges, [t_sig, t_bkg], method="asy")


def _masked_lsq():
    c = cost.LeastSquares(LSQ_X, LSQ_Y, LSQ_ERR, quadratic)
    mask = np.ones(LSQ_X.size, dtype=bool)
    mask[[3, 11]] = False
    c.mask = mask
    return c


COSTS = {
    # name: (factory, start values, expected errordef)
    "LeastSquares": (lambda: cost.LeastSquares(LSQ_X, LSQ_Y, LSQ_ERR, quadratic), [0, 1, 0], 1.0),
    "LeastSquares-masked": (_masked_lsq, [0, 1, 0], 1.0),
    "UnbinnedNLL": (lambda: cost.UnbinnedNLL(UNBINNED, normal_pdf), [0.0, 1.0], None),
    "UnbinnedNLL-grad": (
        lambda: cost.UnbinnedNLL(UNBINNED, normal_pdf, grad=normal_pdf_grad),
        [0.0, 1.0],
        None,
    ),
    "ExtendedUnbinnedNLL": (
        lambda: cost.ExtendedUnbinnedNLL(UNBINNED, density),
        [300.0, 0.0, 1.0],
        None,
    ),
    "BinnedNLL": (lambda: cost.BinnedNLL(COUNTS, EDGES, normal_cdf), [0.0, 1.0], None),
    "ExtendedBinnedNLL": (
        lambda: cost.ExtendedBinnedNLL(COUNTS, EDGES, scaled_cdf),
        [300.0, 0.0, 1.0],
        None,
    ),
    "CostSum": (
        lambda: (
            cost.LeastSquares(LSQ_X, LSQ_Y, LSQ_ERR, quadratic)
            + cost.NormalConstraint("c", -0.5, 0.1)
        ),
        [0, 1, 0],
        1.0,
    ),
}


def _reference(c, start):
    m = iminuit.Minuit(c, *start)
    m.strategy = 2
    m.tol = 1e-6
    m.migrad()
    m.hesse()
    assert m.valid
    return np.array(m.values), np.array(m.errors)


def _check(result, c, ref_values, ref_errors):
    assert result.valid, result.message
    assert result.names == tuple(c._parameters)
    assert result.errordef == c.errordef
    assert np.all(np.abs(result.x - ref_values) <= 1e-3 * ref_errors), (
        result.x - ref_values
    ) / ref_errors
    assert result.fmin == pytest.approx(c(*result.x), rel=1e-12)
    hesse = result.hesse()
    errors = np.array([hesse[n]["error"] for n in result.names])
    np.testing.assert_allclose(errors, ref_errors, rtol=1e-3)


@pytest.mark.parametrize("name", list(COSTS))
@pytest.mark.parametrize("minimizer", ["LevenbergMarquardt", "ScipyBFGS"])
def test_matches_iminuit(name: str, minimizer: str) -> None:
    factory, start, errordef = COSTS[name]
    c = factory()
    if errordef is not None:
        assert c.errordef == errordef
    ref_values, ref_errors = _reference(c, start)
    m = {"LevenbergMarquardt": LevenbergMarquardt, "ScipyBFGS": ScipyBFGS}[minimizer](tol=TOL)
    result = m.minimize(c, start)
    _check(result, c, ref_values, ref_errors)
    lsq = isinstance(c, cost.LeastSquares)
    assert isinstance(result.loss, IminuitLeastSquaresAdapter if lsq else IminuitCostAdapter)
    if minimizer == "LevenbergMarquardt" and lsq:
        # Levenberg-Marquardt works on the residuals and their (numerical) Jacobian
        assert result.info["nres"] > 0 and result.info["njac"] > 0
        assert result.info["nhess"] <= 1  # at most the Hessian for the final EDM
    else:
        assert result.info["nres"] == 0 and result.info["njac"] == 0


@pytest.mark.parametrize("minimizer", [LevenbergMarquardt, ScipyLBFGSB])
def test_errordef_half_template(minimizer) -> None:
    """Template with method="asy" has errordef 0.5 and limits (0, inf) on its yields."""
    c = _template()
    assert c.errordef == 0.5
    start = [250.0, 250.0]
    ref_values, ref_errors = _reference(c, start)
    result = minimizer(tol=TOL).minimize(c, start)
    _check(result, c, ref_values, ref_errors)
    assert all(result.params[n]["lower"] == 0.0 for n in result.names)
    # covariance = 2 * errordef * H^-1 = H^-1 here (errordef 1 would double it)
    H = result.loss.compiled(2).hessian(result.x)
    np.testing.assert_allclose(result.covariance(), np.linalg.inv(H), rtol=1e-6)


def test_bounded_cost_refused_by_bfgs() -> None:
    with pytest.raises(ValueError, match="cannot honour parameter bounds"):
        ScipyBFGS().minimize(_template(), [250.0, 250.0])


def test_annotated_limits_are_bounds() -> None:
    from typing import Annotated

    from iminuit.typing import Gt

    def pdf(x, mu, sigma: Annotated[float, Gt(0)]):
        return norm.pdf(x, mu, sigma)

    c = cost.UnbinnedNLL(UNBINNED, pdf)
    result = LevenbergMarquardt(tol=TOL).minimize(c, [0.0, 1.0])
    assert result.params["sigma"]["lower"] == 0.0
    assert np.isposinf(result.params["sigma"]["upper"])
    ref_values, ref_errors = _reference(c, [0.0, 1.0])
    _check(result, c, ref_values, ref_errors)


def test_least_squares_residuals_are_the_pulls() -> None:
    for c in (COSTS["LeastSquares"][0](), _masked_lsq()):
        loss = as_loss(c)
        assert isinstance(loss, IminuitLeastSquaresAdapter)
        assert loss.is_least_squares and loss.errordef == 1.0
        p = np.array([0.9, 2.1, -0.6])
        r = loss.compiled(3).residuals(p)
        pulls = c.pulls(p)
        np.testing.assert_allclose(r, pulls[np.isfinite(pulls)], rtol=1e-14)
        assert float(r @ r) == pytest.approx(c(*p), rel=1e-13)


def test_robust_least_squares_is_a_scalar_loss() -> None:
    c = cost.LeastSquares(LSQ_X, LSQ_Y, LSQ_ERR, quadratic, loss="soft_l1")
    loss = as_loss(c)
    assert isinstance(loss, IminuitCostAdapter) and not loss.is_least_squares
    result = LevenbergMarquardt(tol=TOL).minimize(c, [0, 1, 0])
    assert result.valid and result.info["nres"] == 0
    ref_values, ref_errors = _reference(c, [0, 1, 0])
    _check(result, c, ref_values, ref_errors)
    with pytest.raises(ValueError, match="soft_l1"):
        IminuitLeastSquaresAdapter(c)


def test_cost_gradient_is_used() -> None:
    c = COSTS["UnbinnedNLL-grad"][0]()
    loss = as_loss(c)
    assert loss.gradient_func is not None
    x = np.array([0.3, 1.2])
    np.testing.assert_allclose(loss.compiled(2).value_and_gradient(x)[1], c.grad(*x))
    # an exact gradient makes ScipyMinimize pick BFGS
    result = ScipyMinimize(tol=1e-6, options={"gtol": 1e-6}).minimize(c, [0.0, 1.0])
    assert result.info["method"] == "BFGS"
    assert as_loss(COSTS["UnbinnedNLL"][0]()).gradient_func is None


def test_params_forms() -> None:
    c = COSTS["LeastSquares"][0]()
    by_name = LevenbergMarquardt(tol=TOL).minimize(c, {"c": 0.0, "a": 0.0, "b": 1.0})
    assert by_name.names == ("a", "b", "c")
    adapter = IminuitLeastSquaresAdapter(c, params=[0, 1, 0])
    assert adapter.params.names == ("a", "b", "c")
    known = LevenbergMarquardt(tol=TOL).minimize(adapter)
    np.testing.assert_allclose(known.x, by_name.x, rtol=1e-8)
    # chaining keeps the cost's layout
    chained = ScipyBFGS(tol=TOL).minimize(known)
    assert chained.names == ("a", "b", "c") and chained.valid


def test_mismatched_parameter_count() -> None:
    c = COSTS["UnbinnedNLL"][0]()
    with pytest.raises(ValueError, match=r"has 2 parameter\(s\) \['mu', 'sigma'\].*3 start"):
        ScipyBFGS().minimize(c, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="unknown: \\['sd'\\], missing: \\['sigma'\\]"):
        ScipyBFGS().minimize(c, {"mu": 0.0, "sd": 1.0})
    with pytest.raises(ValueError, match="3 start value"):
        IminuitCostAdapter(c, params=[1.0, 2.0, 3.0])


def test_cost_needs_start_values() -> None:
    with pytest.raises(ValueError, match="no parameters given"):
        LevenbergMarquardt().minimize(COSTS["BinnedNLL"][0]())


class _DuckCost:
    """A callable with iminuit's ``_parameters`` protocol (what iminuit.Minuit reads)."""

    def __init__(self, errordef: object = 1.0, parameters: object = None) -> None:
        self._parameters = {"u": None, "v": (-1.0, 1.0)} if parameters is None else parameters
        if errordef is not None:
            self.errordef = errordef

    def __call__(self, u, v):
        return (u - 2.0) ** 2 + 10.0 * (v - 0.5) ** 2


def test_duck_typed_cost() -> None:
    duck = _DuckCost()
    assert is_iminuit_cost(duck)
    result = LevenbergMarquardt(tol=TOL).minimize(duck, [0.0, 0.0])
    assert result.names == ("u", "v") and result.params["v"]["upper"] == 1.0
    np.testing.assert_allclose(result.x, [2.0, 0.5], atol=1e-6)


def test_named_starts_follow_the_costs_names_whatever_their_order() -> None:
    """A cost whose names are a reordering of p0, p1: named starts go by name."""
    duck = _DuckCost(parameters={"p1": None, "p0": (-1.0, 1.0)})
    params = as_loss(duck).complete_params(make_params({"p0": 0.5, "p1": 3.0}))
    assert params.names == ("p1", "p0")
    np.testing.assert_array_equal(params.values, [3.0, 0.5])
    np.testing.assert_array_equal(params.upper, [np.inf, 1.0])


def test_bad_costs() -> None:
    with pytest.raises(ValueError, match="has no errordef"):
        as_loss(_DuckCost(errordef=None))
    with pytest.raises(ValueError, match="no parameters"):
        as_loss(_DuckCost(parameters={}))
    with pytest.raises(ValueError, match="limits of parameter 'u'"):
        as_loss(_DuckCost(parameters={"u": 3.0}))
    assert adapt_external(lambda x: 0.0) is None


def test_import_stays_light() -> None:
    code = (
        "import sys, zfitlite\n"
        "from zfitlite.to_loss import as_loss\n"
        "f = lambda x: float(x @ x)\n"
        "f.errordef = 1.0\n"
        "zfitlite.minimize.LevenbergMarquardt().minimize(as_loss(f), [1.0])\n"
        "heavy = [m for m in ('zfit', 'iminuit') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
