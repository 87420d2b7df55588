"""The LM step's linear algebra chosen by shape: the Gram route for tall, well-conditioned
Jacobians, the SVD where rank is in doubt."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite.backends.ops import numpy_ops
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.solvers import lm_least_squares as lsq


def test_gram_route_gives_the_svd_of_a_tall_well_conditioned_matrix():
    A = np.random.default_rng(0).normal(size=(5000, 4)) * [1.0, 10.0, 0.1, 3.0]
    U, s, Vt = lsq._scaled_svd(numpy_ops, A)
    s2 = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(s, s2, rtol=1e-12)
    np.testing.assert_allclose(U * s @ Vt, A, atol=1e-12)  # a factorisation of A
    np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-10)


def test_rank_in_doubt_falls_back_to_the_svd():
    A = np.random.default_rng(1).normal(size=(5000, 3))
    A[:, 2] = A[:, 0] + 1e-9 * A[:, 1]  # condition ~1e9: squaring it would lose s_min
    s = lsq._scaled_svd(numpy_ops, A)[1]
    s2 = np.linalg.svd(A, compute_uv=False)
    assert s[-1] == pytest.approx(s2[-1], rel=1e-6)


def _fit(backend, t, y):
    xp = np if backend == "numpy" else pytest.importorskip("jax.numpy")
    tt, yy = xp.asarray(t), xp.asarray(y)

    def residuals(p):  # a new function each time: nothing compiled is shared
        return (yy - p[0] * xp.exp(-p[1] * tt) - p[2]) / 0.01

    loss = zfitlite.LeastSquares(residuals, backend=backend)
    return LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0, 0.0])


def test_tall_fit_is_the_same_by_either_route(monkeypatch):
    t = np.linspace(0.0, 5.0, 3000)
    y = 2.0 * np.exp(-0.7 * t) + 0.5 + 0.01 * np.random.default_rng(2).normal(size=t.size)
    gram_numpy, gram_jax = _fit("numpy", t, y), _fit("jax", t, y)  # m = 3000: Gram route
    monkeypatch.setattr(lsq, "GRAM_MIN_ROWS", 10**9)
    svd_numpy = _fit("numpy", t, y)
    for fit in (gram_numpy, gram_jax, svd_numpy):
        assert fit.valid, fit.message
    np.testing.assert_allclose(gram_numpy.x, svd_numpy.x, rtol=1e-9)
    np.testing.assert_allclose(gram_jax.x, svd_numpy.x, rtol=1e-9)
    assert gram_numpy.x == pytest.approx([2.0, 0.7, 0.5], abs=0.02)
