"""The zfitlite demo: ``python -m zfitlite`` (or ``zfitlite demo``, or the ``zfitlite-demo`` script).

Two real fits on data generated here with a fixed seed:

1. a physicist's unbinned likelihood fit (a Gaussian peak on an exponential
   background), found by a global search (differential evolution) and polished by
   Levenberg-Marquardt, with Hesse and profile-likelihood errors;
2. a scientist's least-squares curve fit (exponential saturation, the NIST Misra1a
   model) with measurement uncertainties and missing points;
3. a clinical modeller's personalisation: one exponential decay fitted to each of 2,000
   subjects with 5 to 20 visits (some missing), as one batched, compiled solve.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import zfitlite
from zfitlite.backends import jax_available
from zfitlite.demo_personalise import personalisation_demo


def _peak_on_background(
    n_signal: int = 2000, n_background: int = 6000, seed: int = 42
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = 0.0, 10.0
    sig = rng.normal(5.2, 0.4, n_signal)
    bkg = lo - np.log(rng.uniform(np.exp(-0.3 * hi), 1.0, n_background)) / 0.3
    data = np.concatenate([sig, bkg])
    return data[(data > lo) & (data < hi)]


def likelihood_demo(verbose: bool = True) -> zfitlite.FitResult:
    """Global search then local polish on an unbinned extended-free NLL."""
    data = _peak_on_background()
    lo, hi = 0.0, 10.0
    if jax_available():
        import jax.numpy as xp
        from jax.scipy.special import erf
    else:  # pragma: no cover - the demo installs jax
        import numpy as xp
        from scipy.special import erf

    def nll(p):
        frac, mu, sigma, lam = p[0], p[1], p[2], p[3]
        norm_g = 0.5 * (
            erf((hi - mu) / (sigma * np.sqrt(2))) - erf((lo - mu) / (sigma * np.sqrt(2)))
        )
        gauss = xp.exp(-0.5 * ((data - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi) * norm_g)
        expo = lam * xp.exp(-lam * (data - lo)) / (1 - xp.exp(-lam * (hi - lo)))
        return -xp.sum(xp.log(frac * gauss + (1 - frac) * expo))

    loss = zfitlite.SimpleLoss(nll, errordef=0.5, name="peak-on-background")
    params = {
        "frac": {"value": 0.5, "lower": 0.01, "upper": 0.99},
        "mu": {"value": 2.0, "lower": 0.5, "upper": 9.5},
        "sigma": {"value": 1.0, "lower": 0.05, "upper": 3.0},
        "lambda": {"value": 1.0, "lower": 0.01, "upper": 3.0},
    }
    t0 = time.perf_counter()
    coarse = zfitlite.minimize.DifferentialEvolution(seed=1).minimize(loss, params)
    t1 = time.perf_counter()
    result = zfitlite.minimize.LevenbergMarquardt(tol=1e-6).minimize(coarse)
    t2 = time.perf_counter()
    result.hesse()
    result.errors(params=["mu", "sigma"])
    if verbose:
        print("=" * 78)
        print(
            f"1) Unbinned likelihood: Gaussian peak on exponential background, {data.size} events"
        )
        print(
            f"   global search: DifferentialEvolution, {coarse.nfev} evaluations, {t1 - t0:.2f} s, "
            f"fmin {coarse.fmin:.6f}, EDM {coarse.edm:.3g}"
        )
        print(f"   local polish : LevenbergMarquardt, {result.nfev} evaluations, {t2 - t1:.2f} s")
        print()
        print(result)
    return result


def least_squares_demo(verbose: bool = True) -> zfitlite.FitResult:
    """A weighted least-squares curve fit with missing observations."""
    rng = np.random.default_rng(7)
    x = np.linspace(100.0, 5000.0, 24)
    b_true = np.array([240.0, 5.5e-4])
    sigma = 1.0 + 0.001 * x
    y = b_true[0] * (1 - np.exp(-b_true[1] * x)) + rng.normal(0, sigma)
    y[[3, 11, 17]] = np.nan  # three missing observations

    if jax_available():
        import jax.numpy as xp
    else:  # pragma: no cover
        import numpy as xp

    def model(x, b):
        return b[0] * (1 - xp.exp(-b[1] * x))

    loss = zfitlite.LeastSquares.from_data(model, x, y, sigma=sigma, name="saturation-curve")
    result = zfitlite.minimize.LevenbergMarquardt(tol=1e-8).minimize(
        loss, {"b1": 500.0, "b2": 1e-4}
    )
    result.hesse()
    if verbose:
        print("=" * 78)
        print(
            f"2) Least squares: y = b1 (1 - exp(-b2 x)), {np.isfinite(y).sum()} of {y.size} points observed "
            f"(true b1 = {b_true[0]}, b2 = {b_true[1]})"
        )
        print(f"   chi2 / ndf = {result.fmin:.3f} / {np.isfinite(y).sum() - 2}")
        print()
        print(result)
    return result


_NOISE = 0.02


def _normalised_decay_residuals(p, t, y):
    """Decay residuals in units of the measurement noise (a chi-square: errordef 1)."""
    from zfitlite.testing.batch import decay_residuals

    return decay_residuals(p, t, y) / _NOISE


def batch_demo(verbose: bool = True, batch: int = 2000) -> zfitlite.BatchFitResult:
    """One small decay fit per subject, all at once with :func:`zfitlite.minimize_batch`."""
    from zfitlite.testing.batch import decay_data

    data = decay_data(batch, npoints=(5, 20), missing=0.1, noise=_NOISE, seed=7)
    loss = zfitlite.LeastSquares(_normalised_decay_residuals, params={"a": 1.0, "k": 1.0})
    start = time.perf_counter()
    result = zfitlite.minimize_batch(
        zfitlite.minimize.LevenbergMarquardt(tol=1e-8),
        loss,
        [1.0, 1.0],
        args=(data["t"], data["y"]),
        ids=[f"subject-{i}" for i in range(batch)],
        progress=False,
    )
    elapsed = time.perf_counter() - start
    if verbose:
        print("=" * 78)
        print(
            f"3) Personalisation: y = a exp(-k t) for {batch} subjects, 5 to 20 visits each "
            f"(some missing), {elapsed:.2f} s including compilation"
        )
        print()
        print(result)
        pulls = (result.x - data["params"]) / result.hesse_errors
        print(
            f"   pulls (fit - truth) / Hesse error over the subjects: mean "
            f"{np.round(pulls.mean(axis=0), 3).tolist()}, std {np.round(pulls.std(axis=0), 3).tolist()}"
            " (honest errors: 0 and 1)"
        )
        print(
            f"   {result.ids[0]}: {_with_errors(result.names, result.x[0], result.hesse_errors[0])}"
        )
    return result


def _with_errors(names, values, errors) -> str:
    """``a = 1.02 ± 0.013, k = 0.497 ± 0.012``: three significant digits of the error."""
    out = []
    for name, value, error in zip(names, values, errors):
        digits = max(0, 2 - int(np.floor(np.log10(abs(error))))) if error > 0 else 3
        out.append(f"{name} = {value:.{digits}f} \N{PLUS-MINUS SIGN} {error:.{digits}f}")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns a process exit code (0 when every fit is valid)."""
    parser = argparse.ArgumentParser(
        prog="zfitlite demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final line")
    args = parser.parse_args(argv)
    r1 = likelihood_demo(verbose=not args.quiet)
    r2 = least_squares_demo(verbose=not args.quiet)
    r3 = batch_demo(verbose=not args.quiet)
    personalisation_demo(verbose=not args.quiet)  # 4) disease progression (demo_personalise)
    ok = r1.valid and r2.valid and bool(r3.valid.all())
    print("=" * 78)
    print(
        f"demo finished: likelihood fit valid={r1.valid}, least-squares fit valid={r2.valid}, "
        f"batch {int(r3.valid.sum())} of {len(r3)} valid"
    )
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
