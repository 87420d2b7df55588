"""Overhead of zfitlite's scipy wrappers over calling scipy.optimize directly.

Small problems (Rosenbrock, a 5-d correlated quadratic, a Gaussian likelihood fit on 200
and on 20,000 events), on
the numpy backend (analytic derivatives) and on JAX (jitted autodiff). Each wrapper runs
one round (``max_rounds=1``) with its default scipy options; scipy is then called
directly with the same options on the same compiled functions the evaluator uses, so
both do the same scipy iterations: the answers agree bit for bit and zfitlite makes one
evaluation more (value, gradient and Hessian for its EDM at the end). The ratio of the
warm wall times is the overhead (the issue's target: below 1.2). The last column is
zfitlite's full default fit (rounds until ``EDM < tol * errordef``) for comparison.

The per-call cost of the evaluator and the fixed cost of one fit are reported apart,
because they explain the ratios on cheap losses.
"""

from __future__ import annotations

import time
import timeit
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize

import zfitlite
from zfitlite.solvers._scipy_common import METHODS
from zfitlite.solvers.scipy_local import ScipyCOBYLA, local_minimizers

RNG = np.random.default_rng(5)
A5 = RNG.normal(size=(5, 5))
A5 = A5 @ A5.T + 5 * np.eye(5)
X5 = np.arange(1.0, 6.0)
DATA = RNG.normal(0.7, 1.4, 200)
DATA_20K = RNG.normal(0.7, 1.4, 20_000)


def _problems(xp: Any) -> dict[str, tuple]:
    def rosen(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    def rosen_g(p):
        return np.array(
            [-2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2), 200 * (p[1] - p[0] ** 2)]
        )

    def rosen_h(p):
        return np.array([[2 - 400 * p[1] + 1200 * p[0] ** 2, -400 * p[0]], [-400 * p[0], 200.0]])

    def quad(p):
        d = p - X5
        return d @ (A5 @ d)

    def gauss(data: np.ndarray) -> tuple[Callable, Callable, Callable]:
        n = data.size

        def nll(p):
            return xp.sum(xp.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2)

        def nll_g(p):
            d = data - p[0]
            return np.array([-d.sum() / p[1] ** 2, n / p[1] - (d @ d) / p[1] ** 3])

        def nll_h(p):
            d = data - p[0]
            off = 2 * d.sum() / p[1] ** 3
            return np.array([[n / p[1] ** 2, off], [off, -n / p[1] ** 2 + 3 * (d @ d) / p[1] ** 4]])

        return nll, nll_g, nll_h

    return {
        "rosenbrock": (rosen, rosen_g, rosen_h, [-1.2, 1.0], 1.0),
        "quadratic-5d": (
            quad,
            lambda p: 2 * A5 @ (p - X5),
            lambda p: 2 * A5,
            np.zeros(5),
            1.0,
        ),
        "gauss-nll": (*gauss(DATA), [0.5, 1.0], 0.5),
        # the same fit on 20,000 events: a loss that costs tens of microseconds
        "gauss-nll-20k": (*gauss(DATA_20K), [0.5, 1.0], 0.5),
    }


def _losses() -> dict[tuple[str, str], tuple[zfitlite.SimpleLoss, np.ndarray]]:
    import jax.numpy as jnp

    out = {}
    for name, (f, g, h, start, errordef) in _problems(np).items():
        out[("numpy", name)] = (
            zfitlite.SimpleLoss(f, errordef=errordef, gradient=g, hessian=h, backend="numpy"),
            np.asarray(start, dtype=float),
        )
    for name, (f, _, _, start, errordef) in _problems(jnp).items():
        out[("jax", name)] = (
            zfitlite.SimpleLoss(f, errordef=errordef, backend="jax"),
            np.asarray(start, dtype=float),
        )
    return out


def _best(fn: Callable[[], Any], budget: float = 0.15, max_repeat: int = 200) -> float:
    """Best warm wall time of ``fn`` over repeats filling about ``budget`` seconds."""
    fn()
    best, spent, k = np.inf, 0.0, 0
    while spent < budget and k < max_repeat:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, spent, k = min(best, dt), spent + dt, k + 1
    return best


def _direct_call(minimizer: type, compiled: Any, x0: np.ndarray, maxiter: int) -> Callable:
    method = minimizer._METHOD
    options = {k: v for k, v in minimizer._OPTIONS.items() if k != "max_rounds" and v is not None}
    options.update(dict.fromkeys(method.budget, max(maxiter, x0.size + 2)))
    kwargs: dict[str, Any] = {"method": method.name, "options": options}
    if method.gradient:
        fun = compiled.value_and_gradient
        kwargs["jac"] = True
    else:
        fun = compiled.value
    if method.hessian:
        kwargs["hess"] = compiled.hessian
    return lambda: scipy.optimize.minimize(fun, x0, **kwargs)


def run() -> list[dict[str, Any]]:
    """One row per (backend, problem, minimizer)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    rows = []
    wrappers = [*local_minimizers(), zfitlite.minimize.ScipyMinimize]
    for (backend, pname), (loss, x0) in _losses().items():
        compiled = loss.compiled(x0.size)
        maxiter = 5000 + 1000 * x0.size
        for cls in wrappers:
            if cls is ScipyCOBYLA and pname == "rosenbrock":
                continue  # thousands of evaluations at 2 ms each in scipy's PRIMA port
            if cls is zfitlite.minimize.ScipyMinimize:
                one = cls(logger=lambda s: None)
                spec = one.scipy_minimize_params(has_jacobian=True)  # analytic or autodiff
                method = METHODS[spec["method"].lower()]
                fun = compiled.value_and_gradient if method.gradient else compiled.value
                kw = {"jac": True} if method.gradient else {}

                def direct(fun=fun, kw=kw, spec=spec, x0=x0):
                    return scipy.optimize.minimize(
                        fun, x0, method=spec["method"], options=spec["options"], **kw
                    )

                label = f"ScipyMinimize ({spec['method']})"
                full = one
            else:
                one = cls(options={"max_rounds": 1})
                direct = _direct_call(cls, compiled, x0, maxiter)
                label = cls.__name__
                full = cls()
            ours = one.minimize(loss, x0)
            ref = direct()
            same = bool(np.array_equal(ours.x, ref.x))
            t_ours = _best(lambda one=one, loss=loss, x0=x0: one.minimize(loss, x0))
            t_ref = _best(direct)
            t_full = _best(lambda full=full, loss=loss, x0=x0: full.minimize(loss, x0))
            rows.append(
                {
                    "backend": backend,
                    "problem": pname,
                    "minimizer": label,
                    "nfev_zfitlite": ours.nfev,
                    "nfev_scipy": int(ref.nfev),
                    "same_x": same,
                    "ms_zfitlite": 1e3 * t_ours,
                    "ms_scipy": 1e3 * t_ref,
                    "ratio": t_ours / t_ref,
                    "ms_full": 1e3 * t_full,
                    "full_valid": full.minimize(loss, x0).valid,
                }
            )
    return rows


def per_call_costs() -> dict[str, float]:
    """Microseconds: one value+gradient through the evaluator vs the compiled function alone,
    and a whole fit from the minimum (fixed cost) vs scipy's own from the minimum."""
    f, g, h, _, _ = _problems(np)["rosenbrock"]
    loss = zfitlite.SimpleLoss(f, errordef=1.0, gradient=g, hessian=h, backend="numpy")
    minimizer = zfitlite.minimize.ScipyBFGS(options={"max_rounds": 1})
    ev = minimizer.create_evaluator(loss, [1.0, 1.0])
    ev.maxiter = 10**9
    x = np.array([0.5, 0.3])
    n = 5000
    raw = timeit.timeit(lambda: ev.compiled.value_and_gradient(x), number=n) / n
    wrapped = timeit.timeit(lambda: ev.value_gradient(x), number=n) / n
    xm = np.ones(2)
    fit = min(timeit.repeat(lambda: minimizer.minimize(loss, xm), number=200, repeat=3)) / 200
    direct = (
        min(
            timeit.repeat(
                lambda: scipy.optimize.minimize(
                    ev.compiled.value_and_gradient, xm, jac=True, method="BFGS"
                ),
                number=200,
                repeat=3,
            )
        )
        / 200
    )
    return {
        "evaluator_value_gradient_us": 1e6 * wrapped,
        "compiled_value_gradient_us": 1e6 * raw,
        "fit_at_minimum_us": 1e6 * fit,
        "scipy_at_minimum_us": 1e6 * direct,
    }


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best wall time (s) of each ``fn()``, the calls interleaved (a loaded machine's
    slow phases hit every entry alike)."""
    best = dict.fromkeys(fns, np.inf)
    for _ in range(repeat):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def issue15_overheads(repeat: int = 30) -> dict[str, Any]:
    """Issue 15's lean-hot-path figures on the numpy paths (best of ``repeat``, interleaved).

    * numpy LM framework cost per iteration: ``LevenbergMarquardt(tol=1e-10)`` on numpy
      residuals of NIST Misra1a (start 1) with an analytic Jacobian, against MINPACK
      (``least_squares(method="lm")``, same functions): ``(time - time in the user's
      functions) / iterations``;
    * ``ScipyBFGS`` against ``scipy.optimize.minimize(method="BFGS")`` on a 3-d quartic
      bowl with an analytic gradient: calls of value and gradient, and time;
    * ``Minuit`` against plain iminuit Migrad on Misra1a's sum of squares (numpy, no
      gradient): calls and time.
    """
    import iminuit

    from zfitlite.testing.nist import load_all

    P = {p.name: p for p in load_all()}["Misra1a"]
    x_, y_ = P.x, P.y
    spent = {"t": 0.0, "f": 0, "g": 0}

    def timed(fn: Callable, kind: str) -> Callable:
        def wrapped(b: Any) -> Any:
            t = time.perf_counter()
            out = fn(b)
            spent["t"] += time.perf_counter() - t
            spent[kind] += 1
            return out

        return wrapped

    def res(b: Any) -> Any:
        return y_ - b[0] * (1.0 - np.exp(-b[1] * x_))

    def jac(b: Any) -> Any:
        e = np.exp(-b[1] * x_)
        return np.column_stack([-(1.0 - e), -b[0] * x_ * e])

    r_t, j_t = timed(res, "f"), timed(jac, "g")
    start = P.starts[0]
    lsq = zfitlite.LeastSquares(r_t, jacobian=j_t, backend="numpy")
    lm = zfitlite.minimize.LevenbergMarquardt(tol=1e-10)

    def one(fn: Callable[[], Any]) -> tuple[Any, float, int, int]:
        spent.update(t=0.0, f=0, g=0)
        out = fn()
        return out, spent["t"], spent["f"], spent["g"]

    z_out, z_user, z_nf, z_ng = one(lambda: lm.minimize(lsq, start))
    _, s_user, s_nf, s_ng = one(
        lambda: scipy.optimize.least_squares(r_t, start, jac=j_t, method="lm")
    )
    best = _interleaved(
        {
            "lm": lambda: lm.minimize(lsq, start),
            "minpack": lambda: scipy.optimize.least_squares(r_t, start, jac=j_t, method="lm"),
        },
        repeat,
    )
    lm_iter = max(int(z_out.info["niter"]), 1)
    out: dict[str, Any] = {
        "lm_numpy_ms": 1e3 * best["lm"],
        "minpack_ms": 1e3 * best["minpack"],
        "lm_numpy_calls": (z_nf, z_ng),
        "minpack_calls": (s_nf, s_ng),
        "lm_numpy_iterations": lm_iter,
        "lm_numpy_framework_us_per_iter": 1e6 * (best["lm"] - z_user) / lm_iter,
        "minpack_framework_us_per_iter": 1e6 * (best["minpack"] - s_user) / max(s_ng, 1),
    }

    A = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.5], [0.2, 0.5, 1.5]])
    c = np.array([1.0, -2.0, 0.5])

    def bowl(p: Any) -> float:
        d = p - c
        return float(d @ A @ d + 0.1 * np.sum(d**4))

    def bowl_g(p: Any) -> Any:
        d = p - c
        return 2 * A @ d + 0.4 * d**3

    f_t, g_t = timed(bowl, "f"), timed(bowl_g, "g")
    x0 = np.array([3.0, 2.0, -1.0])
    loss = zfitlite.SimpleLoss(f_t, gradient=g_t, errordef=1.0, backend="numpy")
    bfgs = zfitlite.minimize.ScipyBFGS()
    _, _, zf, zg = one(lambda: bfgs.minimize(loss, x0))
    _, _, sf, sg = one(lambda: scipy.optimize.minimize(f_t, x0, jac=g_t, method="BFGS"))
    best = _interleaved(
        {
            "z": lambda: bfgs.minimize(loss, x0),
            "s": lambda: scipy.optimize.minimize(f_t, x0, jac=g_t, method="BFGS"),
        },
        repeat,
    )
    out["bfgs_calls"] = (zf, zg)
    out["scipy_bfgs_calls"] = (sf, sg)
    out["bfgs_ratio"] = best["z"] / best["s"]

    def chi2(b: Any) -> float:
        r = P.residuals(b)
        return float(r @ r)

    c_t = timed(chi2, "f")
    closs = zfitlite.SimpleLoss(c_t, errordef=1.0, backend="numpy")
    minuit = zfitlite.minimize.Minuit()

    def migrad() -> Any:
        m = iminuit.Minuit(c_t, np.array(start))
        m.errordef = 1.0
        return m.migrad()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, mz, _ = one(lambda: minuit.minimize(closs, start))
        _, _, mi, _ = one(migrad)
        best = _interleaved({"z": lambda: minuit.minimize(closs, start), "m": migrad}, repeat)
    out["minuit_calls"] = (mz, mi)
    out["minuit_ratio"] = best["z"] / best["m"]
    out["minuit_ms"] = (1e3 * best["z"], 1e3 * best["m"])
    return out


def main() -> None:
    rows = run()
    print(
        "| backend | problem | minimizer | evaluations (zfitlite / scipy) | same x | "
        "zfitlite ms | scipy ms | ratio | full fit ms (valid) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['backend']} | {r['problem']} | {r['minimizer']} | {r['nfev_zfitlite']} / "
            f"{r['nfev_scipy']} | {'yes' if r['same_x'] else 'NO'} | {r['ms_zfitlite']:.3f} | "
            f"{r['ms_scipy']:.3f} | {r['ratio']:.2f} | {r['ms_full']:.3f} "
            f"({'valid' if r['full_valid'] else 'invalid'}) |"
        )
    print()
    for backend in ("numpy", "jax"):
        ratios = np.array([r["ratio"] for r in rows if r["backend"] == backend])
        print(
            f"{backend}: ratio median {np.median(ratios):.2f}, geometric mean "
            f"{np.exp(np.mean(np.log(ratios))):.2f}, max {ratios.max():.2f}, "
            f"{int(np.sum(ratios < 1.2))}/{ratios.size} below 1.2"
        )
    for backend in ("numpy", "jax"):
        for pname in dict.fromkeys(r["problem"] for r in rows):
            ratios = np.array(
                [r["ratio"] for r in rows if r["backend"] == backend and r["problem"] == pname]
            )
            print(
                f"{backend} {pname}: ratio median {np.median(ratios):.2f}, max {ratios.max():.2f}, "
                f"{int(np.sum(ratios < 1.2))}/{ratios.size} below 1.2"
            )
    costs = per_call_costs()
    print(
        f"\nper call: evaluator value+gradient {costs['evaluator_value_gradient_us']:.1f} us vs "
        f"{costs['compiled_value_gradient_us']:.1f} us for the compiled function alone; "
        f"a fit from the minimum {costs['fit_at_minimum_us']:.0f} us vs scipy's "
        f"{costs['scipy_at_minimum_us']:.0f} us"
    )
    o = issue15_overheads()
    print(
        f"\nissue 15, numpy LM on Misra1a (analytic Jacobian): {o['lm_numpy_ms']:.3f} ms, "
        f"{o['lm_numpy_iterations']} iterations, calls (res, jac) {o['lm_numpy_calls']}, "
        f"framework {o['lm_numpy_framework_us_per_iter']:.0f} us per iteration; MINPACK "
        f"{o['minpack_ms']:.3f} ms, calls {o['minpack_calls']}, framework "
        f"{o['minpack_framework_us_per_iter']:.0f} us per Jacobian"
    )
    print(
        f"ScipyBFGS / scipy BFGS: calls (value, gradient) {o['bfgs_calls']} / "
        f"{o['scipy_bfgs_calls']}, time ratio {o['bfgs_ratio']:.2f}; Minuit / iminuit Migrad "
        f"on Misra1a: calls {o['minuit_calls'][0]} / {o['minuit_calls'][1]}, "
        f"{o['minuit_ms'][0]:.2f} / {o['minuit_ms'][1]:.2f} ms, ratio {o['minuit_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
