"""``python -m benchmarks [names]``: run the benchmark modules (all, or those named, with
or without the ``bench_`` prefix: ``python -m benchmarks firstcall``) and print the tables."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def main() -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    only = {a if a.startswith("bench_") else f"bench_{a}" for a in sys.argv[1:]}
    for name in names:
        if only and name not in only:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"## {name}")
        module.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
