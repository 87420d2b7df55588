"""Rerun a wrapped solver until *our* EDM goal holds: the one rounds loop.

The scipy wrappers (:class:`~zfitlite.solvers._scipy_common.ScipyRoundsMinimizer`) and
:class:`~zfitlite.solvers.minuit.Minuit` own their inner loops, but not the question
"converged?": after each run (a *round*) the end point is measured with the criterion's
EDM (:func:`zfitlite.criterion.measure`), and when it misses the goal the solver runs
again with tightened tolerances (:func:`tighten`). :func:`run_rounds` is that loop,
written once.

Stopping follows :mod:`zfitlite.criterion`'s rule: a round ends the fit as converged when
the EDM is below the goal *and* the point is numerically settled (``settled``). A round
after one that reached the goal only *polishes*: if it fails (a linear-algebra error, a
non-finite loss, the call budget, a ``halt``) or ends no better, the fit is converged at
the last point. On the last round, or when stuck, ``EDM < goal`` alone counts as
converged (the result then checks it is trustworthy, :func:`zfitlite.criterion.trustworthy`).

**Newton finish** (:func:`newton_finish`): a wrapped method can stall below the goal
without reaching the numerically settled point (Migrad returning the same point round
after round, Nelder-Mead's next round spending its budget and ending no better). When a
round ends below the goal but not settled (before running the method again), and when the
loop ends as converged but not settled, the loop takes Newton steps from that point with
the gradient and Hessian the measure already holds (on the positive-definite part of the
Hessian, over the parameters not held by a bound, clipped into the box): a step is kept
only where the loss decreases (halving it up to :data:`FINISH_HALVINGS` times; a
non-finite trial is rejected), the new point is measured, and this repeats up to
:data:`FINISH_STEPS` times while the point improves and is not settled; settled, the fit
is converged without another round. With an exact Hessian this converges quadratically (Hahn1
with Minuit: 3 correct digits -> 10). Every trial goes through the evaluator (counted,
within ``maxiter``; a spent budget ends the finish at the last accepted point).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..criterion import EPS, FTOL_REL, Measure, newton_step
from ..exceptions import FailMinimizeNaN, MaximumIterationReached
from ..status import Status

__all__ = [
    "FINISH_HALVINGS",
    "FINISH_STEPS",
    "Rounds",
    "newton_finish",
    "round_end",
    "run_rounds",
    "tighten",
]

#: At most this many Newton steps in :func:`newton_finish`.
FINISH_STEPS = 5
#: A rejected Newton step is halved at most this many times.
FINISH_HALVINGS = 4


def round_end(edm: float, goal: float) -> str:
    """How a round ended, for the progress lines: above the goal, or below it but not yet
    numerically settled (why the rounds go on)."""
    if edm < goal:
        return f"EDM {edm:.3g} < goal {goal:.3g} but not numerically settled"
    return f"EDM {edm:.3g} > goal {goal:.3g}"


def tighten(
    opts: Mapping[str, Any],
    kinds: Mapping[str, str],
    m: Measure,
    floor: float | Mapping[str, float] = 0.0,
) -> dict[str, Any]:
    """Tolerances for the next round: at least ten times smaller, more when the EDM is far off.

    Parameters
    ----------
    opts : dict
        The options of the round that just ended.
    kinds : dict
        ``{option: kind}`` with kind one of ``"x"``, ``"grad"``, ``"frel"``, ``"fabs"``.
        Options that are None or not positive (scipy's "automatic") are left alone.
    m : Measure
        The EDM, gradient and loss at the end of the round.
    floor : float or dict
        No tolerance goes below this (``least_squares`` refuses tolerances below eps);
        a dict gives a floor per option (default 0).

    Below the goal (statistically converged, not yet settled) the aim is
    ``max(FTOL_REL |f|, eps^2 goal)``: the numerically settled point.
    """
    goal = m.goal
    if m.edm < goal:  # statistically converged, not yet settled: aim at FTOL_REL |f|
        goal = max(FTOL_REL * abs(m.f), EPS * EPS * goal)
    ratio = 0.1 * goal / m.edm if np.isfinite(m.edm) and m.edm > 0 else 0.0
    new = dict(opts)
    for key, kind in kinds.items():
        old = opts.get(key)
        if old is None or not np.isfinite(old) or old <= 0:
            continue
        if kind == "x":
            target = old * float(np.clip(np.sqrt(ratio), 1e-3, 0.1))
        elif kind == "grad":
            target = m.gnorm * np.sqrt(ratio)
        elif kind == "frel":
            target = max(0.01 * goal / max(abs(m.f), 1.0), EPS)
        elif kind == "fabs":
            target = max(0.01 * goal, EPS * abs(m.f))
        else:  # pragma: no cover - the table is checked at import
            raise ValueError(f"unknown tolerance kind {kind!r}")
        low = floor.get(key, 0.0) if isinstance(floor, Mapping) else floor
        new[key] = max(min(0.1 * old, target), low)
    return new


@dataclass
class Rounds:
    """The end of :func:`run_rounds`.

    ``status`` is CONVERGED, the status a ``halt`` hook returned, or None (the goal was
    not reached: the caller decides between NO_STEP, MAXITER and others);
    ``improved`` says whether the last round lowered the loss or the EDM.
    """

    measure: Measure
    result: Any
    rounds: int
    status: Status | None
    improved: bool


def run_rounds(
    max_rounds: int,
    run: Callable[[int, np.ndarray], tuple[Any, np.ndarray]],
    measure: Callable[[np.ndarray], Measure],
    x0: np.ndarray,
    next_round: Callable[[Any, Measure, int], None],
    halt: Callable[[Any, Measure], Status | None] | None = None,
    stuck: Callable[[Any, Measure, np.ndarray], bool] | None = None,
    report: Callable[[int, Any, Measure], None] | None = None,
    settled: Callable[[Measure], bool] | None = None,
    best: Callable[[], np.ndarray | None] | None = None,
    value: Callable[[np.ndarray], float] | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> Rounds:
    """Run rounds until the EDM goal holds, a hook halts, or the rounds are spent.

    Parameters
    ----------
    max_rounds : int
    run : callable
        ``run(round, x) -> (result, x_end)``: one run of the wrapped solver from ``x``.
    measure : callable
        ``measure(x_end) -> Measure`` (including any snapping onto active bounds).
    x0 : numpy.ndarray
        The start of the first round.
    next_round : callable
        ``next_round(result, measure, round)``: tighten the tolerances for the next round.
    halt : callable, optional
        ``halt(result, measure) -> Status or None``, asked before the goal (Minuit's call
        limit is MAXITER even where the EDM happens to be below the goal).
    stuck : callable, optional
        ``stuck(result, measure, x_start) -> bool``: a failed round that did not move
        would fail again the same way; ends the loop as not improved.
    report : callable, optional
        ``report(round, result, measure)`` after each round.
    settled : callable, optional
        ``settled(measure) -> bool``: numerically settled
        (:func:`zfitlite.criterion.settled_measure`); a round below the goal that is not
        settled goes on polishing. None: the goal alone.
    best : callable, optional
        ``best() -> x or None``: the lowest point the fit evaluated (the evaluator's
        ``best_x``). When a polishing round fails (e.g. its solver steps to NaN) after it
        got further than the last round's end, the fit ends there instead, if that point
        is measured finite, no higher and below the goal; None: the last round's end.
    value : callable, optional
        ``value(x) -> float``: the loss (the evaluator's, counted). With ``settled``, it
        enables the Newton finish (:func:`newton_finish`) on a stalled round and at a
        converged end that is not settled; None: no finish.
    bounds : (lower, upper), optional
        The box the finishing steps are clipped into.
    """

    if settled is not None:
        settled = _asked_once(settled)

    def finish(m: Measure) -> Measure:
        if value is None or settled is None or settled(m):
            return m
        return newton_finish(m, value, measure, settled, bounds)

    m: Measure | None = None
    res: Any = None
    improved = True
    status: Status | None = None
    x = x0
    round_ = 0
    for round_ in range(1, max_rounds + 1):
        # a round after EDM < goal only polishes: if it fails, the last point stands
        polishing = m is not None and m.edm < m.goal
        try:
            res_new, x_end = run(round_, x)
            m_new = measure(x_end)
        except (np.linalg.LinAlgError, FailMinimizeNaN, MaximumIterationReached):
            if polishing:
                assert m is not None
                m = _best_reached(best, measure, m)
                status = Status.CONVERGED
                break
            raise
        halted = halt(res_new, m_new) if halt is not None else None
        if (
            polishing
            and m is not None
            and (halted is not None or not (m_new.f <= m.f and m_new.edm < m_new.goal))
        ):
            status = Status.CONVERGED
            break
        res = res_new
        improved = m is None or m_new.f < m.f or m_new.edm < m.edm
        is_stuck = stuck is not None and stuck(res, m_new, x)
        x, m = m_new.x, m_new
        if report is not None:
            report(round_, res, m)
        status = halted
        if status is not None:
            break
        if m.edm < m.goal and (settled is None or settled(m)):
            status = Status.CONVERGED
            break
        if m.edm < m.goal:  # below the goal, not settled: Newton finish before another round
            m = finish(m)
            x = m.x
            if settled is not None and settled(m):
                status = Status.CONVERGED
                break
        if round_ == max_rounds or is_stuck:
            if m.edm < m.goal:  # statistically converged; the result checks it is trustworthy
                status = Status.CONVERGED
                break
            improved = improved and not is_stuck
            break
        next_round(res, m, round_)
    assert m is not None
    if status is Status.CONVERGED:
        m = finish(m)
    return Rounds(measure=m, result=res, rounds=round_, status=status, improved=improved)


def _asked_once(settled: Callable[[Measure], bool]) -> Callable[[Measure], bool]:
    """``settled`` answering again without recomputing for the measure it was last asked
    about (the loop and the Newton finish ask several times about one measure; each
    answer costs a factorisation)."""
    last: list[Any] = [None, False]

    def ask(m: Measure) -> bool:
        if last[0] is not m:
            last[0], last[1] = m, bool(settled(m))
        return last[1]

    return ask


def newton_finish(
    m: Measure,
    value: Callable[[np.ndarray], float],
    measure: Callable[[np.ndarray], Measure],
    settled: Callable[[Measure], bool],
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    steps: int | None = None,
    halvings: int | None = None,
) -> Measure:
    """Newton steps from ``m`` while they lower the loss and the point is not settled.

    The step ``-H^-1 g`` on the positive-definite part of ``m.H`` (as
    :func:`zfitlite.criterion.newton_step_rel`), over ``m.free`` (a parameter held by its
    bound stays there), clipped into ``bounds``; halved up to ``halvings`` times until
    ``value`` is lower (a non-finite or failed trial counts as not lower). The accepted
    point is measured and kept when finite, no higher and, where ``m`` was below the goal,
    still below it. Stops when a step fails, the budget is spent, or ``settled`` holds.
    ``steps``, ``halvings``: default :data:`FINISH_STEPS`, :data:`FINISH_HALVINGS`.
    """
    steps = FINISH_STEPS if steps is None else steps
    halvings = FINISH_HALVINGS if halvings is None else halvings
    for _ in range(steps):
        if m.H is None or settled(m) or not m.free.any():
            break
        free = m.free
        g, H = m.g[free], m.H[np.ix_(free, free)]
        if not (np.isfinite(g).all() and np.isfinite(H).all()) or not g.any():
            break
        h = newton_step(g, H)
        if h is None:
            break
        x_new = None
        t = 1.0
        try:
            for _ in range(halvings + 1):
                x = m.x.copy()
                x[free] += t * h
                if bounds is not None:
                    x = np.minimum(np.maximum(x, bounds[0]), bounds[1])
                if np.array_equal(x, m.x):
                    break
                f = value(x)
                if np.isfinite(f) and f < m.f:
                    x_new = x
                    break
                t *= 0.5
            if x_new is None:
                break
            m_new = measure(x_new)
        except (np.linalg.LinAlgError, FailMinimizeNaN, MaximumIterationReached):
            break
        if not (np.isfinite(m_new.f) and m_new.f <= m.f):
            break
        if m.edm < m.goal and not m_new.edm < m_new.goal:
            break
        m = m_new
    return m


def _best_reached(
    best: Callable[[], np.ndarray | None] | None,
    measure: Callable[[np.ndarray], Measure],
    m: Measure,
) -> Measure:
    """The measure at the best point a failed polishing round reached, or ``m``.

    A polishing round can get much closer before its solver fails (trust-krylov on
    Rosenbrock: from f = 5e-9 to 4e-17, then a step to NaN); the fit keeps that progress
    when the point measures finite, no higher than ``m`` and below the goal.
    """
    if best is None:
        return m
    x = best()
    if x is None or x.shape != m.x.shape or np.array_equal(x, m.x):
        return m
    try:
        m_best = measure(x)
    except (np.linalg.LinAlgError, FailMinimizeNaN, MaximumIterationReached):
        return m
    if np.isfinite(m_best.f) and m_best.f <= m.f and m_best.edm < m_best.goal:
        return m_best
    return m
