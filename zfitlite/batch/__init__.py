"""Many independent fits of one problem at once: :func:`minimize_batch`.

One problem (a least-squares residual function or a scalar loss) is fitted to many data
sets at once. Data come as arrays with a leading batch axis; NaN entries are missing
observations.

On JAX the batch is solved vectorised: the single-problem solver, a pure function over
an explicit state (:mod:`~zfitlite.solvers.lm_least_squares`,
:mod:`~zfitlite.solvers.bfgs_native`), is mapped over the batch with the backend's
``vmap`` and compiled once with its ``jit``. Every member keeps its own damping, trust
radius, status and counters; under ``vmap`` the loop runs while any member is unfinished
and a finished member's state is carried unchanged. The compiled program is cached per
residual function (or loss function), chunk size and data shapes, so a second batch of
the same shapes does not compile again.

Losses that do not trace under JAX (plain numpy) fall back to one fit per member with
the given minimizer. Either way the batch can be split into chunks spread over a
:class:`concurrent.futures.Executor` or a ``dask.distributed.Client``; results are
gathered in order.

The package: :mod:`.api` (:func:`minimize_batch`), :mod:`.problem` (the problem as
picklable data, missing data), :mod:`.vectorised` (a minimizer's native core under
``vmap``), :mod:`.members` (member by member with the minimizer itself),
:mod:`.executors` (chunks on threads, executors, Dask) and :mod:`.result`
(:class:`BatchFitResult`).
"""

from .api import minimize_batch
from .executors import DEFAULT_CHUNK, PROGRESS_MIN_SIZE, THREADED_MIN_SIZE
from .result import BatchFitResult

__all__ = [
    "DEFAULT_CHUNK",
    "PROGRESS_MIN_SIZE",
    "THREADED_MIN_SIZE",
    "BatchFitResult",
    "minimize_batch",
]
