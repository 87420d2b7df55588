"""str(FitResult), its HTML, and BatchFitResult's summary against golden files.

Regenerate after an intended change with ``ZFITLITE_UPDATE_GOLDEN=1 pytest tests/test_render_golden.py``
and review the diff of tests/golden/.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import zfitlite
from zfitlite import BatchFitResult, FitResult, Status
from zfitlite.params import Params

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ZFITLITE_UPDATE_GOLDEN") == "1"
INF = float("inf")


def _result(
    values,
    lower=None,
    upper=None,
    status=Status.CONVERGED,
    edm=1.234e-7,
    fmin=-1234.56789012345,
    message="converged: EDM below tol * errordef",
    name="LevenbergMarquardt",
) -> FitResult:
    n = len(values)
    params = Params(
        tuple(["mu", "sigma", "frac", "slope"][:n]),
        np.array(values, dtype=float),
        np.array(lower if lower is not None else [-INF] * n, dtype=float),
        np.array(upper if upper is not None else [INF] * n, dtype=float),
        np.full(n, np.nan),
    )
    return FitResult(
        params=params,
        fmin=fmin,
        edm=edm,
        status=status,
        tol=1e-3,
        errordef=0.5,
        info={"nfev": 42, "ngrad": 17, "nhess": 5, "niter": 12, "backend": "numpy", "time": 0.123},
        message=message,
        minimizer_info={"name": name},
    )


def plain_valid() -> FitResult:
    return _result([1.5, 2.25])


def with_hesse_and_profile() -> FitResult:
    r = _result([1.5, 2.25, 0.3], lower=[-INF, 0.01, 0.0], upper=[INF, INF, 1.0])
    for name, err in (("mu", 0.0123), ("sigma", 0.0456), ("frac", 0.0789)):
        r.params[name]["hesse"] = {"error": err, "cl": 0.6826894921370859, "method": "hesse_np"}
    r.params["mu"]["errors"] = {
        "lower": -0.0121,
        "upper": 0.0125,
        "cl": 0.6826894921370859,
        "at_limit": {"lower": False, "upper": False},
    }
    r.params["sigma"]["errors"] = {
        "lower": -0.0401,
        "upper": 0.0512,
        "cl": 0.6826894921370859,
        "at_limit": {"lower": False, "upper": False},
    }
    return r


def at_limit_invalid() -> FitResult:
    r = _result([1.5, 0.01, 1.0], lower=[-INF, 0.01, 0.0], upper=[INF, INF, 1.0])
    r.params["frac"]["hesse"] = {"error": 0.1, "cl": 0.9544997361036416, "method": "hesse_np"}
    r.params["frac"]["errors"] = {
        "lower": -0.2,
        "upper": 0.0,
        "cl": 0.9544997361036416,
        "at_limit": {"lower": False, "upper": True},
    }
    return r


def maxiter_invalid() -> FitResult:
    # the messages are given, so the goldens do not depend on status.py's wording
    return _result(
        [0.1, 0.2],
        status=Status.MAXITER,
        edm=3.5,
        fmin=float("nan"),
        message="stopped: the maximum number of loss evaluations (maxiter) was reached",
    )


def roundtrip_from_dict() -> FitResult:
    return FitResult.from_dict(with_hesse_and_profile().to_dict())


CASES = {
    f.__name__: f
    for f in (
        plain_valid,
        with_hesse_and_profile,
        at_limit_invalid,
        maxiter_invalid,
        roundtrip_from_dict,
    )
}


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert path.exists(), f"{path} is missing; run with ZFITLITE_UPDATE_GOLDEN=1 to create it"
    assert text + "\n" == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_text_matches_golden(case):
    _check(f"{case}.txt", str(CASES[case]()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_html_matches_golden(case):
    _check(f"{case}.html", CASES[case]()._repr_html_())


def test_what_the_golden_tables_say():
    """The goldens are checked by eye once; these make the key claims explicit."""
    text = str(with_hesse_and_profile())
    assert text.splitlines()[0] == "FitResult of LevenbergMarquardt: VALID"
    assert "1.23e-07 < goal 0.0005" in text
    assert "profile lower" in text and "+0.0125" in text
    assert "profile" not in str(plain_valid())  # the column appears once computed
    bad = str(at_limit_invalid())
    assert bad.splitlines()[:2] == [
        "FitResult of LevenbergMarquardt: INVALID",
        "  !! at a bound: sigma, frac",
    ]
    assert "AT LOWER" in bad and "AT UPPER" in bad and "+0 (bound)" in bad
    assert "2 sigma (cl 0.954)" in bad
    assert "!! MAXITER" in str(maxiter_invalid())
    assert str(roundtrip_from_dict()) == text


def _batch() -> BatchFitResult:
    rng = np.random.default_rng(0)
    n = 8
    x = np.round(rng.normal([1.0, 0.5], [0.1, 0.05], size=(n, 2)), 6)
    status = np.array([0] * 6 + [int(Status.SINGULAR), int(Status.MAXITER)])
    return BatchFitResult(
        x=x,
        fmin=np.round(rng.uniform(1, 10, n), 6),
        edm=np.full(n, 1e-9),
        status=status,
        niter=np.arange(3, 3 + n),
        ids=[f"subject-{i}" for i in range(n)],
        names=("a", "k"),
        nobs=np.full(n, 10),
        info={
            "method": "lm",
            "backend": "jax",
            "chunk_size": 8,
            "nchunks": 1,
            "time": 0.5,
            "minimizer": "LevenbergMarquardt",
        },
        valid=status == 0,
        members=[None] * n,
    )


def test_batch_summary_matches_golden():
    from zfitlite._render import batch_html, batch_text

    r = _batch()
    _check("batch.txt", batch_text(r, timing=False))
    _check("batch.html", batch_html(r, timing=False))
    text = str(r)
    assert "8 member(s), 6 valid, 2 invalid" in text and "0.5 s" in text
    assert "'subject-6': SINGULAR" in text
    med = np.median(r.x[r.valid], axis=0)
    assert f"a : {med[0]:.6g}" in text


def test_a_fit_stopped_early_shows_its_iterations_as_unknown():
    """Fallback results (maxiter, NaN, Ctrl-C) carry niter = -1: shown as unknown, not -1."""

    def rosenbrock(p):
        return (p[0] - 1) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    rosenbrock.errordef = 1.0
    result = zfitlite.minimize.ScipyBFGS(maxiter=10).minimize(rosenbrock, [-1.2, 1.0])
    assert result.status.name == "MAXITER" and result.info["niter"] == -1
    assert "iterations      : unknown (stopped early)" in str(result)
    assert "unknown (stopped early)" in result._repr_html_()
