"""Batches: 10,000 small exponential-decay fits at once, against a scipy loop and optimistix.

Each member is ``y = a * exp(-k t) + noise`` with 5 to 20 points (shorter members padded
with NaN, and about 10 % of the other points missing as NaN; see
:func:`zfitlite.testing.batch.decay_data`), fitted from the start ``(1, 1)``.

Solvers, all on the CPU, all in this process:

* zfitlite ``minimize_batch(LevenbergMarquardt(tol=1e-10), LeastSquares(residuals), ...)``:
  one vectorised, compiled solve per chunk (chunks of up to 2048 members);
* a Python loop of ``scipy.optimize.least_squares(method="lm")`` with the analytic
  Jacobian and ``xtol = ftol = gtol = 1e-12``, on the observed points of each member
  (the reference for accuracy), and the same loop with scipy's defaults (``"trf"``,
  finite-difference Jacobian);
* optimistix ``LevenbergMarquardt(rtol=1e-10, atol=1e-10)`` through
  ``optx.least_squares`` under ``jax.vmap`` (jitted, ``max_steps=256``, ``throw=False``),
  the same masked residuals as zfitlite (NaN data set to 0 and those residuals to 0).

Reported: compile (first call minus warm) apart from warm time (best of
``REPEATS``), fits per second, agreement of every member with the scipy loop (the
largest relative difference of the parameters over the members that both fitted, and
how many agree to 1e-6), and peak memory for 10k and 100k members, each size in a
fresh subprocess: the resident set size (RSS, from ``/proc/self/statm``, which sees
XLA's buffers; tracemalloc does not) sampled every 2 ms during ``minimize_batch``
(compile included), its peak minus its value just before the call (after imports and
data), and the process's own peak (``resource.getrusage(...).ru_maxrss``).

The straggler case (issue 15; :func:`run_stragglers`, ``python -m benchmarks.bench_batch
stragglers``): 10,000 members of ``y = b1 (1 - exp(-b2 x))`` (NIST Misra1a's model, true
``(238.94, 5.5e-4)``), each with 5 to 20 points at random ``x`` in ``[0, 400]`` (NaN-padded
to 20), noise 0.2, all from ``(250, 5e-4)``, ``LevenbergMarquardt(tol=1e-12)``. Most members
take 4 to 10 iterations; a few (nearly degenerate ``b1``, ``b2``) take thousands. Against
a scipy ``least_squares(method="lm")`` loop with the analytic Jacobian (default
tolerances for the timing, ``1e-12`` ones for the reference fit) and optimistix's
LevenbergMarquardt under ``jax.vmap``; zfitlite also with its regrouping of unfinished
members switched off (``ROUND_STEPS = None``: each chunk in one call), which must give the
same members. The first call is also measured in fresh processes (:func:`run_first_call`):
with JAX's compilation cache cold (a new ``XDG_CACHE_HOME``) and warm (a second process),
with the programs compiled and their compile time. ``ZFITLITE_BENCH_OPTIMISTIX_REPEATS``
(default 3; 0 skips it) sets optimistix's warm calls: each takes minutes on 2 cores.

How far that goal is from this CPU's floor (:func:`run_floor`, ``python -m
benchmarks.bench_batch floor``): the least a vectorised step can cost here (a bare damped
Gauss-Newton step, :func:`bare_step_seconds`) times the iterations the members need.

``python -m benchmarks bench_batch``; ``ZFITLITE_BENCH_BATCH=2000`` for a quicker run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = int(os.environ.get("ZFITLITE_BENCH_BATCH", "10000"))
MEMORY_SIZES = (10_000, 100_000)
REPEATS = 3
X0 = (1.0, 1.0)
TOL = 1e-10


def _data(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    from zfitlite.testing.batch import decay_data

    return decay_data(batch, npoints=(5, 20), missing=0.1, seed=seed)


def run_zfitlite(
    data: dict[str, np.ndarray], repeat: int = REPEATS, chunk_size: int | None = None
) -> dict[str, Any]:
    """``minimize_batch`` on the whole batch: first call and best warm call."""
    import zfitlite
    from zfitlite.minimize import LevenbergMarquardt
    from zfitlite.testing.batch import decay_residuals

    loss = zfitlite.LeastSquares(decay_residuals)

    def call() -> Any:
        return zfitlite.minimize_batch(
            LevenbergMarquardt(tol=TOL),
            loss,
            np.array(X0),
            (data["t"], data["y"]),
            chunk_size=chunk_size,
            progress=False,
        )

    t0 = time.perf_counter()
    res = call()
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = call()
        warm.append(time.perf_counter() - t0)
    return {
        "x": res.x,
        "ok": res.valid,
        "first": first,
        "warm": min(warm),
        "niter": float(np.median(res.niter)),
        "chunks": res.info["nchunks"],
        "status": res.status_counts(),
    }


def run_scipy(data: dict[str, np.ndarray], best: bool = True) -> dict[str, Any]:
    """A Python loop of ``scipy.optimize.least_squares``.

    ``best``: ``method="lm"`` (MINPACK) with the analytic Jacobian and tight tolerances,
    the fastest way scipy fits these problems; else scipy's defaults (``"trf"``,
    ``"2-point"`` finite differences, tolerances 1e-8).
    """
    from scipy.optimize import least_squares

    def fun(p: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y - p[0] * np.exp(-p[1] * t)

    def jac(p: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * t)
        return np.column_stack([-e, p[0] * t * e])

    t_all, y_all = data["t"], data["y"]
    x = np.full((len(y_all), 2), np.nan)
    ok = np.zeros(len(y_all), dtype=bool)
    t0 = time.perf_counter()
    for i in range(len(y_all)):
        keep = np.isfinite(y_all[i])
        if best:
            r = least_squares(
                fun,
                X0,
                jac=jac,
                args=(t_all[i][keep], y_all[i][keep]),
                method="lm",
                xtol=1e-12,
                ftol=1e-12,
                gtol=1e-12,
            )
        else:
            r = least_squares(fun, X0, args=(t_all[i][keep], y_all[i][keep]))
        x[i], ok[i] = r.x, r.success
    return {"x": x, "ok": ok, "first": float("nan"), "warm": time.perf_counter() - t0}


def run_optimistix(data: dict[str, np.ndarray], repeat: int = REPEATS) -> dict[str, Any]:
    """optimistix's LevenbergMarquardt under ``jax.vmap``, jitted."""
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    jax.config.update("jax_enable_x64", True)
    solver = optx.LevenbergMarquardt(rtol=TOL, atol=TOL)

    def residuals(p: Any, args: tuple) -> Any:
        t, y, mask = args
        return jnp.where(mask, 0.0, y - p[0] * jnp.exp(-p[1] * t))

    def one(y0: Any, t: Any, y: Any) -> tuple:
        mask = jnp.isnan(y)
        sol = optx.least_squares(
            residuals,
            solver,
            y0,
            args=(t, jnp.where(mask, 0.0, y), mask),
            max_steps=256,
            throw=False,
        )
        return sol.value, sol.result == optx.RESULTS.successful

    solve = jax.jit(jax.vmap(one))
    x0 = jnp.tile(jnp.asarray(X0), (len(data["y"]), 1))
    t, y = jnp.asarray(data["t"]), jnp.asarray(data["y"])
    return _timed_jax(solve, (x0, t, y), repeat)


def _timed_jax(solve: Any, args: tuple, repeat: int) -> dict[str, Any]:
    """First call (compile included) and best warm call of a jitted ``solve(*args)`` that
    returns ``(x, ok)``."""
    import jax

    t0 = time.perf_counter()
    x, ok = jax.block_until_ready(solve(*args))
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        x, ok = jax.block_until_ready(solve(*args))
        warm.append(time.perf_counter() - t0)
    return {"x": np.asarray(x), "ok": np.asarray(ok), "first": first, "warm": min(warm)}


def relative_difference(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per member, the largest relative difference of its parameters from the reference's."""
    return np.max(np.abs(x - ref) / np.maximum(np.abs(ref), 1e-12), axis=1)


def agreement(x: np.ndarray, ok: np.ndarray, ref: np.ndarray, ref_ok: np.ndarray) -> dict:
    """Largest relative parameter difference from the reference, over members both fitted."""
    both = ok & ref_ok & np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(ref), axis=1)
    rel = relative_difference(x[both], ref[both])
    return {
        "both": int(both.sum()),
        "max_rel": float(rel.max()) if rel.size else float("nan"),
        "agree_1e-6": int(np.sum(rel < 1e-6)),
    }


_MEMORY_SCRIPT = """
import json, os, resource, sys, threading, time
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import zfitlite
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.testing.batch import decay_data, decay_residuals
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
n = int(sys.argv[1])
chunk = int(sys.argv[2]) or None
d = decay_data(n, npoints=(5, 20), missing=0.1, seed=0)
x0 = np.array([1.0, 1.0])
base = rss()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
th = threading.Thread(target=sample)
th.start()
t0 = time.perf_counter()
res = zfitlite.minimize_batch(LevenbergMarquardt(tol=1e-10), zfitlite.LeastSquares(decay_residuals),
                              x0, (d["t"], d["y"]), chunk_size=chunk)
elapsed = time.perf_counter() - t0
done.set(); th.join()
peak[0] = max(peak[0], rss())
print(json.dumps({"n": n, "base": base, "peak": peak[0], "time": elapsed,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "valid": int(res.valid.sum()), "chunks": res.info["nchunks"],
                  "chunk_size": res.info["chunk_size"]}))
"""


def run_memory(sizes: tuple[int, ...] = MEMORY_SIZES) -> list[dict[str, Any]]:
    """Peak RSS growth of ``minimize_batch`` (compile included), one fresh process per run.

    Each size runs with the default chunks (up to 2048 members) and as one single chunk.
    """
    rows = []
    for n in sizes:
        for chunk in (0, n):
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_SCRIPT, str(n), str(chunk)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def run() -> dict[str, Any]:
    """Run the three solvers on one batch of :data:`BATCH` members and the memory probe."""
    warnings.simplefilter("ignore", RuntimeWarning)
    data = _data(BATCH)
    out: dict[str, Any] = {"batch": BATCH}
    out["zfitlite"] = run_zfitlite(data)
    out["scipy"] = run_scipy(data)
    out["scipy (defaults)"] = run_scipy(data, best=False)
    try:
        out["optimistix"] = run_optimistix(data)
    except ImportError as exc:  # pragma: no cover - optional peer
        out["optimistix"] = {"skipped": str(exc)}
    ref = out["scipy"]
    for name in ("zfitlite", "optimistix", "scipy (defaults)"):
        if "x" in out[name]:
            out[name]["agreement"] = agreement(out[name]["x"], out[name]["ok"], ref["x"], ref["ok"])
    out["memory"] = run_memory()
    out["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    out["rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def straggler_data(batch: int, seed: int = 0, flat: float = 0.0) -> dict[str, np.ndarray]:
    """The straggler case: Misra1a's model, 5 to 20 points in ``[0, 400]``, NaN-padded
    (``x``, ``y``; ``flat``: which members have a flat direction).

    ``flat``: the fraction of members (every ``1 / flat``-th) whose points lie in
    ``[0, 2]`` instead, where ``b1 (1 - exp(-b2 x)) ~ b1 b2 x``: only the product of the
    two parameters is determined, the other direction is flat to about 1e-3 (the
    variant "a few members with a flat direction").
    """
    rng = np.random.default_rng(seed)
    x = np.full((batch, 20), np.nan)
    y = np.full((batch, 20), np.nan)
    k = rng.integers(5, 21, batch)
    every = round(1.0 / flat) if flat > 0 else 0
    flat_rows = np.arange(batch) % every == 0 if every else np.zeros(batch, dtype=bool)
    for i in range(batch):
        xi = rng.uniform(0.0, 2.0 if flat_rows[i] else 400.0, k[i])
        x[i, : k[i]] = xi
        y[i, : k[i]] = 238.94 * (1 - np.exp(-5.5e-4 * xi)) + rng.normal(0.0, 0.2, k[i])
    return {"x": x, "y": y, "flat": flat_rows}


STRAGGLER_X0 = (250.0, 5e-4)


def _misra_residuals(p: Any, x: Any, y: Any) -> Any:
    import jax.numpy as jnp

    return y - p[0] * (1.0 - jnp.exp(-p[1] * x))


def run_stragglers_zfitlite(
    data: dict[str, np.ndarray], repeat: int = REPEATS, regroup: bool = True
) -> dict[str, Any]:
    """``minimize_batch`` on the straggler case (``regroup=False``: no regrouping)."""
    import zfitlite
    from zfitlite.batch import vectorised
    from zfitlite.minimize import LevenbergMarquardt

    round_steps = vectorised.ROUND_STEPS
    if not regroup:
        vectorised.ROUND_STEPS = None
    try:
        loss = zfitlite.LeastSquares(_misra_residuals)

        def call() -> Any:
            return zfitlite.minimize_batch(
                LevenbergMarquardt(tol=1e-12), loss, np.array(STRAGGLER_X0), (data["x"], data["y"])
            )

        t0 = time.perf_counter()
        res = call()
        first = time.perf_counter() - t0
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = call()
            warm.append(time.perf_counter() - t0)
    finally:
        vectorised.ROUND_STEPS = round_steps
    return {
        "x": res.x,
        "ok": res.valid,
        "niter": res.niter,
        "status": res.status,
        "first": first,
        "warm": min(warm),
        "info": {
            k: res.info[k]
            for k in ("chunk_size", "nchunks", "rounds", "compactions", "pooled", "tail")
        },
        "counts": res.status_counts(),
    }


def run_stragglers_scipy(data: dict[str, np.ndarray], tight: bool) -> dict[str, Any]:
    """A loop of ``least_squares(method="lm")`` with the analytic Jacobian (``tight``:
    ``xtol = ftol = gtol = 1e-12``, the reference; else scipy's default tolerances)."""
    from scipy.optimize import least_squares

    def fun(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y - p[0] * (1.0 - np.exp(-p[1] * x))

    def jac(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * x)
        return np.column_stack([-(1.0 - e), -p[0] * x * e])

    tols = {"xtol": 1e-12, "ftol": 1e-12, "gtol": 1e-12} if tight else {}
    xs, ys = data["x"], data["y"]
    out = np.full((len(ys), 2), np.nan)
    ok = np.zeros(len(ys), dtype=bool)
    t0 = time.perf_counter()
    for i in range(len(ys)):
        keep = np.isfinite(ys[i])
        r = least_squares(
            fun, STRAGGLER_X0, jac=jac, args=(xs[i][keep], ys[i][keep]), method="lm", **tols
        )
        out[i], ok[i] = r.x, r.success
    return {"x": out, "ok": ok, "first": float("nan"), "warm": time.perf_counter() - t0}


def run_stragglers_optimistix(data: dict[str, np.ndarray], repeat: int = REPEATS) -> dict:
    """optimistix's LevenbergMarquardt under ``jax.vmap``, jitted (``max_steps=10_000``)."""
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    jax.config.update("jax_enable_x64", True)
    solver = optx.LevenbergMarquardt(rtol=1e-12, atol=1e-12)

    def residuals(p: Any, args: tuple) -> Any:
        x, y, mask = args
        return jnp.where(mask, 0.0, y - p[0] * (1.0 - jnp.exp(-p[1] * x)))

    def one(y0: Any, x: Any, y: Any) -> tuple:
        mask = jnp.isnan(y)
        sol = optx.least_squares(
            residuals,
            solver,
            y0,
            args=(jnp.where(mask, 0.0, x), jnp.where(mask, 0.0, y), mask),
            max_steps=10_000,
            throw=False,
        )
        return sol.value, sol.result == optx.RESULTS.successful

    solve = jax.jit(jax.vmap(one))
    x0 = jnp.tile(jnp.asarray(STRAGGLER_X0), (len(data["y"]), 1))
    xs, ys = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    return _timed_jax(solve, (x0, xs, ys), repeat)


_FIRST_CALL_SCRIPT = """
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
t_start = time.perf_counter()
import numpy as np
from benchmarks.bench_batch import STRAGGLER_X0, _misra_residuals, straggler_data
import zfitlite
from zfitlite.minimize import LevenbergMarquardt
programs = []
try:  # what compiles (or comes from the cache), and how long it takes
    from jax._src import compiler
    _orig = compiler.compile_or_get_cached
    def _timed(backend, computation, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = _orig(backend, computation, *a, **k)
        name = str(computation.operation.attributes["sym_name"]).strip('"')
        programs.append((name, time.perf_counter() - t0, time.process_time() - c0))
        return out
    compiler.compile_or_get_cached = _timed
except Exception:
    pass
data = straggler_data(int(sys.argv[1]))
loss = zfitlite.LeastSquares(_misra_residuals)
t0, c0 = time.perf_counter(), time.process_time()
res = zfitlite.minimize_batch(LevenbergMarquardt(tol=1e-12), loss, np.array(STRAGGLER_X0),
                              (data["x"], data["y"]))
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "valid": int(res.valid.sum()),
                  "programs": programs, "process": time.perf_counter() - t_start}))
"""


def run_first_call(batch: int = BATCH) -> dict[str, Any]:
    """The straggler batch's first call in a new process: JAX's compilation cache cold
    (a fresh ``XDG_CACHE_HOME``), then warm (a second process with the same one)."""
    import tempfile

    out = {}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp, "PYTHONPATH": root}
        env.pop("ZFITLITE_JAX_CACHE", None)
        for name in ("cold", "warm"):
            proc = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL_SCRIPT, str(batch)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
                cwd=root,
            )
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _optimistix_or_skipped(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """optimistix on the straggler data (``ZFITLITE_BENCH_OPTIMISTIX_REPEATS`` warm calls,
    0: skipped), or why it was skipped."""
    repeats = int(os.environ.get("ZFITLITE_BENCH_OPTIMISTIX_REPEATS", str(REPEATS)))
    try:
        if repeats < 1:
            raise ImportError("ZFITLITE_BENCH_OPTIMISTIX_REPEATS=0")
        return run_stragglers_optimistix(data, repeat=repeats)
    except ImportError as exc:  # pragma: no cover - optional peer
        return {"skipped": str(exc)}


def run_stragglers(batch: int = BATCH) -> dict[str, Any]:
    """The straggler case: every solver, agreement with the tight scipy fit."""
    warnings.simplefilter("ignore", RuntimeWarning)
    data = straggler_data(batch)
    out: dict[str, Any] = {"batch": batch}
    out["first call"] = run_first_call(batch)
    out["zfitlite"] = run_stragglers_zfitlite(data)
    out["zfitlite, no regrouping"] = run_stragglers_zfitlite(data, repeat=1, regroup=False)
    out["scipy lm"] = run_stragglers_scipy(data, tight=False)
    out["scipy lm, tight"] = run_stragglers_scipy(data, tight=True)
    out["optimistix"] = _optimistix_or_skipped(data)
    ref = out["scipy lm, tight"]
    for name in ("zfitlite", "zfitlite, no regrouping", "scipy lm", "optimistix"):
        s = out[name]
        if "x" in s:
            s["agree_1e-6"] = int(np.sum(relative_difference(s["x"], ref["x"]) < 1e-6))
    a, b = out["zfitlite"], out["zfitlite, no regrouping"]
    rel_x = np.max(np.abs(a["x"] - b["x"]) / np.abs(b["x"]), axis=1)
    same = (a["niter"] == b["niter"]) & (a["status"] == b["status"]) & (rel_x <= 1e-12)
    converged = (a["status"] == 0) & (b["status"] == 0)
    out["same"] = {
        "identical members (iterations, status, x to 1e-12)": int(same.sum()),
        "max_rel_x": float(np.nanmax(rel_x)),
        "max_rel_x, both converged": float(np.nanmax(rel_x[converged])),
    }
    return out


def bare_step_seconds(data: dict[str, np.ndarray], lanes: int = 1280, steps: int = 64) -> float:
    """Seconds per lane-step of the least a vectorised Levenberg-Marquardt step can do here.

    One ``jit(fori_loop(vmap(step)))`` over ``lanes`` members of the straggler data on one
    thread: the masked residuals and their ``jacfwd`` Jacobian, ``J^T J`` and ``J^T r``, a
    damped 2x2 solve in closed form, the trial residuals, accept or reject, the damping
    times 0.3 or 2. No trust region, no scaling, no SVD, no convergence test, no counters,
    no non-finite handling: a lower bound on what any vectorised solver costs per step on
    this CPU, not a solver (it is not run to convergence).
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def res(b: Any, x: Any, y: Any) -> Any:
        keep = jnp.isfinite(y)
        r = jnp.where(keep, y, 0.0) - b[0] * (1.0 - jnp.exp(-b[1] * jnp.where(keep, x, 0.0)))
        return jnp.where(keep, r, 0.0)

    def step(c: tuple, x: Any, y: Any) -> tuple:
        b, lam = c
        r = res(b, x, y)
        J = jax.jacfwd(res)(b, x, y)
        A, g = J.T @ J, J.T @ r
        a, off, d = A[0, 0] * (1 + lam), A[0, 1], A[1, 1] * (1 + lam)
        h = -jnp.stack([d * g[0] - off * g[1], a * g[1] - off * g[0]]) / (a * d - off * off)
        r_new = res(b + h, x, y)
        ok = r_new @ r_new < r @ r
        return jnp.where(ok, b + h, b), jnp.where(ok, 0.3 * lam, 2.0 * lam)

    @jax.jit
    def run(b: Any, lam: Any, x: Any, y: Any) -> Any:
        return jax.lax.fori_loop(0, steps, lambda i, c: jax.vmap(step)(c, x, y), (b, lam))

    x, y = jnp.asarray(data["x"][:lanes]), jnp.asarray(data["y"][:lanes])
    b0 = jnp.tile(jnp.asarray(STRAGGLER_X0), (lanes, 1))
    lam0 = jnp.full((lanes,), 1e-3)
    jax.block_until_ready(run(b0, lam0, x, y))
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        jax.block_until_ready(run(b0, lam0, x, y))
        best = min(best, time.perf_counter() - t0)
    return best / (steps * lanes)


def run_floor(batch: int = BATCH) -> dict[str, Any]:
    """Issue 15's straggler goal (>= 100x a scipy loop) against this CPU's floor.

    The floor: the iterations zfitlite's members need (accepted steps only, a lower bound
    on the steps of any Levenberg-Marquardt variant from the same start) times
    :func:`bare_step_seconds`, divided by the cores. Also zfitlite's own cost per
    accepted member-step (its whole warm call times the cores: an upper bound, with
    rejected steps, stopped lanes, the tail and the Python around it).
    """
    warnings.simplefilter("ignore", RuntimeWarning)
    data = straggler_data(batch)
    cores = os.cpu_count() or 1
    bare = bare_step_seconds(data)
    z = run_stragglers_zfitlite(data, repeat=5)
    steps = int(np.sum(z["niter"]))
    scipy_s = run_stragglers_scipy(data, tight=False)["warm"]
    return {
        "batch": batch,
        "cores": cores,
        "bare_ns_per_lane_step": 1e9 * bare,
        "accepted_member_steps": steps,
        "floor_s": steps * bare / cores,
        "goal_s": scipy_s / 100.0,
        "scipy_loop_s": scipy_s,
        "zfitlite_s": z["warm"],
        "zfitlite_ns_per_member_step": 1e9 * z["warm"] * cores / steps,
    }


def main_floor() -> None:
    r = run_floor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"straggler case: {r['batch']} members, {r['cores']} CPUs, load average {load:.1f}")
    print(
        f"bare vectorised damped Gauss-Newton step: {r['bare_ns_per_lane_step']:.0f} ns per "
        f"lane-step (one thread); zfitlite: {r['zfitlite_ns_per_member_step']:.0f} ns per "
        f"accepted member-step (whole call, all cores)"
    )
    print(f"accepted member-steps: {r['accepted_member_steps']:,}")
    print()
    print("| | seconds | fits/s | vs the scipy loop |")
    print("| --- | ---: | ---: | ---: |")
    for name, key in (
        ("scipy lm loop, analytic Jacobian", "scipy_loop_s"),
        ("goal: 100x the scipy loop", "goal_s"),
        ("floor: bare steps only, every core busy", "floor_s"),
        ("zfitlite, warm", "zfitlite_s"),
    ):
        t = r[key]
        print(f"| {name} | {t:.4f} | {r['batch'] / t:,.0f} | {r['scipy_loop_s'] / t:.0f}x |")


def _print_table(
    header: list[str], r: dict[str, Any], names: tuple[str, ...], cells: Callable[[dict], list[str]]
) -> None:
    """A markdown table with one row per solver in ``names`` (``cells(result)`` after its
    name; a skipped peer gets its reason and empty cells)."""
    print("| " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * (len(header) - 1))
    for name in names:
        s = r[name]
        row = (
            [f"skipped: {s['skipped']}"] + [""] * (len(header) - 2) if "skipped" in s else cells(s)
        )
        print("| " + " | ".join([name, *row]) + " |")


def run_flat_variant(batch: int = BATCH, flat: float = 0.01) -> dict[str, Any]:
    """The straggler case with ``flat`` of its members given a flat direction
    (:func:`straggler_data`): zfitlite's batch, the scipy loops and optimistix's vmap,
    and what each says about the flat members."""
    warnings.simplefilter("ignore", RuntimeWarning)
    data = straggler_data(batch, flat=flat)
    flat_rows = data["flat"]
    out: dict[str, Any] = {"batch": batch, "flat members": int(flat_rows.sum())}
    out["zfitlite"] = run_stragglers_zfitlite(data)
    out["scipy lm"] = run_stragglers_scipy(data, tight=False)
    out["scipy lm, tight"] = run_stragglers_scipy(data, tight=True)
    out["optimistix"] = _optimistix_or_skipped(data)
    ref = out["scipy lm, tight"]
    for s in out.values():
        if isinstance(s, dict) and "x" in s:
            rel = relative_difference(s["x"], ref["x"])
            s["agree_1e-6 (other members)"] = int(np.sum((rel < 1e-6) & ~flat_rows))
            s["claimed on flat members"] = int(np.sum(np.asarray(s["ok"])[flat_rows]))
    z = out["zfitlite"]
    out["zfitlite flat statuses"] = {
        str(k): int(v)
        for k, v in zip(*np.unique(np.asarray(z["status"])[flat_rows], return_counts=True))
    }
    return out


def main_flat_variant() -> None:
    r = run_flat_variant()
    n = r["batch"]
    print(f"straggler case with a flat direction in {r['flat members']} of {n} members")
    print(f"zfitlite statuses of the flat members: {r['zfitlite flat statuses']}")
    print()
    flat = r["flat members"]
    _print_table(
        [
            "solver",
            "warm s",
            "fits/s",
            "agree with tight scipy to 1e-6 (other members)",
            "success / valid claimed on the flat members",
        ],
        r,
        ("zfitlite", "scipy lm", "scipy lm, tight", "optimistix"),
        lambda s: [
            f"{s['warm']:.3f}",
            f"{n / s['warm']:,.0f}",
            f"{s['agree_1e-6 (other members)']}/{n - flat}",
            f"{s['claimed on flat members']}/{flat}",
        ],
    )
    z = r["zfitlite"]
    for peer in ("scipy lm", "scipy lm, tight", "optimistix"):
        if "warm" in r[peer]:
            print(f"zfitlite / {peer}: {r[peer]['warm'] / z['warm']:.2f}x fits/s")


def main_stragglers() -> None:
    r = run_stragglers()
    n = r["batch"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"straggler case: {n} members, {os.cpu_count()} CPUs, load average {load:.1f}")
    for name, f in r["first call"].items():
        progs = ", ".join(f"{p} {w:.2f} s" for p, w, _ in f["programs"])
        print(
            f"first call, new process, compilation cache {name}: {f['wall']:.2f} s wall, "
            f"{f['cpu']:.2f} s CPU; {len(f['programs'])} programs ({progs})"
        )
    z = r["zfitlite"]
    print(
        f"zfitlite: iterations median {np.median(z['niter']):.0f}, max {z['niter'].max()}, "
        f"> 100: {int(np.sum(z['niter'] > 100))}; {z['counts']}; {z['info']}"
    )
    print(f"regrouped vs not: {r['same']}")
    print()
    _print_table(
        ["solver", "first call s", "warm s", "fits/s", "agree with tight scipy to 1e-6"],
        r,
        ("zfitlite", "zfitlite, no regrouping", "scipy lm", "scipy lm, tight", "optimistix"),
        lambda s: [
            f"{s['first']:.2f}",
            f"{s['warm']:.3f}",
            f"{n / s['warm']:,.0f}",
            f"{s.get('agree_1e-6', n)}/{n}",
        ],
    )
    print()
    for peer in ("zfitlite, no regrouping", "scipy lm", "scipy lm, tight", "optimistix"):
        if "warm" in r[peer]:
            print(f"zfitlite / {peer}: {r[peer]['warm'] / z['warm']:.2f}x fits/s")


def main() -> None:
    r = run()
    n = r["batch"]
    print(f"{n} members, {r['machine']}")
    print()

    def cells(s: dict) -> list[str]:
        compile_s = s["first"] - s["warm"] if np.isfinite(s["first"]) else float("nan")
        ag = s.get("agreement", {})
        return [
            f"{compile_s:.2f}",
            f"{s['warm']:.3f}",
            f"{n / s['warm']:,.0f}",
            f"{int(np.sum(s['ok']))}",
            f"{ag.get('max_rel', float('nan')):.1e}",
            f"{ag.get('agree_1e-6', '-')}/{ag.get('both', '-')}",
        ]

    header = ["solver", "compile s", "warm s", "fits/s", "valid", "max rel. diff to scipy"]
    _print_table(
        [*header, "agree to 1e-6"],
        r,
        ("zfitlite", "scipy", "scipy (defaults)", "optimistix"),
        cells,
    )
    z, sp, ox = r["zfitlite"], r["scipy"], r["optimistix"]
    print()
    print(f"zfitlite / scipy loop (lm, analytic Jacobian): {sp['warm'] / z['warm']:.1f}x fits/s")
    sd = r["scipy (defaults)"]
    print(f"zfitlite / scipy loop (defaults): {sd['warm'] / z['warm']:.1f}x fits/s")
    if "warm" in ox:
        print(f"zfitlite / optimistix (vmap): {ox['warm'] / z['warm']:.2f}x")
    print(f"zfitlite: median {z['niter']:.0f} iterations, {z['chunks']} chunk(s), {z['status']}")
    print()
    print(
        "| members | chunk | RSS before MiB | peak RSS growth MiB | per member KiB | process peak RSS MiB "
        "| time s (incl. compile) | valid |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    mib = 1024.0**2
    for m in r["memory"]:
        growth = (m["peak"] - m["base"]) / mib
        print(
            f"| {m['n']:,} | {m['chunk_size']:,} | {m['base'] / mib:.0f} | {growth:.0f} | {growth * 1024 / m['n']:.2f} | "
            f"{m['maxrss'] / mib:.0f} | {m['time']:.2f} | {m['valid']} |"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["stragglers"]:
        main_stragglers()
    elif sys.argv[1:] == ["flat"]:
        main_flat_variant()
    elif sys.argv[1:] == ["floor"]:
        main_floor()
    else:
        main()
