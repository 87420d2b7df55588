"""Global minimizers, GlobalLocal and MultiStart on classic multimodal test functions.

Every case runs on a numpy loss and on a JAX loss (the ``backend`` fixture). The known
minima are from the literature (Surjanovic & Bingham's virtual library of simulation
experiments).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import zfitlite
from zfitlite import Status
from zfitlite.minimize import (
    SHGO,
    BasinHopping,
    DifferentialEvolution,
    Direct,
    DualAnnealing,
    GlobalLocal,
    LevenbergMarquardt,
    MultiStart,
    ScipyBFGS,
)
from zfitlite.solvers import BaseGlobalMinimizer


@dataclass
class Problem:
    """A test function with its box, a start inside it and its known global minimum."""

    name: str
    loss: Any
    bounds: list[tuple[float, float]]
    fmin: float
    xmins: np.ndarray  # one row per global minimiser
    at_limit: tuple[str, ...] = ()

    @property
    def params(self) -> dict[str, dict[str, float]]:
        # a start away from the centre (the global minimum of the symmetric problems)
        return {
            f"x{i}": {"value": lo + 0.65 * (hi - lo), "lower": lo, "upper": hi}
            for i, (lo, hi) in enumerate(self.bounds)
        }

    def check(self, result: zfitlite.FitResult, xtol: float = 1e-5) -> None:
        assert result.fmin == pytest.approx(self.fmin, abs=1e-5 * max(1.0, abs(self.fmin))), result
        dist = np.min(np.max(np.abs(self.xmins - result.x), axis=1))
        assert dist < xtol, (result.x, self.xmins)
        assert result.params_at_limit == list(self.at_limit)
        # valid: converged to our EDM goal and (except where the minimum is on a bound) not at a limit
        assert result.converged, result
        assert result.valid is (not self.at_limit)


def _loss(f: Callable, xp: Any) -> zfitlite.SimpleLoss:
    return zfitlite.SimpleLoss(f, errordef=1.0, backend="numpy" if xp is np else "jax")


def rastrigin(xp: Any, n: int) -> Problem:
    def f(x):
        return 10.0 * n + xp.sum(x**2 - 10.0 * xp.cos(2 * np.pi * x))

    return Problem(f"rastrigin{n}", _loss(f, xp), [(-5.12, 5.12)] * n, 0.0, np.zeros((1, n)))


def ackley(xp: Any, n: int = 2) -> Problem:
    # Ackley's minimum is a cusp, where no gradient (and no EDM) exists; the 1e-12 rounds
    # it off within |x| ~ 1e-6 and raises the minimum from 0 to 4e-6 * e^-1 ~ 1.5e-6
    def f(x):
        r = xp.sqrt(xp.sum(x**2) / n + 1e-12)
        return -20.0 * xp.exp(-0.2 * r) - xp.exp(xp.sum(xp.cos(2 * np.pi * x)) / n) + 20.0 + np.e

    return Problem(f"ackley{n}", _loss(f, xp), [(-32.768, 32.768)] * n, 0.0, np.zeros((1, n)))


def himmelblau(xp: Any) -> Problem:
    def f(p):
        return (p[0] ** 2 + p[1] - 11) ** 2 + (p[0] + p[1] ** 2 - 7) ** 2

    minima = [[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]]
    return Problem("himmelblau", _loss(f, xp), [(-5.0, 5.0)] * 2, 0.0, np.array(minima))


def eggholder(xp: Any) -> Problem:
    def f(p):
        x, y = p[0], p[1]
        return -(y + 47) * xp.sin(xp.sqrt(xp.abs(x / 2 + y + 47))) - x * xp.sin(
            xp.sqrt(xp.abs(x - (y + 47)))
        )

    # the global minimum lies on the bound x = 512; y = 404.2319 in the literature,
    # 404.231805 to the digits our tests check
    return Problem(
        "eggholder",
        _loss(f, xp),
        [(-512.0, 512.0)] * 2,
        -959.6407,
        np.array([[512.0, 404.231805]]),
        at_limit=("x0",),
    )


_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(xp: Any) -> Problem:
    def f(x):
        return -xp.sum(_H6_ALPHA * xp.exp(-xp.sum(_H6_A * (x - _H6_P) ** 2, axis=1)))

    xmin = [[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]]
    return Problem("hartmann6", _loss(f, xp), [(0.0, 1.0)] * 6, -3.32237, np.array(xmin))


def six_hump_camel(xp: Any) -> Problem:
    def f(p):
        x, y = p[0], p[1]
        return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2

    xmins = np.array([[0.0898420131, -0.7126564030], [-0.0898420131, 0.7126564030]])
    return Problem("camel", _loss(f, xp), [(-3.0, 3.0), (-2.0, 2.0)], -1.0316284535, xmins)


PROBLEMS: dict[str, Callable[[Any], Problem]] = {
    "rastrigin2": lambda xp: rastrigin(xp, 2),
    "rastrigin5": lambda xp: rastrigin(xp, 5),
    "ackley2": ackley,
    "himmelblau": himmelblau,
    "eggholder": eggholder,
    "hartmann6": hartmann6,
    "camel": six_hump_camel,
}

# every global minimizer on at least two problems, every problem at least once
CASES = [
    ("DifferentialEvolution", "rastrigin2"),
    ("DifferentialEvolution", "hartmann6"),
    ("DifferentialEvolution", "himmelblau"),
    ("DualAnnealing", "rastrigin5"),
    ("DualAnnealing", "ackley2"),
    ("DualAnnealing", "hartmann6"),
    ("SHGO", "eggholder"),
    ("SHGO", "camel"),
    ("BasinHopping", "himmelblau"),
    ("BasinHopping", "camel"),
    ("Direct", "hartmann6"),
    ("Direct", "himmelblau"),
]
# the same checks, too slow for every run (about 40000 evaluations each): nox -s bench / -m slow
SLOW_CASES = [
    ("DifferentialEvolution", "rastrigin5"),
    ("SHGO", "hartmann6"),
    ("BasinHopping", "hartmann6"),
]
GLOBALS = {
    "DifferentialEvolution": lambda: DifferentialEvolution(seed=4),
    "DualAnnealing": lambda: DualAnnealing(seed=4),
    "SHGO": SHGO,
    "BasinHopping": lambda: BasinHopping(seed=4),
    "Direct": Direct,
}
# cheaper settings for the tests where the strength of the search is not the point
LIGHT = {
    "DifferentialEvolution": lambda: DifferentialEvolution(seed=4, options={"popsize": 8}),
    "DualAnnealing": lambda: DualAnnealing(seed=4, options={"maxgen": 200}),
    "SHGO": lambda: SHGO(options={"iters": 1}),
    "BasinHopping": lambda: BasinHopping(seed=4, options={"niter": 15}),
    "Direct": lambda: Direct(options={"maxfun": 1000}),
}


def test_cases_cover_every_global_minimizer_and_problem():
    exported = {
        name
        for name in zfitlite.minimize.__all__
        if isinstance(getattr(zfitlite.minimize, name), type)
        and issubclass(getattr(zfitlite.minimize, name), BaseGlobalMinimizer)
    }
    assert exported == set(GLOBALS)
    for name in GLOBALS:
        assert len({p for m, p in CASES if m == name}) >= 2, name
    assert {p for _, p in CASES} == set(PROBLEMS)


#: Basin hopping's default search (200 local fits) runs on JAX by default and on numpy with
#: ``-m slow`` (its numpy path is the same code; the light tests below run it on numpy).
_SLOW_ON_NUMPY = {"BasinHopping"}
BACKENDS = ("numpy", "jax") if importlib.util.find_spec("jax") else ("numpy",)


@pytest.mark.parametrize(
    ("minimizer", "problem", "backend"),
    [
        (*case, b)
        if not (b == "numpy" and case[0] in _SLOW_ON_NUMPY)
        else pytest.param(*case, b, marks=pytest.mark.slow)
        for case in CASES
        for b in BACKENDS
    ]
    + [pytest.param(*case, b, marks=pytest.mark.slow) for case in SLOW_CASES for b in BACKENDS],
)
def test_global_then_local_reaches_the_global_minimum(minimizer, problem, xp, backend):
    prob = PROBLEMS[problem](xp)
    combined = GlobalLocal(GLOBALS[minimizer](), LevenbergMarquardt(tol=1e-10))
    result = combined.minimize(prob.loss, prob.params)
    assert result.info["backend"] == backend
    prob.check(result)
    assert result.minimizer is combined
    first = result.info["global_result"]
    assert first.minimizer is combined.global_minimizer
    assert result.nfev == first.nfev + result.info["local_info"]["nfev"]
    assert result.info["global"]["fmin"] == first.info["global"]["fmin"]


@pytest.mark.parametrize("name", sorted(GLOBALS))
def test_global_result_chains_into_a_local_minimizer(name):
    prob = six_hump_camel(np)
    glob = LIGHT[name]().minimize(prob.loss, prob.params)
    # polished by default: a converged local minimum, the search's own answer in info
    assert glob.converged
    assert glob.info["global"]["polished"] is True
    assert glob.info["global"]["fmin"] >= glob.fmin
    locals_ = [LevenbergMarquardt(tol=1e-10)]
    if importlib.util.find_spec("iminuit") is not None:  # Minuit needs the iminuit extra
        locals_.append(zfitlite.minimize.Minuit(tol=1e-10))
    for local in locals_:
        for fine in (local.minimize(glob), local.minimize(prob.loss, init=glob)):
            prob.check(fine, xtol=1e-5)


def test_unpolished_result_is_honest_and_chains():
    prob = six_hump_camel(np)
    coarse = DifferentialEvolution(tol=1e-10, seed=1, options={"polish": False}).minimize(
        prob.loss, prob.params
    )
    assert coarse.info["global"]["polished"] is False
    assert coarse.x.tolist() == coarse.info["global"]["x"]
    # a population's best member is near, not at, the minimum: not converged to 1e-10
    assert coarse.status is Status.NOT_CONVERGED and not coarse.valid
    assert "chain this result" in coarse.message
    prob.check(LevenbergMarquardt(tol=1e-10).minimize(coarse))


@pytest.mark.parametrize("name", sorted(GLOBALS))
def test_deterministic_bit_for_bit(name):
    prob = himmelblau(np)
    runs = [LIGHT[name]().minimize(prob.loss, prob.params) for _ in range(2)]
    assert runs[0].x.tolist() == runs[1].x.tolist()
    assert runs[0].fmin == runs[1].fmin
    assert runs[0].info["global"] == runs[1].info["global"]
    assert runs[0].nfev == runs[1].nfev


@pytest.mark.parametrize("cls", [DifferentialEvolution, DualAnnealing, BasinHopping])
def test_seed_changes_the_search(cls):
    prob = himmelblau(np)
    options = {"niter": 15} if cls is BasinHopping else None
    a = cls(seed=1, options=options).minimize(prob.loss, prob.params).info["global"]
    b = cls(seed=2, options=options).minimize(prob.loss, prob.params).info["global"]
    assert (a["x"], a["nfev"]) != (b["x"], b["nfev"])
    assert cls().seed == 0
    assert cls(seed=None).seed is None


@pytest.mark.parametrize("seed", ["1", 1.5, -1, True])
def test_bad_seed(seed):
    with pytest.raises(TypeError, match="seed must be"):
        DifferentialEvolution(seed=seed)


def test_deterministic_methods_take_no_seed():
    for cls in (SHGO, Direct):
        with pytest.raises(TypeError):
            cls(seed=1)


@pytest.mark.parametrize("name", sorted(GLOBALS))
def test_missing_bounds_raise_with_the_fix(name):
    prob = himmelblau(np)
    half = {"p0": {"value": 1.0, "lower": -5.0}, "p1": {"value": 1.0, "lower": -5, "upper": 5}}
    for params in ([1.0, 1.0], half):
        with pytest.raises(ValueError, match=r"needs finite lower and upper bounds.*'p0'.*params="):
            GLOBALS[name]().minimize(prob.loss, params)
    with pytest.raises(ValueError, match="needs finite lower and upper bounds"):
        GlobalLocal(GLOBALS[name]()).minimize(prob.loss, [1.0, 1.0])


@pytest.mark.parametrize("name", sorted(GLOBALS))
def test_maxiter_gives_an_invalid_result(name):
    prob = himmelblau(np)
    result = type(GLOBALS[name]())(maxiter=30).minimize(prob.loss, prob.params)
    assert result.status is Status.MAXITER
    assert not result.valid
    assert result.nfev <= 30 + 1


def test_options_and_settings():
    de = DifferentialEvolution(seed=3, options={"popsize": 8})
    assert de.options["polish"] is True and de.options["popsize"] == 8
    settings = de.settings()
    assert settings["seed"] == 3 and settings["options"]["strategy"] == "rand1bin"
    with pytest.raises(ValueError, match="unknown option"):
        Direct(options={"popsize": 8})
    assert BasinHopping().settings()["options"]["niter"] == 200


def test_callback_and_verbosity(capsys):
    prob = six_hump_camel(np)
    states = []
    Direct(callback=states.append, verbosity=2).minimize(prob.loss, prob.params)
    assert states and [s.iteration for s in states] == list(range(1, len(states) + 1))
    assert all(np.isfinite(s.fmin) for s in states)
    assert states[-1].fmin <= states[0].fmin
    assert "polishing" in capsys.readouterr().out


# -- GlobalLocal ---------------------------------------------------------------------------
def test_global_local_is_a_minimizer():
    prob = six_hump_camel(np)
    combined = GlobalLocal(DifferentialEvolution(seed=2), tol=1e-9)
    assert isinstance(combined, zfitlite.minimize.BaseMinimizer)
    assert combined.local_minimizer.tol == 1e-9
    assert isinstance(combined.local_minimizer, LevenbergMarquardt)
    result = combined.minimize(prob.loss, prob.params)
    prob.check(result, xtol=1e-4)  # EDM < 1e-9: |dx| ~ sqrt(2e-9 / H) ~ 2e-5
    assert result.minimizer_info["class"] == "GlobalLocal"
    assert result.minimizer_info["global_minimizer"]["seed"] == 2
    # its result chains, and it accepts a FitResult like any minimizer
    again = combined.minimize(result)
    prob.check(again, xtol=1e-4)
    prob.check(ScipyBFGS(tol=1e-10).minimize(prob.loss, result.values, init=result))
    errors = result.hesse()
    assert all(np.isfinite(e["error"]) for e in errors.values())
    restored = zfitlite.FitResult.from_json(result.to_json())
    assert restored.x.tolist() == result.x.tolist()


def test_global_local_tol_copies_the_local_minimizer():
    local = LevenbergMarquardt(tol=1e-4)
    combined = GlobalLocal(Direct(), local, tol=1e-11)
    assert combined.local_minimizer is not local and local.tol == 1e-4
    assert combined.local_minimizer.tol == 1e-11 == combined.tol
    assert GlobalLocal(Direct(), local).local_minimizer is local


def test_combined_minimizers_reset_their_parts_caches():
    local = LevenbergMarquardt()
    combined = GlobalLocal(Direct(), local)
    multi = MultiStart(local)
    for owner in (combined, multi):
        local.cached("compiled", lambda: object())
        combined.global_minimizer.cached("compiled", lambda: object())
        assert local.cache_size == 1
        owner.reset_cache_self()
        assert local.cache_size == 0
        assert combined.global_minimizer.cache_size == (0 if owner is combined else 1)


def test_global_local_argument_errors():
    with pytest.raises(ValueError, match=r"cannot honour the bounds.*LevenbergMarquardt"):
        GlobalLocal(Direct(), ScipyBFGS())
    with pytest.raises(TypeError, match="instance"):
        GlobalLocal(Direct, LevenbergMarquardt())
    with pytest.raises(TypeError, match="minimizer"):
        GlobalLocal(Direct(), "LevenbergMarquardt")


# -- MultiStart ----------------------------------------------------------------------------
def _double_well(xp: Any = np) -> Any:
    # local minimum near +0.97, global one near -1.02
    def f(x):
        return (x[0] ** 2 - 1) ** 2 + 0.2 * x[0] + (x[1] - 0.5) ** 2

    return _loss(f, xp)


def test_multistart_finds_the_lower_minimum(xp, backend):
    loss = _double_well(xp)
    single = LevenbergMarquardt(tol=1e-10).minimize(loss, [0.9, 0.0])
    assert single.valid and single.x[0] > 0
    multi = MultiStart(LevenbergMarquardt(tol=1e-10), n_starts=6, seed=5).minimize(loss, [0.9, 0.0])
    assert multi.valid and multi.info["backend"] == backend
    assert multi.x[0] == pytest.approx(-1.0241, abs=1e-4)
    starts = multi.info["starts"]
    assert len(starts) == 6 and starts[0]["x0"] == [0.9, 0.0]
    assert starts[0]["fmin"] == pytest.approx(single.fmin)
    converged = [s["fmin"] for s in starts if s["converged"]]
    assert multi.fmin == min(converged) == starts[multi.info["best_start"]]["fmin"]
    assert multi.nfev == sum(s["nfev"] for s in starts)
    assert len(multi.info["start_results"]) == 6


def test_multistart_deterministic_and_seeded():
    loss = _double_well()
    ms = MultiStart(n_starts=5, seed=11)
    a, b = ms.minimize(loss, [0.9, 0.0]), ms.minimize(loss, [0.9, 0.0])
    assert a.x.tolist() == b.x.tolist()
    assert [s["x0"] for s in a.info["starts"]] == [s["x0"] for s in b.info["starts"]]
    c = MultiStart(n_starts=5, seed=12).minimize(loss, [0.9, 0.0])
    assert [s["x0"] for s in a.info["starts"]] != [s["x0"] for s in c.info["starts"]]
    assert MultiStart(n_starts=1).minimize(loss, [0.9, 0.0]).x[0] > 0  # the given start only


def test_multistart_draws_inside_bounds_and_around_unbounded_starts():
    ms = MultiStart(n_starts=200, seed=0, options={"spread": 3.0})
    p = zfitlite.Params(
        ("a", "b", "c", "d"),
        [0.5, 10.0, 2.0, 0.0],
        lower=[0.0, -np.inf, 1.5, -np.inf],
        upper=[1.0, np.inf, np.inf, np.inf],
        stepsize=[np.nan, 0.1, 1.0, np.nan],
    )
    pts = ms.starts(p)
    assert pts.shape == (200, 4) and pts[0].tolist() == [0.5, 10.0, 2.0, 0.0]
    assert np.all((pts[:, 0] >= 0.0) & (pts[:, 0] <= 1.0))
    assert pts[:, 0].max() - pts[:, 0].min() > 0.95  # fills the box
    assert np.all(np.abs(pts[:, 1] - 10.0) <= 0.3)  # 3 step sizes
    assert np.all((pts[:, 2] >= 1.5) & (pts[:, 2] <= 5.0))  # reflected at the lower bound
    assert np.all(np.abs(pts[:, 3]) <= 3.0)  # no step size, value 0: scale 1
    # Latin hypercube: one point in each of the 199 slices of the box's first axis
    assert np.array_equal(np.sort(np.floor(pts[1:, 0] * 199)), np.arange(199))


def test_multistart_bounded_and_failing_starts():
    def f(x):
        return (math.log(x[0]) - 1.0) ** 2 + (x[1] - 2.0) ** 2

    f.errordef = 1.0
    # starts drawn around 3 +- 5: some have x0 <= 0, where math.log raises
    local = LevenbergMarquardt(tol=1e-12)
    result = MultiStart(local, n_starts=8, seed=1).minimize(f, [3.0, 0.0])
    failed = [s for s in result.info["starts"] if "error" in s]
    assert failed and all("LossEvaluationError" in s["error"] for s in failed)
    assert result.valid and result.x == pytest.approx([math.e, 2.0], rel=1e-6)
    assert result.info["best_start"] not in [
        i for i, s in enumerate(result.info["starts"]) if "error" in s
    ]
    bounded = {"a": {"value": 3.0, "lower": 0.5, "upper": 10.0}, "b": 0.0}
    with pytest.raises(ValueError, match=r"MultiStart.*cannot honour"):
        MultiStart(ScipyBFGS()).minimize(f, bounded)
    result = MultiStart(local, n_starts=4, seed=1).minimize(f, bounded)
    assert all("error" not in s for s in result.info["starts"])
    assert result.valid and result.x == pytest.approx([math.e, 2.0], rel=1e-6)


def test_multistart_argument_errors():
    with pytest.raises(ValueError, match="n_starts"):
        MultiStart(n_starts=0)
    with pytest.raises(TypeError, match="seed"):
        MultiStart(seed="x")
    with pytest.raises(ValueError, match="unknown option"):
        MultiStart(options={"spead": 2.0})
    with pytest.raises(ValueError, match="spread"):
        MultiStart(options={"spread": -1.0})
