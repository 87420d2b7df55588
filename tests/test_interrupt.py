"""Ctrl-C during a fit: an invalid result with status INTERRUPTED at the best point so far.

The same for every minimizer family; nothing is evaluated after the interrupt, and a
second fit of the same loss with the same minimizer works and gives the right answer.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from zfitlite import LeastSquares, SimpleLoss, Status
from zfitlite.minimize import (
    SHGO,
    BasinHopping,
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
    ScipyPowell,
)

# (x0 - 1)^2 + 10 (x1 - 2)^2 + x0^4: the minimum has 2 (x0 - 1) + 4 x0^3 = 0
X0_MIN = float(np.roots([4.0, 0.0, 2.0, -2.0])[np.isreal(np.roots([4.0, 0.0, 2.0, -2.0]))].real[0])
X_MIN = np.array([X0_MIN, 2.0])
BOUNDED = {
    "a": {"value": -3.0, "lower": -5.0, "upper": 5.0},
    "b": {"value": 4.0, "lower": -5.0, "upper": 5.0},
}
UNBOUNDED = {"a": -3.0, "b": 4.0}


class Interrupting:
    """The loss above; raises KeyboardInterrupt at call number ``at`` (None: never).

    Records every value it returned, so the test knows the best point before the interrupt.
    """

    def __init__(self, at: int | None):
        self.at = at
        self.calls = 0
        self.seen: list[tuple[np.ndarray, float]] = []

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        v = float((x[0] - 1.0) ** 2 + 10.0 * (x[1] - 2.0) ** 2 + x[0] ** 4)
        self.seen.append((np.array(x, dtype=float), v))
        return v

    @staticmethod
    def gradient(x):
        return np.array([2.0 * (x[0] - 1.0) + 4.0 * x[0] ** 3, 20.0 * (x[1] - 2.0)])

    def best(self) -> tuple[np.ndarray, float]:
        return min(self.seen, key=lambda item: item[1])


FAMILIES = {
    "LevenbergMarquardt": (LevenbergMarquardt, True),
    "ScipyBFGS": (ScipyBFGS, False),
    "ScipyLBFGSB": (ScipyLBFGSB, True),
    "ScipyNelderMead": (ScipyNelderMead, True),
    "ScipyPowell": (ScipyPowell, True),
    "ScipyMinimize": (ScipyMinimize, False),
    "Minuit": (Minuit, True),
    "DifferentialEvolution": (lambda: DifferentialEvolution(seed=1), True),
    "DualAnnealing": (lambda: DualAnnealing(seed=1), True),
    "SHGO": (SHGO, True),
    "Direct": (Direct, True),
    "BasinHopping": (lambda: BasinHopping(seed=1), True),
    "GlobalLocal": (lambda: GlobalLocal(DifferentialEvolution(seed=1), LevenbergMarquardt()), True),
    "MultiStart": (lambda: MultiStart(LevenbergMarquardt(), n_starts=3, seed=1), True),
}


@pytest.mark.parametrize("at", [1, 12], ids=["first-call", "twelfth-call"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_interrupt_returns_the_best_point_and_the_next_fit_works(family, at):
    factory, bounded = FAMILIES[family]
    params = BOUNDED if bounded else UNBOUNDED
    f = Interrupting(at)
    loss = SimpleLoss(f, errordef=1.0, gradient=Interrupting.gradient, backend="numpy")
    minimizer = factory()
    result = minimizer.minimize(loss, params)
    assert f.calls == at, "nothing is evaluated after the interrupt"
    assert result.status is Status.INTERRUPTED
    assert result.valid is False and result.converged is False
    assert result.message == Status.INTERRUPTED.message
    assert math.isnan(result.edm)
    if at == 1:  # nothing finite seen yet: the start, with an infinite fmin
        np.testing.assert_array_equal(result.x, [-3.0, 4.0])
        assert result.fmin == math.inf
    else:  # the lowest finite value seen before the interrupt, and where
        best_x, best_value = f.best()
        assert result.fmin == best_value
        np.testing.assert_array_equal(result.x, best_x)
        assert result.fmin <= 16.0 + 10.0 * 4.0 + 81.0  # not worse than the start
    # a second fit of the same loss with the same minimizer: nothing was left half-updated
    f.at = None
    again = minimizer.minimize(loss, params)
    assert again.valid, (family, again.status, again.message)
    np.testing.assert_allclose(again.x, X_MIN, atol=2e-2)


class InterruptingResiduals:
    def __init__(self, at: int | None):
        self.at = at
        self.calls = 0
        self.seen: list[tuple[np.ndarray, float]] = []

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        r = np.array([x[0] - 1.0, 3.0 * (x[1] - 2.0), 0.5 * x[0] * x[1]])
        self.seen.append((np.array(x, dtype=float), float(r @ r)))
        return r

    @staticmethod
    def jacobian(x):
        return np.array([[1.0, 0.0], [0.0, 3.0], [0.5 * x[1], 0.5 * x[0]]])


@pytest.mark.parametrize(
    "minimizer", [LevenbergMarquardt, ScipyLeastSquares], ids=lambda m: m.__name__
)
def test_interrupt_in_a_least_squares_fit(minimizer):
    f = InterruptingResiduals(4)
    loss = LeastSquares(f, jacobian=InterruptingResiduals.jacobian, backend="numpy")
    m = minimizer(tol=1e-10)
    result = m.minimize(loss, [5.0, 5.0])
    assert f.calls == 4
    assert result.status is Status.INTERRUPTED and not result.valid
    best_x, best_value = min(f.seen, key=lambda item: item[1])
    assert result.fmin == best_value and best_value < 16.0 + 81.0 + 39.0625
    np.testing.assert_array_equal(result.x, best_x)
    f.at = None
    reference = minimizer(tol=1e-10).minimize(
        LeastSquares(lambda x: f(x), backend="numpy"), [5.0, 5.0]
    )
    again = m.minimize(loss, [5.0, 5.0])
    assert again.valid
    np.testing.assert_allclose(again.x, reference.x, atol=1e-6)


def test_interrupt_between_iterations_of_a_jax_fit():
    """A Ctrl-C arriving between the compiled calls of a JAX loss (here: from the callback)."""

    def loss_fn(x):
        return (x[0] - 1.0) ** 2 + 10.0 * (x[1] - 2.0) ** 2 + x[0] ** 4

    seen = []

    def callback(state):
        seen.append(state.fmin)
        if len(seen) == 3:
            raise KeyboardInterrupt

    loss = SimpleLoss(loss_fn, errordef=1.0, backend="jax")
    result = LevenbergMarquardt(callback=callback).minimize(loss, [-3.0, 4.0])
    assert result.status is Status.INTERRUPTED and not result.valid
    assert result.fmin <= min(seen) and result.fmin == pytest.approx(
        float(loss.value(result.x)), rel=1e-14
    )
    again = LevenbergMarquardt(tol=1e-10).minimize(loss, [-3.0, 4.0])
    assert again.valid
    np.testing.assert_allclose(again.x, X_MIN, atol=1e-5)


def test_interrupt_while_the_compiled_jax_solve_is_built():
    """The compiled Levenberg-Marquardt loop cannot be interrupted from Python inside XLA;
    an interrupt while it is traced gives INTERRUPTED at the start and poisons no cache."""
    state = {"armed": True}

    def residuals(x):
        if state["armed"]:
            raise KeyboardInterrupt
        return jnp.stack([x[0] - 1.0, 3.0 * (x[1] - 2.0), 0.5 * x[0] * x[1]])

    loss = LeastSquares(residuals, backend="jax")
    compiled = {"compile": "always"}  # the default runs a first fit eagerly
    result = LevenbergMarquardt(options=compiled).minimize(loss, [5.0, 5.0])
    assert result.status is Status.INTERRUPTED and not result.valid
    np.testing.assert_array_equal(result.x, [5.0, 5.0])
    state["armed"] = False
    again = LevenbergMarquardt(tol=1e-10, options=compiled).minimize(loss, [5.0, 5.0])
    assert again.valid and again.info["loop"] == "compiled"
    eager = LevenbergMarquardt(tol=1e-10).minimize(
        LeastSquares(
            lambda x: np.array([x[0] - 1.0, 3.0 * (x[1] - 2.0), 0.5 * x[0] * x[1]]), backend="numpy"
        ),
        [5.0, 5.0],
    )
    np.testing.assert_allclose(again.x, eager.x, atol=1e-6)
