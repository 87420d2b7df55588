"""Every time the command line and the docs promise is a measured figure: the table of
docs/benchmarks.md ("First calls"), which ``python -m benchmarks firstcall`` regenerates
with its machine. When the table is regenerated, these claims must follow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zfitlite.__main__ import _EPILOG

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def first_calls() -> dict[str, tuple[float, float | None]]:
    """``{row: (wall s, CPU s)}`` of the "First calls" table."""
    text = (DOCS / "benchmarks.md").read_text()
    section = text.split("## First calls", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for name, wall, cpu in re.findall(r"^\| (.+?) \| ([\d.]+) \| ?([\d.]*) ?\|$", section, re.M):
        rows[name] = (float(wall), float(cpu) if cpu else None)
    return rows


def test_the_table_names_its_machine_and_command():
    text = (DOCS / "benchmarks.md").read_text().split("## First calls", 1)[1]
    head = text.split("| first call", 1)[0]
    assert "python -m benchmarks firstcall" in head
    assert re.search(r"Measured on \d{4}-\d\d-\d\d: .+ CPU cores", head)
    assert len(first_calls()) == 10


@pytest.mark.parametrize(
    ("where", "row", "claim"),
    [
        (
            "cli",
            "demo (`zfitlite`, cache off)",
            lambda wall, cpu: f"run the demo (four fits; {wall:.0f} s, {cpu:.1f} s of CPU",
        ),
        (
            "choosing.md",
            "first batch call, 2,000 fits, cache off",
            lambda wall, cpu: f"2,000 fits took {wall:.0f} s ({cpu:.0f} s of CPU)",
        ),
        (
            "choosing.md",
            "first batch call, 2,000 fits, cache warm",
            lambda wall, cpu: f"{wall:.1f} s in a second process",
        ),
        (
            "backends.md",
            "JAX LM fit + hesse, cache off",
            lambda wall, cpu: f"{wall:.2f} s for a NIST fit and its `hesse()` in a new process",
        ),
        (
            "backends.md",
            "JAX LM fit + hesse, cache warm",
            lambda wall, cpu: f"{wall:.2f} s in a second one with the compilation cache",
        ),
        (
            "backends.md",
            "JAX LM second fit (compiles the solver), cache off",
            lambda wall, cpu: f"the second fit compiles the solver ({wall:.2f} s)",
        ),
        (
            "backends.md",
            'numpy fit, backend="auto"',
            lambda wall, cpu: f"the README's first fit: {wall:.2f}",
        ),
    ],
)
def test_claims_are_the_measured_figures(where, row, claim):
    wall, cpu = first_calls()[row]
    text = " ".join((_EPILOG if where == "cli" else (DOCS / where).read_text()).split())
    assert claim(wall, cpu) in text


def test_no_unmeasured_promises():
    vague = re.compile(r"a few seconds|a second or two|about a second", re.I)
    for path in [ROOT / "README.md", *DOCS.glob("*.md")]:
        assert not vague.search(path.read_text()), path.name
    assert not vague.search(_EPILOG)
