"""Many independent fits of one problem at once: :func:`minimize_batch`.

One problem (a least-squares residual function or a scalar loss) is fitted to many data
sets at once. Data come as arrays with a leading batch axis; NaN entries are missing
observations.

On JAX the batch is solved vectorised: the single-problem solver, a pure function over
an explicit state (:mod:`~zfitlite.solvers.lm_least_squares`,
:mod:`~zfitlite.solvers.bfgs_native`), is mapped over the batch with the backend's
``vmap`` and compiled once with its ``jit``. Every member keeps its own damping, trust
radius, status and counters; under ``vmap`` the loop runs while any member is unfinished
and a finished member's state is carried unchanged. The compiled program is cached per
residual function (or loss function), chunk size and data shapes, so a second batch of
the same shapes does not compile again.

Losses that do not trace under JAX (plain numpy) fall back to one fit per member with
the given minimizer. Either way the batch can be split into chunks spread over a
:class:`concurrent.futures.Executor` or a ``dask.distributed.Client``; results are
gathered in order.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._composite import observed_count, observed_in_member
from ._progress import make_bar, should_show
from ._ragged import batch_data
from .backends.ops import BATCH_CACHE_ATTR, remembered, remembered_jit
from .exceptions import FailMinimizeNaN
from .loss import BaseLoss, LeastSquares, SimpleLoss, _CallableLoss
from .params import Params
from .result import Approximations, FitResult
from .status import Status

__all__ = ["BatchFitResult", "minimize_batch"]

#: Batches at least this large show a progress bar (when stderr is a terminal).
PROGRESS_MIN_SIZE = 1000
#: Members per vectorised solve when no executor is given.
DEFAULT_CHUNK = 2048
#: Without an executor, a vectorised batch of at least this many members runs its chunks
#: on one thread per CPU core (XLA releases the GIL; one program alone keeps about 1.6
#: of 2 cores busy, two at once all of them).
THREADED_MIN_SIZE = 1024
_SINGULAR_RTOL = 1e3 * float(np.finfo(float).eps)


# -- the problem, as plain picklable data -------------------------------------------------
@dataclass(frozen=True)
class _Problem:
    """What a chunk needs to solve its members (pickled to workers).

    ``kind`` is ``"lsq"`` (``func`` gives residuals) or ``"scalar"`` (``func`` gives the
    loss value); ``method`` is ``"lm"``, ``"bfgs"`` (vectorised on JAX) or ``"each"``
    (one fit per member with ``minimizer``).
    """

    kind: str
    method: str
    func: Callable
    errordef: float
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    minimizer: Any
    backend: str
    chunk: int
    geodesic: bool = False
    settings: dict[str, float] = field(default_factory=dict)
    backend_request: str = "auto"  # the loss's own request, for member-by-member fits
    jacobian: Callable | None = None  # a LeastSquares' own Jacobian, for member-by-member fits

    @functools.cached_property
    def template(self) -> Params:
        """The parameters (names, bounds) with placeholder values: ``with_values`` gives a
        member's, unvalidated (a NaN start or end point is allowed there)."""
        placeholder = np.clip(np.zeros(len(self.names)), self.lower, self.upper)
        return Params(self.names, placeholder, self.lower, self.upper)


def _loss_parts(loss: Any) -> tuple[str, Callable, float, Params | None, tuple, str]:
    """``(kind, func, errordef, params, loss_args, backend_request)`` of a batch loss."""
    if isinstance(loss, LeastSquares):
        return (
            "lsq",
            loss.residuals_func,
            loss.errordef,
            loss.params,
            loss.args,
            loss.backend_request,
        )
    if isinstance(loss, _CallableLoss):
        return "scalar", loss.func, loss.errordef, None, (), "auto"
    if isinstance(loss, SimpleLoss):
        return "scalar", loss.func, loss.errordef, loss.params, loss.args, loss.backend_request
    if isinstance(loss, BaseLoss):
        raise TypeError(
            f"minimize_batch needs a LeastSquares, a SimpleLoss or a callable f(x, *args) with "
            f"errordef; got {type(loss).__name__}"
        )
    if callable(loss):
        errordef = getattr(loss, "errordef", None)
        if errordef is None:
            name = getattr(loss, "__name__", type(loss).__name__)
            raise ValueError(
                f"loss '{name}' has no errordef: set it on the function (e.g. `f.errordef = 1.0` "
                "for a chi-square, 0.5 for a negative log-likelihood) or wrap it in SimpleLoss"
            )
        return "scalar", loss, float(errordef), None, (), "auto"
    raise TypeError(
        "minimize_batch needs a LeastSquares(residuals), a SimpleLoss or a callable "
        f"f(x, *args) with errordef; got {type(loss).__name__}"
    )


def _as_data(args: Sequence[Any]) -> tuple[np.ndarray, ...]:
    out = []
    for i, a in enumerate(args):
        arr = np.asarray(a)
        if arr.dtype.kind in "biu":
            out.append(arr)
        elif arr.dtype.kind == "f":
            out.append(arr.astype(np.float64, copy=False))
        else:
            raise TypeError(f"args[{i}] must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim == 0:
            raise ValueError(
                f"args[{i}] is a scalar; every array in args needs a leading batch axis"
            )
    return tuple(out)


def _jax_traceable(kind: str, func: Callable, n: int, data: tuple[np.ndarray, ...]) -> bool:
    """True when ``func(x, *member_data)`` traces under JAX (jax imported only here)."""
    from .backends import jax_available

    if not jax_available():
        return False
    from .backends.jax_backend import import_jax

    jax = import_jax()
    specs = [jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in data]
    try:
        out = jax.eval_shape(func, jax.ShapeDtypeStruct((n,), np.float64), *specs)
    except Exception:
        return False
    size = int(np.prod(out.shape))
    return size >= 1 if kind == "lsq" else size == 1


def _pick_method(minimizer: Any, kind: str, has_bounds: bool) -> str:
    from .solvers.levenberg_marquardt import LevenbergMarquardt

    if isinstance(minimizer, LevenbergMarquardt) and kind == "lsq":
        if minimizer.options["use_residuals"]:
            return "lm"
    if has_bounds:  # the native BFGS has no bounds: one fit per member honours them
        return "each"
    return "bfgs"


# -- the vectorised solves (pure functions; jit/vmap through the backend's ops) ----------
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


def _prepare_member(ops: Any, func: Callable, x0: Any, data: tuple) -> tuple:
    """``(mask, filled data)``: NaN data replaced by 0 and the residuals they leave out.

    A residual is missing when it is NaN with the data as given but not with the NaNs
    filled in (so a bad start, which is NaN either way, stays visible as non-finite).
    """
    xp = ops.xp
    filled = tuple(
        xp.where(xp.isnan(a), 0.0, a) if xp.issubdtype(a.dtype, xp.floating) else a for a in data
    )
    r_raw = xp.reshape(func(x0, *data), (-1,))
    r_fill = xp.reshape(func(x0, *filled), (-1,))
    mask = xp.isnan(r_raw) & ~xp.isnan(r_fill)
    return mask, filled


def _lm_member(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    from .solvers.lm_least_squares import RUNNING, lsq_init, lsq_step

    fns, geodesic, func = static
    xp = ops.xp
    mask, filled = _prepare_member(ops, func, x0, data)
    nobs = observed_in_member(xp, func, mask, filled)
    cfg = cfg._replace(nobs=nobs * 1.0)
    args = (mask, *filled)
    st = lsq_init(fns, ops, x0, lower, upper, cfg, args)
    st = ops.while_loop(
        lambda st: st.status == RUNNING,
        lambda st: lsq_step(fns, ops, st, lower, upper, cfg, args, geodesic),
        st,
    )
    J, r = st.J, st.r
    s = ops.svd(J / st.D)[1]
    singular = ~xp.all(xp.isfinite(J)) | (s[-1] <= s[0] * _SINGULAR_RTOL)
    scalars = xp.stack(
        [
            xp.asarray(v, dtype=xp.float64)
            for v in (st.f, st.edm, st.lam, st.niter, st.nfev, st.njev, st.status, nobs, singular)
        ]
    )
    return st.x, 2.0 * J.T @ r, 2.0 * J.T @ J, mask, scalars


def _lm_batch(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """Levenberg-Marquardt on every member: ``vmap`` of the single solve."""

    def one(x0_: Any, data_: tuple) -> tuple:
        return _lm_member(static, x0_, lower, upper, cfg, data_, ops)

    return ops.vmap(one, in_axes=(0, 0))(x0, data)


def _bfgs_member(static: tuple, x0: Any, cfg: Any, data: tuple, ops: Any):
    from .solvers.bfgs_native import bfgs_finish, bfgs_solve

    fns, kind, func = static
    xp = ops.xp
    if kind == "lsq":
        mask, filled = _prepare_member(ops, func, x0, data)
        args = (mask, *filled)
        nobs = observed_in_member(xp, func, mask, filled)
    else:
        args = data
        mask = xp.zeros((0,), dtype=bool)
        nobs = xp.asarray(-1)
    st = bfgs_solve(fns, ops, x0, cfg, args)
    H, edm = bfgs_finish(fns, ops, st, args)
    ev = xp.linalg.eigvalsh(xp.where(xp.isfinite(H), H, 0.0))
    singular = ~xp.all(xp.isfinite(H)) | (ev[0] <= xp.abs(ev[-1]) * _SINGULAR_RTOL)
    scalars = xp.stack(
        [
            xp.asarray(v, dtype=xp.float64)
            for v in (st.f, edm, 0.0, st.niter, st.nfev, st.nfev, st.status, nobs, singular)
        ]
    )
    return st.x, st.g, H, mask, scalars


def _bfgs_batch(static: tuple, x0: Any, cfg: Any, data: tuple, ops: Any):
    """BFGS on every member: ``vmap`` of the single solve."""

    def one(x0_: Any, data_: tuple) -> tuple:
        return _bfgs_member(static, x0_, cfg, data_, ops)

    return ops.vmap(one, in_axes=(0, 0))(x0, data)


_SCALARS = ("fmin", "edm", "lam", "niter", "nfev", "njev", "status", "nobs", "singular")


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its first member repeated to ``size`` rows (constant compiled shapes)."""
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


def _solve_vectorised(problem: _Problem, x0: np.ndarray, data: tuple) -> dict[str, Any]:
    from .backends import get_backend

    ops = get_backend(problem.backend).ops.batched()
    b = x0.shape[0]
    size = max(problem.chunk, b)
    x0p = _pad(x0, size)
    datap = tuple(_pad(a, size) for a in data)
    st = problem.settings
    if problem.method == "lm":
        from .solvers.lm_least_squares import LSQSettings, native_functions

        masked = _masked(ops, problem.func)
        fns = native_functions(ops, masked)
        cfg = LSQSettings(**st)
        static = (fns, problem.geodesic, problem.func)
        solve = remembered_jit(
            ops,
            problem.func,
            ("batch_lm", ops.name, problem.geodesic),
            lambda: lambda x0, lo, hi, cfg, data: _lm_batch(static, x0, lo, hi, cfg, data, ops),
        )
        out = solve(x0p, problem.lower, problem.upper, cfg, datap)
    else:
        from .solvers.bfgs_native import BFGSSettings, native_bfgs_functions

        if problem.kind == "lsq":
            value = _masked(ops, problem.func).value  # type: ignore[attr-defined]
        else:
            value = _scalar_value(ops, problem.func)
        fns = native_bfgs_functions(ops, value)
        cfg = BFGSSettings(**st)
        static = (fns, problem.kind, problem.func)
        solve = remembered_jit(
            ops,
            problem.func,
            ("batch_bfgs", ops.name, problem.kind),
            lambda: lambda x0, cfg, data: _bfgs_batch(static, x0, cfg, data, ops),
        )
        out = solve(x0p, cfg, datap)
    x, grad, hess, mask, scalars = (np.asarray(a)[:b] for a in out)
    res: dict[str, Any] = {"x": x, "gradient": grad, "hessian": hess, "mask": mask}
    for k, name in enumerate(_SCALARS):
        res[name] = scalars[:, k]
    return res


def _member_loss(
    problem: _Problem, data: tuple[np.ndarray, ...], mask: np.ndarray | None, name: str
):
    """A single-member loss (for ``hesse()``, ``errors()`` and refits of ``result[i]``)."""
    backend = problem.backend_request
    if problem.kind == "lsq":
        if mask is None or not mask.any():
            return LeastSquares(
                problem.func,
                jacobian=problem.jacobian,
                errordef=problem.errordef,
                backend=backend,
                name=name,
                args=data,
            )
        filled = tuple(np.where(np.isnan(a), 0.0, a) if a.dtype.kind == "f" else a for a in data)
        return LeastSquares(
            # one wrapper per function: every member reuses the programs compiled for the first
            remembered(
                problem.func, BATCH_CACHE_ATTR, "member", lambda: _MaskedResiduals(problem.func)
            ),
            jacobian=None if problem.jacobian is None else _MaskedJacobian(problem.jacobian),
            errordef=problem.errordef,
            backend=backend,
            name=name,
            args=(mask, *filled),
        )
    # the data as args: on JAX every member reuses the programs compiled for the first
    return SimpleLoss(
        problem.func, errordef=problem.errordef, backend=backend, name=name, args=tuple(data)
    )


class _MaskedJacobian:
    """``(x, mask, *data) -> jacobian`` with the rows of masked entries set to 0 (picklable).

    A user's Jacobian is called eagerly by every backend, so numpy does the masking.
    """

    def __init__(self, jacobian: Callable) -> None:
        self.jacobian = jacobian

    def __call__(self, x: Any, mask: Any, *data: Any) -> np.ndarray:
        J = np.asarray(self.jacobian(x, *data), dtype=np.float64)
        return np.where(np.asarray(mask)[:, None], 0.0, J)


class _MaskedResiduals:
    """``(x, mask, *data) -> residuals`` with the masked entries set to 0 (picklable)."""

    def __init__(self, func: Callable) -> None:
        self.func = func

    def __call__(self, x: Any, mask: Any, *data: Any) -> Any:
        r = self.func(x, *data)
        module = type(r).__module__
        if module.startswith("jax"):
            import jax.numpy as jnp

            return jnp.where(mask, 0.0, jnp.reshape(r, (-1,)))
        if module.startswith("tensorflow"):
            import tensorflow as tf

            r = tf.reshape(r, [-1])
            return tf.where(mask, tf.zeros_like(r), r)
        return np.where(mask, 0.0, np.reshape(np.asarray(r, dtype=np.float64), -1))


def _member_data(data: tuple[np.ndarray, ...], i: int) -> tuple[np.ndarray, ...]:
    return tuple(a[i] for a in data)


def _missing_mask(func: Callable, x0: np.ndarray, data: tuple) -> np.ndarray:
    """The numpy version of :func:`_prepare_member`'s mask."""
    filled = tuple(np.where(np.isnan(a), 0.0, a) if a.dtype.kind == "f" else a for a in data)
    with np.errstate(all="ignore"):
        r_raw = np.reshape(np.asarray(func(x0, *data), dtype=np.float64), -1)
        r_fill = np.reshape(np.asarray(func(x0, *filled), dtype=np.float64), -1)
    return np.isnan(r_raw) & ~np.isnan(r_fill)


def _solve_each(
    problem: _Problem, x0: np.ndarray, data: tuple, ids: Sequence[Any]
) -> dict[str, Any]:
    """One fit per member with the given minimizer (losses that do not vectorise)."""
    results: list[FitResult] = []
    masks: list[np.ndarray | None] = []
    for i in range(x0.shape[0]):
        member = _member_data(data, i)
        name = str(ids[i])
        mask = None
        if problem.kind == "lsq":
            try:
                mask = _missing_mask(problem.func, x0[i], member)
            except Exception:  # the loss raises: the fit below reports it
                mask = None
        params = (
            Params(problem.names, x0[i], problem.lower, problem.upper)
            if np.all(np.isfinite(x0[i]))
            else None
        )
        nobs = (
            -1 if mask is None else observed_count(_MaskedResiduals(problem.func), (mask, *member))
        )
        if params is None:
            results.append(
                _invalid_result(problem, x0[i], Status.NONFINITE, "start value not finite")
            )
        elif problem.kind == "lsq" and 0 <= nobs < len(problem.names):
            results.append(_too_few(problem, x0[i], nobs))
        else:
            loss = _member_loss(problem, member, mask, name)
            try:
                results.append(problem.minimizer.minimize(loss, params))
            except Exception as exc:  # a per-member failure is a per-member status
                status = (
                    Status.NONFINITE if isinstance(exc, FailMinimizeNaN) else Status.LOSS_RAISED
                )
                why = f"{type(exc).__name__}: {exc}"
                results.append(_invalid_result(problem, x0[i], status, why))
        if results[-1].status is Status.INTERRUPTED:
            # Ctrl-C stops the whole batch, as it does the compiled path; the member's own
            # fit has already returned its best point, so nothing is left half-done
            raise KeyboardInterrupt(
                f"batch interrupted by the user at member {ids[i]!r} ({i} of {x0.shape[0]} done)"
            )
        results[-1].info.update({"id": ids[i], "nobs": nobs, "loop": "each"})
        masks.append(mask)
    return {"results": results, "masks": masks}


def _plain_params(problem: _Problem, values: np.ndarray) -> Params:
    """Params with these values, unvalidated (a NaN start or end point is allowed here)."""
    return problem.template.with_values(values)


def _invalid_result(problem: _Problem, x: np.ndarray, status: Status, why: str) -> FitResult:
    values = np.where(np.isfinite(x), x, np.nan)
    return FitResult(
        params=_plain_params(problem, values),
        fmin=np.nan,
        edm=np.nan,
        status=status,
        tol=problem.minimizer.tol,
        errordef=problem.errordef,
        minimizer=problem.minimizer,
        info={"niter": 0, "loop": "batch"},
        message=f"{status.message}: {why}",
    )


def _too_few(problem: _Problem, x: np.ndarray, nobs: int) -> FitResult:
    result = _invalid_result(problem, x, Status.SINGULAR, "")
    result.message = f"stopped: {_too_few_message(nobs, len(problem.names))}"
    return result


def _too_few_message(nobs: int, n: int) -> str:
    if nobs == 0:
        return "every observation of this member is missing (NaN): there is nothing to fit"
    return (
        f"only {nobs} observed point(s) for {n} parameters: the fit is underdetermined "
        "(too many missing observations)"
    )


def _solve_chunk(problem: _Problem, x0: np.ndarray, data: tuple, ids: Sequence[Any]) -> dict:
    """Solve one chunk (runs on a worker); returns its ids with the results, in order."""
    if problem.method == "each":
        out = _solve_each(problem, x0, data, ids)
    else:
        out = _solve_vectorised(problem, x0, data)
    out["ids"] = list(ids)
    return out


# -- executors -------------------------------------------------------------------------
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
        if executor is None and (threads == 1 or len(bounds) == 1):
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


# -- the public function ---------------------------------------------------------------
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
        Its ``tol``, ``maxiter`` and options apply to every member. On JAX a
        :class:`~zfitlite.minimize.LevenbergMarquardt` on a ``LeastSquares`` loss runs the
        vectorised least-squares Levenberg-Marquardt; every other pair runs a vectorised
        native BFGS on the loss value (``info["method"]`` says which). Losses that do not
        trace under JAX are fitted member by member with ``minimizer`` itself.
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
    from .solvers.base import BaseMinimizer

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
        threads = _local_threads(use_jax and method != "each", batch) if executor is None else 1
        chunk_size = _default_chunk(batch, executor, threads)
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
        backend="jax" if use_jax else "each",
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


def _local_threads(vectorised: bool, batch: int) -> int:
    """Threads for the chunks of a batch run without an executor (vectorised ones only)."""
    if not vectorised or batch < THREADED_MIN_SIZE:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _default_chunk(batch: int, executor: Any, threads: int = 1) -> int:
    """Members per chunk: few distinct sizes, so batches of similar size share programs.

    Up to :data:`DEFAULT_CHUNK` members (with one local thread; else about two chunks per
    thread or executor worker) the size is the next power of two; above, equal chunks
    rounded up to 64.
    """
    target = batch
    if executor is not None:
        target = math.ceil(batch / (2 * _executor_workers(executor)))
    elif threads > 1:
        target = math.ceil(batch / (2 * threads))
    if target <= DEFAULT_CHUNK:
        return 1 << max(0, math.ceil(math.log2(max(target, 1))))
    nchunks = math.ceil(target / DEFAULT_CHUNK)
    return 64 * math.ceil(math.ceil(target / nchunks) / 64)


def _settings(minimizer: Any, method: str, errordef: float, n: int) -> dict[str, float]:
    if method == "lm":
        settings = minimizer.lsq_settings(errordef, minimizer._maxiter_for(n))._asdict()
        settings.pop("nobs")  # per member, set by the solve
        return settings
    if method == "bfgs":
        return {
            "tol_errordef": minimizer.tol * errordef,
            "aim": 1e-2,
            "maxfev": float(minimizer._maxiter_for(n)),
        }
    return {}


# -- the result ------------------------------------------------------------------------
class BatchFitResult:
    """The results of :func:`minimize_batch`: arrays over the batch, and members as FitResults.

    Attributes
    ----------
    x : numpy.ndarray
        ``(batch, n)`` fitted values.
    fmin, edm : numpy.ndarray
        ``(batch,)`` loss and EDM at the minimum.
    valid : numpy.ndarray of bool
        Converged, finite, enough data and no parameter at a bound.
    niter : numpy.ndarray of int
        Iterations per member.
    status : numpy.ndarray of int
        :class:`~zfitlite.status.Status` values per member.
    ids : list
        The members' ids, in order.
    nobs : numpy.ndarray of int
        Observed residuals per member (-1 where unknown: scalar losses).
    info : dict
        ``method`` ("lm", "bfgs" or "each": one fit per member), ``backend``,
        ``chunk_size``, ``nchunks`` and ``time`` (seconds, wall clock).

    Examples
    --------
    ``result[i]`` is member ``i`` as a :class:`~zfitlite.result.FitResult` (with its
    uncertainties: ``result[i].hesse()``, ``result[i].covariance()``); ``len(result)``
    and iteration go over the members; ``str(result)`` summarises the batch.
    """

    def __init__(
        self,
        *,
        x: np.ndarray,
        fmin: np.ndarray,
        edm: np.ndarray,
        status: np.ndarray,
        niter: np.ndarray,
        ids: list,
        names: tuple[str, ...],
        nobs: np.ndarray,
        info: dict[str, Any],
        valid: np.ndarray,
        members: list[FitResult | None],
        problem: _Problem | None = None,
        data: tuple = (),
        extra: dict[str, np.ndarray] | None = None,
        messages: dict[int, str] | None = None,
    ) -> None:
        self.x = x
        self.fmin = fmin
        self.edm = edm
        self.status = status
        self.niter = niter
        self.ids = ids
        self.names = names
        self.nobs = nobs
        self.info = info
        self.valid = valid
        self._members = members
        self._problem = problem
        self._data = data
        self._extra = extra or {}
        self._messages = messages or {}

    # -- construction ----------------------------------------------------------------
    @classmethod
    def _from_chunks(
        cls,
        problem: _Problem,
        outs: list[dict],
        x0: np.ndarray,
        data: tuple,
        ids: list,
        elapsed: float,
    ) -> BatchFitResult:
        info = {
            "method": problem.method,
            "backend": problem.backend,
            "chunk_size": problem.chunk,
            "nchunks": len(outs),
            "time": elapsed,
            "minimizer": problem.minimizer.name,
        }
        n = len(problem.names)
        if problem.method == "each":
            members: list[FitResult | None] = [r for o in outs for r in o["results"]]
            backends = sorted({str(r.info.get("backend")) for r in members if "backend" in r.info})
            info["backend"] = ",".join(backends) or "none"
            for k, r in enumerate(members):
                r.info["index"] = k
            x = np.array([r.x for r in members]).reshape(len(members), n)
            nobs = np.array([int(r.info.get("nobs", -1)) for r in members])
            return cls(
                x=x,
                fmin=np.array([r.fmin for r in members], dtype=np.float64),
                edm=np.array([r.edm for r in members], dtype=np.float64),
                status=np.array([int(r.status) for r in members], dtype=np.int64),
                niter=np.array([int(r.info.get("niter", 0)) for r in members], dtype=np.int64),
                ids=ids,
                names=problem.names,
                nobs=nobs,
                info=info,
                valid=np.array([r.valid for r in members], dtype=bool),
                members=members,
                problem=problem,
                data=data,
            )
        cat = {k: np.concatenate([o[k] for o in outs]) for k in outs[0] if k != "ids"}
        status, messages = _final_status(problem, cat, x0)
        x = cat["x"]
        fmin = cat["fmin"]
        at_limit = problem.template.at_limit(x).any(axis=1)  # Params.at_limit broadcasts
        valid = (status == int(Status.CONVERGED)) & np.isfinite(fmin) & ~at_limit
        extra = {k: cat[k] for k in ("gradient", "hessian", "mask", "nfev", "njev", "lam")}
        return cls(
            x=x,
            fmin=fmin,
            edm=cat["edm"],
            status=status,
            niter=cat["niter"].astype(np.int64),
            ids=ids,
            names=problem.names,
            nobs=cat["nobs"].astype(np.int64),
            info=info,
            valid=valid,
            members=[None] * x.shape[0],
            problem=problem,
            data=data,
            extra=extra,
            messages=messages,
        )

    # -- sequence protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[FitResult]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> FitResult:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]  # type: ignore[return-value]
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"members are indexed by position (int), got {type(i).__name__}")
        k = int(i)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"member {i} out of range for a batch of {len(self)}")
        member = self._members[k]
        if member is None:
            member = self._members[k] = self._build_member(k)
        return member

    def by_id(self, member_id: Any) -> FitResult:
        """The member whose id is ``member_id``."""
        return self[self.ids.index(member_id)]

    # -- uncertainties over the whole batch --------------------------------------------
    def covariance(self) -> np.ndarray:
        """``(batch, n, n)`` covariances ``2 * errordef * H^-1`` from the final Hessians.

        The Gauss-Newton Hessian ``2 J^T J`` for Levenberg-Marquardt, the exact Hessian
        for BFGS, each member's own for member-by-member fits; NaN where singular.
        """
        if self._problem is None:
            raise ValueError("this result holds no Hessians")
        if self.info["method"] == "each":
            out = []
            for k in range(len(self)):
                r = self[k]
                try:
                    out.append(r.covariance(method="approx"))
                except (ValueError, np.linalg.LinAlgError):
                    out.append(np.full((len(self.names),) * 2, np.nan))
            return np.array(out)
        H = self._extra["hessian"]
        cov = np.full_like(H, np.nan)
        ok = np.isfinite(H).all(axis=(1, 2)) & (self.status != int(Status.SINGULAR))
        if ok.any():
            cov[ok] = 2.0 * self._problem.errordef * np.linalg.pinv(H[ok], hermitian=True)
        # as FitResult.covariance (uncertainties.covariance_from_hessian) does for one fit:
        # a parameter whose variance comes out non-positive gets NaN, not a wrong error
        d = np.diagonal(cov, axis1=1, axis2=2)
        bad = ~(d > 0)
        return np.where(bad[:, :, None] | bad[:, None, :], np.nan, cov)

    def errors(self) -> np.ndarray:
        """``(batch, n)`` one-sigma Hesse errors from :meth:`covariance`."""
        cov = self.covariance()
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    # -- members -----------------------------------------------------------------------
    def _build_member(self, k: int) -> FitResult:
        problem = self._problem
        assert problem is not None
        status = Status(int(self.status[k]))
        x = self.x[k]
        data = _member_data(self._data, k)
        mask = self._extra["mask"][k] if problem.kind == "lsq" else None
        loss = _member_loss(problem, data, mask, str(self.ids[k]))
        H = self._extra["hessian"][k]
        inv = None
        if np.all(np.isfinite(H)):
            try:
                inv = np.linalg.inv(H)
            except np.linalg.LinAlgError:
                inv = None
        params = _plain_params(problem, x)
        nfev = int(self._extra["nfev"][k])
        njev = int(self._extra["njev"][k])
        counts = (
            {"nfev": 0, "ngrad": 0, "nhess": 1, "nres": nfev, "njac": njev}
            if problem.method == "lm"
            else {"nfev": nfev, "ngrad": nfev, "nhess": 1, "nres": 0, "njac": 0}
        )
        info = {
            **counts,
            "niter": int(self.niter[k]),
            "backend": problem.backend,
            "loop": "batched",
            "method": "gauss-newton" if problem.method == "lm" else "bfgs",
            "id": self.ids[k],
            "index": k,
            "nobs": int(self.nobs[k]),
            "original": None,
        }
        if problem.method == "lm":
            info["lambda"] = float(self._extra["lam"][k])
        result = FitResult(
            params=params,
            fmin=float(self.fmin[k]),
            edm=float(self.edm[k]),
            status=status,
            tol=problem.minimizer.tol,
            errordef=problem.errordef,
            loss=loss,
            minimizer=problem.minimizer,
            criterion=None,
            approx=Approximations(self._extra["gradient"][k], H, inv),
            info=info,
            message=self._messages.get(k),
        )
        if inv is not None and status is not Status.SINGULAR:
            result.covariance(method="approx")
        return result

    # -- summaries ---------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        """``{status name: count}``, most frequent first."""
        counts = Counter(Status(int(s)).name for s in self.status)
        return dict(counts.most_common())

    def __str__(self) -> str:
        from ._render import batch_text

        return batch_text(self)

    def _repr_html_(self) -> str:
        from ._render import batch_html

        return batch_html(self)

    def __repr__(self) -> str:
        return (
            f"<BatchFitResult {len(self)} members, {int(self.valid.sum())} valid, "
            f"method={self.info['method']}>"
        )


def _final_status(problem: _Problem, cat: dict, x0: np.ndarray) -> tuple[np.ndarray, dict]:
    """Statuses after the vectorised solve, with per-member messages where useful."""
    from .solvers.lm_least_squares import lsq_goal

    status = cat["status"].astype(np.int64)
    messages: dict[int, str] = {}
    n = len(problem.names)
    tol_errordef = problem.settings["tol_errordef"]
    if problem.method == "lm":
        # a fit that cannot move but meets its goal (or zfit's rule) converged
        nostep = status == int(Status.NO_STEP)
        nobs = cat["nobs"]
        goal = lsq_goal(np, tol_errordef, cat["fmin"], nobs, n)
        ok = nostep & ((cat["edm"] < goal) | (cat["edm"] < tol_errordef))
        status[ok] = int(Status.CONVERGED)
    else:
        # BFGS: the exact Hessian's EDM decides
        conv = status == int(Status.CONVERGED)
        status[conv & ~(cat["edm"] < tol_errordef)] = int(Status.NOT_CONVERGED)
    singular = (status == int(Status.CONVERGED)) & (cat["singular"] > 0)
    status[singular] = int(Status.SINGULAR)
    nonfinite_start = ~np.all(np.isfinite(x0), axis=1)
    status[nonfinite_start] = int(Status.NONFINITE)
    for k in np.flatnonzero(nonfinite_start):
        messages[int(k)] = f"{Status.NONFINITE.message}: the start value is not finite"
    status[(status == int(Status.CONVERGED)) & ~np.isfinite(cat["fmin"])] = int(Status.NONFINITE)
    if problem.kind == "lsq":
        nobs = cat["nobs"].astype(np.int64)
        few = (nobs < n) & ~nonfinite_start
        status[few] = int(Status.SINGULAR)
        for k in np.flatnonzero(few):
            messages[int(k)] = f"stopped: {_too_few_message(int(nobs[k]), n)}"
    return status, messages
