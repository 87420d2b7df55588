"""Plain numpy: user derivatives when given, accurate numerical differences otherwise."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse

from .base import Array, Backend, CompiledLoss, RawCounter, after_x, real_scalar
from .numdiff import gradient as nd_gradient
from .numdiff import hessian as nd_hessian
from .numdiff import hessian_from_gradient as nd_hessian_from_gradient
from .numdiff import hessian_from_gradient_at as nd_hessian_from_gradient_at
from .numdiff import jacobian as nd_jacobian
from .sparse_numdiff import (
    HESSIAN_STEP_EXACT,
    HESSIAN_STEP_NOISY,
    SparsePattern,
    grouped_hessian,
    grouped_jacobian,
    hessian_pattern,
    is_sparse,
)

__all__ = ["VALUE_BEFORE_FAILURE", "NumpyBackend"]

#: Attribute set on an exception raised by a derivative after the value at ``x`` was
#: computed: that value, so the fit's best point includes it (see the evaluator).
VALUE_BEFORE_FAILURE = "_zfitlite_value_at_x"


def _with_value(value: Any, derivative: Callable[[], Any]) -> tuple[Any, Any]:
    """``(value, derivative())``; if the derivative raises, the value rides on the error."""
    try:
        return value, derivative()
    except Exception as exc:
        try:
            setattr(exc, VALUE_BEFORE_FAILURE, value)
        except AttributeError:  # an exception type without a __dict__
            pass
        raise


class NumpyBackend(Backend):
    """Evaluates the user's function eagerly; nothing is compiled, nothing to cache."""

    name = "numpy"
    compiles = False

    def traceable(self, func: Callable, n: int) -> bool:
        return True

    def scalar(
        self,
        func: Callable,
        n: int,
        *,
        gradient: Callable | None = None,
        hessian: Callable | None = None,
        typical: Any = None,
        args: tuple = (),
    ) -> CompiledLoss:
        if args:  # the data after x, bound once
            func, gradient, hessian = (  # pyright: ignore[reportAssignmentType]
                None if f is None else functools.partial(after_x, f, args)
                for f in (func, gradient, hessian)
            )
        raw = RawCounter()
        func, gradient, hessian = (raw.wrap(f) for f in (func, gradient, hessian))
        fd_gradient = 4 * n + 1  # Richardson central differences (<= 4 n + 1 near a bound)

        def value(x: Array) -> float:
            return func(x)

        if gradient is not None:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                return _with_value(func(x), lambda: np.asarray(gradient(x), dtype=np.float64))
        else:

            def value_and_gradient(x: Array) -> tuple[float, Array]:
                return _with_value(
                    func(x), lambda: nd_gradient(lambda y: real_scalar(func(y)), x, typical)
                )

        hess_at: Callable[[Array, float, Array], Array] | None = None
        if hessian is not None:

            def hess(x: Array) -> Array:
                return np.asarray(hessian(x), dtype=np.float64)
        elif gradient is not None:

            def hess_at_gradient(x: Array, f: float, g: Array) -> Array:
                return nd_hessian_from_gradient_at(
                    lambda y: np.asarray(gradient(y), dtype=np.float64), x, g, typical
                )

            hess_at = hess_at_gradient

            def hess(x: Array) -> Array:
                return nd_hessian_from_gradient(
                    lambda y: np.asarray(gradient(y), dtype=np.float64), x, typical
                )
        else:

            def hess(x: Array) -> Array:
                return nd_hessian(lambda y: real_scalar(func(y)), x, typical)

            def hess_at_value(x: Array, f: float, g: Array) -> Array:
                return nd_hessian(lambda y: real_scalar(func(y)), x, typical, f0=f)

            hess_at = hess_at_value

        return CompiledLoss(
            "numpy",
            value,
            value_and_gradient,
            hess,
            exact_derivatives=gradient is not None and hessian is not None,
            raw=raw,
            costs={
                "value": 1,
                "value_and_gradient": 1 + (1 if gradient is not None else fd_gradient),
                "hessian": 1
                if hessian is not None
                else (fd_gradient if gradient is not None else _fd_hessian_calls(n)),
                "hessian_at": n if gradient is not None else _fd_hessian_calls(n) - 1,
            },
            hessian_at=hess_at,
        )

    def least_squares(
        self,
        residuals: Callable,
        n: int,
        *,
        jacobian: Callable | None = None,
        typical: Any = None,
        args: tuple = (),
        sparsity: SparsePattern | None = None,
        sparse_seen: list[bool] | None = None,
    ) -> CompiledLoss:
        """:meth:`Backend.least_squares`; with ``sparsity`` (the Jacobian's structure, see
        :mod:`~zfitlite.backends.sparse_numdiff`) the numerical Jacobian is a
        ``scipy.sparse`` CSR matrix by grouped differences, and a ``jacobian`` may return
        a sparse matrix (kept sparse, as CSR). ``sparse_seen`` (one flag, kept by the
        loss across builds) records that it did, so that the Hessian (``hesse()``) is then
        differenced in groups of ``J^T J``'s structure."""
        raw = RawCounter()
        residuals, jacobian = raw.wrap(residuals), raw.wrap(jacobian)
        # the user's jacobian returned a sparse matrix (read by hess below)
        seen_sparse = [False] if sparse_seen is None else sparse_seen
        if jacobian is not None:
            jac_calls = 1
        elif sparsity is not None:
            jac_calls = sparsity.calls()
        else:  # plain central differences; Richardson-extrapolated ones when asked for
            jac_calls = 2 * n + 1
        precise_jac: Callable[[Array], Array] | None = None

        def res(x: Array) -> Array:
            return np.asarray(residuals(x, *args), dtype=np.float64)

        if jacobian is not None:

            def jac(x: Array) -> Any:
                J = jacobian(x, *args)
                if is_sparse(J):
                    seen_sparse[0] = True
                    return scipy.sparse.csr_matrix(J, dtype=np.float64)
                return np.asarray(J, dtype=np.float64)
        elif sparsity is not None:

            def jac(x: Array) -> Any:
                return grouped_jacobian(_checked_rows(res, sparsity.shape[0]), x, sparsity, typical)
        else:

            def jac(x: Array) -> Any:
                # a Levenberg-Marquardt step needs the Jacobian to a few digits: on the 54
                # NIST StRD cases the fits reach the same >= 6 certified digits, all
                # valid, at tol 1e-3 and 1e-10, with half the calls of the extrapolated one
                return nd_jacobian(res, x, typical, extrapolate=False)

            def extrapolated(x: Array) -> Any:
                return nd_jacobian(res, x, typical)

            precise_jac = extrapolated

        def value(x: Array) -> float:
            r = res(x)
            return float(r @ r)

        def value_and_gradient(x: Array) -> tuple[float, Array]:
            r = res(x)
            return _with_value(
                float(r @ r), lambda: 2.0 * np.asarray(jac(x).T @ r, dtype=np.float64).reshape(-1)
            )

        def gradient(x: Array) -> Array:
            return 2.0 * np.asarray(jac(x).T @ res(x), dtype=np.float64).reshape(-1)

        def hess(x: Array) -> Array:
            pattern = None
            if sparsity is not None:
                pattern = hessian_pattern(sparsity)
            elif seen_sparse[0] and n > 1:
                J = jac(x)  # a sparse Jacobian gives the Hessian's structure
                pattern = hessian_pattern(J) if is_sparse(J) else None
            if pattern is not None:
                c = HESSIAN_STEP_EXACT if jacobian is not None else HESSIAN_STEP_NOISY
                return grouped_hessian(gradient, x, pattern, typical, c)
            return nd_hessian(value, x, typical)

        if sparsity is not None or jacobian is not None:
            hess_calls = max(_fd_hessian_calls(n), 1 + (2 * n + 1) * (1 + jac_calls))
        else:
            hess_calls = _fd_hessian_calls(n)

        return CompiledLoss(
            "numpy",
            value,
            value_and_gradient,
            hess,
            residuals=res,
            jacobian=jac,
            exact_derivatives=False,
            raw=raw,
            costs={
                "value": 1,
                "value_and_gradient": 1 + jac_calls,
                "hessian": hess_calls,
                "residuals": 1,
                "jacobian": jac_calls,
                "jacobian_precise": jac_calls if precise_jac is None else 4 * n + 1,
            },
            jacobian_precise=precise_jac,
        )


def _fd_hessian_calls(n: int) -> int:
    """Most function calls of one finite-difference Hessian (:func:`numdiff.hessian`):
    the centre, two per diagonal entry and four per pair."""
    return 2 * n * n + 1


def _checked_rows(res: Callable[[Array], Array], m: int) -> Callable[[Array], Array]:
    """``res`` refusing a residual vector whose length is not the pattern's row count."""

    def checked(x: Array) -> Array:
        r = res(x)
        if r.shape != (m,):
            raise ValueError(
                f"jac_sparsity has {m} rows but the residuals have shape {r.shape}; it must "
                "have shape (number of residuals, number of parameters)"
            )
        return r

    return checked
