"""NIST StRD (27 problems x 2 starts): zfitlite's Levenberg-Marquardt against its peers.

All solvers run on the same problems in the same process (runners in
:mod:`benchmarks.nist_peers`):

* zfitlite ``LevenbergMarquardt(tol=1e-10)`` on ``LeastSquares`` losses, numpy (eager
  loop) and JAX (compiled; one loss per problem, so start 2 reuses start 1's compilation);
* ``scipy.optimize.least_squares``, ``method="lm"`` (MINPACK) and ``"trf"``, default
  tolerances, finite-difference Jacobian; and ``method="lm"`` with an analytic Jacobian
  (``jax.jacfwd``, jitted; "scipy lm (jac)");
* iminuit's Migrad on the same sum of squares, errordef 1, default tolerance;
* optimistix's ``LevenbergMarquardt(rtol=1e-12, atol=1e-12)`` through
  ``optx.least_squares`` (``max_steps=10_000``), one jitted solve per problem;
* zfit's ``LevenbergMarquardt(tol=1e-10, maxiter=1000)`` on a ``zfit.loss.SimpleLoss``
  written in TensorFlow (``jit=True``, gradient and Hessian by ``tf.GradientTape``).

zfit 0.28.0 installs beside jax here (pip resolves tensorflow 2.21.0,
tensorflow-probability 0.25.0, keras 3.15.1, protobuf 7.36.2 and pandas 3.1.1 as new
packages and leaves jax 0.10.2, numpy 2.4.6 and scipy 1.17.1 alone; ``pip check`` is
clean); ``pip install -e .[bench]`` gets optimistix, zfit and tensorflow. Two zfit
findings shape its row: ``SimpleLoss(gradient="zfit")`` always raises
``AutogradNotSupported`` in 0.28.0 (hence the GradientTape callables), and
``minimize`` returns ``None`` when it reaches maxiter (its default, 3000 evaluations
per parameter, costs ~100 s on MGH10 start 1; capped at 1000 here).

Reported per solver: cases at >= 6 (and >= 4) correct significant digits, how often the
solver claims success at < 4 digits, median evaluations (also on the cases solved by
both zfitlite-JAX and each peer), median warm wall time per fit (best of 5; zfit: one
call), compile / first-call overhead apart (first call on start 1 minus warm),
tracemalloc peak on a few problems, and per case the ratios zfitlite-JAX / scipy lm and
zfit / zfitlite-JAX (warm times). ``ZFITLITE_BENCH_SKIP=zfit,optimistix`` (comma-separated
full solver names or their first words: zfitlite, scipy, iminuit, optimistix, zfit) leaves
solvers out; a peer that is not installed is left out
with a note. Timings vary from run to run by 10-30 % (more on a loaded machine).
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import warnings
from importlib import metadata
from typing import Any

import numpy as np

from benchmarks.nist_peers import RUNNERS, Case, available
from zfitlite.testing.nist import load_all

#: Problems whose fits also run once under tracemalloc (both starts), for every solver.
MEMORY_PROBLEMS = ("Misra1a", "Chwirut2", "Gauss1", "Thurber")
#: Warm repeats; zfit is slow, so one call.
REPEATS = {"zfit LM": 1}
DEFAULT_REPEAT = 5
JAX = "zfitlite LM (jax)"
COMPILED = (JAX, "optimistix LM", "zfit LM")
_PACKAGES = ("numpy", "scipy", "jax", "iminuit", "optimistix", "equinox", "zfit", "tensorflow")


def _skipped(skip: str | None) -> set[str]:
    text = os.environ.get("ZFITLITE_BENCH_SKIP", "") if skip is None else skip
    tokens = {s.strip().lower() for s in text.split(",") if s.strip()}
    return {n for n in RUNNERS if n.lower() in tokens or n.split()[0].lower() in tokens}


def _versions() -> dict[str, str]:
    out = {}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _median(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


def _ratio_stats(ratios: list[float]) -> dict[str, float]:
    r = np.asarray(ratios, dtype=np.float64)
    r = r[np.isfinite(r) & (r > 0)]
    if not r.size:
        return {"n": 0}
    return {
        "n": int(r.size),
        "median": float(np.median(r)),
        "geomean": float(np.exp(np.mean(np.log(r)))),
        "min": float(r.min()),
        "max": float(r.max()),
    }


def run(skip: str | None = None, memory: bool = True) -> dict[str, Any]:
    """Run every available solver on the 54 cases.

    Parameters
    ----------
    skip : str, optional
        Comma-separated solver names, or their first words ("zfitlite", "scipy",
        "iminuit", "optimistix", "zfit"), to leave out (default: the environment
        variable ``ZFITLITE_BENCH_SKIP``).
    memory : bool
        Also run the fits of :data:`MEMORY_PROBLEMS` once under tracemalloc.

    Returns
    -------
    dict
        ``solvers`` (summary per solver), ``cases`` (one dict per solver, problem and
        start), ``ratios`` (per case and summarised), ``both_solved`` (evaluations on
        the cases zfitlite-JAX and each peer solve), ``skipped`` (solver: reason),
        ``environment`` (machine, versions, total time, max RSS).
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore", RuntimeWarning)
    skipped: dict[str, str] = {name: "skipped on request" for name in _skipped(skip)}
    for name, (pkg, _) in RUNNERS.items():
        if name not in skipped and pkg is not None and not available(pkg):
            skipped[name] = f"{pkg} is not installed (pip install -e .[bench])"
    active = [name for name in RUNNERS if name not in skipped]

    t_start = time.perf_counter()
    time_per_solver = dict.fromkeys(active, 0.0)
    cases: list[Case] = []
    problems = load_all()
    for i, P in enumerate(problems, 1):
        print(f"[bench_nist] {i}/{len(problems)} {P.name}", file=sys.stderr, flush=True)
        for name in active:
            t0 = time.perf_counter()
            cases += RUNNERS[name][1](
                P,
                repeat=REPEATS.get(name, DEFAULT_REPEAT),
                memory=memory and P.name in MEMORY_PROBLEMS,
            )
            time_per_solver[name] += time.perf_counter() - t0

    by: dict[str, list[Case]] = {name: [c for c in cases if c.solver == name] for name in active}
    solvers: dict[str, dict[str, float]] = {}
    for name, cs in by.items():
        d = np.array([c.digits for c in cs])
        s = {
            "cases": len(cs),
            "solved_6_digits": int(np.sum(d >= 6)),
            "solved_4_digits": int(np.sum(d >= 4)),
            "claims_success_below_4_digits": int(sum(c.ok and c.digits < 4 for c in cs)),
            "median_evals": _median([c.evals for c in cs]),
            "median_warm_ms": 1e3 * _median([c.warm_s for c in cs]),
            "total_s": time_per_solver[name],
        }
        if name in COMPILED:
            s["median_first_call_ms"] = 1e3 * _median([c.first_s for c in cs if c.start == 1])
            s["median_second_call_ms"] = 1e3 * _median([c.second_s for c in cs if c.start == 1])
            # whatever the first two calls cost beyond two warm ones (zfitlite-JAX
            # compiles its solver on the second call, the peers on the first); zfit,
            # called once before its warm call: the first call beyond the warm one
            s["median_compile_ms"] = 1e3 * _median(
                [
                    c.first_s - c.warm_s + (c.second_s - c.warm_s if np.isfinite(c.second_s) else 0)
                    for c in cs
                    if c.start == 1
                ]
            )
        peaks = [c.extra["peak_kib"] for c in cs if "peak_kib" in c.extra]
        if peaks:
            s["median_peak_kib"] = _median(peaks)
        solvers[name] = s

    # Per-case ratios and the evaluations on the cases both solve.
    key = {(c.solver, c.problem, c.start): c for c in cases}
    per_case = []
    both_solved: dict[str, dict[str, float]] = {}
    if JAX in by:
        for c in by[JAX]:
            row: dict[str, Any] = {"problem": c.problem, "start": c.start}
            lm_ = key.get(("scipy lm", c.problem, c.start))
            zf = key.get(("zfit LM", c.problem, c.start))
            if lm_ is not None:
                row["jax_over_scipy_lm"] = c.warm_s / lm_.warm_s
            if zf is not None:
                row["zfit_over_jax"] = zf.warm_s / c.warm_s
            for rk, peer in (
                ("jax_over_scipy_lm_jac", "scipy lm (jac)"),
                ("jax_over_optimistix", "optimistix LM"),
            ):
                other = key.get((peer, c.problem, c.start))
                if other is not None:
                    row[rk] = c.warm_s / other.warm_s
                    if c.start == 1 and peer == "optimistix LM":
                        row["jax_first_over_optimistix_first"] = c.first_s / other.first_s
                        row["jax_first_two_over_optimistix_first_two"] = (
                            c.first_s + c.second_s
                        ) / (other.first_s + other.second_s)
            per_case.append(row)
        for peer, cs in by.items():
            if peer == JAX:
                continue
            pairs = [
                (key[(JAX, c.problem, c.start)], c)
                for c in cs
                if c.digits >= 6 and key[(JAX, c.problem, c.start)].digits >= 6
            ]
            both_solved[peer] = {
                "n": len(pairs),
                "zfitlite_jax_median_evals": _median([a.evals for a, _ in pairs]),
                "peer_median_evals": _median([b.evals for _, b in pairs]),
                "zfitlite_jax_median_warm_ms": 1e3 * _median([a.warm_s for a, _ in pairs]),
                "peer_median_warm_ms": 1e3 * _median([b.warm_s for _, b in pairs]),
            }

    def solved_both(row: dict[str, Any], peer: str) -> bool:
        a = key.get((JAX, row["problem"], row["start"]))
        b = key.get((peer, row["problem"], row["start"]))
        return a is not None and b is not None and a.digits >= 6 and b.digits >= 6

    ratios: dict[str, Any] = {"per_case": per_case}
    for rk, peer in (
        ("jax_over_scipy_lm", "scipy lm"),
        ("jax_over_scipy_lm_jac", "scipy lm (jac)"),
        ("jax_over_optimistix", "optimistix LM"),
        ("jax_first_over_optimistix_first", "optimistix LM"),
        ("jax_first_two_over_optimistix_first_two", "optimistix LM"),
        ("zfit_over_jax", "zfit LM"),
    ):
        vals = [r[rk] for r in per_case if rk in r]
        if vals:
            ratios[rk] = _ratio_stats(vals)
            ratios[rk + "_both_solved"] = _ratio_stats(
                [r[rk] for r in per_case if rk in r and solved_both(r, peer)]
            )
    if "jax_over_scipy_lm" in ratios:
        ratios["jax_not_slower_than_scipy_lm"] = sum(
            r["jax_over_scipy_lm"] <= 1 for r in per_case if "jax_over_scipy_lm" in r
        )
    if "zfit_over_jax" in ratios:
        ratios["zfit_at_least_20x_slower"] = sum(
            r["zfit_over_jax"] >= 20 for r in per_case if "zfit_over_jax" in r
        )

    environment = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "python": platform.python_version(),
        "versions": _versions(),
        "total_s": time.perf_counter() - t_start,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return {
        "solvers": solvers,
        "cases": [c.__dict__ for c in cases],
        "ratios": ratios,
        "both_solved": both_solved,
        "skipped": skipped,
        "environment": environment,
    }


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def format_report(result: dict[str, Any]) -> str:
    """The tables of :func:`run` as Markdown text."""
    env = result["environment"]
    out = [
        f"Machine: {env['machine']}, Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"Total benchmark time {env['total_s']:.0f} s; process max RSS "
        f"{env['max_rss_mib']:.0f} MiB (all solvers together).",
        "",
    ]
    rows = []
    for name, s in result["solvers"].items():
        rows.append(
            [
                name,
                str(s["solved_6_digits"]),
                str(s["solved_4_digits"]),
                str(s["claims_success_below_4_digits"]),
                _fmt(s["median_evals"], ".0f"),
                _fmt(s["median_warm_ms"]),
                _fmt(s.get("median_first_call_ms", float("nan")), ".0f"),
                _fmt(s.get("median_second_call_ms", float("nan")), ".0f"),
                _fmt(s.get("median_compile_ms", float("nan")), ".0f"),
                _fmt(s.get("median_peak_kib", float("nan")), ".0f"),
                _fmt(s["total_s"], ".1f"),
            ]
        )
    n = max((s["cases"] for s in result["solvers"].values()), default=54)
    out.append(
        _table(
            [
                "solver",
                f"6 digits (of {n})",
                "4 digits",
                "success claimed < 4 digits",
                "median evals",
                "median warm ms",
                "median first call ms",
                "median second call ms",
                "median compile ms (first two calls beyond two warm)",
                "median peak KiB",
                "total s",
            ],
            rows,
        )
    )
    if result["skipped"]:
        out.append("")
        out += [f"Left out: {name}: {why}" for name, why in result["skipped"].items()]

    if result["both_solved"]:
        out += ["", "Cases solved (>= 6 digits) by both zfitlite LM (jax) and the peer:", ""]
        rows = [
            [
                peer,
                str(b["n"]),
                _fmt(b["zfitlite_jax_median_evals"], ".0f"),
                _fmt(b["peer_median_evals"], ".0f"),
                _fmt(b["zfitlite_jax_median_warm_ms"]),
                _fmt(b["peer_median_warm_ms"]),
            ]
            for peer, b in result["both_solved"].items()
        ]
        out.append(
            _table(
                [
                    "peer",
                    "cases",
                    "zfitlite-JAX median evals",
                    "peer median evals",
                    "zfitlite-JAX median warm ms",
                    "peer median warm ms",
                ],
                rows,
            )
        )

    ratios = result["ratios"]
    labels = {
        "jax_over_scipy_lm": "zfitlite-JAX warm / scipy lm warm (target <= 1)",
        "jax_over_scipy_lm_jac": "zfitlite-JAX warm / scipy lm with analytic jac (goal <= 0.5)",
        "jax_over_optimistix": "zfitlite-JAX warm / optimistix warm (goal <= 1)",
        "jax_first_over_optimistix_first": "zfitlite-JAX first fit / optimistix first (goal <= 1)",
        "jax_first_two_over_optimistix_first_two": (
            "zfitlite-JAX first two fits / optimistix first two (solver compiled by both)"
        ),
        "zfit_over_jax": "zfit LM warm / zfitlite-JAX warm (target >= 20)",
    }
    rows = []
    for rk, label in labels.items():
        for suffix, which in (("", "all cases"), ("_both_solved", "cases both solve")):
            st = ratios.get(rk + suffix)
            if st and st.get("n"):
                rows.append(
                    [
                        label,
                        which,
                        str(st["n"]),
                        _fmt(st["median"]),
                        _fmt(st["geomean"]),
                        _fmt(st["min"]),
                        _fmt(st["max"]),
                    ]
                )
    if rows:
        out += ["", "Per-case time ratios:", ""]
        out.append(_table(["ratio", "over", "cases", "median", "geomean", "min", "max"], rows))
        counts = []
        if "jax_not_slower_than_scipy_lm" in ratios:
            counts.append(
                f"zfitlite-JAX no slower than scipy lm on "
                f"{ratios['jax_not_slower_than_scipy_lm']} cases"
            )
        if "zfit_at_least_20x_slower" in ratios:
            counts.append(
                f"zfit LM at least 20x slower than zfitlite-JAX on "
                f"{ratios['zfit_at_least_20x_slower']} cases"
            )
        if counts:
            out.append("\n" + "; ".join(counts) + ".")

    # Per-case detail.
    cases = {(c["solver"], c["problem"], c["start"]): c for c in result["cases"]}
    cols = [s for s in (JAX, "scipy lm", "optimistix LM", "zfit LM") if s in result["solvers"]]
    if JAX in result["solvers"]:
        header = ["problem", "start"]
        for s in cols:
            header += [f"{s} digits", f"{s} warm ms"]
        ratio_cols = [
            (rk, label, spec)
            for rk, label, spec in (
                ("jax_over_scipy_lm", "JAX/lm", ".2f"),
                ("jax_over_scipy_lm_jac", "JAX/lm(jac)", ".2f"),
                ("jax_over_optimistix", "JAX/optx", ".2f"),
                ("zfit_over_jax", "zfit/JAX", ".0f"),
            )
            if any(rk in r for r in ratios["per_case"])
        ]
        header += [label for _, label, _ in ratio_cols]
        rows = []
        for r in ratios["per_case"]:
            row = [r["problem"], str(r["start"])]
            for s in cols:
                c = cases[(s, r["problem"], r["start"])]
                row += [_fmt(c["digits"], ".1f"), _fmt(1e3 * c["warm_s"])]
            row += [_fmt(r.get(rk, float("nan")), spec) for rk, _, spec in ratio_cols]
            rows.append(row)
        out += ["", "Per case (warm times; digits = correct significant digits):", ""]
        out.append(_table(header, rows))
    notes = [
        f"{c['solver']} {c['problem']} start {c['start']}: {c['note'][:120]}"
        for c in result["cases"]
        if c["note"]
    ]
    if notes:
        out += ["", "Failures reported by the solvers:"] + [f"- {n}" for n in notes]
    return "\n".join(out)


def main() -> None:
    print(format_report(run()))


if __name__ == "__main__":
    main()
