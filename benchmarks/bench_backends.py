"""One unbinned Gaussian likelihood fit on every backend, and on zfit.

The model is a Gaussian truncated to the observable's range ``[LOW, HIGH]`` (normalised
by ``Phi((HIGH - mu)/sigma) - Phi((LOW - mu)/sigma)``, exactly zfit's ``Gauss`` on that
space), fitted to ``N_EVENTS`` events with two free parameters ``(mu, sigma)``:

* zfitlite ``LevenbergMarquardt`` and ``ScipyBFGS`` on a ``SimpleLoss`` written once in
  numpy (numerical derivatives, nothing compiled), JAX (``jax.jit`` + autodiff) and
  TensorFlow (``tf.function`` + ``GradientTape``), ``backend="auto"`` picking each;
* zfit's ``Minuit`` and ``LevenbergMarquardt`` on ``zfit.loss.UnbinnedNLL`` of
  ``zfit.pdf.Gauss`` on the same data.

All at ``tol=TOL``. Reported per row: the first call (a new loss: backend detection,
tracing and compilation included; jax and tensorflow are imported and started before any
row is timed), the warm time per fit (best and median of ``REPEAT``
fits from the start on the same loss and minimizer), how many times the loss function was traced
(a Python counter inside the function: it runs only while JAX or TensorFlow traces; on
numpy every evaluation runs it, reported as "eager"), the evaluations of the warm fit
and the largest deviation of the fitted values from the numpy/LM fit. zfit's trace count
comes from the same kind of counter in a ``Gauss`` subclass's unnormalised PDF.
``ZFITLITE_BENCH_SKIP=zfit`` leaves the zfit rows out.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import zfitlite
from benchmarks import versions
from benchmarks.nist_peers import _import_zfit

N_EVENTS = 10_000
LOW, HIGH = -5.0, 7.0
TRUE = (1.0, 1.5)
START = [0.5, 2.0]
TOL = 1e-6
REPEAT = 7
_RNG = np.random.default_rng(11)
_raw = _RNG.normal(*TRUE, 3 * N_EVENTS)
DATA = _raw[(_raw > LOW) & (_raw < HIGH)][:N_EVENTS]
SQRT2 = np.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def _nll(xp: Any, erf: Callable, data: Any, counter: list[int]) -> Callable:
    def nll(x: Any) -> Any:
        counter[0] += 1
        mu, sigma = x[0], x[1]
        z = (data - mu) / sigma
        norm = 0.5 * (erf((HIGH - mu) / (sigma * SQRT2)) - erf((LOW - mu) / (sigma * SQRT2)))
        return xp.sum(0.5 * z * z) + N_EVENTS * (xp.log(sigma) + LOG_SQRT_2PI + xp.log(norm))

    return nll


def numpy_nll(counter: list[int]) -> Callable:
    from scipy.special import erf

    return _nll(np, erf, DATA, counter)


def jax_nll(counter: list[int]) -> Callable:
    import jax

    jax.config.update("jax_enable_x64", True)
    return _nll(jax.numpy, jax.scipy.special.erf, jax.numpy.asarray(DATA), counter)


def tf_nll(counter: list[int]) -> Callable:
    import tensorflow as tf

    class _TF:
        sum = staticmethod(tf.reduce_sum)
        log = staticmethod(tf.math.log)

    return _nll(_TF, tf.math.erf, tf.constant(DATA, tf.float64), counter)


BACKENDS: dict[str, Callable[[list[int]], Callable]] = {
    "numpy": numpy_nll,
    "jax": jax_nll,
    "tensorflow": tf_nll,
}
ZFITLITE_MINIMIZERS = {
    "LevenbergMarquardt": zfitlite.minimize.LevenbergMarquardt,
    "ScipyBFGS": zfitlite.minimize.ScipyBFGS,
}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_zfitlite(backend: str, minimizer_name: str) -> dict[str, Any]:
    counter = [0]
    loss = zfitlite.SimpleLoss(BACKENDS[backend](counter), errordef=0.5)
    minimizer = ZFITLITE_MINIMIZERS[minimizer_name](tol=TOL)
    first, result = _timed(lambda: minimizer.minimize(loss, START))
    traces_first = counter[0]
    warm = []
    for _ in range(REPEAT):
        t, result = _timed(lambda: minimizer.minimize(loss, START))
        warm.append(t)
    assert result.info["backend"] == backend, result.info["backend"]
    compiled = backend != "numpy"
    return {
        "solver": f"zfitlite {minimizer_name}",
        "backend": backend,
        "first_s": first,
        "warm_ms": (1e3 * min(warm), 1e3 * statistics.median(warm)),
        "traces": f"{traces_first} / {counter[0]}" if compiled else "eager",
        "nfev": result.nfev,
        "x": np.asarray(result.x),
        "valid": result.valid,
    }


_zfit_names = itertools.count()


def run_zfit(minimizer_name: str) -> dict[str, Any]:
    zfit = _import_zfit()
    counter = [0]

    class CountingGauss(zfit.pdf.Gauss):
        def _unnormalized_pdf(self, x: Any) -> Any:
            counter[0] += 1
            return super()._unnormalized_pdf(x)

    tag = next(_zfit_names)
    obs = zfit.Space(f"x{tag}", limits=(LOW, HIGH))
    mu = zfit.Parameter(f"mu{tag}", START[0])
    sigma = zfit.Parameter(f"sigma{tag}", START[1], 0.01, 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pdf = CountingGauss(mu=mu, sigma=sigma, obs=obs)
        data = zfit.Data.from_numpy(obs=obs, array=DATA)
        loss = zfit.loss.UnbinnedNLL(pdf, data)
    minimizer = getattr(zfit.minimize, minimizer_name)(tol=TOL)

    def fit() -> Any:
        mu.set_value(START[0])
        sigma.set_value(START[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return minimizer.minimize(loss)

    first, result = _timed(fit)
    traces_first = counter[0]
    warm = []
    for _ in range(REPEAT):
        t, result = _timed(fit)
        warm.append(t)
    return {
        "solver": f"zfit {minimizer_name}",
        "backend": "zfit (tensorflow)",
        "first_s": first,
        "warm_ms": (1e3 * min(warm), 1e3 * statistics.median(warm)),
        "traces": f"{traces_first} / {counter[0]}",
        "nfev": result.info.get("n_eval", float("nan")),
        "x": np.array([result.params[mu]["value"], result.params[sigma]["value"]]),
        "valid": bool(result.valid),
    }


def _warm_up_frameworks() -> None:
    """Import jax and tensorflow and run one tiny compiled function in each.

    So a row's first call measures what a new loss costs (detection, tracing,
    compilation), not the packages' one-time import and runtime start-up.
    """
    import jax
    import tensorflow as tf

    jax.config.update("jax_enable_x64", True)
    jax.jit(lambda v: v * 2.0)(np.ones(2)).block_until_ready()
    tf.function(lambda v: v * 2.0)(tf.ones(2, tf.float64)).numpy()


def run() -> list[dict[str, Any]]:
    _warm_up_frameworks()
    rows = []
    for backend in BACKENDS:
        for name in ZFITLITE_MINIMIZERS:
            rows.append(run_zfitlite(backend, name))
    skip = {s.strip().lower() for s in os.environ.get("ZFITLITE_BENCH_SKIP", "").split(",")}
    if "zfit" in skip:
        print("zfit rows skipped (ZFITLITE_BENCH_SKIP)")
    else:
        try:
            for name in ("Minuit", "LevenbergMarquardt"):
                rows.append(run_zfit(name))
        except ImportError as exc:
            print(f"zfit rows left out: {exc}")
    return rows


def main() -> None:
    rows = run()
    ref = rows[0]["x"]
    print(
        f"unbinned truncated-Gauss NLL, {N_EVENTS} events, 2 parameters, tol={TOL}, "
        f"warm = best and median of {REPEAT} fits"
    )
    print(
        "| solver | backend | first call s | warm ms/fit best / median | traces (first / all) | "
        "evaluations | max abs dx vs numpy LM | valid |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        dx = float(np.max(np.abs(r["x"] - ref)))
        print(
            f"| {r['solver']} | {r['backend']} | {r['first_s']:.2f} | "
            f"{r['warm_ms'][0]:.1f} / {r['warm_ms'][1]:.1f} | "
            f"{r['traces']} | {r['nfev']} | {dx:.1e} | {r['valid']} |"
        )
    print("versions: " + versions("numpy", "jax", "tensorflow", "zfit"))


if __name__ == "__main__":
    main()
