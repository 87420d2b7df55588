"""Losses: a plain callable with ``errordef``, :class:`SimpleLoss`, :class:`LeastSquares`.

A loss knows how to evaluate itself and, through its backend, how to build compiled
value/gradient/Hessian (and residual/Jacobian) functions. Compiled functions are cached
on the loss (it is a :class:`~zfitlite.cache.GraphCachable`) per backend and number of
parameters, so a second fit of the same loss does not trace or compile again.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import scipy.sparse

from ._composite import fixed_count, observed_count, observed_points
from .backends import Backend, CompiledLoss, detect_backend, get_backend
from .backends.base import after_x
from .backends.numdiff import Typical
from .backends.ops import forget_native, remembered, same_callable
from .backends.sparse_numdiff import SparsePattern, as_pattern
from .cache import GraphCachable
from .params import Params, make_params
from .robust import robust_key

__all__ = ["BaseLoss", "LeastSquares", "SimpleLoss"]

_VALID_BACKENDS = ("auto", "numpy", "jax", "tensorflow")
_ERRORDEF_HELP = (
    "set it on the function, e.g. `loss.errordef = 0.5` for a negative log-likelihood or "
    "`loss.errordef = 1.0` for a chi-square, or wrap it: SimpleLoss(func, errordef=0.5)"
)


def _check_errordef(errordef: Any, where: str | Callable[[], str]) -> float:
    """``errordef`` as a float, or an error naming ``where`` (a string, or a callable
    giving it, called only when the message is needed)."""
    if type(errordef) is float and 0.0 < errordef < math.inf:  # the common case, cheap
        return errordef
    if callable(where):
        where = where()
    if errordef is None:
        raise ValueError(f"{where} has no errordef: {_ERRORDEF_HELP}")
    if isinstance(errordef, bool) or not isinstance(
        errordef, (int, float, np.floating, np.integer)
    ):
        raise TypeError(f"{where}: errordef must be a positive number, got {errordef!r}")
    errordef = float(errordef)
    if not np.isfinite(errordef) or errordef <= 0:
        raise ValueError(f"{where}: errordef must be a finite positive number, got {errordef}")
    return errordef


def _check_backend(backend: str) -> str:
    if backend not in _VALID_BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; choose one of {_VALID_BACKENDS}")
    return backend


class BaseLoss(GraphCachable):
    """Common machinery of every loss: errordef, known parameters, backend, compiled cache.

    Subclasses implement :meth:`_build`.
    """

    is_least_squares: bool = False

    def __init__(
        self,
        *,
        params: Any = None,
        errordef: float | None,
        backend: str = "auto",
        name: str | None = None,
    ) -> None:
        GraphCachable.__init__(self)
        self._errordef = None if errordef is None else _check_errordef(errordef, self._describe())
        self.backend_request = _check_backend(backend)
        self.name = name
        self.params: Params | None = None if params is None else make_params(params)

    def _describe(self) -> str:
        return f"loss {type(self).__name__}"

    @property
    def errordef(self) -> float:
        """Change of the loss that defines a one-sigma uncertainty (0.5 for an NLL, 1 for a chi-square)."""
        return _check_errordef(self._errordef, self._describe)

    def _traced_function(self) -> Callable:
        raise NotImplementedError

    def backend_for(self, n: int) -> Backend:
        """The backend used for ``n`` parameters (detected once with ``backend="auto"``).

        The detection is remembered on the loss and, by
        :func:`~zfitlite.backends.detect_backend`, per user function (keyed by ``n`` and the
        kinds and shapes of the data ``args``): a new loss of the same function (a new
        ``LeastSquares`` per fit) does not detect again.
        """
        if self.backend_request != "auto":
            return get_backend(self.backend_request)
        return self.cached(("backend", n), lambda: detect_backend(self._traced_function(), n))

    def compiled(self, n: int, typical: Typical = None) -> CompiledLoss:
        """Compiled value/gradient/Hessian callables for ``n`` parameters.

        Backends that compile (JAX) are cached per ``n``; ``typical`` (per-parameter
        scales for finite differences, or a :class:`~zfitlite.backends.numdiff.Scales`
        that also holds the bounds the steps must stay in) only matters for the numpy
        backend.
        """
        backend = self.backend_for(n)
        if backend.compiles:
            return self.cached(("compiled", backend.name, n), lambda: self._build(backend, n, None))
        return self._build(backend, n, typical)

    def _build(self, backend: Backend, n: int, typical: Typical) -> CompiledLoss:
        raise NotImplementedError

    def value(self, x: Any) -> float:
        """Evaluate the loss at ``x`` (a 1-D array of parameter values)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return float(self.compiled(x.size).value(x))

    def __call__(self, x: Any) -> float:
        return self.value(x)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<{type(self).__name__}{name} errordef={self._errordef}>"


class SimpleLoss(BaseLoss):
    """A scalar loss from a function ``func(x) -> float``.

    Parameters
    ----------
    func : callable
        ``func(x, *args)`` with ``x`` a 1-D float64 array in parameter order.
    params : optional
        The loss's parameters in any form accepted by :func:`~zfitlite.params.make_params`;
        then ``minimize(loss)`` needs no ``params``.
    errordef : float, optional
        0.5 for a negative log-likelihood, 1.0 for a chi-square. Taken from
        ``func.errordef`` when not given; one of the two is required.
    gradient, hessian : callable, optional
        Exact derivatives. Without them the backend provides them (autodiff for JAX,
        GradientTape for TensorFlow, numerical differences for numpy).
    backend : {"auto", "numpy", "jax", "tensorflow"}
        ``"auto"`` picks JAX when ``func`` uses JAX or no other numerical library and
        traces under JAX, else TensorFlow when tensorflow is imported and ``func`` returns
        a ``tf.Tensor``, else numpy (see :func:`zfitlite.backends.detect_backend`).
    name : str, optional
        Used in reports (``problem_id``).
    args : tuple of arrays, optional
        Data passed to ``func`` (and to ``gradient``, ``hessian``) after ``x``. Keeping data
        out of the function's closure lets a loss on new data of the same shapes reuse the
        compiled JAX functions of an earlier one (toy studies: no recompilation per toy).
    """

    def __init__(
        self,
        func: Callable,
        params: Any = None,
        errordef: float | None = None,
        gradient: Callable | None = None,
        hessian: Callable | None = None,
        backend: str = "auto",
        name: str | None = None,
        args: tuple = (),
        *,
        constraints: Any = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"SimpleLoss needs a callable func, got {type(func).__name__}")
        for what, f in (("gradient", gradient), ("hessian", hessian)):
            if f is not None and not callable(f):
                raise TypeError(
                    f"SimpleLoss: {what} must be a callable or None, got {type(f).__name__}"
                )
        if not isinstance(args, tuple):
            raise TypeError(
                f"SimpleLoss: args must be a tuple of arrays, got {type(args).__name__}"
            )
        if errordef is None:
            errordef = getattr(func, "errordef", None)
        self.func = func
        self.gradient_func = gradient
        self.hessian_func = hessian
        self.args = args
        self.user_func = func
        self.user_gradient = gradient
        self.user_hessian = hessian
        self.user_args = args
        self.constraints = _constraint_list(constraints)
        super().__init__(params=params, errordef=errordef, backend=backend, name=name)
        self.errordef  # noqa: B018 - validate now: a missing errordef is an error at construction
        if self.constraints:
            self._add_scalar_constraints()

    def _add_scalar_constraints(self) -> None:
        from ._composite import ConstrainedGradient, ConstrainedHessian, constrained_scalar
        from .constraints import combine_constraints

        names = None if self.params is None else self.params.names
        n = None if self.params is None else len(self.params)
        idx, mu, W = combine_constraints(self.constraints, names, n)
        self.func = constrained_scalar(self.user_func, idx)
        if self.gradient_func is not None:
            self.gradient_func = ConstrainedGradient(self.gradient_func, idx)
        if self.hessian_func is not None:
            self.hessian_func = ConstrainedHessian(self.hessian_func, idx)
        self.args = (*self.args, mu, W, np.float64(self.errordef))

    def _describe(self) -> str:
        name = getattr(getattr(self, "func", None), "__name__", "function")
        return f"loss '{getattr(self, 'name', None) or name}'"

    def reset_cache(self, reset_from: GraphCachable) -> None:
        """Clear compiled functions, including those remembered on ``func``."""
        forget_native(self.func)
        super().reset_cache(reset_from)

    def _traced_function(self) -> Callable:
        if not self.args:
            return self.func
        return functools.partial(after_x, self.func, self.args)

    def _build(self, backend: Backend, n: int, typical: Typical) -> CompiledLoss:
        return backend.scalar(
            self.func,
            n,
            gradient=self.gradient_func,
            hessian=self.hessian_func,
            typical=typical,
            args=self.args,
        )


class _CallableLoss(SimpleLoss):
    """A plain callable with an ``errordef`` attribute, read live from the callable."""

    def __init__(self, func: Callable) -> None:
        super().__init__(
            func, errordef=getattr(func, "errordef", None), name=getattr(func, "__name__", None)
        )

    @property
    def errordef(self) -> float:
        return _check_errordef(getattr(self.func, "errordef", None), self._describe)


class LeastSquares(BaseLoss):
    """A least-squares loss: value = ``sum(residuals(x)**2)``.

    Solvers that use the residual structure (Levenberg-Marquardt, ``ScipyLeastSquares``)
    work on the Jacobian of the residuals.

    Parameters
    ----------
    residuals : callable
        ``residuals(x, *args) -> 1-D array``.
    params : optional
        The loss's parameters (see :func:`~zfitlite.params.make_params`).
    jacobian : callable, optional
        ``jacobian(x, *args) -> (m, n) array``; otherwise from JAX or TensorFlow
        autodiff, or finite differences.
    errordef : float, default 1.0
        1.0 when the residuals are normalised by their uncertainties (a chi-square).
    backend : {"auto", "numpy", "jax", "tensorflow"}
    name : str, optional
    args : tuple of arrays, optional
        Data passed to ``residuals`` after ``x``. Keeping data out of the function's
        closure lets compiled solvers (Levenberg-Marquardt on JAX) be reused for new data
        of the same shape without compiling again. NaN entries are missing values, with
        ``minimize_batch``'s rule: a residual that is NaN only because of them (NaN with
        the data as given, finite with the NaNs replaced by 0) is left out.
    mask : array of bool, optional
        True marks a *missing* residual (as in ``numpy.ma`` and ``BatchFitResult``): it is
        left out of the loss (set to 0 with its Jacobian row) and of :attr:`nobs`.
    weights : array_like, optional
        Per-residual weights ``w >= 0``: the loss is ``sum(w * r**2)``; 0 leaves a point out.
        The loss keeps its own read-only copy (``loss.weights``).
    loss : {"linear", "soft_l1", "huber", "cauchy", "arctan"} or callable, default "linear"
        A robust loss with scipy ``least_squares``' meaning (a callable is ``rho(z)``):
        the loss becomes ``sum(f_scale**2 * rho((r / f_scale)**2))`` (twice scipy's
        cost: the same minimum), see :mod:`zfitlite.robust` for what errors mean then.
    f_scale : float, default 1.0
        The soft margin between inlier and outlier residuals (scipy's ``f_scale``).
    constraints : GaussianConstraint or list of them, optional
        Gaussian constraints (priors) on parameters, added as whitened extra residuals
        (see :mod:`zfitlite.constraints`).
    jac_sparsity : array_like or scipy.sparse matrix, optional
        The Jacobian's structure, shape ``(m, n)`` (nonzero where residual ``i`` depends
        on parameter ``j``), as scipy ``least_squares``' ``jac_sparsity``. Without a
        ``jacobian`` the Jacobian is then a ``scipy.sparse`` matrix from grouped finite
        differences (columns that share no residual are differenced together: a few
        residual calls per group of columns instead of per parameter).
        :class:`~zfitlite.minimize.LevenbergMarquardt` then takes its steps with LSMR on
        the sparse Jacobian (:mod:`zfitlite.solvers.lm_sparse`), never forming a dense
        ``m x n`` or ``n x n`` array. Numpy backend only (``backend="auto"`` picks it).
        A ``jacobian`` may also return a ``scipy.sparse`` matrix, with or without a
        pattern.

    Notes
    -----
    With ``mask``, ``weights``, ``loss`` or ``constraints`` the residual function the
    solvers see (``residuals_func``) is a :class:`~zfitlite._composite.CompositeResiduals`
    of yours, one per function and structure, whose arguments are ``(x, *args, w,
    f_scale, mu, W)``; ``user_residuals`` and ``user_args`` keep what you gave.
    """

    is_least_squares = True

    def __init__(
        self,
        residuals: Callable,
        params: Any = None,
        jacobian: Callable | None = None,
        errordef: float = 1.0,
        backend: str = "auto",
        name: str | None = None,
        args: tuple = (),
        *,
        mask: Any = None,
        weights: Any = None,
        loss: Any = "linear",
        f_scale: float = 1.0,
        constraints: Any = None,
        jac_sparsity: Any = None,
    ) -> None:
        if not callable(residuals):
            raise TypeError(
                f"LeastSquares needs a callable residuals, got {type(residuals).__name__}"
            )
        if jacobian is not None and not callable(jacobian):
            raise TypeError(
                f"LeastSquares: jacobian must be callable or None, got {type(jacobian).__name__}"
            )
        if not isinstance(args, tuple):
            raise TypeError(
                f"LeastSquares: args must be a tuple of arrays, got {type(args).__name__}"
            )
        self.residuals_func = residuals
        self.jacobian_func = jacobian
        self.args = args
        self.user_residuals = residuals
        self.user_jacobian = jacobian
        self.user_args = args
        self.data: dict[str, Any] | None = None
        #: ``args`` with the data padded to a bucket size (``from_data``), used on JAX
        #: (one compiled program per bucket, not per length).
        self.padded_args: tuple | None = None
        if jac_sparsity is not None:
            if backend == "auto":
                backend = "numpy"  # the pattern is for finite differences on numpy
            elif backend != "numpy":
                raise ValueError(
                    f"LeastSquares: jac_sparsity is for the numpy backend, got backend={backend!r}; "
                    "use backend='numpy' (or 'auto'), or leave jac_sparsity out"
                )
        #: The Jacobian's structure as given (``jac_sparsity``), or None.
        self.jac_sparsity = None if jac_sparsity is None else as_pattern(jac_sparsity)
        self._constraint_idx: tuple[int, ...] = ()
        #: set once the user's jacobian returned a sparse matrix (numpy backend: the
        #: Hessian is then differenced in groups, see ``NumpyBackend.least_squares``)
        self._sparse_seen = [False]
        #: ``(args, residuals_func, nobs)``: :attr:`nobs` for these very objects (see
        #: :func:`~zfitlite._composite.fixed_count`)
        self._nobs_known: tuple | None = None
        super().__init__(params=params, errordef=errordef, backend=backend, name=name)
        if self.jac_sparsity is not None and self.params is not None:
            as_pattern(self.jac_sparsity, len(self.params))  # a wrong shape fails here
        self.robust = robust_key(loss)
        self.f_scale = float(f_scale)
        if not (np.isfinite(self.f_scale) and self.f_scale > 0):
            raise ValueError(f"LeastSquares: f_scale must be finite and > 0, got {f_scale!r}")
        self.constraints = _constraint_list(constraints)
        self.weights = _point_weights(mask, weights)
        from ._composite import has_nan

        #: The data hold NaN: missing values, masked by minimize_batch's rule.
        self.nan_data = has_nan(args)
        if self.weights is not None or self.robust != "linear" or self.constraints or self.nan_data:
            self._compose()

    def _compose(self) -> None:
        """Route the residuals through the composite (weights, robust loss, constraints)."""
        from ._composite import CompositeJacobian, composite_residuals
        from .constraints import combine_constraints

        names = None if self.params is None else self.params.names
        n = None if self.params is None else len(self.params)
        idx, mu, W = combine_constraints(self.constraints, names, n)
        self._constraint_idx = tuple(idx)
        self.residuals_func = composite_residuals(
            self.user_residuals, self.robust, idx, self.nan_data
        )
        if self.user_jacobian is not None:
            if self.robust != "linear":
                raise ValueError(
                    "LeastSquares: a robust loss with your own jacobian is not supported; "
                    "leave jacobian=None (autodiff or finite differences)"
                )
            self.jacobian_func = CompositeJacobian(
                self.user_jacobian, idx, self.user_residuals if self.nan_data else None
            )
        w = np.float64(1.0) if self.weights is None else self.weights
        scale = math.sqrt(self.errordef)
        self.args = (*self.user_args, w, np.float64(self.f_scale), mu, scale * W)

    @property
    def sparse_jacobian(self) -> bool:
        """True when the Jacobian is known to be sparse: ``jac_sparsity`` was given, or the
        ``jacobian`` returned a ``scipy.sparse`` matrix in an earlier fit (numpy backend)."""
        return self.jac_sparsity is not None or self._sparse_seen[0]

    @property
    def nobs(self) -> int | None:
        """The observed residuals (unmasked points plus constraint rows); None when not
        known without evaluating the residuals (then every residual counts)."""
        args, func = self.args, self.residuals_func
        known = self._nobs_known
        if known is not None and known[0] is args and known[1] is func:
            nobs = known[2]
        else:
            nobs = observed_count(func, args)
            if fixed_count(func, args):  # asked once per fit: counted once per data
                self._nobs_known = (args, func, nobs)
        if nobs is None and self.nan_data and self.params is not None:
            return observed_points(self, self.params.values)  # NaN data: at the start
        return nobs

    def reset_cache(self, reset_from: GraphCachable) -> None:
        """Clear compiled functions, including the compiled solvers built on ``residuals``."""
        forget_native(self.residuals_func)
        if self.user_residuals is not self.residuals_func:
            forget_native(self.user_residuals)
        super().reset_cache(reset_from)

    def _detection_source(self) -> tuple[Callable, tuple] | None:
        return self.residuals_func, self.args

    def _traced_function(self) -> Callable:
        if not self.args:
            return self.residuals_func
        return functools.partial(after_x, self.residuals_func, self.args)

    def _build(self, backend: Backend, n: int, typical: Typical) -> CompiledLoss:
        args = self.args
        if backend.name == "jax" and self.padded_args is not None:
            args = self.padded_args  # from_data: the data padded to its bucket size
        if backend.name == "numpy":  # only the numpy backend takes these (see its docs)
            sparsity = None
            if self.jac_sparsity is not None:
                sparsity = self.cached(("jac_sparsity", n), lambda: self._pattern(n))
            return cast(Any, backend).least_squares(
                self.residuals_func,
                n,
                jacobian=self.jacobian_func,
                typical=typical,
                args=args,
                sparsity=sparsity,
                sparse_seen=self._sparse_seen,
            )
        return backend.least_squares(
            self.residuals_func, n, jacobian=self.jacobian_func, typical=typical, args=args
        )

    def _pattern(self, n: int) -> SparsePattern:
        """``jac_sparsity`` for ``n`` parameters, grouped, with a row per constraint
        residual (each depends on every constrained parameter)."""
        P = as_pattern(self.jac_sparsity, n)
        idx = self._constraint_idx
        if idx:
            Pc = np.zeros((len(idx), n))
            Pc[:, list(idx)] = 1.0
            P = scipy.sparse.vstack([P, scipy.sparse.csc_matrix(Pc)]).tocsc()
        return SparsePattern.of(P, n)

    @classmethod
    def from_data(
        cls,
        model: Callable,
        x: Any,
        y: Any,
        sigma: Any = None,
        params: Any = None,
        backend: str = "auto",
        name: str | None = None,
        *,
        cov: Any = None,
        weights: Any = None,
        loss: Any = "linear",
        f_scale: float = 1.0,
        constraints: Any = None,
        pad: bool = True,
    ) -> LeastSquares:
        """Build the residuals ``(y - model(x, p)) / sigma`` from data.

        Parameters
        ----------
        model : callable
            ``model(x, p) -> predictions`` with the same length as ``y``.
        x : array_like
            Predictor values, shape ``(m,)`` or ``(m, k)``.
        y : array_like
            Observations, shape ``(m,)``; NaN entries are missing and are left out.
        sigma : float or array_like, optional
            Uncertainties of ``y`` (default 1); must be positive.
        params, backend, name
            As for :class:`LeastSquares`.
        cov : array_like, optional
            ``(m, m)`` covariance matrix of ``y`` (instead of ``sigma``): the residuals are
            whitened once with its Cholesky factor, ``L^-1 (y - model)`` with
            ``C = L L^T`` taken over the observed points (generalised least squares).
        weights, loss, f_scale, constraints
            As for :class:`LeastSquares` (``weights`` multiply ``1 / sigma**2``).
        pad : bool, default True
            On JAX, pad the observed points to a few bucket sizes
            (8, 12, 16, 24, 32, 48, ...: see :func:`zfitlite._ragged.bucket_size`) with
            masked points, so that fits of the same model to data of different lengths
            reuse compiled programs (there the residual vector ends with zeros for the
            padding). The padded points count nowhere (:attr:`nobs` is the number of
            observed points).
        """
        from ._ragged import bucket_size, pad_rows

        if not callable(model):
            raise TypeError(f"from_data needs a callable model(x, p), got {type(model).__name__}")
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        if ya.ndim != 1:
            raise ValueError(f"y must be one-dimensional, got shape {ya.shape}")
        if xa.ndim == 0 or xa.shape[0] != ya.shape[0]:
            raise ValueError(
                f"x and y must have the same length: x has shape {xa.shape}, y has shape {ya.shape}"
            )
        mask = np.isfinite(ya)
        wa = None
        if weights is not None:
            wa = np.broadcast_to(np.asarray(weights, dtype=np.float64), ya.shape)
            if not np.all(np.isfinite(wa) & (wa >= 0)):
                raise ValueError("weights must be finite and >= 0")
            mask = mask & (wa > 0)
        if cov is not None and sigma is not None:
            raise ValueError("from_data takes sigma or cov, not both")
        if sigma is None:
            sa = np.ones_like(ya)
        else:
            sa = np.broadcast_to(np.asarray(sigma, dtype=np.float64), ya.shape).copy()
            bad = mask & ~(np.isfinite(sa) & (sa > 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"sigma must be finite and > 0 for every observed y; sigma[{i}] = {sa[i]}"
                )
        if not mask.any():
            raise ValueError("every y is NaN (missing): there is nothing to fit")
        if not np.all(np.isfinite(xa[mask])):
            raise ValueError(
                "x has non-finite entries where y is observed; mark such points missing with y = NaN"
            )
        k = int(mask.sum())
        w_obs = np.ones(k) if wa is None else wa[mask]
        if cov is not None:
            white = _whitening(cov, mask, ya.shape[0])
            func = _whitened_residuals(model)
            sa = np.sqrt(np.diag(np.asarray(cov, dtype=np.float64))).copy()
        else:
            func = _data_residuals(model)

        def padded(size: int) -> tuple:
            if cov is not None:
                whiten = np.zeros((size, size))
                whiten[:k, :k] = white
                return (pad_rows(xa[mask], size), pad_rows(ya[mask], size, 0.0), whiten)
            return (
                pad_rows(xa[mask], size),
                pad_rows(ya[mask], size, 0.0),
                pad_rows(sa[mask], size, 1.0),
            )

        result = cls(
            func,
            params=params,
            backend=backend,
            name=name,
            args=padded(k),
            weights=w_obs,
            loss=loss,
            f_scale=f_scale,
            constraints=constraints,
        )
        size = bucket_size(k) if pad else k
        if size != k:
            w_pad = np.concatenate([w_obs, np.zeros(size - k)])  # 0: a padded point
            result.padded_args = (*padded(size), w_pad, *result.args[4:])
        result.data = {"model": model, "x": xa, "y": ya, "sigma": sa, "mask": mask}
        if cov is not None:
            result.data["cov"] = np.asarray(cov, dtype=np.float64)
        return result


def _constraint_list(constraints: Any) -> list:
    """``constraints`` as a list of :class:`~zfitlite.constraints.GaussianConstraint`."""
    from .constraints import GaussianConstraint

    if constraints is None:
        return []
    if isinstance(constraints, GaussianConstraint):
        return [constraints]
    out = list(constraints)
    for c in out:
        if not isinstance(c, GaussianConstraint):
            raise TypeError(
                f"constraints must be GaussianConstraint objects, got {type(c).__name__}"
            )
    return out


def _point_weights(mask: Any, weights: Any) -> np.ndarray | None:
    """Per-residual weights from ``mask`` (True: missing) and ``weights``; None if neither.

    A read-only copy: changing the caller's array afterwards does not change the loss (as
    on JAX, where the data are copied to the device anyway).
    """
    if mask is None and weights is None:
        return None
    w = None
    if weights is not None:
        w = np.array(weights, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError("LeastSquares: weights must be finite and >= 0")
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            raise TypeError(
                f"LeastSquares: mask must be an array of bool (True: missing), got {m.dtype}"
            )
        m = m.reshape(-1)
        if w is not None and w.shape != m.shape:
            raise ValueError(f"mask has shape {m.shape} but weights have {w.shape}")
        w = np.where(m, 0.0, 1.0 if w is None else w)
    if w is not None:
        w.setflags(write=False)
    return w


def _whitening(cov: Any, mask: np.ndarray, m: int) -> np.ndarray:
    """``L^-1`` for the observed block of ``cov`` (``C = L L^T``), checked."""
    c = np.asarray(cov, dtype=np.float64)
    if c.shape != (m, m):
        raise ValueError(f"cov must have shape {(m, m)} (one row per y), got {c.shape}")
    c = c[np.ix_(mask, mask)]
    if not (np.all(np.isfinite(c)) and np.allclose(c, c.T, rtol=1e-12, atol=0.0)):
        raise ValueError("cov must be finite and symmetric")
    try:
        chol = np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        raise ValueError("cov must be positive definite (over the observed points)") from None
    return np.linalg.solve(chol, np.eye(c.shape[0]))


_WRAPPER_ATTR = "__zfitlite_loss__"
_RESIDUALS_ATTR = "__zfitlite_residuals__"


def _data_residuals(model: Callable) -> Callable:
    """``(p, x, y, sigma) -> (y - model(x, p)) / sigma``, one function per model.

    Remembered on the model, so losses built from the same model with new data share it
    (and with it the compiled solvers keyed on it).
    """

    def build() -> Callable:
        def residuals(p: Any, x: Any, y: Any, sigma: Any) -> Any:
            return (y - model(x, p)) / sigma

        residuals.__wrapped_model__ = model  # type: ignore[attr-defined]
        return residuals

    return remembered(
        model,
        _RESIDUALS_ATTR,
        "residuals",
        build,
        valid=lambda f: same_callable(getattr(f, "__wrapped_model__", None), model),
    )


def _whitened_residuals(model: Callable) -> Callable:
    """``(p, x, y, W) -> W @ (y - model(x, p))``, one function per model (remembered on it)."""

    def build() -> Callable:
        def whitened(p: Any, x: Any, y: Any, W: Any) -> Any:
            return W @ (y - model(x, p))

        return whitened

    return remembered(model, _RESIDUALS_ATTR + "cov", "whitened", build)
