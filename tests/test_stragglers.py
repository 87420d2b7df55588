"""Batches robust to stragglers: finished members stop costing, results do not change.

A chunk runs a bounded number of steps (:data:`zfitlite.batch.vectorised.ROUND_STEPS`),
then the members still running in any chunk are pooled and go on in regrouped rounds, the
last few one after the other in the sequential program. Each member must take exactly the
steps it takes in one uninterrupted vectorised solve, and its own ``maxiter`` budget.
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


def _assert_same(a, b, loose=()) -> None:
    """The same steps for every member; the same numbers, except for the members
    ``loose``: those stopped by their budget in a flat valley, where the sequential tail's
    unbatched code (rounding differently in the last bit from the vectorised one) has
    drifted along the valley by about 1e-8 after a few hundred steps."""
    np.testing.assert_array_equal(a.niter, b.niter)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a._extra["nfev"], b._extra["nfev"])
    np.testing.assert_array_equal(a._extra["njev"], b._extra["njev"])
    tight = np.setdiff1d(np.arange(len(a.x)), loose)
    np.testing.assert_allclose(a.x[tight], b.x[tight], rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.fmin[tight], b.fmin[tight], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(a.edm[tight], b.edm[tight], rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(a.x[loose], b.x[loose], rtol=1e-7, atol=0)
    np.testing.assert_allclose(a.fmin[loose], b.fmin[loose], rtol=1e-9, atol=0)


def test_stragglers_are_regrouped_and_results_do_not_change(monkeypatch):
    slow, medium = (5, 40), (17,)
    x, y = _data(48, slow, medium)
    # chunks of 32: the second chunk is padded; both have a slow member
    res = _fit(x, y, 32)
    assert res.info["method"] == "lm"
    assert res.info["rounds"] > res.info["nchunks"]
    # the members the first rounds left running, from both chunks, finished pooled; the
    # slow ones in the sequential tail
    assert res.info["pooled"] >= 3 and res.info["tail"] >= 2
    # the maxiter budget (400 evaluations) is each member's own: only the slow ones hit it
    expected = np.full(48, int(Status.CONVERGED))
    expected[list(slow)] = int(Status.MAXITER)
    np.testing.assert_array_equal(res.status, expected)
    assert np.all(res._extra["nfev"][list(slow)] + res._extra["njev"][list(slow)] >= 400)
    np.testing.assert_array_equal(res.niter[list(slow)], [183, 183])
    assert res.niter[medium[0]] == 52 > vectorised.ROUND_STEPS
    assert np.all(np.delete(res.niter, [*slow, *medium]) < vectorised.ROUND_STEPS)
    assert res.valid.sum() == 48 - len(slow)
    # the same batch without regrouping: every member runs until the slowest has stopped
    monkeypatch.setattr(vectorised, "ROUND_STEPS", None)
    plain = _fit(x, y, 32)
    assert plain.info["rounds"] == plain.info["nchunks"]
    assert plain.info["compactions"] == plain.info["pooled"] == plain.info["tail"] == 0
    _assert_same(res, plain, loose=list(slow))


def _uninterrupted_then_rounds(monkeypatch) -> tuple:
    """The 48-member batch with two slow members solved without rounds (``ROUND_STEPS =
    None``), then rounds switched back on: ``(x, y, that result, the slow rows)``."""
    slow, medium = (5, 40), (17,)
    x, y = _data(48, slow, medium)
    monkeypatch.setattr(vectorised, "ROUND_STEPS", None)
    plain = _fit(x, y, 32)
    monkeypatch.setattr(vectorised, "ROUND_STEPS", 8)
    return x, y, plain, slow


def test_without_the_sequential_tail_the_results_are_the_same_bits(monkeypatch):
    """As on an accelerator with many members left: the pooled groups of the chunk size
    run to their end, and a member gives the same bits in any lane of the same vectorised
    program."""
    x, y, plain, _ = _uninterrupted_then_rounds(monkeypatch)
    monkeypatch.setattr(vectorised, "_sequential_tail_pays", lambda: False)
    monkeypatch.setattr(vectorised, "ACCELERATOR_TAIL", 0)
    res = _fit(x, y, 32)
    assert res.info["tail"] == 0 and res.info["compactions"] == 1 and res.info["pooled"] >= 3
    _assert_same(res, plain)


def test_on_an_accelerator_the_last_stragglers_finish_on_the_host(monkeypatch):
    """A first program of ACCELERATOR_STEPS, then the three members still running finish in
    the sequential program on the host CPU (``jax.default_device(cpu)``): the same steps
    and statuses as one uninterrupted solve."""
    x, y, plain, slow = _uninterrupted_then_rounds(monkeypatch)
    monkeypatch.setattr(vectorised, "on_accelerator", lambda: True)
    hosts = []
    on_host = vectorised._on_host
    monkeypatch.setattr(vectorised, "_on_host", lambda: hosts.append(1) or on_host())
    res = _fit(x, y, 32)
    # the slow members and the medium one (52 iterations, more loop steps) go to the host
    assert res.info["pooled"] == res.info["tail"] == 3 and res.info["compactions"] == 0
    assert hosts  # the tail ran in the host's context
    _assert_same(res, plain, loose=list(slow))


def test_on_an_accelerator_without_a_host_backend_the_device_finishes(monkeypatch):
    """``JAX_PLATFORMS=cuda`` leaves JAX without a CPU backend: the members still running
    after the first program then go on to their end on the device, in one program."""
    import jax

    x, y, plain, _ = _uninterrupted_then_rounds(monkeypatch)
    monkeypatch.setattr(vectorised, "on_accelerator", lambda: True)
    devices = jax.devices

    def no_cpu(backend=None):
        if backend == "cpu":
            raise RuntimeError("Unknown backend: 'cpu' requested, but no platforms are 'cpu'")
        return devices(backend)

    monkeypatch.setattr(jax, "devices", no_cpu)
    assert vectorised._on_host() is None
    res = _fit(x, y, 32)
    assert res.info["pooled"] == 3 and res.info["tail"] == 0 and res.info["compactions"] == 1
    _assert_same(res, plain)  # the same vectorised program: the same bits


def test_a_regrouped_member_equals_its_solve_in_a_group_of_its_own(monkeypatch):
    """Member by member: the medium member fitted with the batch (it finishes in the
    sequential tail) and in a batch of 8 copies run in one uninterrupted call."""
    x, y = _data(32, (), (9,))
    res = _fit(x, y, 32)
    assert res.info["tail"] >= 1 and res.niter[9] > vectorised.ROUND_STEPS
    monkeypatch.setattr(vectorised, "ROUND_STEPS", None)
    alone = _fit(np.repeat(x[9:10], 8, axis=0), np.repeat(y[9:10], 8, axis=0), 8)
    assert alone.info["compactions"] == alone.info["tail"] == 0
    np.testing.assert_allclose(res.x[9], alone.x[0], rtol=1e-12, atol=0)
    assert res.niter[9] == alone.niter[0]
    assert res.status[9] == alone.status[0] == int(Status.CONVERGED)


def test_groups_are_dealt_out_and_padded_with_stopped_lanes():
    """The host bookkeeping of the pooled rounds (numpy only)."""
    from zfitlite.solvers.lm_least_squares import LSQState

    # at least ``parts`` groups of at most ``size``, members dealt out in turn
    groups = vectorised._split(np.arange(10), 4)
    assert [g.tolist() for g in groups] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [g.tolist() for g in vectorised._split(np.array([7, 9, 11]), 16, 2)] == [[7, 11], [9]]
    assert [g.tolist() for g in vectorised._split(np.array([4]), 16, 8)] == [[4]]
    # a group of 4 from rows 2 and 0: two real lanes, two stopped copies of row 2
    n = 3
    state = LSQState(*[np.arange(n, dtype=float) * (k + 1) for k in range(len(LSQState._fields))])
    state = state._replace(status=np.full(n, -1), niter=np.arange(n) + 10)
    args = (np.arange(n * 2.0).reshape(n, 2),)
    group, gargs, gnobs = vectorised._group(
        state, args, np.array([5.0, 6.0, 7.0]), np.array([2, 0]), 4
    )
    assert group.niter.tolist() == [12, 10, 12, 12]
    assert group.status.tolist() == [-1, -1, int(Status.CONVERGED), int(Status.CONVERGED)]
    assert state.status.tolist() == [-1, -1, -1]  # the pooled state is not touched
    assert gargs[0].tolist() == [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0], [4.0, 5.0]]
    assert gnobs.tolist() == [7.0, 5.0, 7.0, 7.0]


def test_sequential_and_finishing_programs_compile_ahead_once():
    """The batch's first call compiles the sequential and finishing programs on a helper
    thread while the vectorised one compiles (:func:`~zfitlite.batch.vectorised._compile_ahead`):
    each of the four programs is compiled exactly once (none again by the call that uses
    it), and a second batch starts no new compile."""
    from jax._src import dispatch, monitoring

    from zfitlite.backends.ops import BATCH_CACHE_ATTR

    def residuals(p, x, y):  # a fresh function: nothing compiled for it yet
        return y - p[0] * (1.0 - jnp.exp(-p[1] * x))

    compiled: list[str] = []

    def listen(event: str, duration: float, **kw) -> None:
        if event == dispatch.BACKEND_COMPILE_EVENT:
            compiled.append(kw.get("fun_name", ""))

    monitoring.register_event_duration_secs_listener(listen)
    x, y = _data(48, (5, 40), (17,))
    loss = zfitlite.LeastSquares(residuals)
    minimizer = LevenbergMarquardt(tol=1e-12, maxiter=400)
    try:
        first = zfitlite.minimize_batch(minimizer, loss, START, (x, y), chunk_size=32)
        programs = {f"jit({n})" for n in ("start", "step_on", "one_by_one", "finish")}
        names = sorted(n for n in compiled if n in programs)
        again = zfitlite.minimize_batch(minimizer, loss, START, (x, y), chunk_size=32)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert first.info["tail"] >= 2  # the sequential program was used
    assert names == sorted(programs)  # each once, none again by the call that uses it
    assert len(compiled) == len(names)  # and nothing else, also not by the second batch
    futures = [v for k, v in getattr(residuals, BATCH_CACHE_ATTR).items() if "ahead" in k]
    assert len(futures) == 1 and futures[0].done() and futures[0].exception() is None
    _assert_same(first, again)
