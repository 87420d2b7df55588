"""Fitting real data: masks and weights, robust losses, correlated errors, priors, ragged data.

Every check is against an independent answer in the same run: scipy ``least_squares``
(robust losses, weights), closed forms for a linear model (generalised least squares,
Gaussian prior), and equality of single, compiled, batched and member-by-member fits.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats

import zfitlite
import zfitlite._ragged
from zfitlite import GaussianConstraint, LeastSquares, fit_each, minimize_batch, with_constraints
from zfitlite.minimize import LevenbergMarquardt, ScipyLeastSquares
from zfitlite.robust import scipy_rho

T = np.linspace(0.0, 4.0, 30)


def exp_model(t, p):
    return p[0] * jnp.exp(-p[1] * t)


def exp_residuals(p, t, y):
    return y - p[0] * jnp.exp(-p[1] * t)


def np_residuals(p, t, y):
    return y - p[0] * np.exp(-p[1] * t)


def noisy(seed: int = 1, n: int = 30, outliers: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 4.0, n)
    y = 2.0 * np.exp(-0.7 * t) + 0.05 * rng.normal(size=n)
    if outliers:
        y[[3, n // 3]] += 1.5
    return t, y


def scipy_fit(fun, x0, **kw):
    return scipy.optimize.least_squares(fun, x0, xtol=1e-15, ftol=1e-15, gtol=1e-15, **kw).x


# -- 1. missing values: one rule everywhere --------------------------------------------
def test_mask_and_weights_match_scipy_and_count_observations():
    t, y = noisy(outliers=False)
    w = np.linspace(0.5, 2.0, t.size)
    mask = np.zeros(t.size, dtype=bool)
    mask[[2, 9, 20]] = True
    loss = LeastSquares(exp_residuals, args=(t, y), weights=w, mask=mask)
    assert loss.nobs == t.size - 3
    keep = ~mask
    ref = scipy_fit(lambda p: np.sqrt(w[keep]) * np_residuals(p, t[keep], y[keep]), [1.0, 1.0])
    for minimizer in (LevenbergMarquardt(tol=1e-10), ScipyLeastSquares(tol=1e-10)):
        r = minimizer.minimize(loss, [1.0, 1.0])
        assert r.valid
        np.testing.assert_allclose(r.x, ref, rtol=1e-7)
    # the numpy backend takes the same route
    rn = LevenbergMarquardt(tol=1e-10).minimize(
        LeastSquares(np_residuals, args=(t, y), weights=w, mask=mask), [1.0, 1.0]
    )
    assert rn.info["loop"] == "eager"
    np.testing.assert_allclose(rn.x, ref, rtol=1e-7)


def test_weights_are_the_losss_own_copy_and_the_count_follows_them():
    """The loss keeps a read-only copy of the weights: changing the caller's array later
    changes neither the fit nor the observed count (which is counted once per data)."""
    t, y = noisy(outliers=False)
    w = np.ones(t.size)
    w[:4] = 0.0  # four points out
    loss = LeastSquares(np_residuals, args=(t, y), weights=w)
    before = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    assert loss.nobs == t.size - 4
    w[:] = 0.0  # the caller reuses its array
    assert loss.nobs == t.size - 4
    assert not loss.weights.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        loss.weights[0] = 1.0
    again = LevenbergMarquardt(tol=1e-10).minimize(loss, [1.0, 1.0])
    np.testing.assert_array_equal(again.x, before.x)
    ref = scipy_fit(lambda p: np_residuals(p, t[4:], y[4:]), [1.0, 1.0])
    np.testing.assert_allclose(before.x, ref, rtol=1e-7)
    # a loss on other data counts its own points
    other = LeastSquares(np_residuals, args=(t, y), weights=np.r_[np.zeros(10), np.ones(20)])
    assert other.nobs == 20 and loss.nobs == t.size - 4


def test_nan_data_same_answer_single_compiled_batch_and_members():
    """Ragged members with missing visits: every path gives the same fit and nobs."""
    rng = np.random.default_rng(3)
    xs, ys = [], []
    for n in (5, 7, 10, 12):  # two buckets: 8 and 12
        t = np.sort(rng.uniform(0, 4, n))
        y = 2.0 * np.exp(-0.7 * t) + 0.05 * rng.normal(size=n)
        y[rng.choice(n, 2, replace=False)] = np.nan
        xs.append(t)
        ys.append(y)
    lm = LevenbergMarquardt(tol=1e-12, options={"compile": "always"})
    single_np, single_jax = [], []
    for t, y in zip(xs, ys):
        ln = LeastSquares.from_data(lambda t, p: p[0] * np.exp(-p[1] * t), t, y)
        lj = LeastSquares.from_data(exp_model, t, y)
        assert ln.nobs == lj.nobs == int(np.isfinite(y).sum())
        rn, rj = lm.minimize(ln, [1.0, 1.0]), lm.minimize(lj, [1.0, 1.0])
        assert rn.info["loop"] == "eager" and rj.info["loop"] == "compiled"
        ok = np.isfinite(y)
        ref = scipy_fit(lambda p, t=t[ok], y=y[ok]: np_residuals(p, t, y), [1.0, 1.0])
        np.testing.assert_allclose(rn.x, ref, rtol=1e-7)
        single_np.append(rn.x)
        single_jax.append(rj.x)
    template = LeastSquares.from_data(exp_model, xs[0], ys[0])
    batch = minimize_batch(lm, template, [1.0, 1.0], args=[xs, ys])
    members = minimize_batch(lm, template, [1.0, 1.0], args=[xs, ys], vectorize=False)
    assert batch.info["method"] == "lm" and members.info["method"] == "each"
    np.testing.assert_array_equal(batch.nobs, [int(np.isfinite(y).sum()) for y in ys])
    np.testing.assert_array_equal(members.nobs, batch.nobs)
    for x in (single_jax, batch.x, members.x):
        np.testing.assert_allclose(x, np.array(single_np), rtol=1e-7)
    assert batch.valid.all() and members.valid.all()
    # the per-member covariance is that of the single fit
    np.testing.assert_allclose(
        batch.hesse_errors[0],
        np.sqrt(np.diag(lm.minimize(template, [1.0, 1.0]).covariance(method="approx"))),
        rtol=1e-6,
    )


def test_nan_in_a_residual_functions_data_is_missing_as_in_a_batch():
    """The issue's first report: NaN-padded data in a single fit used to raise FailMinimizeNaN."""
    t, y = noisy(outliers=False, n=14)
    y[[1, 5]] = np.nan
    t_pad, y_pad = np.append(t, [np.nan] * 2), np.append(y, [np.nan] * 2)  # padded by hand
    ok = np.isfinite(y)
    ref = scipy_fit(lambda p: np_residuals(p, t[ok], y[ok]), [1.0, 1.0])
    lm = LevenbergMarquardt(tol=1e-12, options={"compile": "always"})
    for residuals in (np_residuals, exp_residuals):
        loss = LeastSquares(residuals, args=(t_pad, y_pad), params={"a": 1.0, "b": 1.0})
        assert loss.nan_data and loss.nobs == ok.sum()
        r = lm.minimize(loss)
        assert r.valid
        np.testing.assert_allclose(r.x, ref, rtol=1e-8)
        if residuals is np_residuals:
            np.testing.assert_allclose(
                ScipyLeastSquares(tol=1e-12).minimize(loss).x, ref, rtol=1e-8
            )
    assert r.info["loop"] == "compiled"


# -- 4. robust losses --------------------------------------------------------------------
def _user_rho(z):
    return 2.0 * (jnp.sqrt(1.0 + z) - 1.0)  # soft_l1 written by hand


@pytest.mark.parametrize("kind", ["soft_l1", "huber", "cauchy", "arctan", "user"])
def test_robust_losses_match_scipy_least_squares(kind):
    t, y = noisy()
    rho = _user_rho if kind == "user" else kind
    ref_rho = scipy_rho(lambda z: 2.0 * (np.sqrt(1.0 + z) - 1.0)) if kind == "user" else kind
    start = [1.8, 0.6]  # arctan and cauchy are not convex: start where scipy does
    ref = scipy_fit(lambda p: np_residuals(p, t, y), start, loss=ref_rho, f_scale=0.1)
    plain = scipy_fit(lambda p: np_residuals(p, t, y), start)
    assert np.max(np.abs(ref / plain - 1)) > 1e-2  # the outliers matter
    loss = LeastSquares(exp_residuals, args=(t, y), loss=rho, f_scale=0.1)
    lm = LevenbergMarquardt(tol=1e-12, options={"compile": "always"})
    r = lm.minimize(loss, start)
    assert r.valid and r.info["loop"] == "compiled"
    np.testing.assert_allclose(r.x, ref, rtol=1e-6)
    if kind != "user":  # numpy eager, and ScipyLeastSquares on it (nothing to compile)
        loss_np = LeastSquares(np_residuals, args=(t, y), loss=kind, f_scale=0.1)
        np.testing.assert_allclose(lm.minimize(loss_np, start).x, ref, rtol=1e-6)
        np.testing.assert_allclose(
            ScipyLeastSquares(tol=1e-12).minimize(loss_np, start).x, ref, rtol=1e-6
        )
    if kind == "huber":  # a batch of three data sets (one compile: kept to one loss)
        ys = np.stack([noisy(seed)[1] for seed in (1, 2, 3)])
        refs = [
            scipy_fit(lambda p, y=yk: np_residuals(p, t, y), start, loss="huber", f_scale=0.1)
            for yk in ys
        ]
        b = minimize_batch(lm, loss, start, args=(np.tile(t, (3, 1)), ys))
        assert b.info["method"] == "lm" and b.valid.all()
        np.testing.assert_allclose(b.x, np.array(refs), rtol=1e-6)
    # the value is the robust objective, twice scipy's cost
    z = (np_residuals(r.x, t, y) / 0.1) ** 2
    rho_np = {
        "soft_l1": 2 * (np.sqrt(1 + z) - 1),
        "huber": np.where(z <= 1, z, 2 * np.sqrt(z) - 1),
        "cauchy": np.log1p(z),
        "arctan": np.arctan(z),
        "user": 2 * (np.sqrt(1 + z) - 1),
    }[kind]
    assert r.fmin == pytest.approx(np.sum(0.1**2 * rho_np), rel=1e-10)


def test_robust_residuals_are_differentiable_at_zero():
    zero = LeastSquares(lambda p: p - jnp.array([1.0, 2.0]), loss="cauchy", f_scale=0.5)
    J = zero.compiled(2).jacobian(np.array([1.0, 2.0]))
    np.testing.assert_allclose(J, np.eye(2))
    assert not np.any(np.isnan(J))


# -- 5. correlated errors -----------------------------------------------------------------
def _ar1_cov(t, sigma=0.1, rho=0.6):
    return sigma**2 * rho ** np.abs(np.subtract.outer(np.arange(t.size), np.arange(t.size)))


def test_correlated_errors_match_generalised_least_squares():
    rng = np.random.default_rng(7)
    t = np.linspace(0, 1, 15)
    C = _ar1_cov(t)
    y = 1.0 + 2.0 * t + np.linalg.cholesky(C) @ rng.normal(size=t.size)
    y[4] = np.nan  # missing: its row and column of C leave
    keep = np.isfinite(y)
    X = np.column_stack([np.ones(t.size), t])[keep]
    Ci = np.linalg.inv(C[np.ix_(keep, keep)])
    cov_gls = np.linalg.inv(X.T @ Ci @ X)
    beta = cov_gls @ X.T @ Ci @ y[keep]
    lm, scipy_lsq = LevenbergMarquardt(tol=1e-10), ScipyLeastSquares(tol=1e-10)
    for minimizer, backend in ((lm, "jax"), (lm, "numpy"), (scipy_lsq, "numpy")):
        loss = LeastSquares.from_data(lambda t, p: p[0] + p[1] * t, t, y, cov=C, backend=backend)
        assert loss.nobs == keep.sum()
        r = minimizer.minimize(loss, [0.0, 0.0])
        np.testing.assert_allclose(r.x, beta, rtol=1e-9)
        np.testing.assert_allclose(r.covariance(), cov_gls, rtol=1e-6)  # numerical on numpy
        chi2 = (y[keep] - X @ beta) @ Ci @ (y[keep] - X @ beta)
        assert r.fmin == pytest.approx(chi2, rel=1e-9)
    # ignoring the correlations gives another answer
    diag = LevenbergMarquardt(tol=1e-10).minimize(
        LeastSquares.from_data(lambda t, p: p[0] + p[1] * t, t, y, sigma=0.1, backend="numpy"),
        [0.0, 0.0],
    )
    assert np.max(np.abs(diag.x - beta)) > 1e-3


# -- 3. constraints and priors -------------------------------------------------------------
def _linear_posterior(X, y, sigma, mu, P):
    """Posterior mean and covariance of a linear model with a Gaussian prior N(mu, P)."""
    Pi = np.linalg.inv(P)
    cov = np.linalg.inv(X.T @ X / sigma**2 + Pi)
    return cov @ (X.T @ y / sigma**2 + Pi @ mu), cov


def _prior_problem():
    rng = np.random.default_rng(11)
    t = np.linspace(0, 1, 6)
    y = 0.5 + 1.5 * t + 0.3 * rng.normal(size=t.size)
    mu = np.array([1.0, 1.0])
    P = np.array([[0.04, 0.012], [0.012, 0.09]])  # correlated prior
    X = np.column_stack([np.ones_like(t), t])
    return t, y, mu, P, X


def test_gaussian_constraint_value_is_zfits_nll():
    mu = np.array([1.0, -2.0, 0.5])
    A = np.array([[1.0, 0.2, 0.0], [0.3, 2.0, 0.1], [0.0, 0.4, 0.5]])
    cov = A @ A.T
    c = GaussianConstraint(["a", "b", "c"], mu, cov=cov)
    x = np.array([1.3, -1.0, 0.2])
    mvn = scipy.stats.multivariate_normal(mu, cov)
    assert c.value(x) == pytest.approx(mvn.logpdf(mu) - mvn.logpdf(x), rel=1e-12)
    assert GaussianConstraint("a", 1.0, 0.5).value([2.0]) == pytest.approx(2.0)  # 0.5 * (1/0.5)^2
    np.testing.assert_allclose(c.sigma, np.sqrt(np.diag(cov)))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianConstraint(["a", "b"], [0, 0], cov=[[1.0, 2.0], [2.0, 1.0]])


def test_prior_on_least_squares_gives_the_closed_form_posterior():
    t, y, mu, P, X = _prior_problem()
    mean, cov = _linear_posterior(X, y, 0.3, mu, P)
    prior = GaussianConstraint(["a", "b"], mu, cov=P)
    params = {"a": 0.0, "b": 0.0}
    for backend, model in (
        ("jax", lambda t, p: p[0] + p[1] * t),
        ("numpy", lambda t, p: p[0] + p[1] * np.asarray(t)),
    ):
        loss = LeastSquares.from_data(
            model, t, y, sigma=0.3, params=params, backend=backend, constraints=prior
        )
        assert loss.nobs == t.size + 2
        minimizers = [LevenbergMarquardt(tol=1e-10)]
        if backend == "numpy":  # (on JAX it would only compile more)
            minimizers.append(ScipyLeastSquares(tol=1e-10))
        for minimizer in minimizers:
            r = minimizer.minimize(loss)
            np.testing.assert_allclose(r.x, mean, rtol=1e-9)
            np.testing.assert_allclose(r.covariance(), cov, rtol=1e-7)
    # profile errors include the prior (exactly the posterior's for a linear model)
    errs, _ = r.errors()
    for i, name in enumerate(("a", "b")):
        assert errs[name]["lower"] == pytest.approx(-np.sqrt(cov[i, i]), rel=1e-5)
        assert errs[name]["upper"] == pytest.approx(np.sqrt(cov[i, i]), rel=1e-5)
    # without the prior: the plain least-squares answer
    plain = LevenbergMarquardt(tol=1e-10).minimize(
        LeastSquares.from_data(lambda t, p: p[0] + p[1] * t, t, y, sigma=0.3, backend="numpy"),
        [0.0, 0.0],
    )
    np.testing.assert_allclose(plain.x, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-9)
    assert np.max(np.abs(plain.x - mean)) > 0.05


def test_prior_on_a_scalar_nll_and_in_a_batch():
    t, y, mu, P, X = _prior_problem()
    mean, cov = _linear_posterior(X, y, 0.3, mu, P)

    def nll(p, t, y):
        return 0.5 * np.sum(((y - p[0] - p[1] * t) / 0.3) ** 2)

    loss = zfitlite.SimpleLoss(
        nll,
        errordef=0.5,
        args=(t, y),
        constraints=GaussianConstraint([0, 1], mu, cov=P),
        backend="numpy",
    )
    for minimizer in (zfitlite.minimize.ScipyBFGS(tol=1e-10), zfitlite.minimize.Minuit(tol=1e-6)):
        r = minimizer.minimize(loss, [0.0, 0.0])
        np.testing.assert_allclose(r.x, mean, rtol=1e-5)
        np.testing.assert_allclose(r.covariance(method="hesse_np"), cov, rtol=1e-6)
    # with_constraints on an existing loss; a batch of members sharing the prior
    base = LeastSquares.from_data(lambda t, p: p[0] + p[1] * t, t, y, sigma=0.3)
    constrained = with_constraints(base, GaussianConstraint([0, 1], mu, cov=P))
    ys = np.stack([y, y + 0.2, y - 0.1])
    b = minimize_batch(
        LevenbergMarquardt(tol=1e-10), constrained, [0.0, 0.0], args=(np.tile(t, (3, 1)), ys)
    )
    for k in range(3):
        m_k, c_k = _linear_posterior(X, ys[k], 0.3, mu, P)
        np.testing.assert_allclose(b.x[k], m_k, rtol=1e-8)
        np.testing.assert_allclose(b.covariance()[k], c_k, rtol=1e-7)
    np.testing.assert_array_equal(b.nobs, t.size + 2)


# -- 6. leaspy's reporting and per-subject progress -----------------------------------------
def test_leaspy_format_and_a_loop_of_single_fits_with_progress(capsys):
    from zfitlite.minimize import ScipyMinimize

    leaspy_default = "<!> {patient_id}:\n{optimization_result_pformat}"  # leaspy's default
    seen = []
    minimizer = ScipyMinimize(
        "Powell",
        options={"maxiter": 1},
        logger=seen.append,
        format_convergence_issues=leaspy_default,
    )

    def chi2(p, c):
        return jnp.sum((p - c) ** 2) + (p[0] * p[1] - 1.0) ** 2

    losses = [
        zfitlite.SimpleLoss(chi2, errordef=1.0, args=(np.array([c, 2.0]),)) for c in (1.0, 3.0)
    ]
    results, prog = fit_each(minimizer, losses, [0.0, 0.0], ids=["P-001", "P-002"], progress=True)
    assert [r.valid for r in results] == [False, False]  # maxiter 1: both reported
    assert [s.split(":")[0] for s in seen] == ["<!> P-001", "<!> P-002"]
    assert prog.nfits == 2 and prog.nvalid == 0 and prog.elapsed > 0
    err = capsys.readouterr().err
    assert "2/2" in err and "failed 2" in err  # the bar: per-subject counts
    assert prog.summary().startswith("2 fits (0 valid) in ")
    # converged fits count as valid; the results are scipy's
    good, prog = fit_each(
        ScipyMinimize("Powell", logger=seen.append), losses, [0.5, 0.5], progress=False
    )
    assert prog.nvalid == 2
    for r, loss in zip(good, losses):
        ref = scipy.optimize.minimize(
            lambda p, loss=loss: float(loss.value(p)),
            [0.5, 0.5],
            method="Powell",
            options={"ftol": 1e-4, "xtol": 1e-4, "maxiter": 200},
        )
        np.testing.assert_allclose(r.x, ref.x, rtol=1e-12)


# -- 2. ragged data without recompiles --------------------------------------------------------
class CountingModel:
    """``a * exp(-k t)``, counting its calls (under jit: one per trace)."""

    def __init__(self, xp):
        self.calls = 0
        self.xp = xp

    def __call__(self, t, p):
        self.calls += 1
        return p[0] * self.xp.exp(-p[1] * t)


def test_single_fits_of_many_lengths_compile_once_per_bucket():
    rng = np.random.default_rng(5)
    model = CountingModel(jnp)
    lm = LevenbergMarquardt(tol=1e-10, options={"compile": "always"})
    traces, buckets = [], set()
    for n in range(3, 17):  # 14 lengths (3+: two parameters)
        t = np.sort(rng.uniform(0, 4, n))
        y = 2.0 * np.exp(-0.7 * t) + 0.05 * rng.normal(size=n)
        before = model.calls
        r = lm.minimize(LeastSquares.from_data(model, t, y, backend="jax"), [1.0, 1.0])
        assert r.valid and r.info["loop"] == "compiled"
        traces.append(model.calls > before)
        buckets.add(zfitlite._ragged.bucket_size(n))
        ref = scipy_fit(lambda p, t=t, y=y: np_residuals(p, t, y), [1.0, 1.0])
        np.testing.assert_allclose(r.x, ref, rtol=1e-7)
    assert sorted(buckets) == [8, 12, 16]
    assert sum(traces) == 3  # one compile per bucket, not one per length


def test_ragged_batches_share_a_program_per_bucket():
    rng = np.random.default_rng(6)
    model = CountingModel(jnp)
    lm = LevenbergMarquardt(tol=1e-10)

    def ragged(lengths):
        ts = [np.sort(rng.uniform(0, 4, n)) for n in lengths]
        return ts, [2.0 * np.exp(-0.7 * t) + 0.05 * rng.normal(size=t.size) for t in ts]

    template = LeastSquares.from_data(model, np.arange(5.0), np.ones(5), backend="jax")
    ts, ys = ragged([3, 9, 13, 4])
    first = minimize_batch(lm, template, [1.0, 1.0], args=[ts, ys])
    traced = model.calls
    ts2, ys2 = ragged([14, 5, 6, 11])  # longest 13 and 14 share the bucket 16
    second = minimize_batch(lm, template, [1.0, 1.0], args=[ts2, ys2])
    assert model.calls == traced
    for res, (tt, yy) in ((first, (ts, ys)), (second, (ts2, ys2))):
        np.testing.assert_array_equal(res.nobs, [t.size for t in tt])
        for k in range(len(tt)):
            ref = scipy_fit(lambda p, t=tt[k], y=yy[k]: np_residuals(p, t, y), [1.0, 1.0])
            np.testing.assert_allclose(res.x[k], ref, rtol=1e-6)


# -- 7. the disease-progression personalisation demo ----------------------------------------
def test_personalisation_demo_is_honest_and_agrees_with_scipy_minimize():
    from zfitlite.demo_personalise import personalisation_demo

    s = personalisation_demo(verbose=False, n_subjects=400, n_compare=3)
    assert s.n_valid == 400
    # posterior pulls against the truth drawn from the prior: mean 0, spread 1
    assert np.all(np.abs(s.pulls_mean) < 0.2)
    assert np.all(np.abs(s.pulls_std - 1.0) < 0.2)
    # the batched LM reaches ScipyMinimize's minimum (or below) on the compared subjects
    assert s.max_objective_gap < 1e-4
    assert s.max_shift_in_sigma < 0.05
    assert np.all(s.batch.nobs > 4)  # visits' scores plus the four prior rows
