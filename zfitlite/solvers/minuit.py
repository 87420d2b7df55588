"""Minuit: iminuit's Migrad behind zfitlite's contract (the ``iminuit`` extra).

How ``tol`` maps onto Migrad's
------------------------------
Migrad stops when *its* EDM estimate is below ``0.002 * tol_minuit * errordef`` and
still calls a minimum valid up to ten times that goal. We set
``tol_minuit = 0.1 * tol / 0.002 = 50 * tol``, so that Migrad's own acceptance
threshold (ten times its goal) is exactly ours, ``tol * errordef``. Migrad's EDM comes
from its approximate (variable-metric) Hessian, so after Migrad we compute *our* EDM
with the backend's gradient and Hessian; while it is above ``tol * errordef``, Migrad
continues from where it stopped with a ten times smaller ``tol_minuit``, at most
``max_rounds`` times. ``CONVERGED`` therefore means the same as for every other
minimizer: our EDM is below ``tol * errordef``.

What goes to Minuit: ``errordef``; the gradient when the backend has an exact one (JAX
autodiff, or a user-supplied gradient/Jacobian; numerical differences are left to
Minuit's own, better-tuned ones); bounds as Minuit limits; step sizes (given, or the
Hesse errors of an ``init`` result, or its inverse-Hessian estimate) as Minuit's initial
errors. After Migrad, Minuit's Hesse runs (``options["hesse"]``; not again when Migrad's
own final Hesse left an accurate covariance, as it does at strategy >= 1) and its covariance is
stored in ``result.approx`` (``inv_hessian = cov / (2 * errordef)``), so
``result.hesse(method="approx")`` gives Minuit's errors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from ..criterion import (
    Measure,
    bounded_edm,
    free_mask,
    onto_active_bounds,
    parameter_scale,
    settled_measure,
)
from ..exceptions import BackendNotAvailable
from ..status import Status
from .base import BaseMinimizer, IterationState, SolverOutput
from .rounds import round_end, run_rounds

__all__ = ["Minuit"]

#: Migrad's EDM goal is ``MINUIT_EDM_FACTOR * tol_minuit * errordef``.
MINUIT_EDM_FACTOR = 0.002


def import_iminuit() -> Any:
    """Import iminuit, or raise :class:`~zfitlite.exceptions.BackendNotAvailable`."""
    try:
        import iminuit
    except ImportError as exc:
        raise BackendNotAvailable(
            "zfitlite.minimize.Minuit needs iminuit: install it with `pip install zfitlite[iminuit]` "
            "(or `pip install iminuit`)"
        ) from exc
    return iminuit


def minuit_tol(tol: float) -> float:
    """Migrad's ``tol`` whose acceptance threshold (ten times its goal) is ``tol * errordef``."""
    return 0.1 * tol / MINUIT_EDM_FACTOR


@contextmanager
def _minuit_warnings(store: list[str]) -> Iterator[None]:
    """Record iminuit's warnings in ``store``; let every other warning through unchanged.

    Only iminuit's own warnings get an "always" filter; the others meet the filters in
    force where they are raised (so an "error" or a module-based "ignore" still applies),
    and those that would have been shown are shown after the block.
    """
    from iminuit.warnings import IMinuitWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IMinuitWarning)
        yield
    for w in caught:
        if issubclass(w.category, IMinuitWarning):
            store.append(f"{w.category.__name__}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _initial_errors(params: Any, init: Any, errordef: float) -> np.ndarray:
    """Step sizes for Minuit: given ones, else from ``init``'s inverse Hessian; NaN where unknown."""
    step = params.stepsize.copy()
    if np.all(np.isfinite(step)) or init is None or tuple(init.names) != tuple(params.names):
        return step
    inv = init.approx.inv_hessian
    if inv is None and init.approx.hessian is not None:
        try:
            inv = np.linalg.inv(np.asarray(init.approx.hessian))
        except np.linalg.LinAlgError:
            inv = None
    if inv is not None:
        var = 2.0 * errordef * np.diag(np.asarray(inv, dtype=np.float64))
        ok = np.isnan(step) & np.isfinite(var) & (var > 0)
        step[ok] = np.sqrt(var[ok])
    return step


class Minuit(BaseMinimizer):
    """iminuit's Migrad (:class:`iminuit.Minuit`), with our EDM as the convergence test.

    Parameters
    ----------
    tol : float, optional
        Converged means our ``EDM < tol * errordef`` (default 1e-3); see the module
        docstring for how it maps onto Migrad's ``tol``.
    mode : int, optional
        Minuit's strategy: 0 fast, 1 (default) balanced, 2 careful (more Hesse work).
    gradient : bool or None, optional
        None (default): pass the backend's gradient to Minuit when it is exact (JAX, or
        a gradient given with the loss). True: always pass ours (numerical for plain
        numpy). False: let Minuit differentiate numerically.
    verbosity, options, maxiter, criterion, strategy, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`. Options: ``max_rounds``
        (4 Migrad runs at most, each with a ten times smaller ``tol``), ``hesse`` (True:
        run Minuit's Hesse after Migrad unless Migrad's own ended accurate, so that ``result.hesse(method="approx")`` is
        Minuit's Hesse; False keeps Migrad's variable-metric covariance). The callback
        is called once per Migrad run. Verbosity 6-9 sets Minuit's ``print_level`` to 2,
        10 to 3 (Minuit prints from C++, on the process's stdout).

    Notes
    -----
    Status: Migrad at its call limit, or our evaluation budget spent, is ``MAXITER``;
    our EDM below the goal is ``CONVERGED``; otherwise ``NOT_CONVERGED`` when Minuit
    calls its minimum valid or only too far from the goal (``is_above_max_edm``), and
    ``BACKEND_FAILURE`` when Minuit calls it invalid for another reason. Minuit's own
    flags are in ``result.info["minuit"]``, its warnings in
    ``result.info["minuit_warnings"]``, its ``FMin`` in ``result.info["original"]``.

    Raises
    ------
    BackendNotAvailable
        When iminuit is not installed (at construction).

    Examples
    --------
    >>> import zfitlite
    >>> def nll(x):
    ...     return 0.5 * ((x[0] - 3.0) / 2.0) ** 2
    >>> nll.errordef = 0.5
    >>> result = zfitlite.minimize.Minuit(tol=1e-6).minimize(nll, [0.0])
    >>> result.valid, round(float(result.x[0]), 5), round(result.hesse(method="approx")["p0"]["error"], 5)
    (True, 3.0, 2.0)
    """

    _DEFAULT_NAME = "Minuit"
    _OPTIONS: ClassVar[dict[str, Any]] = {"max_rounds": 4, "hesse": True}
    SUPPORTS_BOUNDS = True

    def __init__(
        self,
        tol: float | None = None,
        mode: int | None = None,
        gradient: bool | None = None,
        verbosity: int | None = None,
        options: dict | None = None,
        maxiter: int | str | None = None,
        criterion: Any = None,
        strategy: Any = None,
        name: str | None = None,
        callback: Any = None,
        progress: bool | None = None,
    ) -> None:
        import_iminuit()
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
        mode = 1 if mode is None else mode
        if isinstance(mode, bool) or mode not in (0, 1, 2):
            raise ValueError(f"Minuit mode (Minuit's strategy) must be 0, 1 or 2, got {mode!r}")
        if gradient is not None and not isinstance(gradient, bool):
            raise TypeError(f"gradient must be True, False or None, got {gradient!r}")
        rounds = self.options["max_rounds"]
        if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
            raise ValueError(f"Minuit option max_rounds must be a positive integer, got {rounds!r}")
        self.mode = int(mode)
        self.gradient = gradient

    def _extra_settings(self) -> dict[str, Any]:
        return {"mode": self.mode, "gradient": self.gradient}

    def _print_level(self) -> int:
        if self.verbosity >= 10:
            return 3
        return 2 if self.verbosity >= 6 else 0

    def _minimize(self, evaluator: Any, criterion: Any, params: Any, init: Any) -> SolverOutput:
        iminuit = import_iminuit()
        errordef = evaluator.errordef
        goal = criterion.goal
        use_grad = evaluator.has_exact_gradient if self.gradient is None else self.gradient
        lower, upper = params.lower, params.upper

        # Minuit's sine transform can overshoot a limit by a rounding error: clip (two
        # ufuncs: np.clip costs several times more, on every call); nothing to clip
        # without bounds, so Minuit then calls the evaluator directly
        value: Any = evaluator.value
        gradient: Any = evaluator.gradient
        if params.has_bounds:

            def clipped_value(x: np.ndarray) -> float:
                return evaluator.value(np.minimum(np.maximum(x, lower), upper))

            def clipped_gradient(x: np.ndarray) -> np.ndarray:
                return evaluator.gradient(np.minimum(np.maximum(x, lower), upper))

            value, gradient = clipped_value, clipped_gradient

        m = iminuit.Minuit(
            value,
            params.values.copy(),
            grad=gradient if use_grad else None,
            name=list(params.names),
        )
        m.errordef = errordef
        m.strategy = self.mode
        m.print_level = self._print_level()
        m.throw_nan = False  # non-finite values are the strategy's business (the evaluator)
        if params.has_bounds:
            m.limits = list(zip(params.lower.tolist(), params.upper.tolist()))
        for i, s in enumerate(_initial_errors(params, init, errordef)):
            if np.isfinite(s) and s > 0:
                m.errors[i] = float(s)
        m.tol = minuit_tol(self.tol)
        notes: list[str] = []

        def run(rounds: int, x: np.ndarray) -> tuple[Any, np.ndarray]:
            if rounds > 1:
                m.tol = m.tol / 10.0
            with _minuit_warnings(notes):
                m.migrad(ncall=evaluator.maxiter)
            return m.fmin, np.clip(np.array(m.values, dtype=np.float64), lower, upper)

        def measure_at(x: np.ndarray) -> Measure:
            with evaluator.unbudgeted():
                f, g = evaluator.value_gradient(x)
                H = evaluator.hessian(x, f, g)  # not differenced around x again
                # Minuit's sine transform only approaches a bound: a minimum outside the
                # box ends a hair inside it; put such parameters on the bound
                here = Measure(x, f, g, H, float("nan"), goal, np.ones(x.size, dtype=bool))
                onto = onto_active_bounds(evaluator, here, params, goal)
                if onto is not None and onto.H is not None:  # dense: onto is measure()'s
                    x, f, g, H = onto.x, onto.f, onto.g, onto.H
            free = free_mask(x, g, lower, upper, at_limit=params.at_limit(x))
            return Measure(x, f, g, H, bounded_edm(g, H, free), goal, free)

        def report(rounds: int, fmin: Any, here: Measure) -> None:
            self._report(
                IterationState(
                    rounds,
                    here.x.copy(),
                    here.f,
                    here.edm,
                    {"minuit_edm": float(fmin.edm), "minuit_tol": m.tol},
                )
            )

        def halt(fmin: Any, here: Measure) -> Status | None:
            return Status.MAXITER if fmin.has_reached_call_limit else None

        def next_round(fmin: Any, here: Measure, rounds: int) -> None:
            if self.verbosity >= 2:
                print(
                    f"  {self.name}: Migrad run {rounds} stopped at {round_end(here.edm, goal)} "
                    f"(Minuit's EDM {fmin.edm:.3g}); tol {m.tol:.3g} -> {m.tol / 10:.3g}"
                )

        # converged: below the goal and numerically settled (zfitlite.criterion's rule); a
        # polishing run that hits the call limit keeps the converged point (run_rounds)
        scale = parameter_scale(params)
        done = run_rounds(
            int(self.options["max_rounds"]),
            run,
            measure_at,
            params.values.copy(),
            next_round,
            halt=halt,
            report=report,
            settled=lambda here: settled_measure(here, self.tol, scale),
            value=evaluator.value,
            bounds=(lower, upper) if params.has_bounds else None,
        )
        status = Status.NOT_CONVERGED if done.status is None else done.status
        rounds = done.rounds
        x, f, g, H, e = (
            done.measure.x,
            done.measure.f,
            done.measure.g,
            done.measure.H,
            done.measure.edm,
        )
        fmin = m.fmin
        message = None
        if status is Status.NOT_CONVERGED and not fmin.is_valid and not fmin.is_above_max_edm:
            status = Status.BACKEND_FAILURE
            message = f"{status.message}: Migrad reports an invalid minimum ({_flags(fmin)})"
        hessian, inv_hessian = H, None
        if self.options["hesse"] and status is not Status.MAXITER and not _accurate(m.fmin):
            with evaluator.unbudgeted(), _minuit_warnings(notes):
                m.hesse()
        cov = None if m.covariance is None else np.array(m.covariance, dtype=np.float64)
        if cov is not None and np.all(np.isfinite(cov)):
            inv_hessian = cov / (2.0 * errordef)
            try:
                hessian = np.linalg.inv(inv_hessian)
            except np.linalg.LinAlgError:
                hessian = H
        minuit_info = {
            "is_valid": bool(m.fmin.is_valid),
            "edm": float(m.fmin.edm),
            "edm_goal": float(m.fmin.edm_goal),
            "tol": float(m.tol),
            "nfcn": int(m.nfcn),
            "ngrad": int(m.ngrad),
            "rounds": rounds,
            "gradient": "ours" if use_grad else "minuit",
            "has_covariance": bool(m.fmin.has_covariance),
            "has_accurate_covar": bool(m.fmin.has_accurate_covar),
            "has_posdef_covar": bool(m.fmin.has_posdef_covar),
            "has_made_posdef_covar": bool(m.fmin.has_made_posdef_covar),
            "hesse_failed": bool(m.fmin.hesse_failed),
            "is_above_max_edm": bool(m.fmin.is_above_max_edm),
            "has_reached_call_limit": bool(m.fmin.has_reached_call_limit),
            "has_parameters_at_limit": bool(m.fmin.has_parameters_at_limit),
        }
        return SolverOutput(
            x=x,
            fmin=float(f),
            status=status,
            niter=rounds,
            edm=e,
            gradient=g,
            hessian=hessian,
            inv_hessian=inv_hessian,
            message=message,
            original=m.fmin,
            extras={"minuit": minuit_info, "minuit_warnings": notes},
            # Migrad's Hesse (finite differences of Minuit's own) is kept for the errors; the
            # checks behind valid test the Hessian the EDM was measured with: on an
            # ill-conditioned loss (NIST Bennett5, condition 1e17) Hesse's smallest
            # eigenvalue can be orders too large and hide a large Newton step
            measured_hessian=H,
        )


def _accurate(fmin: Any) -> bool:
    """Migrad's last run ended with an accurate covariance from its own Hesse (strategy
    >= 1 runs it at the end): a ``hesse()`` call would evaluate the same matrix again at
    the same point, about ``2 n^2`` calls for nothing."""
    return (
        bool(fmin.has_covariance)
        and bool(fmin.has_accurate_covar)
        and bool(fmin.has_posdef_covar)
        and not bool(fmin.has_made_posdef_covar)
        and not bool(fmin.hesse_failed)
    )


def _flags(fmin: Any) -> str:
    names = (
        "is_above_max_edm",
        "has_reached_call_limit",
        "hesse_failed",
        "has_made_posdef_covar",
        "has_parameters_at_limit",
    )
    bad = [n for n in names if getattr(fmin, n, False)]
    bad += [n for n in ("has_covariance", "has_posdef_covar") if not getattr(fmin, n, True)]
    return ", ".join(bad) or "no flag set"
