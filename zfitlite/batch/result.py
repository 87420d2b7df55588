"""The result of a batch: :class:`BatchFitResult` and the per-member statuses."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..result import Approximations, FitResult
from ..status import Status
from .problem import _member_data, _member_loss, _plain_params, _Problem, _too_few_message


class BatchFitResult:
    """The results of :func:`minimize_batch`: arrays over the batch, and members as FitResults.

    Attributes
    ----------
    x : numpy.ndarray
        ``(batch, n)`` fitted values.
    fmin, edm : numpy.ndarray
        ``(batch,)`` loss and EDM at the minimum.
    valid : numpy.ndarray of bool
        Converged, finite, enough data and no parameter at a bound.
    niter : numpy.ndarray of int
        Iterations per member.
    status : numpy.ndarray of int
        :class:`~zfitlite.status.Status` values per member.
    ids : list
        The members' ids, in order.
    nobs : numpy.ndarray of int
        Observed residuals per member (-1 where unknown: scalar losses).
    info : dict
        ``method`` ("lm", "lm_hessian", "bfgs": the minimizer's vectorised core, or "each":
        one fit per member with the minimizer itself), ``backend``,
        ``chunk_size``, ``nchunks`` and ``time`` (seconds, wall clock); for a vectorised
        solve also ``rounds`` (compiled calls that advanced the members, over all chunks),
        ``compactions`` (pooled rounds: times the members still running were regrouped),
        ``pooled`` (members that went on after their chunk's first round, pooled over all
        chunks) and ``tail`` (of those, the members finished one after the other in the
        sequential program); see ``docs/batch.md``.

    Examples
    --------
    ``result[i]`` is member ``i`` as a :class:`~zfitlite.result.FitResult` (with its
    uncertainties: ``result[i].hesse()``, ``result[i].covariance()``); ``len(result)``
    and iteration go over the members; ``str(result)`` summarises the batch.
    """

    def __init__(
        self,
        *,
        x: np.ndarray,
        fmin: np.ndarray,
        edm: np.ndarray,
        status: np.ndarray,
        niter: np.ndarray,
        ids: list,
        names: tuple[str, ...],
        nobs: np.ndarray,
        info: dict[str, Any],
        valid: np.ndarray,
        members: list[FitResult | None],
        problem: _Problem | None = None,
        data: tuple = (),
        extra: dict[str, np.ndarray] | None = None,
        messages: dict[int, str] | None = None,
    ) -> None:
        self.x = x
        self.fmin = fmin
        self.edm = edm
        self.status = status
        self.niter = niter
        self.ids = ids
        self.names = names
        self.nobs = nobs
        self.info = info
        self.valid = valid
        self._members = members
        self._problem = problem
        self._data = data
        self._extra = extra or {}
        self._messages = messages or {}

    # -- construction ----------------------------------------------------------------
    @classmethod
    def _from_chunks(
        cls,
        problem: _Problem,
        outs: list[dict],
        x0: np.ndarray,
        data: tuple,
        ids: list,
        elapsed: float,
    ) -> BatchFitResult:
        info = {
            "method": problem.method,
            "backend": problem.backend,
            "chunk_size": problem.chunk,
            "nchunks": len(outs),
            "time": elapsed,
            "minimizer": problem.minimizer.name,
        }
        n = len(problem.names)
        if problem.method == "each":
            fits: list[FitResult] = [r for o in outs for r in o["results"]]
            backends = sorted({str(r.info.get("backend")) for r in fits if "backend" in r.info})
            info["backend"] = ",".join(backends) or "none"
            for k, r in enumerate(fits):
                r.info["index"] = k
                _store_hesse(r)
            x = np.array([r.x for r in fits]).reshape(len(fits), n)
            nobs = np.array([int(r.info.get("nobs", -1)) for r in fits])
            return cls(
                x=x,
                fmin=np.array([r.fmin for r in fits], dtype=np.float64),
                edm=np.array([r.edm for r in fits], dtype=np.float64),
                status=np.array([int(r.status) for r in fits], dtype=np.int64),
                niter=np.array([int(r.info.get("niter", 0)) for r in fits], dtype=np.int64),
                ids=ids,
                names=problem.names,
                nobs=nobs,
                info=info,
                valid=np.array([r.valid for r in fits], dtype=bool),
                members=[r for r in fits],
                problem=problem,
                data=data,
            )
        cat = {
            k: np.concatenate([o[k] for o in outs]) for k in outs[0] if k not in ("ids", "stats")
        }
        for k in ("rounds", "compactions", "pooled", "tail"):
            info[k] = sum(o["stats"][k] for o in outs)
        status, messages = _final_status(problem, cat, x0)
        x = cat["x"]
        fmin = cat["fmin"]
        at_limit = problem.template.at_limit(x).any(axis=1)  # Params.at_limit broadcasts
        valid = (status == int(Status.CONVERGED)) & np.isfinite(fmin) & ~at_limit
        extra = {k: cat[k] for k in ("gradient", "hessian", "mask", "nfev", "njev", "lam")}
        return cls(
            x=x,
            fmin=fmin,
            edm=cat["edm"],
            status=status,
            niter=cat["niter"].astype(np.int64),
            ids=ids,
            names=problem.names,
            nobs=cat["nobs"].astype(np.int64),
            info=info,
            valid=valid,
            members=[None] * x.shape[0],
            problem=problem,
            data=data,
            extra=extra,
            messages=messages,
        )

    # -- sequence protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[FitResult]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> FitResult:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]  # type: ignore[return-value]
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"members are indexed by position (int), got {type(i).__name__}")
        k = int(i)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"member {i} out of range for a batch of {len(self)}")
        member = self._members[k]
        if member is None:
            member = self._members[k] = self._build_member(k)
        return member

    def by_id(self, member_id: Any) -> FitResult:
        """The member whose id is ``member_id``."""
        return self[self.ids.index(member_id)]

    # -- uncertainties over the whole batch --------------------------------------------
    def covariance(self) -> np.ndarray:
        """``(batch, n, n)`` covariances ``2 * errordef * H^-1`` from the final Hessians.

        The Gauss-Newton Hessian ``2 J^T J`` for Levenberg-Marquardt, the exact Hessian
        for BFGS, each member's own for member-by-member fits; NaN where singular.
        """
        if self._problem is None:
            raise ValueError("this result holds no Hessians")
        if self.info["method"] == "each":
            out = []
            for k in range(len(self)):
                r = self[k]
                try:
                    out.append(r.covariance(method="approx"))
                except (ValueError, np.linalg.LinAlgError):
                    out.append(np.full((len(self.names),) * 2, np.nan))
            return np.array(out)
        H = self._extra["hessian"]
        cov = np.full_like(H, np.nan)
        ok = np.isfinite(H).all(axis=(1, 2)) & (self.status != int(Status.SINGULAR))
        if ok.any():
            cov[ok] = 2.0 * self._problem.errordef * np.linalg.pinv(H[ok], hermitian=True)
        # as FitResult.covariance (uncertainties.covariance_from_hessian) does for one fit:
        # a parameter whose variance comes out non-positive gets NaN, not a wrong error
        d = np.diagonal(cov, axis1=1, axis2=2)
        bad = ~(d > 0)
        return np.where(bad[:, :, None] | bad[:, None, :], np.nan, cov)

    @property
    def hesse_errors(self) -> np.ndarray:
        """``(batch, n)`` one-sigma Hesse errors ``sqrt(diag(covariance()))``; NaN where
        singular. A member's are in its table and ``result[i].params[name]["hesse"]``.

        Not named ``errors``: :meth:`FitResult.errors <zfitlite.result.FitResult.errors>`
        are profile-likelihood intervals, as in zfit.
        """
        cov = self.covariance()
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diagonal(cov, axis1=1, axis2=2))

    def errors(self) -> np.ndarray:
        """Deprecated: the array :attr:`hesse_errors` (``FitResult.errors`` is a profile)."""
        warnings.warn(
            "BatchFitResult.errors() is renamed: use the array batch.hesse_errors (one-sigma "
            "Hesse errors, batch.hesse_errors[:, 0] for the first parameter); "
            "FitResult.errors() are profile-likelihood intervals",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.hesse_errors

    # -- members -----------------------------------------------------------------------
    def _build_member(self, k: int) -> FitResult:
        problem = self._problem
        assert problem is not None
        status = Status(int(self.status[k]))
        x = self.x[k]
        data = _member_data(self._data, k)
        mask = self._extra["mask"][k] if problem.kind == "lsq" else None
        loss = _member_loss(problem, data, mask, str(self.ids[k]))
        H = self._extra["hessian"][k]
        inv = None
        if np.all(np.isfinite(H)):
            try:
                inv = np.linalg.inv(H)
            except np.linalg.LinAlgError:
                inv = None
        params = _plain_params(problem, x)
        nfev = int(self._extra["nfev"][k])
        njev = int(self._extra["njev"][k])
        counts = (
            {"nfev": 0, "ngrad": 0, "nhess": 1, "nres": nfev, "njac": njev}
            if problem.method == "lm"
            else {"nfev": nfev, "ngrad": nfev, "nhess": 1, "nres": 0, "njac": 0}
        )
        info = {
            **counts,
            "niter": int(self.niter[k]),
            "backend": problem.backend,
            "loop": "batched",
            "method": {"lm": "gauss-newton", "lm_hessian": "damped-newton"}.get(
                problem.method, problem.method
            ),
            "id": self.ids[k],
            "index": k,
            "nobs": int(self.nobs[k]),
            "original": None,
        }
        if problem.method in ("lm", "lm_hessian"):
            info["lambda"] = float(self._extra["lam"][k])
        result = FitResult(
            params=params,
            fmin=float(self.fmin[k]),
            edm=float(self.edm[k]),
            status=status,
            tol=problem.minimizer.tol,
            errordef=problem.errordef,
            loss=loss,
            minimizer=problem.minimizer,
            criterion=None,
            approx=Approximations(self._extra["gradient"][k], H, inv),
            info=info,
            message=self._messages.get(k),
        )
        if inv is not None and status is not Status.SINGULAR:
            result.hesse(method="approx")  # stored on the member: its table shows them
        return result

    # -- summaries ---------------------------------------------------------------------
    def status_counts(self) -> dict[str, int]:
        """``{status name: count}``, most frequent first."""
        counts = Counter(Status(int(s)).name for s in self.status)
        return dict(counts.most_common())

    def __str__(self) -> str:
        from .._render import batch_text

        return batch_text(self)

    def _repr_html_(self) -> str:
        from .._render import batch_html

        return batch_html(self)

    def __repr__(self) -> str:
        return (
            f"<BatchFitResult {len(self)} members, {int(self.valid.sum())} valid, "
            f"method={self.info['method']}>"
        )


def _store_hesse(result: FitResult) -> None:
    """Store a member's Hesse errors from its solver's Hessian, where it has one."""
    try:
        result.hesse(method="approx")
    except (ValueError, np.linalg.LinAlgError):
        pass


def _final_status(problem: _Problem, cat: dict, x0: np.ndarray) -> tuple[np.ndarray, dict]:
    """Statuses after the vectorised solve, with per-member messages where useful."""
    status = cat["status"].astype(np.int64)
    messages: dict[int, str] = {}
    n = len(problem.names)
    # the solver's postprocess has settled CONVERGED / NOT_CONVERGED / SINGULAR per member;
    # what is left is about the batch's data: non-finite starts and too few observations
    nonfinite_start = ~np.all(np.isfinite(x0), axis=1)
    status[nonfinite_start] = int(Status.NONFINITE)
    for k in np.flatnonzero(nonfinite_start):
        messages[int(k)] = f"{Status.NONFINITE.message}: the start value is not finite"
    status[(status == int(Status.CONVERGED)) & ~np.isfinite(cat["fmin"])] = int(Status.NONFINITE)
    if problem.kind == "lsq":
        nobs = cat["nobs"].astype(np.int64)
        few = (nobs < n) & ~nonfinite_start
        status[few] = int(Status.SINGULAR)
        for k in np.flatnonzero(few):
            messages[int(k)] = f"stopped: {_too_few_message(int(nobs[k]), n)}"
    return status, messages
