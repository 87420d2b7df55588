"""Levenberg-Marquardt on the 27 NIST StRD problems x 2 starts, against certified values.

The comparison peer, ``scipy.optimize.least_squares(method="lm")`` (MINPACK), runs on
the same problems in the same test run.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize

import zfitlite
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.testing.nist import PROBLEM_NAMES, default_nist_dir, load_problem

pytestmark = pytest.mark.skipif(
    default_nist_dir() is None, reason="NIST StRD data folder not found"
)

CASES = [(name, k) for name in PROBLEM_NAMES for k in (0, 1)]
# Still failing (issue 3 is open): both are reported invalid, never as a wrong "valid" answer.
KNOWN_HARD = {("BoxBOD", 0), ("MGH10", 0)}
# Lanczos1's certified RSS (1.4e-25) is below what float64 residuals of O(1) data can
# resolve: at the certified parameters the RSS computed in float64 is only good to ~1e-2
# relative, and the standard deviations (which scale with sqrt(RSS)) to ~2e-3.
RSS_RTOL = {"Lanczos1": 2e-2}
SD_RTOL = {"Lanczos1": 3e-3}


def digits(x: np.ndarray, certified: np.ndarray) -> float:
    """Correct significant digits of the worst parameter."""
    err = np.max(np.abs(x - certified) / np.abs(certified))
    return float(-np.log10(err)) if err > 0 else 16.0


def fit(name: str, k: int, backend: str) -> tuple[object, zfitlite.FitResult]:
    problem = load_problem(name)
    if backend == "jax":
        import jax.numpy as xp
    else:
        xp = np
    loss = zfitlite.LeastSquares(
        lambda b: problem.residuals(b, xp=xp), backend=backend, name=f"{name}-{k + 1}"
    )
    return problem, LevenbergMarquardt(tol=1e-10).minimize(loss, problem.starts[k])


@pytest.mark.parametrize(("name", "k"), [c for c in CASES if c not in KNOWN_HARD])
def test_nist_certified_values_numpy(name, k):
    problem, result = fit(name, k, "numpy")
    assert result.valid, result
    assert digits(result.x, problem.certified) >= 6
    assert result.fmin == pytest.approx(problem.certified_rss, rel=RSS_RTOL.get(name, 1e-6))
    s2 = result.fmin / (problem.n_obs - problem.n_params)
    sd = np.sqrt(s2 * np.diag(result.covariance(method="approx")))
    np.testing.assert_allclose(sd, problem.certified_sd, rtol=SD_RTOL.get(name, 1e-3))


@pytest.mark.parametrize(("name", "k"), [c for c in CASES if c not in KNOWN_HARD])
def test_nist_certified_values_jax(name, k):
    problem, result = fit(name, k, "jax")
    assert result.valid, result
    assert result.info["backend"] == "jax"
    assert digits(result.x, problem.certified) >= 6


@pytest.mark.parametrize(("name", "k"), sorted(KNOWN_HARD))
def test_nist_hard_cases_are_reported_invalid(name, k):
    problem, result = fit(name, k, "numpy")
    if digits(result.x, problem.certified) < 6:
        assert not result.valid
        assert result.status is not zfitlite.Status.CONVERGED
        assert result.message


def test_nist_against_minpack_same_run():
    """zfitlite solves every case MINPACK solves (but MGH10-1, still open), and more."""
    ours, minpack_short = 0, []
    for name, k in CASES:
        problem, result = fit(name, k, "numpy")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            peer = scipy.optimize.least_squares(problem.residuals, problem.starts[k], method="lm")
        d_ours, d_peer = digits(result.x, problem.certified), digits(peer.x, problem.certified)
        ours += d_ours >= 6
        if d_peer < 6:
            minpack_short.append(
                f"{name}-{k + 1} ({d_peer:.1f} digits{', claims success' if peer.success else ''})"
            )
        elif (name, k) not in KNOWN_HARD:
            assert d_ours >= 6, f"MINPACK solves {name}-{k + 1} but zfitlite does not"
    assert ours >= 52
    assert (
        len(minpack_short) >= 54 - ours
    )  # MINPACK (finite-difference Jacobian, default tolerances) falls short more often
    assert "BoxBOD-1 (-2.3 digits, claims success)" in minpack_short
