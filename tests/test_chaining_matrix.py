"""Chaining matrix: every minimizer exported by ``zfitlite.minimize`` continues from every other's result.

The minimizers are found by enumerating ``zfitlite.minimize.__all__``, so a class added
there is in the matrix without touching this file (a class that cannot be built
without arguments needs an entry in ``FACTORIES``; the test says so rather than skip
it). Global minimizers (``IS_GLOBAL``) need bounds: they appear only as the first
element, on the bounded version of the problem.

The problem is a cheap two-parameter least-squares fit (an exponential decay), so that
minimizers working on residuals take part too. "Converges to the known minimum" is
measured in standard deviations: EDM < tol * errordef puts a fit within about
``sqrt(2 * tol)`` sigma of the minimum.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import numpy as np
import pytest
import scipy.optimize

import zfitlite
from zfitlite.minimize import (
    SHGO,
    BaseMinimizer,
    BasinHopping,
    DifferentialEvolution,
    Direct,
    DualAnnealing,
    GlobalLocal,
    LevenbergMarquardt,
    MultiStart,
)

T = np.linspace(0.0, 4.0, 12)
_RNG = np.random.default_rng(2024)
SIGMA_Y = 0.05
Y = 2.5 * np.exp(-0.7 * T) + _RNG.normal(0.0, SIGMA_Y, T.size)


def residuals(p):
    return (Y - p[0] * np.exp(-p[1] * T)) / SIGMA_Y


def make_loss() -> zfitlite.LeastSquares:
    return zfitlite.LeastSquares(residuals, backend="numpy", name="decay")


START = {"a": 1.5, "b": 0.3}
BOUNDED = {
    "a": {"value": 1.5, "lower": 0.5, "upper": 5.0},
    "b": {"value": 0.3, "lower": 0.05, "upper": 3.0},
}


@functools.cache
def known_minimum() -> tuple[np.ndarray, float, np.ndarray]:
    """Best fit, its chi2 and the parameters' standard deviations (errordef 1)."""
    fit = scipy.optimize.least_squares(residuals, [1.5, 0.3], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    cov = np.linalg.inv(fit.jac.T @ fit.jac)
    return fit.x, float(fit.fun @ fit.fun), np.sqrt(np.diag(cov))


# loose settings: the matrix tests chaining, not the global searches (see test_global.py)
FACTORIES: dict[str, Callable[[], BaseMinimizer]] = {
    "DifferentialEvolution": lambda: DifferentialEvolution(
        seed=0, options={"popsize": 6, "maxgen": 20}
    ),
    "DualAnnealing": lambda: DualAnnealing(seed=0, options={"maxgen": 20}),
    "SHGO": lambda: SHGO(options={"n": 16, "iters": 1}),
    "BasinHopping": lambda: BasinHopping(seed=0, options={"niter": 3}),
    "Direct": lambda: Direct(options={"maxfun": 200}),
    "GlobalLocal": lambda: GlobalLocal(
        Direct(options={"maxfun": 200, "polish": False}), LevenbergMarquardt()
    ),
    "MultiStart": lambda: MultiStart(LevenbergMarquardt(), n_starts=3, seed=0),
}


def exported_minimizers() -> list[str]:
    names = []
    for name in zfitlite.minimize.__all__:
        obj = getattr(zfitlite.minimize, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, BaseMinimizer)
            and obj is not BaseMinimizer
            and not name.startswith("Base")
        ):
            names.append(name)
    return sorted(names)


def build(name: str) -> BaseMinimizer:
    factory = FACTORIES.get(name, getattr(zfitlite.minimize, name))
    try:
        return factory()
    except TypeError as exc:  # pragma: no cover - a new class that needs arguments
        raise AssertionError(
            f"{name} cannot be built without arguments ({exc}); add it to FACTORIES in {__file__}"
        ) from exc


def is_global(name: str) -> bool:
    return bool(getattr(getattr(zfitlite.minimize, name), "IS_GLOBAL", False))


MINIMIZERS = exported_minimizers()
LOCALS = [n for n in MINIMIZERS if not is_global(n)]
PAIRS = [(first, second) for first in MINIMIZERS for second in LOCALS]
_NO_IMINUIT = pytest.mark.skipif(
    importlib.util.find_spec("iminuit") is None, reason="Minuit needs the iminuit extra"
)


def _params(*cases: tuple[str, ...]) -> list:
    """The cases as pytest params, those with Minuit skipped (with a reason) without iminuit."""
    return [pytest.param(*c, marks=[_NO_IMINUIT] if "Minuit" in c else []) for c in cases]


@functools.cache
def first_result(name: str) -> zfitlite.FitResult:
    """The first fit, once per minimizer: bounded for global ones, unbounded otherwise."""
    loss = make_loss()
    return build(name).minimize(loss, BOUNDED if is_global(name) else START)


def assert_at_minimum(result: zfitlite.FitResult, what: str) -> None:
    xhat, fhat, sd = known_minimum()
    tol = result.tol
    assert result.valid, f"{what}: {result!r}\n{result.message}"
    # EDM < tol * errordef: about sqrt(2 tol) sigma from the minimum; allow 3x
    dist = np.abs(result.x - xhat) / sd
    assert np.all(dist < 3 * np.sqrt(2 * tol)), f"{what}: {dist} sigma from the minimum"
    assert result.fmin - fhat < 3 * tol * result.errordef, what


def test_the_matrix_is_complete():
    expected = {
        "DifferentialEvolution",
        "DualAnnealing",
        "SHGO",
        "BasinHopping",
        "Direct",
        "GlobalLocal",
        "MultiStart",
        "Minuit",
        "LevenbergMarquardt",
        "ScipyBFGS",
    }
    assert expected <= set(MINIMIZERS)
    assert {n for n in MINIMIZERS if is_global(n)} == {
        "DifferentialEvolution",
        "DualAnnealing",
        "SHGO",
        "BasinHopping",
        "Direct",
        "GlobalLocal",
    }
    assert len(PAIRS) == len(MINIMIZERS) * len(LOCALS)


@pytest.mark.parametrize("name", _params(*((n,) for n in MINIMIZERS)))
def test_first_fit(name):
    assert_at_minimum(first_result(name), name)


@pytest.mark.parametrize(("first", "second"), _params(*PAIRS))
def test_chain(first, second):
    previous = first_result(first)
    minimizer = build(second)
    loss = previous.loss
    if previous.params_spec.has_bounds and not minimizer.SUPPORTS_BOUNDS:
        # the bounds travel with the result; a minimizer that cannot honour them says so
        # (API section 3) instead of ignoring them ...
        for attempt in (
            lambda: minimizer.minimize(previous),
            lambda: minimizer.minimize(loss, init=previous),
        ):
            with pytest.raises(ValueError, match="bounds"):
                attempt()
        # ... and chaining without the bounds is one explicit step away
        results = [minimizer.minimize(loss, previous.values, init=previous)]
    else:
        results = [minimizer.minimize(previous), minimizer.minimize(loss, init=previous)]
    for result in results:
        assert_at_minimum(result, f"{first} -> {second}")
        assert result.names == previous.names
