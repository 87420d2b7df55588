"""The one driver of the native solvers: eager, compiled (``jit``) and batched (``vmap``).

A native solver (:class:`~zfitlite.solvers.lm_least_squares.LSQSolver`,
:class:`~zfitlite.solvers.bfgs_native.BFGSSolver`) is a frozen configuration with four
pure functions over an explicit state, written once with the operations of an
:class:`~zfitlite.backends.ops.ArrayOps`:

``init(x0, args) -> state``
    The state at the start (its ``status`` is :data:`~zfitlite.status.RUNNING`, or
    ``NONFINITE`` when the loss is not finite there).
``step(state, args) -> state``
    One iteration; it sets ``status`` when the solve is over.
``terminate(state) -> bool``
    True when the loop ends (``status != RUNNING``).
``postprocess(state, args) -> Outcome``
    The finishing step, once for every path: the final status (a stalled fit that meets
    its goal converged; a converged fit with a singular Hessian is ``SINGULAR``), the
    gradient, the Hessian and the final EDM.

:func:`solve` is the only loop: with the numpy ops it is a Python loop (which may
report each iteration), with JAX's ops a ``lax.while_loop`` that compiles, and the
same call mapped with ``ops.vmap`` solves a batch. :func:`pack` / :func:`unpack` bring
an :class:`Outcome` to the host as few arrays; :func:`pack_flat` / :func:`unpack_flat` as
one array (a single device-to-host copy per result).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from ..backends.ops import ArrayOps

__all__ = [
    "NativeSolver",
    "Outcome",
    "advance",
    "pack",
    "pack_flat",
    "solve",
    "unpack",
    "unpack_flat",
]

State = TypeVar("State")


class Outcome(NamedTuple):
    """The end of a native solve: the one record every path returns.

    Arrays (numpy after :func:`unpack`; traced or device arrays inside a program).
    ``lam`` and ``delta`` are the last damping and trust radius (0 where the solver has
    none); ``nfev`` counts value (or residual) evaluations, ``njev`` gradient (or
    Jacobian) evaluations.
    """

    x: Any
    f: Any
    g: Any
    H: Any
    edm: Any
    status: Any
    niter: Any
    nfev: Any
    njev: Any
    lam: Any
    delta: Any


class NativeSolver(Protocol[State]):
    """What :func:`solve` needs from a native solver (see the module docstring)."""

    @property
    def ops(self) -> ArrayOps: ...

    def init(self, x0: Any, args: tuple) -> State: ...

    def step(self, state: State, args: tuple) -> State: ...

    def terminate(self, state: State) -> Any: ...

    def postprocess(self, state: State, args: tuple) -> Outcome: ...


def solve(
    solver: NativeSolver[Any],
    x0: Any,
    args: tuple = (),
    report: Callable[[Any], None] | None = None,
) -> Outcome:
    """Run ``solver`` from ``x0`` to its :class:`Outcome` (the one driver loop).

    Pure (traceable) when ``report`` is None: call it inside ``ops.jit`` to compile the
    whole solve, inside ``ops.vmap`` to solve a batch. ``report(state)`` (eager only) is
    called with the initial state and after each step.
    """
    ops = solver.ops
    # an overflowing or NaN trial point is a rejected step, not a warning
    with np.errstate(all="ignore"):
        state = solver.init(x0, args)
        if report is None:
            xp = ops.xp
            state = ops.while_loop(
                lambda st: xp.logical_not(solver.terminate(st)),
                lambda st: solver.step(st, args),
                state,
            )
        else:
            report(state)
            while not solver.terminate(state):
                state = solver.step(state, args)
                report(state)
        return solver.postprocess(state, args)


def advance(solver: NativeSolver[Any], state: Any, args: tuple, max_steps: Any) -> Any:
    """``state`` after at most ``max_steps`` more steps (fewer once the solve is over).

    The resumable form of :func:`solve`'s loop: ``solver.postprocess(advance(solver,
    solver.init(x0, args), args, inf), args)`` is ``solve(solver, x0, args)``, and splitting
    the steps over several calls changes nothing (a step sees only the state). Pure, for
    ``ops.jit`` and ``ops.vmap`` (``max_steps`` may be traced: a new bound does not
    recompile); batched solves use it to stop and regroup their unfinished members.
    """
    ops = solver.ops
    xp = ops.xp

    def more(carry: tuple) -> Any:
        i, st = carry
        return (i < max_steps) & xp.logical_not(solver.terminate(st))

    def body(carry: tuple) -> tuple:
        i, st = carry
        return i + 1, solver.step(st, args)

    with np.errstate(all="ignore"):
        return ops.while_loop(more, body, (xp.asarray(0), state))[1]


_SCALARS = ("f", "edm", "status", "niter", "nfev", "njev", "lam", "delta")


def pack(xp: Any, out: Outcome) -> tuple:
    """``(x, g, H, scalars)``: an outcome in four arrays (cheap to bring to the host).

    Works on a batch too (every field with a leading batch axis).
    """
    scalars = xp.stack([xp.asarray(getattr(out, k), dtype=xp.float64) for k in _SCALARS], axis=-1)
    return out.x, out.g, out.H, scalars


def unpack(packed: tuple) -> Outcome:
    """The host :class:`Outcome` of :func:`pack`'s arrays (numpy or device arrays).

    A single solve gives Python scalars; a batch gives one numpy array per field.
    """
    x, g, H, sc = (np.asarray(a, dtype=np.float64) for a in packed)
    if sc.ndim == 1:
        return _single(x, g, H, sc)
    conv: dict[str, Any] = dict(zip(_SCALARS, np.moveaxis(sc, -1, 0)))
    for k in ("status", "niter", "nfev", "njev"):
        conv[k] = conv[k].astype(np.int64)
    return Outcome(x=x, g=g, H=H, **conv)


def pack_flat(xp: Any, out: Outcome) -> Any:
    """One float64 vector ``[x, g, H (row-major), scalars]`` of a single solve.

    Inside a compiled program this makes the result one device array, so bringing it to
    the host is one copy (see :func:`unpack_flat`).
    """
    x, g, H, scalars = pack(xp, out)
    f64 = xp.float64
    return xp.concatenate(
        [
            xp.asarray(x, dtype=f64),
            xp.asarray(g, dtype=f64),
            xp.reshape(xp.asarray(H, dtype=f64), (-1,)),
            scalars,
        ]
    )


def unpack_flat(flat: Any, n: int) -> Outcome:
    """The host :class:`Outcome` of :func:`pack_flat`'s vector for ``n`` parameters."""
    v = np.asarray(flat, dtype=np.float64)
    k = 2 * n + n * n
    return _single(v[:n], v[n : 2 * n], v[2 * n : k].reshape(n, n), v[k:])


def _single(x: np.ndarray, g: np.ndarray, H: np.ndarray, scalars: np.ndarray) -> Outcome:
    """The :class:`Outcome` of one solve from its host arrays (scalars as Python numbers)."""
    f, edm, status, niter, nfev, njev, lam, delta = scalars.tolist()
    return Outcome(x, f, g, H, edm, int(status), int(niter), int(nfev), int(njev), lam, delta)
