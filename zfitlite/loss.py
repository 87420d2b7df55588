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
from typing import Any

import numpy as np

from .backends import Backend, CompiledLoss, detect_backend, get_backend
from .backends.base import after_x
from .backends.numdiff import Typical
from .backends.ops import BACKEND_ATTR, forget_native, remembered, same_callable
from .cache import GraphCachable
from .params import Params, make_params

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

        The detection (a trial trace) is remembered on the loss and on the user's function
        itself, keyed by ``n`` and the kinds and shapes of the data ``args``: a new loss of
        the same function (a new ``LeastSquares`` per fit) does not detect again.
        """
        if self.backend_request != "auto":
            return get_backend(self.backend_request)
        return self.cached(("backend", n), lambda: self._detect(n))

    def _detection_source(self) -> tuple[Callable, tuple] | None:
        """``(user function, data args)`` whose detected backend may be remembered on the
        function; None where the loss has no such function."""
        return None

    def _detect(self, n: int) -> Backend:
        source = self._detection_source()
        if source is None:
            return detect_backend(self._traced_function(), n)
        func, args = source
        kinds = tuple(
            (type(a), getattr(a, "shape", None), str(getattr(a, "dtype", ""))) for a in args
        )
        found = remembered(
            func,
            BACKEND_ATTR,
            ("backend", n, kinds),
            lambda: (func, detect_backend(self._traced_function(), n)),
            # not one copied over from another function (functools.wraps copies __dict__)
            valid=lambda v: same_callable(v[0], func),
        )
        return found[1]

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
        ``"auto"`` picks JAX when ``func`` traces under JAX, else TensorFlow when
        tensorflow is imported and ``func`` returns a ``tf.Tensor``, else numpy.
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
        super().__init__(params=params, errordef=errordef, backend=backend, name=name)
        self.errordef  # noqa: B018 - validate now: a missing errordef is an error at construction

    def _describe(self) -> str:
        name = getattr(getattr(self, "func", None), "__name__", "function")
        return f"loss '{getattr(self, 'name', None) or name}'"

    def reset_cache(self, reset_from: GraphCachable) -> None:
        """Clear compiled functions, including those remembered on ``func``."""
        forget_native(self.func)
        super().reset_cache(reset_from)

    def _detection_source(self) -> tuple[Callable, tuple] | None:
        return self.func, self.args

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
        of the same shape without compiling again.
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
        self.data: dict[str, Any] | None = None
        super().__init__(params=params, errordef=errordef, backend=backend, name=name)

    def reset_cache(self, reset_from: GraphCachable) -> None:
        """Clear compiled functions, including the compiled solvers built on ``residuals``."""
        forget_native(self.residuals_func)
        super().reset_cache(reset_from)

    def _detection_source(self) -> tuple[Callable, tuple] | None:
        return self.residuals_func, self.args

    def _traced_function(self) -> Callable:
        if not self.args:
            return self.residuals_func
        return functools.partial(after_x, self.residuals_func, self.args)

    def _build(self, backend: Backend, n: int, typical: Typical) -> CompiledLoss:
        return backend.least_squares(
            self.residuals_func, n, jacobian=self.jacobian_func, typical=typical, args=self.args
        )

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
        """
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
        loss = cls(
            _data_residuals(model),
            params=params,
            backend=backend,
            name=name,
            args=(xa[mask], ya[mask], sa[mask]),
        )
        loss.data = {"model": model, "x": xa, "y": ya, "sigma": sa, "mask": mask}
        return loss


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
