"""JAX: autodiff and jit, float64 enabled. Imported only when a JAX loss is used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..exceptions import BackendNotAvailable
from .base import Array, Backend, CompiledLoss

__all__ = ["JaxBackend", "import_jax"]


def import_jax() -> Any:
    """Import jax with float64 enabled, or raise :class:`BackendNotAvailable`."""
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendNotAvailable(
            "the JAX backend needs jax: install it with `pip install zfitlite[jax]`"
        ) from exc
    jax.config.update("jax_enable_x64", True)
    return jax


class JaxBackend(Backend):
    """Derivatives by ``jax.grad``/``jax.hessian``/``jax.jacfwd``, every function jitted.

    Each build wraps the user's function in a new Python function, so a build after a
    cache reset really traces and compiles again.
    """

    name = "jax"
    compiles = True

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
    ) -> CompiledLoss:
        jax = import_jax()
        jnp = jax.numpy

        def pure(x: Any) -> Any:
            out = jnp.asarray(func(x))
            if out.size != 1:
                raise ValueError(
                    f"the loss returned an array of shape {out.shape} where a scalar is due"
                )
            if jnp.iscomplexobj(out):
                raise ValueError("the loss returned a complex value; it must be real")
            return jnp.reshape(out, ())

        value_j = jax.jit(pure)
        vg_j = jax.jit(jax.value_and_grad(pure))
        hess_j = jax.jit(jax.hessian(pure))

        def value(x: Array) -> float:
            return float(value_j(x))

        if gradient is None:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                v, g = vg_j(x)
                return float(v), np.asarray(g)
        else:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                return float(value_j(x)), np.asarray(gradient(x), dtype=np.float64)

        if hessian is None:

            def hess(x: Array) -> Array:
                return np.asarray(hess_j(x))
        else:

            def hess(x: Array) -> Array:
                return np.asarray(hessian(x), dtype=np.float64)

        return CompiledLoss("jax", value, value_and_gradient, hess, native={"value": pure})

    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Array | None = None,
    ) -> CompiledLoss:
        jax = import_jax()
        jnp = jax.numpy

        def res_pure(x: Any) -> Any:
            return jnp.reshape(residuals(x), (-1,))

        def value_pure(x: Any) -> Any:
            r = res_pure(x)
            return r @ r

        res_j = jax.jit(res_pure)
        jac_j = jax.jit(jax.jacfwd(res_pure)) if jacobian is None else None
        value_j = jax.jit(value_pure)
        vg_j = jax.jit(jax.value_and_grad(value_pure))
        hess_j = jax.jit(jax.hessian(value_pure))

        def res(x: Array) -> Array:
            return np.asarray(res_j(x))

        def jac(x: Array) -> Array:
            if jacobian is not None:
                return np.asarray(jacobian(x), dtype=np.float64)
            return np.asarray(jac_j(x))

        def value(x: Array) -> float:
            return float(value_j(x))

        def value_and_gradient(x: Array) -> tuple[float, Array]:
            v, g = vg_j(x)
            return float(v), np.asarray(g)

        def hess(x: Array) -> Array:
            return np.asarray(hess_j(x))

        return CompiledLoss(
            "jax",
            value,
            value_and_gradient,
            hess,
            residuals=res,
            jacobian=jac,
            native={"value": value_pure, "residuals": res_pure},
        )
