"""Sparse Jacobians: a sparsity pattern, column grouping and grouped finite differences.

With a known pattern (which residual depends on which parameter, as scipy
``least_squares``' ``jac_sparsity``) columns that share no row are differenced together
(Curtis, Powell and Reid 1974): one perturbation of all the columns of a group gives all
their entries at once, so a Jacobian costs a few residual evaluations per *group* instead
of per parameter. Central differences (one-sided second-order ones within two steps of
a bound, as :mod:`~zfitlite.backends.numdiff` does) with the step ``sqrt(eps)``
relative to each parameter's scale (as :mod:`~zfitlite.backends.numdiff` sizes them):
two residual calls per group. (The dense Jacobian's Richardson extrapolation takes
steps of ``eps^(1/5)``, too long for a parameter far from zero whose function varies on
a short scale, such as a peak's centre at 1,000 with width 1, and doubles the calls.)

The result is a ``scipy.sparse.csr_matrix`` with exactly the pattern's structure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from ..exceptions import LossOutputError
from .numdiff import Typical, _sides, _split, steps

#: Relative step of the central (and one-sided second-order) differences: ``sqrt(eps)``
#: (scipy's 2-point step), shorter than the error-balancing ``eps^(1/3)``: a parameter far
#: from zero whose function varies on a short scale (a peak's centre at 6e4, width 1)
#: then still gets a step well inside that scale (1e-3, where ``eps^(1/3)`` gives 0.4 and
#: a Jacobian wrong by percents), at the price of rounding of about 1e-8 relative on a
#: well-scaled function (central differences: no truncation error to speak of there).
_C_CENTRAL = float(np.finfo(np.float64).eps) ** 0.5

#: Relative step of :func:`grouped_hessian` on an exact gradient (error-balancing for
#: central differences, about 1e-10 relative).
HESSIAN_STEP_EXACT = float(np.finfo(np.float64).eps) ** (1 / 3)
#: ... and on a gradient from finite differences (about 1e-4 relative).
HESSIAN_STEP_NOISY = float(np.finfo(np.float64).eps) ** 0.25

__all__ = [
    "HESSIAN_STEP_EXACT",
    "HESSIAN_STEP_NOISY",
    "SPARSE_NEEDS_NUMPY",
    "SparsePattern",
    "as_pattern",
    "dense_jacobian",
    "group_columns",
    "grouped_hessian",
    "grouped_jacobian",
    "hessian_pattern",
    "is_sparse",
]


#: What to do about a sparse Jacobian on a backend that has no sparse path.
SPARSE_NEEDS_NUMPY = (
    "the jacobian returned a scipy.sparse matrix, which only the numpy backend keeps sparse; "
    "create the loss with backend='numpy' (or pass jac_sparsity=, which picks it)"
)


def dense_jacobian(J: Any) -> np.ndarray:
    """A user's Jacobian as a float64 array, on a backend without a sparse path: a
    ``scipy.sparse`` matrix is refused with :data:`SPARSE_NEEDS_NUMPY` (the automatic
    backend choice picked JAX for residuals that trace, the user meant sparse)."""
    if is_sparse(J):
        raise LossOutputError(SPARSE_NEEDS_NUMPY)
    return np.asarray(J, dtype=np.float64)


def is_sparse(a: Any) -> bool:
    """True for a ``scipy.sparse`` matrix or array."""
    return scipy.sparse.issparse(a)


def as_pattern(pattern: Any, n: int | None = None, m: int | None = None) -> Any:
    """The structure of ``pattern`` (dense or sparse, nonzero = "depends") as a 0/1
    ``csc_matrix``; a clear ``ValueError`` when it is not a 2-D matrix with ``n`` columns
    (and ``m`` rows, when given)."""
    P: Any
    if is_sparse(pattern):
        P = scipy.sparse.csc_matrix(pattern)
    else:
        arr = np.asarray(pattern)
        if arr.ndim != 2:
            raise ValueError(
                f"jac_sparsity must be a 2-D (residuals x parameters) matrix, got shape {arr.shape}"
            )
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"jac_sparsity must hold numbers or booleans, got dtype {arr.dtype}")
        P = scipy.sparse.csc_matrix(arr != 0)
    shape: tuple[int, int] = P.shape
    if len(shape) != 2:
        raise ValueError(f"jac_sparsity must be 2-D, got shape {shape}")
    if n is not None and shape[1] != n:
        raise ValueError(
            f"jac_sparsity has {shape[1]} columns but there are {n} parameters; it must have "
            "shape (number of residuals, number of parameters)"
        )
    if m is not None and shape[0] != m:
        raise ValueError(
            f"jac_sparsity has {shape[0]} rows but the residuals have {m} entries; it must "
            "have shape (number of residuals, number of parameters)"
        )
    P.eliminate_zeros()
    P = scipy.sparse.csc_matrix((np.ones(P.nnz), P.indices.copy(), P.indptr.copy()), shape=P.shape)
    P.sort_indices()
    return P


def group_columns(P: Any) -> np.ndarray:
    """Greedy grouping of the columns of ``P`` into sets of structurally orthogonal
    columns (no two in a group share a row): the group index of each column.

    Columns are visited by decreasing count of nonzeros (largest first, as in the
    Curtis-Powell-Reid and Coleman-Moré heuristics); each joins the first group none of
    whose rows it touches.
    """
    m, n = P.shape
    groups = np.full(n, -1, dtype=np.int64)
    counts = np.diff(P.indptr)
    order = np.argsort(-counts, kind="stable")
    used: list[np.ndarray] = []  # per group: the rows it touches
    for j in order:
        rows = P.indices[P.indptr[j] : P.indptr[j + 1]]
        for g, taken in enumerate(used):
            if not taken[rows].any():
                taken[rows] = True
                groups[j] = g
                break
        else:
            taken = np.zeros(m, dtype=bool)
            taken[rows] = True
            used.append(taken)
            groups[j] = len(used) - 1
    return groups


@dataclass(frozen=True)
class SparsePattern:
    """A Jacobian's structure and its column groups (built once per loss layout).

    Attributes
    ----------
    P : scipy.sparse.csc_matrix
        The 0/1 pattern, shape ``(m, n)``.
    groups : numpy.ndarray
        Each column's group (:func:`group_columns`).
    ngroups : int
    """

    P: Any
    groups: np.ndarray
    ngroups: int
    #: each stored entry's column (``P``'s CSC order)
    col_of: np.ndarray

    @classmethod
    def of(cls, pattern: Any, n: int | None = None) -> SparsePattern:
        P = as_pattern(pattern, n)
        groups = group_columns(P)
        col_of = np.repeat(np.arange(P.shape[1]), np.diff(P.indptr))
        return cls(P, groups, int(groups.max(initial=-1)) + 1, col_of)

    @property
    def shape(self) -> tuple[int, int]:
        return self.P.shape

    def calls(self) -> int:
        """Most residual calls of one :func:`grouped_jacobian`: two per group (a group's
        columns may split by side near bounds: at most three kinds), plus the centre."""
        return 2 * min(3 * self.ngroups, self.P.shape[1]) + 1


def grouped_jacobian(
    func: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    pattern: SparsePattern,
    typical: Typical = None,
) -> Any:
    """The Jacobian of ``func`` at ``x`` with ``pattern``'s structure, by grouped finite
    differences (see the module docstring); a ``csr_matrix`` of shape ``(m, n)``."""
    x = np.asarray(x, dtype=np.float64)
    P = pattern.P
    m, n = P.shape
    typ, lower, upper = _split(typical)
    h = steps(x, typ, _C_CENTRAL)
    side = _sides(x, 2 * h, lower, upper)
    data = np.zeros(P.nnz)
    col_of = pattern.col_of
    f0 = None
    # groups split by kind: central columns, and one-sided columns per side
    if not side.any():  # no bound near: every column central, one kind of group
        diffs = np.empty((pattern.ngroups, m))
        for g in range(pattern.ngroups):
            e = np.where(pattern.groups == g, h, 0.0)
            diffs[g] = np.asarray(func(x + e)) - np.asarray(func(x - e))
        data = diffs[pattern.groups[col_of], P.indices] / (2.0 * h)[col_of]
        return scipy.sparse.csc_matrix((data, P.indices, P.indptr), shape=(m, n)).tocsr()
    for kind in (0, 1, -1):
        in_kind = side == kind
        if not in_kind.any():
            continue
        kgroups = np.unique(pattern.groups[in_kind])
        diffs = np.empty((kgroups.size, m))
        for a, g in enumerate(kgroups):
            e = np.where(in_kind & (pattern.groups == g), kind * h if kind else h, 0.0)
            if kind == 0:
                diffs[a] = np.asarray(func(x + e)) - np.asarray(func(x - e))
            else:  # second order, away from the bound: 4 f(x + s h) - f(x + 2 s h) - 3 f(x)
                if f0 is None:
                    f0 = np.asarray(func(x))
                diffs[a] = 4.0 * np.asarray(func(x + e)) - np.asarray(func(x + 2 * e)) - 3.0 * f0
        gidx = np.full(pattern.ngroups, -1, dtype=np.int64)
        gidx[kgroups] = np.arange(kgroups.size)
        take = in_kind[col_of]
        cols_t = col_of[take]
        denom = 2.0 * h if kind == 0 else 2.0 * kind * h
        data[take] = diffs[gidx[pattern.groups[cols_t]], P.indices[take]] / denom[cols_t]
    J = scipy.sparse.csc_matrix((data, P.indices, P.indptr), shape=(m, n))
    return J.tocsr()


def grouped_hessian(
    grad: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    structure: Any,
    typical: Typical = None,
    c: float = HESSIAN_STEP_EXACT,
) -> np.ndarray:
    """The Hessian (dense, ``n x n``) from central differences of a gradient, in groups.

    ``c`` is the relative step: :data:`HESSIAN_STEP_EXACT` for an exact gradient,
    :data:`HESSIAN_STEP_NOISY` for one that is itself a finite difference (its error,
    about 1e-8 relative, is divided by the step).

    ``structure`` is the Hessian's pattern (``n x n``; for a least-squares loss the
    structure of ``J^T J``, :func:`hessian_pattern`). Symmetry is used as in Powell and
    Toint (1979): the few *dense* columns (those with many more nonzeros than the typical
    one, e.g. a background parameter shared by every residual) are differenced one by
    one, and their rows are left out when the other columns are grouped, the entries
    there being taken from the dense columns. A block-sparse problem with a shared
    background then costs a handful of groups, not ``n``. The result is symmetrised.
    """
    x = np.asarray(x, dtype=np.float64)
    P = as_pattern(structure)
    n = P.shape[1]
    counts = np.diff(P.indptr)
    dense = counts > max(16, 4 * float(np.median(counts)) if n else 0.0)
    keep = scipy.sparse.diags((~dense).astype(float)) @ P  # rows of dense columns out
    groups = group_columns(scipy.sparse.csc_matrix(keep))
    ng = int(groups.max(initial=-1)) + 1
    groups = np.where(dense, ng + np.cumsum(dense) - 1, groups)  # one group per dense column
    typ, _, _ = _split(typical)
    h = steps(x, typ, c)
    H = np.zeros((n, n))
    for g in range(int(groups.max(initial=-1)) + 1):
        cols = groups == g
        if not cols.any():
            continue
        e = np.where(cols, h, 0.0)
        d = np.asarray(grad(x + e)) - np.asarray(grad(x - e))
        for j in np.flatnonzero(cols):
            rows = P.indices[P.indptr[j] : P.indptr[j + 1]]
            if not dense[j]:
                rows = rows[~dense[rows]]
            H[rows, j] = d[rows] / (2.0 * h[j])
    Hd = H[:, dense]
    H[dense, :] = Hd.T  # the dense columns give the rows the grouping left out
    H[:, dense] = Hd
    return 0.5 * (H + H.T)


def hessian_pattern(J: Any) -> Any:
    """The structure of ``J^T J`` (a sparse Jacobian, or a :class:`SparsePattern`): two
    parameters interact in a least-squares loss's Hessian only where a residual depends
    on both."""
    P = J.P if isinstance(J, SparsePattern) else as_pattern(J)
    return as_pattern((P.T @ P).tocsc())
