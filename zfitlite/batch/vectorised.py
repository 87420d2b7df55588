"""The vectorised solves: a minimizer's native core mapped over a chunk with ``vmap``.

The single-problem solver (:class:`~zfitlite.solvers.lm_least_squares.LSQSolver`,
:class:`~zfitlite.solvers.bfgs_native.BFGSSolver`) runs through the one driver
(:func:`zfitlite.solvers.driver.solve`), mapped over the members with the backend's
``vmap`` and compiled once with its ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._composite import observed_in_member
from ..backends.ops import BATCH_CACHE_ATTR, remembered, remembered_jit
from ..solvers.driver import advance, pack, solve, unpack
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


#: Loop steps a chunk runs before its unfinished members are regrouped (the first round;
#: a round in which the group did not shrink is followed by one twice as long).
ROUND_STEPS = 16

#: The sizes a chunk's unfinished members are regrouped into, largest first: fixed, so
#: each size compiles once per process whatever the batch. A group that fits the smallest
#: size runs to its end in one call.
COMPACT_SIZES = (512, 64, 8)

_NO_LIMIT = np.iinfo(np.int32).max


def _lm_prepare(static: tuple, x0: Any, data: tuple, ops: Any) -> tuple:
    """A member's solver arguments ``(mask, *filled data)``, its mask and observed count."""
    func = static[2]
    mask, filled = _prepare_member(ops, func, x0, data)
    return (mask, *filled), mask, observed_in_member(ops.xp, func, mask, filled)


def _lm_solver(static: tuple, lower: Any, upper: Any, cfg: Any, nobs: Any, ops: Any) -> Any:
    from ..solvers.lm_least_squares import LSQSolver

    fns, geodesic, _ = static
    return LSQSolver(fns, ops, lower, upper, cfg._replace(nobs=nobs * 1.0), geodesic)


def _lm_member(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """One member's whole Levenberg-Marquardt solve (the uninterrupted reference)."""
    args, mask, nobs = _lm_prepare(static, x0, data, ops)
    out = solve(_lm_solver(static, lower, upper, cfg, nobs, ops), x0, args)
    return out, mask, nobs


def _lm_batch(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """Levenberg-Marquardt on every member: ``vmap`` of the single solve (no regrouping)."""

    def one(x0_: Any, data_: tuple) -> tuple:
        out, mask, nobs = _lm_member(static, x0_, lower, upper, cfg, data_, ops)
        return (*pack(ops.xp, out), mask, nobs)

    return ops.vmap(one, in_axes=(0, 0))(x0, data)


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


def _value_member(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """One member of a solve on the loss value: its data (missing points masked for a
    least-squares loss) and the one driver."""
    args, mask, nobs = _value_prepare(static, x0, data, ops)
    return solve(_value_member_solver(static, lower, upper, cfg, nobs, ops), x0, args), mask, nobs


def _value_batch(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """A solve on the loss value for every member: ``vmap`` of the single solve."""

    def one(x0_: Any, data_: tuple) -> tuple:
        out, mask, nobs = _value_member(static, x0_, lower, upper, cfg, data_, ops)
        return (*pack(ops.xp, out), mask, nobs)

    return ops.vmap(one, in_axes=(0, 0))(x0, data)


def _programs(ops: Any, prepare: Callable, make_solver: Callable, static: tuple) -> tuple:
    """The three vectorised programs of a resumable batch solve (uncompiled).

    ``start(x0, lo, hi, cfg, data) -> (state, args, mask, nobs)``, ``advance(state, lo, hi,
    cfg, args, nobs, steps) -> state`` (at most ``steps`` more steps per member, see
    :func:`~zfitlite.solvers.driver.advance`) and ``finish(state, lo, hi, cfg, args, nobs)
    -> packed outcome``; each member's solver is ``make_solver(static, lo, hi, cfg, nobs,
    ops)``.
    """

    def start(x0: Any, lo: Any, hi: Any, cfg: Any, data: tuple) -> tuple:
        def one(x0_: Any, data_: tuple) -> tuple:
            args, mask, nobs = prepare(static, x0_, data_, ops)
            state = make_solver(static, lo, hi, cfg, nobs, ops).init(x0_, args)
            return state, args, mask, nobs

        return ops.vmap(one, in_axes=(0, 0))(x0, data)

    def step_on(st: Any, lo: Any, hi: Any, cfg: Any, args: tuple, nobs: Any, steps: Any) -> Any:
        def one(st_: Any, args_: tuple, nobs_: Any) -> Any:
            return advance(make_solver(static, lo, hi, cfg, nobs_, ops), st_, args_, steps)

        return ops.vmap(one, in_axes=(0, 0, 0))(st, args, nobs)

    def finish(st: Any, lo: Any, hi: Any, cfg: Any, args: tuple, nobs: Any) -> tuple:
        def one(st_: Any, args_: tuple, nobs_: Any) -> tuple:
            solver = make_solver(static, lo, hi, cfg, nobs_, ops)
            return pack(ops.xp, solver.postprocess(st_, args_))

        return ops.vmap(one, in_axes=(0, 0, 0))(st, args, nobs)

    return start, step_on, finish


def _tree(fn: Callable, *trees: Any) -> Any:
    """``fn`` on the arrays of (named) tuples of arrays, keeping the structure."""
    first = trees[0]
    if isinstance(first, tuple):
        parts = [_tree(fn, *leaves) for leaves in zip(*trees)]
        return type(first)(*parts) if hasattr(first, "_fields") else tuple(parts)
    return fn(*trees)


def _host(tree: Any) -> Any:
    """A writable numpy copy of a tree of (device) arrays: one transfer per array."""
    return _tree(lambda a: np.array(a), tree)


def _take_rows(tree: Any, rows: np.ndarray) -> Any:
    return _tree(lambda a: a[rows], tree)


def _put_rows(dst: Any, rows: np.ndarray, src: Any) -> None:
    """``dst[rows] = src`` on every array of two host trees."""

    def put(d: np.ndarray, s: np.ndarray) -> None:
        d[rows] = s

    _tree(put, dst, src)


def _group_size(running: int, current: int, sizes: tuple[int, ...]) -> int:
    """The smallest of ``sizes`` that holds ``running`` members, if below ``current``."""
    fits = [s for s in sizes if running <= s < current]
    return min(fits) if fits else current


def _rounds(
    step_on: Callable,
    state: Any,
    consts: tuple,
    args: tuple,
    nobs: Any,
    stats: dict[str, int],
    to_end: bool = True,
) -> tuple[Any, tuple, Any, np.ndarray]:
    """Run a group of members in rounds, regrouping the unfinished ones into smaller
    groups (:data:`COMPACT_SIZES`) so that finished members stop costing.

    Every member takes exactly the steps it would take in one uninterrupted solve (a step
    sees only the member's own state): the rounds change the cost, never the results.
    Returns the whole group's state, args and nobs, and the rows still running: none when
    ``to_end``; else the members left once they fit the smallest size (to be pooled with
    other chunks' by :func:`_pool`).
    """
    from ..status import RUNNING

    size = int(np.shape(nobs)[0])
    sizes = tuple(s for s in COMPACT_SIZES if s < size)
    steps = ROUND_STEPS if sizes else _NO_LIMIT
    state = step_on(state, *consts, args, nobs, steps)
    stats["rounds"] += 1
    status = np.asarray(state.status)
    if not np.any(status == RUNNING):
        return state, args, nobs, np.zeros(0, dtype=np.int64)
    # regroup on the host: the whole chunk's state, and the group still running
    full, full_args, full_nobs = _host(state), _host(args), np.asarray(nobs)
    rows = np.arange(size)  # the chunk rows of the group's lanes
    group, group_args, group_nobs, current = full, full_args, full_nobs, size
    while True:
        running = np.unique(rows[status == RUNNING])
        if running.size == 0 or (not to_end and sizes and running.size <= min(sizes)):
            break
        new = _group_size(running.size, current, sizes)
        if new < current:
            stats["compactions"] += 1
            # pad with a running member: its copies compute the same and finish with it
            rows = np.concatenate([running, np.full(new - running.size, running[0])])
            group = _take_rows(full, rows)
            group_args = _take_rows(full_args, rows)
            group_nobs = full_nobs[rows]
            current = new
            steps = ROUND_STEPS
        else:
            steps = min(2 * steps, _NO_LIMIT)
        if not sizes or current == min(sizes):
            steps = _NO_LIMIT
        group = _host(step_on(group, *consts, group_args, group_nobs, steps))
        stats["rounds"] += 1
        _put_rows(full, rows, group)
        status = group.status
    return full, full_args, full_nobs, running


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its first member repeated to ``size`` rows (constant compiled shapes)."""
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


@dataclass
class _Chunk:
    """A chunk's vectorised solve in progress (:func:`_begin`, :func:`_pool`, :func:`_end`)."""

    programs: tuple  # the compiled (start, advance, finish)
    consts: tuple  # (lower, upper, settings)
    members: int  # real members (the rest is padding)
    mask: Any
    state: Any
    args: tuple
    nobs: Any
    running: np.ndarray  # rows still running (to be pooled)
    stats: dict[str, int]


def _begin(problem: _Problem, x0: np.ndarray, data: tuple, to_end: bool = False) -> _Chunk:
    """Start a chunk and run it until it is finished or its unfinished members fit the
    smallest group size (all the way with ``to_end``)."""
    from ..backends import get_backend

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
        static: tuple = (fns, problem.geodesic, problem.func)
        key: tuple = ("batch_lm", ops.name, problem.geodesic)
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
        for part, p in zip(("start", "advance", "finish"), built)
    )
    consts = (problem.lower, problem.upper, cfg)
    stats = {"rounds": 0, "compactions": 0, "pooled": 0}
    state, args, mask, nobs = programs[0](x0p, *consts, datap)
    state, args, nobs, running = _rounds(programs[1], state, consts, args, nobs, stats, to_end)
    return _Chunk(programs, consts, b, mask, state, args, nobs, running, stats)


def _pool(chunks: list[_Chunk]) -> None:
    """Finish the chunks' unfinished members together, in groups of :data:`COMPACT_SIZES`
    (a few slow members of many chunks share one small group instead of one each)."""
    pending = [(c, int(r)) for c in chunks for r in c.running if r < c.members]
    if not pending:
        return
    count = len(pending)
    size = next((s for s in sorted(COMPACT_SIZES) if s >= count), None)
    if size is None:
        size = max(COMPACT_SIZES) * -(-count // max(COMPACT_SIZES))
    take = [pending[i] for i in range(count)] + [pending[0]] * (size - count)

    def gather(get: Callable) -> Any:
        return _tree(lambda *rows: np.stack(rows), *(get(c, r) for c, r in take))

    state = gather(lambda c, r: _tree(lambda a: a[r], c.state))
    args = gather(lambda c, r: _tree(lambda a: a[r], c.args))
    nobs = np.stack([np.asarray(c.nobs)[r] for c, r in take])
    first = chunks[0]
    first.stats["pooled"] += count
    first.stats["compactions"] += 1
    state, _, _, _ = _rounds(first.programs[1], state, first.consts, args, nobs, first.stats)
    state = _host(state)
    for i, (c, r) in enumerate(pending):

        def put(dst: np.ndarray, src: np.ndarray, r: int = int(r), i: int = i) -> None:
            dst[r] = src[i]

        _tree(put, c.state, state)
    for c in chunks:
        c.running = np.zeros(0, dtype=np.int64)


def _end(chunk: _Chunk) -> dict[str, Any]:
    """The finishing step of a chunk whose members have all stopped: its results."""
    b = chunk.members
    packed = chunk.programs[2](chunk.state, *chunk.consts, chunk.args, chunk.nobs)
    o = unpack(tuple(np.asarray(a)[:b] for a in packed))
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
    return _end(_begin(problem, x0, data, to_end=True))


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
