"""JAX's persistent compilation cache, on by default, so a second process compiles less.

When zfitlite first sets up JAX (:func:`zfitlite.backends.jax_backend.import_jax`), and
only if the user has configured no cache of their own (``jax_compilation_cache_dir``
unset, no ``JAX_COMPILATION_CACHE_DIR``), it points JAX's persistent compilation cache at
``$XDG_CACHE_HOME/zfitlite/jax`` (``~/.cache/zfitlite/jax`` without ``XDG_CACHE_HOME``),
caching programs that took at least :data:`MIN_COMPILE_SECONDS` to compile (JAX's
default, 1 s, would skip most of a fit's programs), in at most :data:`MAX_BYTES` where
the ``filelock`` package is installed (JAX needs it to evict the least recently used
entries; without it the cache is unbounded, JAX's default). ``ZFITLITE_JAX_CACHE=0`` turns it off; any
other value is a directory to use instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "MAX_BYTES", "MIN_COMPILE_SECONDS", "default_cache_dir", "enable"]

#: The off switch (``0``, ``off``, ``false``, ``no``), or a directory.
CACHE_ENV = "ZFITLITE_JAX_CACHE"
#: Programs that compiled faster than this are not written to the cache. Reading one back
#: costs ~20 ms on a 2-core machine, so programs that compile in a few tens of ms are
#: still worth keeping: the exact Hessian that ``hesse()`` compiles for a small JAX loss
#: (~60 ms) came back in ~40 ms less in a second process than it took at 0.1 s (measured
#: on NIST Misra1a).
MIN_COMPILE_SECONDS = 0.03
#: The cache's size limit (bytes).
MAX_BYTES = 1 << 30

_OFF = {"0", "off", "false", "no"}
_JAX_DEFAULT_MIN_SECONDS = 1.0


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/zfitlite/jax``, or ``~/.cache/zfitlite/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zfitlite" / "jax"


def enable(jax: Any) -> str | None:
    """Switch the cache on for ``jax`` unless it is off or the user configured one.

    Returns
    -------
    str or None
        The directory now in use, or None when zfitlite left the setting alone.
    """
    setting = os.environ.get(CACHE_ENV, "").strip()
    if setting.lower() in _OFF:
        return None
    if jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None  # the user's own cache
    path = Path(setting).expanduser() if setting and setting != "1" else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: no cache, no failure
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if (
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ
        and jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_DEFAULT_MIN_SECONDS
    ):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    if (
        "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ
        and getattr(jax.config, "jax_compilation_cache_max_size", 0) == -1
        and importlib.util.find_spec("filelock") is not None  # JAX needs it for a limit
    ):
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return str(path)
