"""NIST StRD (27 problems x 2 starts): zfitlite's Levenberg-Marquardt against its peers.

Peers run on the same problems in the same process: scipy.optimize.least_squares
(MINPACK "lm" and "trf", finite-difference Jacobian, default tolerances) and iminuit's
Migrad on the same sum of squares. Reported: cases at >= 6 correct digits, median
residual evaluations, median warm wall time per fit, and (JAX) compile time apart.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.optimize

import zfitlite
from zfitlite.testing.nist import load_all


def _digits(x: np.ndarray, cert: np.ndarray) -> float:
    err = np.max(np.abs(np.asarray(x) - cert) / np.abs(cert))
    return float(-np.log10(err)) if err > 0 else 16.0


def _time(fn, *args, repeat: int = 3, **kwargs) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t)
    return best, out


def run() -> dict[str, dict[str, float]]:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    rows: dict[str, list[tuple[float, int, float]]] = {
        k: []
        for k in (
            "zfitlite LM (numpy)",
            "zfitlite LM (jax)",
            "scipy lm",
            "scipy trf",
            "iminuit migrad",
        )
    }
    compile_times = []
    warnings.simplefilter("ignore", RuntimeWarning)
    for P in load_all():
        for start in P.starts:
            lm = zfitlite.minimize.LevenbergMarquardt(tol=1e-10)
            loss_np = zfitlite.LeastSquares(lambda b, P=P: P.residuals(b), backend="numpy")
            t, r = _time(lm.minimize, loss_np, start)
            rows["zfitlite LM (numpy)"].append((_digits(r.x, P.certified), r.info["nres"], t))
            loss_j = zfitlite.LeastSquares(lambda b, P=P: P.residuals(b, xp=jnp), backend="jax")
            t0 = time.perf_counter()
            lm.minimize(loss_j, start)
            first = time.perf_counter() - t0
            t, r = _time(lm.minimize, loss_j, start)
            compile_times.append(first - t)
            rows["zfitlite LM (jax)"].append((_digits(r.x, P.certified), r.info["nres"], t))
            for method in ("lm", "trf"):
                t, s = _time(scipy.optimize.least_squares, P.residuals, start, method=method)
                rows[f"scipy {method}"].append((_digits(s.x, P.certified), s.nfev, t))
            try:
                import iminuit

                def chi2(*b, P=P):
                    r_ = P.residuals(np.array(b))
                    return float(r_ @ r_)

                def migrad(start=start):
                    m = iminuit.Minuit(chi2, *start)
                    m.errordef = 1.0
                    m.migrad()
                    return m

                t, m = _time(migrad)
                rows["iminuit migrad"].append((_digits(np.array(m.values), P.certified), m.nfcn, t))
            except ImportError:  # pragma: no cover
                rows.pop("iminuit migrad", None)
    summary = {}
    for name, vals in rows.items():
        d = np.array([v[0] for v in vals])
        summary[name] = {
            "solved_6_digits": int(np.sum(d >= 6)),
            "solved_4_digits": int(np.sum(d >= 4)),
            "median_evals": float(np.median([v[1] for v in vals])),
            "median_warm_ms": 1e3 * float(np.median([v[2] for v in vals])),
        }
    summary["zfitlite LM (jax)"]["median_compile_ms"] = 1e3 * float(np.median(compile_times))
    return summary


def main() -> None:
    summary = run()
    print(
        "| solver | cases at 6 digits (of 54) | at 4 digits | median evaluations | median warm time (ms) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, s in summary.items():
        print(
            f"| {name} | {s['solved_6_digits']} | {s['solved_4_digits']} | {s['median_evals']:.0f} | "
            f"{s['median_warm_ms']:.2f} |"
        )
    print(
        f"\nJAX compile time per problem (median): {summary['zfitlite LM (jax)']['median_compile_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
