"""The EDM and the evaluator's cheap paths, against direct computation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import zfitlite
from zfitlite.criterion import bounded_edm, edm, free_mask
from zfitlite.minimize import ScipyBFGS


@pytest.mark.parametrize(
    "H",
    [
        np.array([[2.0, 1.0], [1.0, 4.0]]),
        np.array([[3.0]]),
        np.array([[2.0, 1.0 + 1e-9], [1.0, 4.0]]),  # a numerical Hessian, not quite symmetric
        np.diag([1e-8, 1e8]),
    ],
)
def test_edm_of_a_positive_definite_hessian(H):
    g = np.arange(1.0, H.shape[0] + 1)
    Hs = 0.5 * (H + H.T)
    assert edm(g, H) == pytest.approx(0.5 * g @ np.linalg.solve(Hs, g), rel=1e-12)


def test_edm_of_an_indefinite_hessian_uses_absolute_eigenvalues():
    g, H = np.array([1.0, 2.0]), np.array([[2.0, 0.0], [0.0, -4.0]])
    assert edm(g, H) == pytest.approx(0.5 * (1 / 2 + 4 / 4))


@pytest.mark.parametrize(
    ("g", "H"),
    [
        (np.array([1.0, np.nan]), np.eye(2)),
        (np.array([1.0, 1.0]), np.array([[1.0, np.inf], [0.0, 1.0]])),
        # finite entries whose sum overflows: never a false "converged" 0
        (np.array([1.0, 1.0]), np.full((2, 2), 1.5e308)),
    ],
)
def test_edm_is_inf_where_it_cannot_be_computed(g, H):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert edm(g, H) == np.inf


def test_bounded_edm_leaves_out_parameters_held_by_their_bound():
    x, g = np.array([0.0, 1.0]), np.array([2.0, 1.0])
    free = free_mask(x, g, np.array([0.0, -np.inf]), np.array([np.inf, np.inf]))
    assert free.tolist() == [False, True]
    assert bounded_edm(g, np.eye(2), free) == pytest.approx(0.5)
    assert bounded_edm(g, np.eye(2), np.zeros(2, dtype=bool)) == 0.0


def _rosenbrock_loss() -> zfitlite.SimpleLoss:
    def f(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    def grad(p):
        return np.array(
            [-2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2), 200 * (p[1] - p[0] ** 2)]
        )

    return zfitlite.SimpleLoss(f, errordef=1.0, gradient=grad, backend="numpy")


def test_the_last_value_and_gradient_are_reused_as_copies_only_at_the_same_point():
    ev = ScipyBFGS().create_evaluator(_rosenbrock_loss(), [0.0, 0.0])
    x = np.array([0.5, 0.2])
    v, g = ev.value_gradient(x)
    x[0] = 9.0  # a solver reusing its array must not change what was remembered
    v2, g2 = ev.value_gradient_reusing(np.array([0.5, 0.2]))
    assert (v2, ev.nfev) == (v, 1) and np.array_equal(g2, g) and g2 is not g
    g2[0] = 123.0  # nor a caller changing the copy it got
    assert ev.value_gradient_reusing(np.array([0.5, 0.2]))[1][0] == g[0]
    ev.value_gradient_reusing(np.array([0.5, 0.3]))  # elsewhere: a real call
    assert ev.nfev == 2
    # the budget counts value+gradient as two calls, as ncalls does
    assert ev._calls == ev.ncalls == 4


def test_a_non_finite_gradient_is_not_remembered():
    def f(p):
        return float(p @ p)

    def grad(p):
        return np.array([np.nan, 1.0]) if p[0] > 1 else 2 * p

    loss = zfitlite.SimpleLoss(f, errordef=1.0, gradient=grad, backend="numpy")
    ev = ScipyBFGS().create_evaluator(loss, [0.0, 0.0])
    ev.value_gradient(np.array([0.5, 0.5]))
    with pytest.raises(zfitlite.FailMinimizeNaN):
        for _ in range(100):  # the strategy gives up after its tolerance of non-finite values
            ev.value_gradient(np.array([2.0, 0.5]))
    assert np.array_equal(ev.last_value_gradient[0], [0.5, 0.5])


def test_the_driver_measures_the_end_point_with_the_criterion():
    """A solver that leaves the EDM to the driver is judged by the criterion's calculate."""
    calls = []

    class Strict(zfitlite.minimize.EDM):
        def calculate(self, result):
            calls.append(1)
            return 1e6 * super().calculate(result)  # a criterion much harder to meet

    def chi2(x):
        return float((x[0] - 1.0) ** 2 + 4.0 * (x[1] + 2.0) ** 2)

    chi2.errordef = 1.0
    params = {
        "a": {"value": 0.0, "lower": -5.0, "upper": 5.0},
        "b": {"value": 0.0, "lower": -5.0, "upper": 5.0},
    }
    plain = zfitlite.minimize.Direct(options={"maxfun": 300, "polish": False}).minimize(
        chi2, params
    )
    strict = zfitlite.minimize.Direct(
        options={"maxfun": 300, "polish": False}, criterion=Strict
    ).minimize(chi2, params)
    assert calls, "the criterion was never asked"
    assert strict.edm == pytest.approx(1e6 * plain.edm, rel=1e-9)
    assert plain.edm > 0 and strict.status is not zfitlite.Status.CONVERGED


def test_numpy_converter_is_refused_not_ignored():
    def chi2(x):
        return float(x @ x)

    chi2.errordef = 1.0
    lm = zfitlite.minimize.LevenbergMarquardt()
    assert lm.create_evaluator(chi2, [1.0]).value(np.array([2.0])) == 4.0
    with pytest.raises(ValueError, match="numpy_converter is not supported"):
        lm.create_evaluator(chi2, [1.0], numpy_converter=np.asarray)


def test_cholesky_through_lapack_equals_scipy() -> None:
    """The Cholesky factor and solve (the criterion's, numpy's native loops') call LAPACK
    directly: the same numbers as
    ``scipy.linalg.cho_factor`` / ``cho_solve`` bit for bit, None where the matrix is not
    positive definite or not finite, and scipy's own path for other dtypes."""
    import scipy.linalg

    from zfitlite.backends.ops import cho_solve, cholesky, numpy_ops

    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 5))
    H = A @ A.T + 0.1 * np.eye(5)
    g = rng.normal(size=5)
    c = cholesky(H)
    assert c is not None
    ref = scipy.linalg.cho_factor(H, check_finite=False)
    np.testing.assert_array_equal(np.triu(c[0]), np.triu(ref[0]))
    np.testing.assert_array_equal(cho_solve(c, g), scipy.linalg.cho_solve(ref, g))
    assert cholesky(np.diag([1.0, -1.0])) is None
    assert cholesky(np.array([[1.0, np.nan], [np.nan, 1.0]])) is None
    c32 = cholesky(H.astype(np.float32))
    assert c32 is not None and c32[0].dtype == np.float32
    x, ok = numpy_ops.cholesky_solve(H, g)
    assert ok
    np.testing.assert_array_equal(x, scipy.linalg.cho_solve(ref, g))
    x, ok = numpy_ops.cholesky_solve(np.diag([1.0, -1.0]), g[:2])
    assert not ok and not x.any()
