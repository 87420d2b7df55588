"""Array operations for solver loops, so one solver body runs eagerly or compiled.

A native solver (Levenberg-Marquardt on residuals) is written once as pure functions
over an explicit state, using only the operations of an :class:`ArrayOps`: the array
namespace ``xp``, ``where``, ``cond``, ``while_loop``, ``svd`` and
``vmap`` (a function mapped over a leading batch axis).
:class:`NumpyOps` runs them as plain Python and numpy (a low-overhead eager loop);
the JAX backend's ops run them through ``lax`` so the whole solve compiles to one
program (and vectorises under ``vmap``). Solver files never import jax themselves.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

__all__ = [
    "BATCH_CACHE_ATTR",
    "COMPILE_POLICIES",
    "JAX_JIT_ATTR",
    "NATIVE_CACHE_ATTR",
    "TF_GRAPHS_ATTR",
    "ArrayOps",
    "NumpyOps",
    "cho_solve",
    "cholesky",
    "forget_native",
    "jit_on_repeat",
    "numpy_ops",
    "signature_token",
    "unrolled_cholesky_solve",
]

#: Attribute on a user's residual function holding the native solver functions built
#: from it (so losses sharing the function share one compiled solver).
NATIVE_CACHE_ATTR = "__zfitlite_lsq__"
#: Attribute on a user's residual function holding the TensorFlow graphs traced from it.
TF_GRAPHS_ATTR = "__zfitlite_tf_lsq__"
#: Attribute on a user's function holding the masked/batched versions minimize_batch built.
BATCH_CACHE_ATTR = "__zfitlite_batch_masked__"
#: Attribute on a user's function holding its jitted JAX value/gradient/Hessian functions of
#: ``(x, *args)``: losses that share the function (new data, same shapes) share the programs.
JAX_JIT_ATTR = "__zfitlite_jax_jit__"


def _holder(func: Callable, key: Any) -> tuple[Any, Any]:
    """Where things built for ``func`` are remembered, and under which key.

    On ``func`` itself; for a bound method (``model.residuals``), which takes no attributes
    and is a new object at each attribute access, on its instance, keyed also by the
    method's function. So a method of a model object compiles once, not at every fit.
    """
    if inspect.ismethod(func):
        return func.__self__, (func.__func__, key)
    return func, key


def same_callable(a: Any, b: Any) -> bool:
    """``a is b``, or the same bound method (a new object at every attribute access)."""
    if a is b:
        return True
    return (
        inspect.ismethod(a)
        and inspect.ismethod(b)
        and a.__self__ is b.__self__
        and a.__func__ is b.__func__
    )


def forget_native(func: Callable) -> None:
    """Drop the native solver functions and graphs remembered on ``func`` (the next solve
    retraces); for a bound method, everything remembered on its instance."""
    holder, _ = _holder(func, None)
    for attr in (NATIVE_CACHE_ATTR, TF_GRAPHS_ATTR, BATCH_CACHE_ATTR, JAX_JIT_ATTR):
        try:
            delattr(holder, attr)
        except (AttributeError, TypeError):
            pass


def remembered(
    func: Callable,
    attr: str,
    key: Any,
    build: Callable[[], Any],
    valid: Callable[[Any], bool] | None = None,
) -> Any:
    """``build()``, remembered on ``func`` under ``attr[key]`` (see :func:`_holder`; built
    again each time where the holder takes no attributes, e.g. a class with ``__slots__``).

    What is built lives exactly as long as ``func`` (or the bound method's instance), so
    fresh closures do not accumulate compiled programs. ``valid(value)`` (optional) vets
    a remembered value, e.g. that it was built for this very ``func`` and not copied over
    from another one by ``functools.wraps``; an invalid one is built again.

    The one per-function cache of the package: compiled solvers, jitted functions, batch
    wrappers, loss wrappers of plain callables and ``from_data`` residuals all use it.
    """
    holder, key = _holder(func, key)
    cache = getattr(holder, attr, None)
    if isinstance(cache, dict) and key in cache and (valid is None or valid(cache[key])):
        return cache[key]
    value = build()
    try:
        setattr(holder, attr, {**(cache if isinstance(cache, dict) else {}), key: value})
    except (AttributeError, TypeError):
        pass
    return value


def remembered_jit(ops: Any, func: Callable, key: Any, make: Callable[[], Callable]) -> Callable:
    """``ops.jit(make())``, remembered on ``func`` (see :func:`remembered`).

    For solver loops that close over the user's functions. Not ``jit(loop,
    static_argnums=...)`` with those functions as static arguments: JAX's caches hold
    static arguments strongly, so every function ever fitted (a fresh closure per dataset,
    its data and its compiled program) would stay alive for the life of the process. Here
    the program goes with ``func``, and ``forget_native`` (``reset_cache``) drops it.
    """
    return remembered(func, JAX_JIT_ATTR, key, lambda: ops.jit(make()))


#: How a single fit on a compiling backend uses its compiled solver (:func:`jit_on_repeat`).
COMPILE_POLICIES = ("auto", "always", "never")


def _signature(obj: Any) -> Any:
    """Structure, shapes and dtypes of a call's arguments: what makes JAX compile again.

    The dtype objects themselves (hashable; their ``str`` costs ~3 us each), and JAX's
    weak type, on which ``jit`` specialises too.
    """
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return (type(obj), tuple(shape), obj.dtype, getattr(obj, "weak_type", False))
    if isinstance(obj, (tuple, list)):
        return (type(obj), *[_signature(o) for o in obj])
    if isinstance(obj, dict):
        return (dict, *[(k, _signature(v)) for k, v in sorted(obj.items(), key=repr)])
    return type(obj)


#: Each argument signature seen, numbered (:func:`signature_token`).
_SIGNATURES: dict[Any, int] = {}


def signature_token(obj: Any) -> int:
    """A small number standing for ``obj``'s signature (:func:`_signature`): the same for
    arguments of the same structure, shapes and dtypes. Cheap to hash, so a caller whose
    arguments do not change (a loss's data) computes it once and keeps it."""
    return _SIGNATURES.setdefault(_signature(obj), len(_SIGNATURES))


def jit_on_repeat(
    ops: Any,
    func: Callable,
    key: Any,
    make: Callable[[], Callable],
    signature: Any,
    policy: str,
) -> Callable | None:
    """The jitted solver (:func:`remembered_jit`) when it should run this call, else None.

    None tells the caller to run its eager loop (the same algorithm, one Python step at a
    time, on the backend's compiled functions). ``signature`` is a hashable stand-in for
    what the program depends on in the call's arguments (e.g. the parameter count and the
    :func:`signature_token` of the data). ``policy``:

    * ``"auto"``: None for the first call with a signature, the program from the second
      on. A new problem's first fit thus costs the compile of its residuals and Jacobian
      only (a NIST problem: 0.08-0.2 s against 0.5-0.65 s with the solver compiled, 2-core
      machine), a script that fits once never compiles the solver, and ragged data
      compile only the shapes that come back; a fit that repeats compiles (once) on its
      second call and runs compiled from then on.
    * ``"always"``: the program from the first call.
    * ``"never"``: None.

    Where the calls cannot be counted (``func`` takes no attributes, e.g. ``__slots__``),
    ``"auto"`` acts as ``"always"``.
    """
    if policy == "never":
        return None
    run = remembered_jit(ops, func, key, make)
    if policy == "always":
        return run
    seen_key = (key, "calls", signature)
    seen = remembered(func, JAX_JIT_ATTR, seen_key, lambda: [0])
    holder, held_key = _holder(func, seen_key)
    if getattr(holder, JAX_JIT_ATTR, {}).get(held_key) is not seen:
        return run
    seen[0] += 1
    return run if seen[0] >= 2 else None


#: LAPACK's divide-and-conquer SVD (float64), as ``numpy.linalg.svd`` uses it.
_DGESDD = scipy.linalg.lapack.dgesdd  # pyright: ignore[reportAttributeAccessIssue]
#: LAPACK's Cholesky factorisation and solve (float64), as ``scipy.linalg.cho_factor`` /
#: ``cho_solve`` call them, without their ~8 us of checks and wrapping around a small
#: matrix (10 against 1.5 us for a 3 x 3 factor and solve; the same numbers bit for bit).
_DPOTRF = scipy.linalg.lapack.dpotrf  # pyright: ignore[reportAttributeAccessIssue]
_DPOTRS = scipy.linalg.lapack.dpotrs  # pyright: ignore[reportAttributeAccessIssue]


def cholesky(H: np.ndarray) -> Any:
    """``(factor, lower)`` of a positive-definite ``H`` (``scipy.linalg.cho_factor``'s
    form, for :func:`cho_solve`), or None (not positive definite, or not finite)."""
    if type(H) is not np.ndarray or H.dtype != np.float64 or H.ndim != 2 or not H.size:
        try:
            c = scipy.linalg.cho_factor(H, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        return c if np.all(np.isfinite(c[0])) else None
    # a non-finite H fails in LAPACK or gives a non-finite factor: no separate check
    factor, info = _DPOTRF(H, lower=0, clean=0)
    return (factor, False) if info == 0 and np.isfinite(factor).all() else None


def cho_solve(c: tuple[np.ndarray, bool], b: np.ndarray) -> np.ndarray:
    """``H^-1 b`` from :func:`cholesky`'s factor."""
    if c[0].dtype == np.float64 and b.dtype == np.float64 and b.ndim == 1 and b.size:
        x, info = _DPOTRS(c[0], b, lower=int(c[1]))
        if info == 0:
            return x
    return scipy.linalg.cho_solve(c, b, check_finite=False)


class ArrayOps:
    """The operations a native solver loop may use (the numpy implementation).

    Attributes
    ----------
    name : str
        The backend's name.
    xp : module
        The array namespace (``numpy`` or ``jax.numpy``).
    compiles : bool
        True when :meth:`jit` really compiles.
    """

    name = "numpy"
    xp: Any = np
    compiles = False

    def while_loop(self, cond: Callable[[Any], Any], body: Callable[[Any], Any], state: Any) -> Any:
        """``while cond(state): state = body(state)``."""
        while cond(state):
            state = body(state)
        return state

    def cond(self, pred: Any, true_fn: Callable, false_fn: Callable, *operands: Any) -> Any:
        """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)`` (only one runs)."""
        return true_fn(*operands) if pred else false_fn(*operands)

    def where(self, pred: Any, a: Any, b: Any) -> Any:
        """Elementwise select; on numpy a Python scalar condition picks without copying."""
        if isinstance(pred, (bool, np.bool_)):
            return a if pred else b
        return np.where(pred, a, b)

    def svd(self, A: Any) -> tuple[Any, Any, Any]:
        """Thin SVD ``A = U diag(s) Vt``.

        A float64 matrix goes straight to LAPACK's ``dgesdd`` (the routine
        ``numpy.linalg.svd`` calls, without its ~4 us of Python around a small matrix:
        2.5 against 7 us for a 14 x 2 Jacobian, once per accepted step of the eager
        Levenberg-Marquardt loop); anything else, and a call LAPACK reports as failed,
        goes through ``numpy.linalg.svd`` (its result or its ``LinAlgError``).
        """
        if type(A) is np.ndarray and A.ndim == 2 and A.dtype == np.float64 and A.size:
            U, s, Vt, info = _DGESDD(A, compute_uv=1, full_matrices=0)
            if info == 0:
                return U, s, Vt
        return np.linalg.svd(A, full_matrices=False)

    def cholesky_solve(self, A: Any, b: Any) -> tuple[Any, Any]:
        """``(A^-1 b, ok)`` through a Cholesky factorisation; ``ok`` is False (and the
        solution not to be used) when ``A`` is not positive definite or the solution is
        not finite."""
        xp = self.xp
        L = xp.linalg.cholesky(A)  # NaN where A is not positive definite (JAX)
        ok = xp.all(xp.isfinite(L))
        x = xp.linalg.solve(xp.where(ok, A, xp.eye(A.shape[0])), b)
        ok = ok & xp.all(xp.isfinite(x))
        return xp.where(ok, x, 0.0), ok

    def jit(self, fn: Callable, static_argnums: tuple[int, ...] = ()) -> Callable:
        """Compile ``fn`` (identity on numpy)."""
        return fn

    # automatic derivatives: only backends that trace (JAX) have them
    def value_and_grad(self, fn: Callable) -> Callable:
        """``(x, args) -> (fn(x, args), gradient)`` (backends with automatic derivatives)."""
        raise NotImplementedError(f"the {self.name} ops have no automatic derivatives")

    def hessian(self, fn: Callable) -> Callable:
        """``(x, args) -> Hessian of fn`` (backends with automatic derivatives)."""
        raise NotImplementedError(f"the {self.name} ops have no automatic derivatives")

    def jacobian(self, fn: Callable) -> Callable:
        """``(x, args) -> Jacobian of fn`` (backends with automatic derivatives)."""
        raise NotImplementedError(f"the {self.name} ops have no automatic derivatives")

    def second_directional(self, fn: Callable) -> Callable:
        """``(x, v, args) -> second derivative of fn along v`` (automatic derivatives)."""
        raise NotImplementedError(f"the {self.name} ops have no automatic derivatives")

    def batched(self) -> ArrayOps:
        """The flavour of these ops for solves mapped over a batch (itself by default)."""
        return self

    def vmap(self, fn: Callable, in_axes: Any = 0) -> Callable:
        """``fn`` mapped over a leading batch axis of its arguments.

        ``in_axes`` is 0 (every argument batched) or a tuple with one entry per
        positional argument: 0 (batched along its leading axis; for a tuple or named
        tuple, every leaf) or None (shared by all members). Outputs (arrays or tuples of
        arrays) gain a leading batch axis. On numpy this is a Python loop over the members.
        """

        def mapped(*args: Any) -> Any:
            axes = (0,) * len(args) if in_axes == 0 else tuple(in_axes)
            if len(axes) != len(args):
                raise ValueError(f"vmap: in_axes has {len(axes)} entries for {len(args)} arguments")
            sizes = {_leading(a) for a, ax in zip(args, axes) if ax is not None}
            sizes.discard(None)
            if len(sizes) != 1:
                raise ValueError(f"vmap: batched arguments need one leading size, got {sizes}")
            (size,) = sizes
            assert size is not None
            outs = [
                fn(*(a if ax is None else _take(a, i) for a, ax in zip(args, axes)))
                for i in range(size)
            ]
            return _stack(outs)

        return mapped


def unrolled_cholesky_solve(xp: Any, A: Any, b: Any) -> tuple[Any, Any]:
    """``(A^-1 b, ok)`` by a Cholesky factorisation written out entry by entry.

    For a small ``n x n`` matrix (``n`` static): ``n (n + 1) / 2`` scalar formulas for the
    factor, then forward and back substitution, in the array namespace ``xp``, with no
    LAPACK call, so a compiled solver loop that uses it holds no custom call (see
    :class:`~zfitlite.backends.jax_backend.JaxOps`) and, under ``vmap``, a batch of
    matrices is factorised by vectorised arithmetic. The textbook row-by-row order (it
    agrees with LAPACK's ``potrf``/``potrs`` to rounding). ``ok`` is False (and the
    solution zero) when a pivot is not positive (``A`` not positive definite, or not
    finite) or the solution is not finite, as :meth:`ArrayOps.cholesky_solve` reports it.
    """
    n = A.shape[0]
    L: list[list[Any]] = [[None] * n for _ in range(n)]
    ok: Any = True
    for j in range(n):
        d = A[j, j]
        for k in range(j):
            d = d - L[j][k] * L[j][k]
        ok = ok & (d > 0)
        L[j][j] = xp.sqrt(xp.where(d > 0, d, 1.0))
        for i in range(j + 1, n):
            e = A[i, j]
            for k in range(j):
                e = e - L[i][k] * L[j][k]
            L[i][j] = e / L[j][j]
    y: list[Any] = []
    for i in range(n):
        e = b[i]
        for k in range(i):
            e = e - L[i][k] * y[k]
        y.append(e / L[i][i])
    x: list[Any] = [None] * n
    for i in reversed(range(n)):
        e = y[i]
        for k in range(i + 1, n):
            e = e - L[k][i] * x[k]
        x[i] = e / L[i][i]
    out = xp.stack(x)
    ok = ok & xp.all(xp.isfinite(out))
    return xp.where(ok, out, 0.0), ok


def jacobi_svd(ops: ArrayOps, A: Any, max_sweeps: int = 30) -> tuple[Any, Any, Any]:
    """Thin SVD of a tall ``(m, n)`` matrix by one-sided Jacobi rotations (Hestenes).

    Written with elementwise operations on columns only (no LAPACK call, no gather or
    scatter), so that under ``vmap`` a whole batch of small matrices is factorised by
    vectorised arithmetic: on a CPU, 10,000 SVDs of 20 x 2 matrices take ~20 ms through
    LAPACK's per-matrix calls and ~1-2 ms this way. Column pairs are rotated until every
    pair is orthogonal to machine precision (quadratic convergence; one rotation settles
    n = 2); the singular values are the column norms, sorted in descending order by a
    static sorting network. One-sided Jacobi has high relative accuracy (at least that of
    LAPACK's ``gesdd``). Meant for small ``n`` (the work grows as ``n^2`` per sweep);
    needs ``m >= n``.
    """
    xp = ops.xp
    n = A.shape[1]
    pairs = [(p, q) for p in range(n - 1) for q in range(p + 1, n)]

    def sweep(carry: tuple) -> tuple:
        k, U, V, _ = carry
        U, V = list(U), list(V)
        off = xp.zeros((), dtype=A.dtype)
        for p, q in pairs:
            up, uq = U[p], U[q]
            alpha, beta, gamma = up @ up, uq @ uq, up @ uq
            rel = xp.abs(gamma) / xp.maximum(xp.sqrt(alpha * beta), 1e-300)
            off = xp.maximum(off, rel)
            rotate = rel > 1e-15
            zeta = (beta - alpha) / xp.where(rotate, 2.0 * gamma, 1.0)
            sign = xp.where(zeta >= 0, 1.0, -1.0)
            t = sign / (xp.abs(zeta) + xp.sqrt(1.0 + zeta * zeta))
            c = xp.where(rotate, 1.0 / xp.sqrt(1.0 + t * t), 1.0)
            s = xp.where(rotate, c * t, 0.0)
            U[p], U[q] = c * up - s * uq, s * up + c * uq
            V[p], V[q] = c * V[p] - s * V[q], s * V[p] + c * V[q]
        return k + 1, tuple(U), tuple(V), off

    def more(carry: tuple) -> Any:
        return (carry[0] < max_sweeps) & (carry[3] > 1e-15)

    eye = xp.eye(n, dtype=A.dtype)
    start = (
        0,
        tuple(A[:, j] for j in range(n)),
        tuple(eye[j] for j in range(n)),
        1.0 + 0 * A[0, 0],
    )
    if n == 2:  # one rotation diagonalises a 2 x 2 Gram matrix
        _, U, V, _ = sweep(start)
    else:
        _, U, V, _ = ops.while_loop(more, sweep, start)
    U, V = list(U), list(V)
    s = [xp.sqrt(u @ u) for u in U]
    # sort descending: a static bubble-sort network of elementwise swaps
    for i in range(n - 1):
        for j in range(n - 1 - i):
            swap = s[j] < s[j + 1]
            for cols in (s, U, V):
                a, b = cols[j], cols[j + 1]
                cols[j], cols[j + 1] = xp.where(swap, b, a), xp.where(swap, a, b)
    U = [u / xp.where(sv > 0, sv, 1.0) for u, sv in zip(U, s)]
    return xp.stack(U, axis=1), xp.stack(s), xp.stack(V, axis=0)


def _leading(a: Any) -> int | None:
    """The leading size of an array, or of the first leaf of a tuple."""
    if isinstance(a, (tuple, list)):
        for leaf in a:
            size = _leading(leaf)
            if size is not None:
                return size
        return None
    return int(np.shape(a)[0]) if np.ndim(a) > 0 else None


def _take(a: Any, i: int) -> Any:
    """Member ``i`` of an array or of every leaf of a (named) tuple."""
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a)(*(_take(v, i) for v in a))
    if isinstance(a, (tuple, list)):
        return type(a)(_take(v, i) for v in a)
    return a[i]


def _stack(outs: list) -> Any:
    """Stack per-member outputs (arrays or (named) tuples of arrays) along a new axis 0."""
    first = outs[0]
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(_stack([o[k] for o in outs]) for k in range(len(first))))
    if isinstance(first, (tuple, list)):
        return type(first)(_stack([o[k] for o in outs]) for k in range(len(first)))
    return np.stack([np.asarray(o) for o in outs])


class NumpyOps(ArrayOps):
    """Plain Python control flow and numpy arrays."""

    def cholesky_solve(self, A: Any, b: Any) -> tuple[Any, Any]:
        c = cholesky(np.asarray(A))
        if c is None:
            return np.zeros_like(b), False
        x = cho_solve(c, np.asarray(b))
        ok = bool(np.all(np.isfinite(x)))
        return (x if ok else np.zeros_like(b)), ok


numpy_ops = NumpyOps()
