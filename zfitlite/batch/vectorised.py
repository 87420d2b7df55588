"""The vectorised solves: a minimizer's native core mapped over a chunk with ``vmap``.

The single-problem solver (:class:`~zfitlite.solvers.lm_least_squares.LSQSolver`,
:class:`~zfitlite.solvers.bfgs_native.BFGSSolver`) runs through the one driver
(:func:`zfitlite.solvers.driver.solve`), mapped over the members with the backend's
``vmap`` and compiled once with its ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._composite import observed_in_member
from ..backends.ops import BATCH_CACHE_ATTR, remembered, remembered_jit
from ..solvers.driver import pack, solve, unpack
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


def _lm_member(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    from ..solvers.lm_least_squares import LSQSolver

    fns, geodesic, func = static
    xp = ops.xp
    mask, filled = _prepare_member(ops, func, x0, data)
    nobs = observed_in_member(xp, func, mask, filled)
    cfg = cfg._replace(nobs=nobs * 1.0)
    out = solve(LSQSolver(fns, ops, lower, upper, cfg, geodesic), x0, (mask, *filled))
    return out, mask, nobs


def _lm_batch(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """Levenberg-Marquardt on every member: ``vmap`` of the single solve."""

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


def _value_member(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """One member of a solve on the loss value: its data (missing points masked for a
    least-squares loss) and the one driver."""
    fns, kind, func, method = static
    xp = ops.xp
    if kind == "lsq":
        mask, filled = _prepare_member(ops, func, x0, data)
        args = (mask, *filled)
        nobs = observed_in_member(xp, func, mask, filled)
    else:
        args = data
        mask = xp.zeros((0,), dtype=bool)
        nobs = xp.asarray(-1)
    return solve(_value_solver(method, fns, ops, lower, upper, cfg), x0, args), mask, nobs


def _value_batch(static: tuple, x0: Any, lower: Any, upper: Any, cfg: Any, data: tuple, ops: Any):
    """A solve on the loss value for every member: ``vmap`` of the single solve."""

    def one(x0_: Any, data_: tuple) -> tuple:
        out, mask, nobs = _value_member(static, x0_, lower, upper, cfg, data_, ops)
        return (*pack(ops.xp, out), mask, nobs)

    return ops.vmap(one, in_axes=(0, 0))(x0, data)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its first member repeated to ``size`` rows (constant compiled shapes)."""
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    return np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


def _solve_vectorised(problem: _Problem, x0: np.ndarray, data: tuple) -> dict[str, Any]:
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
        cfg = LSQSettings(**st)
        static = (fns, problem.geodesic, problem.func)
        solve = remembered_jit(
            ops,
            problem.func,
            ("batch_lm", ops.name, problem.geodesic),
            lambda: lambda x0, lo, hi, cfg, data: _lm_batch(static, x0, lo, hi, cfg, data, ops),
        )
        out = solve(x0p, problem.lower, problem.upper, cfg, datap)
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
        solve = remembered_jit(
            ops,
            problem.func,
            ("batch_" + problem.method, ops.name, problem.kind),
            lambda: lambda x0, lo, hi, cfg, data: _value_batch(static, x0, lo, hi, cfg, data, ops),
        )
        out = solve(x0p, problem.lower, problem.upper, cfg, datap)
    *packed, mask, nobs = (np.asarray(a)[:b] for a in out)
    o = unpack(tuple(packed))
    return {
        "x": o.x,
        "gradient": o.g,
        "hessian": o.H,
        "mask": mask,
        "fmin": o.f,
        "edm": o.edm,
        "lam": o.lam,
        "niter": o.niter,
        "nfev": o.nfev,
        "njev": o.njev,
        "status": o.status,
        "nobs": nobs,
    }


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
