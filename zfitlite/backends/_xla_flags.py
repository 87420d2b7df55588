"""XLA's CPU compiler set up for short compiles and lean loops, before JAX starts its CPU backend.

On the CPU, XLA's newer fusion emitters (its default since jaxlib 0.5) spend about twice as
long compiling zfitlite's solver programs as its older emitters do, for the same run
time: measured on a 2-core machine, the compiled Levenberg-Marquardt program of NIST
Misra1a 1.3-2.1 s -> 0.6-0.9 s, the first fit of six NIST problems 40-55 % less, a
2,000-member batch step 2.6 -> 1.9 s, while warm fits, batches and a one-million-event
likelihood's gradient ran as fast (its Hessian faster); see docs/backends.md. So
``import zfitlite`` adds ``--xla_cpu_use_fusion_emitters=false`` to ``XLA_FLAGS``.

XLA's CPU runtime runs a program operation by operation (a "thunk" each, ~65 ns of
dispatch apiece), except a ``while`` loop that holds no custom call (no LAPACK call) and
touches fewer bytes per iteration than a threshold, 1 kB by default: XLA compiles that loop
into one function. A solver's step is ~90 small operations, so its loop pays ~6 us of
dispatch per step unless it is hoisted. ``import zfitlite`` therefore also raises the
threshold to :data:`SMALL_LOOP_BYTES` (``--xla_backend_extra_options=
xla_cpu_small_while_loop_byte_threshold=...``): measured on the 2-core machine (in one
process, against the same loop with LAPACK's SVD), a warm Levenberg-Marquardt fit of NIST
Misra1a (2 parameters, whose SVD is elementwise, see
:class:`~zfitlite.backends.jax_backend.JaxOps`) 301 -> 178 us, BoxBOD 284 -> 179 us,
the sequential tail of a 10^4-member batch 62 -> 27-31 ms; loops with a LAPACK call, or
over more data than the threshold, run as before.

Each option is added where:

* its off switch (``ZFITLITE_XLA_FAST_COMPILE``, ``ZFITLITE_XLA_SMALL_LOOPS``) is not
  ``0``/``off``/``false``/``no``;
* ``XLA_FLAGS`` does not already name the option (the user's choice wins);
* the installed jaxlib is one this option is known for (:data:`JAXLIB_RANGE`: XLA aborts
  the process on an option it does not know, so an unknown version is left alone);
* no TensorFlow older than :data:`TENSORFLOW_MIN` is installed (TensorFlow's own XLA reads
  ``XLA_FLAGS`` too, when it compiles with ``jit_compile=True``; 2.21 knows the option,
  older ones were not checked);
* JAX has not started its backend yet (XLA reads ``XLA_FLAGS`` once, when it starts; after
  that a change would do nothing, so none is made).

They change only how XLA compiles for the CPU (GPU programs are not affected), and, as
any change of ``XLA_FLAGS``, they are inherited by subprocesses started afterwards (a dask
worker, a process pool). :func:`apply` runs once more when zfitlite first sets up JAX.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "FAST_COMPILE_ENV",
    "FLAG",
    "JAXLIB_RANGE",
    "OPTIONS",
    "SMALL_LOOPS_ENV",
    "SMALL_LOOPS_FLAG",
    "SMALL_LOOP_BYTES",
    "TENSORFLOW_MIN",
    "apply",
]

#: The off switch of the older emitters.
FAST_COMPILE_ENV = "ZFITLITE_XLA_FAST_COMPILE"
#: The older (faster-compiling) fusion emitters.
FLAG = "--xla_cpu_use_fusion_emitters=false"
#: The off switch of the small-loop threshold.
SMALL_LOOPS_ENV = "ZFITLITE_XLA_SMALL_LOOPS"
#: Bytes per iteration below which a ``while`` loop without custom calls is compiled into
#: one function (XLA's default: 1 kB). A two-parameter fit's loop on up to a few thousand
#: residuals is below it; above it the loop's operations run, and are split over the
#: cores, one by one as before.
SMALL_LOOP_BYTES = 262144
#: The small-loop threshold as an option.
SMALL_LOOPS_FLAG = (
    f"--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold={SMALL_LOOP_BYTES}"
)
#: ``(option, the name that marks it as set by the user, its off switch)``.
OPTIONS = (
    (FLAG, "xla_cpu_use_fusion_emitters", FAST_COMPILE_ENV),
    (SMALL_LOOPS_FLAG, "xla_backend_extra_options", SMALL_LOOPS_ENV),
)
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
    """Add the :data:`OPTIONS` to ``XLA_FLAGS`` where the conditions above hold.

    Returns
    -------
    bool
        True when this call added at least one option.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    wanted = [
        option
        for option, name, switch in OPTIONS
        if os.environ.get(switch, "").strip().lower() not in _OFF and name not in flags
    ]
    if not wanted:
        return False
    version = _jaxlib_version()
    if version is None or not JAXLIB_RANGE[0] <= version < JAXLIB_RANGE[1]:
        return False
    if _old_tensorflow() or _backend_started():
        return False
    os.environ["XLA_FLAGS"] = " ".join([flags, *wanted]).strip()
    return True
