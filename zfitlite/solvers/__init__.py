"""Solvers: the base minimizer and one file per solver family."""

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
