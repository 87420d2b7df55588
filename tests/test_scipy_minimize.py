"""ScipyMinimize: leaspy's defaults, option merging, convergence reports, honest results."""

from __future__ import annotations

import pprint

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import zfitlite
from zfitlite import Status
from zfitlite.minimize import LevenbergMarquardt, ScipyMinimize

RNG = np.random.default_rng(7)
DATA = RNG.normal(0.5, 1.3, 300)


def rosen(p):
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def rosen_grad(p):
    return np.array([-2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2), 200 * (p[1] - p[0] ** 2)])


def nll(xp):
    def f(p):
        return xp.sum(xp.log(p[1]) + 0.5 * ((DATA - p[0]) / p[1]) ** 2)

    return f


_NLL: dict[str, zfitlite.SimpleLoss] = {}


def nll_loss(backend: str) -> zfitlite.SimpleLoss:
    """One unnamed NLL loss per backend, shared (JAX compiles once)."""
    if backend not in _NLL:
        xp = np if backend == "numpy" else jnp
        _NLL[backend] = zfitlite.SimpleLoss(nll(xp), errordef=0.5, backend=backend)
    return _NLL[backend]


def test_class_defaults_are_leaspys():
    assert ScipyMinimize.DEFAULT_SCIPY_MINIMIZE_PARAMS_WITH_JACOBIAN == {
        "method": "BFGS",
        "options": {"gtol": 1e-2, "maxiter": 200},
    }
    assert ScipyMinimize.DEFAULT_SCIPY_MINIMIZE_PARAMS_WITHOUT_JACOBIAN == {
        "method": "Powell",
        "options": {"ftol": 1e-4, "xtol": 1e-4, "maxiter": 200},
    }
    assert (
        ScipyMinimize.DEFAULT_FORMAT_CONVERGENCE_ISSUES
        == "<!> {problem_id}:\n{optimization_result_pformat}"
    )


def test_options_merge_over_the_defaults_of_the_method_that_runs():
    m = ScipyMinimize(options={"maxiter": 50})
    assert m.scipy_minimize_params(True) == {
        "method": "BFGS",
        "options": {"gtol": 1e-2, "maxiter": 50},
    }
    assert m.scipy_minimize_params(False) == {
        "method": "Powell",
        "options": {"ftol": 1e-4, "xtol": 1e-4, "maxiter": 50},
    }
    # a named method takes the defaults only where they are its own
    assert ScipyMinimize("powell").scipy_minimize_params(True)["options"] == {
        "ftol": 1e-4,
        "xtol": 1e-4,
        "maxiter": 200,
    }
    assert ScipyMinimize("Nelder-Mead", options={"xatol": 1e-6}).scipy_minimize_params(True) == {
        "method": "Nelder-Mead",
        "options": {"xatol": 1e-6},
    }
    # the class attributes are not modified by merging
    assert ScipyMinimize.DEFAULT_SCIPY_MINIMIZE_PARAMS_WITH_JACOBIAN["options"]["maxiter"] == 200


@pytest.mark.parametrize(
    ("make", "method"),
    [
        (lambda: zfitlite.SimpleLoss(rosen, errordef=1.0, backend="numpy"), "Powell"),
        (
            lambda: zfitlite.SimpleLoss(rosen, errordef=1.0, gradient=rosen_grad, backend="numpy"),
            "BFGS",
        ),
        (lambda: zfitlite.SimpleLoss(rosen, errordef=1.0, backend="jax"), "BFGS"),
    ],
    ids=["numpy-numerical", "numpy-user-gradient", "jax-autodiff"],
)
def test_method_follows_the_gradient(make, method):
    result = ScipyMinimize(logger=lambda s: None).minimize(make(), [-1.2, 1.0])
    assert result.info["method"] == method
    assert result.info["scipy_success"] is result.info["original"].success


def test_same_answer_as_scipy_itself():
    loss = zfitlite.SimpleLoss(rosen, errordef=1.0, backend="numpy")
    result = ScipyMinimize().minimize(loss, [-1.2, 1.0])
    direct = scipy.optimize.minimize(
        rosen, [-1.2, 1.0], method="Powell", options={"ftol": 1e-4, "xtol": 1e-4, "maxiter": 200}
    )
    np.testing.assert_array_equal(result.x, direct.x)
    assert result.nfev == direct.nfev + 1  # + the EDM at the answer
    assert result.valid and result.info["scipy_success"]

    loss = zfitlite.SimpleLoss(rosen, errordef=1.0, gradient=rosen_grad, backend="numpy")
    result = ScipyMinimize().minimize(loss, [-1.2, 1.0])
    direct = scipy.optimize.minimize(
        rosen, [-1.2, 1.0], jac=rosen_grad, method="BFGS", options={"gtol": 1e-2, "maxiter": 200}
    )
    np.testing.assert_array_equal(result.x, direct.x)
    assert result.nfev == direct.nfev  # the EDM reuses BFGS's last value and gradient


def test_no_rerun_but_an_honest_result():
    """scipy's gtol=1e-2 stops before tol=1e-10 is met: success for scipy, not converged for us."""
    loss = zfitlite.SimpleLoss(nll(jnp), errordef=0.5, backend="jax", name="subject-17")
    result = ScipyMinimize(tol=1e-10).minimize(loss, [0.0, 1.0])
    assert result.info["scipy_success"] and result.info["method"] == "BFGS"
    assert result.status is Status.NOT_CONVERGED and not result.valid
    assert "reported success" in result.message and "EDM" in result.message
    assert result.edm >= 1e-10 * 0.5
    # the same fit is converged at the default tol, and a method-specific minimizer
    # taking it as init finishes the job
    assert ScipyMinimize().minimize(loss, [0.0, 1.0]).valid
    polished = zfitlite.minimize.ScipyBFGS(tol=1e-10).minimize(result)
    assert polished.valid and polished.edm < 1e-10 * 0.5


def test_logger_gets_the_formatted_report_with_problem_id():
    seen = []
    loss = zfitlite.SimpleLoss(nll(np), errordef=0.5, backend="numpy", name="subject-17")
    result = ScipyMinimize(options={"maxiter": 1}, logger=seen.append).minimize(loss, [-2.0, 4.0])
    assert result.status is Status.MAXITER and not result.valid
    assert "Maximum number of iterations" in result.message
    assert seen == [f"<!> subject-17:\n{pprint.pformat(result.info['original'])}"]
    # a custom format with the result object, and a problem_id given explicitly
    seen.clear()
    fmt = "{problem_id} failed after {optimization_result_obj.nit} iteration(s)"
    ScipyMinimize(
        options={"maxiter": 1}, logger=seen.append, format_convergence_issues=fmt
    ).minimize(loss, [-2.0, 4.0], problem_id="member-3")
    assert seen == ["member-3 failed after 1 iteration(s)"]
    # an unnamed loss is "problem"
    seen.clear()
    unnamed = zfitlite.SimpleLoss(nll(np), errordef=0.5, backend="numpy")
    ScipyMinimize(options={"maxiter": 1}, logger=seen.append).minimize(unnamed, [-2.0, 4.0])
    assert seen[0].startswith("<!> problem:\n")


def test_our_edm_decides_when_scipy_complains():
    """zfit's rule: scipy's maxiter at a point whose EDM is below the goal is converged,
    and scipy's complaint still reaches the logger and the message."""
    seen = []
    loss = zfitlite.SimpleLoss(nll(np), errordef=0.5, backend="numpy", name="subject-18")
    result = ScipyMinimize(options={"maxiter": 1}, logger=seen.append).minimize(loss, [0.0, 1.0])
    assert not result.info["scipy_success"]
    assert result.status is Status.CONVERGED and result.valid
    assert result.edm < 0.5e-3
    assert "scipy's Powell reported: Maximum number of iterations" in result.message
    assert seen and seen[0].startswith("<!> subject-18:\n")


def test_default_logger_prints_unless_bfgs(capsys):
    loss = zfitlite.SimpleLoss(nll(np), errordef=0.5, backend="numpy", name="s1")
    ScipyMinimize(options={"maxiter": 1}).minimize(loss, [0.0, 1.0])  # Powell
    assert capsys.readouterr().out.startswith("<!> s1:\n")
    ScipyMinimize("BFGS", options={"maxiter": 1}).minimize(loss, [0.0, 1.0])
    assert capsys.readouterr().out == ""
    ScipyMinimize().minimize(loss, [0.0, 1.0])  # a success is not reported
    assert capsys.readouterr().out == ""


def test_bounds_where_scipy_honours_them():
    loss = zfitlite.SimpleLoss(rosen, errordef=1.0, backend="numpy")
    params = {"a": {"value": 0.0, "upper": 0.5}, "b": 0.0}
    result = ScipyMinimize().minimize(loss, params)  # Powell, ftol 1e-4: close, not exact
    assert result.params_at_limit == ["a"] and not result.valid
    np.testing.assert_allclose(result.x, [0.5, 0.25], atol=5e-3)
    result = ScipyMinimize("L-BFGS-B", options={"gtol": 1e-10}).minimize(loss, params)
    assert result.converged and result.x[0] == 0.5
    jax_loss = zfitlite.SimpleLoss(rosen, errordef=1.0, backend="jax")
    with pytest.raises(ValueError, match="cannot honour parameter bounds") as info:
        ScipyMinimize().minimize(jax_loss, params)  # BFGS
    assert "L-BFGS-B" in str(info.value) and "LevenbergMarquardt" in str(info.value)


@pytest.mark.parametrize("method", ["BFGS", "Powell", "Nelder-Mead", "trust-ncg", "L-BFGS-B"])
def test_chaining_both_ways(method, backend):
    loss = nll_loss(backend)
    first = LevenbergMarquardt(tol=10.0).minimize(loss, [0.0, 1.0])
    second = ScipyMinimize(method, logger=lambda s: None).minimize(first)
    assert second.info["method"] == method
    mu, s = DATA.mean(), DATA.std()
    np.testing.assert_allclose(second.x, [mu, s], rtol=1e-2)
    back = LevenbergMarquardt(tol=1e-12).minimize(second)
    assert back.valid
    np.testing.assert_allclose(back.x, [mu, s], rtol=1e-6)


def test_init_gives_bfgs_its_inverse_hessian():
    loss = nll_loss("jax")
    init = LevenbergMarquardt(tol=1e-10).minimize(loss, [0.0, 1.0])
    start = [0.3, 1.1]
    cold = ScipyMinimize(options={"gtol": 1e-6}).minimize(loss, start)
    warm = ScipyMinimize(options={"gtol": 1e-6}).minimize(loss, start, init=init)
    assert warm.valid and cold.valid and warm.nfev < cold.nfev


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown method"):
        ScipyMinimize("newton")
    with pytest.raises(TypeError, match="logger"):
        ScipyMinimize(logger="print")
    with pytest.raises(ValueError, match="problem_id"):
        ScipyMinimize(format_convergence_issues="{subject_id}")  # patient_id is leaspy's
    with pytest.raises(TypeError, match="options"):
        ScipyMinimize(options=[("gtol", 1)])
    m = ScipyMinimize("SLSQP", options={"ftol": 1e-9}, tol=1e-4)
    assert m.settings()["method"] == "SLSQP" and m.settings()["options"] == {"ftol": 1e-9}
    assert ScipyMinimize().settings()["method"] == "auto"


def test_result_serialises():
    loss = zfitlite.SimpleLoss(nll(np), errordef=0.5, backend="numpy", name="s2")
    result = ScipyMinimize().minimize(loss, [0.0, 1.0])
    d = result.to_dict()
    assert d["info"]["method"] == "Powell" and d["info"]["problem_id"] == "s2"
    assert zfitlite.FitResult.from_json(result.to_json()).valid == result.valid
