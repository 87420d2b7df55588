"""Solvers: the base minimizer and one file per solver family."""

from .._profile import set_default_solver
from .base import BaseMinimizer, IterationState, SolverOutput
from .bfgs_native import BFGS
from .combined import GlobalLocal, MultiStart
from .levenberg_marquardt import LevenbergMarquardt
from .minuit import Minuit
from .scipy_bfgs import ScipyBFGS
from .scipy_global import (
    SHGO,
    BaseGlobalMinimizer,
    BasinHopping,
    DifferentialEvolution,
    Direct,
    DualAnnealing,
)
from .scipy_least_squares import ScipyLeastSquares
from .scipy_local import (
    ScipyCOBYLA,
    ScipyDogleg,
    ScipyLBFGSB,
    ScipyNelderMead,
    ScipyNewtonCG,
    ScipyPowell,
    ScipySLSQP,
    ScipyTruncNC,
    ScipyTrustConstr,
    ScipyTrustKrylov,
    ScipyTrustNCG,
)
from .scipy_minimize import ScipyMinimize

# the profile (FitResult.errors, plots) fits with Levenberg-Marquardt; it is handed the
# solver from here, above both, instead of importing it (no import circle)
set_default_solver(lambda tol: LevenbergMarquardt(tol=tol))

__all__ = [
    "BFGS",
    "SHGO",
    "BaseGlobalMinimizer",
    "BaseMinimizer",
    "BasinHopping",
    "DifferentialEvolution",
    "Direct",
    "DualAnnealing",
    "GlobalLocal",
    "IterationState",
    "LevenbergMarquardt",
    "Minuit",
    "MultiStart",
    "ScipyBFGS",
    "ScipyCOBYLA",
    "ScipyDogleg",
    "ScipyLBFGSB",
    "ScipyLeastSquares",
    "ScipyMinimize",
    "ScipyNelderMead",
    "ScipyNewtonCG",
    "ScipyPowell",
    "ScipySLSQP",
    "ScipyTruncNC",
    "ScipyTrustConstr",
    "ScipyTrustKrylov",
    "ScipyTrustNCG",
    "SolverOutput",
]
