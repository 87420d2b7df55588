"""JAX: autodiff and jit, float64 enabled. Imported only when a JAX loss is used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..exceptions import BackendNotAvailable, LossOutputError
from .base import COMPLEX_FIX, SCALAR_FIX, Array, Backend, CompiledLoss
from .ops import (
    JAX_JIT_ATTR,
    ArrayOps,
    jacobi_svd,
    remembered,
    signature_token,
    unrolled_cholesky_solve,
)
from .sparse_numdiff import dense_jacobian

__all__ = ["JaxBackend", "JaxBatchOps", "JaxOps", "import_jax"]

_OPS_JIT_ATTR = "__zfitlite_ops_jit__"


def import_jax() -> Any:
    """Import jax with float64 enabled, or raise :class:`BackendNotAvailable`."""
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendNotAvailable(
            "the JAX backend needs jax: install it with `pip install zfitlite[jax]`"
        ) from exc
    jax.config.update("jax_enable_x64", True)
    global _CACHE_SET_UP
    if not _CACHE_SET_UP:  # the first time zfitlite sets up JAX
        _CACHE_SET_UP = True
        from ._jax_cache import enable
        from ._xla_flags import apply

        apply()  # no-op once JAX's backend has started
        enable(jax)
    return jax


_CACHE_SET_UP = False


class JaxOps(ArrayOps):
    """Solver-loop operations through ``jax.lax``: the loop compiles into one program.

    Jitted wrappers are memoised per function and static arguments, so a solver that
    asks for ``jit(fn)`` on every call reuses one wrapper and JAX's compilation cache.

    The SVD of a tall matrix with at most :attr:`JACOBI_MAX_N` columns is a one-sided
    Jacobi SVD in elementwise operations (:func:`~zfitlite.backends.ops.jacobi_svd`; for
    two columns one exact rotation), wider ones LAPACK's. Without a LAPACK call in it a
    solver loop holds no custom call, so on a CPU XLA compiles the whole loop into one
    function instead of dispatching each of its ~90 operations per step (see
    :mod:`._xla_flags`): a warm two-parameter NIST fit (Misra1a, BoxBOD, DanWood) takes
    0.6-0.8 of the time. Wider Jacobi SVDs need sweeps in a loop, which made the hoisted loop slow to
    compile (3 parameters: 0.7 -> 1.4 s, 5 parameters: 0.65 -> 3-6 s), so they stay on
    LAPACK.

    A positive-definite system of at most :attr:`UNROLLED_CHOLESKY_MAX_N` unknowns is solved
    by :func:`~zfitlite.backends.ops.unrolled_cholesky_solve` (a Cholesky factor written
    out entry by entry), larger ones by LAPACK: the damped Newton step of
    Levenberg-Marquardt on a scalar loss in ``minimize_batch`` (4,000 decay fits: 110 -> 84
    ms warm, 1.63 -> 1.38 s for the first call; same iterations).
    """

    name = "jax"
    compiles = True
    _batch: JaxBatchOps | None = None
    #: Widest matrix factorised by :func:`~zfitlite.backends.ops.jacobi_svd`.
    JACOBI_MAX_N = 2
    #: Largest system solved by :func:`~zfitlite.backends.ops.unrolled_cholesky_solve`.
    UNROLLED_CHOLESKY_MAX_N = 6

    def __init__(self) -> None:
        self._jax = import_jax()
        self.xp = self._jax.numpy

    def while_loop(self, cond: Callable, body: Callable, state: Any) -> Any:
        return self._jax.lax.while_loop(cond, body, state)

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        return self._jax.lax.cond(pred, true_fn, false_fn, *operands)

    def where(self, pred: Any, a: Any, b: Any) -> Any:
        return self.xp.where(pred, a, b)

    def svd(self, A: Any) -> tuple[Any, Any, Any]:
        m, n = A.shape
        if m >= n and n <= self.JACOBI_MAX_N:
            return jacobi_svd(self, A)
        return self.xp.linalg.svd(A, full_matrices=False)

    def cholesky_solve(self, A: Any, b: Any) -> tuple[Any, Any]:
        if A.shape[0] <= self.UNROLLED_CHOLESKY_MAX_N:
            return unrolled_cholesky_solve(self.xp, A, b)
        return super().cholesky_solve(A, b)

    def jit(self, fn: Callable, static_argnums: tuple[int, ...] = ()) -> Callable:
        # remembered on ``fn`` itself (not in a dict here), so a jitted closure is freed
        # with the closure
        return remembered(
            fn,
            _OPS_JIT_ATTR,
            tuple(static_argnums),
            lambda: self._jax.jit(fn, static_argnums=static_argnums),
        )

    def vmap(self, fn: Callable, in_axes: Any = 0) -> Callable:
        """``jax.vmap``: one vectorised program for every member of the batch."""
        return self._jax.vmap(fn, in_axes=in_axes)

    def batched(self) -> JaxBatchOps:
        """The flavour of these ops for solves mapped over a batch (see :class:`JaxBatchOps`)."""
        if JaxOps._batch is None:
            JaxOps._batch = JaxBatchOps()
        return JaxOps._batch

    def value_and_grad(self, fn: Callable) -> Callable:
        """``(x, args) -> (fn(x, args), gradient)`` for a scalar ``fn`` (reverse mode)."""
        return self._jax.value_and_grad(fn, argnums=0)

    def hessian(self, fn: Callable) -> Callable:
        """``(x, args) ->`` the Hessian of a scalar ``fn(x, args)`` with respect to ``x``
        (column by column over large data: :data:`HESSIAN_BY_COLUMNS_SIZE`)."""
        return _hessian(self._jax, fn)

    def jacobian(self, fn: Callable) -> Callable:
        """Forward-mode Jacobian of ``fn(x, args)`` with respect to ``x``."""
        return self._jax.jacfwd(fn, argnums=0)

    def second_directional(self, fn: Callable) -> Callable:
        """``(x, v, args) ->`` the second derivative of ``fn(x, args)`` along ``v`` (jvp of jvp)."""
        jax = self._jax

        def along(x: Any, v: Any, args: tuple) -> Any:
            def first(y: Any) -> Any:
                return jax.jvp(lambda t: fn(t, args), (y,), (v,))[1]

            return jax.jvp(first, (x,), (v,))[1]

        return along


class JaxBatchOps(JaxOps):
    """JAX ops for solves that run under ``vmap`` over many small problems.

    The SVD of a small tall matrix (``n <=`` :attr:`JACOBI_MAX_N` columns) is a one-sided
    Jacobi SVD in elementwise operations (:func:`~zfitlite.backends.ops.jacobi_svd`):
    batched, it is several times faster on a CPU than XLA's per-matrix LAPACK calls, and
    as accurate. Larger matrices use LAPACK as in :class:`JaxOps`.
    """

    JACOBI_MAX_N = 5

    def batched(self) -> JaxBatchOps:
        return self


#: From this many elements in the largest array a loss reads or makes (its data, a captured
#: array, an intermediate such as a per-event density), its Hessian is built one column at a
#: time (``n`` forward-over-reverse products in a ``lax.map``) instead of ``jax.hessian``'s
#: ``n`` columns at once, which holds ``n`` copies of every per-event intermediate. Measured
#: (2-core CPU, Gauss + exponential NLL, 4 parameters): 10^7 events 7.0 s and +5.4 GB ->
#: 2.7 s and +2.0 GB (the gradient alone: 0.76 s, +0.8 GB); 10^4 events 0.80 -> 0.59 ms;
#: 100 events 53 -> 129 us, hence the threshold.
HESSIAN_BY_COLUMNS_SIZE = 4096


def _largest_array(jax: Any, fn: Callable, *operands: Any) -> int:
    """The size of the largest array ``fn`` reads, captures or makes at its top level."""
    closed = jax.make_jaxpr(fn)(*operands)
    sizes = [int(np.size(c)) for c in closed.consts]
    for var in (*closed.jaxpr.invars, *(v for e in closed.jaxpr.eqns for v in e.outvars)):
        shape = getattr(var.aval, "shape", ())
        sizes.append(int(np.prod(shape)) if shape else 1)
    return max(sizes, default=1)


def _hessian(jax: Any, pure: Callable) -> Callable:
    """``(x, *data) -> H``: ``jax.hessian(pure)`` for small data, column by column for
    large (:data:`HESSIAN_BY_COLUMNS_SIZE`); the choice is made once per traced shape."""
    at_once = jax.hessian(pure)
    grad = jax.grad(pure)

    def hessian(x: Any, *data: Any) -> Any:
        if _largest_array(jax, pure, x, *data) < HESSIAN_BY_COLUMNS_SIZE:
            return at_once(x, *data)

        def column(v: Any) -> Any:
            return jax.jvp(lambda y: grad(y, *data), (x,), (v,))[1]

        # row k is H e_k; transposed, entry (i, j) is d(grad_i)/dx_j as jax.hessian's
        return jax.lax.map(column, jax.numpy.eye(x.shape[0], dtype=x.dtype)).T

    return hessian


def _hvp_jit(jax: Any, func: Callable) -> Callable:
    """``jit((x, v, *data) -> H(x) v)`` of a scalar ``func``: forward over reverse, one
    pass of each, never the Hessian."""

    def scalar(x: Any, *data: Any) -> Any:
        return jax.numpy.reshape(jax.numpy.asarray(func(x, *data)), ())

    def hvp(x: Any, v: Any, *data: Any) -> Any:
        return jax.jvp(lambda y: jax.grad(scalar)(y, *data), (x,), (v,))[1]

    return jax.jit(hvp)


class JaxBackend(Backend):
    """Derivatives by ``jax.grad``/``jax.hessian``/``jax.jacfwd``, every function jitted.

    Each build wraps the user's function in a new Python function, so a build after a
    cache reset really traces and compiles again.
    """

    name = "jax"
    compiles = True
    _ops: JaxOps | None = None

    @property
    def ops(self) -> JaxOps:
        """``lax``-based loop operations: native solvers compile into one program."""
        if JaxBackend._ops is None:
            JaxBackend._ops = JaxOps()
        return JaxBackend._ops

    def traceable(self, func: Callable, n: int) -> bool:
        jax = import_jax()
        try:
            jax.eval_shape(func, jax.ShapeDtypeStruct((n,), np.float64))
        except Exception:
            return False
        return True

    def scalar(
        self,
        func: Callable,
        n: int,
        *,
        gradient: Callable | None = None,
        hessian: Callable | None = None,
        typical: Array | None = None,
        args: tuple = (),
    ) -> CompiledLoss:
        jax = import_jax()
        jnp = jax.numpy
        args = tuple(jnp.asarray(a) for a in args)

        def build() -> tuple[Callable, Callable, Callable]:
            def pure(x: Any, *data: Any) -> Any:
                out = jnp.asarray(func(x, *data))
                if out.size != 1:
                    raise LossOutputError(
                        f"the loss returned an array of shape {out.shape} where a scalar is "
                        f"due; {SCALAR_FIX}"
                    )
                if jnp.iscomplexobj(out):
                    raise LossOutputError(
                        f"the loss returned a complex value ({out.dtype}); {COMPLEX_FIX}"
                    )
                return jnp.reshape(out, ())

            return (
                jax.jit(pure),
                jax.jit(jax.value_and_grad(pure)),
                jax.jit(_hessian(jax, pure)),
            )

        # compiled once per function: a loss on new data of the same shapes reuses them
        value_j, vg_j, hess_j = remembered(func, JAX_JIT_ATTR, "scalar", build)

        def value(x: Array) -> float:
            return float(value_j(x, *args))

        if gradient is None:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                v, g = vg_j(x, *args)
                return float(v), np.asarray(g)
        else:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                return float(value_j(x, *args)), np.asarray(gradient(x, *args), dtype=np.float64)

        if hessian is None:

            def hess(x: Array) -> Array:
                return np.asarray(hess_j(x, *args))
        else:

            def hess(x: Array) -> Array:
                return np.asarray(hessian(x, *args), dtype=np.float64)

        hvp: Callable[[Array, Array], Array] | None = None
        if gradient is None:
            # compiled when first called (large fits only: see zfitlite.matrix_free)
            hvp_j = remembered(func, JAX_JIT_ATTR, "scalar_hvp", lambda: _hvp_jit(jax, func))

            def hessian_times(x: Array, v: Array) -> Array:
                return np.asarray(hvp_j(x, v, *args))

            hvp = hessian_times

        return CompiledLoss("jax", value, value_and_gradient, hess, hvp=hvp)

    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Array | None = None,
        args: tuple = (),
    ) -> CompiledLoss:
        jax = import_jax()
        jnp = jax.numpy
        args = tuple(jnp.asarray(a) for a in args)

        def build() -> tuple[Callable, ...]:
            def res_unbound(x: Any, *data: Any) -> Any:
                r = jnp.asarray(residuals(x, *data))
                if jnp.iscomplexobj(r):
                    raise LossOutputError(
                        f"the residuals are complex ({r.dtype}); they must be real: return "
                        "e.g. jnp.concatenate([r.real, r.imag])"
                    )
                return jnp.reshape(r, (-1,))

            def value_unbound(x: Any, *data: Any) -> Any:
                r = res_unbound(x, *data)
                return r @ r

            return (
                jax.jit(res_unbound),
                jax.jit(jax.jacfwd(res_unbound)),
                jax.jit(value_unbound),
                jax.jit(jax.value_and_grad(value_unbound)),
                jax.jit(_hessian(jax, value_unbound)),
            )

        # compiled once per residual function: new data of the same shapes reuses them
        res_j, jac_j, value_j, vg_j, hess_j = remembered(residuals, JAX_JIT_ATTR, "lsq", build)

        def res(x: Array) -> Array:
            return np.asarray(res_j(x, *args))

        def jac(x: Array) -> Array:
            if jacobian is not None:
                return dense_jacobian(jacobian(x, *args))  # a sparse one: a clear error
            return np.asarray(jac_j(x, *args))

        def value(x: Array) -> float:
            return float(value_j(x, *args))

        def value_and_gradient(x: Array) -> tuple[float, Array]:
            v, g = vg_j(x, *args)
            return float(v), np.asarray(g)

        def hess(x: Array) -> Array:
            return np.asarray(hess_j(x, *args))

        return CompiledLoss(
            "jax",
            value,
            value_and_gradient,
            hess,
            residuals=res,
            jacobian=jac,
            native={
                # the unbound function and its data, for compiled solvers reused across data
                "residuals_args": residuals if jacobian is None else None,
                "args": args,
                # what a compiled solver's program depends on in the data (shapes, dtypes)
                "args_signature": signature_token(args),
            },
        )
