"""minimize_batch: vectorised fits of many data sets, executors, missing data, results."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite import BatchFitResult, LeastSquares, Status, minimize_batch
from zfitlite.minimize import (
    BFGS,
    LevenbergMarquardt,
    Minuit,
    ScipyBFGS,
    ScipyMinimize,
    ScipyNelderMead,
    ScipyPowell,
)
from zfitlite.testing import batch as problems

TOL = 1e-10
#: One chunk size for the tests on the decay data (12 points): one compiled program for most.
CHUNK = 32


@pytest.fixture(scope="module")
def decay():
    return problems.decay_data(24, npoints=(5, 12), missing=0.15, seed=3)


def single_fit(t, y, x0, tol=TOL):
    """The reference: one LevenbergMarquardt fit of one member, missing points dropped."""
    loss = LeastSquares.from_data(problems.decay_model, t, y, backend="numpy")
    return LevenbergMarquardt(tol=tol).minimize(loss, x0)


def test_each_member_agrees_with_a_single_fit(decay):
    t, y = decay["t"], decay["y"]
    res = minimize_batch(
        LevenbergMarquardt(tol=TOL), LeastSquares(problems.decay_residuals), [1.0, 1.0], (t, y)
    )
    assert isinstance(res, BatchFitResult)
    assert res.info["method"] == "lm" and res.info["backend"] == "jax"
    assert res.valid.all(), str(res)
    for i in range(len(res)):
        ref = single_fit(t[i], y[i], [1.0, 1.0])
        assert ref.valid
        np.testing.assert_allclose(res.x[i], ref.x, rtol=1e-8)
        assert res.fmin[i] == pytest.approx(ref.fmin, rel=1e-8)
        assert res.niter[i] == ref.info["niter"]
        # uncertainties: the member's own covariance, errordef-aware
        np.testing.assert_allclose(
            res[i].covariance(method="approx"), ref.covariance(method="approx"), rtol=1e-6
        )
        assert res.nobs[i] == np.isfinite(y[i]).sum()


def test_straight_line_matches_the_analytic_solution():
    rng = np.random.default_rng(5)
    x = np.tile(np.linspace(-1.0, 2.0, 9), (30, 1))
    y = 0.5 + 2.0 * x + rng.normal(0.0, 0.1, x.shape)
    res = minimize_batch(
        LevenbergMarquardt(tol=TOL), LeastSquares(problems.line_residuals), [0.0, 0.0], (x, y)
    )
    assert res.valid.all()
    for i in range(30):
        A = np.column_stack([np.ones(9), x[i]])
        coef = np.linalg.lstsq(A, y[i], rcond=None)[0]
        np.testing.assert_allclose(res.x[i], coef, rtol=1e-9, atol=1e-12)
        # chi-square with unit sigma: covariance (A^T A)^-1, errors from hesse()
        cov = np.linalg.inv(A.T @ A)
        np.testing.assert_allclose(res[i].covariance(), cov, rtol=1e-9)
        if i < 2:  # exact Hessian of the member's loss (compiles per member: two are enough)
            errs = res[i].hesse()
            np.testing.assert_allclose(
                [errs["p0"]["error"], errs["p1"]["error"]], np.sqrt(np.diag(cov)), rtol=1e-6
            )
    np.testing.assert_allclose(res.hesse_errors[3], np.sqrt(np.diag(cov)), rtol=1e-9)


def test_shared_and_per_member_starts(decay):
    t, y = decay["t"][:8], decay["y"][:8]
    lm = LevenbergMarquardt(tol=TOL)
    loss = LeastSquares(problems.decay_residuals)
    shared = minimize_batch(lm, loss, [1.0, 1.0], (t, y), chunk_size=CHUNK)
    same = minimize_batch(lm, loss, np.tile([1.0, 1.0], (8, 1)), (t, y), chunk_size=CHUNK)
    np.testing.assert_array_equal(shared.x, same.x)
    starts = decay["params"][:8] * 1.1
    per = minimize_batch(lm, loss, starts, (t, y), chunk_size=CHUNK)
    np.testing.assert_allclose(per.x, shared.x, rtol=1e-7)
    for i in (0, 5):
        np.testing.assert_allclose(per.x[i], single_fit(t[i], y[i], starts[i]).x, rtol=1e-8)


def test_nan_masking_equals_dropping_the_points():
    rng = np.random.default_rng(9)
    t = np.linspace(0.0, 4.0, 12)
    y = 2.0 * np.exp(-0.6 * t) + rng.normal(0.0, 0.02, 12)
    y_nan = y.copy()
    y_nan[[2, 5, 7, 10]] = np.nan
    keep = np.isfinite(y_nan)
    lm = LevenbergMarquardt(tol=TOL)
    masked = minimize_batch(
        lm,
        LeastSquares(problems.decay_residuals),
        [1.0, 1.0],
        (t[None], y_nan[None]),
        chunk_size=CHUNK,
    )
    # the points dropped, fitted on the eager numpy path
    dropped = minimize_batch(
        lm, LeastSquares(problems.decay_residuals_numpy), [1.0, 1.0], (t[keep][None], y[keep][None])
    )
    assert dropped.info["method"] == "each"
    np.testing.assert_allclose(masked.x, dropped.x, rtol=1e-9)
    assert masked.fmin[0] == pytest.approx(dropped.fmin[0], rel=1e-9)
    assert masked.nobs[0] == 8 == dropped.nobs[0]
    assert masked.niter[0] == dropped.niter[0]
    np.testing.assert_allclose(masked.hesse_errors, dropped.hesse_errors, rtol=1e-7)


def test_per_member_failures_are_statuses(decay):
    t, y = decay["t"][:6].copy(), decay["y"][:6].copy()
    y[1] = np.nan  # nothing observed
    y[2, 1:] = np.nan  # one point for two parameters
    x0 = np.tile([1.0, 1.0], (6, 1))
    x0[3] = [np.nan, 1.0]  # a NaN start
    res = minimize_batch(
        LevenbergMarquardt(tol=TOL),
        LeastSquares(problems.decay_residuals),
        x0,
        (t, y),
        chunk_size=CHUNK,
    )
    assert list(res.valid) == [True, False, False, False, True, True]
    assert res.status[1] == res.status[2] == Status.SINGULAR
    assert "every observation" in res[1].message
    assert "only 1 observed point(s) for 2 parameters" in res[2].message
    assert res.status[3] == Status.NONFINITE and "start value" in res[3].message
    # maxiter is a per-member status too
    short = minimize_batch(
        LevenbergMarquardt(tol=TOL, maxiter=4),
        LeastSquares(problems.decay_residuals),
        x0,
        (t, y),
        chunk_size=CHUNK,
    )
    assert (short.status[[0, 4, 5]] == Status.MAXITER).all()
    assert not short.valid.any()


def test_converged_members_stop_changing():
    """Under vmap the loop runs until the slowest member ends; the others keep their counts."""
    t = np.tile(np.linspace(0.0, 4.0, 12), (3, 1))
    y = 2.0 * np.exp(-0.7 * t)
    starts = np.array([[2.0, 0.7], [1.0, 1.0], [30.0, 8.0]])  # on, near and far from it
    lm = LevenbergMarquardt(tol=TOL)
    loss = LeastSquares(problems.decay_residuals)
    together = minimize_batch(lm, loss, starts, (t, y), chunk_size=CHUNK)
    # each member alone (three copies of it: the same compiled program)
    alone = [
        minimize_batch(lm, loss, np.tile(starts[i], (3, 1)), (t, y), chunk_size=CHUNK)
        for i in range(3)
    ]
    assert together.niter[0] < together.niter[1] < together.niter[2]
    for i in range(3):
        assert together.niter[i] == alone[i].niter[0]
        assert together[i].info["nres"] == alone[i][0].info["nres"]
        np.testing.assert_array_equal(together.x[i], alone[i].x[0])


def test_the_compiled_batch_solve_is_reused():
    calls = []

    def residuals(p, t, y):
        calls.append(1)
        return y - p[0] * jnp.exp(-p[1] * t)

    data = problems.decay_data(16, npoints=(6, 10), seed=1)
    lm = LevenbergMarquardt(tol=1e-8)
    first = minimize_batch(lm, LeastSquares(residuals), [1.0, 1.0], (data["t"], data["y"]))
    traced = len(calls)
    assert traced > 0
    other = problems.decay_data(16, npoints=(6, 10), seed=2)
    second = minimize_batch(
        LevenbergMarquardt(tol=1e-8), LeastSquares(residuals), [1.0, 1.0], (other["t"], other["y"])
    )
    assert len(calls) == traced  # no new trace
    assert first.valid.all() and second.valid.all()
    assert not np.allclose(first.x, second.x)


def test_bfgs_on_a_scalar_loss_matches_the_analytic_minimum():
    rng = np.random.default_rng(2)
    samples = rng.normal(1.5, 2.0, (10, 40))
    res = minimize_batch(BFGS(tol=1e-8), problems.gaussian_nll, [0.0, 0.0], (samples,))
    assert res.info["method"] == "bfgs"
    assert res.valid.all(), str(res)
    np.testing.assert_allclose(res.x[:, 0], samples.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(res.x[:, 1], np.log(samples.std(axis=1)), rtol=1e-6)
    # errordef 0.5: the error on the mean is sigma / sqrt(n)
    errs = res[0].hesse(method="approx")
    assert errs["p0"]["error"] == pytest.approx(samples[0].std() / np.sqrt(40), rel=1e-5)
    # the batch's own covariance (errordef 0.5) gives the same for every member
    np.testing.assert_allclose(res.hesse_errors[:, 0], samples.std(axis=1) / np.sqrt(40), rtol=1e-5)
    assert res.nobs[0] == -1


def test_bfgs_on_least_squares_agrees_with_lm(decay):
    t, y = decay["t"][:6], decay["y"][:6]
    loss = LeastSquares(problems.decay_residuals)
    bfgs = minimize_batch(BFGS(tol=1e-10), loss, [1.0, 1.0], (t, y))
    lm = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y))
    assert bfgs.valid.all(), str(bfgs)
    np.testing.assert_allclose(bfgs.x, lm.x, rtol=1e-5)


def test_native_bfgs_members_equal_single_fits_with_bfgs():
    """The vectorised core and the single fit are one algorithm: same point, same counts."""
    rng = np.random.default_rng(7)
    samples = rng.normal(-0.5, 1.5, (6, 30))
    res = minimize_batch(BFGS(tol=1e-8), problems.gaussian_nll, [0.0, 0.0], (samples,))
    assert res.info["method"] == "bfgs" and res.valid.all(), str(res)
    for i in range(len(res)):
        loss = zfitlite.SimpleLoss(
            problems.gaussian_nll, errordef=0.5, args=(samples[i],), backend="numpy"
        )
        single = BFGS(tol=1e-8).minimize(loss, [0.0, 0.0])
        assert single.valid
        np.testing.assert_allclose(res.x[i], single.x, rtol=1e-9, atol=1e-12)
        assert res.niter[i] == single.info["niter"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ScipyNelderMead(tol=1e-8),
        lambda: ScipyPowell(tol=1e-8),
        lambda: Minuit(tol=1e-8),
        lambda: ScipyMinimize(method="Powell", tol=1e-8),
        lambda: ScipyBFGS(tol=1e-8),
    ],
    ids=["NelderMead", "Powell", "Minuit", "ScipyMinimize-Powell", "ScipyBFGS"],
)
def test_the_minimizer_you_pass_is_the_algorithm_you_get(make):
    """No substitution: without a vectorisable core the batch runs that minimizer per member."""
    rng = np.random.default_rng(11)
    samples = rng.normal(1.0, 2.0, (3, 25))
    res = minimize_batch(make(), problems.gaussian_nll, [0.0, 0.0], (samples,))
    assert res.info["method"] == "each", res.info
    assert res.info["minimizer"] == make().name
    for i in range(len(res)):
        loss = zfitlite.SimpleLoss(problems.gaussian_nll, errordef=0.5, args=(samples[i],))
        single = make().minimize(loss, [0.0, 0.0])
        assert res[i].minimizer.name == single.minimizer.name
        np.testing.assert_allclose(res.x[i], single.x, rtol=1e-5, atol=1e-8)
        assert res.status[i] == int(single.status)
        np.testing.assert_allclose(res.x[i, 0], samples[i].mean(), rtol=1e-3)


def test_levenberg_marquardt_on_a_scalar_loss_vectorises_its_own_damped_newton():
    """LM on a scalar loss has a core on the one driver too: the batch runs it (not BFGS),
    and every member equals a single fit with the same minimizer."""
    rng = np.random.default_rng(13)
    samples = rng.normal(1.0, 2.0, (4, 25))
    res = minimize_batch(
        LevenbergMarquardt(tol=1e-8), problems.gaussian_nll, [0.0, 0.0], (samples,)
    )
    assert res.info["method"] == "lm_hessian" and res.valid.all(), str(res)
    assert res[0].info["method"] == "damped-newton"
    for i in range(len(res)):
        loss = zfitlite.SimpleLoss(problems.gaussian_nll, errordef=0.5, args=(samples[i],))
        single = LevenbergMarquardt(tol=1e-8).minimize(loss, [0.0, 0.0])
        assert single.valid
        np.testing.assert_allclose(res.x[i], single.x, rtol=1e-7, atol=1e-10)
        assert res.niter[i] == single.info["niter"]


def test_numpy_loss_falls_back_to_one_fit_per_member(decay):
    t, y = decay["t"][:5], decay["y"][:5]
    lm = LevenbergMarquardt(tol=TOL)
    res = minimize_batch(lm, LeastSquares(problems.decay_residuals_numpy), [1.0, 1.0], (t, y))
    assert res.info["method"] == "each" and res.info["backend"] == "numpy"
    assert res.valid.all()
    for i in range(5):
        np.testing.assert_allclose(res.x[i], single_fit(t[i], y[i], [1.0, 1.0]).x, rtol=1e-7)
        assert res[i].info["backend"] == "numpy"
    assert res.nobs.tolist() == np.isfinite(y).sum(axis=1).tolist()


def test_result_arrays_indexing_iteration_and_summary(decay):
    t, y = decay["t"][:5], decay["y"][:5].copy()
    y[4] = np.nan
    ids = ["a", "b", "c", "d", "e"]
    res = minimize_batch(
        LevenbergMarquardt(),
        LeastSquares(problems.decay_residuals),
        [1.0, 1.0],
        (t, y),
        ids=ids,
        chunk_size=CHUNK,
    )
    assert len(res) == 5 and res.ids == ids
    assert res.x.shape == (5, 2)
    for name in ("fmin", "edm", "valid", "niter", "status"):
        assert getattr(res, name).shape == (5,)
    members = list(res)
    assert [m.info["id"] for m in members] == ids
    assert res[-1] is res[4] is res.by_id("e")
    assert isinstance(res[0], zfitlite.FitResult) and res[0].valid
    np.testing.assert_array_equal(res[1].x, res.x[1])
    with pytest.raises(IndexError):
        res[5]
    text = str(res)
    assert "5 member(s), 4 valid, 1 invalid" in text
    assert "CONVERGED 4" in text and "SINGULAR 1" in text and "'e'" in text
    assert res.status_counts() == {"CONVERGED": 4, "SINGULAR": 1}
    # members pickle (plain data)
    again = pickle.loads(pickle.dumps(res[0]))
    np.testing.assert_array_equal(again.x, res.x[0])


def test_hesse_errors_are_named_apart_from_profile_errors(decay):
    """``batch.hesse_errors`` is an array (``[:, 0]`` works); ``FitResult.errors()`` stays
    zfit's profile errors; a member from ``by_id`` prints its Hesse errors."""
    t, y = decay["t"][:4], decay["y"][:4]
    ids = ["a", "b", "c", "d"]
    for residuals in (problems.decay_residuals, problems.decay_residuals_numpy):
        res = minimize_batch(
            LevenbergMarquardt(tol=TOL), LeastSquares(residuals), [1.0, 1.0], (t, y), ids=ids
        )
        errs = res.hesse_errors
        assert errs.shape == (4, 2) and np.all(errs[:, 0] > 0)
        cov = res.covariance()
        np.testing.assert_allclose(errs, np.sqrt(np.diagonal(cov, axis1=1, axis2=2)))
        member = res.by_id("c")
        stored = member.params["p0"]["hesse"]
        assert stored["method"] == "approx"
        assert stored["error"] == pytest.approx(errs[2, 0], rel=1e-9)
        text = str(member)
        assert "hesse error" in text
        assert f"{errs[2, 0]:.3g}" in text.split("p0", 1)[1].splitlines()[0]
        # the profile errors of the member: a different method, close for this near-linear fit
        profile, new = member.errors(params=["p0"])
        assert new is None
        assert -profile["p0"]["lower"] == pytest.approx(errs[2, 0], rel=0.1)
        assert profile["p0"]["upper"] == pytest.approx(errs[2, 0], rel=0.1)
        with pytest.warns(DeprecationWarning, match=r"use the array batch\.hesse_errors"):
            old = res.errors()
        np.testing.assert_array_equal(old, errs)


def test_bad_input_is_reported():
    lm = LevenbergMarquardt()
    t = np.ones((3, 4))
    loss = LeastSquares(problems.decay_residuals)
    with pytest.raises(ValueError, match="leading"):
        minimize_batch(lm, loss, [1.0, 1.0], (t, np.ones((4, 4))))
    with pytest.raises(ValueError, match="ids"):
        minimize_batch(lm, loss, [1.0, 1.0], (t, t), ids=[1, 2])
    with pytest.raises(ValueError, match="errordef"):
        minimize_batch(lm, lambda x, d: jnp.sum(x), [1.0], (t,))
    with pytest.raises(TypeError, match="minimizer"):
        minimize_batch("lm", loss, [1.0, 1.0], (t, t))


@pytest.fixture(scope="module")
def executor_data():
    return problems.decay_data(20, npoints=(5, 12), missing=0.1, seed=11)


def _run(executor, data, **kw):
    return minimize_batch(
        LevenbergMarquardt(tol=TOL),
        LeastSquares(problems.decay_residuals),
        [1.0, 1.0],
        (data["t"], data["y"]),
        executor=executor,
        ids=[f"m{i}" for i in range(20)],
        **kw,
    )


def test_thread_pool_gives_the_same_results(executor_data):
    plain = _run(None, executor_data)
    with ThreadPoolExecutor(2) as pool:
        # chunks of 5: the program the dask test below compiles too
        threads = _run(pool, executor_data, chunk_size=5)
    assert threads.info["nchunks"] == 4
    np.testing.assert_array_equal(threads.x, plain.x)
    np.testing.assert_array_equal(threads.status, plain.status)
    assert threads.ids == plain.ids


def test_large_batch_without_executor_uses_the_cores_and_agrees(monkeypatch):
    """From THREADED_MIN_SIZE members on, chunks run on local threads (the first alone,
    as it compiles); members come back in order with the answers of one single chunk."""
    from zfitlite.batch import executors as batch_module

    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 2)
    pools = []

    class CountingPool(ThreadPoolExecutor):
        def __init__(self, workers: int) -> None:
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(batch_module, "ThreadPoolExecutor", CountingPool)
    data = problems.decay_data(batch_module.THREADED_MIN_SIZE, npoints=(5, 12), seed=8)
    lm, loss = LevenbergMarquardt(tol=TOL), LeastSquares(problems.decay_residuals)
    args = (data["t"], data["y"])
    threaded = minimize_batch(lm, loss, [1.0, 1.0], args)
    assert threaded.info["nchunks"] == 4  # about two chunks per thread
    assert pools == [2]  # the three chunks after the first ran on two threads
    whole = minimize_batch(lm, loss, [1.0, 1.0], args, chunk_size=data["y"].shape[0])
    assert whole.info["nchunks"] == 1
    assert threaded.ids == whole.ids
    np.testing.assert_array_equal(threaded.status, whole.status)
    np.testing.assert_allclose(threaded.x, whole.x, rtol=1e-12)


def test_process_pool_gives_the_same_results(executor_data):
    """Spawned processes (JAX does not survive a fork); the numpy fallback keeps it quick."""
    data = {k: v[:8] for k, v in executor_data.items()}
    loss = LeastSquares(problems.decay_residuals_numpy)
    lm = LevenbergMarquardt(tol=TOL)
    plain = minimize_batch(lm, loss, [1.0, 1.0], (data["t"], data["y"]), ids=list("abcdefgh"))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        procs = minimize_batch(
            lm, loss, [1.0, 1.0], (data["t"], data["y"]), executor=pool, ids=list("abcdefgh")
        )
    assert procs.info["nchunks"] == 4  # about two chunks per worker
    np.testing.assert_array_equal(procs.x, plain.x)
    np.testing.assert_array_equal(procs.status, plain.status)
    assert procs.ids == plain.ids
    assert procs[3].valid and procs[3].info["id"] == "d"


def test_dask_cluster_recomputes_the_chunk_of_a_killed_worker(executor_data, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    marker = tmp_path / "killed"
    monkeypatch.setenv(problems.KILL_MARKER_ENV, str(marker))
    # the workers' chunk shape: the program compiled here reaches them through JAX's
    # persistent cache (zfitlite's default), so they do not compile it again
    plain = _run(None, executor_data, chunk_size=5)
    with (
        distributed.LocalCluster(
            n_workers=1,  # its nanny restarts it; the lost chunk is recomputed there
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        res = minimize_batch(
            LevenbergMarquardt(tol=TOL),
            LeastSquares(problems.decay_residuals_kill_once),
            [1.0, 1.0],
            (executor_data["t"], executor_data["y"]),
            executor=client,
            ids=[f"m{i}" for i in range(20)],
            chunk_size=5,
        )
    assert marker.exists(), "no worker was killed"
    assert int(marker.read_text()) != os.getpid()
    assert res.ids == plain.ids and len(res) == 20
    np.testing.assert_allclose(res.x, plain.x, rtol=1e-12)
    np.testing.assert_array_equal(res.status, plain.status)
    assert [r.info["id"] for r in res] == plain.ids


def test_import_zfitlite_imports_neither_jax_nor_dask():
    code = "import sys, zfitlite; zfitlite.minimize_batch; print('jax' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_progress_bar_is_off_outside_a_terminal_and_can_be_forced(decay, capsys):
    from zfitlite.batch.executors import _show_progress

    assert not _show_progress(None, 10**6)  # stderr is captured here, not a terminal
    assert _show_progress(True, 1)
    t, y = decay["t"][:4], decay["y"][:4]
    res = minimize_batch(
        LevenbergMarquardt(),
        LeastSquares(problems.decay_residuals),
        [1.0, 1.0],
        (t, y),
        chunk_size=CHUNK,
        progress=True,
    )
    assert res.valid.all()
    assert "minimize_batch" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(20, 2), (12, 3), (30, 5), (7, 7)])
def test_jacobi_svd_matches_lapack(shape):
    from zfitlite.backends.ops import jacobi_svd, numpy_ops

    rng = np.random.default_rng(sum(shape))
    for A in (
        rng.normal(size=shape),
        rng.normal(size=shape) * np.logspace(0, -9, shape[1]),  # badly scaled columns
        np.column_stack([rng.normal(size=shape[0])] * 2 + [np.zeros((shape[0], shape[1] - 2))]),
    ):
        U, s, Vt = jacobi_svd(numpy_ops, A)
        ref = np.linalg.svd(A, compute_uv=False)
        np.testing.assert_allclose(s, ref, rtol=1e-12, atol=1e-14 * ref[0])
        np.testing.assert_allclose((U * s) @ Vt, A, atol=1e-13 * ref[0])
        np.testing.assert_allclose(Vt @ Vt.T, np.eye(shape[1]), atol=1e-13)
        assert np.all(np.diff(s) <= 0)


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_unrolled_cholesky_solve_matches_lapack(n):
    """The entry-by-entry Cholesky solve of the JAX ops (no LAPACK call, so vectorised
    under ``vmap`` and free of custom calls in a loop): the same solution as LAPACK, and
    ``ok`` False for a matrix that is not positive definite or not finite."""
    from zfitlite.backends.jax_backend import JaxOps
    from zfitlite.backends.ops import cho_solve, cholesky, unrolled_cholesky_solve

    rng = np.random.default_rng(n)
    B = rng.normal(size=(n, n))
    A = B @ B.T + n * np.eye(n) * np.logspace(0, -6, n)  # condition up to ~1e6
    b = rng.normal(size=n)
    x, ok = unrolled_cholesky_solve(jnp, jnp.asarray(A), jnp.asarray(b))
    assert bool(ok)
    np.testing.assert_allclose(np.asarray(x), cho_solve(cholesky(A), b), rtol=1e-9)
    x2, ok2 = JaxOps().cholesky_solve(jnp.asarray(A), jnp.asarray(b))
    assert bool(ok2)
    np.testing.assert_array_equal(np.asarray(x2), np.asarray(x))
    not_pd = A.copy()
    not_pd[-1, -1] = -1.0
    for bad in (not_pd, np.where(np.eye(n) > 0, np.nan, A)):
        x, ok = unrolled_cholesky_solve(jnp, jnp.asarray(bad), jnp.asarray(b))
        assert not bool(ok) and np.all(np.asarray(x) == 0)
    # batched: every member its own matrix
    As = np.stack([A, 2 * A, not_pd])
    import jax

    xs, oks = jax.vmap(lambda M: unrolled_cholesky_solve(jnp, M, jnp.asarray(b)))(As)
    np.testing.assert_array_equal(np.asarray(oks), [True, True, False])
    np.testing.assert_allclose(np.asarray(xs[1]), cho_solve(cholesky(2 * A), b), rtol=1e-9)


def poly_residuals(p, x, y):
    return y - jnp.polyval(p[::-1], x)


@pytest.mark.parametrize("n", [3, 6])
def test_polynomials_match_linear_least_squares(n):
    """n = 3 factorises with the batched Jacobi SVD, n = 6 with LAPACK."""
    rng = np.random.default_rng(n)
    x = np.tile(np.linspace(-1.0, 1.0, 15), (4, 1))
    y = np.sin(2.0 * x) + rng.normal(0.0, 0.05, x.shape)
    y[1, [3, 9]] = np.nan
    res = minimize_batch(
        LevenbergMarquardt(tol=TOL), LeastSquares(poly_residuals), np.zeros(n), (x, y)
    )
    assert res.valid.all(), str(res)
    for i in range(4):
        keep = np.isfinite(y[i])
        A = np.vander(x[i][keep], n, increasing=True)
        coef = np.linalg.lstsq(A, y[i][keep], rcond=None)[0]
        np.testing.assert_allclose(res.x[i], coef, rtol=1e-8, atol=1e-10)
        cov = np.linalg.inv(A.T @ A)
        np.testing.assert_allclose(res[i].covariance(), cov, rtol=1e-8, atol=1e-10 * abs(cov).max())


def test_bounds_hold_when_lm_is_told_not_to_use_residuals(decay):
    """The damped-Newton core honours bounds (clipped steps, held parameters) vectorised."""
    t, y = decay["t"][:6], decay["y"][:6]
    params = {"amplitude": {"value": 1.0, "upper": 1.2}, "rate": {"value": 1.0, "lower": 0.0}}
    loss = LeastSquares(problems.decay_residuals, params=params)
    lm = LevenbergMarquardt(tol=TOL, options={"use_residuals": False})
    res = minimize_batch(lm, loss, [1.0, 1.0], (t, y))
    assert res.info["method"] == "lm_hessian"
    assert np.all(res.x[:, 0] <= 1.2) and np.all(res.x[:, 1] >= 0.0)
    assert (res.x[:, 0] == 1.2).any()  # the bound holds some members


def test_a_start_outside_the_bounds_is_a_clear_error(decay):
    t, y = decay["t"][:4], decay["y"][:4]
    loss = LeastSquares(
        problems.decay_residuals, params={"a": {"value": 1.0, "upper": 2.0}, "k": 1.0}
    )
    x0 = np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 1.0], [2.5, 1.0]])
    with pytest.raises(ValueError, match=r"member\(s\) 'b', 'd' lie outside the bounds"):
        minimize_batch(LevenbergMarquardt(), loss, x0, (t, y), ids=list("abcd"))


def test_a_numpy_member_fit_uses_the_users_jacobian(decay):
    rng = np.random.default_rng(4)
    t = np.broadcast_to(np.linspace(0.0, 3.0, 8), (3, 8)).copy()
    y = 2.0 * np.exp(-0.7 * t) + 0.01 * rng.normal(size=t.shape)
    calls = []

    def jacobian(p, t, y):
        calls.append(1)
        e = np.exp(-p[1] * t)
        return np.column_stack([-e, p[0] * t * e])

    loss = LeastSquares(problems.decay_residuals_numpy, jacobian=jacobian)
    res = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y))
    assert res.info["method"] == "each" and res.valid.all()
    assert len(calls) == sum(r.info["njac"] for r in res) > 0
    # a member with missing points: its rows of the user's Jacobian are masked, not dropped
    y[1, 2] = np.nan
    calls.clear()
    masked = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y))
    assert masked.valid.all() and len(calls) == sum(r.info["njac"] for r in masked) > 0
    kept = ~np.isnan(y[1])
    alone = LevenbergMarquardt(tol=TOL).minimize(
        LeastSquares(problems.decay_residuals_numpy, args=(t[1][kept], y[1][kept])), [1.0, 1.0]
    )
    np.testing.assert_allclose(masked.x[1], alone.x, rtol=1e-8)


def test_names_and_bounds_come_from_the_loss(decay):
    t, y = decay["t"], decay["y"]
    params = {"amplitude": {"value": 1.0, "upper": 1.8}, "rate": {"value": 1.0, "lower": 0.0}}
    loss = LeastSquares(problems.decay_residuals, params=params)
    res = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y), chunk_size=CHUNK)
    assert res.names == ("amplitude", "rate")
    assert np.all(res.x[:, 0] <= 1.8) and np.all(res.x[:, 1] >= 0.0)
    capped = res.x[:, 0] >= 1.8 - 1e-12
    assert capped.any() and (~capped).any()
    assert not res.valid[capped].any() and res.valid[~capped].all()
    assert res[int(np.flatnonzero(capped)[0])].params_at_limit == ["amplitude"]
    free = int(np.flatnonzero(~capped)[0])
    np.testing.assert_allclose(res.x[free], single_fit(t[free], y[free], [1.0, 1.0]).x, rtol=1e-8)


def test_numpy_ops_vmap_maps_like_jax_vmap():
    """The eager ops' vmap (a loop) and JAX's agree: named tuples in, tuples out, shared args."""
    from zfitlite.backends import get_backend
    from zfitlite.backends.ops import numpy_ops
    from zfitlite.solvers.lm_least_squares import LSQSettings

    def member(x, cfg, scale):
        return (x * cfg.factor + scale, jnp.sum(x) if isinstance(x, jnp.ndarray) else np.sum(x))

    x = np.arange(6.0).reshape(3, 2)
    cfg = LSQSettings(*(np.full(3, float(k)) for k in range(9)))
    eager = numpy_ops.vmap(member, in_axes=(0, 0, None))(x, cfg, 0.5)
    jitted = get_backend("jax").ops.vmap(member, in_axes=(0, 0, None))(x, cfg, 0.5)
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, np.asarray(b))
    np.testing.assert_allclose(eager[0], x * 5.0 + 0.5)
    with pytest.raises(ValueError, match="one leading size"):
        numpy_ops.vmap(member, in_axes=(0, 0, None))(x, LSQSettings(*([np.ones(2)] * 9)), 0.5)


def test_ctrl_c_stops_a_member_by_member_batch():
    """An interrupt in member 2's fit stops the batch; the loss and minimizer stay usable."""
    t = np.tile(np.linspace(0.0, 4.0, 12), (5, 1))
    member = np.arange(5.0)[:, None]
    y = (2.0 + member) * np.exp(-(1.0 + 0.1 * member) * t)  # y[i, 0] = 2 + i names the member
    seen: list[int] = []
    armed = [10**9]

    def residuals(p, t, y):
        seen.append(round(float(y[0])) - 2)
        if len(seen) == armed[0]:
            raise KeyboardInterrupt
        return problems.decay_residuals_numpy(p, t, y)

    lm = LevenbergMarquardt(tol=TOL)
    clean = minimize_batch(lm, LeastSquares(residuals, backend="numpy"), [1.0, 1.0], (t, y))
    assert clean.valid.all()
    calls_before_member_2 = seen.index(2)
    seen.clear()
    armed[0] = calls_before_member_2 + 4  # inside member 2's fit
    with pytest.raises(KeyboardInterrupt, match=r"at member 2 \(2 of 5 done\)"):
        minimize_batch(lm, LeastSquares(residuals, backend="numpy"), [1.0, 1.0], (t, y))
    assert max(seen) == 2  # members 3 and 4 never started
    armed[0] = 10**9
    again = minimize_batch(lm, LeastSquares(residuals, backend="numpy"), [1.0, 1.0], (t, y))
    np.testing.assert_array_equal(again.x, clean.x)


def test_an_accelerator_gets_one_large_chunk_and_no_threads(monkeypatch):
    """On a GPU one large program beats many small ones (H200: 10^6 fits 8.4 s in chunks of
    2,048, 3.1 s in one), and threads would only split it."""
    from zfitlite.batch import executors

    assert executors._default_chunk(5000, None, 1) == 1728  # CPU: three equal chunks
    assert executors._default_chunk(5000, None, 1, accelerator=True) == 5120
    assert executors._default_chunk(10, None, 1, accelerator=True) == 1024
    assert executors._default_chunk(3 * 2**20, None, 1, accelerator=True) == 2**20
    monkeypatch.setattr(executors, "on_accelerator", lambda: False)
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 4)
    assert executors._local_threads(True, 10_000) == 4
    monkeypatch.setattr(executors, "on_accelerator", lambda: True)
    assert executors._local_threads(True, 10_000) == 1


def test_on_an_accelerator_a_chunk_runs_uninterrupted(monkeypatch, decay):
    """No rounds and no regrouping on a GPU (H200, 10^5 fits: 0.45 s in rounds, 0.047 s
    uninterrupted); the members are the same as in rounds on the CPU."""
    from zfitlite.batch import vectorised

    t, y = decay["t"][:40], decay["y"][:40]
    loss = LeastSquares(problems.decay_residuals)
    cpu = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y))
    monkeypatch.setattr(vectorised, "on_accelerator", lambda: True)
    gpu = minimize_batch(LevenbergMarquardt(tol=TOL), loss, [1.0, 1.0], (t, y))
    assert cpu.info["rounds"] > 1  # the CPU regroups these
    assert gpu.info["rounds"] == 1 and gpu.info["pooled"] == 0
    np.testing.assert_array_equal(gpu.niter, cpu.niter)
    np.testing.assert_allclose(gpu.x, cpu.x, rtol=1e-10)
