"""The ``zfitlite`` command line (``python -m zfitlite`` or the ``zfitlite`` script).

Commands: ``demo`` (the default), ``bench`` (the benchmark suite of a source checkout)
and ``plots`` (the documentation's example figures).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["build_parser", "main"]

_EPILOG = """\
examples:
  zfitlite                      run the demo (four fits; 9 s, 12.9 s of CPU, on a
                                quiet 2-core machine: docs/benchmarks.md, first calls)
  zfitlite demo --quiet         the demo, printing only its last line
  zfitlite bench --list         list the benchmarks (needs a source checkout)
  zfitlite bench nist batch     run two of them
  zfitlite plots docs/_static   write the example figures (needs matplotlib)
  zfitlite --version
"""

_NO_MATPLOTLIB = (
    "zfitlite plots: the figures need matplotlib, which is not installed. Install the "
    '`plot` extra: python -m pip install "zfitlite[plot]" (or pip install matplotlib).'
)

_NO_BENCHMARKS = (
    "zfitlite bench: the benchmark suite is not installed with the package; it is the "
    "benchmarks/ folder of the source repository. Run this command from the root of a "
    "checkout (git clone, then `python -m zfitlite bench`)."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line.

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="zfitlite",
        description="zfitlite: a general-purpose minimizer framework with zfit's minimize API.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zfitlite {__version__}")
    parser.add_argument("--quiet", action="store_true", help="(demo) print only the final line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    demo = sub.add_parser(
        "demo",
        help="run the demo (the default command)",
        description=(
            "A global search chained into a likelihood fit, a least-squares curve fit, and "
            "2,000 small fits as one batched solve, with their result tables."
        ),
    )
    demo.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="print only the final line"
    )
    bench = sub.add_parser(
        "bench",
        help="run the benchmark suite (from a source checkout)",
        description=(
            "Run the benchmarks of the repository's benchmarks/ folder and print their "
            "tables. Names may omit the 'bench_' prefix; no names runs them all (minutes)."
        ),
    )
    bench.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run, e.g. nist")
    bench.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    plots = sub.add_parser(
        "plots",
        help="write the example figures as PNG files (needs matplotlib)",
        description="Profile, contour, fitted curve and minimizer path figures of small fits.",
    )
    plots.add_argument("directory", nargs="?", default="zfitlite-plots", help="where to write them")
    return parser


def _benchmarks_package() -> ModuleType | None:
    """The source checkout's ``benchmarks`` package, or None when there is none."""
    try:
        return importlib.import_module("benchmarks")
    except ImportError:
        pass
    # the console script does not put the working directory on sys.path
    if os.path.isfile(os.path.join(os.getcwd(), "benchmarks", "__init__.py")):
        sys.path.insert(0, os.getcwd())
        try:
            return importlib.import_module("benchmarks")
        except ImportError:
            return None
    return None


def _bench(names: Sequence[str], list_only: bool) -> int:
    package = _benchmarks_package()
    if package is None or not hasattr(package, "__path__"):
        print(_NO_BENCHMARKS, file=sys.stderr)
        return 2
    available = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    if list_only:
        for name in available:
            print(name)
        return 0
    chosen = []
    for name in names:
        full = name if name.startswith("bench_") else f"bench_{name}"
        if full not in available:
            print(
                f"zfitlite bench: unknown benchmark {name!r}; available: {', '.join(available)}",
                file=sys.stderr,
            )
            return 2
        chosen.append(full)
    for name in chosen or available:
        module = importlib.import_module(f"{package.__name__}.{name}")
        print(f"## {name}", flush=True)
        module.main()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; the demo returns 1 when a fit is invalid; 2 for a usage error or a
        missing optional package (`bench` outside a checkout, `plots` without matplotlib).

    Examples
    --------
    >>> from zfitlite.__main__ import main
    >>> main(["--version"])  # doctest: +SKIP
    zfitlite 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    if args.command in (None, "demo"):
        from .demo import main as demo_main

        return demo_main(["--quiet"] if args.quiet else [])
    if args.command == "bench":
        return _bench(args.names, args.list)
    if args.command == "plots":
        try:
            import matplotlib
        except ImportError:
            print(_NO_MATPLOTLIB, file=sys.stderr)
            return 2
        matplotlib.use("Agg")  # files only: no window
        from .plot import gallery

        for path in gallery(args.directory):
            print(path)
        return 0
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse checks
    return 2  # pragma: no cover


if __name__ == "__main__":
    raise SystemExit(main())
