"""Adapters: zfit losses and iminuit cost functions as zfitlite losses.

:func:`~zfitlite.to_loss.as_loss` hands such objects to :func:`adapt_external`, so users
write ``minimizer.minimize(zfit_loss)`` or ``minimizer.minimize(iminuit_cost, [1.0, 2.0])``
directly. Detection is by duck typing; neither zfit nor iminuit is imported here.

zfit losses (:class:`ZfitLossAdapter`)
    Anything with zfit's loss interface: ``value()``, ``gradient()``, ``get_params()``
    and ``errordef`` (e.g. ``zfit.loss.UnbinnedNLL``, ``ExtendedUnbinnedNLL``,
    ``BinnedNLL``). The parameters are the loss's floating parameters, in the order of
    ``get_params()``, with their names, current values, limits and step sizes. Value,
    gradient and Hessian come from the loss's own ``value``, ``value_gradient`` and
    ``hessian`` methods (TensorFlow autodiff, so exact unless the loss was built with
    ``options={"numgrad": True}``), evaluated eagerly for the given values through zfit's
    ``params=``/``paramvals=`` arguments, which set the values temporarily and restore
    them: fitting does not move the zfit parameters. ``FitResult.update_params()`` does.

iminuit cost functions (:class:`IminuitCostAdapter`, :class:`IminuitLeastSquaresAdapter`)
    Any ``iminuit.cost`` cost (``UnbinnedNLL``, ``ExtendedUnbinnedNLL``, ``BinnedNLL``,
    ``ExtendedBinnedNLL``, ``Template``, ``CostSum``, ...): called as ``cost(*x)``, with
    ``cost.grad(*x)`` as the exact gradient when ``cost.has_grad``, and the cost's own
    ``errordef``. Names and limits come from the cost's ``_parameters``; start values are
    the user's (iminuit costs have none). An ``iminuit.cost.LeastSquares`` with the
    default ``loss="linear"`` becomes a :class:`~zfitlite.loss.LeastSquares` on the
    residuals ``(y - model(x, *p)) / yerror`` of its (unmasked) data, so that
    Levenberg-Marquardt and ``ScipyLeastSquares`` work on the residual Jacobian.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .backends import Backend, CompiledLoss, numdiff
from .loss import BaseLoss, LeastSquares, SimpleLoss, _check_errordef
from .params import Params, make_params

__all__ = [
    "IminuitCostAdapter",
    "IminuitLeastSquaresAdapter",
    "ZfitLossAdapter",
    "adapt_external",
    "is_iminuit_cost",
    "is_zfit_loss",
]

_ZFIT_METHODS = ("value", "gradient", "get_params")


# -- detection -----------------------------------------------------------------------------
def is_zfit_loss(obj: Any) -> bool:
    """True for an object with zfit's loss interface (``value``, ``gradient``, ``get_params``)."""
    return all(callable(getattr(obj, m, None)) for m in _ZFIT_METHODS)


def is_iminuit_cost(obj: Any) -> bool:
    """True for an ``iminuit.cost`` cost function, or a callable shaped like one: an
    ``errordef`` and iminuit's ``_parameters`` mapping (names to limits)."""
    cost_module = sys.modules.get("iminuit.cost")
    if cost_module is not None and isinstance(obj, cost_module.Cost):
        return True
    return (
        callable(obj)
        and getattr(obj, "errordef", None) is not None
        and isinstance(getattr(obj, "_parameters", None), Mapping)
    )


def _is_iminuit_least_squares(cost: Any) -> bool:
    cost_module = sys.modules.get("iminuit.cost")
    return (
        cost_module is not None
        and isinstance(cost, cost_module.LeastSquares)
        and getattr(cost, "loss", None) == "linear"
    )


def adapt_external(obj: Any) -> BaseLoss | None:
    """The zfitlite loss for a zfit loss or an iminuit cost; None for anything else."""
    if is_zfit_loss(obj):
        return ZfitLossAdapter(obj)
    if is_iminuit_cost(obj):
        if _is_iminuit_least_squares(obj):
            return IminuitLeastSquaresAdapter(obj)
        return IminuitCostAdapter(obj)
    return None


# -- shared: fitting the user's parameters to the ones the loss knows ----------------------
def _default_names(n: int) -> tuple[str, ...]:
    return tuple(f"p{i}" for i in range(n))


def _complete_params(
    p: Params,
    names: tuple[str, ...],
    lower: np.ndarray,
    upper: np.ndarray,
    stepsize: np.ndarray,
    what: str,
) -> Params:
    """``p`` in the loss's parameter order, named as the loss names them, within its limits.

    Unnamed start values (``p0, p1, ...``) are taken in the loss's order; named ones may come
    in any order but must name every parameter of the loss. Bounds are the intersection of
    the user's and the loss's; step sizes the user's where given, else the loss's.
    """
    n = len(names)
    if len(p) != n:
        raise ValueError(
            f"{what} has {n} parameter(s) {list(names)}, but {len(p)} start value(s) were given "
            f"for {list(p.names)}; give one start value per parameter"
        )
    if p.names == names or (p.names == _default_names(n) and set(p.names) != set(names)):
        order = np.arange(n)  # the loss's own order, or unnamed values taken in that order
    elif set(p.names) == set(names):
        order = np.array([p.names.index(name) for name in names])
    else:
        unknown = sorted(set(p.names) - set(names))
        missing = sorted(set(names) - set(p.names))
        raise ValueError(
            f"{what} has the parameters {list(names)}; the given parameters do not match "
            f"(unknown: {unknown}, missing: {missing})"
        )
    user_step = p.stepsize[order]
    return Params(
        names,
        p.values[order],
        np.maximum(p.lower[order], lower),
        np.minimum(p.upper[order], upper),
        np.where(np.isfinite(user_step), user_step, stepsize),
    )


def _as_limit(value: Any, default: float) -> float:
    if value is None:
        return default
    value = float(np.asarray(value, dtype=np.float64))
    return default if np.isnan(value) else value


# -- zfit ----------------------------------------------------------------------------------
class ZfitLossAdapter(BaseLoss):
    """A zfit loss (``zfit.loss.UnbinnedNLL`` and friends) as a zfitlite loss.

    Parameters
    ----------
    loss : zfit loss
        An object with zfit's loss interface: ``value(params=..., full=...)``,
        ``gradient(params, paramvals=...)``, optionally ``value_gradient`` and
        ``hessian``, ``get_params()`` and ``errordef``.
    full : bool, default True
        Minimize ``loss.value(full=True)``, the complete negative log-likelihood (what
        zfit's ``FitResult.fmin`` reports, comparable between losses). ``False`` uses
        the loss's offset-subtracted value (the "opt." value zfit's minimizers work on);
        the offset is constant, so the minimum and the uncertainties are the same.
    name : str, optional
        Used in reports; default the zfit loss's name.

    Attributes
    ----------
    zfit_loss
        The wrapped loss.
    zfit_params : tuple
        Its floating parameters, in the order of the zfitlite parameter vector.
    params : Params
        Read live from the zfit parameters (current values, limits, step sizes), so a fit
        starts where the zfit parameters are. Assigning a :class:`Params` (as
        ``FitResult.update_params()`` does) sets the zfit parameters' values.

    Raises
    ------
    TypeError
        When ``loss`` lacks zfit's loss methods.
    ValueError
        When it has no (valid) ``errordef`` or no floating parameter.
    """

    def __init__(self, loss: Any, *, full: bool = True, name: str | None = None) -> None:
        missing = [m for m in _ZFIT_METHODS if not callable(getattr(loss, m, None))]
        if missing:
            raise TypeError(
                f"{type(loss).__name__} is not a zfit-like loss: it lacks the method(s) {missing}"
            )
        self.zfit_loss = loss
        self.full = bool(full)
        zname = getattr(loss, "name", None)
        where = f"zfit loss {type(loss).__name__}"
        _check_errordef(getattr(loss, "errordef", None), where)
        self.zfit_params: tuple[Any, ...] = tuple(loss.get_params())
        if not self.zfit_params:
            raise ValueError(f"{where} has no floating parameters: there is nothing to fit")
        self._names = tuple(str(p.name) for p in self.zfit_params)
        super().__init__(
            params=None,
            errordef=loss.errordef,
            backend="numpy",
            name=name or (zname if isinstance(zname, str) else None),
        )
        options = getattr(loss, "_options", None)
        numerical = isinstance(options, Mapping) and bool(options.get("numgrad"))
        #: zfit's own gradient (autodiff unless the loss was built with numgrad): what
        #: ``LossEvaluator.has_exact_gradient`` looks for, as for a user's gradient
        self.gradient_func = None if numerical else loss.gradient

    def _describe(self) -> str:
        return f"zfit loss {type(getattr(self, 'zfit_loss', None)).__name__}"

    @property
    def errordef(self) -> float:
        """The zfit loss's errordef (0.5 for its likelihoods, 1 for its chi-squares)."""
        return _check_errordef(getattr(self.zfit_loss, "errordef", None), self._describe)

    # -- parameters ----------------------------------------------------------------------
    def _limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lower, upper, step = [], [], []
        for p in self.zfit_params:
            lower.append(_as_limit(getattr(p, "lower", None), -np.inf))
            upper.append(_as_limit(getattr(p, "upper", None), np.inf))
            s = getattr(p, "stepsize", None)
            s = np.nan if s is None else float(np.asarray(s, dtype=np.float64))
            step.append(s if np.isfinite(s) and s > 0 else np.nan)
        return np.array(lower), np.array(upper), np.array(step)

    @property  # type: ignore[override]
    def params(self) -> Params:
        """The zfit parameters now: values, limits and step sizes."""
        values = np.array(
            [float(np.asarray(p.value(), dtype=np.float64)) for p in self.zfit_params]
        )
        lower, upper, step = self._limits()
        return Params(self._names, values, lower, upper, step)

    @params.setter
    def params(self, value: Params | None) -> None:
        if value is None:  # BaseLoss.__init__: the parameters are the zfit ones
            return
        self.set_values(value)

    def set_values(self, values: Params | Mapping[str, float] | Sequence[float]) -> None:
        """Set the zfit parameters' values (from a :class:`Params`, ``{name: value}`` or a sequence).

        Raises
        ------
        ValueError
            For unknown names, a wrong number of values, or (from zfit) a value outside a
            parameter's limits.
        """
        if isinstance(values, Params):
            values = dict(zip(values.names, values.values.tolist()))
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(self._names))
            if unknown:
                raise ValueError(
                    f"unknown parameter(s) {unknown}; the zfit loss has {list(self._names)}"
                )
            pairs = [(p, values[p.name]) for p in self.zfit_params if p.name in values]
        else:
            seq = np.asarray(values, dtype=np.float64).reshape(-1)
            if seq.size != len(self.zfit_params):
                raise ValueError(
                    f"expected {len(self.zfit_params)} values for {list(self._names)}, got {seq.size}"
                )
            pairs = list(zip(self.zfit_params, seq.tolist()))
        for param, v in pairs:
            param.set_value(float(v))

    def complete_params(self, params: Params) -> Params:
        """``params`` named and ordered as the zfit parameters, within their limits."""
        lower, upper, step = self._limits()
        return _complete_params(params, self._names, lower, upper, step, self._describe())

    # -- evaluation ----------------------------------------------------------------------
    def _paramvals(self, x: np.ndarray) -> dict[str, float]:
        return dict(zip(self._names, np.asarray(x, dtype=np.float64).tolist()))

    def _traced_function(self) -> Callable:
        return self.value

    def _build(self, backend: Backend, n: int, typical: numdiff.Typical) -> CompiledLoss:
        if n != len(self.zfit_params):
            raise ValueError(
                f"{self._describe()} has {len(self.zfit_params)} floating parameters "
                f"{list(self._names)}; got {n} values"
            )
        zloss, zparams, full = self.zfit_loss, self.zfit_params, self.full

        def value(x: np.ndarray) -> float:
            return float(np.asarray(zloss.value(params=self._paramvals(x), full=full)))

        def gradient(x: np.ndarray) -> np.ndarray:
            g = zloss.gradient(zparams, paramvals=self._paramvals(x))
            return np.asarray(g, dtype=np.float64).reshape(-1)

        if callable(getattr(zloss, "value_gradient", None)):

            def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
                v, g = zloss.value_gradient(zparams, full=full, paramvals=self._paramvals(x))
                return float(np.asarray(v)), np.asarray(g, dtype=np.float64).reshape(-1)
        else:

            def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
                return value(x), gradient(x)

        if callable(getattr(zloss, "hessian", None)):

            def hessian(x: np.ndarray) -> np.ndarray:
                h = zloss.hessian(zparams, paramvals=self._paramvals(x))
                return np.asarray(h, dtype=np.float64).reshape(n, n)
        else:

            def hessian(x: np.ndarray) -> np.ndarray:
                return numdiff.hessian_from_gradient(gradient, x, typical)

        options = getattr(zloss, "_options", None)
        numerical = isinstance(options, Mapping) and bool(options.get("numgrad"))
        # exact means gradient and Hessian, as the numpy backend's flag means it: a Hessian
        # from finite differences of the gradient is not
        exact_hessian = callable(getattr(zloss, "hessian", None))
        return CompiledLoss(
            "numpy",
            value,
            value_and_gradient,
            hessian,
            exact_derivatives=exact_hessian and not numerical,
        )

    def __repr__(self) -> str:
        return f"<ZfitLossAdapter {type(self.zfit_loss).__name__} params={list(self._names)}>"


# -- iminuit -------------------------------------------------------------------------------
def _iminuit_parameters(cost: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names and limits from an iminuit cost's ``_parameters`` ({name: None | (lo, hi)})."""
    where = f"iminuit cost {type(cost).__name__}"
    spec = getattr(cost, "_parameters", None)
    if not isinstance(spec, Mapping):
        raise TypeError(f"{where} has no parameter description (_parameters)")
    if not spec:
        raise ValueError(f"{where} has no parameters: there is nothing to fit")
    npar = getattr(cost, "npar", len(spec))
    if npar != len(spec):
        raise ValueError(
            f"{where}: npar is {npar} but _parameters names {len(spec)} parameters {list(spec)}"
        )
    names = tuple(str(k) for k in spec)
    lower = np.full(len(names), -np.inf)
    upper = np.full(len(names), np.inf)
    for i, lim in enumerate(spec.values()):
        if lim is None:
            continue
        try:
            lo, hi = lim
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: the limits of parameter '{names[i]}' are {lim!r}; expected (lower, upper)"
            ) from None
        lower[i] = _as_limit(lo, -np.inf)
        upper[i] = _as_limit(hi, np.inf)
    return names, lower, upper


class _IminuitParams:
    """Parameter handling shared by the iminuit adapters."""

    cost: Any
    _names: tuple[str, ...]
    _lower: np.ndarray
    _upper: np.ndarray

    def _describe(self) -> str:
        return f"iminuit cost {type(getattr(self, 'cost', None)).__name__}"

    @property
    def errordef(self) -> float:
        """The cost's errordef, read live (iminuit's ``Cost.errordef``)."""
        return _check_errordef(getattr(self.cost, "errordef", None), self._describe)

    def complete_params(self, params: Params) -> Params:
        """``params`` named and ordered as the cost's parameters, within the cost's limits."""
        step = np.full(len(self._names), np.nan)
        return _complete_params(
            params, self._names, self._lower, self._upper, step, self._describe()
        )


def _setup_iminuit(adapter: Any, cost: Any) -> None:
    if not callable(cost):
        raise TypeError(f"an iminuit cost must be callable, got {type(cost).__name__}")
    adapter.cost = cost
    adapter._names, adapter._lower, adapter._upper = _iminuit_parameters(cost)
    _check_errordef(getattr(cost, "errordef", None), adapter._describe())


class IminuitCostAdapter(_IminuitParams, SimpleLoss):
    """An iminuit cost function (``UnbinnedNLL``, ``BinnedNLL``, ``CostSum``, ...) as a loss.

    Parameters
    ----------
    cost : iminuit cost
        Called as ``cost(*x)``; ``cost.grad(*x)`` is used as the exact gradient when
        ``cost.has_grad`` (the Hessian then comes from differences of the gradient).
    params : optional
        Start values in any form of :func:`~zfitlite.params.make_params`; unnamed values
        are taken in the cost's parameter order. Without them ``minimize`` needs
        ``params``.
    name : str, optional
        Default the cost's class name.

    Raises
    ------
    TypeError, ValueError
        For a cost without parameters or errordef, or start values that do not match
        the cost's parameters.
    """

    def __init__(self, cost: Any, params: Any = None, name: str | None = None) -> None:
        _setup_iminuit(self, cost)

        def func(x: np.ndarray) -> float:
            return cost(*x)

        gradient: Callable[[np.ndarray], np.ndarray] | None = None
        if bool(getattr(cost, "has_grad", False)) and callable(getattr(cost, "grad", None)):

            def cost_gradient(x: np.ndarray) -> np.ndarray:
                return np.asarray(cost.grad(*x), dtype=np.float64)

            gradient = cost_gradient

        SimpleLoss.__init__(
            self,
            func,
            params=None,
            errordef=cost.errordef,
            gradient=gradient,
            backend="numpy",
            name=name or type(cost).__name__,
        )
        if params is not None:
            self.params = self.complete_params(make_params(params))

    def __repr__(self) -> str:
        return f"<IminuitCostAdapter {type(self.cost).__name__} params={list(self._names)}>"


class IminuitLeastSquaresAdapter(_IminuitParams, LeastSquares):
    """An ``iminuit.cost.LeastSquares`` (``loss="linear"``) as a zfitlite :class:`LeastSquares`.

    The residuals are ``(y - model(x, *p)) / yerror`` over the cost's unmasked data (read
    from ``cost.x``, ``cost.y``, ``cost.yerror`` and ``cost.mask`` at each call, so later
    changes of the cost's data are seen); their sum of squares is ``cost(*p)``. The
    Jacobian comes from finite differences. ``errordef`` is the cost's (1).

    Parameters
    ----------
    cost : iminuit.cost.LeastSquares
    params : optional
        Start values (unnamed ones in the cost's parameter order).
    name : str, optional
        Default ``"LeastSquares"``.
    """

    def __init__(self, cost: Any, params: Any = None, name: str | None = None) -> None:
        _setup_iminuit(self, cost)
        if getattr(cost, "loss", "linear") != "linear":
            raise ValueError(
                f"iminuit LeastSquares with loss={cost.loss!r} is not a sum of squared residuals; "
                "use IminuitCostAdapter for it"
            )

        def residuals(p: np.ndarray) -> np.ndarray:
            x, y, ye = cost.x, cost.y, cost.yerror
            mask = cost.mask
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
                x, y, ye = x[..., mask], y[mask], ye[mask]
            ym = np.asarray(cost.model(x, *p), dtype=np.float64).reshape(-1)
            return (y - ym) / ye

        LeastSquares.__init__(
            self,
            residuals,
            params=None,
            errordef=cost.errordef,
            backend="numpy",
            name=name or type(cost).__name__,
        )
        if params is not None:
            self.params = self.complete_params(make_params(params))

    def __repr__(self) -> str:
        return f"<IminuitLeastSquaresAdapter {type(self.cost).__name__} params={list(self._names)}>"
