"""Shared plumbing of the minimizers that wrap :mod:`scipy.optimize`.

scipy owns its loop; zfitlite keeps its own meaning of convergence. One table,
:data:`METHODS`, says for every method of :func:`scipy.optimize.minimize` which
derivatives it uses, whether it takes bounds, the options zfitlite exposes (with their
first-round defaults), which of them are tolerances to tighten, which receive the
evaluation budget, and how a previous result (``init``) seeds it. The classes of
:mod:`~zfitlite.solvers.scipy_local` are one line each on top of that table, and
:class:`~zfitlite.solvers.scipy_minimize.ScipyMinimize` reads the same table.

The loop of rounds (:class:`ScipyRoundsMinimizer`):

1. run the scipy method from ``x`` with the current options;
2. at its answer, evaluate the exact (or numerical) gradient and Hessian and the EDM
   (over the parameters not held by a bound);
3. converged when the EDM is below the goal; otherwise tighten the tolerances
   (:func:`tighten`: from how far the EDM still is from the goal, never less than a
   factor 10 per round) and go on from where scipy stopped, at most ``max_rounds``
   times. Everything depends only on the values seen, so a fit is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.optimize

from ..criterion import (
    FTOL_REL,
    bounded_edm,
    edm,
    free_mask,
    make_posdef,
    parameter_scale,
    point_settled,
    relative_tolerances,
)
from ..exceptions import FailMinimizeNaN, MaximumIterationReached
from ..status import Status
from .base import BaseMinimizer, ScipyProgress, SolverOutput

__all__ = [
    "METHODS",
    "Measure",
    "ScipyLocalMinimizer",
    "ScipyMethod",
    "ScipyRoundsMinimizer",
    "StartInfo",
    "bounded_edm",
    "bounded_methods",
    "dense_or_none",
    "free_mask",
    "hessian_directions",
    "measure",
    "niter_of",
    "onto_active_bounds",
    "onto_bounds",
    "posdef_or_none",
    "run_minimize",
    "scipy_bounds",
    "scipy_status",
    "settled_measure",
    "simplex_around",
    "start_info",
    "tighten",
    "usable_inv_hessian",
]

EPS = float(np.finfo(np.float64).eps)

# kinds of tolerance, for tighten():
#   "x"    a step/radius/relative-x tolerance: the EDM falls like its square;
#   "grad" an absolute gradient-norm tolerance: set from the gradient actually seen;
#   "frel" a relative change of the loss: set from 0.01 goal / max(|f|, 1);
#   "fabs" an absolute change of the loss: set from 0.01 goal.
TOL_KINDS = ("x", "grad", "frel", "fabs")


# -- what a previous result tells a method ------------------------------------------------
def usable_inv_hessian(init: Any, names: tuple[str, ...]) -> np.ndarray | None:
    """A positive-definite inverse Hessian of the loss from ``init`` (same parameters), else None."""
    if init is None or tuple(init.names) != tuple(names):
        return None
    inv = init.approx.inv_hessian
    if inv is None and init.approx.hessian is not None:
        try:
            inv = np.linalg.inv(np.asarray(init.approx.hessian, dtype=np.float64))
        except np.linalg.LinAlgError:
            return None
    return posdef_or_none(inv)


def dense_or_none(inv: Any) -> np.ndarray | None:
    """scipy's inverse-Hessian estimate as a symmetric array (None when there is none)."""
    if inv is None:
        return None
    if hasattr(inv, "todense"):  # L-BFGS-B's LbfgsInvHessProduct
        inv = inv.todense()
    inv = np.asarray(inv, dtype=np.float64)
    if inv.ndim != 2 or inv.shape[0] != inv.shape[1]:
        return None
    return 0.5 * (inv + inv.T)


def posdef_or_none(inv: Any) -> np.ndarray | None:
    """:func:`dense_or_none`, and None unless positive definite."""
    inv = dense_or_none(inv)
    if inv is None or not np.all(np.isfinite(inv)):
        return None
    try:
        np.linalg.cholesky(inv)
    except np.linalg.LinAlgError:
        return None
    return inv


@dataclass(frozen=True)
class StartInfo:
    """Scales known at the start of a fit, from the parameters or from ``init``.

    Attributes
    ----------
    sigma : numpy.ndarray
        One-sigma scale per parameter (the step size the user gave, else ``init``'s
        Hesse error, else ``sqrt(2 errordef (H^-1)_ii)`` from its inverse Hessian);
        NaN where unknown.
    inv_hessian : numpy.ndarray or None
        ``init``'s positive-definite inverse Hessian (same parameters), if any.
    errordef : float
    """

    sigma: np.ndarray
    inv_hessian: np.ndarray | None
    errordef: float

    @property
    def has_sigma(self) -> bool:
        """True when every parameter has a scale."""
        return bool(np.all(np.isfinite(self.sigma) & (self.sigma > 0)))

    def directions(self) -> np.ndarray | None:
        """Rows: one-sigma steps, mutually conjugate when an inverse Hessian is known.

        With ``C = 2 errordef H^-1 = V diag(w) V^T`` the rows are ``sqrt(w_k) v_k``
        (``d_i^T H d_j = 0`` for ``i != j``); else ``diag(sigma)``; else None.
        """
        if self.inv_hessian is not None:
            w, v = np.linalg.eigh(2.0 * self.errordef * self.inv_hessian)
            return (v * np.sqrt(np.maximum(w, 0.0))).T
        if self.has_sigma:
            return np.diag(self.sigma)
        return None


def start_info(params: Any, init: Any, errordef: float) -> StartInfo:
    """Collect the per-parameter scales and inverse Hessian that seed a method."""
    inv = usable_inv_hessian(init, params.names)
    sigma = np.where(
        np.isfinite(params.stepsize) & (params.stepsize > 0), params.stepsize, np.nan
    ).astype(np.float64)
    if init is not None and np.any(np.isnan(sigma)):
        errors = init._hesse_errors_by_name()
        for i, name in enumerate(params.names):
            err = errors.get(name, np.nan)
            if np.isnan(sigma[i]) and np.isfinite(err) and err > 0:
                sigma[i] = err
    if inv is not None:
        parabolic = np.sqrt(2.0 * errordef * np.diag(inv))
        sigma = np.where(np.isnan(sigma), parabolic, sigma)
    return StartInfo(sigma=sigma, inv_hessian=inv, errordef=errordef)


# -- bounds ---------------------------------------------------------------------------------
def scipy_bounds(params: Any, keep_feasible: bool = False) -> scipy.optimize.Bounds | None:
    """The parameters' bounds as :class:`scipy.optimize.Bounds`, or None when there are none."""
    if not params.has_bounds:
        return None
    return scipy.optimize.Bounds(params.lower, params.upper, keep_feasible=keep_feasible)


def onto_bounds(x: np.ndarray, params: Any) -> np.ndarray:
    """``x`` clipped into the bounds and put exactly on a bound it is within ``rtol=1e-8`` of.

    Interior-point and derivative-free methods approach a bound without landing on it;
    on the bound, the EDM leaves out a parameter that its bound holds.
    """
    x = np.asarray(x, dtype=np.float64)
    if not params.has_bounds:
        return x
    lo, hi = params.lower, params.upper
    x = np.clip(x, lo, hi)
    near = params.at_limit(x)
    to_lower = near & (np.abs(x - lo) <= np.abs(hi - x))
    return np.where(to_lower, lo, np.where(near, hi, x))


# -- the EDM at scipy's answer ----------------------------------------------------------
@dataclass
class Measure:
    """The loss, its derivatives and the EDM at one point."""

    x: np.ndarray
    f: float
    g: np.ndarray
    H: np.ndarray
    edm: float
    goal: float
    free: np.ndarray

    @property
    def gnorm(self) -> float:
        """Largest gradient component over the parameters not held by a bound."""
        g = self.g[self.free]
        return float(np.max(np.abs(g))) if g.size else 0.0


def measure(evaluator: Any, x: np.ndarray, params: Any, goal: float) -> Measure:
    """Value, gradient, Hessian and EDM at ``x`` (EDM over the parameters free of their bounds)."""
    f, g = evaluator.value_gradient_reusing(x)
    H = evaluator.hessian(x)
    if params.has_bounds:
        free = free_mask(x, g, params.lower, params.upper)
        e = bounded_edm(g, H, free)
    else:
        free = np.ones(x.size, dtype=bool)
        e = edm(g, H)
    return Measure(x=x, f=float(f), g=g, H=H, edm=e, goal=goal, free=free)


def settled_measure(m: Measure, tol: float, scale: np.ndarray | None = None) -> bool:
    """Numerically settled at ``m`` (:func:`zfitlite.criterion.point_settled`).

    ``tol``: the minimizer's (:func:`~zfitlite.criterion.relative_tolerances`); ``scale``:
    the start point (a parameter's size when its minimum is at 0).
    """
    return point_settled(m.g, m.H, m.x, m.edm, m.f, m.free, *relative_tolerances(tol), scale)


def onto_active_bounds(evaluator: Any, m: Measure, params: Any, goal: float) -> Measure | None:
    """Try the point where the parameters that the Newton step pushes past a bound sit on it.

    Interior-point and derivative-free methods approach a bound without reaching it (scipy's
    trust-constr stops about a barrier parameter away). When the Newton step from ``m.x``
    (on the positive-definite part of the Hessian) crosses a bound, the parameter is put on
    that bound; the new point is kept if the loss there is not higher. Returns the
    measure at the new point, or None when no parameter qualifies or the loss rose.
    """
    if not params.has_bounds:
        return None
    x, lo, hi = m.x, params.lower, params.upper
    try:
        step = -np.linalg.solve(make_posdef(m.H)[0], m.g)
    except np.linalg.LinAlgError:
        return None
    beyond_lo = np.isfinite(lo) & (x > lo) & (x + step <= lo)
    beyond_hi = np.isfinite(hi) & (x < hi) & (x + step >= hi)
    if not (beyond_lo.any() or beyond_hi.any()):
        return None
    x_new = np.where(beyond_lo, lo, np.where(beyond_hi, hi, x))
    if evaluator.value(x_new) > m.f:
        return None
    return measure(evaluator, x_new, params, goal)


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


# -- scipy's verdict --------------------------------------------------------------------
_MAXITER_WORDS = ("maximum number", "iteration limit", "max_nfev", "maxfev", "maxfun", "exceeded")
_NO_STEP_WORDS = (
    "precision loss",
    "line search",
    "linear search",
    "abnormal",
    "positive directional derivative",
    "not positive definite",
    "rounding errors",
    "too small",
)


def scipy_status(res: Any) -> Status:
    """zfitlite's status for a scipy ``OptimizeResult`` (scipy's own verdict, not our EDM)."""
    fun = np.asarray(getattr(res, "fun", np.nan), dtype=np.float64)
    if not np.all(np.isfinite(fun)):
        return Status.NONFINITE
    if bool(getattr(res, "success", False)):
        return Status.CONVERGED
    msg = str(getattr(res, "message", "")).lower()
    if any(w in msg for w in _MAXITER_WORDS):
        return Status.MAXITER
    if any(w in msg for w in _NO_STEP_WORDS):
        return Status.NO_STEP
    return Status.BACKEND_FAILURE


# -- per-method seeding from init ---------------------------------------------------------
Hook = Callable[[np.ndarray, StartInfo, Any, Mapping[str, Any]], dict[str, Any]]
Restart = Callable[[Any, "Measure", StartInfo, Any, Mapping[str, Any]], dict[str, Any]]


def _start_hess_inv0(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    return {} if info.inv_hessian is None else {"hess_inv0": info.inv_hessian}


def _restart_hess_inv0(res: Any, m: Measure, info: StartInfo, params: Any, opts: Mapping):
    inv = posdef_or_none(getattr(res, "hess_inv", None))
    return {"hess_inv0": inv}


def _radius(info: StartInfo) -> float | None:
    s = info.sigma[np.isfinite(info.sigma) & (info.sigma > 0)]
    return float(np.linalg.norm(s)) if s.size == info.sigma.size else None


def _start_trust_radius(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    r = _radius(info)
    if r is None:
        return {}
    return {"initial_trust_radius": min(r, float(opts.get("max_trust_radius", np.inf)))}


def _start_tr_radius(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    r = _radius(info)
    return {} if r is None else {"initial_tr_radius": r}


def _start_direc(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    d = info.directions()
    return {} if d is None else {"direc": d}


def hessian_directions(m: Measure, errordef: float) -> np.ndarray:
    """Rows: one-sigma steps from the Hessian at ``m.x``, conjugate among the free parameters.

    Parameters held by a bound get a step along their own axis (a direction that also
    moves a free parameter would be blocked by the bound as a whole).
    """
    n = m.x.size
    free = m.free
    d = np.zeros((n, n))
    k = int(free.sum())
    if k:
        Hf = make_posdef(m.H[np.ix_(free, free)])[0]
        w, v = np.linalg.eigh(2.0 * errordef * np.linalg.inv(Hf))
        d[:k, free] = (v * np.sqrt(np.maximum(w, 0.0))).T
    diag = np.abs(np.diag(m.H))
    for row, i in enumerate(np.flatnonzero(~free), start=k):
        d[row, i] = np.sqrt(2.0 * errordef / diag[i]) if diag[i] > 0 else 1.0
    return d


def _restart_direc(res: Any, m: Measure, info: StartInfo, params: Any, opts: Mapping):
    # scipy's final directions are often nearly dependent, or blocked by a bound; the
    # Hessian at the restart point gives a fresh conjugate set
    try:
        d = hessian_directions(m, info.errordef)
    except np.linalg.LinAlgError:
        return {"direc": None}
    ok = np.all(np.isfinite(d)) and np.linalg.matrix_rank(d) == d.shape[0]
    return {"direc": d if ok else None}


def simplex_around(x: np.ndarray, directions: np.ndarray, params: Any) -> np.ndarray:
    """A simplex ``x, x + d_1, ..., x + d_n`` kept inside the bounds (flip, then halve a step)."""
    sim = [x.copy()]
    for d in directions:
        d = np.asarray(d, dtype=np.float64)
        for _ in range(60):
            for cand in (x + d, x - d):
                if np.all(cand >= params.lower) and np.all(cand <= params.upper):
                    break
            else:
                d = 0.5 * d
                continue
            break
        sim.append(cand)
    return np.array(sim)


def _start_simplex(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    d = info.directions()
    return {} if d is None else {"initial_simplex": simplex_around(x, d, params)}


def _restart_simplex(res: Any, m: Measure, info: StartInfo, params: Any, opts: Mapping):
    x = m.x
    # a fresh simplex as large as the one scipy ended with (a collapsed simplex is the
    # classic way Nelder-Mead stalls), at least ten times the new x tolerance
    sim = getattr(res, "final_simplex", (None,))[0]
    h = np.zeros_like(x)
    if sim is not None:
        h = np.max(np.abs(np.asarray(sim) - x), axis=0)
    h = np.maximum(h, 10.0 * float(opts.get("xatol", 0.0)))
    fallback = np.where(np.isfinite(info.sigma), info.sigma, np.maximum(0.05 * np.abs(x), 2.5e-4))
    h = np.where(h > 0, h, fallback)
    return {"initial_simplex": simplex_around(x, np.diag(h), params)}


def _start_rhobeg(x: np.ndarray, info: StartInfo, params: Any, opts: Mapping) -> dict:
    s = info.sigma[np.isfinite(info.sigma) & (info.sigma > 0)]
    if s.size == 0:
        return {}
    return {"rhobeg": max(float(np.median(s)), 10.0 * float(opts["tol"]))}


def _restart_rhobeg(res: Any, m: Measure, info: StartInfo, params: Any, opts: Mapping):
    # COBYLA ended with a trust radius of about the old rhoend (= 10x the new tol at least)
    return {"rhobeg": min(float(opts["rhobeg"]), max(100.0 * float(opts["tol"]), EPS))}


# -- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScipyMethod:
    """How zfitlite drives one method of :func:`scipy.optimize.minimize`.

    Attributes
    ----------
    name : str
        scipy's name of the method.
    options : dict
        The scipy options zfitlite exposes, with their first-round defaults.
    tighten : dict
        ``{option: kind}``: tolerances tightened between rounds (see :func:`tighten`).
    budget : tuple of str
        Options that receive the evaluation budget (``maxiter`` of the minimizer).
    gradient, hessian : bool
        Whether the method uses the gradient / the Hessian.
    hessian_required : bool
        Whether scipy refuses to run without a Hessian.
    bounds : bool
        Whether scipy honours bounds for this method.
    keep_feasible : bool
        Pass bounds with ``keep_feasible=True`` (trust-constr would otherwise evaluate
        outside them).
    callback_x : bool
        scipy calls this method's callback with ``x`` only (TNC), not with an
        ``intermediate_result``.
    clip : bool
        The method's answer respects the bounds but its trial points may not (COBYLA
        treats bounds as linear constraints): the loss is evaluated at the trial point
        clipped into the bounds, so it never sees a value outside them.
    floor : dict
        Lowest value per tightened option (default 0).
    start, restart : callable, optional
        ``start(x, info, params, opts) -> options`` seeds the first round from ``init``
        and the step sizes; ``restart(res, m, info, params, opts) -> options`` seeds the
        following rounds from scipy's previous answer and the :class:`Measure` there.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    tighten: Mapping[str, str] = field(default_factory=dict)
    budget: tuple[str, ...] = ("maxiter",)
    gradient: bool = False
    hessian: bool = False
    hessian_required: bool = False
    bounds: bool = False
    keep_feasible: bool = False
    callback_x: bool = False
    clip: bool = False
    floor: Mapping[str, float] = field(default_factory=dict)
    start: Hook | None = None
    restart: Restart | None = None

    def __post_init__(self) -> None:
        assert set(self.tighten) <= set(self.options), self.name
        assert set(self.tighten.values()) <= set(TOL_KINDS), self.name


_TRUST = {"gtol": 1e-4, "initial_trust_radius": 1.0, "max_trust_radius": 1000.0, "eta": 0.15}


def _trust_region(name: str, **extra: Any) -> ScipyMethod:
    """The table entry of a trust-region method on the exact Hessian (scipy requires it)."""
    return ScipyMethod(
        name,
        {**_TRUST, **extra},
        {"gtol": "grad"},
        gradient=True,
        hessian=True,
        hessian_required=True,
        start=_start_trust_radius,
    )


#: Every method of :func:`scipy.optimize.minimize`, keyed by its lower-case name.
METHODS: dict[str, ScipyMethod] = {
    m.name.lower(): m
    for m in (
        ScipyMethod(
            "BFGS",
            {"gtol": 1e-5, "c1": 1e-4, "c2": 0.9, "xrtol": 0.0},
            {"gtol": "grad"},
            gradient=True,
            start=_start_hess_inv0,
            restart=_restart_hess_inv0,
        ),
        ScipyMethod(
            "L-BFGS-B",
            {"maxcor": 10, "ftol": 2.220446049250313e-09, "gtol": 1e-5, "maxls": 20},
            {"ftol": "frel", "gtol": "grad"},
            budget=("maxiter", "maxfun"),
            gradient=True,
            bounds=True,
        ),
        ScipyMethod(
            "trust-constr",
            {
                "xtol": 1e-8,
                "gtol": 1e-8,
                "barrier_tol": 1e-8,
                "initial_tr_radius": 1.0,
                "initial_constr_penalty": 1.0,
                "initial_barrier_parameter": 0.1,
                "initial_barrier_tolerance": 0.1,
            },
            {"xtol": "x", "gtol": "grad", "barrier_tol": "x"},
            gradient=True,
            hessian=True,
            bounds=True,
            keep_feasible=True,
            start=_start_tr_radius,
        ),
        ScipyMethod(
            "Newton-CG",
            {"xtol": 1e-5, "c1": 1e-4, "c2": 0.9},
            {"xtol": "x"},
            gradient=True,
            hessian=True,
        ),
        ScipyMethod(
            "TNC",
            {
                # scipy's "automatic" values made explicit: sqrt(eps), 1e-2 * eps^(1/4), sqrt(eps)
                "xtol": float(np.sqrt(EPS)),
                "gtol": float(1e-2 * np.sqrt(np.sqrt(EPS))),
                "ftol": -1.0,
                "eta": -1.0,
                "stepmx": 0.0,
                "accuracy": float(np.sqrt(EPS)),
                "maxCGit": -1,
                "rescale": -1.0,
                "scale": None,
            },
            {"xtol": "x", "gtol": "grad", "accuracy": "frel"},
            budget=("maxfun",),
            gradient=True,
            bounds=True,
            callback_x=True,
            # TNC resets an accuracy at or below eps to sqrt(eps)
            floor={"accuracy": 2.0 * EPS},
        ),
        _trust_region("trust-ncg"),
        _trust_region("trust-krylov", inexact=True),
        _trust_region("dogleg"),
        _trust_region("trust-exact"),
        ScipyMethod(
            "Powell",
            {"xtol": 1e-4, "ftol": 1e-4},
            {"xtol": "x", "ftol": "frel"},
            budget=("maxiter", "maxfev"),
            bounds=True,
            start=_start_direc,
            restart=_restart_direc,
        ),
        ScipyMethod(
            "SLSQP",
            {"ftol": 1e-6},
            {"ftol": "fabs"},
            gradient=True,
            bounds=True,
        ),
        ScipyMethod(
            "COBYLA",
            {"rhobeg": 1.0, "tol": 1e-4},
            {"tol": "x"},
            bounds=True,
            clip=True,
            start=_start_rhobeg,
            restart=_restart_rhobeg,
        ),
        ScipyMethod(
            "Nelder-Mead",
            {"xatol": 1e-4, "fatol": 1e-4, "adaptive": False},
            {"xatol": "x", "fatol": "fabs"},
            budget=("maxiter", "maxfev"),
            bounds=True,
            start=_start_simplex,
            restart=_restart_simplex,
        ),
        ScipyMethod("CG", {"gtol": 1e-5}, {"gtol": "grad"}, gradient=True),
        ScipyMethod("COBYQA", {}, {}, budget=("maxfev",), bounds=True),
    )
}


def bounded_methods() -> list[str]:
    """scipy's names of the methods that honour bounds."""
    return [m.name for m in METHODS.values() if m.bounds]


# -- the loop of rounds ---------------------------------------------------------------------
class ScipyRoundsMinimizer(BaseMinimizer):
    """Runs a scipy solver in rounds until *our* EDM is below the goal.

    Subclasses implement :meth:`_first_options`, :meth:`_run` and may override
    :meth:`_measure` and :meth:`_next_options`. Every subclass accepts the option
    ``max_rounds`` (default 5).
    """

    _TIGHTEN: ClassVar[Mapping[str, str]] = {}
    _TOL_FLOOR: ClassVar[float | Mapping[str, float]] = 0.0
    _LINALG_HINT: ClassVar[str] = "try another minimizer"

    def __init__(
        self,
        tol: float | None = None,
        verbosity: int | None = None,
        criterion: Any = None,
        strategy: Any = None,
        maxiter: int | str | None = None,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        super().__init__(
            tol=tol,
            verbosity=verbosity,
            criterion=criterion,
            strategy=strategy,
            maxiter=maxiter,
            name=name,
            options=options,
            callback=callback,
            progress=progress,
        )
        self._user_options = frozenset(options or ())
        rounds = self.options.get("max_rounds", 1)
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
            raise ValueError(
                f"{type(self).__name__}: option max_rounds must be an integer >= 1, got {rounds!r}"
            )

    # hooks -------------------------------------------------------------------------------
    def _first_options(
        self, evaluator: Any, params: Any, x: np.ndarray, info: StartInfo
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _run(
        self, evaluator: Any, params: Any, x: np.ndarray, opts: dict[str, Any], progress: Any
    ) -> Any:
        raise NotImplementedError

    def _measure(self, evaluator: Any, x: np.ndarray, params: Any, criterion: Any) -> Measure:
        return measure(evaluator, x, params, criterion.goal)

    def _onto_active_bounds(
        self, evaluator: Any, m: Measure, params: Any, criterion: Any
    ) -> Measure | None:
        return onto_active_bounds(evaluator, m, params, m.goal)

    def _next_options(
        self,
        opts: dict[str, Any],
        res: Any,
        m: Measure,
        info: StartInfo,
        params: Any,
    ) -> dict[str, Any]:
        return tighten(opts, self._TIGHTEN, m, self._TOL_FLOOR)

    def _seed(self, hooked: Mapping[str, Any]) -> dict[str, Any]:
        """Options from a seeding hook, except those the user set explicitly."""
        return {k: v for k, v in hooked.items() if k not in self._user_options}

    # the loop ----------------------------------------------------------------------------
    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        info = start_info(params, init, evaluator.errordef)
        x = params.values.copy()
        opts = self._first_options(evaluator, params, x, info)
        max_rounds = int(self.options["max_rounds"])
        state = {"round": 1}
        progress = self._progress(lambda _: dict(state))
        niter = 0
        res = m = None
        improved = True
        status = Status.NOT_CONVERGED
        for round_ in range(1, max_rounds + 1):
            state["round"] = round_
            # a round after EDM < goal only polishes: if it fails, the last point stands
            polishing = m is not None and m.edm < m.goal
            try:
                res_new = self._run(evaluator, params, x, opts, progress)
                x_new = onto_bounds(np.asarray(res_new.x, dtype=np.float64), params)
                m_new = self._measure(evaluator, x_new, params, criterion)
            except (np.linalg.LinAlgError, FailMinimizeNaN, MaximumIterationReached) as exc:
                if polishing:
                    status = Status.CONVERGED
                    break
                if not isinstance(exc, np.linalg.LinAlgError):
                    raise
                return self._linalg_failure(evaluator, exc, round_, niter)
            res = res_new
            niter += niter_of(res)
            if polishing and not (m_new.f <= m.f and m_new.edm < m_new.goal):
                status = Status.CONVERGED
                break
            if not m_new.edm < m_new.goal:
                m_new = self._onto_active_bounds(evaluator, m_new, params, criterion) or m_new
            improved = m is None or m_new.f < m.f or m_new.edm < m.edm
            stuck = not bool(getattr(res, "success", True)) and np.array_equal(m_new.x, x)
            x, m = m_new.x, m_new
            if m.edm < m.goal and settled_measure(m, self.tol, parameter_scale(params)):
                status = Status.CONVERGED
                break
            if round_ == max_rounds or stuck:
                if m.edm < m.goal:  # statistically converged; base checks it is trustworthy
                    status = Status.CONVERGED
                    break
                # a failed round that did not move would fail again the same way
                improved = improved and not stuck
                break
            opts = self._next_options(opts, res, m, info, params)
            if self.verbosity >= 2:
                tols = ", ".join(f"{k}={opts[k]:.2e}" for k in self._TIGHTEN if k in opts)
                print(
                    f"  {self.name}: round {round_} stopped at EDM {m.edm:.3g} > goal {m.goal:.3g} "
                    f"({_message(res)}); again with {tols}"
                )
        assert res is not None and m is not None
        message = None
        if (
            status is not Status.CONVERGED
            and not improved
            and self._stalled_but_converged(m, criterion)
        ):
            status = Status.CONVERGED
        if status is not Status.CONVERGED:
            verdict = scipy_status(res)
            if verdict in (Status.MAXITER, Status.NONFINITE, Status.BACKEND_FAILURE):
                status = verdict
            elif not improved:
                status = Status.NO_STEP
            hint = f"; {self._LINALG_HINT}" if "linalg" in _message(res).lower() else ""
            message = (
                f"{status.message} [scipy: {_message(res)}; EDM {m.edm:.3g}, goal {m.goal:.3g}, "
                f"after {round_} round(s)]{hint}"
            )
        return SolverOutput(
            x=x,
            fmin=m.f,
            status=status,
            niter=niter if progress is None else progress.niter,
            edm=m.edm,
            gradient=m.g,
            hessian=m.H,
            inv_hessian=dense_or_none(getattr(res, "hess_inv", None)),
            message=message,
            original=res,
            extras={"rounds": round_, "scipy_message": _message(res)},
        )

    def _stalled_but_converged(self, m: Measure, criterion: Any) -> bool:
        """Whether a fit that can no longer improve counts as converged (see ScipyLeastSquares)."""
        return False

    def _progress(self, extras: Callable[[Any], dict[str, Any]]) -> ScipyProgress | None:
        """A per-iteration callback for scipy, only when someone listens (it costs time)."""
        return ScipyProgress(self, extras) if self._listening() else None

    def _linalg_failure(
        self, evaluator: Any, exc: Exception, round_: int, niter: int
    ) -> SolverOutput:
        out = self._fallback(evaluator, Status.BACKEND_FAILURE)
        out.niter = niter
        out.message = (
            f"{Status.BACKEND_FAILURE.message}: scipy raised a linear-algebra error in round "
            f"{round_} ({exc}); {self._LINALG_HINT}"
        )
        out.extras = {"rounds": round_}
        return out


def niter_of(res: Any) -> int:
    """Iterations of a scipy result (``nit``; ``njev`` for least_squares, which has none)."""
    n = getattr(res, "nit", None)
    if n is None:
        n = getattr(res, "njev", None)
    return int(n) if n is not None else 0


def _message(res: Any) -> str:
    return str(getattr(res, "message", "")).strip()


class ScipyLocalMinimizer(ScipyRoundsMinimizer):
    """Base of the :func:`scipy.optimize.minimize` wrappers; a subclass names its method.

    A subclass sets ``_METHOD = METHODS["..."]``; its options (``_OPTIONS``), whether it
    honours bounds (``SUPPORTS_BOUNDS``) and its default name follow from the table.
    """

    _METHOD: ClassVar[ScipyMethod]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        method = cls.__dict__.get("_METHOD")
        if method is not None:
            cls._OPTIONS = {**method.options, "max_rounds": 5}
            cls._TIGHTEN = method.tighten
            cls._TOL_FLOOR = dict(method.floor)
            cls.SUPPORTS_BOUNDS = method.bounds
            cls._DEFAULT_NAME = cls.__name__
            if method.name == "dogleg":
                cls._LINALG_HINT = (
                    "dogleg needs a positive-definite Hessian; use ScipyTrustNCG or "
                    "ScipyTrustKrylov where the loss has negative curvature"
                )

    def _first_options(
        self, evaluator: Any, params: Any, x: np.ndarray, info: StartInfo
    ) -> dict[str, Any]:
        method = self._METHOD
        opts = {k: v for k, v in self.options.items() if k in method.options and v is not None}
        if "scale" in opts:  # TNC wants an array
            opts["scale"] = np.asarray(opts["scale"], dtype=np.float64)
        if method.start is not None:
            opts.update(self._seed(method.start(x, info, params, opts)))
        for key in method.budget:  # COBYLA wants at least n + 2; the evaluator stops first
            opts[key] = max(evaluator.maxiter, x.size + 2)
        return opts

    def _next_options(
        self,
        opts: dict[str, Any],
        res: Any,
        m: Measure,
        info: StartInfo,
        params: Any,
    ) -> dict[str, Any]:
        new = super()._next_options(opts, res, m, info, params)
        if self._METHOD.restart is not None:
            new.update(self._METHOD.restart(res, m, info, params, new))
        return {k: v for k, v in new.items() if v is not None}

    def _run(
        self, evaluator: Any, params: Any, x: np.ndarray, opts: dict[str, Any], progress: Any
    ) -> Any:
        return run_minimize(self._METHOD, evaluator, params, x, opts, progress, hessian=True)


def run_minimize(
    method: ScipyMethod,
    evaluator: Any,
    params: Any,
    x: np.ndarray,
    opts: Mapping[str, Any],
    progress: Any,
    hessian: bool,
) -> Any:
    """One call of :func:`scipy.optimize.minimize` with the evaluator's value, gradient, Hessian.

    The gradient is passed when the method uses it (``jac=True`` on ``value_gradient``,
    so each point costs one call), the Hessian when ``hessian`` is True and the method
    uses it (or always, where scipy requires it), the bounds when there are any.
    """
    callback = progress
    if progress is not None and method.callback_x:

        def callback(x: np.ndarray) -> None:
            last = evaluator.record
            same = last.last_x is not None and np.array_equal(last.last_x, x)
            progress(scipy.optimize.OptimizeResult(x=x, fun=last.last_value if same else np.nan))

    kwargs: dict[str, Any] = {"method": method.name, "options": dict(opts), "callback": callback}
    if method.gradient:
        fun = evaluator.value_gradient
        kwargs["jac"] = True
    else:
        fun = evaluator.value
    bounds = scipy_bounds(params, method.keep_feasible)
    if bounds is not None and method.clip:
        lower, upper, value = params.lower, params.upper, evaluator.value

        def fun(x: np.ndarray) -> float:
            return value(np.clip(x, lower, upper))

    if method.hessian and (hessian or method.hessian_required):
        kwargs["hess"] = evaluator.hessian
    if bounds is not None:
        kwargs["bounds"] = bounds
    return scipy.optimize.minimize(fun, x, **kwargs)
