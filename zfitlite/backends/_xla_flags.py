"""XLA's CPU compiler set up for short compiles, before JAX starts its CPU backend.

On the CPU, XLA's newer fusion emitters (its default since jaxlib 0.5) spend about twice as
long compiling zfitlite's solver programs as its older emitters do, for the same run
time: measured on a 2-core machine, the compiled Levenberg-Marquardt program of NIST
Misra1a 1.3-2.1 s -> 0.6-0.9 s, the first fit of six NIST problems 40-55 % less, a
2,000-member batch step 2.6 -> 1.9 s, while warm fits, batches and a one-million-event
likelihood's gradient ran as fast (its Hessian faster); see docs/backends.md. So
``import zfitlite`` adds ``--xla_cpu_use_fusion_emitters=false`` to ``XLA_FLAGS``, where:

* ``ZFITLITE_XLA_FAST_COMPILE`` is not ``0``/``off``/``false``/``no`` (the off switch);
* ``XLA_FLAGS`` does not already name the option (the user's choice wins);
* the installed jaxlib is one this option is known for (:data:`JAXLIB_RANGE`: XLA aborts
  the process on an option it does not know, so an unknown version is left alone);
* no TensorFlow older than :data:`TENSORFLOW_MIN` is installed (TensorFlow's own XLA reads
  ``XLA_FLAGS`` too, when it compiles with ``jit_compile=True``; 2.21 knows the option,
  older ones were not checked);
* JAX has not started its backend yet (XLA reads ``XLA_FLAGS`` once, when it starts; after
  that a change would do nothing, so none is made).

It changes only how XLA compiles for the CPU (GPU programs are not affected), and, as any
change of ``XLA_FLAGS``, it is inherited by subprocesses started afterwards (a dask
worker, a process pool). :func:`apply` runs once more when zfitlite first sets up JAX.
"""

from __future__ import annotations

import os
import sys

__all__ = ["FAST_COMPILE_ENV", "FLAG", "JAXLIB_RANGE", "TENSORFLOW_MIN", "apply"]

#: The off switch.
FAST_COMPILE_ENV = "ZFITLITE_XLA_FAST_COMPILE"
#: What is added to ``XLA_FLAGS``.
FLAG = "--xla_cpu_use_fusion_emitters=false"
#: jaxlib versions ``[low, high)`` whose XLA has the option (checked in the wheels of
#: 0.5.3, 0.6.2, 0.7.2 and 0.10.2; 0.4.30 and 0.4.38 lack it).
JAXLIB_RANGE = ((0, 5), (0, 11))

#: The oldest TensorFlow known to accept the option (an older one installed: left alone).
TENSORFLOW_MIN = (2, 21)

_OFF = {"0", "off", "false", "no"}


def _version(distribution: str) -> tuple[int, int] | None:
    """``(major, minor)`` of an installed distribution, without importing it; None if absent."""
    from importlib import metadata

    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def _jaxlib_version() -> tuple[int, int] | None:
    """``(major, minor)`` of the installed jaxlib; None if absent."""
    return _version("jaxlib")


def _old_tensorflow() -> bool:
    """Whether a TensorFlow older than :data:`TENSORFLOW_MIN` is installed."""
    versions = (_version(name) for name in ("tensorflow", "tensorflow-cpu"))
    return any(v is not None and v < TENSORFLOW_MIN for v in versions)


def _backend_started() -> bool:
    """Whether JAX has already started a backend in this process (then XLA_FLAGS is read)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without this module: assume it started
        return True
    return bool(getattr(xla_bridge, "_backends", True))


def apply() -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` when the conditions above hold.

    Returns
    -------
    bool
        True when the option was added by this call.
    """
    if os.environ.get(FAST_COMPILE_ENV, "").strip().lower() in _OFF:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" in flags:
        return False
    version = _jaxlib_version()
    if version is None or not JAXLIB_RANGE[0] <= version < JAXLIB_RANGE[1]:
        return False
    if _old_tensorflow() or _backend_started():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
