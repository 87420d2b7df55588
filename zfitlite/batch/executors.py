"""Chunks of a batch on this thread, local threads, an executor or a Dask client."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._progress import make_bar, should_show
from .members import _solve_each
from .problem import _Problem
from .vectorised import _begin, _end, _pool, _serial, _solve_vectorised, on_accelerator

#: Batches at least this large show a progress bar (when stderr is a terminal).
PROGRESS_MIN_SIZE = 1000

#: Members per vectorised solve when no executor is given.
DEFAULT_CHUNK = 2048
#: The same on an accelerator (GPU, TPU), where one large program beats many small ones:
#: on an H200, 10^6 decay fits took 8.4 s in chunks of 2,048 and 3.1 s in one chunk.
ACCELERATOR_CHUNK = 1 << 20
#: Chunk sizes on an accelerator are multiples of this (few distinct programs, little padding).
ACCELERATOR_ROUND = 1024

#: Without an executor, a vectorised batch of at least this many members runs its chunks
#: on one thread per CPU core (XLA releases the GIL; one program alone keeps about 1.6
#: of 2 cores busy, two at once all of them).
THREADED_MIN_SIZE = 1024


def _solve_chunk(problem: _Problem, x0: np.ndarray, data: tuple, ids: Sequence[Any]) -> dict:
    """Solve one chunk (runs on a worker); returns its ids with the results, in order."""
    if problem.method == "each":
        out = _solve_each(problem, x0, data, ids)
    else:
        out = _solve_vectorised(problem, x0, data)
    out["ids"] = list(ids)
    return out


def _is_dask_client(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "submit")


def _executor_workers(executor: Any) -> int:
    if _is_dask_client(executor):
        try:
            return max(1, sum(executor.nthreads().values()))
        except Exception:
            return 4
    return int(getattr(executor, "_max_workers", 4) or 4)


def _show_progress(progress: bool | None, size: int) -> bool:
    """Forced by ``progress``; else automatic (:mod:`zfitlite._progress`) for large batches."""
    if progress is not None:
        return bool(progress)
    return size >= PROGRESS_MIN_SIZE and should_show(None)


def _run_chunks(
    problem: _Problem,
    x0: np.ndarray,
    data: tuple,
    ids: list,
    bounds: list[tuple[int, int]],
    executor: Any,
    progress: bool,
) -> list[dict]:
    bar = make_bar(progress, total=x0.shape[0], unit="fit", desc="minimize_batch", leave=True)

    def args_of(lo: int, hi: int) -> tuple:
        return problem, x0[lo:hi], tuple(a[lo:hi] for a in data), ids[lo:hi]

    outs: list[dict] = []
    threads = _local_threads(problem.method != "each", x0.shape[0]) if executor is None else 1
    try:
        if executor is None and problem.method != "each":
            outs = _run_local_vectorised(problem, args_of, bounds, threads, bar)
        elif executor is None and (threads == 1 or len(bounds) == 1):
            for lo, hi in bounds:
                outs.append(_solve_chunk(*args_of(lo, hi)))
                bar.update(hi - lo)
        elif executor is None:
            # the first chunk alone (it compiles the program), the others on the cores
            (lo, hi), rest = bounds[0], bounds[1:]
            outs.append(_solve_chunk(*args_of(lo, hi)))
            bar.update(hi - lo)
            pool = ThreadPoolExecutor(threads)
            try:
                futures = [pool.submit(_solve_chunk, *args_of(lo, hi)) for lo, hi in rest]
                for fut, (lo, hi) in zip(futures, rest):
                    outs.append(fut.result())
                    bar.update(hi - lo)
            finally:  # after a failure, the chunks not started yet are not run
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            if _is_dask_client(executor):
                futures = [
                    executor.submit(_solve_chunk, *args_of(lo, hi), pure=False) for lo, hi in bounds
                ]
            else:
                futures = [executor.submit(_solve_chunk, *args_of(lo, hi)) for lo, hi in bounds]
            for fut, (lo, hi) in zip(futures, bounds):
                outs.append(fut.result())
                bar.update(hi - lo)
    finally:
        bar.close()
    for out, (lo, hi) in zip(outs, bounds):
        if out["ids"] != ids[lo:hi]:  # pragma: no cover - a broken executor
            raise RuntimeError(f"chunk {lo}:{hi} came back with the wrong members")
    return outs


def _run_local_vectorised(
    problem: _Problem, args_of: Any, bounds: list[tuple[int, int]], threads: int, bar: Any
) -> list[dict]:
    """The chunks of a vectorised batch in this process: each runs its first round (the
    first chunk alone: it compiles; the others on ``threads`` threads), then the members
    still running in any chunk go on pooled (:func:`~.vectorised._pool`, its groups on the
    same threads), then each chunk's final step."""

    def begin(lo: int, hi: int) -> Any:
        problem_, x0, data, _ = args_of(lo, hi)
        return _begin(problem_, x0, data)

    chunks = [begin(*bounds[0])]
    bar.update(bounds[0][1] - bounds[0][0])
    rest = bounds[1:]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        if pool is None:
            runner = _serial
            for lo, hi in rest:
                chunks.append(begin(lo, hi))
                bar.update(hi - lo)
        else:

            def runner(fn: Any, calls: list) -> list:
                return list(pool.map(lambda c: fn(*c), calls))

            futures = [pool.submit(begin, lo, hi) for lo, hi in rest]
            for fut, (lo, hi) in zip(futures, rest):
                chunks.append(fut.result())
                bar.update(hi - lo)
        _pool(chunks, runner, threads)
        ends = runner(_end, [(c,) for c in chunks])
    finally:  # after a failure, the chunks not started yet are not run
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    outs = []
    for out, (lo, hi) in zip(ends, bounds):
        out["ids"] = args_of(lo, hi)[3]
        outs.append(out)
    return outs


def _local_threads(vectorised: bool, batch: int) -> int:
    """Threads for the chunks of a batch run without an executor (vectorised ones only)."""
    if not vectorised or batch < THREADED_MIN_SIZE or on_accelerator():
        return 1  # an accelerator runs one large chunk (ACCELERATOR_CHUNK)
    return max(1, min(os.cpu_count() or 1, 8))


def _default_chunk(batch: int, executor: Any, threads: int = 1, accelerator: bool = False) -> int:
    """Members per chunk: few distinct sizes, so batches of similar size share programs.

    Up to :data:`DEFAULT_CHUNK` members (:data:`ACCELERATOR_CHUNK` for a vectorised solve
    on an accelerator without an executor; with one local thread; else about two chunks
    per thread or executor worker) the size is the next power of two; above, equal chunks
    rounded up to 64.
    """
    cap = ACCELERATOR_CHUNK if accelerator and executor is None else DEFAULT_CHUNK
    target = batch
    if executor is not None:
        target = math.ceil(batch / (2 * _executor_workers(executor)))
    elif threads > 1:
        target = math.ceil(batch / (2 * threads))
    if accelerator and executor is None and target <= cap:
        # a multiple of 1024, not the next power of two: padded lanes cost the accelerator
        # real time (H200, 10^5 fits: 0.058 s padded to 2^17, 0.040 s in an exact chunk)
        return ACCELERATOR_ROUND * math.ceil(max(target, 1) / ACCELERATOR_ROUND)
    if target <= cap:
        return 1 << max(0, math.ceil(math.log2(max(target, 1))))
    nchunks = math.ceil(target / cap)
    return 64 * math.ceil(math.ceil(target / nchunks) / 64)
