"""The batch's problem as plain picklable data, and the members' data (missing points)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.ops import BATCH_CACHE_ATTR, numpy_ops, remembered
from ..loss import BaseLoss, LeastSquares, SimpleLoss, _CallableLoss
from ..params import Params


@dataclass(frozen=True)
class _Problem:
    """What a chunk needs to solve its members (pickled to workers).

    ``kind`` is ``"lsq"`` (``func`` gives residuals) or ``"scalar"`` (``func`` gives the
    loss value); ``method`` is ``"lm"``, ``"lm_hessian"``, ``"bfgs"`` (vectorised on JAX)
    or ``"each"``
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
    backend: str | None  # the vectorised solve's backend; None: each member fit picks its own
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
    from ..backends import jax_available

    if not jax_available():
        return False
    from ..backends.jax_backend import import_jax

    jax = import_jax()
    specs = [jax.ShapeDtypeStruct(a.shape[1:], a.dtype) for a in data]
    try:
        out = jax.eval_shape(func, jax.ShapeDtypeStruct((n,), np.float64), *specs)
    except Exception:
        return False
    size = int(np.prod(out.shape))
    return size >= 1 if kind == "lsq" else size == 1


def _filled(xp: Any, data: tuple) -> tuple:
    """The data with NaN entries (missing observations) replaced by 0; integer arrays as
    they are. The one place that fills missing data (vectorised and member-by-member)."""
    return tuple(
        xp.where(xp.isnan(a), 0.0, a) if xp.issubdtype(a.dtype, xp.floating) else a for a in data
    )


def _prepare_member(ops: Any, func: Callable, x0: Any, data: tuple) -> tuple:
    """``(mask, filled data)``: NaN data replaced by 0 and the residuals they leave out.

    A residual is missing when it is NaN with the data as given but not with the NaNs
    filled in (so a bad start, which is NaN either way, stays visible as non-finite).
    Written with ``ops.xp``: traced inside the vectorised solve, numpy for one member.
    """
    xp = ops.xp
    filled = _filled(xp, data)
    r_raw = xp.reshape(xp.asarray(func(x0, *data)), (-1,))
    r_fill = xp.reshape(xp.asarray(func(x0, *filled)), (-1,))
    mask = xp.isnan(r_raw) & ~xp.isnan(r_fill)
    return mask, filled


def _missing_mask(func: Callable, x0: np.ndarray, data: tuple) -> np.ndarray:
    """:func:`_prepare_member`'s mask of one member, on numpy (member-by-member fits)."""
    with np.errstate(all="ignore"):
        return _prepare_member(numpy_ops, func, x0, data)[0]


def _member_data(data: tuple[np.ndarray, ...], i: int) -> tuple[np.ndarray, ...]:
    return tuple(a[i] for a in data)


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
        filled = _filled(np, data)
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


def _plain_params(problem: _Problem, values: np.ndarray) -> Params:
    """Params with these values, unvalidated (a NaN start or end point is allowed here)."""
    return problem.template.with_values(values)


def _too_few_message(nobs: int, n: int) -> str:
    if nobs == 0:
        return "every observation of this member is missing (NaN): there is nothing to fit"
    return (
        f"only {nobs} observed point(s) for {n} parameters: the fit is underdetermined "
        "(too many missing observations)"
    )
