"""FitResult: attributes, aliases, rendering, serialisation, pickling, uncertainties."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import zfitlite
from zfitlite import FitResult, Status
from zfitlite.loss import SimpleLoss
from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS

# A correlated quadratic: H = [[2a, c], [c, 2b]] exactly, so the covariance is known.
H_QUAD = np.array([[8.0, 2.0], [2.0, 2.0]])
X_QUAD = np.array([1.0, -2.0])


def quad_chi2(x):
    d = x - X_QUAD
    return 0.5 * d @ H_QUAD @ d


quad_chi2.errordef = 1.0


SKEW_N = 5.0


def skewed_nll(x):
    """A non-quadratic, convex NLL (Poisson in the log-mean): asymmetric profile errors."""
    return SKEW_N * (np.exp(x[0]) / SKEW_N - x[0]) + (x[1] - x[0]) ** 2


skewed_nll.errordef = 0.5


def _cov_quad(errordef=1.0):
    return 2.0 * errordef * np.linalg.inv(H_QUAD)


@pytest.fixture
def quad_result():
    return LevenbergMarquardt(tol=1e-12).minimize(quad_chi2, {"mu": 0.0, "nu": 0.0})


# -- attributes and aliases ----------------------------------------------------------------


def test_attributes_and_aliases(quad_result):
    r = quad_result
    assert r.valid is True
    assert r.converged is True
    assert r.success is True
    assert r.status is Status.CONVERGED
    assert r.message == Status.CONVERGED.message
    np.testing.assert_allclose(r.x, X_QUAD, atol=3e-6)
    assert r.values == {"mu": float(r.x[0]), "nu": float(r.x[1])}
    assert r.params["mu"]["value"] == r.x[0]
    assert r.params["nu"]["at_limit"] is False
    assert r.fun == r.fmin == r.fminopt
    assert 0.0 <= r.fmin < 1e-12
    assert 0.0 <= r.edm < 1e-12
    assert r.edm_goal == pytest.approx(1e-12)
    np.testing.assert_array_equal(r.jac, r.approx.gradient)
    np.testing.assert_allclose(r.hess, H_QUAD, rtol=1e-6)
    assert r.nfev == r.info["nfev"] > 0
    assert r.njev == r.info["ngrad"] > 0
    assert r.nit == r.info["niter"] >= 1
    assert r.params_at_limit == []
    assert r.names == ("mu", "nu")
    assert r.loss.func is quad_chi2
    assert isinstance(r.minimizer, LevenbergMarquardt)
    assert r.minimizer_info["name"] == "LevenbergMarquardt"
    # x is a copy: changing it does not change the result
    x = r.x
    x[0] = 99.0
    assert r.x[0] != 99.0


def test_bfgs_result_has_inverse_hessian():
    r = ScipyBFGS(tol=1e-10).minimize(quad_chi2, [0.0, 0.0])
    assert r.valid
    assert r.hess_inv is not None
    assert r.hess_inv.shape == (2, 2)
    assert r.info["original"] is not None


def test_params_at_limit_is_list_of_names():
    def f(x):
        return (x[0] - 2.0) ** 2 + (x[1] - 0.5) ** 2

    f.errordef = 1.0
    r = LevenbergMarquardt(tol=1e-10).minimize(
        f, {"a": {"value": 0.0, "upper": 1.0}, "b": {"value": 0.0, "lower": -1.0, "upper": 1.0}}
    )
    assert r.params_at_limit == ["a"]
    assert r.params["a"]["at_limit"] is True
    assert r.params["b"]["at_limit"] is False
    assert r.x[0] == 1.0
    np.testing.assert_allclose(r.x[1], 0.5, atol=1e-5)
    assert r.valid is False
    assert r.converged is True


# -- rendering -----------------------------------------------------------------------------


def test_str_contains_summary_and_names(quad_result):
    s = str(quad_result)
    for word in ("valid", "EDM", "fmin", "mu", "nu", "CONVERGED", "LevenbergMarquardt"):
        assert word in s, word
    assert "True" in s.split("valid", 1)[1].splitlines()[0]
    quad_result.hesse()
    s2 = str(quad_result)
    assert "hesse" in s2
    err = np.sqrt(np.diag(_cov_quad()))
    assert format(err[0], ".3g") in s2


def test_repr_html(quad_result):
    h = quad_result._repr_html_()
    assert "<table" in h
    assert "mu" in h and "nu" in h
    assert "EDM" in h


def test_repr_html_escapes_names():
    def f(x):
        return (x[0] - 1.0) ** 2

    f.errordef = 1.0
    r = LevenbergMarquardt().minimize(f, {"<b>": 0.0})
    assert "&lt;b&gt;" in r._repr_html_()


# -- serialisation -------------------------------------------------------------------------


def test_to_dict_is_json_serialisable(quad_result):
    quad_result.hesse()
    d = quad_result.to_dict()
    text = json.dumps(d)
    back = json.loads(text)
    assert back["format"] == "zfitlite.FitResult"
    assert back["status"] == 0
    assert back["status_name"] == "CONVERGED"
    assert back["params"]["name"] == ["mu", "nu"]
    assert back["minimizer"]["name"] == "LevenbergMarquardt"
    assert "original" not in back["info"]


def test_json_round_trip():
    r = LevenbergMarquardt(tol=1e-10).minimize(
        skewed_nll, {"a": 0.0, "b": {"value": 0.5, "lower": -5.0, "upper": 5.0}}
    )
    hesse = r.hesse()
    errs, new = r.errors()
    assert new is None
    text = r.to_json()
    back = FitResult.from_json(text)
    assert back.loss is None and back.minimizer is None
    assert back.names == ("a", "b")
    np.testing.assert_array_equal(back.x, r.x)
    assert back.values == r.values
    assert back.fmin == r.fmin
    assert back.edm == r.edm
    assert back.status is r.status
    assert back.valid is r.valid is True
    assert back.message == r.message
    np.testing.assert_array_equal(back.params_spec.lower, [-np.inf, -5.0])
    np.testing.assert_array_equal(back.params_spec.upper, [np.inf, 5.0])
    np.testing.assert_array_equal(back.covariance(), r.covariance())
    for name in ("a", "b"):
        assert back.params[name]["hesse"]["error"] == hesse[name]["error"]
        assert back.params[name]["errors"]["lower"] == errs[name]["lower"]
        assert back.params[name]["errors"]["upper"] == errs[name]["upper"]
    # hesse() on the loaded result uses the stored covariance (no loss needed)
    assert back.hesse() == hesse
    np.testing.assert_array_equal(back.approx.hessian, r.approx.hessian)
    assert back.info["nfev"] == r.info["nfev"]
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(
        json.loads(text), sort_keys=True
    )


def test_from_dict_of_to_dict_equal():
    r = LevenbergMarquardt(tol=1e-10).minimize(quad_chi2, [0.0, 0.0])
    r.hesse()
    d = r.to_dict()
    back = FitResult.from_dict(copy.deepcopy(d))
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(d, sort_keys=True)


def test_from_json_rejects_non_json():
    with pytest.raises(ValueError, match="not valid JSON for a FitResult"):
        FitResult.from_json("{not json")
    with pytest.raises(TypeError, match="from_json needs JSON text, got dict"):
        FitResult.from_json({})


def _good_dict():
    r = LevenbergMarquardt(tol=1e-10).minimize(quad_chi2, {"mu": 0.0, "nu": 0.0})
    r.hesse()
    return r.to_dict()


def _set(d, path, value):
    d = copy.deepcopy(d)
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


_DELETE = object()

MALFORMED = [
    pytest.param(("fmin",), _DELETE, r"missing key\(s\) \['fmin'\]", id="missing-fmin"),
    pytest.param(("status",), _DELETE, r"missing key\(s\) \['status'\]", id="missing-status"),
    pytest.param(
        ("format",),
        "pickle",
        r"'format' is 'pickle', expected 'zfitlite.FitResult'",
        id="wrong-format",
    ),
    pytest.param(("version",), 2, r"unsupported version 2", id="wrong-version"),
    pytest.param(
        ("params",),
        [1.0, 2.0],
        r"'params' must be a dict with at least 'name' and 'value'",
        id="params-list",
    ),
    pytest.param(
        ("params", "name"), ["mu", 3], r"'params.name' must be a list of strings", id="name-not-str"
    ),
    pytest.param(
        ("params", "value"),
        [0.0],
        r"params.value has shape \(1,\), expected \(2,\)",
        id="value-wrong-length",
    ),
    pytest.param(
        ("params", "value"),
        ["1.0", 2.0],
        r"params.value must contain only numbers, found str",
        id="value-string",
    ),
    pytest.param(
        ("params", "value"),
        [float("nan"), 2.0],
        r"invalid parameters: parameter 'mu' has a non-finite start",
        id="value-nan",
    ),
    pytest.param(("fmin",), "0.0", r"'fmin' must be a number, got str", id="fmin-string"),
    pytest.param(("edm",), True, r"'edm' must be a number, got bool", id="edm-bool"),
    pytest.param(("tol",), None, r"'tol' must be a number, got NoneType", id="tol-none"),
    pytest.param(
        ("fmin",),
        {"__class__": "os.system", "args": ["echo hacked"]},
        r"'fmin' must be a number, got dict",
        id="fmin-object",
    ),
    pytest.param(
        ("status",),
        99,
        r"'status' must be one of \[0, 1, 2, 3, 4, 5, 6, 7, 8\], got 99",
        id="status-out-of-range",
    ),
    pytest.param(("status",), -1, r"'status' must be one of", id="status-negative"),
    pytest.param(
        ("status",), "CONVERGED", r"'status' must be one of .*got 'CONVERGED'", id="status-string"
    ),
    pytest.param(("status",), 0.0, r"'status' must be one of .*got 0\.0", id="status-float"),
    pytest.param(
        ("covariance", "hesse_np"),
        [[1.0, 0.0, 0.0]],
        r"covariance.hesse_np has shape \(1, 3\), expected \(2, 2\)",
        id="cov-shape",
    ),
    pytest.param(
        ("covariance", "hesse_np"),
        [[1.0, 0.0], [0.0]],
        r"covariance.hesse_np is not a rectangular array",
        id="cov-ragged",
    ),
    pytest.param(
        ("covariance", "exec"),
        [[1.0, 0.0], [0.0, 1.0]],
        r"unknown covariance method 'exec'",
        id="cov-unknown-method",
    ),
    pytest.param(("covariance",), [[1.0]], r"'covariance' must be a dict", id="cov-not-dict"),
    pytest.param(
        ("approx", "hessian"),
        [1.0, 2.0],
        r"approx.hessian has shape \(2,\), expected \(2, 2\)",
        id="approx-shape",
    ),
    pytest.param(("message",), 5, r"'message' must be a string", id="message-int"),
    pytest.param(
        ("param_results", "mu"), 3.0, r"param_results.mu must be a dict", id="param-results-entry"
    ),
    pytest.param(
        ("param_results", "zeta"),
        {},
        r"'param_results' must be a dict keyed by the parameter names",
        id="param-results-extra-name",
    ),
]


@pytest.mark.parametrize(("path", "value", "match"), MALFORMED)
def test_from_dict_rejects_malformed(path, value, match):
    d = _set(_good_dict(), path, value)
    with pytest.raises(ValueError, match=r"malformed FitResult data: " + match):
        FitResult.from_dict(d)


@pytest.mark.parametrize("obj", [None, [1, 2], "text", 3.0], ids=["none", "list", "str", "float"])
def test_from_dict_rejects_non_dict(obj):
    with pytest.raises(ValueError, match=r"malformed FitResult data: expected a dict, got"):
        FitResult.from_dict(obj)


def test_from_dict_class_marker_is_only_data():
    marker = {"__class__": "os.system", "__reduce__": ["os.system", ["echo hacked"]]}
    d = _good_dict()
    d["info"]["payload"] = marker
    d["minimizer"]["payload"] = marker
    d["param_results"]["mu"]["payload"] = marker
    back = FitResult.from_dict(d)
    assert back.info["payload"] == marker
    assert back.minimizer_info["payload"] == marker
    assert back.params["mu"]["payload"] == marker
    assert isinstance(back.info["payload"]["__class__"], str)
    np.testing.assert_allclose(back.x, X_QUAD, atol=1e-6)


def test_from_dict_rejects_non_plain_objects():
    d = _good_dict()
    d["info"]["obj"] = object()
    with pytest.raises(ValueError, match=r"info.obj holds a object; only plain data is allowed"):
        FitResult.from_dict(d)


# -- pickling ------------------------------------------------------------------------------


def test_pickle_keeps_module_level_loss_and_chains(quad_result):
    quad_result.hesse()
    back = pickle.loads(pickle.dumps(quad_result))
    assert back.loss is not None
    assert back.loss.func is quad_chi2
    assert back.errordef == 1.0
    np.testing.assert_array_equal(back.x, quad_result.x)
    assert back.fmin == quad_result.fmin
    assert back.status is Status.CONVERGED
    np.testing.assert_array_equal(back.covariance(), quad_result.covariance())
    # the loss works after unpickling: Hesse by method, and chaining into a new fit
    np.testing.assert_allclose(back.covariance(method="hesse_np"), _cov_quad(), rtol=1e-6)
    chained = LevenbergMarquardt(tol=1e-12).minimize(back)
    assert chained.valid
    assert chained.names == ("mu", "nu")
    np.testing.assert_allclose(chained.x, X_QUAD, atol=3e-6)
    chained2 = ScipyBFGS(tol=1e-10).minimize(back)
    assert chained2.valid
    np.testing.assert_allclose(chained2.x, X_QUAD, atol=1e-5)


def test_pickle_drops_lambda_loss():
    f = lambda x: (x[0] - 3.0) ** 2 + 2.0 * x[1] ** 2  # noqa: E731
    f.errordef = 1.0
    # without a covariance before pickling: hesse() needs the loss and says so
    fresh = LevenbergMarquardt(tol=1e-10).minimize(f, [0.0, 1.0])
    assert fresh.valid
    data = pickle.dumps(fresh)
    with pytest.warns(
        UserWarning,
        match=r"FitResult loaded without its loss \(test_result\."
        r"test_pickle_drops_lambda_loss\.<locals>\.<lambda>\): it could not be pickled: .*; hesse\(method='hesse_np'\)",
    ):
        back = pickle.loads(data)
    assert back.loss is None
    np.testing.assert_array_equal(back.x, fresh.x)
    assert back.fmin == fresh.fmin
    assert back.valid
    with pytest.raises(ValueError, match=r"hesse\(method='hesse_np'\) needs the loss"):
        back.hesse()
    with pytest.raises(ValueError, match=r"errors\(\) needs the loss"):
        back.errors()
    with pytest.raises(ValueError, match=r"this FitResult holds no loss"):
        LevenbergMarquardt().minimize(back)
    # the minimizer's own Hessian estimate travels with the result
    np.testing.assert_allclose(back.hesse(method="approx")["p0"]["error"], 1.0, rtol=1e-6)


def test_pickle_drops_lambda_loss_keeps_covariance():
    f = lambda x: (x[0] - 3.0) ** 2 + 2.0 * x[1] ** 2  # noqa: E731
    f.errordef = 1.0
    r = LevenbergMarquardt(tol=1e-10).minimize(f, [0.0, 1.0])
    cov = r.covariance()
    # covariance = 2 * errordef * H^-1 with H = diag(2, 4)
    np.testing.assert_allclose(cov, np.diag([1.0, 0.5]), rtol=1e-6)
    with pytest.warns(UserWarning, match="FitResult loaded without its loss"):
        back = pickle.loads(pickle.dumps(r))
    assert back.loss is None
    assert r.loss is not None  # the original is untouched
    np.testing.assert_array_equal(back.covariance(), cov)
    np.testing.assert_allclose(back.correlation(), np.eye(2), atol=1e-6)
    # Hesse errors from the stored covariance need no loss
    e = back.hesse()
    np.testing.assert_allclose([e["p0"]["error"], e["p1"]["error"]], [1.0, np.sqrt(0.5)], rtol=1e-6)


_MAIN_SCRIPT = """
import pickle, sys
import numpy as np
import zfitlite

data = np.random.default_rng(0).normal(1.0, 2.0, 500)

def main_nll(p):
    mu, sigma = p
    return np.sum(np.log(sigma) + 0.5 * ((data - mu) / sigma) ** 2)

main_nll.errordef = 0.5
result = zfitlite.minimize.LevenbergMarquardt().minimize(
    main_nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.01}})
result.hesse()
with open(sys.argv[1], "wb") as f:
    pickle.dump(result, f)
print(repr(result.x.tolist()), result.fmin, result.params["mu"]["hesse"]["error"])
"""

_LOAD_SCRIPT = """
import pickle, sys, warnings
import zfitlite

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("ignore")  # third-party deprecations from lazy imports
    warnings.simplefilter("always", UserWarning)
    with open(sys.argv[1], "rb") as f:
        result = pickle.load(f)
assert result.loss is None, result.loss
assert result.minimizer is not None  # what can be restored is restored
print(repr(result.x.tolist()), result.fmin, result.hesse()["mu"]["error"])
for w in caught:
    print("WARNING", w.category.__name__, w.message)
"""


def test_pickled_result_of_a_main_script_loss_loads_in_a_fresh_process(tmp_path):
    """A loss defined in ``__main__`` cannot be found in another process: the result loads
    without it, with a warning, instead of failing with AttributeError as a whole."""
    import subprocess
    import sys

    path = tmp_path / "result.pkl"
    saved = subprocess.run(
        [sys.executable, "-c", _MAIN_SCRIPT, str(path)], capture_output=True, text=True
    )
    assert saved.returncode == 0, saved.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(path)], capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    lines = loaded.stdout.splitlines()
    assert lines[0] == saved.stdout.strip()  # the same x, fmin and Hesse error
    assert len(lines) == 2, lines
    assert lines[1].startswith(
        "WARNING UserWarning FitResult loaded without its loss (__main__.main_nll): "
        "it could not be unpickled here: AttributeError: "
    )
    assert "minimizer.minimize(loss, init=result)" in lines[1]


def test_loaded_result_without_loss_can_be_init():
    r = LevenbergMarquardt(tol=1e-10).minimize(quad_chi2, {"mu": 0.0, "nu": 0.0})
    r.hesse()
    back = FitResult.from_json(r.to_json())
    chained = LevenbergMarquardt(tol=1e-12).minimize(quad_chi2, init=back)
    assert chained.valid
    assert chained.names == ("mu", "nu")
    np.testing.assert_allclose(chained.x, X_QUAD, atol=3e-6)


# -- uncertainties -------------------------------------------------------------------------


def test_covariance_matches_analytic(quad_result):
    cov = quad_result.covariance()
    np.testing.assert_allclose(cov, _cov_quad(), rtol=1e-6)
    d = quad_result.covariance(as_dict=True)
    assert set(d) == {("mu", "mu"), ("mu", "nu"), ("nu", "mu"), ("nu", "nu")}
    assert d[("mu", "nu")] == pytest.approx(cov[0, 1], rel=1e-15)
    assert d[("nu", "nu")] == pytest.approx(cov[1, 1], rel=1e-15)
    # by name too: a row per parameter (a newcomer's d["mu"]["nu"])
    assert d["mu"] == {"mu": pytest.approx(cov[0, 0]), "nu": pytest.approx(cov[0, 1])}
    assert d["nu"]["mu"] == d["mu", "nu"] == d[("nu", "mu")]
    with pytest.raises(KeyError, match=r"no parameter 'zeta'; the parameters are \['mu', 'nu'\]"):
        d["zeta"]
    assert quad_result.covariance(["nu"], as_dict=True) == {("nu", "nu"): d["nu", "nu"]}
    sub = quad_result.covariance(params=["nu"])
    assert sub.shape == (1, 1)
    assert sub[0, 0] == pytest.approx(cov[1, 1], rel=1e-15)
    np.testing.assert_array_equal(quad_result.covariance(params=[1, 0]), cov[::-1, ::-1])


def test_correlation(quad_result):
    corr = quad_result.correlation()
    np.testing.assert_allclose(np.diag(corr), [1.0, 1.0], rtol=1e-14)
    cov = _cov_quad()
    expected = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    np.testing.assert_allclose(corr[0, 1], expected, rtol=1e-6)
    np.testing.assert_allclose(corr[1, 0], corr[0, 1], rtol=1e-14)
    d = quad_result.correlation(as_dict=True)
    assert d[("mu", "mu")] == pytest.approx(1.0, rel=1e-14)
    assert d[("mu", "nu")] == pytest.approx(expected, rel=1e-6)
    assert d["nu"]["mu"] == pytest.approx(expected, rel=1e-6)
    assert d["nu"]["nu"] == pytest.approx(1.0, rel=1e-14)


def test_covariance_bad_selection(quad_result):
    with pytest.raises(ValueError, match=r"unknown parameter 'zeta'"):
        quad_result.covariance(params=["zeta"])
    with pytest.raises(ValueError, match=r"parameter index 5 out of range for 2 parameters"):
        quad_result.covariance(params=[5])
    with pytest.raises(ValueError, match=r"unknown Hesse method 'magic'"):
        quad_result.covariance(method="magic")


def test_hesse_one_sigma_and_cl(quad_result):
    one = quad_result.hesse()
    expected = np.sqrt(np.diag(_cov_quad()))
    np.testing.assert_allclose([one["mu"]["error"], one["nu"]["error"]], expected, rtol=1e-6)
    assert one["mu"]["cl"] == pytest.approx(0.6826894921370859, rel=1e-12)
    assert quad_result.params["mu"]["hesse"]["error"] == one["mu"]["error"]
    cl95 = quad_result.hesse(cl=0.95, name="hesse95")
    for n in ("mu", "nu"):
        assert cl95[n]["error"] == pytest.approx(one[n]["error"] * 1.959963984540054, rel=1e-12)
        assert cl95[n]["cl"] == 0.95
        assert quad_result.params[n]["hesse95"]["error"] == cl95[n]["error"]
        # the one-sigma entry is untouched
        assert quad_result.params[n]["hesse"]["error"] == one[n]["error"]


def test_hesse_approx_method(quad_result):
    e = quad_result.hesse(method="approx", name="approx_err")
    expected = np.sqrt(np.diag(_cov_quad()))
    np.testing.assert_allclose([e["mu"]["error"], e["nu"]["error"]], expected, rtol=1e-6)


@pytest.mark.parametrize("cl", [0.0, 1.0, 1.5])
def test_hesse_bad_cl(quad_result, cl):
    with pytest.raises(ValueError, match=r"cl must be a confidence level strictly between 0 and 1"):
        quad_result.hesse(cl=cl)


def test_errors_quadratic_equal_hesse(quad_result):
    errs, new = quad_result.errors()
    assert new is None
    expected = np.sqrt(np.diag(_cov_quad()))
    for i, n in enumerate(("mu", "nu")):
        assert errs[n]["lower"] == pytest.approx(-expected[i], rel=1e-6)
        assert errs[n]["upper"] == pytest.approx(expected[i], rel=1e-6)
        assert quad_result.params[n]["errors"]["lower"] == errs[n]["lower"]


@pytest.mark.parametrize("cl", [0.9, 0.99])
def test_errors_cl_equals_sigma(cl):
    r = LevenbergMarquardt(tol=1e-10).minimize(skewed_nll, [0.0, 0.0])
    k = float(np.sqrt(scipy.stats.chi2(1).ppf(cl)))
    by_cl, _ = r.errors(cl=cl)
    by_sigma, _ = r.errors(sigma=k)
    for n in ("p0", "p1"):
        assert by_cl[n]["lower"] < 0 < by_cl[n]["upper"]
        assert by_cl[n]["lower"] == pytest.approx(by_sigma[n]["lower"], rel=1e-8)
        assert by_cl[n]["upper"] == pytest.approx(by_sigma[n]["upper"], rel=1e-8)
        assert by_cl[n]["cl"] == pytest.approx(cl, rel=1e-12)
        assert by_sigma[n]["cl"] == pytest.approx(cl, rel=1e-12)
    # p1 profiles out exactly (p1 = p0), so p0's profile is exp(a) - n a: solve for the crossings
    a0 = np.log(SKEW_N)
    delta = 0.5 * k * k

    def rise(a):
        return (np.exp(a) - SKEW_N * a) - (SKEW_N - SKEW_N * a0) - delta

    lo = scipy.optimize.brentq(rise, a0 - 10.0, a0, xtol=1e-14) - a0
    up = scipy.optimize.brentq(rise, a0, a0 + 10.0, xtol=1e-14) - a0
    # compare where the profile crosses (independent of how exactly the minimum was hit)
    x0 = r.x[0]
    assert x0 + by_cl["p0"]["lower"] == pytest.approx(a0 + lo, abs=1e-10)
    assert x0 + by_cl["p0"]["upper"] == pytest.approx(a0 + up, abs=1e-10)
    # asymmetric: the exponential makes the upper side steeper
    assert abs(by_cl["p0"]["upper"]) < abs(by_cl["p0"]["lower"])


def test_errors_one_sigma_is_default():
    r = LevenbergMarquardt(tol=1e-10).minimize(skewed_nll, [0.0, 0.0])
    default, _ = r.errors()
    by_sigma, _ = r.errors(sigma=1)
    assert default == by_sigma
    assert default["p0"]["cl"] == pytest.approx(scipy.stats.chi2(1).cdf(1.0), rel=1e-12)


def test_errors_bad_method(quad_result):
    with pytest.raises(ValueError, match=r"unknown errors method 'minos'"):
        quad_result.errors(method="minos")


def test_update_params_sets_loss_values():
    def f(x):
        return (x[0] - 1.5) ** 2 + (x[1] + 0.5) ** 2

    loss = SimpleLoss(f, params={"a": 0.0, "b": {"value": 0.0, "lower": -3.0}}, errordef=1.0)
    r = LevenbergMarquardt(tol=1e-12).minimize(loss)
    assert r.valid
    np.testing.assert_array_equal(loss.params.values, [0.0, 0.0])
    assert r.update_params() is r
    np.testing.assert_array_equal(loss.params.values, r.x)
    np.testing.assert_allclose(loss.params.values, [1.5, -0.5], atol=1e-6)
    assert loss.params.names == ("a", "b")
    np.testing.assert_array_equal(loss.params.lower, [-np.inf, -3.0])
    # the next fit starts from the updated values
    seen = []
    LevenbergMarquardt(tol=1e-12, callback=lambda s: seen.append(s.x.copy())).minimize(loss)
    np.testing.assert_array_equal(seen[0], r.x)


def test_update_params_without_loss_params_is_noop(quad_result):
    assert quad_result.update_params() is quad_result
    assert getattr(quad_result.loss, "params", None) is None


def test_exports():
    assert zfitlite.FitResult is FitResult
    assert zfitlite.Status is Status


@pytest.mark.parametrize("cl", [0.1, 0.6827, 0.9, 0.95, 1 - 1e-6])
def test_confidence_levels_match_chi2_quantiles(cl: float) -> None:
    """``level`` in closed form (no scipy.stats at import) against scipy.stats' chi2(1)."""
    from zfitlite.uncertainties import level

    k, same = level(cl, None)
    assert same == cl
    assert k == pytest.approx(np.sqrt(scipy.stats.chi2(1).ppf(cl)), rel=1e-12)
    assert level(None, k)[1] == pytest.approx(cl, rel=1e-12)
    assert level(None, 2.0)[1] == pytest.approx(scipy.stats.chi2(1).cdf(4.0), rel=1e-14)


def test_inverse_hessian_is_computed_when_read() -> None:
    """A native solver's result inverts its Hessian only when ``inv_hessian`` is read;
    the value is numpy's inverse of the reported Hessian, and a singular Hessian gives
    None (as before, when it was inverted on every fit)."""
    from zfitlite.approximations import Approximations

    x = np.linspace(0.0, 4.0, 30)
    y = 2.5 * np.exp(-0.7 * x) + 0.3

    def residuals(p: np.ndarray) -> np.ndarray:
        return y - (p[0] * np.exp(-p[1] * x) + p[2])

    fit = LevenbergMarquardt().minimize(zfitlite.LeastSquares(residuals), [1.0, 1.0, 0.0])
    assert fit.valid
    assert fit.approx._invert  # nothing inverted yet
    inv = fit.approx.inv_hessian
    assert inv is not None and not fit.approx._invert
    np.testing.assert_array_equal(inv, np.linalg.inv(fit.approx.hessian))
    assert fit.approx.inv_hessian is inv  # once
    assert fit.approx.to_dict()["inv_hessian"] == inv.tolist()
    np.testing.assert_allclose(fit.hess_inv @ fit.approx.hessian, np.eye(3), atol=1e-8)

    singular = Approximations(np.zeros(2), np.ones((2, 2)), invert=True)
    assert singular.inv_hessian is None
    given = Approximations(np.zeros(2), np.eye(2), 2 * np.eye(2), invert=True)
    np.testing.assert_array_equal(given.inv_hessian, 2 * np.eye(2))  # a given one wins
    given.inv_hessian = None
    assert given.inv_hessian is None
    again = pickle.loads(pickle.dumps(Approximations(np.zeros(2), np.eye(2), invert=True)))
    np.testing.assert_array_equal(again.inv_hessian, np.eye(2))
    # a result pickled when the inverse was a plain field (the dataclass's state) loads
    old = Approximations.__new__(Approximations)
    old.__setstate__({"gradient": np.zeros(2), "hessian": np.eye(2), "inv_hessian": 3 * np.eye(2)})
    np.testing.assert_array_equal(old.inv_hessian, 3 * np.eye(2))
