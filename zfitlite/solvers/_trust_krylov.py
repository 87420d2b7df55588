"""scipy's ``trust-krylov`` with a deterministic trlib workspace.

scipy's ``TRLIBQuadraticSubproblem`` allocates trlib's floating-point workspace with
``np.empty`` and initialises only what ``trlib_krylov_prepare_memory`` sets (a vector of
ones and the tail of ``neglin``); trlib reads other entries of it before writing them.
For a small problem numpy serves that ``np.empty`` from its cache of freed small
buffers, so the steps trust-krylov takes depend on which arrays the process happened to
free before: the same fit, from the same start, converged or not depending on the tests
that ran before it (Rosenbrock in ``tests/test_scipy_local.py``; see
``tests/test_determinism.py``).

:func:`trust_krylov` is scipy's ``_minimize_trust_krylov`` with a subproblem whose
workspace is zeroed and prepared again (the ones) right after scipy prepares it, so a
fit depends only on its inputs. It is passed to :func:`scipy.optimize.minimize` as a
callable ``method``. It uses three private scipy names; where they are missing, or the
workspace does not have the layout of the trlib this was written for (the ones not where
trlib puts them), :data:`TRUST_KRYLOV` is plain ``"trust-krylov"`` / the workspace is
left as scipy made it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["TRUST_KRYLOV", "clean_workspace", "trust_krylov"]


def clean_workspace(fwork: Any, itmax: int) -> bool:
    """Zero trlib's float workspace except its vector of ones; False (untouched) if unknown.

    The layout is trlib's (``trlib_krylov_prepare_memory``): ``itmax + 1`` ones from
    ``23 + 11 itmax`` and ``neglin[1:]`` (zeros) from ``17 + 2 itmax``. A workspace that
    does not show exactly that is left alone.
    """
    ones = slice(23 + 11 * itmax, 24 + 12 * itmax)
    neglin = slice(17 + 2 * itmax, 17 + 3 * itmax)
    if (
        not isinstance(fwork, np.ndarray)
        or fwork.ndim != 1
        or fwork.dtype != np.float64
        or fwork.size < ones.stop
        or not np.all(fwork[ones] == 1.0)
        or not np.all(fwork[neglin] == 0.0)
    ):
        return False
    fwork[:] = 0.0
    fwork[ones] = 1.0
    return True


def _scipy_private() -> tuple[Any, Any, Any] | None:
    try:
        from scipy.optimize._optimize import _wrap_callback
        from scipy.optimize._trlib import TRLIBQuadraticSubproblem
        from scipy.optimize._trustregion import _minimize_trust_region
    except ImportError:  # pragma: no cover - another scipy layout: scipy's own method
        return None
    return _wrap_callback, TRLIBQuadraticSubproblem, _minimize_trust_region


_PRIVATE = _scipy_private()


def _subproblem_factory(tol_rel_i: float, tol_rel_b: float, disp: bool) -> Callable[..., Any]:
    assert _PRIVATE is not None
    base = _PRIVATE[1]

    def make(x: Any, fun: Any, jac: Any, hess: Any, hessp: Any) -> Any:
        sub = base(x, fun, jac, hess, hessp, tol_rel_i=tol_rel_i, tol_rel_b=tol_rel_b, disp=disp)
        clean_workspace(getattr(sub, "fwork", None), int(getattr(sub, "itmax", -1)))
        return sub

    return make


def trust_krylov(
    fun: Callable[..., Any],
    x0: np.ndarray,
    args: tuple = (),
    jac: Any = None,
    hess: Any = None,
    hessp: Any = None,
    bounds: Any = None,
    constraints: Any = (),
    callback: Any = None,
    inexact: bool = True,
    **options: Any,
) -> Any:
    """``scipy.optimize.minimize(method=trust_krylov)``: scipy's trust-krylov, deterministic.

    The same options and result as ``method="trust-krylov"`` (``inexact`` picks trlib's
    tolerances as scipy does); only the subproblem's workspace starts clean.
    """
    assert _PRIVATE is not None
    wrap_callback, _, minimize_trust_region = _PRIVATE
    if jac is None or (hess is None and hessp is None):
        raise ValueError("trust-krylov needs the gradient and the Hessian (or its products)")
    tol_rel_i, tol_rel_b = (-2.0, -3.0) if inexact else (1e-8, 1e-6)
    callback = wrap_callback(callback, "trust-krylov")
    res = minimize_trust_region(
        fun,
        x0,
        args=args,
        jac=jac,
        hess=hess,
        hessp=hessp,
        subproblem=_subproblem_factory(tol_rel_i, tol_rel_b, bool(options.get("disp", False))),
        callback=callback,
        **options,
    )
    if getattr(callback, "stop_iteration", False):  # as scipy.optimize.minimize does
        res.success = False
        res.status = 99
        res.message = "`callback` raised `StopIteration`."
    return res


#: What :func:`~zfitlite.solvers._scipy_common.run_minimize` passes as ``method`` for
#: trust-krylov: :func:`trust_krylov`, or scipy's own where its private names are missing.
TRUST_KRYLOV: Callable[..., Any] | str = trust_krylov if _PRIVATE is not None else "trust-krylov"
