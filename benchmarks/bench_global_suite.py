"""The default global -> local chain against scipy's global methods on a classic suite.

Over 100 test functions with known minima (:mod:`benchmarks.global_functions`: Jamil &
Yang 2013, Dixon-Szegö, Moré-Garbow-Hillstrom, CEC-style functions in 2, 5 and 10
dimensions). Every method runs with its defaults and the same seeds:

* zfitlite ``GlobalLocal(DifferentialEvolution(seed=s), LevenbergMarquardt())`` (numpy
  loss, numerical derivatives);
* ``scipy.optimize.differential_evolution(seed=s)`` (its default L-BFGS-B polish);
* ``scipy.optimize.dual_annealing(seed=s)``;
* ``scipy.optimize.direct`` then ``minimize(method="L-BFGS-B")`` from its answer, inside
  the bounds (direct is deterministic; the seed does not matter).

Success: ``|f - f*| < 1e-5``. ``ZFITLITE_BENCH_FAST=1``: a 24-function subset, one seed;
``ZFITLITE_BENCH_SEEDS=1,2,3`` sets the seeds (default 1); ``ZFITLITE_BENCH_VERBOSE=1``
prints one line per function as it goes; ``ZFITLITE_BENCH_MAXDIM=6`` leaves out the
functions of more dimensions (the 10-dimensional ones cost most of the time).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
import scipy.optimize

import zfitlite
from benchmarks.global_functions import FAST, TestFunction, functions

SUCCESS = 1e-5
METHODS = (
    "zfitlite GlobalLocal(DE, LM)",
    "scipy DE (polish)",
    "scipy dual_annealing",
    "scipy direct + L-BFGS-B",
)


def _suite() -> list[TestFunction]:
    fs = functions()
    if os.environ.get("ZFITLITE_BENCH_FAST"):
        fs = [f for f in fs if f.name in FAST]
    maxdim = os.environ.get("ZFITLITE_BENCH_MAXDIM")
    if maxdim:
        fs = [f for f in fs if f.dim <= int(maxdim)]
    return fs


def _seeds() -> list[int]:
    text = os.environ.get("ZFITLITE_BENCH_SEEDS", "1")
    return [int(s) for s in text.split(",") if s.strip()]


def _safe(fn: Any) -> Any:
    def f(x: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            return float(fn(np.asarray(x, dtype=np.float64)))

    return f


def run_zfitlite(tf: TestFunction, seed: int) -> tuple[float, int]:
    f = _safe(tf.f)
    f.errordef = 1.0  # type: ignore[attr-defined]
    params = {
        f"x{i}": {"value": 0.5 * (lo + hi), "lower": lo, "upper": hi}
        for i, (lo, hi) in enumerate(tf.bounds)
    }
    chain = zfitlite.minimize.GlobalLocal(
        zfitlite.minimize.DifferentialEvolution(seed=seed), zfitlite.minimize.LevenbergMarquardt()
    )
    r = chain.minimize(f, params)
    return float(r.fmin), int(r.nfev)


def run_scipy_de(tf: TestFunction, seed: int) -> tuple[float, int]:
    r = scipy.optimize.differential_evolution(_safe(tf.f), tf.bounds, seed=seed)
    return float(r.fun), int(r.nfev)


def run_dual_annealing(tf: TestFunction, seed: int) -> tuple[float, int]:
    r = scipy.optimize.dual_annealing(_safe(tf.f), tf.bounds, seed=seed)
    return float(r.fun), int(r.nfev)


def run_direct(tf: TestFunction, seed: int) -> tuple[float, int]:
    f = _safe(tf.f)
    d = scipy.optimize.direct(f, tf.bounds)
    r = scipy.optimize.minimize(f, d.x, method="L-BFGS-B", bounds=tf.bounds)
    best = min(float(d.fun), float(r.fun))
    return best, int(d.nfev) + int(r.nfev)


RUNNERS = dict(zip(METHODS, (run_zfitlite, run_scipy_de, run_dual_annealing, run_direct)))


def run() -> dict[str, Any]:
    rows = []
    for tf in _suite():
        for seed in _seeds():
            row: dict[str, Any] = {"name": tf.name, "dim": tf.dim, "seed": seed, "fstar": tf.fstar}
            for method, runner in RUNNERS.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        fmin, nfev = runner(tf, seed)
                    except Exception as exc:  # a raise is a failure here
                        fmin, nfev = float("nan"), 0
                        row[f"{method} error"] = repr(exc)[:100]
                row[method] = {
                    "fmin": fmin,
                    "nfev": nfev,
                    "time": time.perf_counter() - t0,
                    "ok": bool(abs(fmin - tf.fstar) < SUCCESS),
                }
            rows.append(row)
            if os.environ.get("ZFITLITE_BENCH_VERBOSE"):
                marks = " ".join("+" if row[m]["ok"] else "-" for m in METHODS)
                times = " ".join(f"{row[m]['time']:.1f}" for m in METHODS)
                print(f"  {tf.name} seed {seed}: {marks} ({times} s)", flush=True)
    return {"rows": rows, "seeds": _seeds()}


def format_report(result: dict[str, Any]) -> str:
    rows = result["rows"]
    names = sorted({r["name"] for r in rows})
    lines = [
        f"{len(names)} functions x {len(result['seeds'])} seed(s) = {len(rows)} runs; "
        f"success |f - f*| < {SUCCESS:g}",
        "",
        "| method | solved | % | median evaluations | total time (s) |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS:
        ok = sum(r[m]["ok"] for r in rows)
        nfev = np.median([r[m]["nfev"] for r in rows])
        t = sum(r[m]["time"] for r in rows)
        lines.append(f"| {m} | {ok} | {100 * ok / len(rows):.0f} | {nfev:g} | {t:.0f} |")
    lines.append("")
    zl = METHODS[0]
    missed = [r for r in rows if not r[zl]["ok"]]
    if missed:
        lines.append(
            "zfitlite chain misses: "
            + ", ".join(
                f"{r['name']}/{r['seed']} (f={r[zl]['fmin']:.6g} vs {r['fstar']:.6g}"
                + (", a scipy method solves it)" if any(r[m]["ok"] for m in METHODS[1:]) else ")")
                for r in missed
            )
        )
    nobody = [r["name"] for r in rows if not any(r[m]["ok"] for m in METHODS)]
    if nobody:
        lines.append("solved by no method: " + ", ".join(nobody))
    return "\n".join(lines)


def main() -> None:
    t = time.perf_counter()
    result = run()
    print(format_report(result))
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
