"""Developer entry points: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s docs``,
``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
@nox.parametrize("backend", ["all", "numpy"])
def tests(session: nox.Session, backend: str) -> None:
    """The test suite; ``backend=numpy`` runs it without JAX installed as well."""
    if backend == "numpy":
        session.install("-e", ".", "pytest", "hypothesis")
    else:
        session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", "zfitlite", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "zfitlite", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """pyright (basic mode, configured in pyproject.toml) on the package."""
    session.install("-e", ".[test]")
    session.run("pyright", "zfitlite")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx documentation with warnings as errors."""
    session.install("-e", ".[test]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    # every example on the pages runs, and the build is checked page by page
    session.run("pytest", "tests/test_docs_examples.py", "tests/test_docs_build.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the peers, plus the slow tests."""
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
    # the slow tests, and the property tests with many more random examples
    session.run("pytest", "-m", "slow", env={"ZFITLITE_HYPOTHESIS_PROFILE": "long"})
    session.run("pytest", "tests/test_properties.py", env={"ZFITLITE_HYPOTHESIS_PROFILE": "long"})
