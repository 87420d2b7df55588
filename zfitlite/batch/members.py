"""Member by member: the minimizer itself fits each member (losses or minimizers without a
vectorisable core)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._composite import observed_count
from ..exceptions import FailMinimizeNaN
from ..params import Params
from ..result import FitResult
from ..status import Status
from .problem import (
    _MaskedResiduals,
    _member_data,
    _member_loss,
    _missing_mask,
    _plain_params,
    _Problem,
    _too_few_message,
)


def _solve_each(
    problem: _Problem, x0: np.ndarray, data: tuple, ids: Sequence[Any]
) -> dict[str, Any]:
    """One fit per member with the given minimizer (losses that do not vectorise)."""
    results: list[FitResult] = []
    masks: list[np.ndarray | None] = []
    for i in range(x0.shape[0]):
        member = _member_data(data, i)
        name = str(ids[i])
        mask = None
        if problem.kind == "lsq":
            try:
                mask = _missing_mask(problem.func, x0[i], member)
            except Exception:  # the loss raises: the fit below reports it
                mask = None
        params = (
            Params(problem.names, x0[i], problem.lower, problem.upper)
            if np.all(np.isfinite(x0[i]))
            else None
        )
        nobs = (
            -1 if mask is None else observed_count(_MaskedResiduals(problem.func), (mask, *member))
        )
        if params is None:
            results.append(
                _invalid_result(problem, x0[i], Status.NONFINITE, "start value not finite")
            )
        elif problem.kind == "lsq" and nobs is not None and 0 <= nobs < len(problem.names):
            results.append(_too_few(problem, x0[i], nobs))
        else:
            loss = _member_loss(problem, member, mask, name)
            try:
                results.append(problem.minimizer.minimize(loss, params))
            except Exception as exc:  # a per-member failure is a per-member status
                status = (
                    Status.NONFINITE if isinstance(exc, FailMinimizeNaN) else Status.LOSS_RAISED
                )
                why = f"{type(exc).__name__}: {exc}"
                results.append(_invalid_result(problem, x0[i], status, why))
        if results[-1].status is Status.INTERRUPTED:
            # Ctrl-C stops the whole batch, as it does the compiled path; the member's own
            # fit has already returned its best point, so nothing is left half-done
            raise KeyboardInterrupt(
                f"batch interrupted by the user at member {ids[i]!r} ({i} of {x0.shape[0]} done)"
            )
        results[-1].info.update({"id": ids[i], "nobs": nobs, "loop": "each"})
        masks.append(mask)
    return {"results": results, "masks": masks}


def _invalid_result(problem: _Problem, x: np.ndarray, status: Status, why: str) -> FitResult:
    values = np.where(np.isfinite(x), x, np.nan)
    return FitResult(
        params=_plain_params(problem, values),
        fmin=np.nan,
        edm=np.nan,
        status=status,
        tol=problem.minimizer.tol,
        errordef=problem.errordef,
        minimizer=problem.minimizer,
        info={"niter": 0, "loop": "batch"},
        message=f"{status.message}: {why}",
    )


def _too_few(problem: _Problem, x: np.ndarray, nobs: int) -> FitResult:
    result = _invalid_result(problem, x, Status.SINGULAR, "")
    result.message = f"stopped: {_too_few_message(nobs, len(problem.names))}"
    return result
