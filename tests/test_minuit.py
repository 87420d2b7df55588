"""Minuit (iminuit's Migrad) behind zfitlite's contract, checked against analytic answers and iminuit itself."""

from __future__ import annotations

import pickle
import sys
import warnings

import iminuit
import numpy as np
import pytest

import zfitlite
from zfitlite import BackendNotAvailable, Status
from zfitlite.minimize import LevenbergMarquardt, Minuit
from zfitlite.solvers.minuit import (
    MINUIT_EDM_FACTOR,
    _initial_errors,
    _minuit_warnings,
    minuit_tol,
)

RNG = np.random.default_rng(7)
DATA = RNG.normal(1.5, 2.0, 500)
N = DATA.size
MU = DATA.mean()
SIGMA = np.sqrt(np.mean((DATA - MU) ** 2))
LIN_X = np.linspace(0.0, 4.0, 12)
LIN_S = 0.2 + 0.05 * LIN_X
LIN_Y = 0.5 - 1.3 * LIN_X + RNG.normal(0.0, LIN_S)


def _backend(xp):
    return "numpy" if xp is np else "jax"


def gaussian_nll(xp, **kwargs):
    def nll(p):
        return xp.sum(xp.log(p[1]) + 0.5 * ((DATA - p[0]) / p[1]) ** 2)

    return zfitlite.SimpleLoss(nll, errordef=0.5, backend=_backend(xp), **kwargs)


def rosenbrock(xp):
    def f(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    return zfitlite.SimpleLoss(f, errordef=1.0, backend=_backend(xp))


GAUSS_PARAMS = {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}}
GAUSS_ERRORS = np.array([SIGMA / np.sqrt(N), SIGMA / np.sqrt(2 * N)])  # analytic


def assert_within_sigma(x, expected, errors=GAUSS_ERRORS, k=1e-3):
    """``x`` within ``k`` standard deviations of ``expected``.

    EDM < tol * errordef puts a fit about ``sqrt(2 * tol)`` sigma from the minimum:
    1.4e-4 sigma at tol 1e-8.
    """
    dist = np.abs(np.asarray(x) - np.asarray(expected)) / errors
    assert np.all(dist < k), dist


def test_gaussian_nll_analytic_and_same_as_iminuit(xp, backend):
    result = Minuit(tol=1e-8).minimize(gaussian_nll(xp), GAUSS_PARAMS)
    assert result.valid and result.status is Status.CONVERGED
    assert result.info["backend"] == backend
    assert result.edm < 1e-8 * 0.5
    assert_within_sigma(result.x, [MU, SIGMA])
    # analytic errors of a Gaussian's mean and width: s / sqrt(n), s / sqrt(2 n)
    analytic = dict(zip(("mu", "sigma"), GAUSS_ERRORS))
    ours = result.hesse()  # our Hessian from the backend
    minuits = result.hesse(method="approx")  # Minuit's Hesse, stored in result.approx
    for name, err in analytic.items():
        assert ours[name]["error"] == pytest.approx(err, rel=1e-5)
        assert minuits[name]["error"] == pytest.approx(err, rel=1e-4)
    # the exact gradient goes to Minuit only where the backend has one
    assert result.info["minuit"]["gradient"] == ("ours" if backend == "jax" else "minuit")
    assert (result.info["minuit"]["ngrad"] > 0) is (backend == "jax")

    # the same fit with iminuit directly
    def nll(mu, sigma):
        return np.sum(np.log(sigma) + 0.5 * ((DATA - mu) / sigma) ** 2)

    m = iminuit.Minuit(nll, mu=0.0, sigma=1.0)
    m.errordef = iminuit.Minuit.LIKELIHOOD
    m.limits["sigma"] = (0.1, None)
    m.tol = minuit_tol(1e-8)
    m.migrad()
    m.hesse()
    assert m.valid
    assert_within_sigma(result.x, np.array(m.values))
    cov = result.covariance(method="approx")
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    # the off-diagonal (0 at the exact minimum) is Hesse's numerical noise: after the polish
    # Migrad rounds (issue 14) it is a correlation of a few 1e-4, like iminuit's own
    np.testing.assert_allclose(cov, np.array(m.covariance), rtol=1e-4, atol=5e-4 * scale.max())
    for name in ("mu", "sigma"):
        assert minuits[name]["error"] == pytest.approx(m.errors[name], rel=1e-4)
    assert result.fmin == pytest.approx(m.fval, rel=1e-12)


def test_errordef_is_passed_linear_chi2(xp):
    def chi2(p):
        return xp.sum(((LIN_Y - p[0] - p[1] * LIN_X) / LIN_S) ** 2)

    A = np.stack([np.ones_like(LIN_X), LIN_X], axis=1) / LIN_S[:, None]
    cov = np.linalg.inv(A.T @ A)
    sol = cov @ A.T @ (LIN_Y / LIN_S)
    for errordef, scale in ((1.0, 1.0), (0.5, 0.5)):
        # a chi2 declared with errordef 0.5 is read as a likelihood: covariances halve
        loss = zfitlite.SimpleLoss(chi2, errordef=errordef, backend=_backend(xp))
        result = Minuit(tol=1e-9).minimize(loss, [0.0, 0.0])
        assert result.valid
        np.testing.assert_allclose(result.x, sol, rtol=1e-7)
        np.testing.assert_allclose(result.covariance(method="approx"), scale * cov, rtol=1e-6)
        np.testing.assert_allclose(result.covariance(method="hesse_np"), scale * cov, rtol=1e-6)


def test_tol_mapping_and_our_edm(xp):
    assert MINUIT_EDM_FACTOR == 0.002
    assert minuit_tol(1e-3) == pytest.approx(0.05)  # Migrad's goal 1e-4, its valid threshold 1e-3
    previous = np.inf
    for tol in (1e-2, 1e-5, 1e-9):
        result = Minuit(tol=tol).minimize(rosenbrock(xp), [-1.2, 1.0])
        assert result.valid
        assert result.edm < tol * 1.0  # our EDM, exact derivatives (JAX) or numerical (numpy)
        distance = np.linalg.norm(result.x - 1.0)
        # a lower tol buys digits, until the polish to a settled point (issue 14) reaches
        # the precision of Minuit's numerical steps anyway
        assert distance < previous or distance < 1e-5
        previous = distance
        assert result.info["minuit"]["tol"] <= minuit_tol(tol)
    assert previous < 1e-4


def test_what_minuit_receives(monkeypatch):
    seen = []
    original = iminuit.Minuit.migrad

    def spy(self, *args, **kwargs):
        seen.append(
            {
                "errors": list(self.errors),
                "limits": [tuple(lim) for lim in self.limits],
                "errordef": self.errordef,
                "tol": self.tol,
                "strategy": int(self.strategy.strategy),
            }
        )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(iminuit.Minuit, "migrad", spy)
    params = {
        "mu": {"value": 0.0, "stepsize": 0.3},
        "sigma": {"value": 1.0, "lower": 0.1, "upper": 10.0, "stepsize": 0.05},
    }
    result = Minuit(tol=1e-4, mode=2).minimize(gaussian_nll(np), params)
    assert result.valid
    first = seen[0]
    assert first["errors"] == pytest.approx([0.3, 0.05])
    assert first["limits"] == [(-np.inf, np.inf), (0.1, 10.0)]
    assert first["errordef"] == 0.5
    assert first["tol"] == pytest.approx(minuit_tol(1e-4))
    assert first["strategy"] == 2


def test_initial_errors_from_init():
    loss = gaussian_nll(np)
    first = LevenbergMarquardt(tol=1e-10).minimize(loss, GAUSS_PARAMS)
    p = zfitlite.Params(("mu", "sigma"), [0.0, 1.0], lower=[-np.inf, 0.1])
    # no step sizes given: one sigma from the init's inverse-Hessian estimate
    expected = np.sqrt(np.diag(first.covariance(method="approx")))
    np.testing.assert_allclose(_initial_errors(p, first, 0.5), expected, rtol=1e-9)
    # step sizes given win
    given = p.with_stepsize([0.7, np.nan])
    out = _initial_errors(given, first, 0.5)
    assert out[0] == 0.7 and out[1] == pytest.approx(expected[1])
    # a result with other parameters contributes nothing
    other = zfitlite.Params(("a", "b"), [0.0, 1.0])
    assert np.isnan(_initial_errors(other, first, 0.5)).all()
    # chaining: the Hesse errors of a previous result become step sizes, and Minuit continues
    first.hesse()
    chained = Minuit(tol=1e-8).minimize(loss, GAUSS_PARAMS, init=first)
    assert chained.valid and chained.params_spec.stepsize == pytest.approx(expected, rel=1e-6)
    assert_within_sigma(chained.x, first.x)
    assert Minuit(tol=1e-8).minimize(first).valid


@pytest.mark.parametrize("gradient", [None, True, False])
def test_gradient_choice(gradient):
    def grad(p):
        mu, s = p
        z = (DATA - mu) / s
        return np.array([-np.sum(z) / s, np.sum(1.0 / s - z**2 / s)])

    with_grad = gaussian_nll(np, gradient=grad)
    result = Minuit(tol=1e-8, gradient=gradient).minimize(with_grad, GAUSS_PARAMS)
    assert result.valid
    assert_within_sigma(result.x, [MU, SIGMA])
    assert result.info["minuit"]["gradient"] == ("minuit" if gradient is False else "ours")
    plain = Minuit(tol=1e-8, gradient=gradient).minimize(gaussian_nll(np), GAUSS_PARAMS)
    assert plain.info["minuit"]["gradient"] == ("ours" if gradient else "minuit")
    assert plain.valid


def test_bounds_are_minuit_limits():
    seen = []

    def f(p):
        seen.append(p.copy())
        return (p[0] - 2.0) ** 2 + (p[1] - 1.0) ** 2 + 0.5 * p[0] * p[1]

    def grad(p):
        return np.array([2 * (p[0] - 2.0) + 0.5 * p[1], 2 * (p[1] - 1.0) + 0.5 * p[0]])

    def hess(p):
        return np.array([[2.0, 0.5], [0.5, 2.0]])

    # exact derivatives: numerical differences would step across the bound (see the report)
    loss = zfitlite.SimpleLoss(f, errordef=1.0, gradient=grad, hessian=hess, backend="numpy")
    params = {"x": {"value": 0.0, "upper": 1.5}, "y": {"value": 0.0, "lower": -3, "upper": 3}}
    for gradient in (True, False):
        seen.clear()
        result = Minuit(tol=1e-8, gradient=gradient).minimize(loss, params)
        assert len(seen) > 10 and np.all(np.array(seen)[:, 0] <= 1.5)
        assert result.params_at_limit == ["x"]
        assert result.converged and not result.valid  # at a limit: never valid
        assert result.x == pytest.approx([1.5, 1.0 - 0.25 * 1.5], abs=1e-4)


def test_maxiter_and_failure_statuses():
    result = Minuit(maxiter=10).minimize(rosenbrock(np), [-1.2, 1.0])
    assert result.status is Status.MAXITER and not result.valid
    assert "maxiter" in result.message
    one_round = Minuit(tol=1e-14, options={"max_rounds": 1}).minimize(rosenbrock(np), [-1.2, 1.0])
    assert one_round.status in (Status.NOT_CONVERGED, Status.CONVERGED)
    assert one_round.converged is (one_round.edm < 1e-14)
    with pytest.raises(ValueError, match="mode"):
        Minuit(mode=3)
    with pytest.raises(TypeError, match="gradient"):
        Minuit(gradient="zfit")
    with pytest.raises(ValueError, match="max_rounds"):
        Minuit(options={"max_rounds": 0})


def test_minuit_warnings_are_recorded_others_pass():
    notes: list[str] = []
    with pytest.warns(UserWarning, match="not minuit's"):
        with _minuit_warnings(notes):
            warnings.warn("from minuit", iminuit.util.IMinuitWarning)
            warnings.warn("not minuit's", UserWarning)
    assert notes == ["IMinuitWarning: from minuit"]


def test_result_is_plain_data(tmp_path):
    result = Minuit(tol=1e-6).minimize(gaussian_nll(np), GAUSS_PARAMS)
    result.hesse(method="approx")
    data = pickle.dumps(result)
    # the loss is a local function: it is dropped, with a warning, and the rest loads
    with pytest.warns(UserWarning, match=r"loaded without its loss \(test_minuit\.gaussian_nll"):
        again = pickle.loads(data)
    assert again.loss is None and again.x.tolist() == result.x.tolist()
    assert again.info["original"].is_valid
    restored = zfitlite.FitResult.from_json(result.to_json())
    assert restored.params["mu"]["hesse"]["error"] == result.params["mu"]["hesse"]["error"]
    assert restored.minimizer_info["class"] == "Minuit"
    assert restored.minimizer_info["mode"] == 1


def test_missing_iminuit_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "iminuit", None)  # "import iminuit" now fails
    with pytest.raises(BackendNotAvailable, match=r"pip install zfitlite\[iminuit\]"):
        Minuit()
    with pytest.raises(ImportError):
        Minuit()


def test_a_minimum_outside_the_box_ends_on_the_bound():
    """Minuit's transform stops a hair inside a bound (here 0.0027 above it, with a flat
    loss); the result is put on the bound, so it counts as at limit and is not valid."""
    loss = zfitlite.SimpleLoss(
        lambda p: 1e-3 * ((p[0] + 0.3) ** 2 + (p[1] - 1) ** 2 + 0.5 * p[0] * p[1]),
        errordef=0.5,
        backend="numpy",
    )
    params = {"a": {"value": 1.0, "lower": 0.0, "upper": 3.0}, "b": 0.0}
    result = zfitlite.minimize.Minuit(tol=1e-3).minimize(loss, params)
    assert result.x[0] == 0.0
    assert result.params_at_limit == ["a"] and not result.valid
    assert result.x[1] == pytest.approx(1.0, abs=0.1)  # b is free: d f/d b = 0 at a = 0
