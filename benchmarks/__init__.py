"""Side-by-side benchmarks of zfitlite against its peers (``nox -s bench``)."""

import sys


def versions(*packages: str) -> str:
    """``"numpy 2.4.6, jax 0.10.2, ..."`` for those of ``packages`` already imported."""
    found = (sys.modules.get(pkg) for pkg in packages)
    return ", ".join(
        f"{mod.__name__} {getattr(mod, '__version__', '?')}" for mod in found if mod is not None
    )
