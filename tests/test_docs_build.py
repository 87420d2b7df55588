"""The documentation builds with Sphinx, warnings as errors, and every page renders.

This is how CI checks the docs: the same build as ``nox -s docs``, into a temporary
folder. The examples on the pages are run by ``tests/test_docs_examples.py``.
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOCTREE = re.compile(r"```\{toctree\}\n(.*?)```", re.DOTALL)

missing = [m for m in ("sphinx", "myst_parser") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(missing), reason=f"building the docs needs {', '.join(missing)} (the docs extra)"
)


def toctree_pages() -> list[str]:
    """The pages listed in the toctrees of ``docs/index.md``, in order."""
    pages = []
    for block in TOCTREE.findall((DOCS / "index.md").read_text()):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                pages.append(line)
    return pages


def title(page: str) -> str:
    """The page's first-level heading."""
    for line in (DOCS / f"{page}.md").read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise AssertionError(f"docs/{page}.md has no '# ' title")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs_html")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "-d",
        str(out / ".doctrees"),
        str(DOCS),
        str(out),
    ]
    # a separate process: autodoc imports zfitlite there, and Sphinx's own warnings are
    # judged by -W, not by pytest's filterwarnings
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"sphinx-build failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return out


def test_every_page_is_in_the_toctree():
    listed = set(toctree_pages())
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= listed, f"pages missing from the toctree of docs/index.md: {pages - listed}"


def test_docs_build_and_every_page_renders(built):
    assert (built / "index.html").is_file()
    for page in toctree_pages():
        path = built / f"{page}.html"
        assert path.is_file(), f"no HTML for docs/{page}.md"
        text = path.read_text(encoding="utf-8")
        assert html.escape(title(page), quote=False) in text, f"{page}.html lacks its title"


def test_api_reference_is_generated(built):
    text = (built / "api.html").read_text(encoding="utf-8")
    for name in (
        "zfitlite.minimize.LevenbergMarquardt",
        "zfitlite.minimize.BaseMinimizer.minimize",
        "zfitlite.loss.LeastSquares.from_data",
        "zfitlite.result.FitResult.errors",
        "zfitlite.status.Status",
        "zfitlite.batch.minimize_batch",
    ):
        assert f'id="{name}"' in text, f"the API reference does not document {name}"


def test_api_reference_lists_minimizers_alphabetically(built):
    """Sorted as Sphinx sorts: the B's first (BFGS, BaseMinimizer), SHGO among the S's (not
    first, as ``__all__`` sorts it)."""
    text = (built / "api.html").read_text(encoding="utf-8")
    names = re.findall(r'<dt class="sig sig-object py" id="zfitlite\.minimize\.(\w+)"', text)
    assert names[:2] == ["BFGS", "BaseMinimizer"], names
    assert names == sorted(names), names
    assert names.index("Minuit") < names.index("SHGO") < names.index("ScipyBFGS")


def test_images_are_copied(built):
    for page in toctree_pages():
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (DOCS / f"{page}.md").read_text()):
            assert (DOCS / image).is_file(), f"docs/{page}.md shows a missing image {image}"
            assert (built / "_images" / Path(image).name).is_file(), image
