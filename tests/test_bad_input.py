"""The catalogue of bad inputs: one case per line of issue 7, each with its exact error.

Every case asserts the exception type and a message that names both the problem and the
fix (or an invalid ``FitResult`` with a specific status), across the minimizers and the
backends where the case makes sense. Loss-side cases run on numpy and JAX losses, two of
them on TensorFlow too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import pytest

import zfitlite
from zfitlite import FailMinimizeNaN, FitResult, SimpleLoss, Status
from zfitlite.evaluator import LossEvaluationError
from zfitlite.minimize import (
    SHGO,
    BasinHopping,
    DefaultToyStrategy,
    DifferentialEvolution,
    Direct,
    DualAnnealing,
    GlobalLocal,
    LevenbergMarquardt,
    Minuit,
    MultiStart,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyLeastSquares,
    ScipyMinimize,
    ScipyNelderMead,
)

BOUNDED = {
    "p0": {"value": 0.5, "lower": -5.0, "upper": 5.0},
    "p1": {"value": 0.5, "lower": -5.0, "upper": 5.0},
}
UNBOUNDED = [0.5, 0.5]

#: (name, factory, takes bounds): the local, Minuit and global families.
FITTERS: list[tuple[str, Callable, bool]] = [
    ("LevenbergMarquardt", LevenbergMarquardt, True),
    ("ScipyBFGS", ScipyBFGS, False),
    ("ScipyLBFGSB", ScipyLBFGSB, True),
    ("ScipyNelderMead", ScipyNelderMead, True),
    ("Minuit", Minuit, True),
    ("DifferentialEvolution", lambda **kw: DifferentialEvolution(seed=1, **kw), True),
]
#: minimizers that use the gradient the loss provides
GRADIENT_FITTERS = [
    f for f in FITTERS if f[0] in ("LevenbergMarquardt", "ScipyBFGS", "ScipyLBFGSB", "Minuit")
]
ALL_CLASSES = (
    LevenbergMarquardt,
    ScipyBFGS,
    ScipyLBFGSB,
    ScipyNelderMead,
    ScipyMinimize,
    ScipyLeastSquares,
    Minuit,
    DifferentialEvolution,
    DualAnnealing,
    SHGO,
    Direct,
    BasinHopping,
)
GLOBALS = (DifferentialEvolution, DualAnnealing, SHGO, Direct, BasinHopping)
XP = {"numpy": np, "jax": jnp}
AT_START = r"at x=\[0\.5 0\.5\]"


def quadratic(x):
    return (x[0] - 1.0) ** 2 + (x[1] - 2.0) ** 2


def _fit(factory: Callable, bounded: bool, loss, **kwargs) -> FitResult:
    return factory(**kwargs).minimize(loss, BOUNDED if bounded else UNBOUNDED)


def _each_fit(make_loss: Callable[[str], object], exc: type, match: str, *, toy_status=None):
    """Every fitter on every backend raises ``exc`` matching ``match``; with
    DefaultToyStrategy the fit gives an invalid result with ``toy_status`` instead."""
    for backend in ("numpy", "jax"):
        for name, factory, bounded in FITTERS:
            with pytest.raises(exc, match=match) as info:
                _fit(factory, bounded, make_loss(backend))
            assert info.value.param_names == ("p0", "p1"), name
            if toy_status is not None:
                result = _fit(factory, bounded, make_loss(backend), strategy=DefaultToyStrategy())
                assert isinstance(result, FitResult), name
                assert result.valid is False and result.status is toy_status, (name, backend)
                assert result.message.startswith(toy_status.message), name
                np.testing.assert_array_equal(result.x, [0.5, 0.5])
    return info


# -- the cases, one per line of the catalogue -------------------------------------------


def no_errordef():
    def nll(x):
        return quadratic(x)

    fix = r"has no errordef: set it on the function, e.g. `loss.errordef = 0.5`"
    for _name, factory, bounded in FITTERS:
        with pytest.raises(ValueError, match=rf"loss 'nll' {fix}"):
            _fit(factory, bounded, nll)
    with pytest.raises(ValueError, match=rf"loss 'nll' {fix}.*SimpleLoss\(func, errordef=0\.5\)"):
        SimpleLoss(nll)


def _nonfinite(value: float):
    def check():
        def make(backend):
            xp = XP[backend]
            return SimpleLoss(lambda x: xp.sum(x) * 0.0 + value, errordef=1.0, backend=backend)

        info = _each_fit(
            make,
            FailMinimizeNaN,
            rf"^the loss's value was not finite \(at the start point; last {AT_START}\)\. "
            r"Check the loss's domain, add bounds, or use PushbackStrategy\(nan_tolerance=\.\.\.\) "
            r"or DefaultToyStrategy to get an invalid result instead of this error$",
            toy_status=Status.NONFINITE,
        )
        assert info.value.best_x is None and info.value.best_value == math.inf

    return check


def loss_nan_tensorflow():
    _nonfinite(float("nan"))()
    tf = pytest.importorskip("tensorflow")
    loss = SimpleLoss(lambda x: tf.reduce_sum(x) * np.nan, errordef=1.0, backend="tensorflow")
    with pytest.raises(FailMinimizeNaN, match=rf"not finite \(at the start point; last {AT_START}"):
        LevenbergMarquardt().minimize(loss, BOUNDED)
    result = LevenbergMarquardt(strategy=DefaultToyStrategy()).minimize(loss, BOUNDED)
    assert result.status is Status.NONFINITE and not result.valid


def loss_vector():
    def make(backend):
        return SimpleLoss(lambda x: x**2, errordef=1.0, backend=backend)

    _each_fit(
        make,
        LossEvaluationError,
        r"^the loss returned an array of shape \(2,\).* where a scalar is due; return a single "
        r"number, e.g\. the sum \(for a vector of residuals use LeastSquares\)",
    )


def loss_complex():
    def make(backend):
        return SimpleLoss(lambda x: x[0] ** 2 + x[1] + 1j, errordef=1.0, backend=backend)

    _each_fit(
        make,
        LossEvaluationError,
        r"^the loss returned a complex value .*; it must be real: return e\.g\. the squared "
        r"modulus abs\(z\)\*\*2, or z\.real",
    )


def loss_raises():
    def boom(x):
        raise RuntimeError("boom: the model diverged")

    info = _each_fit(
        lambda backend: SimpleLoss(boom, errordef=1.0, backend=backend),
        LossEvaluationError,
        rf"^the loss raised RuntimeError while computing its value.* {AT_START}: boom: the model "
        r"diverged; make the loss return a number for every x the minimizer may try \(bounds "
        r"keep it inside its domain\), or use DefaultToyStrategy to get an invalid result with "
        r"status LOSS_RAISED instead of this error$",
        toy_status=Status.LOSS_RAISED,
    )
    assert isinstance(info.value.__cause__, RuntimeError)  # the original is chained
    toy = LevenbergMarquardt(strategy=DefaultToyStrategy()).minimize(
        SimpleLoss(boom, errordef=1.0, backend="numpy"), BOUNDED
    )
    assert "boom: the model diverged" in toy.message

    # JAX cannot trace Python control flow on the parameters: wrapped, with the fix
    def branchy(x):
        return x[0] ** 2 if x[0] > 0 else x[1] ** 2

    for name, factory, bounded in FITTERS:
        with pytest.raises(
            LossEvaluationError,
            match=r"the loss raised TracerBoolConversionError while computing its value.* "
            r"JAX could not trace the loss .* write it with jax\.numpy \(jnp\.where instead of "
            r"if\), or create it with SimpleLoss\(func, errordef=\.\.\., backend='numpy'\)",
        ) as jinfo:
            _fit(factory, bounded, SimpleLoss(branchy, errordef=1.0, backend="jax"))
        assert type(jinfo.value.__cause__).__name__ == "TracerBoolConversionError", name

    # a least-squares loss on the compiled JAX Levenberg-Marquardt loop
    with pytest.raises(
        LossEvaluationError, match=r"^the residuals are complex \(complex128\); they must be real"
    ):
        LevenbergMarquardt().minimize(
            zfitlite.LeastSquares(lambda x: x + 1j, backend="jax"), [1.0, 1.0]
        )

    tf = pytest.importorskip("tensorflow")

    def tf_oob(x):
        return tf.reduce_sum(x**2) + tf.constant([1.0, 2.0], tf.float64)[5]

    with pytest.raises(
        LossEvaluationError,
        match=r"^the loss raised ValueError while computing its value.* TensorFlow could not "
        r"build or run the loss's graph: check that the function runs eagerly on a tf\.float64 "
        r"tensor of shape \(2,\), or create it with backend='numpy'$",
    ):
        LevenbergMarquardt().minimize(
            SimpleLoss(tf_oob, errordef=1.0, backend="tensorflow"), BOUNDED
        )


def _bad_start(value: float):
    def check():
        for _name, factory, bounded in FITTERS:
            params = {"a": {"value": value, "lower": -5.0, "upper": 5.0}, "b": 0.5}
            if not bounded:
                params = {"a": value, "b": 0.5}
            with pytest.raises(
                ValueError,
                match=rf"^parameter 'a' has a non-finite start value {value}; give a finite number$",
            ):
                factory().minimize(zfitlite.SimpleLoss(quadratic, errordef=1.0), params)
            with pytest.raises(
                ValueError, match=rf"parameter 'p1' has a non-finite start value {value}"
            ):
                factory().minimize(zfitlite.SimpleLoss(quadratic, errordef=1.0), [0.5, value])

    return check


def start_outside_bounds():
    params = {
        "a": {"value": 3.0, "lower": 0.0, "upper": 1.0},
        "b": {"value": 0.5, "lower": 0.0, "upper": 1.0},
    }
    for _name, factory, _bounded in FITTERS:
        with pytest.raises(
            ValueError,
            match=r"^parameter 'a' starts at 3\.0, outside its bounds \[0\.0, 1\.0\]; choose a "
            r"start value inside the bounds$",
        ):
            factory().minimize(SimpleLoss(quadratic, errordef=1.0), params)


def start_wrong_length():
    # the loss knows its two parameters: one start value is an error before any evaluation
    for _name, factory, bounded in FITTERS:
        loss = SimpleLoss(quadratic, errordef=1.0, params=BOUNDED if bounded else UNBOUNDED)
        with pytest.raises(
            ValueError,
            match=r"^the loss has 2 parameters \['p0', 'p1'\] but 1 start value\(s\) were given "
            r"\['p0'\]; give one start value per parameter, or params=None to use the loss's own$",
        ):
            factory().minimize(loss, [0.5])
    # a plain numpy loss that reads x[1] from one value: the IndexError says what to do
    for _name, factory, bounded in FITTERS:
        start = {"p0": {"value": 0.5, "lower": -5, "upper": 5}} if bounded else [0.5]
        with pytest.raises(
            LossEvaluationError,
            match=r"^the loss raised IndexError while computing its value.*: index 1 is out of "
            r"bounds.*; the loss may expect more parameters than the 1 given \['p0'\]: pass one "
            r"start value per parameter the loss reads",
        ):
            factory().minimize(SimpleLoss(quadratic, errordef=1.0, backend="numpy"), start)
    # bounds of the wrong length in the dict-of-arrays form
    with pytest.raises(
        ValueError,
        match=r"^params\['lower'\] has 3 entries but params\['value'\] has 2 values; give one "
        r"entry per parameter",
    ):
        LevenbergMarquardt().minimize(
            SimpleLoss(quadratic, errordef=1.0), {"value": [0.5, 0.5], "lower": [0, 0, 0]}
        )


def lower_gt_upper():
    for _name, factory, _bounded in FITTERS:
        with pytest.raises(
            ValueError,
            match=r"^parameter 'a' has lower bound 5\.0 > upper bound 1\.0; swap or fix them$",
        ):
            factory().minimize(
                SimpleLoss(quadratic, errordef=1.0),
                {"a": {"value": 3.0, "lower": 5.0, "upper": 1.0}, "b": 0.5},
            )


def duplicate_names():
    for _name, factory, _bounded in FITTERS:
        with pytest.raises(
            ValueError,
            match=r"^duplicate parameter name 'a': every parameter needs a unique name; rename "
            r"one of them$",
        ):
            factory().minimize(
                SimpleLoss(quadratic, errordef=1.0), {"value": [0.5, 0.5], "name": ["a", "a"]}
            )


def empty_params():
    for _name, factory, _bounded in FITTERS:
        loss = SimpleLoss(quadratic, errordef=1.0)
        with pytest.raises(
            ValueError,
            match=r"^the parameter list is empty: give at least one start value, e\.g\. params=\[1\.0\]$",
        ):
            factory().minimize(loss, [])
        with pytest.raises(
            ValueError, match=r"^the parameter dict is empty: give at least one parameter, e\.g\."
        ):
            factory().minimize(loss, {})


def gradient_wrong_shape():
    for backend in ("numpy", "jax"):
        xp = XP[backend]
        loss = SimpleLoss(
            quadratic, errordef=1.0, gradient=lambda x, xp=xp: xp.zeros(3), backend=backend
        )
        for _name, factory, bounded in GRADIENT_FITTERS:
            with pytest.raises(
                LossEvaluationError,
                match=r"^the loss's gradient has shape \(3,\), expected \(2,\), at x=\[.*\]; the "
                r"gradient function must return shape \(2,\), one entry per parameter "
                r"\['p0', 'p1'\] in that order$",
            ):
                _fit(factory, bounded, loss)


def _bad_maxiter(value: int):
    def check():
        for cls in ALL_CLASSES:
            with pytest.raises(
                ValueError,
                match=rf"^maxiter must be a positive integer or 'auto', got {value}; leave it None "
                r"for the default \('auto': 5000 \+ 1000 \* n_params evaluations\)$",
            ):
                cls(maxiter=value)

    return check


def _bad_tol(value: float):
    def check():
        for cls in ALL_CLASSES:
            with pytest.raises(
                ValueError,
                match=rf"^tol must be a finite number > 0, got {float(value)}; the default is 0\.001$",
            ):
                cls(tol=value)

    return check


def unknown_option():
    for cls in ALL_CLASSES:
        if cls is ScipyMinimize:
            continue  # takes scipy's options: checked at the fit, below
        with pytest.raises(
            ValueError,
            match=rf"^{cls.__name__}: unknown option\(s\) \['gtoll'\]; check the spelling, allowed: \[",
        ):
            cls(options={"gtoll": 1e-5})
    f = SimpleLoss(quadratic, errordef=1.0)
    with pytest.raises(
        ValueError,
        match=r"^ScipyMinimize\(method='BFGS'\): Unknown solver options: gtoll; check the spelling, "
        r"the options are those of scipy\.optimize\.show_options\('minimize', 'BFGS'\)$",
    ):
        ScipyMinimize(options={"gtoll": 1e-5}).minimize(f, UNBOUNDED)
    ok = ScipyMinimize(options={"gtol": 1e-8}).minimize(f, UNBOUNDED)
    assert ok.valid
    np.testing.assert_allclose(ok.x, [1.0, 2.0], atol=1e-6)


def _unpacking_nll(p):
    mu, sigma = p
    return (mu - 1.0) ** 2 + (sigma - 2.0) ** 2


def start_count_unpacked():
    """Three start values for ``mu, sigma = p``: the hint names the parameter count."""
    for backend in ("numpy", "jax"):
        loss = SimpleLoss(_unpacking_nll, errordef=1.0, backend=backend)
        for x0, given in (
            ([1.0, 2.0, 3.0], "3 start values were given \\['p0', 'p1', 'p2'\\]"),
            ([1.0], "1 start value were given \\['p0'\\]"),
        ):
            with pytest.raises(
                LossEvaluationError,
                match=rf"values to unpack \(expected 2.*\); the loss unpacks 2 parameters but "
                rf"{given}: pass exactly one start value per parameter the loss reads \(2 here\)$",
            ) as info:
                LevenbergMarquardt().minimize(loss, x0)
            assert "make the loss return a number" not in str(info.value)
    # the right count fits
    ok = LevenbergMarquardt(tol=1e-10).minimize(
        SimpleLoss(_unpacking_nll, errordef=1.0), [0.0, 0.0]
    )
    np.testing.assert_allclose(ok.x, [1.0, 2.0], atol=1e-6)


def model_argument_order():
    """``from_data`` with the model written ``model(p, x)``: the hint names the order."""
    x = np.linspace(0.0, 1.0, 20)
    y = 2.0 * x + 1.0

    def wrong(p, x):
        return p[0] * x + p[1]

    for backend in ("numpy", "jax"):
        loss = zfitlite.LeastSquares.from_data(wrong, x, y, backend=backend)
        for minimizer in (LevenbergMarquardt(), ScipyLeastSquares()):
            with pytest.raises(
                LossEvaluationError,
                # (the compiled path pads the 20 points to a bucket of 24, masked)
                match=r"(\((20|24),\),? \(2,\)).*; an array of the 2 parameters met the 20 data "
                r"points: LeastSquares\.from_data calls model\(x, p\), data first; a model "
                r"written model\(p, x\) must swap its arguments",
            ):
                minimizer.minimize(loss, [1.0, 1.0])
        right = zfitlite.LeastSquares.from_data(lambda x, p: wrong(p, x), x, y, backend=backend)
        np.testing.assert_allclose(LevenbergMarquardt().minimize(right, [1.0, 1.0]).x, [2.0, 1.0])
    # a plain loss whose arrays do not broadcast with the parameters gets the generic hint
    with pytest.raises(LossEvaluationError, match=r"check the order of the function's arguments"):
        LevenbergMarquardt().minimize(
            SimpleLoss(lambda p: float(np.sum((y - p) ** 2)), errordef=1.0, backend="numpy"),
            [1.0, 1.0],
        )


def global_without_bounds():
    loss = SimpleLoss(quadratic, errordef=1.0)
    half = {"p0": {"value": 0.5, "lower": -5.0, "upper": 5.0}, "p1": 0.5}
    for cls in GLOBALS:
        for params, missing in ((UNBOUNDED, r"\['p0', 'p1'\]"), (half, r"\['p1'\]")):
            with pytest.raises(
                ValueError,
                match=rf"^{cls.__name__} is a global minimizer and needs finite lower and upper "
                rf"bounds on every parameter; missing for {missing}\. Give them, e\.g\. params=",
            ):
                cls().minimize(loss, params)
        with pytest.raises(ValueError, match=r"needs finite lower and upper bounds.*Give them"):
            GlobalLocal(cls()).minimize(loss, UNBOUNDED)
    # the list of minimizers that honour bounds names real minimizers only
    with pytest.raises(ValueError, match=r"use one that can \(BasinHopping, ") as info:
        GlobalLocal(DifferentialEvolution(), ScipyBFGS()).minimize(loss, BOUNDED)
    assert "Base" not in str(info.value)
    # MultiStart is not a global minimizer: it draws around unbounded starts
    result = MultiStart(LevenbergMarquardt(tol=1e-10), n_starts=2, seed=1).minimize(loss, UNBOUNDED)
    assert result.valid
    np.testing.assert_allclose(result.x, [1.0, 2.0], atol=1e-6)


CASES = [
    pytest.param(no_errordef, id="no-errordef"),
    pytest.param(loss_nan_tensorflow, id="loss-nan"),
    pytest.param(_nonfinite(float("inf")), id="loss-inf"),
    pytest.param(loss_vector, id="loss-vector"),
    pytest.param(loss_complex, id="loss-complex"),
    pytest.param(loss_raises, id="loss-raises"),
    pytest.param(_bad_start(float("nan")), id="start-nan"),
    pytest.param(_bad_start(float("inf")), id="start-inf"),
    pytest.param(start_outside_bounds, id="start-outside-bounds"),
    pytest.param(start_wrong_length, id="start-wrong-length"),
    pytest.param(start_count_unpacked, id="start-count-unpacked"),
    pytest.param(model_argument_order, id="model-argument-order"),
    pytest.param(lower_gt_upper, id="lower-gt-upper"),
    pytest.param(duplicate_names, id="duplicate-names"),
    pytest.param(empty_params, id="empty-params"),
    pytest.param(gradient_wrong_shape, id="gradient-wrong-shape"),
    pytest.param(_bad_maxiter(0), id="maxiter-zero"),
    pytest.param(_bad_maxiter(-3), id="maxiter-negative"),
    pytest.param(_bad_tol(0.0), id="tol-zero"),
    pytest.param(_bad_tol(-1e-3), id="tol-negative"),
    pytest.param(unknown_option, id="unknown-option"),
    pytest.param(global_without_bounds, id="global-without-bounds"),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case):
    """Each line of the catalogue gives its precise error (see the case functions)."""
    case()
