"""Batches robust to stragglers: finished members stop costing, results do not change.

A chunk runs a bounded number of steps, then its unfinished members are regrouped into a
smaller group (:data:`zfitlite.batch.vectorised.COMPACT_SIZES`) and continue; the last
ones of every chunk finish together. Each member must take exactly the steps it takes in
one uninterrupted vectorised solve, and its own ``maxiter`` budget.
"""

from __future__ import annotations

import numpy as np
import pytest

jnp = pytest.importorskip("jax.numpy")

import zfitlite  # noqa: E402
from zfitlite.batch import vectorised  # noqa: E402
from zfitlite.minimize import LevenbergMarquardt  # noqa: E402
from zfitlite.status import Status  # noqa: E402

# y = b1 (1 - exp(-b2 x)) (NIST Misra1a's model) from the start (250, 5e-4): points at small
# x leave b1 and b2 nearly degenerate, and a few members need many iterations.
SLOW = (  # more than 3,000 iterations with the default budget: MAXITER with a small one
    [14.3, 142.7, 21.6, 41.4, 135.5],
    [2.02, 18.28, 2.6, 5.26, 16.98],
)
MEDIUM = (  # 52 iterations: several rounds, then converged
    [310.1, 374.1, 280.7, 24.3, 372.1, 347.4, 364.3, 351.2],
    [37.27, 44.55, 33.7, 3.19, 44.4, 41.6, 43.27, 41.69],
)
START = [250.0, 5e-4]


def _residuals(p, x, y):
    return y - p[0] * (1.0 - jnp.exp(-p[1] * x))


def _data(batch: int, slow: tuple[int, ...], medium: tuple[int, ...]):
    """``batch`` members of up to 8 points (NaN-padded); ``slow``/``medium`` rows replaced."""
    rng = np.random.default_rng(3)
    x = np.full((batch, 8), np.nan)
    y = np.full((batch, 8), np.nan)
    for i in range(batch):
        k = int(rng.integers(5, 9))
        x[i, :k] = np.sort(rng.uniform(50.0, 800.0, k))
        y[i, :k] = 238.94 * (1 - np.exp(-5.5e-4 * x[i, :k])) + rng.normal(0.0, 0.2, k)
    for rows, (xs, ys) in ((slow, SLOW), (medium, MEDIUM)):
        for i in rows:
            x[i], y[i] = np.nan, np.nan
            x[i, : len(xs)], y[i, : len(ys)] = xs, ys
    return x, y


def _fit(x, y, chunk: int):
    return zfitlite.minimize_batch(
        LevenbergMarquardt(tol=1e-12, maxiter=400),
        zfitlite.LeastSquares(_residuals),
        START,
        (x, y),
        chunk_size=chunk,
    )


def _assert_same(a, b) -> None:
    np.testing.assert_allclose(a.x, b.x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.fmin, b.fmin, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(a.edm, b.edm, rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(a.niter, b.niter)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a._extra["nfev"], b._extra["nfev"])
    np.testing.assert_array_equal(a._extra["njev"], b._extra["njev"])


def test_stragglers_are_regrouped_and_results_do_not_change(monkeypatch):
    slow, medium = (5, 40), (17,)
    x, y = _data(48, slow, medium)
    # chunks of 32: the second chunk is padded; both have a slow member
    res = _fit(x, y, 32)
    assert res.info["method"] == "lm"
    assert res.info["compactions"] >= 1 and res.info["rounds"] > res.info["nchunks"]
    assert res.info["pooled"] >= 2  # the slow members of both chunks finish in one group
    # the maxiter budget (400 evaluations) is each member's own: only the slow ones hit it
    expected = np.full(48, int(Status.CONVERGED))
    expected[list(slow)] = int(Status.MAXITER)
    np.testing.assert_array_equal(res.status, expected)
    assert np.all(res._extra["nfev"][list(slow)] + res._extra["njev"][list(slow)] >= 400)
    assert res.niter[medium[0]] > vectorised.ROUND_STEPS
    assert np.all(np.delete(res.niter, [*slow, *medium]) < vectorised.ROUND_STEPS)
    assert res.valid.sum() == 48 - len(slow)
    # the same batch without regrouping: every member runs until the slowest has stopped
    monkeypatch.setattr(vectorised, "COMPACT_SIZES", ())
    plain = _fit(x, y, 32)
    assert plain.info["compactions"] == 0 and plain.info["rounds"] == plain.info["nchunks"]
    _assert_same(res, plain)


def test_a_regrouped_member_equals_its_solve_in_a_group_of_its_own():
    """Member by member: the medium member fitted with the batch and in a batch of 8 copies."""
    x, y = _data(32, (), (9,))
    res = _fit(x, y, 32)
    assert res.info["compactions"] >= 1
    alone = _fit(np.repeat(x[9:10], 8, axis=0), np.repeat(y[9:10], 8, axis=0), 8)
    assert alone.info["compactions"] == 0
    np.testing.assert_allclose(res.x[9], alone.x[0], rtol=1e-12, atol=0)
    assert res.niter[9] == alone.niter[0] > vectorised.ROUND_STEPS
    assert res.status[9] == alone.status[0] == int(Status.CONVERGED)
