"""The Python examples in the documentation run, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))
# optional packages a page may import: the page is skipped (not failed) without them
OPTIONAL = re.compile(
    r"^\s*(?:import|from)\s+(zfit|iminuit|jax|tensorflow|dask|distributed|matplotlib)\b",
    re.MULTILINE,
)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_docs_examples_run(page):
    for module in sorted(set(OPTIONAL.findall("\n".join(BLOCK.findall(page.read_text()))))):
        pytest.importorskip(module)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for block in BLOCK.findall(page.read_text()):
        exec(compile(block, str(page), "exec"), namespace)
