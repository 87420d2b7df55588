"""The table of :func:`scipy.optimize.minimize` methods zfitlite drives, and how each is
seeded from a previous result (``init``) and from the step sizes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..criterion import EPS, Measure, make_posdef

__all__ = [
    "METHODS",
    "TOL_KINDS",
    "ScipyMethod",
    "StartInfo",
    "bounded_methods",
    "dense_or_none",
    "hessian_directions",
    "posdef_or_none",
    "simplex_around",
    "start_info",
    "usable_inv_hessian",
]

# kinds of tolerance, for rounds.tighten():
#   "x"    a step/radius/relative-x tolerance: the EDM falls like its square;
#   "grad" an absolute gradient-norm tolerance: set from the gradient actually seen;
#   "frel" a relative change of the loss: set from 0.01 goal / max(|f|, 1);
#   "fabs" an absolute change of the loss: set from 0.01 goal.
TOL_KINDS = ("x", "grad", "frel", "fabs")


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
    if m.H is None:
        raise np.linalg.LinAlgError("no Hessian at this point (a matrix-free measure)")
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
    stall_stop : bool
        The method stops on the gradient alone (``gtol``), which a large loss may never
        reach in float64: its round ends once the loss has stopped changing beyond
        rounding (see :func:`~zfitlite.solvers._scipy_common.run_minimize`).
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
    stall_stop: bool = False
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
            stall_stop=True,
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
        ScipyMethod("CG", {"gtol": 1e-5}, {"gtol": "grad"}, gradient=True, stall_stop=True),
        ScipyMethod("COBYQA", {}, {}, budget=("maxfev",), bounds=True),
    )
}


def bounded_methods() -> list[str]:
    """scipy's names of the methods that honour bounds."""
    return [m.name for m in METHODS.values() if m.bounds]
