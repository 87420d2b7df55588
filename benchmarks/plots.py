"""Charts of the benchmark figures in ``docs/benchmarks.md``, written to ``docs/_static``.

``python -m benchmarks.plots`` reads the tables of ``docs/benchmarks.md`` (the page is
the record of what was measured, so the charts cannot drift from it) and draws:

- ``bench_nist_ratio.png``: per NIST case, zfitlite-JAX's warm time over scipy lm's;
- ``bench_nist_summary.png``: cases solved to 6 digits and median warm time per solver;
- ``bench_batch.png``: fits per second for 10,000 small fits;
- ``bench_overhead.png``: the scipy wrappers' time over scipy's, per problem and backend;
- ``bench_backends.png``: warm time of one unbinned fit per solver and backend.

Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "docs" / "_static"

ZFITLITE = "#1f77b4"
PEER = "#9a9a9a"
ACCENT = "#d62728"


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table of ``text`` as a list of ``{header: cell}`` rows."""
    found: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*-+\s*\|)+", lines[i + 1].strip()):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells)))
                i += 1
            found.append(rows)
        else:
            i += 1
    return found


def table_with(all_tables: list[list[dict[str, str]]], *columns: str) -> list[dict[str, str]]:
    """The first table that has all of ``columns``."""
    for rows in all_tables:
        if rows and all(c in rows[0] for c in columns):
            return rows
    raise LookupError(f"no table in {PAGE.name} has the columns {columns}")


def number(cell: str) -> float:
    """The first number in a cell (``"236,000 / 157,000"`` -> 236000.0)."""
    match = re.search(r"-?\d[\d,]*\.?\d*(?:e[+-]?\d+)?", cell)
    if match is None:
        raise ValueError(f"no number in table cell {cell!r}")
    return float(match.group(0).replace(",", ""))


def plot_nist_ratio(plt, rows: list[dict[str, str]]) -> Path:
    cases = [
        (f"{r['problem']} {r['start']}", number(r["JAX/lm"]), number(r["scipy lm digits"]) >= 6)
        for r in rows
    ]
    cases.sort(key=lambda c: c[1])
    fig, ax = plt.subplots(figsize=(11, 4.2))
    colours = [ZFITLITE if solved else PEER for _, _, solved in cases]
    ax.bar(range(len(cases)), [c[1] for c in cases], color=colours)
    ax.axhline(1.0, color=ACCENT, lw=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)), [c[0] for c in cases], rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(cases) - 0.3)
    ax.set_ylabel("warm time zfitlite-JAX / scipy lm")
    ax.set_title(
        "NIST StRD, 27 problems x 2 starts: below the red line zfitlite is faster "
        "(blue: scipy lm also solved the case to 6 digits; grey: it did not)",
        fontsize=9,
    )
    fig.tight_layout()
    return save(fig, "bench_nist_ratio.png")


def plot_nist_summary(plt, rows: list[dict[str, str]]) -> Path:
    solvers = [r["solver"] for r in rows]
    solved = [number(r["6 digits (of 54)"]) for r in rows]
    warm = [number(r["median warm ms"]) for r in rows]
    colours = [ZFITLITE if s.startswith("zfitlite") else PEER for s in solvers]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    y = range(len(solvers))
    left.barh(y, solved, color=colours)
    left.set_yticks(y, solvers)
    left.invert_yaxis()
    left.axvline(54, color=ACCENT, lw=1)
    left.set_xlabel("cases solved to 6 digits (of 54)")
    for yi, s in zip(y, solved):
        left.text(s + 0.5, yi, f"{s:.0f}", va="center", fontsize=8)
    right.barh(y, warm, color=colours)
    right.set_yticks(y, [])
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("median warm time per fit, ms (log)")
    for yi, w in zip(y, warm):
        right.text(w * 1.1, yi, f"{w:g}", va="center", fontsize=8)
    right.set_xlim(right=max(warm) * 8)
    fig.suptitle("NIST StRD: accuracy and speed per solver (loaded run of 2026-11-22)", fontsize=10)
    fig.tight_layout()
    return save(fig, "bench_nist_summary.png")


def plot_batch(plt, rows: list[dict[str, str]]) -> Path:
    labels = [r["solver"].replace("`", "") for r in rows]
    runs = [[number(part) for part in r["fits/s"].split("/")] for r in rows]
    best = [max(r) for r in runs]
    worst = [min(r) for r in runs]
    colours = [ZFITLITE if label.startswith("zfitlite") else PEER for label in labels]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    y = range(len(labels))
    ax.barh(y, best, color=colours)
    ax.scatter(worst, y, color="black", marker="|", s=200, zorder=3, label="the other run")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("fits per second (log; bar: better of two runs)")
    ax.set_xlim(right=max(best) * 6)
    for yi, b in zip(y, best):
        ax.text(b * 1.15, yi, f"{b:,.0f}", va="center", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("10,000 exponential-decay fits of 5-20 points, 2 CPU cores", fontsize=10)
    fig.tight_layout()
    return save(fig, "bench_batch.png")


def plot_overhead(plt, text: str) -> Path:
    line = next(
        (ln for ln in text.split("\n\n") if ln.startswith("Per problem (median ratio")), None
    )
    if line is None:
        raise LookupError(f"no 'Per problem (median ratio ...' paragraph in {PAGE.name}")
    flat = " ".join(line.split())
    numpy_part, jax_part = flat.split("; JAX")
    problems = ["Rosenbrock", "quadratic", "likelihood (200 events)", "likelihood (20k events)"]
    numpy_ratios = [float(v) for v in re.findall(r"\b\d\.\d\d\b", numpy_part)]
    jax_ratios = [float(v) for v in re.findall(r"\b\d\.\d\d\b", jax_part)]
    if len(numpy_ratios) != 4 or len(jax_ratios) != 4:
        raise ValueError(
            f"expected 4 + 4 ratios in the paragraph, got {numpy_ratios}, {jax_ratios}"
        )
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.38
    xs = range(len(problems))
    ax.bar([x - width / 2 for x in xs], numpy_ratios, width, label="numpy", color=PEER)
    ax.bar([x + width / 2 for x in xs], jax_ratios, width, label="JAX", color=ZFITLITE)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(1.2, color=ACCENT, lw=1, ls="--", label="target 1.2")
    ax.set_xticks(list(xs), problems)
    ax.set_ylim(0.8, 1.5)
    ax.set_ylabel("zfitlite time / scipy time")
    ax.set_title("scipy wrappers: median over 12-13 minimizers, per problem", fontsize=10)
    ax.legend(fontsize=8, ncols=3, loc="upper right")
    fig.tight_layout()
    return save(fig, "bench_overhead.png")


def plot_backends(plt, rows: list[dict[str, str]]) -> Path:
    # zfit's rows say "zfit (tensorflow)" as the backend
    labels = [f"{r['solver']} ({r['backend'].removeprefix('zfit (').rstrip(')')})" for r in rows]
    best = [number(r["warm ms/fit best / median"]) for r in rows]
    colours = [ZFITLITE if label.startswith("zfitlite") else PEER for label in labels]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    y = range(len(labels))
    ax.barh(y, best, color=colours)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("warm time per fit, ms (log; best of 7)")
    ax.set_xlim(right=max(best) * 4)
    for yi, b in zip(y, best):
        ax.text(b * 1.1, yi, f"{b:g}", va="center", fontsize=8)
    ax.set_title("One unbinned likelihood fit (10,000 events, 2 parameters)", fontsize=10)
    fig.tight_layout()
    return save(fig, "bench_backends.png")


def save(fig, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    # no timestamp in the metadata, so an unchanged chart is an unchanged file
    fig.savefig(path, dpi=110, metadata={"Software": None})
    fig.clf()
    return path


def main() -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    text = PAGE.read_text()
    found = tables(text)
    written = [
        plot_nist_ratio(plt, table_with(found, "problem", "JAX/lm", "scipy lm digits")),
        plot_nist_summary(plt, table_with(found, "solver", "6 digits (of 54)", "median warm ms")),
        plot_batch(plt, table_with(found, "solver", "fits/s")),
        plot_overhead(plt, text),
        plot_backends(plt, table_with(found, "solver", "backend", "warm ms/fit best / median")),
    ]
    plt.close("all")
    for path in written:
        print(path.relative_to(ROOT))
    return written


if __name__ == "__main__":
    main()
    sys.exit(0)
