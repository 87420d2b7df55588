"""Sparse least squares: ``jac_sparsity``, sparse Jacobians and LevenbergMarquardt's LSMR path.

Small problems only (tens to a hundred parameters, numpy): the whole file runs in seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse

import zfitlite
from zfitlite.backends.sparse_numdiff import (
    SparsePattern,
    group_columns,
    grouped_hessian,
    grouped_jacobian,
    hessian_pattern,
)
from zfitlite.evaluator import LossEvaluationError
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.status import Status
from zfitlite.testing.sparse import peaks_problem


def peaks(n_params: int, seed: int = 3) -> tuple[Any, Any, Any, np.ndarray, int]:
    """Gaussian peaks on a shared background (:func:`zfitlite.testing.sparse.peaks_problem`):
    ``(residuals, sparse jacobian, pattern, x0, n)``, 15 points per peak (m ~ 5 n)."""
    p = peaks_problem(n_params, seed)
    return p["residuals"], p["jac"], p["pattern"], p["x0"], p["n"]


@pytest.fixture(scope="module")
def block() -> dict[str, Any]:
    residuals, jac, pattern, x0, n = peaks(101)
    sparse = LevenbergMarquardt(tol=1e-8).minimize(
        zfitlite.LeastSquares(residuals, jacobian=jac), x0
    )
    return {
        "residuals": residuals,
        "jac": jac,
        "pattern": pattern,
        "x0": x0,
        "n": n,
        "sparse": sparse,
    }


def _sigmas(jac: Any, x: np.ndarray) -> np.ndarray:
    J = jac(x)
    return np.sqrt(np.diag(np.linalg.inv((J.T @ J).toarray())))


def test_sparse_jacobian_takes_the_lsmr_path_and_converges(block: dict) -> None:
    fit = block["sparse"]
    assert fit.status is Status.CONVERGED and fit.valid
    assert fit.info["linear_solver"] == "lsmr"
    assert fit.info["lsmr_iterations"] > 0
    assert fit.edm < fit.edm_goal


def test_block_sparse_agrees_with_dense_lm(block: dict) -> None:
    dense = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "svd"}).minimize(
        zfitlite.LeastSquares(block["residuals"], jacobian=block["jac"]), block["x0"]
    )
    fit = block["sparse"]
    assert dense.valid and "linear_solver" not in dense.info
    by_pattern = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "svd"}).minimize(
        zfitlite.LeastSquares(block["residuals"], jac_sparsity=block["pattern"]), block["x0"]
    )  # the sparse Jacobian densified for the SVD
    assert by_pattern.valid and "linear_solver" not in by_pattern.info
    sig = _sigmas(block["jac"], fit.x)
    assert np.max(np.abs(fit.x - dense.x) / sig) < 1e-4
    assert fit.fmin == pytest.approx(dense.fmin, rel=1e-10, abs=1e-8)


def test_block_sparse_agrees_with_scipy_trf_jac_sparsity(block: dict) -> None:
    ref = scipy.optimize.least_squares(
        block["residuals"],
        block["x0"],
        jac_sparsity=block["pattern"],
        method="trf",
        ftol=1e-14,
        xtol=1e-14,
        gtol=1e-14,
    )
    fit = block["sparse"]
    sig = _sigmas(block["jac"], fit.x)
    assert np.max(np.abs(fit.x - ref.x) / sig) < 1e-3
    assert fit.fmin == pytest.approx(2 * ref.cost, rel=1e-9)


def test_jac_sparsity_differences_agree_with_the_sparse_jacobian(block: dict) -> None:
    loss = zfitlite.LeastSquares(block["residuals"], jac_sparsity=block["pattern"])
    fit = LevenbergMarquardt(tol=1e-8).minimize(loss, block["x0"])
    assert fit.valid and fit.info["linear_solver"] == "lsmr"
    sig = _sigmas(block["jac"], fit.x)
    assert np.max(np.abs(fit.x - block["sparse"].x) / sig) < 1e-4
    # a Jacobian costs two residual calls per column group (5 groups here), not 2 n
    assert fit.info["ncalls"] <= fit.info["nres"] + fit.info["njac"] * (2 * 5 + 1)
    J = grouped_jacobian(block["residuals"], block["x0"], SparsePattern.of(block["pattern"]))
    Ja = block["jac"](block["x0"])
    assert scipy.sparse.issparse(J)
    assert np.max(np.abs((J - Ja).toarray())) <= 1e-6 * np.max(np.abs(Ja.toarray()))


def test_grouped_differences_respect_bounds() -> None:
    rng = np.random.default_rng(0)
    P = rng.random((30, 10)) < 0.25
    A = rng.normal(size=(30, 10)) * P

    def f(x: np.ndarray) -> np.ndarray:
        if np.any(x < 0):
            raise AssertionError("evaluated outside the bounds")
        return np.sqrt(A @ x**2 + 1.0) + A @ x

    x = rng.random(10)
    x[:3] = 0.0  # on the lower bound: one-sided differences
    from zfitlite.backends.numdiff import Scales

    box = Scales(None, np.zeros(10), np.full(10, np.inf))
    pattern = SparsePattern.of(P)
    assert pattern.ngroups < 10
    J = grouped_jacobian(f, x, pattern, box).toarray()
    D = np.diag(x) * 2
    exact = (A / np.sqrt(A @ x**2 + 1.0)[:, None]) @ D / 2 + A
    assert np.allclose(J, exact, rtol=1e-7, atol=1e-7)


def test_column_groups_are_structurally_orthogonal() -> None:
    rng = np.random.default_rng(1)
    P = scipy.sparse.csc_matrix(rng.random((50, 40)) < 0.08)
    groups = group_columns(P)
    for g in np.unique(groups):
        cols = P[:, np.flatnonzero(groups == g)]
        assert (cols.sum(axis=1) <= 1).all()


def test_linear_problem_has_the_closed_form_answer_and_covariance() -> None:
    rng = np.random.default_rng(2)
    m, n = 80, 25
    A = scipy.sparse.random(m, n, density=0.15, random_state=rng, format="csr")
    A = (A + scipy.sparse.eye(m, n)).tocsr()
    b = rng.normal(size=m)
    loss = zfitlite.LeastSquares(lambda x: A @ x - b, jacobian=lambda x: A)
    fit = LevenbergMarquardt(tol=1e-8).minimize(loss, np.zeros(n))
    assert fit.valid and fit.info["linear_solver"] == "lsmr"
    x_star = np.linalg.lstsq(A.toarray(), b, rcond=None)[0]
    # the answer to the EDM goal's precision (EDM ~1e-17 here: errors ~0.5, so 1e-7 is
    # far below them)
    assert np.allclose(fit.x, x_star, rtol=0, atol=1e-7)
    r = A @ x_star - b
    assert fit.fmin == pytest.approx(r @ r, rel=1e-12)
    # the EDM is g^T (2 J^T J)^-1 g / 2 with g = 2 J^T r, at the end point
    g = 2 * A.T @ (A @ fit.x - b)
    edm = g @ np.linalg.solve(2 * (A.T @ A).toarray(), g) / 2
    assert fit.edm == pytest.approx(edm, rel=1e-4, abs=1e-6 * fit.edm_goal)
    # the covariance (asked for: dense) is (A^T A)^-1 for errordef 1
    cov = np.linalg.inv((A.T @ A).toarray())
    assert np.allclose(fit.covariance(), cov, rtol=1e-6, atol=1e-10)
    errs = fit.hesse()
    assert errs["p0"]["error"] == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-6)


def test_linear_problem_with_bounds_matches_lsq_linear() -> None:
    rng = np.random.default_rng(4)
    m, n = 60, 12
    A = scipy.sparse.random(m, n, density=0.3, random_state=rng, format="csr")
    A = (A + scipy.sparse.eye(m, n)).tocsr()
    b = rng.normal(size=m) * 3
    lower, upper = np.full(n, -0.2), np.full(n, 0.3)
    ref = scipy.optimize.lsq_linear(A, b, bounds=(lower, upper), tol=1e-14)
    params = {f"p{i}": {"value": 0.0, "lower": -0.2, "upper": 0.3} for i in range(n)}
    loss = zfitlite.LeastSquares(lambda x: A @ x - b, jac_sparsity=A != 0)
    fit = LevenbergMarquardt(tol=1e-8).minimize(loss, params)
    assert fit.info["linear_solver"] == "lsmr"
    assert np.all(fit.x >= lower) and np.all(fit.x <= upper)
    assert fit.params_at_limit  # the answer sits on bounds
    assert np.allclose(fit.x, ref.x, atol=1e-7)
    assert fit.fmin == pytest.approx(2 * ref.cost, rel=1e-9)


def test_the_result_holds_no_dense_n_by_n_array(block: dict) -> None:
    fit = block["sparse"]
    n = block["n"]
    assert fit.approx.hessian is None and fit.approx.inv_hessian is None
    seen: list[tuple] = []

    def walk(obj: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(obj, np.ndarray) or scipy.sparse.issparse(obj):
            seen.append(obj.shape)
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v, depth + 1)

    walk(vars(fit))
    walk(vars(fit.approx))
    assert seen and all(np.prod(s) < n * n for s in seen)
    assert "hessian" not in str(fit).lower() or fit.approx.hessian is None


def test_hesse_on_a_sparse_fit_differences_in_groups(block: dict) -> None:
    residuals, jac, pattern, x0, _ = peaks(32)
    loss = zfitlite.LeastSquares(residuals, jac_sparsity=pattern)
    fit = LevenbergMarquardt(tol=1e-8).minimize(loss, x0)
    before = fit.info["ncalls"]
    evaluator_calls = []
    H = grouped_hessian(
        lambda x: (evaluator_calls.append(1), 2 * jac(x).T @ residuals(x))[1],
        fit.x,
        hessian_pattern(pattern),
    )
    # dense columns (the background) one by one, the peaks in 3 groups: 5 groups, 10 gradients
    assert len(evaluator_calls) == 10
    from zfitlite.backends.numdiff import jacobian

    full = jacobian(lambda x: 2 * jac(x).T @ residuals(x), fit.x)  # n columns, one by one
    assert np.allclose(H, 0.5 * (full + full.T), rtol=1e-6, atol=1e-8 * np.abs(full).max())
    errs = fit.hesse()  # a Hessian from differences of a finite-difference gradient
    assert errs["p0"]["error"] == pytest.approx(np.sqrt(np.linalg.inv(H)[0, 0] * 2.0), rel=1e-3)
    assert fit.info["ncalls"] == before


def test_auto_detects_a_sparse_jacobian_without_wasted_calls(block: dict) -> None:
    forced = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "lsmr"}).minimize(
        zfitlite.LeastSquares(block["residuals"], jacobian=block["jac"]), block["x0"]
    )
    auto = block["sparse"]
    assert forced.info["linear_solver"] == "lsmr"
    assert (auto.info["nres"], auto.info["njac"]) == (forced.info["nres"], forced.info["njac"])
    assert np.array_equal(auto.x, forced.x)


def test_a_dense_jacobian_can_take_the_lsmr_path() -> None:
    residuals, jac, _, x0, _ = peaks(20)
    fit = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "lsmr"}).minimize(
        zfitlite.LeastSquares(residuals, jacobian=lambda p: jac(p).toarray()), x0
    )
    ref = LevenbergMarquardt(tol=1e-8).minimize(
        zfitlite.LeastSquares(residuals, jacobian=lambda p: jac(p).toarray()), x0
    )
    assert fit.info["linear_solver"] == "lsmr" and "linear_solver" not in ref.info
    assert np.allclose(fit.x, ref.x, rtol=1e-6, atol=1e-6)


def test_maxiter_counts_the_calls_of_grouped_differences(block: dict) -> None:
    loss = zfitlite.LeastSquares(block["residuals"], jac_sparsity=block["pattern"])
    fit = LevenbergMarquardt(maxiter=30).minimize(loss, block["x0"])
    assert fit.status is Status.MAXITER and not fit.valid
    assert fit.info["ncalls"] <= 30


def test_weights_and_constraints_with_a_pattern() -> None:
    residuals, jac, pattern, x0, _ = peaks(20)
    c = zfitlite.GaussianConstraint(params=[0], observation=[5.0], uncertainty=[0.01])
    w = np.linspace(0.5, 1.5, pattern.shape[0])
    kw: dict[str, Any] = {"weights": w, "constraints": c}
    by_pattern = LevenbergMarquardt(tol=1e-8).minimize(
        zfitlite.LeastSquares(residuals, jac_sparsity=pattern, **kw), x0
    )
    by_jac = LevenbergMarquardt(tol=1e-8).minimize(
        zfitlite.LeastSquares(residuals, jacobian=jac, **kw), x0
    )
    dense = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "svd"}).minimize(
        zfitlite.LeastSquares(residuals, jacobian=lambda p: jac(p).toarray(), **kw), x0
    )
    assert by_pattern.info["linear_solver"] == by_jac.info["linear_solver"] == "lsmr"
    assert abs(by_jac.x[0] - 5.0) < 0.05
    assert np.allclose(by_pattern.x, dense.x, rtol=1e-6, atol=1e-6)
    assert np.allclose(by_jac.x, dense.x, rtol=1e-6, atol=1e-6)


def test_bad_patterns_give_clear_errors() -> None:
    residuals, _, pattern, x0, n = peaks(11)
    with pytest.raises(ValueError, match="jac_sparsity has 10 columns but there are 11"):
        zfitlite.LeastSquares(residuals, jac_sparsity=pattern[:, :10], params=x0)
    with pytest.raises(ValueError, match="2-D"):
        zfitlite.LeastSquares(residuals, jac_sparsity=np.ones(n))
    with pytest.raises(ValueError, match="numpy backend"):
        zfitlite.LeastSquares(residuals, jac_sparsity=pattern, backend="jax")
    loss = zfitlite.LeastSquares(residuals, jac_sparsity=pattern[:, :10])
    with pytest.raises(ValueError, match="10 columns but there are 11 parameters"):
        LevenbergMarquardt().minimize(loss, x0)
    loss = zfitlite.LeastSquares(residuals, jac_sparsity=pattern[:-3])
    with pytest.raises(LossEvaluationError, match="jac_sparsity has 42 rows"):
        LevenbergMarquardt().minimize(loss, x0)
    with pytest.raises(ValueError, match="linear_solver"):
        LevenbergMarquardt(options={"linear_solver": "qr"})


def test_other_minimizers_accept_a_sparse_loss() -> None:
    residuals, jac, pattern, x0, _ = peaks(20)
    ref = LevenbergMarquardt(tol=1e-8).minimize(zfitlite.LeastSquares(residuals, jacobian=jac), x0)
    for loss in (
        zfitlite.LeastSquares(residuals, jacobian=jac),
        zfitlite.LeastSquares(residuals, jac_sparsity=pattern),
    ):
        fit = zfitlite.minimize.ScipyLeastSquares(tol=1e-8).minimize(loss, x0)
        assert fit.valid
        assert np.allclose(fit.x, ref.x, rtol=1e-5, atol=1e-5)


def test_damped_steps_on_extended_rosenbrock() -> None:
    """Far from the minimum the Gauss-Newton step does not fit the trust region: the
    damped LSMR steps (with rejections) still reach the minimum, as the dense LM does."""
    n = 60
    rows = np.repeat(np.arange(n), [2, 1] * (n // 2))
    cols = np.concatenate([[i, i + 1, i] for i in range(0, n, 2)])

    def residuals(x: np.ndarray) -> np.ndarray:
        out = np.empty(n)
        out[0::2] = 10.0 * (x[1::2] - x[0::2] ** 2)
        out[1::2] = 1.0 - x[0::2]
        return out

    def jac(x: np.ndarray) -> scipy.sparse.csr_matrix:
        v = np.stack([-20.0 * x[0::2], np.full(n // 2, 10.0), np.full(n // 2, -1.0)], 1)
        return scipy.sparse.csr_matrix((v.ravel(), (rows, cols)), shape=(n, n))

    x0 = np.tile([-1.2, 1.0], n // 2)
    lams: list[float] = []
    fit = LevenbergMarquardt(
        tol=1e-8, callback=lambda st: lams.append(st.extras["lambda"])
    ).minimize(zfitlite.LeastSquares(residuals, jacobian=jac), x0)
    dense = LevenbergMarquardt(tol=1e-8, options={"linear_solver": "svd"}).minimize(
        zfitlite.LeastSquares(residuals, jacobian=lambda x: jac(x).toarray()), x0
    )
    assert fit.valid and fit.info["linear_solver"] == "lsmr"
    assert np.allclose(fit.x, 1.0, atol=1e-7) and np.allclose(dense.x, 1.0, atol=1e-7)
    assert max(lams) > 0  # damped steps


def test_the_damped_step_lands_on_the_trust_region_boundary() -> None:
    from zfitlite.solvers.lm_sparse import IterativeSettings, damped_step, gauss_newton

    rng = np.random.default_rng(7)
    A = scipy.sparse.random(50, 20, density=0.2, random_state=rng, format="csr")
    A = (A + scipy.sparse.eye(50, 20)).tocsr()
    r = rng.normal(size=50)
    it = IterativeSettings()
    zgn, edm, singular, _ = gauss_newton(A, r, it)
    assert not singular
    Ad = A.toarray()
    assert edm == pytest.approx(float(r @ Ad @ np.linalg.pinv(Ad) @ r), rel=1e-8)
    delta = 0.3 * float(np.linalg.norm(zgn))
    z, lam, _ = damped_step(A, r, zgn, delta, 0.0, it)
    assert lam > 0 and np.linalg.norm(z) == pytest.approx(delta, rel=1e-12)
    # z is the damped solution for its lam, up to the 10 % secular tolerance on its length
    exact = np.linalg.solve(Ad.T @ Ad + lam * np.eye(20), -Ad.T @ r)
    assert np.linalg.norm(exact) == pytest.approx(delta, rel=0.1)
    cos = z @ exact / (np.linalg.norm(z) * np.linalg.norm(exact))
    assert cos > 1 - 1e-6
    same, lam0, _ = damped_step(A, r, zgn, 2 * float(np.linalg.norm(zgn)), 0.0, it)
    assert lam0 == 0.0 and same is zgn


@pytest.mark.parametrize("linear_solver", ["lsmr", "svd"])
def test_a_rank_deficient_jacobian_is_singular(linear_solver: str) -> None:
    t = np.linspace(0.0, 1.0, 40)
    y = 1.0 + 2.0 * t
    J = scipy.sparse.csr_matrix(np.stack([np.ones(40), np.ones(40), t], 1))  # p0, p1: one sum
    loss = zfitlite.LeastSquares(
        lambda p: p[0] + p[1] + p[2] * t - y, jacobian=lambda p: J, backend="numpy"
    )
    fit = LevenbergMarquardt(options={"linear_solver": linear_solver}).minimize(loss, np.zeros(3))
    assert fit.status is Status.SINGULAR and not fit.valid
    assert fit.x[0] + fit.x[1] == pytest.approx(1.0) and fit.x[2] == pytest.approx(2.0)


def test_a_sparse_jacobian_on_the_jax_backend_is_refused_clearly() -> None:
    pytest.importorskip("jax")
    t = np.linspace(0.0, 1.0, 10)
    loss = zfitlite.LeastSquares(
        lambda p: p[0] + p[1] * t - 1.0,
        jacobian=lambda p: scipy.sparse.csr_matrix(np.stack([np.ones(10), t], 1)),
        backend="jax",
    )
    with pytest.raises(LossEvaluationError, match="backend='numpy'"):
        LevenbergMarquardt(options={"linear_solver": "lsmr"}).minimize(loss, np.zeros(2))
