"""The LM step's linear algebra chosen by shape: the Gram route for tall, well-conditioned
Jacobians, the SVD where rank is in doubt."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite.backends.ops import numpy_ops
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.solvers import lm_least_squares as lsq


def _factors(A, r):
    n = A.shape[1]
    return lsq._scaled_factors(numpy_ops, A, r, r @ A, np.ones(n), None)


def test_gram_route_gives_the_factors_of_a_tall_well_conditioned_matrix():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5000, 4)) * [1.0, 10.0, 0.1, 3.0]
    r = rng.normal(size=5000)
    U, s, Vt, uf = _factors(A, r)
    U2, s2, Vt2 = np.linalg.svd(A, full_matrices=False)
    assert U.shape == (0, 4)  # no m x n factor is made
    np.testing.assert_allclose(s, s2, rtol=1e-12)
    np.testing.assert_allclose(np.abs(Vt @ Vt2.T), np.eye(4), atol=1e-10)  # same V, up to sign
    np.testing.assert_allclose(np.abs(uf), np.abs(r @ U2), rtol=1e-9)  # U^T r
    np.testing.assert_allclose((uf / s) @ Vt, np.linalg.lstsq(A, r, rcond=None)[0], rtol=1e-9)


def test_rank_in_doubt_falls_back_to_the_svd():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5000, 3))
    A[:, 2] = A[:, 0] + 1e-9 * A[:, 1]  # condition ~1e9: squaring it would lose s_min
    r = rng.normal(size=5000)
    _, s, _, uf = _factors(A, r)
    U2, s2, _ = np.linalg.svd(A, full_matrices=False)
    assert s[-1] == pytest.approx(s2[-1], rel=1e-6)
    np.testing.assert_allclose(np.abs(uf), np.abs(r @ U2), rtol=1e-6)


def _fit(backend, t, y, **options):
    xp = np if backend == "numpy" else pytest.importorskip("jax.numpy")
    tt, yy = xp.asarray(t), xp.asarray(y)

    def residuals(p):  # a new function each time: nothing compiled is shared
        return (yy - p[0] * xp.exp(-p[1] * tt) - p[2]) / 0.01

    loss = zfitlite.LeastSquares(residuals, backend=backend)
    return LevenbergMarquardt(tol=1e-10, options=options).minimize(loss, [1.0, 1.0, 0.0])


def test_tall_fit_is_the_same_by_either_route(monkeypatch):
    t = np.linspace(0.0, 5.0, 3000)
    y = 2.0 * np.exp(-0.7 * t) + 0.5 + 0.01 * np.random.default_rng(2).normal(size=t.size)
    gram_numpy, gram_jax = _fit("numpy", t, y), _fit("jax", t, y)  # m = 3000: Gram route
    geodesic = _fit("numpy", t, y, geodesic=True)  # U^T r'' from the Gram factors
    monkeypatch.setattr(lsq, "GRAM_MIN_ROWS", 10**9)
    svd_numpy = _fit("numpy", t, y)
    for fit in (gram_numpy, gram_jax, svd_numpy, geodesic):
        assert fit.valid, fit.message
    np.testing.assert_allclose(gram_numpy.x, svd_numpy.x, rtol=1e-9)
    np.testing.assert_allclose(gram_jax.x, svd_numpy.x, rtol=1e-9)
    np.testing.assert_allclose(geodesic.x, svd_numpy.x, rtol=1e-8)
    assert gram_numpy.x == pytest.approx([2.0, 0.7, 0.5], abs=0.02)


def test_a_parameter_held_at_its_bound_keeps_the_gram_route(monkeypatch):
    """A column held at its bound is an exact zero of the Gram matrix, not a rank in
    doubt: the tall fit stays on the Gram route (no SVD at all) and ends where the SVD
    route ends."""
    t = np.linspace(0.0, 5.0, 3000)
    y = 2.0 * np.exp(-0.7 * t) + 0.5 + 0.01 * np.random.default_rng(4).normal(size=t.size)

    def residuals(p):
        return (y - p[0] * np.exp(-p[1] * t) - p[2]) / 0.01

    def fit():
        loss = zfitlite.LeastSquares(residuals, backend="numpy")
        params = {"value": [1.0, 1.0, 1.2], "lower": [-np.inf, -np.inf, 1.0]}
        return LevenbergMarquardt(tol=1e-10).minimize(loss, params)

    svds = []
    svd = numpy_ops.svd
    monkeypatch.setattr(numpy_ops, "svd", lambda A: svds.append(A.shape) or svd(A))
    gram = fit()
    assert svds == []  # every step and the rank test on the Gram matrix
    monkeypatch.setattr(lsq, "GRAM_MIN_ROWS", 10**9)
    by_svd = fit()
    assert svds  # the SVD route did take SVDs
    assert gram.converged and by_svd.converged, (gram.message, by_svd.message)
    assert gram.x[2] == 1.0 == by_svd.x[2]  # held at the bound (the data want 0.5)
    assert gram.params_at_limit and not gram.valid  # zfit's rule: at a limit, not valid
    # both within 5e-9 of a tight scipy fit of the free two (1e-5 of their errors)
    np.testing.assert_allclose(gram.x, by_svd.x, rtol=1e-8)
