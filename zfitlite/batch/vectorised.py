"""The vectorised solves: a minimizer's native core mapped over a chunk with ``vmap``.

The single-problem solver (:class:`~zfitlite.solvers.lm_least_squares.LSQSolver`,
:class:`~zfitlite.solvers.bfgs_native.BFGSSolver`) runs through the one driver's resumable
loop (:func:`zfitlite.solvers.driver.advance`), mapped over the members with the backend's
``vmap`` and compiled once with its ``jit``. Under ``vmap`` every lane computes every step
until the group's slowest member stops, so a chunk runs a short first round
(:data:`ROUND_STEPS`), the members still running in any chunk are pooled and regrouped
into full groups of the chunk size after every round, and the last few
(``chunk // TAIL_FRACTION``) finish one after the other in the same loop without ``vmap``
(``lax.map``), where each costs its own steps only. Four programs per function and chunk
size (start, step_on, one_by_one, finish), the sequential one shared by all chunk sizes;
at the first call the last two compile on a helper thread while the vectorised one
compiles (:func:`_compile_ahead`).
That is on a CPU. On an accelerator (GPU, TPU) a step costs about the same for one lane as
for all of them and a round trip to the host costs more than the steps it saves, so a chunk
runs one long first program there (:data:`ACCELERATOR_STEPS`; chunks are large:
``ACCELERATOR_CHUNK``); the few members still running after it (at most
:data:`ACCELERATOR_TAIL`) finish in the sequential program on the host CPU, where a
member needing thousands of steps costs milliseconds instead of holding the device.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._composite import observed_in_member
from ..backends.ops import BATCH_CACHE_ATTR, remembered, remembered_jit
from ..solvers.driver import advance, pack, unpack
from .problem import _prepare_member, _Problem


def _masked(ops: Any, func: Callable) -> Callable:
    """``(x, mask, *data) -> residuals`` with masked (missing) entries set to 0.

    Remembered on ``func`` so that the compiled batch solver keyed on it is reused.
    """
    xp = ops.xp

    def build() -> Callable:
        def masked(x: Any, mask: Any, *data: Any) -> Any:
            r = xp.reshape(func(x, *data), (-1,))
            return xp.where(mask, 0.0, r)

        def value(x: Any, args: tuple) -> Any:
            r = masked(x, *args)
            return r @ r

        masked.value = value  # type: ignore[attr-defined]
        return masked

    return remembered(func, BATCH_CACHE_ATTR, ops.name, build)


def _scalar_value(ops: Any, func: Callable) -> Callable:
    """``(x, args) -> func(x, *args)`` as a scalar, remembered on ``func``."""
    xp = ops.xp

    def build() -> Callable:
        def value(x: Any, args: tuple) -> Any:
            return xp.reshape(func(x, *args), ())

        return value

    return remembered(func, BATCH_CACHE_ATTR, ops.name + ":scalar", build)


#: Loop steps of a round: a chunk's first round, and each round of the groups its unfinished
#: members are pooled into (a round in which they did not halve is followed by one twice as
#: long). ``None``: every chunk runs to its end in one call (no regrouping).
ROUND_STEPS: int | None = 8

#: Chunks of at most this many members run to their end in one call: their stragglers cost
#: little, less than compiling the sequential program would.
SMALL_CHUNK = 8

#: The pooled rounds go on while more than ``chunk // TAIL_FRACTION`` members run; the rest
#: finish one after the other in the sequential program (:func:`_programs`' ``one_by_one``),
#: where a member costs only its own steps.
TAIL_FRACTION = 4

#: Members per call of the sequential program: fixed, so it compiles once per function
#: whatever the chunk size.
TAIL_SIZE = 16

#: Steps of the sequential program's first call; the members still running after it (the
#: slowest few) are dealt out again over the threads, a few per call.
TAIL_STEPS = 64

#: On an accelerator a chunk runs this many loop steps in its first program (decay fits end
#: within it: median 5-6 steps); a step there costs about the same for one lane or all
#: of them, so a member needing thousands of steps would hold the whole chunk (H200,
#: 10^4 members of which 4 need ~3,000 steps: 1.7 s uninterrupted).
ACCELERATOR_STEPS = 64

#: After :data:`ACCELERATOR_STEPS`, at most this many members still running finish on the
#: host CPU in the sequential program (a few µs per step there, against a kernel launch
#: per operation on the device); more than this go on, uninterrupted, on the device.
ACCELERATOR_TAIL = 256

_NO_LIMIT = np.iinfo(np.int32).max


def _lm_prepare(static: tuple, x0: Any, data: tuple, ops: Any) -> tuple:
    """A member's solver arguments ``(mask, *filled data)``, its mask and observed count."""
    func = static[2]
    mask, filled = _prepare_member(ops, func, x0, data)
    return (mask, *filled), mask, observed_in_member(ops.xp, func, mask, filled)


def _lm_solver(static: tuple, lower: Any, upper: Any, cfg: Any, nobs: Any, ops: Any) -> Any:
    from ..solvers.lm_least_squares import LSQSolver

    fns, geodesic, _, bounded = static
    return LSQSolver(fns, ops, lower, upper, cfg._replace(nobs=nobs * 1.0), geodesic, bounded)


def _value_solver(method: str, fns: Any, ops: Any, lower: Any, upper: Any, cfg: Any) -> Any:
    """The native solver of a method that works on the loss value (BFGS, damped Newton)."""
    if method == "bfgs":
        from ..solvers.bfgs_native import BFGSSolver

        return BFGSSolver(fns, ops, cfg)
    from ..solvers.levenberg_marquardt import LMSolver

    return LMSolver(fns, ops, lower, upper, cfg)


def _value_prepare(static: tuple, x0: Any, data: tuple, ops: Any) -> tuple:
    """A member's loss arguments (missing points masked for a least-squares loss)."""
    _, kind, func, _ = static
    xp = ops.xp
    if kind == "lsq":
        mask, filled = _prepare_member(ops, func, x0, data)
        return (mask, *filled), mask, observed_in_member(xp, func, mask, filled)
    return data, xp.zeros((0,), dtype=bool), xp.asarray(-1)


def _value_member_solver(
    static: tuple, lower: Any, upper: Any, cfg: Any, nobs: Any, ops: Any
) -> Any:
    fns, _, _, method = static
    return _value_solver(method, fns, ops, lower, upper, cfg)


def _programs(ops: Any, prepare: Callable, make_solver: Callable, static: tuple) -> tuple:
    """The four programs of a resumable batch solve (uncompiled).

    ``start(x0, lo, hi, cfg, data) -> (state, args, mask, nobs)``; ``step_on(state, lo, hi,
    cfg, args, nobs, steps) -> state`` (at most ``steps`` more steps per member, see
    :func:`~zfitlite.solvers.driver.advance`, all members in lockstep under ``vmap``);
    ``one_by_one`` (same arguments): the same for one member after the other (``lax.map``
    of the unbatched loop, where a member costs its own steps only, not the slowest
    one's); ``finish(state, lo, hi, cfg, args, nobs) -> packed outcome``. Each member's
    solver is ``make_solver(static, lo, hi, cfg, nobs, ops)``.
    """

    def start(x0: Any, lo: Any, hi: Any, cfg: Any, data: tuple) -> tuple:
        def one(x0_: Any, data_: tuple) -> tuple:
            args, mask, nobs = prepare(static, x0_, data_, ops)
            state = make_solver(static, lo, hi, cfg, nobs, ops).init(x0_, args)
            return state, args, mask, nobs

        # strong types: the state comes back from the host (numpy) as the same program input
        out = ops.vmap(one, in_axes=(0, 0))(x0, data)
        return _tree(lambda a: ops.xp.asarray(a, dtype=a.dtype), out)

    def step_on(st: Any, lo: Any, hi: Any, cfg: Any, args: tuple, nobs: Any, steps: Any) -> Any:
        def one(st_: Any, args_: tuple, nobs_: Any) -> Any:
            return advance(make_solver(static, lo, hi, cfg, nobs_, ops), st_, args_, steps)

        return ops.vmap(one, in_axes=(0, 0, 0))(st, args, nobs)

    def one_by_one(st: Any, lo: Any, hi: Any, cfg: Any, args: tuple, nobs: Any, steps: Any) -> Any:
        from ..backends.jax_backend import import_jax

        def one(member: tuple) -> Any:
            st_, args_, nobs_ = member
            return advance(make_solver(static, lo, hi, cfg, nobs_, ops), st_, args_, steps)

        return import_jax().lax.map(one, (st, args, nobs))

    def finish(st: Any, lo: Any, hi: Any, cfg: Any, args: tuple, nobs: Any) -> tuple:
        def one(st_: Any, args_: tuple, nobs_: Any) -> tuple:
            solver = make_solver(static, lo, hi, cfg, nobs_, ops)
            return pack(ops.xp, solver.postprocess(st_, args_))

        return ops.vmap(one, in_axes=(0, 0, 0))(st, args, nobs)

    return start, step_on, one_by_one, finish


#: ``runner(fn, calls)``: ``[fn(*c) for c in calls]``, possibly on several threads, in order.
Runner = Callable[[Callable[..., Any], list], list]


def _serial(fn: Callable[..., Any], calls: list) -> list:
    """The :data:`Runner` of one thread."""
    return [fn(*c) for c in calls]


def _tree(fn: Callable, *trees: Any) -> Any:
    """``fn`` on the arrays of (named) tuples of arrays, keeping the structure."""
    first = trees[0]
    if isinstance(first, tuple):
        parts = [_tree(fn, *leaves) for leaves in zip(*trees)]
        return type(first)(*parts) if hasattr(first, "_fields") else tuple(parts)
    return fn(*trees)


def _take_rows(tree: Any, rows: np.ndarray) -> Any:
    """New host arrays of the ``rows`` of a tree of (host or device) arrays."""
    return _tree(lambda a: np.asarray(a)[rows], tree)


def _put_rows(dst: Any, rows: np.ndarray, src: Any) -> None:
    """``dst[rows] = src`` on every array of two trees (``dst`` on the host, writable)."""

    def put(d: np.ndarray, s: Any) -> None:
        d[rows] = np.asarray(s)[: len(rows)]

    _tree(put, dst, src)


def _group(state: Any, args: tuple, nobs: np.ndarray, rows: np.ndarray, size: int) -> tuple:
    """The members ``rows`` as a group of ``size`` (constant compiled shapes): the rest
    of the lanes are copies of the first member, marked as stopped so they take no step."""
    from ..status import Status

    take = np.concatenate([rows, np.full(size - rows.size, rows[0])])
    group = _take_rows(state, take)
    group.status[rows.size :] = int(Status.CONVERGED)
    return group, _take_rows(args, take), nobs[take]


def _split(rows: np.ndarray, size: int, parts: int = 1) -> list[np.ndarray]:
    """``rows`` in at least ``parts`` groups of at most ``size``, dealt out in turn (so the
    members of one group are not all neighbours)."""
    count = max(-(-rows.size // size), min(parts, rows.size))
    return [rows[i::count] for i in range(count)]


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its first member repeated to ``size`` rows (constant compiled shapes)."""
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


@dataclass
class _Chunk:
    """A chunk's vectorised solve in progress (:func:`_begin`, :func:`_pool`, :func:`_end`)."""

    programs: tuple  # the compiled (start, step_on, one_by_one, finish)
    consts: tuple  # (lower, upper, settings)
    members: int  # real members (the rest is padding)
    mask: Any
    state: Any  # after the first round (stale for the members finished pooled)
    args: tuple
    nobs: Any
    running: np.ndarray  # real members still running after the first round
    stats: dict[str, int]
    finished: tuple = ()  # (rows, their packed outcomes): the members finished pooled
    ahead: Future | None = None  # the programs compiled ahead (:func:`_compile_ahead`)

    def wait_ahead(self) -> None:
        """Wait until the programs compiled ahead are ready (their errors are left to the
        calls that use them, which raise them themselves)."""
        if self.ahead is not None:
            self.ahead.exception()


def _begin(problem: _Problem, x0: np.ndarray, data: tuple) -> _Chunk:
    """Start a chunk and run its first round (:data:`ROUND_STEPS`; to its end when that
    is None or the chunk is small, :data:`SMALL_CHUNK`)."""
    from ..backends import get_backend
    from ..status import RUNNING

    ops = get_backend(problem.backend or "jax").ops.batched()
    b = x0.shape[0]
    size = max(problem.chunk, b)
    x0p = _pad(x0, size)
    datap = tuple(_pad(a, size) for a in data)
    st = problem.settings
    if problem.method == "lm":
        from ..solvers.lm_least_squares import LSQSettings, native_functions

        masked = _masked(ops, problem.func)
        fns = native_functions(ops, masked)
        cfg: Any = LSQSettings(**st)
        # as a single fit: without bounds the final rank test reads the loop's SVD
        bounded = bool(np.isfinite(problem.lower).any() or np.isfinite(problem.upper).any())
        static: tuple = (fns, problem.geodesic, problem.func, bounded)
        key: tuple = ("batch_lm", ops.name, problem.geodesic, bounded)
        prepare, make_solver = _lm_prepare, _lm_solver
    else:  # "bfgs" or "lm_hessian": a solve on the loss value
        if problem.kind == "lsq":
            value = _masked(ops, problem.func).value  # type: ignore[attr-defined]
        else:
            value = _scalar_value(ops, problem.func)
        if problem.method == "bfgs":
            from ..solvers.bfgs_native import BFGSSettings, native_bfgs_functions

            fns = native_bfgs_functions(ops, value)
            cfg = BFGSSettings(**st)
        else:
            from ..solvers.levenberg_marquardt import LMConfig, native_hess_functions

            fns = native_hess_functions(ops, value)
            cfg = LMConfig(**st)
        static = (fns, problem.kind, problem.func, problem.method)
        key = ("batch_" + problem.method, ops.name, problem.kind)
        prepare, make_solver = _value_prepare, _value_member_solver
    built = _programs(ops, prepare, make_solver, static)
    programs = tuple(
        remembered_jit(ops, problem.func, (*key, part), lambda p=p: p)
        for part, p in zip(("start", "advance", "one_by_one", "finish"), built)
    )
    consts = (problem.lower, problem.upper, cfg)
    stats = {"rounds": 1, "compactions": 0, "pooled": 0, "tail": 0}
    state, args, mask, nobs = programs[0](x0p, *consts, datap)
    # on an accelerator a step costs about the same for one lane or all of them, and a
    # round trip to the host costs more than the steps it saves: no rounds there (H200,
    # 10^5 decay fits: 0.45 s in rounds, 0.047 s uninterrupted), one long first program
    if ROUND_STEPS is None or size <= SMALL_CHUNK:
        steps = _NO_LIMIT
    else:
        steps = ACCELERATOR_STEPS if on_accelerator() else ROUND_STEPS
    ahead = None
    if steps == ROUND_STEPS and not on_accelerator():
        ahead = _compile_ahead(problem.func, key, programs, state, consts, args, nobs)
    state = programs[1](state, *consts, args, nobs, steps)
    running = np.flatnonzero(np.asarray(state.status)[:b] == RUNNING)
    return _Chunk(programs, consts, b, mask, state, args, nobs, running, stats, ahead=ahead)


def _compile_ahead(
    func: Callable, key: tuple, programs: tuple, state: Any, consts: tuple, args: tuple, nobs: Any
) -> Future:
    """Compile the sequential and finishing programs on a helper thread, once per function
    and shapes, while the calling thread compiles and runs the vectorised one.

    XLA compiles without holding Python's lock, so on a CPU the two compiles overlap: on
    the 2-core development machine the straggler batch's first call in a new process
    (compilation cache cold) went from 1.86-2.04 s to 1.70-1.80 s (the sequential program
    alone takes ~0.45 s to compile, the vectorised one ~0.75 s, already partly on both
    cores). The programs are compiled for
    the exact argument types of their later calls (a group of :data:`TAIL_SIZE`, the
    chunk's size), so those calls find them compiled. Remembered on ``func`` with the
    shapes: a later batch gets the finished future back and starts nothing.
    """
    shapes = tuple(np.shape(a) for a in (*state, *args, nobs))

    def start() -> Future:
        done: Future = Future()
        st, ar, nb = _group(state, args, np.asarray(nobs), np.zeros(1, np.int64), TAIL_SIZE)

        def compile_both() -> None:
            try:
                programs[2].lower(st, *consts, ar, nb, TAIL_STEPS).compile()
                programs[3].lower(state, *consts, args, nobs).compile()
            except BaseException as exc:  # reported to the waiting call (wait_ahead)
                done.set_exception(exc)
            else:
                done.set_result(None)

        threading.Thread(target=compile_both, name="zfitlite-compile-ahead").start()
        return done

    return remembered(func, BATCH_CACHE_ATTR, (*key, "ahead", shapes), start)


def on_accelerator() -> bool:
    """True when JAX computes on an accelerator (GPU, TPU) by default, not on the CPU."""
    from ..backends.jax_backend import import_jax

    return import_jax().default_backend() != "cpu"


def _on_host() -> Any:
    """A context in which JAX programs run on the host CPU (``jax.default_device``), or
    None when JAX has no CPU backend (e.g. ``JAX_PLATFORMS=cuda``)."""
    from ..backends.jax_backend import import_jax

    jax = import_jax()
    try:
        cpu = jax.devices("cpu")[0]
    except RuntimeError:
        return None
    return jax.default_device(cpu)


def _sequential_tail_pays() -> bool:
    """True on a CPU, where a step of the unbatched loop costs a few µs against 13-30 µs
    for a vectorised group of 8; on an accelerator a step costs about the same for one
    lane or thousands (kernel launches): there the pooled members run to their end on the
    device when there are many, on the host CPU when there are few."""
    return not on_accelerator()


def _pool(chunks: list[_Chunk], runner: Runner = _serial, workers: int = 1) -> None:
    """Finish the members the chunks' first rounds left running, pooled over all chunks.

    While more than ``chunk // TAIL_FRACTION`` of them run, they go on in rounds of
    :data:`ROUND_STEPS` (doubling when they did not halve) in groups of the chunk size
    (the chunk's own compiled program; after each round the ones still running are
    regrouped, so finished members stop costing); the last ones finish in the sequential
    program, in groups of :data:`TAIL_SIZE` (at least ``workers`` groups), where each
    costs only its own steps. Every member takes exactly the steps of one uninterrupted
    solve (a step sees only its member's state). ``runner`` runs the groups of a round
    (several threads). The pooled members' finishing step runs here too; their outcomes
    go back to the chunks (``finished``), whose own states stay where they are.

    On an accelerator (:func:`_sequential_tail_pays`) there are no rounds: more than
    :data:`ACCELERATOR_TAIL` members left go on to their end in one program on the
    device; fewer finish in the sequential program on the host CPU.
    """
    from ..status import RUNNING

    for c in chunks:
        c.wait_ahead()
    pending = [c for c in chunks if c.running.size]
    if not pending:
        return
    first = chunks[0]
    step_on, one_by_one = first.programs[1], first.programs[2]
    consts, stats = first.consts, first.stats
    size = int(np.shape(first.nobs)[0])

    def gather(get: Callable[[_Chunk], Any]) -> Any:
        parts = [_take_rows(get(c), c.running) for c in pending]
        return _tree(lambda *a: np.concatenate(a), *parts)

    state = gather(lambda c: c.state)
    args = gather(lambda c: c.args)
    nobs = gather(lambda c: c.nobs)
    stats["pooled"] += int(nobs.shape[0])

    def run(program: Callable, groups: list[np.ndarray], group_size: int, steps: int) -> None:
        def call(rows: np.ndarray) -> Any:
            st, ar, nb = _group(state, args, nobs, rows, group_size)
            return program(st, *consts, ar, nb, steps)

        for rows, out in zip(groups, runner(call, [(g,) for g in groups])):
            _put_rows(state, rows, out)
        stats["rounds"] += len(groups)

    steps = ROUND_STEPS or _NO_LIMIT
    running = np.flatnonzero(state.status == RUNNING)
    accelerator = not _sequential_tail_pays()
    host = _on_host() if accelerator else None
    if accelerator:  # many left (or no host CPU): on the device, to their end; else below
        if running.size > ACCELERATOR_TAIL or host is None:
            run(step_on, _split(running, size), size, _NO_LIMIT)
            stats["compactions"] += 1
            running = np.flatnonzero(state.status == RUNNING)
    else:
        tail = max(size // TAIL_FRACTION, 1)
        while running.size > tail:
            run(step_on, _split(running, size), size, steps)
            stats["compactions"] += 1
            before, running = running.size, np.flatnonzero(state.status == RUNNING)
            if 2 * running.size > before:
                steps = min(2 * steps, _NO_LIMIT)
    stats["tail"] += int(running.size)
    steps = TAIL_STEPS
    with host if host is not None else contextlib.nullcontext():
        while running.size:  # the few left after TAIL_STEPS (at most) share the threads
            run(one_by_one, _split(running, TAIL_SIZE, workers), TAIL_SIZE, steps)
            running, steps = np.flatnonzero(state.status == RUNNING), _NO_LIMIT
    # their finishing step here, in groups of the chunk size; only the outcomes go back
    pooled = np.arange(nobs.shape[0])
    blocks = [pooled[i : i + size] for i in range(0, pooled.size, size)]
    finish = first.programs[3]

    def end(rows: np.ndarray) -> tuple:
        st, ar, nb = _group(state, args, nobs, rows, size)
        return tuple(np.asarray(a)[: rows.size] for a in finish(st, *consts, ar, nb))

    packed = tuple(np.concatenate(parts) for parts in zip(*runner(end, [(b,) for b in blocks])))
    offset = 0
    for c in pending:
        mine = slice(offset, offset + c.running.size)
        c.finished = (c.running, tuple(a[mine] for a in packed))
        c.running = np.zeros(0, dtype=np.int64)
        offset = mine.stop


def _end(chunk: _Chunk) -> dict[str, Any]:
    """The finishing step of a chunk whose members have all stopped: its results."""
    chunk.wait_ahead()
    b = chunk.members
    packed = chunk.programs[3](chunk.state, *chunk.consts, chunk.args, chunk.nobs)
    packed = tuple(np.array(np.asarray(a)[:b]) for a in packed)
    if chunk.finished:  # the outcomes of the members that finished pooled
        rows, theirs = chunk.finished
        for mine, new in zip(packed, theirs):
            mine[rows] = new
    o = unpack(packed)
    return {
        "x": o.x,
        "gradient": o.g,
        "hessian": o.H,
        "mask": np.asarray(chunk.mask)[:b],
        "fmin": o.f,
        "edm": o.edm,
        "lam": o.lam,
        "niter": o.niter,
        "nfev": o.nfev,
        "njev": o.njev,
        "status": o.status,
        "nobs": np.asarray(chunk.nobs)[:b],
        "stats": chunk.stats,
    }


def _solve_vectorised(problem: _Problem, x0: np.ndarray, data: tuple) -> dict[str, Any]:
    """One chunk solved on its own (on an executor's worker, or a batch of one chunk)."""
    chunk = _begin(problem, x0, data)
    _pool([chunk])
    return _end(chunk)


def _settings(minimizer: Any, method: str, errordef: float, n: int) -> dict[str, float]:
    if method == "lm":
        settings = minimizer.lsq_settings(errordef, minimizer._maxiter_for(n))._asdict()
        settings.pop("nobs")  # per member, set by the solve
        return settings
    if method == "bfgs":
        return minimizer.bfgs_settings(errordef, minimizer._maxiter_for(n))._asdict()
    if method == "lm_hessian":
        maxfev = float(minimizer._maxiter_for(n))
        cfg = minimizer._config()._replace(tol_errordef=minimizer.tol * errordef, maxfev=maxfev)
        return cfg._asdict()
    return {}
