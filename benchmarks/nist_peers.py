"""Runners for the NIST StRD benchmark: zfitlite and each peer, one problem at a time.

Every runner takes a :class:`~zfitlite.testing.nist.NistProblem` and returns one
:class:`Case` per start. Imports of optional peers (iminuit, optimistix, zfit) happen
inside the runners; :func:`available` says which can run here. Only zfitlite's public
API is used (``zfitlite.minimize.LevenbergMarquardt(tol=1e-10).minimize(loss, start)``),
so the benchmark works whatever the solver's internals are.

Timing conventions
------------------
* *warm* time: best of ``repeat`` calls after a first one (for compiling solvers the first
  call on start 1 compiles; start 2 reuses the same compiled function or loss).
* *first* time: the first call of a fresh loss / jitted function on start 1, compile
  included; ``first - warm`` on start 1 is reported as the compile (tracing) overhead.
* zfit is slow (0.2-10 s per fit), so it gets one warm call per start instead of five.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.optimize

import zfitlite
from zfitlite.testing.nist import NistProblem

#: zfitlite's setting in this benchmark (the tolerance that buys >= 6 digits).
ZFITLITE_TOL = 1e-10
#: optimistix: tight tolerances so that it gets digits, and enough steps.
OPTX_RTOL = OPTX_ATOL = 1e-12
OPTX_MAX_STEPS = 10_000
#: zfit: same tol as zfitlite; maxiter capped (zfit's default is 3000 x n_params
#: evaluations): without the cap MGH10 start 1 runs ~100 s into maxiter and Bennett5
#: start 2 ~70 s to 2 correct digits, neither solved.
ZFIT_TOL = 1e-10
ZFIT_MAXITER = 1000


@dataclass
class Case:
    """One fit: a solver on one problem from one start."""

    solver: str
    problem: str
    start: int
    digits: float
    evals: float  # residual (or loss) evaluations, as the solver reports them
    warm_s: float
    jac_evals: float = np.nan  # Jacobian / gradient evaluations where reported
    first_s: float = np.nan  # first call of a fresh loss / compiled function
    #: the call after it, on the same start (zfitlite-JAX compiles its solver there)
    second_s: float = np.nan
    ok: bool = True  # the solver's own success flag
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def digits(x: Any, cert: np.ndarray) -> float:
    """Correct significant digits: ``-log10`` of the largest relative parameter error."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != cert.shape or not np.all(np.isfinite(x)):
        return 0.0
    err = float(np.max(np.abs(x - cert) / np.abs(cert)))
    return float(min(-np.log10(err), 16.0)) if err > 0 else 16.0


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls of ``fn()`` and the last output."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_kib(fn: Callable[[], Any]) -> float:
    """Peak traced Python/numpy heap (KiB) during one call of ``fn()`` (tracemalloc).

    XLA's and TensorFlow's own C++ buffers are not traced.
    """
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def available(name: str) -> bool:
    """Whether the peer package ``name`` can be imported here."""
    return importlib.util.find_spec(name) is not None


@dataclass
class Fit:
    """What one call of a solver returns to the driver."""

    x: np.ndarray
    evals: float
    jac_evals: float = np.nan
    ok: bool = True
    note: str = ""


def drive(
    solver: str,
    P: NistProblem,
    fit: Callable[[np.ndarray], Fit],
    *,
    repeat: int,
    first: str,
    memory: bool = False,
) -> list[Case]:
    """Time ``fit(start)`` on both starts of ``P`` and build the cases.

    ``first="all"``: every start gets a first call, timed apart as ``first_s``, before
    the ``repeat`` warm calls; ``"start1"``: only start 1 does (zfit, to save time; start
    2 reuses what start 1 compiled); ``"none"``: no separate first call (nothing to
    compile). With ``"all"``, start 1's second call is timed apart too, as ``second_s``
    (zfitlite-JAX runs a problem's first fit eagerly and compiles its solver on the
    second; zfit, slow, is not called a second time).
    ``memory``: one more call per start under tracemalloc.
    """
    out = []
    for k, start in enumerate(P.starts, 1):
        first_s = second_s = np.nan
        if first == "all" or (first == "start1" and k == 1):
            t0 = time.perf_counter()
            fit(start)
            first_s = time.perf_counter() - t0
            if k == 1 and first == "all":
                t0 = time.perf_counter()
                fit(start)
                second_s = time.perf_counter() - t0
        t, r = best_of(lambda start=start: fit(start), repeat)
        case = Case(
            solver,
            P.name,
            k,
            digits(r.x, P.certified),
            r.evals,
            t,
            jac_evals=r.jac_evals,
            first_s=first_s,
            second_s=second_s,
            ok=r.ok,
            note=r.note,
        )
        if memory:
            case.extra["peak_kib"] = peak_kib(lambda start=start: fit(start))
        out.append(case)
    return out


# ---------------------------------------------------------------------------
# zfitlite (public API only)
# ---------------------------------------------------------------------------


def _np_residuals(P: NistProblem) -> Callable[[Any], Any]:
    def residuals(b: Any) -> Any:
        return P.residuals(b)

    return residuals


def _jax_residuals(P: NistProblem) -> Callable[[Any], Any]:
    import jax.numpy as jnp

    def residuals(b: Any) -> Any:
        return P.residuals(b, xp=jnp)

    return residuals


def _zfitlite_fit(loss: Any) -> Callable[[np.ndarray], Fit]:
    lm = zfitlite.minimize.LevenbergMarquardt(tol=ZFITLITE_TOL)

    def fit(start: np.ndarray) -> Fit:
        r = lm.minimize(loss, start)
        return Fit(r.x, r.info["nres"], r.info.get("njac", np.nan), bool(r.valid))

    return fit


def run_zfitlite_numpy(P: NistProblem, repeat: int = 5, memory: bool = False) -> list[Case]:
    """``LeastSquares(backend="numpy")``: the eager Python loop."""
    loss = zfitlite.LeastSquares(_np_residuals(P), backend="numpy")
    return drive(
        "zfitlite LM (numpy)", P, _zfitlite_fit(loss), repeat=repeat, first="none", memory=memory
    )


def run_zfitlite_jax(P: NistProblem, repeat: int = 5, memory: bool = False) -> list[Case]:
    """``LeastSquares(backend="jax")``, default options: one loss per problem; its first
    fit runs the eager loop, the second compiles the solver, the rest run compiled.

    Start 2 goes through the same loss, so its first call shows whether the compiled
    function is reused (it should cost no more than a warm call).
    """
    loss = zfitlite.LeastSquares(_jax_residuals(P), backend="jax")
    return drive(
        "zfitlite LM (jax)", P, _zfitlite_fit(loss), repeat=repeat, first="all", memory=memory
    )


# ---------------------------------------------------------------------------
# scipy, iminuit
# ---------------------------------------------------------------------------


def run_scipy(P: NistProblem, method: str, repeat: int = 5, memory: bool = False) -> list[Case]:
    """``scipy.optimize.least_squares`` with default tolerances, 2-point Jacobian.

    ``nfev`` counts the finite-difference calls for ``"lm"`` but not for ``"trf"``.
    """

    def fit(start: np.ndarray) -> Fit:
        s = scipy.optimize.least_squares(P.residuals, start, method=method)
        njev = s.njev if s.njev is not None else np.nan
        return Fit(s.x, s.nfev, njev, bool(s.success))

    return drive(f"scipy {method}", P, fit, repeat=repeat, first="none", memory=memory)


def run_scipy_jac(P: NistProblem, repeat: int = 5, memory: bool = False) -> list[Case]:
    """MINPACK (``least_squares(method="lm")``) with an analytic Jacobian.

    The residuals and their Jacobian (``jax.jacfwd``) are jitted JAX functions returning
    numpy arrays, so MINPACK gets exact derivatives at the cost of one JAX call each.
    """
    import jax
    import jax.numpy as jnp

    def res(b: Any) -> Any:
        return P.residuals(b, xp=jnp)

    res_j, jac_j = jax.jit(res), jax.jit(jax.jacfwd(res))

    def fun(b: np.ndarray) -> np.ndarray:
        return np.asarray(res_j(b))

    def jac(b: np.ndarray) -> np.ndarray:
        return np.asarray(jac_j(b))

    def fit(start: np.ndarray) -> Fit:
        s = scipy.optimize.least_squares(fun, start, jac=jac, method="lm")
        njev = s.njev if s.njev is not None else np.nan
        return Fit(s.x, s.nfev, njev, bool(s.success))

    return drive("scipy lm (jac)", P, fit, repeat=repeat, first="all", memory=memory)


def run_iminuit(P: NistProblem, repeat: int = 5, memory: bool = False) -> list[Case]:
    """Migrad on the same sum of squares, errordef 1, default tolerance."""
    import iminuit

    def chi2(b: np.ndarray) -> float:
        r = P.residuals(b)
        return float(r @ r)

    def fit(start: np.ndarray) -> Fit:
        m = iminuit.Minuit(chi2, np.array(start))
        m.errordef = 1.0
        m.migrad()
        return Fit(np.array(m.values), m.nfcn, m.ngrad, bool(m.valid))

    return drive("iminuit migrad", P, fit, repeat=repeat, first="none", memory=memory)


# ---------------------------------------------------------------------------
# optimistix
# ---------------------------------------------------------------------------


def run_optimistix(P: NistProblem, repeat: int = 5, memory: bool = False) -> list[Case]:
    """``optx.least_squares`` with ``optx.LevenbergMarquardt``, one jitted solve per problem.

    The data travel as ``args``, so one compilation serves both starts. The evaluations
    reported are ``sol.stats["num_steps"]`` (each step evaluates the residuals once and
    linearises them once).
    """
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    solver = optx.LevenbergMarquardt(rtol=OPTX_RTOL, atol=OPTX_ATOL)
    model = P.model

    def fn(b: Any, args: Any) -> Any:
        x, y = args
        return y - model(x, b, jnp)

    @jax.jit
    def solve(b0: Any, x: Any, y: Any) -> Any:
        sol = optx.least_squares(fn, solver, b0, args=(x, y), max_steps=OPTX_MAX_STEPS, throw=False)
        return sol.value, sol.result == optx.RESULTS.successful, sol.stats["num_steps"]

    x, y = jnp.asarray(P.x), jnp.asarray(P.y)

    def fit(start: np.ndarray) -> Fit:
        value, success, steps = jax.block_until_ready(solve(jnp.asarray(start), x, y))
        return Fit(np.asarray(value), int(steps), int(steps), bool(success))

    return drive("optimistix LM", P, fit, repeat=repeat, first="all", memory=memory)


# ---------------------------------------------------------------------------
# zfit
# ---------------------------------------------------------------------------

_zfit_names = itertools.count()


def _import_zfit() -> Any:
    os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import zfit
    return zfit


def run_zfit(P: NistProblem, repeat: int = 1, memory: bool = False) -> list[Case]:
    """zfit's ``LevenbergMarquardt`` on a ``zfit.loss.SimpleLoss`` (TF sum of squares).

    The loss is ``sum((y - model(x, b))**2)`` written with ``zfit.z.numpy`` (TensorFlow)
    over ``zfit.Parameter`` objects, ``errordef=1``, ``jit=True``; its gradient and
    Hessian are given as callables computed with ``tf.GradientTape`` (TensorFlow
    autodiff, compiled with the loss). ``SimpleLoss(..., gradient="zfit")`` would be the
    documented way to ask for autodiff, but in zfit 0.28.0 it always raises
    ``AutogradNotSupported`` (``SimpleLoss._get_params`` returns its own parameters for
    ``autograd=False`` too, so all of them count as non-differentiable); zfit's default,
    numerical derivatives, was 20-30 times slower still on Misra1a. One loss and one
    minimizer per problem serve both starts; the parameters are reset to the start
    before every call. ``n_eval`` (loss values; each iteration adds one gradient and
    one Hessian) is reported as the evaluations.
    """
    zfit = _import_zfit()
    import tensorflow as tf
    import zfit.z.numpy as znp

    x, y = tf.constant(P.x), tf.constant(P.y)
    model = P.model

    def chi2(b: Any) -> Any:
        r = y - model(x, b, znp)
        return znp.sum(r * r)

    def values(params: Any) -> Any:
        return tf.stack([p.value() for p in params])

    def gradient(params: Any) -> Any:
        b = values(params)
        with tf.GradientTape() as tape:
            tape.watch(b)
            v = chi2(b)
        return tape.gradient(v, b)

    def hessian(params: Any) -> Any:
        b = values(params)
        with tf.GradientTape() as outer:
            outer.watch(b)
            with tf.GradientTape() as inner:
                inner.watch(b)
                v = chi2(b)
            g = inner.gradient(v, b)
        return outer.jacobian(g, b)

    tag = next(_zfit_names)
    params = [
        zfit.Parameter(f"nist{tag}_{P.name}_b{i + 1}", float(v)) for i, v in enumerate(P.starts[0])
    ]
    loss = zfit.loss.SimpleLoss(
        chi2, params, errordef=1.0, gradient=gradient, hessian=hessian, jit=True
    )
    minimizer = zfit.minimize.LevenbergMarquardt(tol=ZFIT_TOL, maxiter=ZFIT_MAXITER)
    nan = np.full(len(params), np.nan)

    def fit(start: np.ndarray) -> Fit:
        for p, v in zip(params, start):
            p.set_value(float(v))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = minimizer.minimize(loss)
        except Exception as exc:  # zfit raises on some problems: a failure, not a crash
            return Fit(nan, np.nan, ok=False, note=f"raised {type(exc).__name__}: {exc}")
        if res is None:  # zfit returns None when it reaches maxiter
            return Fit(nan, np.nan, ok=False, note="maxiter reached (minimize returned None)")
        x_ = np.array([res.params[p]["value"] for p in params], dtype=np.float64)
        return Fit(x_, float(res.info.get("n_eval", np.nan)), ok=bool(res.valid))

    return drive("zfit LM", P, fit, repeat=repeat, first="start1", memory=memory)


#: Runner per solver, in table order, with the package it needs (None: always there).
RUNNERS: dict[str, tuple[str | None, Callable[..., list[Case]]]] = {
    "zfitlite LM (numpy)": (None, run_zfitlite_numpy),
    "zfitlite LM (jax)": ("jax", run_zfitlite_jax),
    "scipy lm": (None, lambda P, **kw: run_scipy(P, "lm", **kw)),
    "scipy lm (jac)": ("jax", run_scipy_jac),
    "scipy trf": (None, lambda P, **kw: run_scipy(P, "trf", **kw)),
    "iminuit migrad": ("iminuit", run_iminuit),
    "optimistix LM": ("optimistix", run_optimistix),
    "zfit LM": ("zfit", run_zfit),
}
