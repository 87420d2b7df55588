"""Defaults only: what a user gets without tuning (issue 14).

Part A, NIST StRD (27 problems x 2 starts), ``LevenbergMarquardt()`` with default
``tol`` on ``LeastSquares`` (JAX, exact Jacobian): cases at >= 6 correct digits and the
median number of residual evaluations, next to ``scipy.optimize.least_squares(method="lm")``
(MINPACK) with its defaults in the same run.

Part B, the same problems written as a plain scalar loss (the sum of squares as a JAX
``SimpleLoss`` with ``errordef=1``, what a user who does not know the noise level writes),
minimized with defaults by ScipyBFGS, ScipyLBFGSB, Minuit, LevenbergMarquardt,
ScipyNelderMead and ScipyPowell: how many results are ``valid`` although some parameter is
0.1 certified standard deviations or more from its certified value ("valid at a wrong
point"), and the fewest correct digits among the valid ones.

``python -m benchmarks bench_defaults`` (``ZFITLITE_BENCH_FAST=1``: 8 problems only).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
import scipy.optimize

import zfitlite
from benchmarks.nist_peers import digits
from zfitlite.testing.nist import load_all

FAST = ("Misra1a", "Chwirut2", "Lanczos3", "MGH09", "Thurber", "BoxBOD", "Eckerle4", "Bennett5")
SCALAR_MINIMIZERS = (
    "ScipyBFGS",
    "ScipyLBFGSB",
    "Minuit",
    "LevenbergMarquardt",
    "ScipyNelderMead",
    "ScipyPowell",
)


def _problems() -> list[Any]:
    problems = load_all()
    if os.environ.get("ZFITLITE_BENCH_FAST"):
        problems = [p for p in problems if p.name in FAST]
    return problems


def _jax_model(P: Any) -> Any:
    import jax.numpy as jnp

    def residuals(b: Any) -> Any:
        return P.residuals(b, xp=jnp)

    return residuals


def run_least_squares() -> dict[str, Any]:
    """Part A: LM on LeastSquares with defaults against MINPACK with its defaults."""
    rows = []
    for P in _problems():
        loss = zfitlite.LeastSquares(_jax_model(P), backend="jax", name=P.name)
        for k, start in enumerate(P.starts, 1):
            r = zfitlite.minimize.LevenbergMarquardt().minimize(loss, start)
            s = scipy.optimize.least_squares(P.residuals, start, method="lm")
            rows.append(
                {
                    "case": f"{P.name}/{k}",
                    "zfitlite": digits(r.x, P.certified),
                    "zfitlite_valid": bool(r.valid),
                    "zfitlite_nres": int(r.info["nres"]),
                    "scipy": digits(s.x, P.certified),
                    "scipy_nfev": int(s.nfev),
                }
            )
    return {"rows": rows}


def run_scalar() -> dict[str, Any]:
    """Part B: the sum of squares as a scalar loss, errordef 1, six minimizers."""
    import jax.numpy as jnp

    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SCALAR_MINIMIZERS}
    for P in _problems():

        def rss(b: Any, P: Any = P) -> Any:
            r = P.residuals(b, xp=jnp)
            return jnp.sum(r * r)

        loss = zfitlite.SimpleLoss(rss, errordef=1.0, backend="jax", name=P.name)
        for name in SCALAR_MINIMIZERS:
            minimizer = getattr(zfitlite.minimize, name)()
            for k, start in enumerate(P.starts, 1):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        r = minimizer.minimize(loss, start)
                    except Exception as exc:
                        out[name].append({"case": f"{P.name}/{k}", "error": repr(exc)[:80]})
                        continue
                off = float(np.max(np.abs(r.x - P.certified) / P.certified_sd))
                out[name].append(
                    {
                        "case": f"{P.name}/{k}",
                        "valid": bool(r.valid),
                        "sigma_off": off,
                        "digits": digits(r.x, P.certified),
                        "f_ratio": float(r.fmin / P.certified_rss),
                        "edm": float(r.edm),
                        "nfev": int(r.info.get("nfev", r.info.get("ncalls", 0)) or 0),
                    }
                )
    return out


def format_report(lsq: dict[str, Any], scalar: dict[str, Any]) -> str:
    rows = lsq["rows"]
    n = len(rows)
    z6 = sum(r["zfitlite"] >= 6 for r in rows)
    s6 = sum(r["scipy"] >= 6 for r in rows)
    z4 = sum(r["zfitlite"] >= 4 for r in rows)
    s4 = sum(r["scipy"] >= 4 for r in rows)
    lines = [
        f"NIST, defaults, {n} cases: zfitlite LM on LeastSquares {z6} at >= 6 digits "
        f"({z4} at >= 4), median residual evaluations {np.median([r['zfitlite_nres'] for r in rows]):g}; "
        f"scipy least_squares(method='lm') {s6} ({s4}), median nfev "
        f"{np.median([r['scipy_nfev'] for r in rows]):g}",
    ]
    short = [f"{r['case']} {r['zfitlite']:.1f}" for r in rows if r["zfitlite"] < 6]
    if short:
        lines.append("  below 6 digits: " + ", ".join(short))
    lines.append("")
    lines.append("NIST as a scalar sum of squares, errordef=1, defaults:")
    lines.append(
        "| minimizer | cases | valid | valid >= 0.1 sigma off | of which < 4 digits "
        "| of which at a distinct local minimum (F > 1.01 RSS) | fewest digits, valid near the "
        "certified minimum | raised |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    total = total4 = 0
    for name, res in scalar.items():
        ok = [r for r in res if "error" not in r]
        valid = [r for r in ok if r["valid"]]
        off = [r for r in valid if r["sigma_off"] >= 0.1]
        off4 = [r for r in off if r["digits"] < 4]
        other = [r for r in off if r["f_ratio"] > 1.01]
        near = [r for r in valid if r["f_ratio"] <= 1.01]
        total += len(off) - len(other)
        total4 += len([r for r in off4 if r["f_ratio"] <= 1.01])
        fewest = min((r["digits"] for r in near), default=float("nan"))
        lines.append(
            f"| {name} | {len(res)} | {len(valid)} | {len(off)} | {len(off4)} | {len(other)} "
            f"| {fewest:.1f} | {len(res) - len(ok)} |"
        )
        wrong = [r for r in off if r["f_ratio"] <= 1.01]
        if wrong:
            lines.append(
                "|  | near the minimum but >= 0.1 sigma off: "
                + ", ".join(f"{r['case']} ({r['digits']:.1f} digits)" for r in wrong)
                + " | | | | | | |"
            )
    lines.append(
        f"valid at a wrong point (>= 0.1 sigma off, F within 1 % of the certified RSS): {total}, "
        f"{total4} of them with < 4 digits"
    )
    return "\n".join(lines)


def main() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    t = time.perf_counter()
    lsq = run_least_squares()
    scalar = {} if os.environ.get("ZFITLITE_BENCH_NO_SCALAR") else run_scalar()
    print(format_report(lsq, scalar))
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
