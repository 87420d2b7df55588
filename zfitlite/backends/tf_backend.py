"""TensorFlow: ``tf.function`` graphs and ``tf.GradientTape`` derivatives, in float64.

Imported only when a TensorFlow loss is used (``backend="tensorflow"``, or ``"auto"``
when tensorflow is already imported and the function returns a ``tf.Tensor``);
``import zfitlite`` never imports tensorflow.

Every function is traced with ``autograph=False`` for a float64 input of the loss's
size and called through its concrete function (the cheapest way to call a graph from
Python). Native solver loops stay eager numpy (:attr:`TensorFlowBackend.ops`): the
Levenberg-Marquardt driver runs its Python loop over the traced residual and Jacobian
functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..exceptions import BackendNotAvailable, LossOutputError
from .base import COMPLEX_FIX, SCALAR_FIX, Array, Backend, CompiledLoss, after_x
from .ops import TF_GRAPHS_ATTR, remembered

__all__ = ["TensorFlowBackend", "import_tensorflow"]

_tf: Any = None


def import_tensorflow() -> Any:
    """Import tensorflow, or raise :class:`BackendNotAvailable` naming the extra to install."""
    global _tf
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise BackendNotAvailable(
            "the TensorFlow backend needs tensorflow: install it with "
            "`pip install zfitlite[tensorflow]`"
        ) from exc
    _tf = tf
    return tf


def _float64_output(out: Any, what: str) -> Any:
    """``out`` as a float64 tensor, or a clear error for complex or lower-precision output.

    Runs while tracing, so a wrong dtype is reported once, before any number is computed.
    A loss computed in float32 is rejected rather than cast: its gradient is good to ~1e-7
    only, which would make ``tol`` (the EDM goal) meaningless.
    """
    tf = _tf
    t = out if isinstance(out, tf.Tensor) else tf.convert_to_tensor(out, dtype_hint=tf.float64)
    if t.dtype.is_complex:
        raise LossOutputError(f"the {what} is complex ({t.dtype.name}); {COMPLEX_FIX}")
    if t.dtype != tf.float64:
        raise TypeError(
            f"the {what} is a {t.dtype.name} tensor; zfitlite works in float64 (x arrives as "
            "tf.float64): create constants with dtype=tf.float64, or tf.cast the result "
            "to tf.float64 if the lower precision is intended"
        )
    return t


def _scalar_output(out: Any) -> Any:
    t = _float64_output(out, "loss value")
    size = t.shape.num_elements()
    if size is not None and size != 1:
        raise LossOutputError(
            f"the loss returned an array of shape {tuple(t.shape)} where a scalar is due; "
            + SCALAR_FIX
        )
    return _tf.reshape(t, ())


def _residual_output(out: Any) -> Any:
    return _tf.reshape(_float64_output(out, "residuals"), (-1,))


def _hessian(value: Callable[[Any], Any], x: Any) -> Any:
    """Exact Hessian of a scalar ``value(x)`` by nested tapes (Jacobian of the gradient)."""
    tf = _tf
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            v = value(x)
        g = inner.gradient(v, x, unconnected_gradients=zero)
    return outer.jacobian(g, x, unconnected_gradients=zero)


def _value_and_gradient(value: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    tf = _tf
    with tf.GradientTape() as tape:
        tape.watch(x)
        v = value(x)
    g = tape.gradient(v, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # tf.gather and friends give IndexedSlices: make the gradient a dense tensor
    return v, tf.convert_to_tensor(g)


def _residual_jacobian(res: Callable[[Any], Any], x: Any, n: int) -> Any:
    """The ``(m, n)`` Jacobian of ``res(x)``.

    Forward mode, one Jacobian-vector product per parameter, when there are no more
    parameters than residuals (the usual curve fit: cost ``n`` residual evaluations);
    ``tape.jacobian`` (reverse mode, vectorised over the residuals) otherwise. Reverse
    mode over many residuals would build ``(m, m)`` intermediates.
    """
    tf = _tf
    zero = tf.UnconnectedGradients.ZERO
    with tf.GradientTape() as tape:
        tape.watch(x)
        r = res(x)
    m = r.shape[0]
    if m is not None and m < n:
        return tape.jacobian(r, x, unconnected_gradients=zero)
    eye = tf.eye(n, dtype=tf.float64)
    columns = []
    for j in range(n):
        with tf.autodiff.ForwardAccumulator(x, eye[j]) as acc:
            rj = res(x)
        columns.append(acc.jvp(rj, unconnected_gradients=zero))
    return tf.stack(columns, axis=1)


class _Concrete:
    """A ``tf.function`` called through its concrete function for fixed input specs.

    Traced on the first call (``tf.function`` keeps the trace, so another ``_Concrete``
    with the same function and specs reuses it), then called with ``x`` as a float64
    tensor followed by the fixed tensors ``consts``.
    """

    __slots__ = ("_cf", "_consts", "_fn", "_specs")

    def __init__(self, fn: Any, specs: Sequence[Any], consts: Sequence[Any] = ()) -> None:
        self._fn = fn
        self._specs = tuple(specs)
        self._consts = tuple(consts)
        self._cf: Any = None

    def __call__(self, x: Array) -> Any:
        cf = self._cf
        if cf is None:
            cf = self._cf = self._fn.get_concrete_function(*self._specs)
        return cf(_tf.constant(x, _tf.float64), *self._consts)


def _as_tensor(a: Any) -> Any:
    """Data for ``args``: float arrays become float64 tensors, others keep their dtype."""
    tf = _tf
    if isinstance(a, tf.Tensor):
        return tf.cast(a, tf.float64) if a.dtype.is_floating else a
    arr = np.asarray(a)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64, copy=False)
    return tf.constant(arr)


class _LeastSquaresGraphs:
    """The ``tf.function`` graphs of one residual function and parameter count.

    Remembered on the residual function (attribute ``TF_GRAPHS_ATTR``), so losses that
    share it (``LeastSquares.from_data`` with the same model and new data of the same
    shape) reuse the traces; the data are inputs of the graphs, not constants.
    ``LeastSquares.reset_cache`` forgets them.
    """

    def __init__(self, residuals: Callable, n: int) -> None:
        tf = _tf

        def res(x: Any, *args: Any) -> Any:
            return _residual_output(residuals(x, *args))

        def value(x: Any, *args: Any) -> Any:
            r = res(x, *args)
            return tf.reduce_sum(r * r)

        def fn(f: Callable) -> Any:
            return tf.function(f, autograph=False)

        self.residuals = fn(res)
        self.jacobian = fn(lambda x, *args: _residual_jacobian(lambda y: res(y, *args), x, n))
        self.value = fn(value)
        self.value_and_gradient = fn(
            lambda x, *args: _value_and_gradient(lambda y: value(y, *args), x)
        )
        self.hessian = fn(lambda x, *args: _hessian(lambda y: value(y, *args), x))


def _least_squares_graphs(residuals: Callable, n: int) -> _LeastSquaresGraphs:
    return remembered(residuals, TF_GRAPHS_ATTR, n, lambda: _LeastSquaresGraphs(residuals, n))


class TensorFlowBackend(Backend):
    """Derivatives by ``tf.GradientTape``, every function a ``tf.function`` graph, float64.

    Each :meth:`scalar` build wraps the user's function in new ``tf.function`` objects,
    so a build after a cache reset traces again. Least-squares graphs are shared by the
    losses built on one residual function (see :class:`_LeastSquaresGraphs`).

    User-supplied ``gradient``/``hessian``/``jacobian`` callables are called eagerly with
    the parameters as a numpy array (and, for ``jacobian``, the data as tensors), as on
    the other backends; their results are converted to float64 numpy arrays.
    """

    name = "tensorflow"
    compiles = True

    def __init__(self) -> None:
        import_tensorflow()

    def traceable(self, func: Callable, n: int) -> bool:
        """True when ``func`` traces in graph mode for a float64 ``(n,)`` tensor and returns a tensor."""
        tf = import_tensorflow()
        try:
            concrete = tf.function(func, autograph=False).get_concrete_function(
                tf.TensorSpec((n,), tf.float64)
            )
        except Exception:
            return False
        return isinstance(concrete.structured_outputs, tf.Tensor)

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
        """Graphs of ``func(x, *args)``: ``args`` are bound as constants (new data traces anew)."""
        tf = import_tensorflow()
        spec = tf.TensorSpec((n,), tf.float64)
        consts = tuple(_as_tensor(a) for a in args)
        if args:
            gradient, hessian = (
                None if f is None else functools.partial(after_x, f, args)
                for f in (gradient, hessian)
            )

        def pure(x: Any) -> Any:
            return _scalar_output(func(x, *consts))

        def fn(f: Callable) -> Any:
            return tf.function(f, autograph=False, input_signature=[spec])

        value_tf = fn(pure)
        value_c = _Concrete(value_tf, [])

        def value(x: Array) -> float:
            return float(value_c(x))

        if gradient is None:
            vg_c = _Concrete(fn(lambda x: _value_and_gradient(pure, x)), [])

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                v, g = vg_c(x)
                return float(v), g.numpy()
        else:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                return float(value_c(x)), np.asarray(gradient(x), dtype=np.float64)

        if hessian is None:
            hess_c = _Concrete(fn(lambda x: _hessian(pure, x)), [])

            def hess(x: Array) -> Array:
                return hess_c(x).numpy()
        else:

            def hess(x: Array) -> Array:
                return np.asarray(hessian(x), dtype=np.float64)

        return CompiledLoss(
            "tensorflow",
            value,
            value_and_gradient,
            hess,
            native={"value": value_tf, "residuals_args": None},
        )

    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Array | None = None,
        args: tuple = (),
    ) -> CompiledLoss:
        tf = import_tensorflow()
        consts = tuple(_as_tensor(a) for a in args)
        specs = (
            tf.TensorSpec((n,), tf.float64),
            *(tf.TensorSpec(c.shape, c.dtype) for c in consts),
        )
        graphs = _least_squares_graphs(residuals, n)

        def call(f: Any) -> _Concrete:
            return _Concrete(f, specs, consts)

        res_c, value_c = call(graphs.residuals), call(graphs.value)
        vg_c, hess_c = call(graphs.value_and_gradient), call(graphs.hessian)
        jac_c = call(graphs.jacobian) if jacobian is None else None

        def res(x: Array) -> Array:
            return res_c(x).numpy()

        if jac_c is not None:

            def jac(x: Array) -> Array:
                return jac_c(x).numpy()
        else:

            def jac(x: Array) -> Array:
                return np.asarray(jacobian(x, *consts), dtype=np.float64)  # pyright: ignore[reportOptionalCall]

        def value(x: Array) -> float:
            return float(value_c(x))

        def value_and_gradient(x: Array) -> tuple[float, Array]:
            v, g = vg_c(x)
            return float(v), g.numpy()

        def hess(x: Array) -> Array:
            return hess_c(x).numpy()

        return CompiledLoss(
            "tensorflow",
            value,
            value_and_gradient,
            hess,
            residuals=res,
            jacobian=jac,
            native={"residuals": graphs.residuals, "residuals_args": None, "args": consts},
        )
