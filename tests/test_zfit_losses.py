"""zfit losses minimised by zfitlite, checked against zfit's own Minuit on the same loss.

Losses: a Gaussian ``UnbinnedNLL``, a Gaussian + exponential ``SumPDF`` ``UnbinnedNLL``,
the extended version (two yields) as ``ExtendedUnbinnedNLL``, and a binned Gaussian
``BinnedNLL``, on small seeded samples.

Reference: ``zfit.minimize.Minuit(tol=1e-8, gradient="zfit")`` and its ``hesse()``. The
exact (TensorFlow) gradient and the small ``tol`` are needed for a reference worth
comparing to: with Migrad's own numerical gradient zfit's minimum sits about 3e-4 sigma
from the true one, with the zfit gradient about 4e-5 sigma (its EDM, about 1e-9, puts
it ``sqrt(EDM / errordef)`` sigma away).

Tolerances, with what was observed when they were set:

* values: ``|x - x_ref| <= 1e-4 * max(|x_ref|, sigma)``, i.e. 1e-4 relative for the
  parameters away from zero and 1e-4 sigma for those near it (observed: at most 6e-5
  sigma and 7e-6 relative; the reference's own distance from the minimum dominates);
* Hesse errors against zfit's ``hesse(method="hesse_np")`` (its autodiff Hessian, the
  same numbers zfitlite uses): 1e-4 relative (observed at most 1.3e-5);
* Hesse errors against zfit's default ``hesse()`` (iminuit's numerical Hesse after
  Minuit): 1e-3 relative (observed up to 6e-4 on the extended fit: the difference is
  iminuit's numerical Hesse, which differs as much from zfit's own autodiff errors).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import zfitlite
from zfitlite.adapters import ZfitLossAdapter, is_zfit_loss
from zfitlite.minimize import (
    LevenbergMarquardt,
    Minuit,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyMinimize,
    ScipyNelderMead,
    ScipyNewtonCG,
    ScipyTrustConstr,
    ScipyTrustNCG,
)
from zfitlite.to_loss import as_loss

zfit = pytest.importorskip("zfit")

TOL = 1e-8
LOW, HIGH = -5.0, 5.0


def _minimizers() -> dict[str, object]:
    return {
        "LevenbergMarquardt": LevenbergMarquardt(tol=TOL),
        "ScipyBFGS": ScipyBFGS(tol=TOL),
        "ScipyLBFGSB": ScipyLBFGSB(tol=TOL),
        "ScipyTrustConstr": ScipyTrustConstr(tol=TOL),
        "ScipyNewtonCG": ScipyNewtonCG(tol=TOL),
        "ScipyTrustNCG": ScipyTrustNCG(tol=TOL),
        # default tol: at tol=1e-8 the simplex needs ~7,000 calls on the binned loss (20 s);
        # with its default it already agrees with zfit's Minuit to 1e-7
        "ScipyNelderMead": ScipyNelderMead(),
        "Minuit": Minuit(tol=TOL),
        # BFGS picked because the zfit loss has an exact gradient; scipy's default gtol
        # (1e-2) is far too loose for tol=1e-8
        "ScipyMinimize": ScipyMinimize(tol=TOL, options={"gtol": 1e-6, "maxiter": 1000}),
    }


MINIMIZERS = tuple(_minimizers())


def _sample(rng: np.random.Generator, n_sig: int, n_bkg: int) -> np.ndarray:
    sig = rng.normal(0.3, 1.1, 3 * n_sig)
    bkg = rng.exponential(3.0, 3 * n_bkg) + LOW
    sig = sig[(sig > LOW) & (sig < HIGH)][:n_sig]
    bkg = bkg[(bkg > LOW) & (bkg < HIGH)][:n_bkg]
    return np.concatenate([sig, bkg])


def _build(kind: str, limits: bool = False):
    """A zfit loss of ``kind`` on seeded data, with uniquely named parameters."""
    rng = np.random.default_rng({"gauss": 11, "sum": 12, "extended": 13, "binned": 14}[kind])
    obs = zfit.Space("x", LOW, HIGH)
    tag = f"{kind}{'_lim' if limits else ''}"
    lim = {"sigma": (0.1, 5.0), "frac": (0.0, 1.0)} if limits else {}
    mu = zfit.Parameter(f"mu_{tag}", 0.0)
    # (the binned fit starts nearer: from 1.5, Newton-CG's first step takes sigma negative)
    sigma_start = 1.2 if kind == "binned" else 1.5
    sigma = zfit.Parameter(f"sigma_{tag}", sigma_start, *lim.get("sigma", ()))
    gauss = zfit.pdf.Gauss(mu=mu, sigma=sigma, obs=obs)
    if kind == "gauss":
        data = zfit.Data.from_numpy(obs=obs, array=_sample(rng, 400, 0), name=f"data_{tag}")
        return zfit.loss.UnbinnedNLL(model=gauss, data=data)
    if kind == "binned":
        binning = obs.with_binning(30)
        data = zfit.Data.from_numpy(obs=obs, array=_sample(rng, 1000, 0), name=f"data_{tag}")
        return zfit.loss.BinnedNLL(gauss.to_binned(binning), data.to_binned(binning))
    lam = zfit.Parameter(f"lam_{tag}", -0.1)
    expo = zfit.pdf.Exponential(lam=lam, obs=obs)
    if kind == "sum":
        frac = zfit.Parameter(f"frac_{tag}", 0.5, *lim.get("frac", ()))
        model = zfit.pdf.SumPDF([gauss, expo], fracs=frac)
        data = zfit.Data.from_numpy(obs=obs, array=_sample(rng, 300, 400), name=f"data_{tag}")
        return zfit.loss.UnbinnedNLL(model=model, data=data)
    n_sig = zfit.Parameter(f"nsig_{tag}", 250.0)
    n_bkg = zfit.Parameter(f"nbkg_{tag}", 350.0)
    model = zfit.pdf.SumPDF([gauss.create_extended(n_sig), expo.create_extended(n_bkg)])
    data = zfit.Data.from_numpy(obs=obs, array=_sample(rng, 300, 400), name=f"data_{tag}")
    return zfit.loss.ExtendedUnbinnedNLL(model=model, data=data)


def _values(loss) -> np.ndarray:
    return np.array([float(p.value()) for p in loss.get_params()])


def _reset(loss, start: np.ndarray) -> None:
    zfit.param.set_values(list(loss.get_params()), start)


class Case:
    """A zfit loss, its start values and zfit Minuit's answer."""

    def __init__(self, kind: str) -> None:
        self.loss = _build(kind)
        self.params = list(self.loss.get_params())
        self.names = tuple(p.name for p in self.params)
        self.start = _values(self.loss)
        ref = zfit.minimize.Minuit(tol=TOL, gradient="zfit").minimize(self.loss)
        assert ref.valid
        ref.hesse()  # zfit's default for Minuit: iminuit's Hesse
        ref.hesse(method="hesse_np", name="hesse_np")  # zfit's autodiff Hessian
        self.values = np.array([ref.params[p]["value"] for p in self.params])
        self.err_minuit = np.array([ref.params[p]["hesse"]["error"] for p in self.params])
        self.err_np = np.array([ref.params[p]["hesse_np"]["error"] for p in self.params])
        self.fmin = float(ref.fmin)
        _reset(self.loss, self.start)


KINDS = ("gauss", "sum", "extended", "binned")
_CASES: dict[str, Case] = {}


def _case(kind: str) -> Case:
    """One :class:`Case` per kind and test session (zfit's reference fits are the cost)."""
    if kind not in _CASES:
        _CASES[kind] = Case(kind)
    return _CASES[kind]


@pytest.fixture(params=KINDS)
def case(request: pytest.FixtureRequest) -> Case:
    return _case(request.param)


#: Every minimizer on one of the four losses, every loss under two or three minimizers
#: (rotating), instead of all 36 pairs: each loss kind and each minimizer is checked (the
#: other tests of this file add LM, L-BFGS-B, trust-constr and Minuit on the bounded sum).
#: Nelder-Mead gets a two-parameter loss (a simplex on five parameters is slow).
_OWN_KINDS = {"ScipyNelderMead": ("binned",)}
PAIRS = [
    (kind, m)
    for i, m in enumerate(MINIMIZERS)
    for kind in _OWN_KINDS.get(m, (KINDS[i % len(KINDS)],))
]


@pytest.mark.parametrize(("kind", "minimizer"), PAIRS)
def test_matches_zfit_minuit(kind: str, minimizer: str) -> None:
    case = _case(kind)
    _reset(case.loss, case.start)
    result = _minimizers()[minimizer].minimize(case.loss)
    # the fit evaluates at its own points without moving the zfit parameters
    np.testing.assert_array_equal(_values(case.loss), case.start)
    assert result.valid, result.message
    assert result.names == case.names
    assert result.errordef == 0.5
    assert result.info["backend"] == "numpy"
    scale = np.maximum(np.abs(case.values), case.err_np)
    assert np.all(np.abs(result.x - case.values) <= 1e-4 * scale), (
        result.x - case.values
    ) / case.err_np
    assert result.fmin == pytest.approx(case.fmin, abs=1e-7)  # the full NLL, as zfit reports
    hesse = result.hesse()
    errors = np.array([hesse[n]["error"] for n in case.names])
    np.testing.assert_allclose(errors, case.err_np, rtol=1e-4)
    np.testing.assert_allclose(errors, case.err_minuit, rtol=1e-3)
    result.update_params()
    np.testing.assert_allclose(_values(case.loss), result.x, rtol=0, atol=0)
    _reset(case.loss, case.start)


def test_derivatives_are_zfits_exact_ones(case: Case) -> None:
    adapter = as_loss(case.loss)
    assert isinstance(adapter, ZfitLossAdapter)
    compiled = adapter.compiled(len(case.names))
    assert compiled.exact_derivatives
    x = case.values
    v, g = compiled.value_and_gradient(x)
    assert v == pytest.approx(float(case.loss.value(params=dict(zip(case.names, x)))))
    np.testing.assert_allclose(
        g, np.asarray(case.loss.gradient(paramvals=dict(zip(case.names, x)))), rtol=1e-12
    )
    H = compiled.hessian(x)
    np.testing.assert_allclose(H, H.T, rtol=1e-10)
    # the covariance is 2 * errordef * H^-1 with zfit's errordef 0.5
    np.testing.assert_allclose(np.sqrt(np.diag(np.linalg.inv(H))), case.err_np, rtol=1e-4)
    np.testing.assert_array_equal(_values(case.loss), case.start)


def test_offset_value_gives_the_same_minimum(case: Case) -> None:
    _reset(case.loss, case.start)
    adapter = ZfitLossAdapter(case.loss, full=False)
    result = LevenbergMarquardt(tol=TOL).minimize(adapter)
    assert result.valid
    scale = np.maximum(np.abs(case.values), case.err_np)
    assert np.all(np.abs(result.x - case.values) <= 1e-4 * scale)
    assert result.fmin != pytest.approx(case.fmin)  # zfit's offset-subtracted value
    _reset(case.loss, case.start)


def test_profile_errors_match_zfit_minos() -> None:
    """Asymmetric errors: zfitlite's profile likelihood against zfit's ``minuit_minos``.

    Both find where the profiled NLL rises by errordef (0.5); observed agreement 2e-5
    relative, tolerance 1e-4 (Minos stops its scans at its own tolerance).
    """
    loss = _build("gauss")
    start = _values(loss)
    ref = zfit.minimize.Minuit(tol=TOL, gradient="zfit").minimize(loss)
    minos, _ = ref.errors(method="minuit_minos")
    _reset(loss, start)
    result = LevenbergMarquardt(tol=TOL).minimize(loss)
    errors, new = result.errors()
    assert new is None
    for param, ref_err in minos.items():
        for side in ("lower", "upper"):
            assert errors[param.name][side] == pytest.approx(ref_err[side], rel=1e-4)
    np.testing.assert_array_equal(_values(loss), start)


def test_params_live_from_zfit() -> None:
    loss = _build("sum", limits=True)
    adapter = as_loss(loss)
    p = adapter.params
    assert p.names == tuple(q.name for q in loss.get_params())
    np.testing.assert_array_equal(p.values, _values(loss))
    i = p.names.index("sigma_sum_lim")
    assert (p.lower[i], p.upper[i]) == (0.1, 5.0)
    j = p.names.index("mu_sum_lim")
    assert np.isneginf(p.lower[j]) and np.isposinf(p.upper[j])
    assert np.all(p.stepsize > 0)
    zfit.param.set_values([q for q in loss.get_params() if q.name == "mu_sum_lim"], [0.25])
    assert adapter.params.values[j] == 0.25


@functools.cache
def _limited_sum() -> tuple[object, np.ndarray, np.ndarray]:
    """The bounded sum loss, its start and zfit Minuit's answer: once per session."""
    loss = _build("sum", limits=True)
    start = _values(loss)
    ref = zfit.minimize.Minuit(tol=TOL, gradient="zfit").minimize(loss)
    expected = np.array([ref.params[p]["value"] for p in loss.get_params()])
    _reset(loss, start)
    return loss, start, expected


@pytest.mark.parametrize(
    "minimizer", ["LevenbergMarquardt", "ScipyLBFGSB", "ScipyTrustConstr", "Minuit"]
)
def test_zfit_limits_become_bounds(minimizer: str) -> None:
    loss, start, expected = _limited_sum()
    _reset(loss, start)
    result = _minimizers()[minimizer].minimize(loss)
    assert result.valid, result.message
    np.testing.assert_allclose(result.x, expected, rtol=1e-4)
    assert result.params["frac_sum_lim"]["lower"] == 0.0
    assert result.params["frac_sum_lim"]["upper"] == 1.0


def test_unbounded_minimizer_refuses_zfit_limits() -> None:
    loss = _build("gauss", limits=True)
    with pytest.raises(ValueError, match="cannot honour parameter bounds"):
        ScipyBFGS().minimize(loss)


def test_explicit_params_are_matched_to_zfit_names() -> None:
    loss = _build("sum", limits=True)
    names = tuple(p.name for p in loss.get_params())
    start = _values(loss)
    # unnamed start values: taken in get_params() order, named and bounded as in zfit
    r1 = LevenbergMarquardt(tol=TOL).minimize(loss, list(start))
    assert r1.names == names
    assert r1.params["sigma_sum_lim"]["lower"] == 0.1
    # named ones in another order: reordered
    shuffled = {n: float(v) for n, v in reversed(list(zip(names, start)))}
    r2 = LevenbergMarquardt(tol=TOL).minimize(loss, shuffled)
    assert r2.names == names
    np.testing.assert_allclose(r2.x, r1.x, rtol=1e-6)
    # chaining keeps the zfit layout
    r3 = ScipyLBFGSB(tol=TOL).minimize(r1)
    assert r3.names == names and r3.valid
    np.testing.assert_array_equal(_values(loss), start)


def test_bad_explicit_params() -> None:
    loss = _build("gauss", limits=True)
    with pytest.raises(ValueError, match=r"has 2 parameter\(s\).*3 start value"):
        LevenbergMarquardt().minimize(loss, [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"unknown: \['nope'\]"):
        LevenbergMarquardt().minimize(loss, {"mu_gauss_lim": 0.0, "nope": 1.0})
    with pytest.raises(ValueError, match=r"sigma_gauss_lim.*outside its bounds"):
        LevenbergMarquardt().minimize(loss, [0.0, 9.0])


class _FakeZfitLoss:
    """Just zfit's loss interface: a quadratic in two parameters."""

    class _Param:
        def __init__(self, name: str, value: float) -> None:
            self.name = name
            self._value = value

        def value(self) -> float:
            return self._value

        def set_value(self, v: float) -> None:
            self._value = v

    def __init__(self, errordef: object = 1.0) -> None:
        if errordef is not None:
            self.errordef = errordef
        self._params = [self._Param("a", 0.0), self._Param("b", 0.0)]

    def get_params(self):
        return list(self._params)

    def _x(self, params):
        return np.array([params[p.name] for p in self._params])

    def value(self, *, params, full=None):
        x = self._x(params)
        return (x[0] - 1.0) ** 2 + 4.0 * (x[1] + 2.0) ** 2

    def gradient(self, params=None, *, paramvals):
        x = self._x(paramvals)
        return np.array([2.0 * (x[0] - 1.0), 8.0 * (x[1] + 2.0)])


def test_duck_typed_zfit_like_loss() -> None:
    fake = _FakeZfitLoss()
    assert is_zfit_loss(fake)
    result = LevenbergMarquardt(tol=1e-10).minimize(fake)
    assert result.valid
    np.testing.assert_allclose(result.x, [1.0, -2.0], atol=1e-7)
    # no hessian method: Hessian from differences of the exact gradient
    np.testing.assert_allclose(result.covariance(), np.diag([1.0, 0.25]), rtol=1e-6)
    result.update_params()
    assert [p.value() for p in fake.get_params()] == pytest.approx([1.0, -2.0])


def test_zfit_like_without_errordef() -> None:
    with pytest.raises(ValueError, match="has no errordef"):
        as_loss(_FakeZfitLoss(errordef=None))
    with pytest.raises(ValueError, match="errordef must be a finite positive number"):
        zfitlite.minimize.LevenbergMarquardt().minimize(_FakeZfitLoss(errordef=-1.0))


def test_not_zfit_like() -> None:
    with pytest.raises(TypeError, match="lacks the method"):
        ZfitLossAdapter(object())
