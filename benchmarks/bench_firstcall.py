"""First calls, as a new user meets them: each measured in a fresh Python process.

The figures behind every time the command line and the docs promise (``zfitlite --help``,
README, docs/choosing.md, docs/backends.md); ``python -m benchmarks firstcall`` prints
them as the table of docs/benchmarks.md ("First calls"), with the machine.

Rows (wall clock of the step inside the process; CPU = user + system time of the whole
process, imports included):

* ``demo``: ``python -m zfitlite demo --quiet`` (the README's first command), and the
  global search inside it (differential evolution, its own timer);
* ``numpy fit, backend="auto"``: the README's likelihood fit of a plain numpy function;
* ``JAX LM fit + hesse``: NIST Misra1a with JAX residuals (Levenberg-Marquardt, then
  ``hesse()``), with JAX's persistent compilation cache off, cold (first process) and warm
  (a second process). A problem's first fit runs the eager loop on the compiled residuals
  and Jacobian; ``JAX LM second fit`` times the next one, which compiles the solver;
* ``first batch call``: the demo's 2,000 decay fits as one ``minimize_batch``, and 5,000,
  compilation included (cache off, then warm).

Each process gets its own temporary ``XDG_CACHE_HOME`` (no cache of earlier runs counts).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from importlib import metadata

_TIMED = textwrap.dedent(
    """
    import json, resource, sys, time
    t0 = time.perf_counter()
    {setup}
    t1 = time.perf_counter()
    {step}
    t2 = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print("RESULT", json.dumps({{"step": t2 - t1, "cpu": ru.ru_utime + ru.ru_stime, "extra": extra}}))
    """
)

_NUMPY_SETUP = """
import numpy as np
import zfitlite
data = np.random.default_rng(0).normal(1.0, 2.0, 1000)
def nll(p):
    mu, sigma = p
    return np.sum(np.log(sigma) + 0.5 * ((data - mu) / sigma) ** 2)
nll.errordef = 0.5
"""
_NUMPY_STEP = """
r = zfitlite.minimize.LevenbergMarquardt().minimize(
    nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.01}})
assert r.valid and r.info["backend"] == "numpy"
extra = {"jax_imported": "jax" in sys.modules}
"""
_JAX_SETUP = """
import jax.numpy as jnp
import zfitlite
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.testing.nist import load_problem
prob = load_problem("Misra1a")
"""
_JAX_STEP = """
loss = zfitlite.LeastSquares(
    lambda b, x, y: y - b[0] * (1 - jnp.exp(-b[1] * x)), args=(prob.x, prob.y))
r = LevenbergMarquardt(tol=1e-10).minimize(loss, prob.starts[0])
r.hesse()
assert r.valid and r.info["backend"] == "jax"
extra = None
"""
_JAX_SECOND_SETUP = (
    _JAX_SETUP
    + """
loss = zfitlite.LeastSquares(
    lambda b, x, y: y - b[0] * (1 - jnp.exp(-b[1] * x)), args=(prob.x, prob.y))
lm = LevenbergMarquardt(tol=1e-10)
assert lm.minimize(loss, prob.starts[0]).info["loop"] == "eager"
"""
)
_JAX_SECOND_STEP = """
r = lm.minimize(loss, prob.starts[1])
assert r.valid and r.info["loop"] == "compiled"
extra = None
"""
_BATCH_SETUP = """
import zfitlite
from zfitlite.demo import _normalised_decay_residuals, _NOISE
from zfitlite.testing.batch import decay_data
data = decay_data({n}, npoints=(5, 20), missing=0.1, noise=_NOISE, seed=7)
"""
_BATCH_STEP = """
r = zfitlite.minimize_batch(
    zfitlite.minimize.LevenbergMarquardt(tol=1e-8), zfitlite.LeastSquares(_normalised_decay_residuals),
    [1.0, 1.0], args=(data["t"], data["y"]), progress=False)
assert r.valid.all()
extra = None
"""


def _python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout


def _timed(setup: str, step: str, env: dict[str, str]) -> dict:
    code = _TIMED.format(setup=textwrap.indent(setup, ""), step=step)
    line = next(ln for ln in _python(code, env).splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _demo(env: dict[str, str]) -> dict:
    code = textwrap.dedent(
        """
        import io, json, re, resource, time, contextlib
        from zfitlite import demo
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            code = demo.main([])
        wall = time.perf_counter() - t0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        de = float(re.search(r"DifferentialEvolution, \\d+ evaluations, ([\\d.]+) s", buf.getvalue()).group(1))
        print("RESULT", json.dumps({"step": wall, "cpu": ru.ru_utime + ru.ru_stime, "extra": de, "code": code}))
        """
    )
    line = next(ln for ln in _python(code, env).splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    found = []
    for pkg in ("numpy", "scipy", "jax"):
        try:
            found.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{cpu}, {platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores{load}, "
        f"Python {platform.python_version()}, {', '.join(found)}"
    )


def measure() -> list[tuple[str, dict]]:
    """``[(row name, {"step": s, "cpu": s, ...})]``, each from a fresh process."""
    rows: list[tuple[str, dict]] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "ZFITLITE_JAX"))}
    with tempfile.TemporaryDirectory() as tmp:
        off = {**base, "XDG_CACHE_HOME": tmp, "ZFITLITE_JAX_CACHE": "0"}
        fresh = {**base, "XDG_CACHE_HOME": os.path.join(tmp, "cache")}
        rows.append(("demo (`zfitlite`, cache off)", _demo(off)))
        rows.append(('numpy fit, backend="auto"', _timed(_NUMPY_SETUP, _NUMPY_STEP, off)))
        rows.append(("JAX LM fit + hesse, cache off", _timed(_JAX_SETUP, _JAX_STEP, off)))
        rows.append(("JAX LM fit + hesse, cache cold", _timed(_JAX_SETUP, _JAX_STEP, fresh)))
        rows.append(("JAX LM fit + hesse, cache warm", _timed(_JAX_SETUP, _JAX_STEP, fresh)))
        rows.append(
            (
                "JAX LM second fit (compiles the solver), cache off",
                _timed(_JAX_SECOND_SETUP, _JAX_SECOND_STEP, off),
            )
        )
        for n in (2000, 5000):
            setup = _BATCH_SETUP.format(n=n)
            rows.append(
                (f"first batch call, {n:,} fits, cache off", _timed(setup, _BATCH_STEP, off))
            )
        setup = _BATCH_SETUP.format(n=2000)
        _timed(setup, _BATCH_STEP, fresh)  # fills the cache
        rows.append(("first batch call, 2,000 fits, cache warm", _timed(setup, _BATCH_STEP, fresh)))
    return rows


def table(rows: list[tuple[str, dict]]) -> str:
    lines = [
        "| first call, in a new process | wall (s) | process CPU (s) |",
        "| --- | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['step']:.2f} | {r['cpu']:.1f} |")
        if name.startswith("demo"):
            lines.append(
                f"| of which the global search (differential evolution) | {r['extra']:.2f} | |"
            )
    return "\n".join(lines)


def main() -> None:
    rows = measure()
    print(f"machine: {machine()}")
    print(table(rows))


if __name__ == "__main__":
    main()
