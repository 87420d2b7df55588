"""Issue 15's lean hot path, in calls (cheap, numpy): the eager LM step gives the generic
step's iterates, the measured final Hessian costs n gradient calls, Minuit's Hesse is not
run twice."""

from __future__ import annotations

import collections
from typing import Any

import iminuit
import numpy as np
import pytest
import scipy.optimize

import zfitlite
from zfitlite.backends.ops import numpy_ops
from zfitlite.solvers.driver import solve
from zfitlite.solvers.lm_least_squares import LSQSolver, eager_functions
from zfitlite.testing.nist import load_all

NIST = {p.name: p for p in load_all()}


@pytest.mark.parametrize(
    ("name", "bounded"), [("Misra1a", False), ("Thurber", False), ("MGH09", True)]
)
def test_eager_lm_step_gives_the_generic_steps_iterates(name: str, bounded: bool) -> None:
    """``lsq_step_eager`` (Python scalars) and ``lsq_step`` (array ops): the same end point,
    EDM and counts, bit for bit (with a bound that becomes active in the bounded case)."""
    P = NIST[name]
    start = np.asarray(P.starts[0], dtype=np.float64)
    n = start.size
    lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    if bounded:  # halfway between the start and the answer: the fit ends on it
        mid = 0.5 * (start + np.asarray(P.certified))
        upper = np.where(P.certified > start, mid, np.inf)
        lower = np.where(P.certified <= start, mid, -np.inf)
    b = _generic_and_eager_agree(P.residuals, start, lower, upper, bounded)
    if bounded:
        assert np.any((b.x == lower) | (b.x == upper))


def _generic_and_eager_agree(
    residuals: Any, start: np.ndarray, lower: np.ndarray, upper: np.ndarray, bounded: bool
) -> Any:
    """Both loops on ``residuals``; asserts they agree bit for bit, returns the eager one's."""
    loss = zfitlite.LeastSquares(residuals, backend="numpy")
    lm = zfitlite.minimize.LevenbergMarquardt(tol=1e-10)
    outs = []
    for lean in (False, True):
        ev = lm.create_evaluator(loss, start)
        cfg = lm._lsq_settings(ev, compiled=False)
        fns = eager_functions(ev)
        solver = LSQSolver(fns, numpy_ops, lower, upper, cfg, False, bounded, lean=lean)
        outs.append(solve(solver, start))
    a, b = outs
    assert np.array_equal(a.x, b.x)
    assert (a.f, a.edm, a.nfev, a.njev, a.niter) == (b.f, b.edm, b.nfev, b.njev, b.niter)
    assert int(a.status) == int(b.status)
    return b


def test_eager_lm_step_agrees_where_the_jacobian_has_lost_rank() -> None:
    """Two parameters that only enter as a sum: the Jacobian has rank 2 of 3 at every
    step, so the eager loop's not-full-rank branches (the pseudo-inverse's zeros, the
    secular equation's masked terms) run, and still give the generic step's bits."""
    t = np.linspace(0.0, 4.0, 30)
    y = 3.0 * np.exp(-0.8 * t) + 0.01 * np.cos(7.0 * t)

    def residuals(p: np.ndarray) -> np.ndarray:
        return y - (p[0] + p[1]) * np.exp(-p[2] * t)

    # from here the Gauss-Newton step overshoots the trust region while rank is lost
    start = np.array([0.1, 0.1, 5.0])
    b = _generic_and_eager_agree(residuals, start, np.full(3, -np.inf), np.full(3, np.inf), False)
    assert b.niter > 5
    assert abs(b.x[0] + b.x[1] - 3.0) < 0.05  # the sum is determined, its parts are not


def _bowl() -> tuple:
    A = np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.5], [0.2, 0.5, 1.5]])
    c = np.array([1.0, -2.0, 0.5])
    calls: collections.Counter = collections.Counter()

    def f(p: np.ndarray) -> float:
        calls["f"] += 1
        d = p - c
        return float(d @ A @ d + 0.1 * np.sum(d**4))

    def g(p: np.ndarray) -> np.ndarray:
        calls["g"] += 1
        d = p - c
        return 2 * A @ d + 0.4 * d**3

    return f, g, calls


def test_measured_hessian_from_an_exact_gradient_costs_n_gradient_calls() -> None:
    f, g, calls = _bowl()
    loss = zfitlite.SimpleLoss(f, gradient=g, errordef=1.0, backend="numpy")
    ev = zfitlite.minimize.ScipyBFGS().create_evaluator(loss, np.zeros(3))
    x = np.array([0.3, -1.0, 2.0])
    v, grad = ev.value_gradient(x)
    calls.clear()
    H = ev.hessian(x, v, grad)
    assert calls == {"g": 3}
    d = x - np.array([1.0, -2.0, 0.5])
    exact = 2 * np.array([[3.0, 1.0, 0.2], [1.0, 2.0, 0.5], [0.2, 0.5, 1.5]]) + np.diag(1.2 * d**2)
    np.testing.assert_allclose(H, exact, rtol=1e-6)


def test_scipy_bfgs_calls_beyond_scipys() -> None:
    """scipy's BFGS calls, plus the measured Hessian at its answer (3 gradients) and one
    Newton finish step (a value, a value+gradient, 3 gradients): 16 + 21 against 14 + 14
    (was 16 + 39 with a Richardson Hessian of 12 gradient calls each)."""
    f, g, calls = _bowl()
    x0 = np.array([3.0, 2.0, -1.0])
    loss = zfitlite.SimpleLoss(f, gradient=g, errordef=1.0, backend="numpy")
    result = zfitlite.minimize.ScipyBFGS().minimize(loss, x0)
    ours = dict(calls)
    calls.clear()
    scipy.optimize.minimize(f, x0, jac=g, method="BFGS")
    assert result.valid
    assert ours == {"f": calls["f"] + 2, "g": calls["g"] + 3 + 1 + 3}


def test_minuit_does_not_run_hesse_twice() -> None:
    """Migrad's own final Hesse is accurate here: the wrapper's Minuit makes exactly plain
    Migrad's calls (the measured EDM and the Newton finish go through the evaluator)."""
    P = NIST["Misra1a"]

    def chi2(b: np.ndarray) -> float:
        r = P.residuals(b)
        return float(r @ r)

    m = iminuit.Minuit(chi2, np.array(P.starts[0], dtype=np.float64))
    m.errordef = 1.0
    m.migrad()
    loss = zfitlite.SimpleLoss(chi2, errordef=1.0, backend="numpy")
    result = zfitlite.minimize.Minuit().minimize(loss, P.starts[0])
    assert result.valid
    assert result.info["minuit"]["nfcn"] == m.nfcn
    assert result.info["minuit"]["has_accurate_covar"]


def test_bfgs_round_ends_when_the_loss_stalls_at_rounding(monkeypatch) -> None:
    """A loss near 2e6 whose value carries a unit or two of rounding in its last place and
    whose gradient carries 1e-3 of noise (as an NLL of 10^6 events does): scipy's
    ``gtol`` (1e-5) is out of reach, and its line search used to shrink its step for
    evaluation after evaluation; the round now ends after five evaluations at rounding
    level, at the best point, and the measured EDM there is far below the goal."""
    import zfitlite.solvers._scipy_common as common

    A = 1e6 * np.array([[2.0, 0.3], [0.3, 1.0]])
    c = np.array([1.0, -2.0])
    calls: collections.Counter = collections.Counter()

    def bits(x: np.ndarray) -> np.ndarray:
        return np.frombuffer(x.tobytes(), dtype=np.uint64)

    def f(x: np.ndarray) -> float:
        calls["f"] += 1
        d = x - c
        ulps = int(bits(x).sum() % np.uint64(3))  # rounding that depends on the point
        return 2e6 + 0.5 * d @ A @ d + ulps * float(np.spacing(2e6))

    def g(x: np.ndarray) -> np.ndarray:
        calls["g"] += 1
        noise = (bits(x) * np.uint64(2654435761) % np.uint64(1000)).astype(float) / 500.0 - 1.0
        return A @ (x - c) + 1e-3 * noise

    loss = zfitlite.SimpleLoss(f, gradient=g, hessian=lambda x: A, errordef=0.5, backend="numpy")
    start = np.array([1.01, -2.01])
    stalled = zfitlite.minimize.ScipyBFGS().minimize(loss, start)
    guarded = dict(calls)
    monkeypatch.setattr(common, "STALL_EVALUATIONS", 10**9)  # the guard off
    calls.clear()
    unguarded = zfitlite.minimize.ScipyBFGS().minimize(loss, start)
    assert stalled.valid and unguarded.valid
    assert "last place" in stalled.info["scipy_message"]
    assert guarded["g"] < unguarded.info["ngrad"] == calls["g"]  # 11 against 22 here
    np.testing.assert_allclose(stalled.x, c, atol=1e-8)  # errors are ~1e-3
    assert stalled.edm < 1e-9 < stalled.criterion.goal


def test_numpy_residual_jacobian_is_central_and_geodesic_asks_for_the_extrapolated_one() -> None:
    """Without a user Jacobian, numpy least squares difference the residuals centrally (2
    calls per parameter, ~1e-10 relative), half the Richardson-extrapolated Jacobian's
    calls; geodesic acceleration, whose second difference divides the Jacobian's error by
    its step, gets the extrapolated one (4 calls per parameter)."""
    P = NIST["Misra1a"]
    calls = collections.Counter()

    def residuals(b: np.ndarray) -> np.ndarray:
        calls["r"] += 1
        return P.residuals(b)

    loss = zfitlite.LeastSquares(residuals, backend="numpy")
    n = 2
    plain = zfitlite.minimize.LevenbergMarquardt(tol=1e-10).minimize(loss, P.starts[0])
    assert plain.valid and plain.info["ncalls"] == calls["r"]
    assert calls["r"] == plain.info["nres"] + 2 * n * plain.info["njac"]
    calls.clear()
    lm = zfitlite.minimize.LevenbergMarquardt(tol=1e-10, options={"geodesic": True})
    geodesic = lm.minimize(loss, P.starts[0])
    assert geodesic.valid
    assert calls["r"] == geodesic.info["nres"] + 4 * n * geodesic.info["njac"]
    for result in (plain, geodesic):
        np.testing.assert_allclose(result.x, P.certified, rtol=1e-7)
    # the two Jacobians against the analytic one of b1 (1 - exp(-b2 x))
    ev = zfitlite.minimize.LevenbergMarquardt().create_evaluator(loss, P.starts[0])
    b = np.asarray(P.certified, dtype=np.float64)
    e = np.exp(-b[1] * P.x)
    exact = -np.column_stack([1.0 - e, b[0] * P.x * e])
    for precise, rtol in ((False, 1e-8), (True, 1e-10)):
        np.testing.assert_allclose(ev.jacobian(b, precise), exact, rtol=rtol, atol=0)


def test_numpy_svd_goes_to_lapack_and_falls_back_to_numpy() -> None:
    """The eager loop's SVD (LAPACK's dgesdd straight) equals ``numpy.linalg.svd``; what
    LAPACK refuses (a NaN) gets numpy's own error, other dtypes numpy's own answer."""
    A = np.random.default_rng(3).normal(size=(14, 2))
    for ours, theirs in zip(numpy_ops.svd(A), np.linalg.svd(A, full_matrices=False)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15)
    bad = A.copy()
    bad[0, 0] = np.nan
    with pytest.raises(np.linalg.LinAlgError):
        numpy_ops.svd(bad)
    s32 = numpy_ops.svd(A.astype(np.float32))[1]
    assert s32.dtype == np.float32
    np.testing.assert_allclose(s32, np.linalg.svd(A, compute_uv=False), rtol=1e-5)


def test_per_fit_objects_keep_their_attributes_in_a_shared_key_table() -> None:
    """CPython (3.11 here) keeps the attributes of an instance inline, with keys shared
    by the class, only up to 30 of them; the 30th attribute makes every new instance copy
    its attributes into a dict of its own (about twice the cost to build, and slower
    attribute reads on every call). The objects made once per fit stay below that."""
    P = NIST["Misra1a"]
    loss = zfitlite.LeastSquares(P.residuals, backend="numpy")
    lm = zfitlite.minimize.LevenbergMarquardt(tol=1e-10)
    result = lm.minimize(loss, P.starts[0])
    evaluator = lm.create_evaluator(loss, P.starts[0])
    for obj in (evaluator, result, lm, loss, evaluator.compiled, result.params_spec):
        assert len(vars(obj)) < 30, type(obj).__name__
