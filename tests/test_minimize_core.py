"""Core minimization: catalogue x minimizers x backends, analytic Hesse and profile errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import zfitlite
from zfitlite import Status
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS

MINIMIZERS = (LevenbergMarquardt, ScipyBFGS)
RNG = np.random.default_rng(20261122)
GAUSS_DATA = RNG.normal(1.5, 2.0, 400)
LIN_X = np.linspace(0.0, 4.0, 15)
LIN_SIGMA = 0.3 + 0.1 * LIN_X
LIN_Y = 1.0 + 0.7 * LIN_X + RNG.normal(0.0, LIN_SIGMA)


def _loss(f, errordef, xp):
    """Pin the backend the test means: numpy code can also trace under JAX."""
    return zfitlite.SimpleLoss(f, errordef=errordef, backend="numpy" if xp is np else "jax")


def gaussian_nll(xp):
    def nll(p):
        return xp.sum(xp.log(p[1]) + 0.5 * ((GAUSS_DATA - p[0]) / p[1]) ** 2)

    return _loss(nll, 0.5, xp)


def linear_chi2(xp):
    def chi2(p):
        return xp.sum(((LIN_Y - p[0] - p[1] * LIN_X) / LIN_SIGMA) ** 2)

    return _loss(chi2, 1.0, xp)


def rosenbrock(xp):
    def f(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    return _loss(f, 1.0, xp)


def gauss_mle():
    mu = GAUSS_DATA.mean()
    return mu, np.sqrt(np.mean((GAUSS_DATA - mu) ** 2))


def linear_solution():
    A = np.stack([np.ones_like(LIN_X), LIN_X], axis=1) / LIN_SIGMA[:, None]
    b = LIN_Y / LIN_SIGMA
    cov = np.linalg.inv(A.T @ A)
    return cov @ A.T @ b, cov


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_catalogue_reaches_known_minimum(minimizer, xp, backend):
    mu, s = gauss_mle()
    lin, _ = linear_solution()
    cases = [
        (gaussian_nll(xp), [0.0, 1.0], [mu, s]),
        (linear_chi2(xp), [0.0, 0.0], lin),
        (rosenbrock(xp), [-1.2, 1.0], [1.0, 1.0]),
    ]
    for loss, start, expected in cases:
        result = minimizer(tol=1e-10).minimize(loss, start)
        assert result.valid, result
        assert result.info["backend"] == backend
        np.testing.assert_allclose(result.x, expected, rtol=1e-6, atol=1e-8)
        assert result.edm < 1e-10 * loss.errordef


def test_hesse_gaussian_nll_analytic(xp, backend):
    loss = gaussian_nll(xp)
    result = LevenbergMarquardt(tol=1e-12).minimize(loss, {"mu": 0.0, "sigma": 1.0})
    _, s = gauss_mle()
    n = GAUSS_DATA.size
    errors = result.hesse()
    assert errors["mu"]["error"] == pytest.approx(s / np.sqrt(n), rel=1e-6)
    assert errors["sigma"]["error"] == pytest.approx(s / np.sqrt(2 * n), rel=1e-6)
    cov = result.covariance()
    assert cov[0, 1] == pytest.approx(0.0, abs=1e-6 * s * s / n)
    # errordef matters: the same loss with errordef 1 would give sqrt(2) larger errors
    assert errors["mu"]["cl"] == pytest.approx(scipy.stats.chi2(1).cdf(1.0))


def test_hesse_linear_chi2_analytic(xp):
    result = LevenbergMarquardt(tol=1e-12).minimize(linear_chi2(xp), [0.0, 0.0])
    sol, cov = linear_solution()
    np.testing.assert_allclose(result.x, sol, rtol=1e-9)
    np.testing.assert_allclose(result.covariance(), cov, rtol=1e-6)
    errs = result.hesse(cl=0.95)
    assert errs["p1"]["error"] == pytest.approx(
        np.sqrt(cov[1, 1]) * scipy.stats.norm.ppf(0.975), rel=1e-6
    )


@pytest.mark.parametrize("sigma", [1, 2])
def test_profile_errors_gaussian_nll_analytic(xp, sigma):
    result = LevenbergMarquardt(tol=1e-12).minimize(gaussian_nll(xp), {"mu": 0.0, "sigma": 1.0})
    n = GAUSS_DATA.size
    _, s = gauss_mle()
    k2 = sigma**2
    errors, new = result.errors(sigma=sigma)
    assert new is None
    # profile over sigma: dNLL(mu) = n/2 log(1 + (mu - mean)^2 / s^2)
    d_mu = s * np.sqrt(np.exp(k2 / n) - 1)
    assert errors["mu"]["lower"] == pytest.approx(-d_mu, rel=1e-6)
    assert errors["mu"]["upper"] == pytest.approx(d_mu, rel=1e-6)

    # profile over mu (mu stays at the mean): n log(t/s) + n/2 (s^2/t^2 - 1) = k^2/2
    def excess(t):
        return n * np.log(t / s) + 0.5 * n * (s * s / (t * t) - 1) - 0.5 * k2

    lo = scipy.optimize.brentq(excess, 0.5 * s, s, xtol=1e-15)
    hi = scipy.optimize.brentq(excess, s, 2 * s, xtol=1e-15)
    assert errors["sigma"]["lower"] == pytest.approx(lo - s, rel=1e-6)
    assert errors["sigma"]["upper"] == pytest.approx(hi - s, rel=1e-6)
    assert errors["sigma"]["cl"] == pytest.approx(scipy.stats.chi2(1).cdf(k2))


@pytest.mark.parametrize("sigma", [1, 2])
def test_profile_errors_linear_chi2_equal_hesse(xp, sigma):
    result = LevenbergMarquardt(tol=1e-12).minimize(linear_chi2(xp), [0.0, 0.0])
    _, cov = linear_solution()
    errors, _ = result.errors(sigma=sigma)
    for i, name in enumerate(["p0", "p1"]):
        assert errors[name]["upper"] == pytest.approx(sigma * np.sqrt(cov[i, i]), rel=1e-6)
        assert errors[name]["lower"] == pytest.approx(-sigma * np.sqrt(cov[i, i]), rel=1e-6)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_maxiter_returns_invalid_result(minimizer, backend, xp):
    # maxiter counts the loss's own calls: on numpy one finite-difference value and
    # gradient takes 2 * (2 n + 1) = 10, so 5 evaluations' worth is 25 calls
    maxiter = 25 if backend == "numpy" else 5
    result = minimizer(maxiter=maxiter).minimize(rosenbrock(xp), [-1.2, 1.0])
    assert result is not None
    assert result.status is Status.MAXITER
    assert not result.valid and not result.converged
    assert "maxiter" in result.message
    assert result.fmin < 24.2  # best point so far, not the start (f(start) = 24.2)
    # + the documented allowance where derivatives are exact: the EDM's value, gradient
    # and Hessian (three evaluations) past the budget
    assert result.info["ncalls"] <= maxiter + (3 if backend == "jax" else 0)
    # exact derivatives: the EDM of the best point is measured past the budget (one value
    # and gradient, one Hessian); finite differences: nothing past the budget, EDM unknown
    assert np.isfinite(result.edm) if backend == "jax" else np.isnan(result.edm)


def test_no_step_returns_invalid_result():
    # a loss with noise far above tol: no step can reach EDM < 1e-14
    def noisy(x):
        return float((x[0] - 1) ** 2 + 1e-6 * np.sin(1e7 * x[0]))

    noisy.errordef = 1.0
    result = LevenbergMarquardt(tol=1e-14).minimize(noisy, [3.0])
    assert not result.valid
    assert result.status in (Status.NO_STEP, Status.MAXITER)
    assert result.message
    assert result.x[0] == pytest.approx(1.0, abs=5e-2)


@pytest.mark.parametrize("minimizer", MINIMIZERS)
def test_chaining_into_each_other(minimizer, xp):
    first = LevenbergMarquardt(tol=1.0).minimize(rosenbrock(xp), [-1.2, 1.0])
    second = minimizer(tol=1e-10).minimize(first)
    assert second.valid
    np.testing.assert_allclose(second.x, [1.0, 1.0], rtol=1e-6)
    third = ScipyBFGS(tol=1e-10).minimize(rosenbrock(xp), init=second)
    assert third.valid and third.nfev <= second.nfev + 5
    # explicit start values win over init's
    fourth = LevenbergMarquardt(maxiter=1).minimize(rosenbrock(xp), [-1.2, 1.0], init=second)
    assert fourth.x.tolist() == [-1.2, 1.0]


def test_global_then_local():
    def himmelblau(p):
        return (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2

    himmelblau.errordef = 1.0
    params = {
        "x": {"value": 0.0, "lower": -5, "upper": 5},
        "y": {"value": 0.0, "lower": -5, "upper": 5},
    }
    coarse = zfitlite.minimize.DifferentialEvolution(seed=3).minimize(himmelblau, params)
    again = zfitlite.minimize.DifferentialEvolution(seed=3).minimize(himmelblau, params)
    assert coarse.x.tolist() == again.x.tolist()
    fine = LevenbergMarquardt(tol=1e-12).minimize(coarse)
    assert fine.valid
    assert fine.fmin == pytest.approx(0.0, abs=1e-14)
    minima = np.array(
        [[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]]
    )
    assert np.min(np.linalg.norm(minima - fine.x, axis=1)) < 1e-5


def test_global_needs_bounds():
    f = rosenbrock(np)
    with pytest.raises(ValueError, match="needs finite lower and upper bounds"):
        zfitlite.minimize.DifferentialEvolution().minimize(f, [0.0, 0.0])


def test_bounds_refused_by_bfgs_and_honoured_by_lm(xp):
    f = rosenbrock(xp)
    params = {"a": {"value": 0.0, "upper": 0.5}, "b": 0.0}
    with pytest.raises(ValueError, match="LevenbergMarquardt"):
        ScipyBFGS().minimize(f, params)
    seen = []
    result = LevenbergMarquardt(tol=1e-10, callback=lambda s: seen.append(s.x.copy())).minimize(
        f, params
    )
    assert np.all(np.array(seen)[:, 0] <= 0.5)
    assert result.params_at_limit == ["a"]
    assert not result.valid and result.converged
    np.testing.assert_allclose(result.x, [0.5, 0.25], atol=2e-6)


def test_negative_curvature_does_not_stall(xp):
    def double_well(p):
        return (p[0] ** 2 - 1) ** 2 + p[1] ** 2

    result = LevenbergMarquardt(tol=1e-12).minimize(
        _loss(double_well, 1.0, xp), [0.05, 0.3]
    )  # Hessian indefinite here
    assert result.valid
    assert abs(result.x[0]) == pytest.approx(1.0, rel=1e-8)


def test_verbosity_levels_print(capsys):
    f = rosenbrock(np)
    LevenbergMarquardt(verbosity=0).minimize(f, [-1.2, 1.0])
    assert capsys.readouterr().out == ""
    LevenbergMarquardt(verbosity=1).minimize(f, [-1.2, 1.0])
    out = capsys.readouterr().out
    assert "minimizing 2 parameter(s)" in out and "CONVERGED" in out and "iter" not in out
    LevenbergMarquardt(verbosity=7).minimize(f, [-1.2, 1.0])
    assert "iter    3" in capsys.readouterr().out
    LevenbergMarquardt(verbosity=10, maxiter=30).minimize(f, [-1.2, 1.0])
    assert "eval value" in capsys.readouterr().out


def test_callback_gets_iteration_state():
    states = []
    LevenbergMarquardt(callback=states.append).minimize(rosenbrock(np), [-1.2, 1.0])
    assert [s.iteration for s in states] == list(range(len(states)))
    assert all("lambda" in s.extras for s in states)
    assert states[-1].fmin < states[0].fmin
    assert states[-1].edm < 1e-3


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"tol": 0.0}, ValueError, "tol must be"),
        ({"tol": -1.0}, ValueError, "tol must be"),
        ({"tol": "small"}, TypeError, "tol must be"),
        ({"maxiter": 0}, ValueError, "maxiter"),
        ({"maxiter": -3}, ValueError, "maxiter"),
        ({"maxiter": 2.5}, TypeError, "maxiter"),
        ({"verbosity": 11}, ValueError, "verbosity"),
        ({"options": {"no_such_option": 1}}, ValueError, "unknown option"),
        ({"strategy": "pushback"}, TypeError, "strategy"),
        ({"criterion": "edm"}, TypeError, "criterion"),
        ({"callback": 3}, TypeError, "callback"),
    ],
)
def test_bad_minimizer_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        LevenbergMarquardt(**kwargs)


def test_create_evaluator_and_criterion():
    f = rosenbrock(np)
    minimizer = LevenbergMarquardt(maxiter=19)  # the loss's own calls (numpy backend)
    ev = minimizer.create_evaluator(f, [0.0, 0.0])
    v, g, H = ev.value_gradient_hessian(np.array([0.0, 0.0]))
    assert v == 1.0
    np.testing.assert_allclose(g, [-2.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(H, [[2.0, 0.0], [0.0, 200.0]], rtol=1e-6, atol=1e-5)
    assert (ev.nfev, ev.ngrad, ev.nhess) == (1, 1, 1)
    # value 1 + gradient 4 n (Richardson) + Hessian 1 + 2 n + 4 n (n - 1) / 2 calls
    assert ev.ncalls == 1 + 8 + 9 == ev.counts()["ncalls"]
    ev.value(np.array([1.0, 1.0]))
    with pytest.raises(zfitlite.MaximumIterationReached):
        ev.value(np.array([1.0, 1.0]))
    crit = minimizer.create_criterion(f, [0.0, 0.0])
    assert crit.goal == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "minimizer", ["LevenbergMarquardt", "ScipyBFGS", "ScipyLBFGSB", "ScipyTrustConstr"]
)
def test_a_saddle_point_is_never_a_valid_minimum(minimizer):
    """Started exactly on the saddle of x^2 - y^2 the gradient is zero and so is the EDM;
    the negative curvature of the Hessian still says this is no minimum."""

    def saddle(p):
        return p[0] ** 2 - p[1] ** 2

    saddle.errordef = 1.0
    result = getattr(zfitlite.minimize, minimizer)().minimize(saddle, [0.0, 0.0])
    assert not result.valid
    assert result.status is Status.NOT_CONVERGED
    assert "negative eigenvalue (-1 of its largest)" in result.message
    assert "below tol * errordef" in result.message and "above" not in result.message


def test_noise_swamping_numerical_derivatives_is_not_convergence():
    """Noise of 0.01 on a loss of scale 100 makes the finite-difference Hessian garbage (here
    negative definite, with a tiny EDM): the fit must not call that point a minimum."""
    noise = np.random.default_rng(0)

    def simulated(p):
        exact = 100 * ((p[0] - 1.0) ** 2 + 4 * (p[1] + 0.5) ** 2)
        return exact + 1e-2 * noise.standard_normal()

    loss = zfitlite.SimpleLoss(simulated, errordef=1.0, backend="numpy")
    result = zfitlite.minimize.LevenbergMarquardt().minimize(loss, [0.0, 0.0])
    assert result.edm < 1e-3  # the EDM alone would have called it converged
    assert not result.valid and result.status is Status.NOT_CONVERGED
    assert "noise" in result.message
