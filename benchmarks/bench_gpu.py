"""zfitlite's JAX paths on a GPU, against optimistix and the same machine's CPU, in one process.

``python -m benchmarks.bench_gpu OUT.json`` (on a machine with a CUDA JAX). Sections, each
written to the JSON as soon as it is done (a run cut short keeps what it measured):

* ``batch``: the friendly batch of :mod:`benchmarks.bench_batch` (decay fits, 5-20 points,
  NaN-padded) at 10^4, 10^5 and 10^6 members: ``minimize_batch(LevenbergMarquardt(tol=1e-10))``
  with the default chunks and with one chunk, first call and best warm call, against
  optimistix's LevenbergMarquardt under ``jit(vmap)`` on the same device; agreement with
  a scipy ``least_squares(method="lm")`` loop (analytic Jacobian, tight tolerances) on the
  first 2,000 members;
* ``stragglers``: bench_batch's straggler case (10^4 members, a few need thousands of
  iterations), default chunks and one chunk;
* ``cpu``: the 10^4 and 10^5 friendly batches again on the machine's CPU
  (``jax.default_device``), same process;
* ``single``: the compiled LM fit of NIST Misra1a (first and warm) on the GPU;
* ``events``: an unbinned Gauss + exponential NLL over 10^7 events: ``ScipyBFGS`` fit and
  ``hesse()``, and one Hessian column by column against ``jax.hessian``.

``python -m benchmarks.bench_gpu tall OUT.json``: the tall least-squares problem (5
parameters, 10^6 and 10^7 residuals) against optimistix, the straggler batch and the
friendly batch of 10^5 members.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from typing import Any

import numpy as np

from . import bench_batch as bb


def _dump(path: str, out: dict) -> None:
    with open(path, "w") as f:
        json.dump(
            out, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)
        )


def _batch(data: dict, chunk: int | None, repeat: int = 3) -> dict[str, Any]:
    """:func:`benchmarks.bench_batch.run_zfitlite` with a chunk size, as this table wants it."""
    r = bb.run_zfitlite(data, repeat=repeat, chunk_size=chunk)
    n = len(r["ok"])
    return {
        "members": n,
        "chunk": chunk,
        "first_s": r["first"],
        "warm_s": r["warm"],
        "fits_per_s": n / r["warm"],
        "valid": int(r["ok"].sum()),
        "x": r["x"],
        "ok": r["ok"],
    }


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("x", "ok", "niter", "status")}


#: Divides every size, for a quick check on a laptop (``ZFITLITE_BENCH_GPU_SCALE=100``).
SCALE = int(os.environ.get("ZFITLITE_BENCH_GPU_SCALE", "1"))
#: ``python -m benchmarks.bench_gpu batch OUT``: stop after the straggler section.
BATCH_ONLY = False


def main(path: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    warnings.simplefilter("ignore", RuntimeWarning)
    out: dict[str, Any] = {
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    _dump(path, out)
    # --- friendly batches on the GPU, with optimistix and a scipy reference
    out["batch"] = []
    for size in (10_000 // SCALE, 100_000 // SCALE, 1_000_000 // SCALE):
        data = bb._data(size)
        row: dict[str, Any] = {"members": size}
        for label, chunk in (("default chunks", None), ("one chunk", size)):
            r = _batch(data, chunk, repeat=2 if size >= 10**6 // SCALE else 3)
            row[label] = _strip(r)
            if chunk == size:
                ours = r
        if size <= 100_000 // SCALE:
            o = bb.run_optimistix(data, repeat=2)
            row["optimistix"] = {
                "first_s": o["first"],
                "warm_s": o["warm"],
                "fits_per_s": size / o["warm"],
            }
        ref_n = min(2000, size)
        ref = bb.run_scipy({k: v[:ref_n] for k, v in data.items()})
        row["agreement_first_2000"] = bb.agreement(
            ours["x"][:ref_n], ours["ok"][:ref_n], ref["x"], ref["ok"]
        )
        out["batch"].append(row)
        _dump(path, out)
    # --- stragglers
    data = bb.straggler_data(10_000 // SCALE)
    s = bb.run_stragglers_zfitlite(data, repeat=2)
    out["stragglers"] = {"default chunks": _strip(s) | {"fits_per_s": len(data["y"]) / s["warm"]}}
    _dump(path, out)
    if BATCH_ONLY:
        return
    # --- the same friendly batches on this machine's CPU
    cpu = jax.devices("cpu")[0]
    out["cpu"] = []
    with jax.default_device(cpu):
        for size in (10_000 // SCALE, 100_000 // SCALE):
            r = _batch(bb._data(size), None, repeat=2)
            out["cpu"].append(_strip(r))
            _dump(path, out)
    # --- one compiled single fit on the GPU
    import jax.numpy as jnp

    import zfitlite
    from zfitlite.minimize import LevenbergMarquardt, ScipyBFGS

    tdat = np.array(
        [
            77.6,
            114.9,
            141.1,
            190.8,
            239.9,
            289.0,
            332.8,
            378.4,
            434.8,
            477.3,
            536.8,
            593.1,
            689.1,
            760.0,
        ]
    )
    ydat = np.array(
        [
            10.07,
            14.73,
            17.94,
            23.93,
            29.61,
            35.18,
            40.02,
            44.82,
            50.76,
            55.05,
            61.01,
            66.40,
            75.47,
            81.78,
        ]
    )

    def misra(x: Any, b: Any) -> Any:
        return b[0] * (1.0 - jnp.exp(-b[1] * x))

    loss = zfitlite.LeastSquares.from_data(misra, tdat, ydat, backend="jax")
    lm = LevenbergMarquardt(tol=1e-10)
    t0 = time.perf_counter()
    r = lm.minimize(loss, [500.0, 1e-4])
    first = time.perf_counter() - t0
    warm = []
    for _ in range(20):
        t0 = time.perf_counter()
        r = lm.minimize(loss, [500.0, 1e-4])
        warm.append(time.perf_counter() - t0)
    out["single"] = {
        "misra1a_first_s": first,
        "misra1a_warm_ms": 1e3 * min(warm),
        "x": r.x,
        "valid": r.valid,
        "certified": [2.3894212918e2, 5.5015643181e-4],
    }
    _dump(path, out)
    # --- many events
    n = 10_000_000 // SCALE
    rng = np.random.default_rng(1)
    ev = np.concatenate([rng.normal(1.0, 0.2, 3 * n // 10), rng.exponential(2.0, n - 3 * n // 10)])

    def nll(p: Any, x: Any) -> Any:
        mu, s, lam, f = p[0], p[1], p[2], p[3]
        g = jnp.exp(-0.5 * ((x - mu) / s) ** 2) / (s * jnp.sqrt(2 * jnp.pi))
        return -jnp.sum(jnp.log(f * g + (1 - f) * lam * jnp.exp(-lam * x)))

    sl = zfitlite.SimpleLoss(nll, errordef=0.5, args=(ev,), backend="jax")
    t0 = time.perf_counter()
    fit = ScipyBFGS().minimize(sl, [0.9, 0.25, 0.4, 0.35])
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit.hesse()
    t_hesse = time.perf_counter() - t0
    from zfitlite.backends.jax_backend import _hessian

    p, xs = jnp.asarray(fit.x), jnp.asarray(ev)
    cols, full = jax.jit(_hessian(jax, nll)), jax.jit(jax.hessian(nll))
    timing = {}
    for name, fn in (("columns", cols), ("jax.hessian", full)):
        jax.block_until_ready(fn(p, xs))
        t0 = time.perf_counter()
        for _ in range(3):
            jax.block_until_ready(fn(p, xs))
        timing[name] = (time.perf_counter() - t0) / 3
    out["events"] = {
        "events": n,
        "fit_s": t_fit,
        "hesse_s": t_hesse,
        "valid": fit.valid,
        "x": fit.x,
        "ngrad": fit.info.get("ngrad"),
        "hessian_s": timing,
    }
    _dump(path, out)


def tall(path: str) -> None:
    """The tall least-squares problem of :mod:`benchmarks.bench_scaling` (5 parameters,
    10^6 and 10^7 residuals) on the GPU: zfitlite's compiled LM against optimistix's, first
    and best warm call, and the straggler batch (10^4 members) once more."""
    import jax

    import zfitlite
    from zfitlite.minimize import LevenbergMarquardt

    from .bench_scaling import optimistix_tall, tall_problem

    jax.config.update("jax_enable_x64", True)
    out: dict[str, Any] = {"device": str(jax.devices()[0]), "jax": jax.__version__}
    sizes = os.environ.get("ZFITLITE_BENCH_GPU_TALL", "1000000,10000000")
    for m in (int(float(v)) // SCALE for v in sizes.split(",") if v):
        residuals, x0 = tall_problem(m)
        loss = zfitlite.LeastSquares(residuals, backend="jax")
        peer = optimistix_tall(residuals)
        row: dict[str, Any] = {"m": m}
        runs = {
            "zfitlite": lambda loss=loss, x0=x0: LevenbergMarquardt().minimize(loss, x0).x,
            "optimistix": lambda peer=peer, x0=x0: peer(x0),
        }
        for who, fn in runs.items():
            try:
                t0 = time.perf_counter()
                x = fn()
                first = time.perf_counter() - t0
                warm = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    x = fn()
                    warm.append(time.perf_counter() - t0)
                row[who] = {"first_s": first, "warm_s": min(warm), "x": x}
            except Exception as exc:  # e.g. a cuSolver limit at 10^7 rows
                row[who] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if "warm_s" in row["zfitlite"] and "warm_s" in row["optimistix"]:
            row["ratio_warm"] = row["zfitlite"]["warm_s"] / row["optimistix"]["warm_s"]
        out.setdefault("tall", []).append(row)
        _dump(path, out)
    data = bb.straggler_data(10_000 // SCALE)
    s = bb.run_stragglers_zfitlite(data, repeat=2)
    out["stragglers"] = _strip(s) | {"fits_per_s": len(data["y"]) / s["warm"]}
    _dump(path, out)
    size = 100_000 // SCALE  # a friendly batch, default chunks: nothing left for the host
    out["batch_1e5"] = _strip(_batch(bb._data(size), None, repeat=3))
    _dump(path, out)


def diagnose(path: str) -> None:
    """Where a GPU batch's time goes: rounds against one uninterrupted program, and the
    batched linear algebra of one step (SVD against eigh/Cholesky of the small matrices)."""
    import jax
    import jax.numpy as jnp

    from zfitlite.batch import vectorised

    jax.config.update("jax_enable_x64", True)
    out: dict[str, Any] = {"device": str(jax.devices()[0])}
    for size in (100_000 // SCALE, 1_000_000 // SCALE):
        data = bb._data(size)
        out[f"default_{size}"] = _strip(_batch(data, None, repeat=2))
        _dump(path, out)
        steps = vectorised.ROUND_STEPS
        vectorised.ROUND_STEPS = None  # one uninterrupted program per chunk
        try:
            out[f"uninterrupted_{size}"] = _strip(_batch(data, size, repeat=2))
        finally:
            vectorised.ROUND_STEPS = steps
        _dump(path, out)
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(100_000, 20, 2)))
    g = jnp.einsum("bij,bik->bjk", a, a)
    ops = {
        "svd (1e5, 20, 2)": jax.jit(lambda a: jnp.linalg.svd(a, full_matrices=False)),
        "eigh of A^T A (1e5, 2, 2)": jax.jit(jnp.linalg.eigh),
        "cholesky (1e5, 2, 2)": jax.jit(jnp.linalg.cholesky),
        "qr (1e5, 20, 2)": jax.jit(lambda a: jnp.linalg.qr(a)),
    }
    for name, fn in ops.items():
        arg = g if "2, 2" in name else a
        jax.block_until_ready(fn(arg))
        t0 = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(fn(arg))
        out[name] = (time.perf_counter() - t0) / 5
        _dump(path, out)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    if sys.argv[1:2] == ["batch"]:  # the batch and straggler sections only
        BATCH_ONLY = True
        main(sys.argv[2] if len(sys.argv) > 2 else "bench_gpu.json")
    elif sys.argv[1:2] == ["tall"]:
        tall(sys.argv[2] if len(sys.argv) > 2 else "bench_gpu_tall.json")
    elif sys.argv[1:2] == ["diagnose"]:
        diagnose(sys.argv[2] if len(sys.argv) > 2 else "bench_gpu_diagnose.json")
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "bench_gpu.json")
