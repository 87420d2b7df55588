"""Large fits: the EDM from Hessian-vector products, no dense n x n work or arrays."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite import matrix_free
from zfitlite.criterion import edm
from zfitlite.matrix_free import cg_edm, measure_auto

jnp = pytest.importorskip("jax.numpy")


def test_cg_edm_matches_the_dense_edm():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(40, 40))
    H = A @ A.T + 0.5 * np.eye(40)
    g = rng.normal(size=40)
    cg = cg_edm(lambda v: H @ v, g)
    assert cg.converged and cg.curvature is None
    assert cg.edm == pytest.approx(edm(g, H), rel=1e-8)


def test_cg_edm_sees_negative_curvature():
    H = np.diag([2.0, 1.0, -0.5])
    cg = cg_edm(lambda v: H @ v, np.array([1.0, 1.0, 1.0]))
    assert cg.edm == np.inf and cg.curvature is not None and cg.curvature < 0


def test_a_truncated_solve_says_so_and_adds_an_estimate_of_the_rest():
    H = np.diag(np.logspace(0, 4, 50))
    g = np.ones(50)
    full = cg_edm(lambda v: H @ v, g)
    assert full.converged and full.edm == pytest.approx(edm(g, H), rel=1e-8)
    cut = cg_edm(lambda v: H @ v, g, maxiter=5)
    assert not cut.converged and 0 < cut.edm < full.edm


def _rosen(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.fixture
def small_limit(monkeypatch):
    """The large-n path at a size that fits quickly (the default limit is 500)."""
    monkeypatch.setattr(matrix_free, "DENSE_LIMIT", 20)
    return 20


def test_large_lbfgsb_fit_keeps_no_dense_arrays_and_hesse_is_on_request(small_limit):
    n = small_limit + 20
    loss = zfitlite.SimpleLoss(_rosen, errordef=1.0, backend="jax")
    fit = zfitlite.minimize.ScipyLBFGSB(tol=1e-6).minimize(loss, np.tile([-1.2, 1.0], n // 2))
    assert fit.valid, fit.message
    assert np.allclose(fit.x, 1.0, atol=1e-3)
    # no Hessian evaluated, no n x n array kept; the EDM came from Hessian-vector products
    assert fit.info["nhess"] == 0 and fit.info["nhvp"] > 0
    assert fit.approx.hessian is None and fit.approx.inv_hessian is None
    assert 0 <= fit.edm < 1e-6
    # the dense EDM at the same point agrees
    ev = zfitlite.minimize.ScipyLBFGSB().create_evaluator(loss, fit.x)
    _, g = ev.value_gradient(fit.x)
    assert fit.edm == pytest.approx(edm(g, ev.hessian(fit.x)), rel=1e-4, abs=1e-14)
    # the user asks: the dense Hessian is computed then
    errors = fit.hesse(params=[0, 1])
    assert errors["p0"]["error"] > 0 and fit.covariance().shape == (n, n)


def test_small_fits_keep_the_dense_measure():
    loss = zfitlite.SimpleLoss(_rosen, errordef=1.0, backend="jax")
    fit = zfitlite.minimize.ScipyLBFGSB().minimize(loss, np.tile([-1.2, 1.0], 5))
    assert fit.valid and fit.info["nhess"] >= 1 and fit.info["nhvp"] == 0
    assert fit.approx.hessian is not None and fit.approx.hessian.shape == (10, 10)


def test_bounded_large_measure_uses_only_free_parameters(small_limit):
    n = small_limit + 2
    center = np.linspace(-1.0, 1.0, n)

    def f(x):
        return jnp.sum((x - center) ** 2) + 0.1 * jnp.sum(x[1:] * x[:-1])

    params = {f"p{i}": {"value": 0.0, "lower": 0.0} for i in range(n)}
    loss = zfitlite.SimpleLoss(f, params=params, errordef=1.0, backend="jax")
    fit = zfitlite.minimize.ScipyLBFGSB(tol=1e-8).minimize(loss)
    assert fit.status is zfitlite.Status.CONVERGED, fit.message  # valid=False: at a limit
    ev = zfitlite.minimize.ScipyLBFGSB().create_evaluator(loss)
    m = measure_auto(ev, fit.x, fit.params_spec, 1e-8)
    assert m.H is None and (~m.free).sum() > n // 3  # the lower half sits on its bound
    assert m.edm == pytest.approx(fit.edm, rel=1e-6, abs=1e-14)
