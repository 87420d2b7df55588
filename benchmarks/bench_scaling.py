"""Large problems: time and peak memory against the peers, in one process.

Sections (each row: wall time of a warm fit, i.e. compiled functions reused, and the
peak Python heap during it from ``tracemalloc``, which sees numpy arrays but not JAX
device buffers, plus the growth of the resident set size):

* **scalar**: extended Rosenbrock on JAX, ``ScipyLBFGSB`` against scipy's own
  L-BFGS-B with the same jitted value-and-gradient, at ``n`` in ``SCALAR_SIZES``;
* **lsq-tall**: an exponential decay with 5 parameters and ``m`` residuals (JAX):
  ``LevenbergMarquardt`` against MINPACK (``least_squares(method="lm")``), scipy ``trf``
  and optimistix's Levenberg-Marquardt when installed;
* **lsq-sparse**: independent Gaussian peaks on a shared linear background (m = 5 n):
  ``LevenbergMarquardt`` (LSMR steps on the sparse Jacobian: ``jac_sparsity`` finite
  differences, or a sparse analytic ``jacobian``; the dense SVD path up to
  ``SPARSE_DENSE_MAX``) against scipy ``trf`` with ``jac_sparsity`` (with Moré's
  scaling ``x_scale="jac"``, which zfitlite's LM always uses, and scipy's default
  ``x_scale=1``), a sparse ``jac`` and a dense one; time: the best of five interleaved
  runs without ``tracemalloc``, memory: one traced run;
* **events**: an unbinned Gauss + exponential NLL (4 parameters) on JAX: ``Minuit``,
  ``ScipyBFGS`` and ``ScipyLBFGSB`` against iminuit's Migrad (given the same jitted
  value and gradient), the fit alone and fit + ``hesse()``; the note gives the peak
  growth of the resident set (sampled; JAX's buffers are outside ``tracemalloc``).

Run it with single-threaded BLAS (``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python -m
benchmarks bench_scaling``): on a small, loaded machine a threaded BLAS made scipy's own
L-BFGS-B 20x slower at n = 600 (24 s against 1.25 s).

Sizes come from the environment (``ZFITLITE_BENCH_SCALING_N``, ``..._M``,
``..._SPARSE_N``, ``..._EVENTS``; comma-separated) so a loaded machine can run a
short version; defaults are the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse


def _sizes(name: str, default: str) -> list[int]:
    return [int(float(s)) for s in os.environ.get(name, default).split(",") if s]


SCALAR_SIZES = _sizes("ZFITLITE_BENCH_SCALING_N", "1000,10000")
TALL_SIZES = _sizes("ZFITLITE_BENCH_SCALING_M", "100000,1000000")
SPARSE_SIZES = _sizes("ZFITLITE_BENCH_SCALING_SPARSE_N", "500,2000")
EVENT_SIZES = _sizes("ZFITLITE_BENCH_SCALING_EVENTS", "100000,1000000")


def _rss() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def measure(fn: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """(seconds, peak Python heap in MiB, RSS growth in MiB, what ``fn`` returned)."""
    gc.collect()
    rss0 = _rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return dt, peak, _rss() - rss0, out


def row(section: str, size: str, who: str, dt: float, peak: float, drss: float, note: str) -> None:
    print(f"| {section} | {size} | {who} | {dt:.3f} | {peak:.1f} | {drss:.0f} | {note} |")


# -- scalar ---------------------------------------------------------------------------
def scalar(n: int) -> None:
    import jax
    import jax.numpy as jnp

    import zfitlite
    from zfitlite.minimize import ScipyLBFGSB

    jax.config.update("jax_enable_x64", True)

    def rosen(x: Any) -> Any:
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    x0 = np.tile([-1.2, 1.0], n // 2)
    vg = jax.jit(jax.value_and_grad(rosen))

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = vg(x)
        return float(v), np.asarray(g)

    def peer() -> Any:  # run to its own convergence (the default maxfun=15000 stops it early)
        return scipy.optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", options={"maxfun": 10**7, "maxiter": 10**7}
        )

    loss = zfitlite.SimpleLoss(rosen, errordef=1.0, backend="jax")

    def ours() -> Any:
        return ScipyLBFGSB().minimize(loss, x0)

    fun(x0)  # compile the peer's function; ours compiles in a short fit
    ScipyLBFGSB(maxiter=20).minimize(loss, x0)
    loss_hvp = loss.compiled(n).hvp
    if loss_hvp is not None:
        loss_hvp(x0, x0)
    t_p, m_p, r_p, res = measure(peer)
    t_z, m_z, r_z, fit = measure(ours)
    row("scalar", f"n={n}", "scipy L-BFGS-B", t_p, m_p, r_p, f"nfev {res.nfev}")
    row(
        "scalar",
        f"n={n}",
        "zfitlite ScipyLBFGSB",
        t_z,
        m_z,
        r_z,
        f"{t_z / t_p:.2f}x time; {fit.status.name}, edm {fit.edm:.2g}, nfev {fit.info['nfev']}, "
        f"nhvp {fit.info.get('nhvp', 0)}, H kept: {fit.approx.hessian is not None}",
    )


# -- least squares, tall ----------------------------------------------------------------
def tall_problem(m: int) -> tuple[Callable[[Any], Any], np.ndarray]:
    """The tall least-squares problem: 5 parameters, ``m`` residuals (JAX), and its start."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    t = np.linspace(0.0, 10.0, m)
    truth = np.array([3.0, 0.4, 1.0, 1.3, 0.5])
    rng = np.random.default_rng(1)

    def model(p: Any, t: Any) -> Any:
        return p[0] * jnp.exp(-p[1] * t) + p[2] * jnp.sin(p[3] * t) + p[4]

    y = np.asarray(model(truth, t)) + 0.05 * rng.normal(size=m)
    yj, tj = jnp.asarray(y), jnp.asarray(t)

    def residuals(p: Any) -> Any:
        return (yj - model(p, tj)) / 0.05

    return residuals, np.array([2.5, 0.5, 0.8, 1.25, 0.3])


def optimistix_tall(residuals: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """optimistix's jitted Levenberg-Marquardt on ``residuals`` (raises ImportError)."""
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    solver = optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)
    run = jax.jit(
        lambda p: optx.least_squares(lambda p, _: residuals(p), solver, p, max_steps=1000).value
    )
    return lambda x0: np.asarray(run(jnp.asarray(x0)))


def tall(m: int) -> None:
    import jax

    import zfitlite
    from zfitlite.minimize import LevenbergMarquardt

    residuals, x0 = tall_problem(m)
    res_j = jax.jit(residuals)
    jac_j = jax.jit(jax.jacfwd(residuals))
    loss = zfitlite.LeastSquares(residuals, backend="jax")

    def ours() -> Any:
        return LevenbergMarquardt().minimize(loss, x0)

    def minpack() -> Any:
        return scipy.optimize.least_squares(
            lambda p: np.asarray(res_j(p)), x0, jac=lambda p: np.asarray(jac_j(p)), method="lm"
        )

    ours(), minpack()
    rows = [("zfitlite LM", ours), ("MINPACK lm", minpack)]
    try:
        peer = optimistix_tall(residuals)

        def optimistix() -> Any:
            return peer(x0)

        optimistix()
        rows.append(("optimistix LM", optimistix))
    except ImportError:  # pragma: no cover - optional peer
        pass
    times = {}
    for who, fn in rows:
        dt, peak, drss, _ = measure(fn)
        times[who] = dt
        row(
            "lsq-tall",
            f"n=5, m={m:.0e}",
            who,
            dt,
            peak,
            drss,
            f"{dt / times[rows[0][0]]:.2f}x ours",
        )


# -- least squares, block-sparse ----------------------------------------------------------
from zfitlite.testing.sparse import peaks_problem  # noqa: E402  (shared with the tests)

#: The dense rows (a thin SVD per step) only up to this many parameters: at n = 2,000
#: zfitlite's dense LM takes about a minute and scipy's dense trf several seconds.
SPARSE_DENSE_MAX = int(os.environ.get("ZFITLITE_BENCH_SCALING_SPARSE_DENSE_MAX", "600"))


def sparse(n_peaks_params: int, repeat: int = 5) -> None:
    import zfitlite
    from zfitlite.minimize import LevenbergMarquardt

    pb = peaks_problem(n_peaks_params)
    residuals, jac, pattern, x0 = pb["residuals"], pb["jac"], pb["pattern"], pb["x0"]
    n, m = pb["n"], pb["m"]

    def ours(loss: Any, **options: Any) -> Callable[[], Any]:
        def fit() -> Any:
            r = LevenbergMarquardt(options=options or None).minimize(loss, x0)
            return r.fmin, f"nres {r.info['nres']}, njac {r.info['njac']}, calls {r.info['ncalls']}"

        return fit

    def scipy_trf(**kw: Any) -> Callable[[], Any]:
        def fit() -> Any:
            r = scipy.optimize.least_squares(residuals, x0, method="trf", **kw)
            return 2 * r.cost, f"nfev {r.nfev}, njev {r.njev}"

        return fit

    rows: list[tuple[str, Callable[[], Any]]] = [
        ("scipy trf + jac_sparsity, x_scale='jac'", scipy_trf(jac_sparsity=pattern, x_scale="jac")),
        ("scipy trf + jac_sparsity", scipy_trf(jac_sparsity=pattern)),
        ("zfitlite LM, jac_sparsity", ours(zfitlite.LeastSquares(residuals, jac_sparsity=pattern))),
        ("scipy trf, sparse jac, x_scale='jac'", scipy_trf(jac=jac, x_scale="jac")),
        ("scipy trf, sparse jac", scipy_trf(jac=jac)),
        ("zfitlite LM, sparse jac", ours(zfitlite.LeastSquares(residuals, jacobian=jac))),
    ]
    if n <= SPARSE_DENSE_MAX:
        dense = zfitlite.LeastSquares(residuals, jacobian=lambda p: jac(p).toarray())
        rows.append(("zfitlite LM, dense jac (svd)", ours(dense, linear_solver="svd")))
        rows.append(("scipy trf, dense jac", scipy_trf(jac=lambda p: jac(p).toarray())))
    # time without tracemalloc (it slows Python-heavy loops 2-4x), the minimum over
    # `repeat` rounds that interleave the rows; peak memory from one traced run each
    times = dict.fromkeys((who for who, _ in rows), np.inf)
    for _, fn in rows:
        fn()  # warm: imports, caches
    for _ in range(repeat):
        for who, fn in rows:
            t0 = time.perf_counter()
            fn()
            times[who] = min(times[who], time.perf_counter() - t0)
    first = None
    for who, fn in rows:
        _, peak, drss, (fmin, counts) = measure(fn)
        dt = times[who]
        first = first or dt
        row(
            "lsq-sparse",
            f"n={n}, m={m}",
            who,
            dt,
            peak,
            drss,
            f"{dt / first:.2f}x the first row; chi2 {fmin:.6f}; {counts}",
        )


# -- many events -------------------------------------------------------------------------
def events(size: int) -> None:
    import jax
    import jax.numpy as jnp
    from iminuit import Minuit as IMinuit

    import zfitlite
    from zfitlite.minimize import Minuit, ScipyBFGS, ScipyLBFGSB

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(4)
    lo, hi = 0.0, 10.0
    n_sig = size // 3
    x = np.concatenate([rng.normal(5.0, 0.5, n_sig), rng.exponential(4.0, size - n_sig)])
    x = jnp.asarray(x[(x > lo) & (x < hi)])
    start = np.array([4.9, 0.55, 0.25, 0.3])

    def nll(p: Any) -> Any:
        mu, sigma, lam, frac = p
        from jax.scipy.special import erf

        norm_g = 0.5 * (erf((hi - mu) / (sigma * 2**0.5)) - erf((lo - mu) / (sigma * 2**0.5)))
        g = jnp.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * (2 * jnp.pi) ** 0.5) / norm_g
        e = lam * jnp.exp(-lam * (x - lo)) / (1.0 - jnp.exp(-lam * (hi - lo)))
        return -jnp.sum(jnp.log(frac * g + (1.0 - frac) * e))

    vg = jax.jit(jax.value_and_grad(nll))
    f_j = jax.jit(nll)
    loss = zfitlite.SimpleLoss(nll, errordef=0.5, backend="jax")

    def migrad(hesse: bool) -> Callable[[], Any]:
        def fit() -> Any:
            m = IMinuit(lambda p: float(f_j(p)), start, grad=lambda p: np.asarray(vg(p)[1]))
            m.errordef = 0.5
            m.limits = [(4.0, 6.0), (0.1, 2.0), (0.01, 2.0), (0.0, 1.0)]
            m.migrad()
            if hesse:
                m.hesse()
            return m

        return fit

    def ours(minimizer: Any, hesse: bool) -> Callable[[], Any]:
        def fit() -> Any:
            result = minimizer().minimize(loss, start)
            if hesse:
                result.hesse()
            return result

        return fit

    for hesse in (False, True):
        tag = " + hesse" if hesse else ""
        rows = [
            (f"iminuit Migrad{tag}", migrad(hesse)),
            (f"zfitlite Minuit{tag}", ours(Minuit, hesse)),
            (f"zfitlite ScipyBFGS{tag}", ours(ScipyBFGS, hesse)),
            (f"zfitlite ScipyLBFGSB{tag}", ours(ScipyLBFGSB, hesse)),
        ]
        for _, fn in rows:
            fn()
        first = None
        for who, fn in rows:
            dt, peak, drss, _ = measure(fn)
            rss_peak = peak_rss_growth(fn)
            first = first or dt
            row(
                "events",
                f"{size:.0e} events",
                who,
                dt,
                peak,
                drss,
                f"{dt / first:.2f}x Migrad; peak RSS +{rss_peak:.0f} MiB (another run)",
            )


def peak_rss_growth(fn: Callable[[], Any]) -> float:
    """The resident set's peak growth (MiB) during one call of ``fn``, sampled every 2 ms
    (JAX's buffers are outside ``tracemalloc``'s view)."""
    import threading

    import psutil

    proc = psutil.Process()
    gc.collect()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return (peak[0] - base) / 2**20


def main() -> None:
    print("| section | size | who | time (s) | peak heap (MiB) | RSS growth (MiB) | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in SCALAR_SIZES:
        scalar(n)
    for m in TALL_SIZES:
        tall(m)
    for n in SPARSE_SIZES:
        sparse(n)
    for size in EVENT_SIZES:
        events(size)


if __name__ == "__main__":
    main()
