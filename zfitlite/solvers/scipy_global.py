"""Global minimizers from scipy.optimize. They need bounds; the random ones take a seed.

One base class, :class:`BaseGlobalMinimizer`, holds the plumbing every global method
shares: the bounds check, the evaluation budget, the seeded random generator, progress
reports, the local polish and the mapping onto our statuses. A subclass only says how
to call its scipy function (:meth:`BaseGlobalMinimizer._search`).

What ``valid`` means for a global result
-----------------------------------------
No global method can certify that it found *the* global minimum; what it can do is
search the box with the given budget and hand back the best point it saw. By default
that point is then **polished** with :class:`~zfitlite.minimize.LevenbergMarquardt`
(bounds honoured, the same evaluator and budget), so a global result is ``CONVERGED``
(and ``valid``, unless a parameter sits on a bound) exactly when the polished point is a
local minimum to our EDM precision, ``EDM < tol * errordef``, like every other
minimizer's result. It says nothing more about globality than "the best local minimum
this search found". With ``options={"polish": False}`` the search's own best point is
returned; it is ``CONVERGED`` only if the EDM there happens to be below the goal (rare:
a population or annealing method stops long before that), which is why such a result is
meant to be chained: ``LevenbergMarquardt().minimize(DifferentialEvolution().minimize(loss,
params))``, or as one minimizer, :class:`~zfitlite.minimize.GlobalLocal`.

The search's own answer is kept in ``result.info["global"]`` (``x``, ``fmin``,
``nfev`` of the search phase, ``niter``, ``polished``, and ``nonfinite``: how many
non-finite values the search met). A non-finite value inside the search is a bad point,
not an error: it counts as worse than every finite value seen (scipy's global methods then
avoid the region); the polish starts from the best finite point.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..status import Status
from .base import BaseMinimizer, IterationState, SolverOutput

__all__ = [
    "SHGO",
    "BaseGlobalMinimizer",
    "BasinHopping",
    "DifferentialEvolution",
    "Direct",
    "DualAnnealing",
]

Bounds = list[tuple[float, float]]


def _require_finite_bounds(minimizer: BaseMinimizer, params: Any) -> Bounds:
    bad = [
        n
        for n, lo, hi in zip(params.names, params.lower, params.upper)
        if not (np.isfinite(lo) and np.isfinite(hi))
    ]
    if bad:
        raise ValueError(
            f"{type(minimizer).__name__} is a global minimizer and needs finite lower and upper bounds on every "
            f"parameter; missing for {bad}. Give them, e.g. params={{'{bad[0]}': {{'value': 1.0, 'lower': 0.0, "
            "'upper': 2.0}, ...}, or use a local minimizer (or MultiStart) for an unbounded problem"
        )
    narrow = [n for n, lo, hi in zip(params.names, params.lower, params.upper) if not hi > lo]
    if narrow:
        raise ValueError(
            f"{type(minimizer).__name__} needs lower < upper for every parameter; equal bounds for {narrow}"
        )
    return list(zip(params.lower.tolist(), params.upper.tolist()))


#: The value of a bad point before any finite value was seen (large, but squares and
#: differences of it stay finite inside scipy's arithmetic).
_BAD_BEFORE_ANY = 1e100


class _OutOfTime(Exception):
    """The search's time budget (option ``maxtime``) is spent."""


class _BadPoints:
    """The loss as a global search sees it: a non-finite value is a bad point, not an error.

    While installed (a context manager) the evaluator's strategy is replaced: a non-finite
    value becomes a finite value worse than every finite one seen so far (scipy's global
    methods then simply avoid the region), a non-finite gradient becomes zero (a local
    search inside the method stops there), and ``count`` says how many there were.
    The best point the evaluator remembers is always a finite one.
    """

    def __init__(self, evaluator: Any, maxtime: float | None = None) -> None:
        self.evaluator = evaluator
        self.deadline = None if maxtime is None else time.perf_counter() + float(maxtime)
        self.count = 0
        self.worst = -np.inf
        self._flagged = False
        self._saved: Any = None

    def __enter__(self) -> _BadPoints:
        self._saved = self.evaluator.strategy
        self.evaluator.strategy = self
        return self

    def __exit__(self, *exc: Any) -> None:
        self.evaluator.strategy = self._saved

    def bad_value(self) -> float:
        best = self.evaluator.best_value
        if not (np.isfinite(self.worst) and np.isfinite(best)):
            return _BAD_BEFORE_ANY
        return float(self.worst + (self.worst - best) + 1.0 + abs(self.worst))

    def handle_nonfinite(self, what: str, x: np.ndarray, value: Any, record: Any) -> Any:
        self.count += 1
        if what == "value":
            self._flagged = True
            return self.bad_value()
        return np.zeros_like(np.asarray(value, dtype=np.float64))

    def _seen(self, v: float) -> None:
        if self._flagged:
            self._flagged = False
        elif v > self.worst:
            self.worst = v

    def _clock(self) -> None:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime

    def value(self, x: Any) -> float:
        self._clock()
        v = self.evaluator.value(x)
        self._seen(v)
        return v

    def gradient(self, x: Any) -> np.ndarray:
        self._clock()
        return self.evaluator.gradient(x)

    def value_gradient(self, x: Any) -> tuple[float, np.ndarray]:
        self._clock()
        v, g = self.evaluator.value_gradient(x)
        self._seen(v)
        return v, g

    def __getattr__(self, name: str) -> Any:
        return getattr(self.evaluator, name)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(
            f"seed must be a non-negative integer (reproducible) or None (fresh entropy), got {seed!r}"
        )
    return int(seed)


def _rng_kwarg(func: Callable, rng: np.random.Generator) -> dict[str, Any]:
    """Pass a Generator under the keyword this scipy version uses (``rng`` from 1.15 on, else ``seed``)."""
    return {"rng" if "rng" in inspect.signature(func).parameters else "seed": rng}


class BaseGlobalMinimizer(BaseMinimizer):
    """Shared plumbing of the global minimizers; subclasses implement :meth:`_search`.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`. ``tol`` is the goal of the
        polish (and of the final EDM check). ``maxiter="auto"`` is the method's own
        search budget plus ``5000 + 1000 * n`` for the polish. The callback receives one
        :class:`~zfitlite.solvers.base.IterationState` per iteration of the search (its
        ``fmin`` is the best value so far; the polish does not call it).
    options : dict, optional
        The method's options (see each class), plus ``polish`` (default True): polish
        the search's best point with Levenberg-Marquardt inside the bounds, so that
        ``CONVERGED`` means a local minimum to ``EDM < tol * errordef``; and ``maxtime``
        (seconds, default None: no limit): the search stops at its first evaluation
        after that time and the polish goes on from the best point seen
        (``info["global"]["message"]`` says so). ``maxiter`` (evaluations) and Ctrl-C
        stop every search too.

    Notes
    -----
    Bounds on every parameter are required (a ``ValueError`` says how to give them).
    See the module docstring for what ``valid`` means for a global result.
    """

    IS_GLOBAL: ClassVar[bool] = True
    SUPPORTS_BOUNDS = True
    _OWN_PROGRESS = True  # a bar per search iteration (_GlobalProgress)
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {}
    _OPTIONS: ClassVar[dict[str, Any]] = {"polish": True, "maxtime": None}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._OPTIONS = {**cls._SEARCH_OPTIONS, "polish": True, "maxtime": None}

    # -- what a subclass provides --------------------------------------------------------
    def _search_budget(self, n: int) -> int:
        """Evaluations the search may need with these options (``maxiter="auto"``)."""
        raise NotImplementedError

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        """Run the scipy method; return its OptimizeResult (``x``, ``fun``)."""
        raise NotImplementedError

    # -- shared plumbing -----------------------------------------------------------------
    def _seed_for_run(self) -> int | bool | None:
        """The seed of this run's generator; False for a deterministic method (no generator)."""
        return False

    def _maxiter_for(self, n: int) -> int:
        if self.maxiter == "auto":
            return int(self._search_budget(n)) + 5000 + 1000 * n
        return int(self.maxiter)

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        bounds = _require_finite_bounds(self, params)
        seed = self._seed_for_run()
        rng = None if seed is False else np.random.default_rng(seed)
        progress = _GlobalProgress(self, evaluator)
        try:
            # a non-finite value in the search is a bad point, not an error
            with _BadPoints(evaluator, self.options["maxtime"]) as bad:
                try:
                    res = self._search(bad, bounds, params.values.copy(), progress, rng)
                except _OutOfTime:
                    # the time budget is spent: go on from the best point seen
                    res = scipy.optimize.OptimizeResult(
                        x=evaluator.best_x.copy(),
                        fun=evaluator.best_value,
                        message=f"maxtime={self.options['maxtime']} s reached",
                    )
        finally:
            progress.close()
        x = np.clip(np.asarray(res.x, dtype=np.float64), params.lower, params.upper)
        f = float(res.fun)
        if evaluator.best_value <= f or bad.count:
            # scipy reports its best; ours is never worse and always finite
            if evaluator.best_x is not None and np.isfinite(evaluator.best_value):
                x, f = evaluator.best_x.copy(), evaluator.best_value
            else:  # nothing finite anywhere: the polish starts (and fails) at the start
                x = params.values.copy()
        search = {
            "x": x.tolist(),
            "fmin": f,
            "nfev": evaluator.nfev,
            "niter": progress.niter,
            "message": str(getattr(res, "message", "")),
            "polished": bool(self.options["polish"]),
            "nonfinite": bad.count,
        }
        if not self.options["polish"]:
            # "converged" is decided by the driver from our EDM at x
            return SolverOutput(
                x=x,
                fmin=f,
                status=Status.CONVERGED,
                niter=progress.niter,
                original=res,
                extras={"global": search},
            )
        out = self._polish(evaluator, criterion, params.with_values(x))
        out.niter += progress.niter
        out.original = res
        out.extras = {**out.extras, "global": search}
        return out

    def _polish(self, evaluator: Any, criterion: Any, params: Any) -> SolverOutput:
        """Levenberg-Marquardt from the search's best point, inside the bounds, same budget."""
        from .levenberg_marquardt import LevenbergMarquardt

        local = LevenbergMarquardt(
            tol=self.tol,
            strategy=self.strategy,
            verbosity=self.verbosity,
            name=f"{self.name}/polish",
        )
        if self.verbosity >= 2:
            print(f"  {self.name}: polishing f={evaluator.best_value:.10g} with {local.name}")
        return local._minimize(evaluator, criterion, params, None)


class _GlobalProgress:
    """Adapts the scipy callbacks' different signatures to one report per iteration.

    The reported ``fmin`` is the best value seen so far (population and annealing
    methods have no single current value).
    """

    def __init__(self, minimizer: BaseMinimizer, evaluator: Any) -> None:
        from .._progress import make_bar

        self.minimizer = minimizer
        self.evaluator = evaluator
        self.niter = 0
        # a bar in a terminal or Jupyter (``minimizer.progress``: None auto, True, False)
        self.bar = make_bar(minimizer.progress, desc=minimizer.name, unit="iter")

    def close(self) -> None:
        """Remove the progress bar."""
        self.bar.close()

    def step(self, x: Any = None, **extras: Any) -> None:
        """Report one iteration at ``x`` (default the best point so far)."""
        self.niter += 1
        ev = self.evaluator
        self.bar.update(1)
        self.bar.set_postfix_str(f"best f={ev.best_value:.10g}, nfev={ev.nfev}", refresh=False)
        self.minimizer._report(
            IterationState(
                self.niter,
                np.array(ev.best_x if x is None else x, dtype=np.float64),
                float(ev.best_value),
                float("nan"),
                extras,
            )
        )


class _SeededGlobalMinimizer(BaseGlobalMinimizer):
    """A global minimizer whose method is random: it takes ``seed``."""

    def __init__(
        self,
        tol: float | None = None,
        seed: int | None = 0,
        verbosity: int | None = None,
        options: dict | None = None,
        maxiter: int | str | None = None,
        criterion: Any = None,
        strategy: Any = None,
        name: str | None = None,
        callback: Any = None,
        progress: bool | None = None,
    ) -> None:
        super().__init__(
            tol=tol,
            verbosity=verbosity,
            options=options,
            maxiter=maxiter,
            criterion=criterion,
            strategy=strategy,
            name=name,
            callback=callback,
            progress=progress,
        )
        self.seed = _check_seed(seed)

    def _extra_settings(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def _seed_for_run(self) -> int | bool | None:
        # a fresh generator per run: the same seed gives the same result, run after run
        return self.seed


class DifferentialEvolution(_SeededGlobalMinimizer):
    """Differential evolution (:func:`scipy.optimize.differential_evolution`), seeded.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`BaseGlobalMinimizer`.
    seed : int or None, optional
        Seed of the random population (default 0): the same seed gives the same result.
    options : dict, optional
        ``popsize`` (15: a population of ``15 * n``), ``strategy`` ("rand1bin": slower
        than scipy's "best1bin" but far less prone to converge on a local minimum),
        ``mutation`` ((0.5, 1.0), dithered), ``recombination`` (0.7), ``init``
        ("latinhypercube"), ``maxgen`` (1000 generations), ``rtol``/``atol`` (scipy's
        population-spread stop, 0.01 and 0), ``polish`` (True, see
        :class:`BaseGlobalMinimizer`). The start values are one member of the first
        population.
    """

    _DEFAULT_NAME = "DifferentialEvolution"
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {
        "popsize": 15,
        "strategy": "rand1bin",
        "mutation": (0.5, 1.0),
        "recombination": 0.7,
        "init": "latinhypercube",
        "maxgen": 1000,
        "rtol": 0.01,
        "atol": 0.0,
    }

    def _search_budget(self, n: int) -> int:
        # a population method needs many evaluations: popsize * n per generation
        return int(self.options["popsize"]) * n * (int(self.options["maxgen"]) + 1)

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        o = self.options

        def callback(intermediate_result: Any) -> None:
            progress.step(
                intermediate_result.x,
                convergence=float(intermediate_result.get("convergence", np.nan)),
            )

        return scipy.optimize.differential_evolution(
            evaluator.value,
            bounds,
            x0=x0,
            popsize=o["popsize"],
            strategy=o["strategy"],
            mutation=o["mutation"],
            recombination=o["recombination"],
            init=o["init"],
            maxiter=o["maxgen"],
            polish=False,  # our own polish, on our evaluator and with our EDM
            callback=callback,
            tol=o["rtol"],
            atol=o["atol"],
            **_rng_kwarg(scipy.optimize.differential_evolution, rng),  # pyright: ignore[reportArgumentType]
        )


class DualAnnealing(_SeededGlobalMinimizer):
    """Generalised simulated annealing (:func:`scipy.optimize.dual_annealing`), seeded.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`BaseGlobalMinimizer`.
    seed : int or None, optional
        Seed of the random walk (default 0): the same seed gives the same result.
    options : dict, optional
        ``maxgen`` (1000 annealing iterations), ``initial_temp`` (5230),
        ``restart_temp_ratio`` (2e-5), ``visit`` (2.62), ``accept`` (-5.0), ``maxfun``
        (evaluations of the search, ``20000 * n``), ``local_search`` (True: scipy's
        L-BFGS-B local searches during the annealing, with our gradient), ``polish``
        (True). The walk starts at the start values.
    """

    _DEFAULT_NAME = "DualAnnealing"
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {
        "maxgen": 1000,
        "initial_temp": 5230.0,
        "restart_temp_ratio": 2e-5,
        "visit": 2.62,
        "accept": -5.0,
        "maxfun": None,
        "local_search": True,
    }

    def _maxfun(self, n: int) -> int:
        m = self.options["maxfun"]
        return 20000 * n if m is None else int(m)

    def _search_budget(self, n: int) -> int:
        # scipy counts only values; each local-search step also costs a gradient
        return 3 * self._maxfun(n)

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        o = self.options

        def callback(x: Any, f: float, context: int) -> None:
            progress.step(x, context=int(context))

        return scipy.optimize.dual_annealing(
            evaluator.value,
            bounds,
            x0=x0,
            maxiter=o["maxgen"],
            initial_temp=o["initial_temp"],
            restart_temp_ratio=o["restart_temp_ratio"],
            visit=o["visit"],
            accept=o["accept"],
            maxfun=self._maxfun(len(bounds)),
            no_local_search=not o["local_search"],
            # scipy's default local search (L-BFGS-B inside the bounds), with our gradient
            minimizer_kwargs={
                "method": "L-BFGS-B",
                "jac": evaluator.gradient,
                "bounds": bounds,
                "options": {"maxiter": min(max(6 * len(bounds), 100), 1000)},
            },
            callback=callback,
            **_rng_kwarg(scipy.optimize.dual_annealing, rng),  # pyright: ignore[reportArgumentType]
        )


#: SHGO's default sampling: "sobol" (3 iterations of 128 points) up to this dimension,
#: scipy's own "simplicial" (1 iteration) above: the Delaunay triangulation of Sobol
#: points costs time and memory exponential in the dimension (9 dimensions, 64 points:
#: 18 s; 384 points in 9-17 dimensions ran 232 s and past 8 GB, uninterruptibly).
SHGO_SOBOL_MAX_DIM = 6
#: ... and above this dimension SHGO refuses to start (the simplicial complex has 2^n
#: vertices: 12 dimensions take 27 s and 1.1 GB before a single local minimisation).
SHGO_MAX_DIM = 10


class SHGO(BaseGlobalMinimizer):
    """Simplicial homology global optimisation (:func:`scipy.optimize.shgo`); deterministic.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`BaseGlobalMinimizer`.
    options : dict, optional
        ``n`` (sampling points per iteration, ``None``: 128 for "sobol", scipy's choice
        for "simplicial"), ``iters`` (``None``: 3 for "sobol", 1 for "simplicial"),
        ``sampling_method`` (``None``: "sobol", unscrambled and so deterministic, up to
        :data:`SHGO_SOBOL_MAX_DIM` parameters, scipy's default "simplicial" above; or
        "sobol", "simplicial", "halton" explicitly), ``local_method`` ("L-BFGS-B", with
        our gradient, for the local minimisations from each minimiser of the sampled
        complex), ``maxtime`` (seconds, None: no limit; also passed to scipy),
        ``polish`` (True). The start values are not used. More than
        :data:`SHGO_MAX_DIM` parameters raise a ``ValueError`` (the triangulation would
        run away in time and memory, inside C code that Ctrl-C cannot stop).
    """

    _DEFAULT_NAME = "SHGO"
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {
        "n": None,
        "iters": None,
        "sampling_method": None,
        "local_method": "L-BFGS-B",
    }

    def _sampling(self, dim: int) -> str:
        method = self.options["sampling_method"]
        if method is None:
            return "sobol" if dim <= SHGO_SOBOL_MAX_DIM else "simplicial"
        return str(method)

    def _iters(self, dim: int) -> int:
        iters = self.options["iters"]
        if iters is None:
            return 3 if self._sampling(dim) == "sobol" and dim <= SHGO_SOBOL_MAX_DIM else 1
        return int(iters)

    def _n_for(self, dim: int) -> int | None:
        n = self.options["n"]
        if n is None and self._sampling(dim) != "simplicial":
            return 128
        return None if n is None else int(n)

    def _search_budget(self, n: int) -> int:
        pts = self._n_for(n) or 2**n + 1
        # each sampled point, plus local minimisations (values and gradients)
        return self._iters(n) * pts * (1 + 50 * n) + 1000

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        o = self.options
        dim = len(bounds)
        if dim > SHGO_MAX_DIM:
            raise ValueError(
                f"SHGO with {dim} parameters: its simplicial complex has 2^{dim} vertices and "
                f"the triangulation runs away in time and memory above {SHGO_MAX_DIM} "
                "parameters (inside scipy's C code, which Ctrl-C cannot stop); use "
                "DifferentialEvolution, DualAnnealing or Direct (see docs/choosing.md)"
            )
        options = None if o.get("maxtime") is None else {"maxtime": float(o["maxtime"])}
        return scipy.optimize.shgo(
            evaluator.value,
            bounds,
            n=self._n_for(dim),  # pyright: ignore[reportArgumentType]
            iters=self._iters(dim),
            sampling_method=self._sampling(dim),
            minimizer_kwargs={"method": o["local_method"], "jac": evaluator.gradient},
            callback=lambda xk: progress.step(xk),
            options=options,
        )


class _BoxStep:
    """basinhopping's step: a uniform jump of ``stepsize`` times each box width, reflected into the box.

    scipy adapts the attribute ``stepsize`` towards its target acceptance rate.
    """

    def __init__(
        self, lower: np.ndarray, upper: np.ndarray, stepsize: float, rng: np.random.Generator
    ) -> None:
        self.lower, self.upper = lower, upper
        self.width = upper - lower
        self.stepsize = stepsize
        self.rng = rng

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x + self.stepsize * self.width * self.rng.uniform(-1.0, 1.0, size=x.shape)
        # reflect at the walls (a jump of more than a box width wraps around)
        period = 2.0 * self.width
        z = np.mod(y - self.lower, period)
        return self.lower + np.where(z > self.width, period - z, z)


class BasinHopping(_SeededGlobalMinimizer):
    """Basin hopping (:func:`scipy.optimize.basinhopping`), seeded, inside the bounds.

    Each hop is a random jump (uniform, ``stepsize`` times each parameter's box width,
    reflected at the bounds) followed by a bounded local minimisation (L-BFGS-B with our
    gradient) and a Metropolis acceptance test at temperature ``T``.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`BaseGlobalMinimizer`.
    seed : int or None, optional
        Seed of the jumps and of the acceptance test (default 0).
    options : dict, optional
        ``niter`` (200 hops), ``T`` (1.0, in units of the loss), ``stepsize`` (0.1 of
        each box width; adapted by scipy every ``interval`` hops), ``interval`` (50),
        ``niter_success`` (None: stop after this many hops without a new best),
        ``local_maxiter`` (200 iterations per local minimisation), ``polish`` (True).
        The walk starts at the start values.
    """

    _DEFAULT_NAME = "BasinHopping"
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {
        "niter": 200,
        "T": 1.0,
        "stepsize": 0.1,
        "interval": 50,
        "niter_success": None,
        "local_maxiter": 200,
    }

    def _search_budget(self, n: int) -> int:
        return (int(self.options["niter"]) + 1) * 2 * (int(self.options["local_maxiter"]) + 20)

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        o = self.options
        lower = np.array([b[0] for b in bounds])
        upper = np.array([b[1] for b in bounds])
        assert rng is not None  # a seeded method always gets a generator
        step_rng, accept_rng = (np.random.default_rng(rng.integers(2**63)) for _ in range(2))
        take_step = _BoxStep(lower, upper, float(o["stepsize"]), step_rng)

        def callback(x: Any, f: float, accept: bool) -> None:
            progress.step(x, accepted=bool(accept), stepsize=float(take_step.stepsize))

        return scipy.optimize.basinhopping(
            evaluator.value_gradient,
            x0,
            niter=int(o["niter"]),
            T=float(o["T"]),
            stepsize=float(o["stepsize"]),
            take_step=take_step,
            interval=int(o["interval"]),
            niter_success=o["niter_success"],
            minimizer_kwargs={
                "method": "L-BFGS-B",
                "jac": True,
                "bounds": bounds,
                "options": {"maxiter": int(o["local_maxiter"])},
            },
            callback=callback,
            **_rng_kwarg(scipy.optimize.basinhopping, accept_rng),
        )


class Direct(BaseGlobalMinimizer):
    """DIRECT, dividing rectangles (:func:`scipy.optimize.direct`); deterministic.

    Parameters
    ----------
    tol, verbosity, maxiter, criterion, strategy, name, callback
        As for :class:`BaseGlobalMinimizer`.
    options : dict, optional
        ``maxfun`` (evaluations of the search, ``2000 * n``), ``maxgen`` (1000
        iterations), ``eps`` (1e-4), ``locally_biased`` (False: the original DIRECT,
        which explores more; True is DIRECT-L), ``vol_tol`` (1e-16), ``len_tol`` (1e-6),
        ``polish`` (True). The start values are not used.
    """

    _DEFAULT_NAME = "Direct"
    _SEARCH_OPTIONS: ClassVar[dict[str, Any]] = {
        "maxfun": None,
        "maxgen": 1000,
        "eps": 1e-4,
        "locally_biased": False,
        "vol_tol": 1e-16,
        "len_tol": 1e-6,
    }

    def _maxfun(self, n: int) -> int:
        m = self.options["maxfun"]
        return 2000 * n if m is None else int(m)

    def _search_budget(self, n: int) -> int:
        return self._maxfun(n) + 100

    def _search(
        self,
        evaluator: Any,
        bounds: Bounds,
        x0: np.ndarray,
        progress: _GlobalProgress,
        rng: np.random.Generator | None,
    ) -> Any:
        o = self.options
        return scipy.optimize.direct(
            evaluator.value,
            bounds,
            maxfun=self._maxfun(len(bounds)),
            maxiter=int(o["maxgen"]),
            eps=float(o["eps"]),
            locally_biased=bool(o["locally_biased"]),
            vol_tol=float(o["vol_tol"]),
            len_tol=float(o["len_tol"]),
            callback=lambda xk: progress.step(xk),
        )
