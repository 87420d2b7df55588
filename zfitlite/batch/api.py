"""The public function :func:`minimize_batch`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._ragged import batch_data
from .executors import _default_chunk, _local_threads, _run_chunks, _show_progress
from .problem import _as_data, _jax_traceable, _loss_parts, _Problem
from .result import BatchFitResult
from .vectorised import _settings, on_accelerator


def _pick_method(minimizer: Any, kind: str, has_bounds: bool) -> str:
    """The minimizer's own vectorisable core, or ``"each"`` (that same minimizer, member by
    member): never another algorithm."""
    return minimizer.vectorised_core(kind, has_bounds) or "each"


def minimize_batch(
    minimizer: Any,
    loss: Any,
    x0: Any,
    args: Sequence[Any] = (),
    executor: Any = None,
    ids: Sequence[Any] | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool | None = None,
    vectorize: bool = True,
) -> BatchFitResult:
    """Fit one problem to many data sets at once.

    Parameters
    ----------
    minimizer : BaseMinimizer
        Its ``tol``, ``maxiter`` and options apply to every member, and every member is
        fitted with its algorithm: on JAX a minimizer with a vectorisable core
        (:meth:`~zfitlite.solvers.base.BaseMinimizer.vectorised_core`:
        :class:`~zfitlite.minimize.LevenbergMarquardt` on a ``LeastSquares`` loss,
        :class:`~zfitlite.minimize.BFGS` on an unbounded loss) runs that core vectorised
        (``info["method"]`` is ``"lm"``, ``"lm_hessian"`` or ``"bfgs"``); every other minimizer (Minuit,
        the scipy methods, ...), and losses that do not trace under JAX, are fitted
        member by member with ``minimizer`` itself (``info["method"] == "each"``).
    loss : LeastSquares, SimpleLoss or callable
        ``LeastSquares(residuals)`` with ``residuals(x, *args) -> 1-D array``, or a scalar
        loss ``f(x, *args)`` with ``errordef``. Parameter names and bounds come from the
        loss's ``params`` when it has them.
    x0 : array_like
        Start values, ``(n,)`` shared by all members or ``(batch, n)``.
    args : sequence of arrays
        Data, each with a leading batch axis. For ``LeastSquares`` NaN entries are
        missing observations: the residuals they affect are masked out (set to 0, with
        their Jacobian rows) and do not count as degrees of freedom. A scalar loss gets
        the arrays as they are.
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Spread chunks of the batch over workers; results are gathered in order. Without
        one, a vectorised batch of :data:`THREADED_MIN_SIZE` members or more runs its
        chunks on one thread per CPU core (up to 8) in this process.
    ids : sequence, optional
        One id per member (default ``0 .. batch - 1``), kept in the results.
    chunk_size : int, optional
        Members per chunk (one vectorised solve each). Default: up to 2048, and about
        two chunks per worker or local thread. The last chunk is padded to the
        same size, so every chunk reuses one compiled program.
    progress : bool, optional
        A tqdm bar over chunks. Default (None): on for batches of 1000 or more when
        someone watches (a terminal or Jupyter; never with ``CI`` set, see
        :mod:`zfitlite._progress`); True or False force it.
    vectorize : bool, default True
        False fits member by member with ``minimizer`` even for JAX losses.

    Returns
    -------
    BatchFitResult

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C stops the whole batch (between members on the member-by-member path, when
        the running chunk returns on the compiled path); no partial result is returned.
    """
    from ..solvers.base import BaseMinimizer

    if not isinstance(minimizer, BaseMinimizer):
        raise TypeError(
            f"minimize_batch needs a zfitlite minimizer instance, got {type(minimizer).__name__}"
        )
    start_time = time.perf_counter()
    kind, func, errordef, params, loss_args, backend_request = _loss_parts(loss)
    if not args and loss_args:
        args = loss_args
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"args must be a tuple of arrays, got {type(args).__name__}")
    data = _as_data(batch_data(loss, args))  # ragged lists padded, the loss's own terms added
    x0a = np.asarray(x0, dtype=np.float64)
    if x0a.ndim not in (1, 2):
        raise ValueError(f"x0 must have shape (n,) or (batch, n), got {x0a.shape}")
    sizes = {a.shape[0] for a in data}
    if x0a.ndim == 2:
        sizes.add(x0a.shape[0])
    if len(sizes) > 1:
        raise ValueError(
            f"the leading (batch) axes disagree: args have {[a.shape[0] for a in data]}"
            + (f", x0 has {x0a.shape[0]}" if x0a.ndim == 2 else "")
        )
    if not sizes:
        raise ValueError(
            "no batch: pass data in args with a leading batch axis, or x0 as (batch, n)"
        )
    batch = sizes.pop()
    n = x0a.shape[-1]
    x0b = np.broadcast_to(x0a, (batch, n)).copy() if x0a.ndim == 1 else x0a.copy()
    ids_list = list(range(batch)) if ids is None else list(ids)
    if len(ids_list) != batch:
        raise ValueError(f"ids has {len(ids_list)} entries for a batch of {batch}")
    if params is not None:
        if len(params) != n:
            raise ValueError(
                f"the loss has {len(params)} parameters {list(params.names)}, x0 has {n} values"
            )
        names, lower, upper = params.names, params.lower, params.upper
    else:
        names = tuple(f"p{i}" for i in range(n))
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    has_bounds = bool(np.isfinite(lower).any() or np.isfinite(upper).any())
    outside = np.flatnonzero(np.any((x0b < lower) | (x0b > upper), axis=1))
    if outside.size:  # as minimize does for one fit (NaN starts are per-member statuses)
        which = ", ".join(repr(ids_list[i]) for i in outside[:5])
        more = f" and {outside.size - 5} more" if outside.size > 5 else ""
        raise ValueError(
            f"the start values of member(s) {which}{more} lie outside the bounds "
            f"[{list(np.asarray(lower))}, {list(np.asarray(upper))}]; choose starts inside them"
        )
    use_jax = (
        vectorize
        and backend_request != "numpy"
        and batch > 0
        and _jax_traceable(kind, func, n, data)
    )
    if backend_request == "jax" and vectorize and not use_jax:
        raise ValueError("backend='jax' was requested but the loss does not trace under JAX")
    method = _pick_method(minimizer, kind, has_bounds) if use_jax else "each"
    if chunk_size is None:
        vectorised = use_jax and method != "each"
        threads = _local_threads(vectorised, batch) if executor is None else 1
        accelerator = vectorised and executor is None and on_accelerator()
        chunk_size = _default_chunk(batch, executor, threads, accelerator)
    chunk_size = max(1, int(chunk_size))
    settings = _settings(minimizer, method, errordef, n)
    problem = _Problem(
        kind=kind,
        method=method,
        func=func,
        errordef=errordef,
        names=tuple(names),
        lower=np.asarray(lower, dtype=np.float64),
        upper=np.asarray(upper, dtype=np.float64),
        minimizer=minimizer,
        backend="jax" if use_jax and method != "each" else None,
        chunk=chunk_size,
        geodesic=bool(minimizer.options.get("geodesic", False)) if method == "lm" else False,
        settings=settings,
        backend_request=backend_request,
        jacobian=getattr(loss, "jacobian_func", None) if kind == "lsq" else None,
    )
    bounds = [(lo, min(lo + chunk_size, batch)) for lo in range(0, batch, chunk_size)]
    outs = _run_chunks(
        problem, x0b, data, ids_list, bounds, executor, _show_progress(progress, batch)
    )
    return BatchFitResult._from_chunks(
        problem, outs, x0b, data, ids_list, time.perf_counter() - start_time
    )
