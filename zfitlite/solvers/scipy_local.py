"""Local minimizers of :func:`scipy.optimize.minimize`, one class per method.

Each class is a row of the table :data:`~zfitlite.solvers._scipy_common.METHODS`; the
shared loop lives in :class:`~zfitlite.solvers._scipy_common.ScipyLocalMinimizer`:

* gradients and Hessians come from the evaluator (JAX autodiff, the user's derivatives,
  or numerical differences), counted like every other evaluation, and only for the
  methods that use them;
* converged means *our* EDM, from the gradient and Hessian at scipy's answer, is below
  ``tol * errordef`` (over the parameters not held by a bound); when scipy stops before
  that, its tolerances are tightened and it runs again from where it stopped, at most
  ``max_rounds`` times;
* bounds go to scipy where it honours them (L-BFGS-B, TNC, SLSQP, trust-constr, Powell,
  Nelder-Mead, COBYLA); the other methods refuse bounded parameters with a
  ``ValueError`` naming the minimizers that can;
* a previous result (``init``) gives start values and, where the method can use them,
  an inverse Hessian (BFGS), conjugate directions one sigma long (Powell's ``direc``,
  Nelder-Mead's ``initial_simplex``), a trust radius (trust-region methods), variable
  scales (TNC) or an initial radius (COBYLA's ``rhobeg``). Step sizes given in the
  parameters serve the same way. Options set explicitly win over these.

Every class takes the common arguments ``tol, verbosity, criterion, strategy, maxiter,
name, options, callback`` and the option ``max_rounds`` (5).
"""

from __future__ import annotations

from ._scipy_common import METHODS, ScipyLocalMinimizer

__all__ = [
    "ScipyBFGS",
    "ScipyCOBYLA",
    "ScipyDogleg",
    "ScipyLBFGSB",
    "ScipyNelderMead",
    "ScipyNewtonCG",
    "ScipyPowell",
    "ScipySLSQP",
    "ScipyTruncNC",
    "ScipyTrustConstr",
    "ScipyTrustKrylov",
    "ScipyTrustNCG",
    "local_minimizers",
]


class ScipyBFGS(ScipyLocalMinimizer):
    """BFGS quasi-Newton method, with gradients from the backend.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``gtol`` (first-round gradient tolerance, 1e-5; tightened between rounds),
        ``c1``, ``c2`` (line-search constants, 1e-4 and 0.9), ``xrtol`` (0),
        ``max_rounds`` (5).

    Notes
    -----
    No bounds: use :class:`ScipyLBFGSB` or
    :class:`~zfitlite.minimize.LevenbergMarquardt`. A result passed as ``init`` gives
    its inverse Hessian as BFGS's starting matrix (``hess_inv0``); later rounds start
    from scipy's own estimate.
    """

    _METHOD = METHODS["bfgs"]


class ScipyLBFGSB(ScipyLocalMinimizer):
    """L-BFGS-B: limited-memory BFGS with bounds.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``maxcor`` (10 stored corrections), ``ftol`` (2.2e-9, relative change of the
        loss), ``gtol`` (1e-5, projected gradient) -- both tightened between rounds --,
        ``maxls`` (20 line-search steps), ``max_rounds`` (5).

    Notes
    -----
    Honours ``lower``/``upper``. Nothing besides start values is taken from ``init``
    (scipy's L-BFGS-B accepts no initial inverse Hessian).
    """

    _METHOD = METHODS["l-bfgs-b"]


class ScipyTrustConstr(ScipyLocalMinimizer):
    """trust-constr: trust-region SQP, interior point with bounds; exact Hessian from the backend.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``xtol``, ``gtol``, ``barrier_tol`` (1e-8 each, tightened between rounds),
        ``initial_tr_radius`` (1.0), ``initial_constr_penalty`` (1.0),
        ``initial_barrier_parameter`` (0.1), ``initial_barrier_tolerance`` (0.1),
        ``max_rounds`` (5).

    Notes
    -----
    Honours bounds (passed with ``keep_feasible=True``, so the loss is never evaluated
    outside them); an answer within ``1e-8`` (relative) of a bound is put on it.
    Step sizes or ``init``'s errors set ``initial_tr_radius`` to their norm.
    """

    _METHOD = METHODS["trust-constr"]


class ScipyNewtonCG(ScipyLocalMinimizer):
    """Newton-CG: truncated Newton with conjugate gradients on the backend's Hessian.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``xtol`` (1e-5, tightened between rounds), ``c1``, ``c2`` (line-search constants,
        1e-4 and 0.9), ``max_rounds`` (5).

    Notes
    -----
    No bounds. Only start values are taken from ``init``.
    """

    _METHOD = METHODS["newton-cg"]


class ScipyTruncNC(ScipyLocalMinimizer):
    """TNC: truncated Newton with bounds (gradients from the backend).

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``xtol`` (sqrt(eps)), ``gtol`` (1e-2 eps^(1/4)) -- tightened between rounds --,
        ``accuracy`` (sqrt(eps), relative precision of the line search; tightened
        between rounds, TNC's "converged" test is relative to it), ``ftol`` (-1: off),
        ``eta``, ``stepmx``, ``maxCGit``, ``rescale`` (scipy's defaults), ``scale``
        (per-parameter scaling, default scipy's), ``max_rounds`` (5).

    Notes
    -----
    Honours bounds. Only start values are taken from ``init`` (TNC's own scaling did
    better than scaling by the previous errors in our tests).
    """

    _METHOD = METHODS["tnc"]


class ScipyTrustNCG(ScipyLocalMinimizer):
    """trust-ncg: Newton conjugate-gradient trust region on the backend's Hessian.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``gtol`` (1e-4, tightened between rounds), ``initial_trust_radius`` (1.0, or the
        norm of the step sizes / ``init``'s errors), ``max_trust_radius`` (1000),
        ``eta`` (0.15), ``max_rounds`` (5).

    Notes
    -----
    No bounds.
    """

    _METHOD = METHODS["trust-ncg"]


class ScipyTrustKrylov(ScipyLocalMinimizer):
    """trust-krylov: nearly exact trust-region steps by the GLTR Krylov method.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``gtol`` (1e-4, tightened between rounds), ``initial_trust_radius`` (1.0, or the
        norm of the step sizes / ``init``'s errors), ``max_trust_radius`` (1000),
        ``eta`` (0.15), ``inexact`` (True), ``max_rounds`` (5).

    Notes
    -----
    No bounds.
    """

    _METHOD = METHODS["trust-krylov"]


class ScipyDogleg(ScipyLocalMinimizer):
    """dogleg trust region; needs a positive-definite Hessian along the way.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``gtol`` (1e-4, tightened between rounds), ``initial_trust_radius`` (1.0, or the
        norm of the step sizes / ``init``'s errors), ``max_trust_radius`` (1000),
        ``eta`` (0.15), ``max_rounds`` (5).

    Notes
    -----
    No bounds. Where the Hessian is not positive definite scipy cannot take a step: the
    result is invalid with status ``BACKEND_FAILURE`` and a message pointing to
    :class:`ScipyTrustNCG` / :class:`ScipyTrustKrylov`.
    """

    _METHOD = METHODS["dogleg"]


class ScipyPowell(ScipyLocalMinimizer):
    """Powell's conjugate-direction method (no derivatives).

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``xtol`` (1e-4, line-search accuracy), ``ftol`` (1e-4, relative change of the
        loss) -- both tightened between rounds --, ``max_rounds`` (5).

    Notes
    -----
    Honours bounds. The starting directions (``direc``) are one-sigma steps: the
    eigenvectors of ``init``'s covariance when it has an inverse Hessian (directions
    conjugate with respect to the Hessian), else the step sizes along the axes; later
    rounds go on with scipy's final directions.
    """

    _METHOD = METHODS["powell"]


class ScipySLSQP(ScipyLocalMinimizer):
    """SLSQP: sequential least-squares quadratic programming, with bounds.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``ftol`` (1e-6, absolute change of the loss; tightened between rounds),
        ``max_rounds`` (5).

    Notes
    -----
    Honours bounds. Only start values are taken from ``init``.
    """

    _METHOD = METHODS["slsqp"]


class ScipyCOBYLA(ScipyLocalMinimizer):
    """COBYLA: derivative-free linear-approximation trust region (PRIMA), with bounds.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``rhobeg`` (1.0, initial trust radius; default: the median step size or error
        from ``init`` when known), ``tol`` (1e-4, final trust radius; tightened between
        rounds), ``max_rounds`` (5).

    Notes
    -----
    Honours bounds through scipy's ``bounds`` argument. COBYLA treats them as linear
    constraints and may try points outside; the loss is then evaluated at the trial
    point clipped into the bounds, so it never sees a value outside them. A later round
    starts with a trust radius a little larger than the one the previous round ended
    with. COBYLA needs many evaluations on curved valleys (thousands on Rosenbrock's),
    and scipy's pure-Python PRIMA implementation costs about 2 ms per evaluation.
    """

    _METHOD = METHODS["cobyla"]


class ScipyNelderMead(ScipyLocalMinimizer):
    """Nelder-Mead downhill simplex (no derivatives), with bounds.

    Parameters
    ----------
    tol, verbosity, criterion, strategy, maxiter, name, callback
        As for :class:`~zfitlite.solvers.base.BaseMinimizer`.
    options : dict, optional
        ``xatol`` (1e-4), ``fatol`` (1e-4) -- absolute tolerances, tightened between
        rounds --, ``adaptive`` (False), ``max_rounds`` (5).

    Notes
    -----
    Honours bounds. The initial simplex is built from one-sigma steps (conjugate
    directions from ``init``'s inverse Hessian, else the step sizes) when known, else
    scipy's; every later round restarts from a fresh simplex as large as the one scipy
    ended with, the classic cure for a collapsed simplex.
    """

    _METHOD = METHODS["nelder-mead"]


def local_minimizers() -> tuple[type[ScipyLocalMinimizer], ...]:
    """Every local scipy minimizer class, in the order of the API."""
    return (
        ScipyBFGS,
        ScipyLBFGSB,
        ScipyTrustConstr,
        ScipyNewtonCG,
        ScipyTruncNC,
        ScipyTrustNCG,
        ScipyTrustKrylov,
        ScipyDogleg,
        ScipyPowell,
        ScipySLSQP,
        ScipyCOBYLA,
        ScipyNelderMead,
    )
