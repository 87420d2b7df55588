"""The zfit-style namespace: minimizers, criteria and strategies.

``import zfitlite; zfitlite.minimize.LevenbergMarquardt()`` mirrors ``zfit.minimize``.
"""

from .criterion import EDM, ConvergenceCriterion
from .result import FitResult
from .solvers import (
    BaseMinimizer,
    DifferentialEvolution,
    IterationState,
    LevenbergMarquardt,
    ScipyBFGS,
)
from .strategy import DefaultStrategy, DefaultToyStrategy, PushbackStrategy, ZfitStrategy

__all__ = [
    "EDM",
    "BaseMinimizer",
    "ConvergenceCriterion",
    "DefaultStrategy",
    "DefaultToyStrategy",
    "DifferentialEvolution",
    "FitResult",
    "IterationState",
    "LevenbergMarquardt",
    "PushbackStrategy",
    "ScipyBFGS",
    "ZfitStrategy",
]
