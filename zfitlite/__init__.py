"""zfitlite: a general-purpose minimizer framework with zfit's ``minimize`` API.

Public names only; no heavy backend (jax, tensorflow) is imported here.

>>> import zfitlite
>>> def nll(x):
...     return 0.5 * ((x[0] - 3.0) / 2.0) ** 2
>>> nll.errordef = 0.5
>>> result = zfitlite.minimize.LevenbergMarquardt().minimize(nll, [0.0])
>>> result.valid
True
"""

from typing import Any

from . import loss, minimize
from ._fitloop import FitProgress, fit_each
from .batch import BatchFitResult, minimize_batch
from .cache import GraphCachable
from .constraints import GaussianConstraint
from .exceptions import BackendNotAvailable, FailMinimizeNaN, MaximumIterationReached, ZfitliteError
from .loss import LeastSquares, SimpleLoss
from .params import Params
from .result import FitResult
from .status import Status
from .to_loss import with_constraints

__version__ = "0.1.0"

__all__ = [
    "BackendNotAvailable",
    "BatchFitResult",
    "FailMinimizeNaN",
    "FitProgress",
    "FitResult",
    "GaussianConstraint",
    "GraphCachable",
    "LeastSquares",
    "MaximumIterationReached",
    "Params",
    "SimpleLoss",
    "Status",
    "ZfitliteError",
    "__version__",
    "fit_each",
    "loss",
    "minimize",
    "minimize_batch",
    "plot",
    "with_constraints",
]


def __getattr__(name: str) -> Any:
    """``zfitlite.plot`` is imported on first use (it needs matplotlib only when called)."""
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'zfitlite' has no attribute {name!r}")
