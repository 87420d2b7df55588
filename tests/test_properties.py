"""Property-based tests: every minimizer on random convex quadratics.

A problem is ``f(x) = errordef * (x - x*)^T H (x - x*) + c`` in 1 to 6 dimensions with a
random rotation and condition number up to 1e6, a random start, and either no bounds,
bounds that contain the minimum, or bounds that exclude it (the minimum is then on a
bound; the reference is the exact box-constrained minimum from ``lsq_linear``). Every
minimizer must either raise a clear ``ValueError`` (bounds it cannot honour) or return a
result, and a result that says ``converged`` must be at the minimum to the precision its
EDM promises: for a quadratic the EDM *is* ``f(x) - f(x*)``, so ``f(x) - f_min`` must
be below ``tol * errordef`` (with a margin of :data:`EDM_MARGIN` for the EDM being
measured at the end point). A result that is not converged must say so with a status
and message, and ``valid`` must never be claimed for a wrong minimum.

Profiles: ``ci`` (default; :data:`CI_EXAMPLES` examples per minimizer, derandomized so CI
is reproducible) and ``long`` (many more, random), selected with the environment
variable ``ZFITLITE_HYPOTHESIS_PROFILE=long`` (``nox -s bench``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import scipy.optimize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zfitlite.loss import LeastSquares, SimpleLoss
from zfitlite.minimize import (
    BaseMinimizer,
    DifferentialEvolution,
    GlobalLocal,
    LevenbergMarquardt,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyLeastSquares,
    ScipyNelderMead,
    ScipyPowell,
    ScipyTrustConstr,
)
from zfitlite.status import Status

CI_EXAMPLES = 25
_PROFILE = os.environ.get("ZFITLITE_HYPOTHESIS_PROFILE", "ci")
if _PROFILE not in ("ci", "long"):
    raise ValueError(f"ZFITLITE_HYPOTHESIS_PROFILE must be 'ci' or 'long', got {_PROFILE!r}")
#: Per-test settings (not a global profile, so other test files are not affected).
PROFILE = settings(
    max_examples=CI_EXAMPLES if _PROFILE == "ci" else 400,
    deadline=None,
    derandomize=_PROFILE == "ci",
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: A converged result's true distance to the minimum, f(x) - f_min, may exceed the goal
#: tol * errordef by this factor (the EDM is a second-order estimate at the end point).
EDM_MARGIN = 2.0
#: (bounds mode, status, valid) per minimizer name, for a look at what was exercised.
OUTCOMES: dict[str, list[tuple[str, str, bool]]] = {}


@dataclass(frozen=True)
class Quadratic:
    """``errordef * ||L^T (x - xstar)||^2 + c`` with box bounds (possibly infinite)."""

    L: np.ndarray
    xstar: np.ndarray
    c: float
    errordef: float
    x0: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    mode: str
    tol: float = 1e-3

    @property
    def n(self) -> int:
        return self.xstar.size

    @property
    def H(self) -> np.ndarray:
        """The Hessian of f."""
        return 2.0 * self.errordef * self.L @ self.L.T

    def f(self, x: np.ndarray) -> float:
        r = self.L.T @ (np.asarray(x) - self.xstar)
        return float(self.errordef * (r @ r) + self.c)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.H @ (np.asarray(x) - self.xstar)

    def hess(self, x: np.ndarray) -> np.ndarray:
        return self.H

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """For the least-squares form (errordef 1, c 0): value = sum of squares."""
        return self.L.T @ (np.asarray(x) - self.xstar)

    def fmin(self) -> float:
        """The exact minimum inside the bounds."""
        if self.mode != "exclude":
            return self.c
        sol = scipy.optimize.lsq_linear(
            self.L.T,
            self.L.T @ self.xstar,
            bounds=(self.lower, self.upper),
            method="bvls",
            tol=1e-14,
        )
        return self.f(np.clip(sol.x, self.lower, self.upper))

    def params(self) -> dict[str, Any]:
        return {
            f"x{i}": {"value": float(v), "lower": float(lo), "upper": float(hi)}
            for i, (v, lo, hi) in enumerate(zip(self.x0, self.lower, self.upper))
        }


@st.composite
def quadratics(draw: st.DrawFn, modes: tuple[str, ...], finite_box: bool = False) -> Quadratic:
    n = draw(st.integers(1, 6), label="dimension")
    log_cond = draw(st.floats(0.0, 6.0), label="log10 condition number")
    mode = draw(st.sampled_from(modes), label="bounds")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.logspace(0.0, -log_cond, n) * 10.0 ** rng.uniform(-2, 2)
    rng.shuffle(eig)
    L = q * np.sqrt(eig)  # L L^T = Q diag(eig) Q^T
    xstar = rng.uniform(-3.0, 3.0, n)
    scale = 1.0 / np.sqrt(np.diag(L @ L.T))  # about one unit of the loss per step
    x0 = xstar + rng.uniform(-3.0, 3.0, n) * np.minimum(scale, 10.0)
    lower = np.full(n, -np.inf)
    upper = np.full(n, np.inf)
    if mode == "contain" or finite_box:
        width = np.abs(x0 - xstar) + rng.uniform(0.5, 3.0, n) * np.minimum(scale, 10.0)
        lower, upper = xstar - width, xstar + width
    if mode == "exclude":
        k = rng.integers(1, n + 1)  # how many parameters have the minimum outside
        side = rng.choice([-1.0, 1.0], n)
        width = rng.uniform(0.5, 3.0, n) * np.minimum(scale, 10.0)
        shift = rng.uniform(0.2, 2.0, n) * np.minimum(scale, 10.0)
        for i in rng.permutation(n)[:k]:
            if side[i] > 0:  # the box lies above x*
                lower[i], upper[i] = xstar[i] + shift[i], xstar[i] + shift[i] + width[i]
            else:
                lower[i], upper[i] = xstar[i] - shift[i] - width[i], xstar[i] - shift[i]
        x0 = np.clip(x0, lower, upper)
        boxed = np.isfinite(lower) & np.isfinite(upper)
        x0 = np.where(boxed, (np.where(boxed, lower, 0.0) + np.where(boxed, upper, 0.0)) / 2, x0)
    errordef = draw(st.sampled_from([0.5, 1.0]), label="errordef")
    c = float(rng.uniform(-100.0, 100.0))
    tol = draw(st.sampled_from([1e-3, 1e-6, 1e-9]), label="tol")
    return Quadratic(L, xstar, c, errordef, x0, lower, upper, mode, tol)


def scalar_loss(p: Quadratic) -> SimpleLoss:
    return SimpleLoss(p.f, errordef=p.errordef, gradient=p.grad, hessian=p.hess, backend="numpy")


def numeric_loss(p: Quadratic) -> SimpleLoss:
    """Numerical derivatives (the numpy backend's finite differences)."""
    return SimpleLoss(p.f, errordef=p.errordef, backend="numpy")


def lsq_loss(p: Quadratic) -> LeastSquares:
    return LeastSquares(p.residuals, jacobian=lambda x: p.L.T, backend="numpy")


def lsq_problem(p: Quadratic) -> Quadratic:
    """The same problem as a least-squares loss: errordef 1, no constant."""
    return Quadratic(p.L, p.xstar, 0.0, 1.0, p.x0, p.lower, p.upper, p.mode, p.tol)


def check(minimizer: BaseMinimizer, p: Quadratic, make_loss: Callable[[Quadratic], Any]) -> None:
    """Run and check the property (see the module docstring)."""
    try:
        result = minimizer.minimize(make_loss(p), p.params())
    except ValueError as exc:
        # only a refusal of the bounds is an acceptable error
        assert np.isfinite(p.lower).any() or np.isfinite(p.upper).any(), exc
        assert "bounds" in str(exc) and "use one of" in str(exc), exc
        assert not minimizer.SUPPORTS_BOUNDS
        return
    OUTCOMES.setdefault(minimizer.name, []).append((p.mode, result.status.name, result.valid))
    x = result.x
    assert np.all(x >= p.lower) and np.all(x <= p.upper), f"x={x} outside the bounds"
    assert isinstance(result.status, Status) and result.message
    assert result.fmin == pytest.approx(p.f(x), rel=1e-12, abs=1e-12 * (1 + abs(p.c)))
    goal = result.tol * p.errordef
    excess = p.f(x) - p.fmin()
    # rounding of f near its minimum: c plus a sum of n squares
    floor = 64 * np.finfo(float).eps * (abs(p.c) + abs(result.fmin) + 1.0)
    if result.converged:
        assert excess <= EDM_MARGIN * goal + floor, (
            f"{minimizer.name} says {result.status.name} (valid={result.valid}, EDM "
            f"{result.edm:.3g}) but f - f_min = {excess:.3g} > {EDM_MARGIN} * goal {goal:.3g}; "
            f"x={x}, x*={p.xstar}, mode={p.mode}"
        )
    else:
        assert not result.valid
        assert result.status is not Status.CONVERGED
    if result.valid:
        assert not result.params_at_limit
    if p.mode != "exclude" and result.valid:
        d = x - p.xstar  # in the metric of H: 0.5 d^T H d = f - f*
        assert 0.5 * d @ p.H @ d <= EDM_MARGIN * goal + floor


ALL_MODES = ("none", "contain", "exclude")


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_levenberg_marquardt_scalar(p: Quadratic) -> None:
    check(LevenbergMarquardt(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_levenberg_marquardt_numerical_derivatives(p: Quadratic) -> None:
    check(LevenbergMarquardt(tol=p.tol), p, numeric_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_levenberg_marquardt_least_squares(p: Quadratic) -> None:
    check(LevenbergMarquardt(tol=p.tol), lsq_problem(p), lsq_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_least_squares(p: Quadratic) -> None:
    check(ScipyLeastSquares(tol=p.tol), lsq_problem(p), lsq_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_bfgs(p: Quadratic) -> None:
    check(ScipyBFGS(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_lbfgsb(p: Quadratic) -> None:
    check(ScipyLBFGSB(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_trust_constr(p: Quadratic) -> None:
    check(ScipyTrustConstr(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_nelder_mead(p: Quadratic) -> None:
    check(ScipyNelderMead(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_scipy_powell(p: Quadratic) -> None:
    check(ScipyPowell(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(ALL_MODES))
def test_minuit(p: Quadratic) -> None:
    pytest.importorskip("iminuit")
    from zfitlite.minimize import Minuit

    check(Minuit(tol=p.tol), p, scalar_loss)


@PROFILE
@given(p=quadratics(("contain", "exclude"), finite_box=True))
def test_global_then_local(p: Quadratic) -> None:
    de = DifferentialEvolution(seed=1, options={"popsize": 5, "maxgen": 20, "polish": False})
    check(GlobalLocal(de, LevenbergMarquardt(tol=p.tol)), p, scalar_loss)


def test_the_property_rejects_a_wrong_valid_minimum() -> None:
    """The check itself fails when a minimizer claims a wrong minimum (it can fail)."""

    class Liar(LevenbergMarquardt):
        def minimize(self, loss: Any, params: Any = None, init: Any = None) -> Any:
            result = super().minimize(loss, params, init)
            result.params_spec = result.params_spec.with_values(result.x + 0.5)
            result.fmin = loss.value(result.x)
            return result

    rng = np.random.default_rng(0)
    L = np.eye(2)
    inf = np.full(2, np.inf)
    p = Quadratic(L, rng.normal(size=2), 0.0, 1.0, np.zeros(2), -inf, inf, "none")
    with pytest.raises(AssertionError, match="says CONVERGED"):
        check(Liar(), p, scalar_loss)
    check(LevenbergMarquardt(), p, scalar_loss)  # the honest one passes


def test_zz_the_properties_were_not_vacuous() -> None:
    """Runs last in this file: the minimizers did converge, so the property had teeth.

    A minimizer that returned an invalid result every time would satisfy the property
    trivially; with bounds that contain the minimum (or none) most fits must be valid.
    ``-s`` prints how the examples ended.
    """
    import collections

    for name, rows in sorted(OUTCOMES.items()):
        print(name, dict(collections.Counter(rows)))
        inside = [valid for mode, _, valid in rows if mode != "exclude"]
        if len(inside) >= 5:
            assert sum(inside) >= 0.8 * len(inside), f"{name}: {sum(inside)}/{len(inside)} valid"
