"""Memory over repeated fits: 10,000 fits per case in one process, and what they keep.

zfit users report memory growing over repeated fits. Each row fits a two-parameter
Gaussian NLL (200 events) ``N_FITS`` times after ``WARMUP`` fits and reports the Python
heap kept per fit (``tracemalloc``, after a full garbage collection) and the resident
set size before and after. Cases:

* zfitlite ``LevenbergMarquardt`` and ``ScipyLBFGSB`` on the numpy and JAX backends:
  the same loss object every fit, and a fresh ``SimpleLoss`` on new data of the same
  shape every fit (``args=``: nothing is compiled again on JAX), and on JAX with
  ``hesse()`` and ``errors()`` too;
* a fresh JAX *closure* over new data every fit (``FRESH_CLOSURE_FITS`` fits: each one
  traces and compiles, so it is slow; it shows what is freed with the closure);
* peers on the same loss in the same process: ``scipy.optimize.minimize`` (BFGS,
  L-BFGS-B) and iminuit's ``Migrad``.

``ZFITLITE_BENCH_MEMORY_FITS`` changes ``N_FITS`` (e.g. 1000 for a quick look).
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from benchmarks import versions

N_FITS = int(os.environ.get("ZFITLITE_BENCH_MEMORY_FITS", "10000"))
WARMUP = 100
FRESH_CLOSURE_FITS = 100
HESSE_ERRORS_FITS = max(N_FITS // 10, 10)
_RNG = np.random.default_rng(2)
DATA = _RNG.normal(1.0, 2.0, 200)
SHIFTED = [DATA + 1e-3 * k for k in range(16)]
START = np.array([0.5, 1.5])
PARAMS = {"mu": 0.5, "sigma": {"value": 1.5, "lower": 0.01}}


def nll_np(x: np.ndarray, data: np.ndarray = DATA) -> float:
    mu, sigma = x
    return float(np.sum(np.log(sigma) + 0.5 * ((data - mu) / sigma) ** 2))


def grad_np(x: np.ndarray, data: np.ndarray = DATA) -> np.ndarray:
    mu, sigma = x
    z = (data - mu) / sigma
    return np.array([-np.sum(z) / sigma, np.sum(1.0 - z * z) / sigma])


def _rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def measure(fit: Callable[[int], Any], n: int, warmup: int = WARMUP) -> dict[str, float]:
    """Bytes kept per fit (traced heap) and RSS before/after ``n`` fits."""
    for i in range(warmup):
        fit(i)
    gc.collect()
    rss0 = _rss_mib()
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for i in range(warmup, warmup + n):
        fit(i)
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss1 = _rss_mib()
    return {
        "n": n,
        "bytes_per_fit": (after - before) / n,
        "rss_before": rss0,
        "rss_after": rss1,
        "ms_per_fit": 1e3 * elapsed / n,
    }


def zfitlite_cases() -> dict[str, tuple[Callable[[int], Any], int]]:
    import jax
    import jax.numpy as jnp

    from zfitlite.loss import SimpleLoss
    from zfitlite.minimize import LevenbergMarquardt, ScipyLBFGSB

    jax.config.update("jax_enable_x64", True)

    def nll_jax(x: Any, data: Any) -> Any:
        return jnp.sum(jnp.log(x[1]) + 0.5 * ((data - x[0]) / x[1]) ** 2)

    lm, lbfgsb = LevenbergMarquardt(), ScipyLBFGSB()
    same_np = SimpleLoss(nll_np, errordef=0.5, backend="numpy", args=(DATA,))
    same_jax = SimpleLoss(nll_jax, errordef=0.5, backend="jax", args=(jnp.asarray(DATA),))
    shifted_jax = [jnp.asarray(d) for d in SHIFTED]

    def fresh_np(i: int) -> Any:
        return SimpleLoss(nll_np, errordef=0.5, backend="numpy", args=(SHIFTED[i % 16],))

    def fresh_jax(i: int) -> Any:
        return SimpleLoss(nll_jax, errordef=0.5, backend="jax", args=(shifted_jax[i % 16],))

    def closure_jax(i: int) -> Any:
        d = jnp.asarray(SHIFTED[i % 16])

        def nll(x: Any) -> Any:
            return nll_jax(x, d)

        return SimpleLoss(nll, errordef=0.5, backend="jax")

    def with_errors(i: int) -> Any:
        r = lm.minimize(same_jax, PARAMS)
        r.hesse()
        r.errors()
        return r

    return {
        "zfitlite LM numpy, same loss": (lambda i: lm.minimize(same_np, PARAMS), N_FITS),
        "zfitlite LM numpy, fresh loss": (lambda i: lm.minimize(fresh_np(i), PARAMS), N_FITS),
        "zfitlite L-BFGS-B numpy, same loss": (
            lambda i: lbfgsb.minimize(same_np, PARAMS),
            N_FITS,
        ),
        "zfitlite LM jax, same loss": (lambda i: lm.minimize(same_jax, PARAMS), N_FITS),
        "zfitlite LM jax, fresh loss (args)": (
            lambda i: lm.minimize(fresh_jax(i), PARAMS),
            N_FITS,
        ),
        "zfitlite L-BFGS-B jax, fresh loss (args)": (
            lambda i: lbfgsb.minimize(fresh_jax(i), PARAMS),
            N_FITS,
        ),
        "zfitlite LM jax + hesse + errors": (with_errors, HESSE_ERRORS_FITS),
        "zfitlite LM jax, fresh closure (compiles)": (
            lambda i: lm.minimize(closure_jax(i), PARAMS),
            FRESH_CLOSURE_FITS,
        ),
    }


def peer_cases() -> dict[str, tuple[Callable[[int], Any], int]]:
    import scipy.optimize

    bounds = [(None, None), (0.01, None)]
    cases: dict[str, tuple[Callable[[int], Any], int]] = {
        "scipy.optimize.minimize BFGS": (
            lambda i: scipy.optimize.minimize(nll_np, START, jac=grad_np, method="BFGS"),
            N_FITS,
        ),
        "scipy.optimize.minimize L-BFGS-B": (
            lambda i: scipy.optimize.minimize(
                nll_np, START, jac=grad_np, method="L-BFGS-B", bounds=bounds
            ),
            N_FITS,
        ),
    }
    try:
        import iminuit
    except ImportError:
        print("iminuit rows left out: iminuit is not installed")
        return cases

    def migrad(i: int) -> Any:
        m = iminuit.Minuit(nll_np, START, name=("mu", "sigma"))
        m.errordef = 0.5
        m.limits["sigma"] = (0.01, None)
        return m.migrad()

    cases["iminuit Migrad"] = (migrad, N_FITS)
    return cases


def run() -> list[dict[str, Any]]:
    rows = []
    for name, (fit, n) in {**zfitlite_cases(), **peer_cases()}.items():
        row = measure(fit, n, warmup=min(WARMUP, n))
        row["case"] = name
        rows.append(row)
        print(
            f"  {name}: {row['bytes_per_fit']:.1f} B/fit, RSS {row['rss_before']:.0f} -> "
            f"{row['rss_after']:.0f} MiB",
            file=sys.stderr,
        )
    return rows


def main() -> None:
    rows = run()
    print(
        f"repeated fits of a 2-parameter Gaussian NLL (200 events), {N_FITS} fits per case after "
        f"{WARMUP} warm-up fits; heap kept per fit from tracemalloc after gc.collect()"
    )
    print("| case | fits | bytes kept / fit | RSS before MiB | RSS after MiB | ms / fit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['case']} | {r['n']} | {r['bytes_per_fit']:.1f} | {r['rss_before']:.1f} | "
            f"{r['rss_after']:.1f} | {r['ms_per_fit']:.2f} |"
        )
    print("versions: " + versions("numpy", "scipy", "jax", "iminuit"))


if __name__ == "__main__":
    main()
