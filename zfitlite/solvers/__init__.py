"""Solvers: the base minimizer and one file per solver family."""

from .base import BaseMinimizer, IterationState, SolverOutput
from .levenberg_marquardt import LevenbergMarquardt
from .scipy_bfgs import ScipyBFGS
from .scipy_global import DifferentialEvolution

__all__ = [
    "BaseMinimizer",
    "DifferentialEvolution",
    "IterationState",
    "LevenbergMarquardt",
    "ScipyBFGS",
    "SolverOutput",
]
