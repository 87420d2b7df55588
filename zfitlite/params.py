"""Normalising the parameter forms users write into one plain-data :class:`Params`.

Accepted forms (see ``API.md`` section 2):

* a sequence of start values, ``[1.0, 2.0]``;
* a dict of arrays, ``{"value": [...], "name": [...], "lower": [...], "upper": [...],
  "stepsize": [...]}`` (only ``value`` required);
* a dict by name, ``{"mu": 1.0, "sigma": {"value": 2.0, "lower": 0.0}}``;
* a :class:`Params` instance;
* ``None`` when the loss or an ``init`` result knows its parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

__all__ = ["Params", "make_params"]

_ARRAY_KEYS = ("value", "name", "lower", "upper", "stepsize")
_PER_PARAM_KEYS = ("value", "lower", "upper", "stepsize")


@dataclass(frozen=True, eq=False)
class Params:
    """The parameters of a fit as plain data: names, start values, bounds, step sizes.

    Attributes
    ----------
    names : tuple of str
        Unique parameter names, in the order of the loss's ``x`` vector.
    values : numpy.ndarray
        Values (start values before a fit, fitted values after).
    lower, upper : numpy.ndarray
        Bounds; ``-inf``/``+inf`` where a parameter is unbounded.
    stepsize : numpy.ndarray
        Initial step size (about the expected uncertainty); ``nan`` where unknown.
    """

    names: tuple[str, ...]
    values: np.ndarray
    lower: np.ndarray = field(default=None)  # type: ignore[assignment]
    upper: np.ndarray = field(default=None)  # type: ignore[assignment]
    stepsize: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.names)
        values = np.array(self.values, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "values", values)
        defaults = {"lower": -np.inf, "upper": np.inf, "stepsize": np.nan}
        for key, default in defaults.items():
            arr = getattr(self, key)
            arr = (
                _constant(n, default)  # shared and read-only
                if arr is None
                else np.array(arr, dtype=np.float64).reshape(-1)
            )
            object.__setattr__(self, key, arr)
        for arr in (self.values, self.lower, self.upper, self.stepsize):
            arr.setflags(write=False)
        _validate(self)
        # the bounds never change after construction: answer has_bounds once (at once for
        # the shared default bounds)
        bounded = not (
            self.lower is _constant(n, -np.inf) and self.upper is _constant(n, np.inf)
        ) and bool(np.isfinite(self.lower).any() or np.isfinite(self.upper).any())
        object.__setattr__(self, "_has_bounds", bounded)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_bounds(self) -> bool:
        """True when any parameter has a finite lower or upper bound."""
        return self._has_bounds  # type: ignore[attr-defined]

    @property
    def layout(self) -> tuple[str, ...]:
        """The key under which compiled functions for these parameters are cached."""
        return self.names

    def with_values(self, values: Any) -> Params:
        """Return a copy with new values (bounds and step sizes kept, not re-validated)."""
        values = np.array(values, dtype=np.float64).reshape(-1)
        if values.shape != (len(self),):
            raise ValueError(
                f"expected {len(self)} values for the parameters {list(self.names)}, got shape {values.shape}"
            )
        return _unchecked(
            self.names, values, self.lower, self.upper, self.stepsize, self.has_bounds
        )

    def with_stepsize(self, stepsize: Any) -> Params:
        """Return a copy with new step sizes."""
        return Params(self.names, self.values, self.lower, self.upper, stepsize)

    def at_limit(self, x: Any, rtol: float = 1e-8) -> np.ndarray:
        """Boolean mask: which parameters of ``x`` sit on (or within ``rtol`` of) a bound."""
        x = np.asarray(x, dtype=np.float64)
        scale = np.maximum(np.abs(x), 1.0) * rtol
        return (np.abs(x - self.lower) <= scale) | (np.abs(self.upper - x) <= scale)

    def typical_scale(self) -> np.ndarray:
        """A per-parameter scale for finite differences: step size, else the value's magnitude, else 1."""
        cached = self.__dict__.get("_typical_scale")
        if cached is None:  # the fields never change: computed once per Params
            if self.stepsize is _constant(len(self.names), np.nan):  # no step sizes given
                scale = np.abs(self.values)
            else:
                scale = np.where(
                    np.isfinite(self.stepsize) & (self.stepsize > 0),
                    self.stepsize,
                    np.abs(self.values),
                )
            cached = np.where(scale > 0, scale, 1.0)
            cached.setflags(write=False)
            object.__setattr__(self, "_typical_scale", cached)
        return cached

    def difference_scales(self) -> Any:
        """What finite differences need: :meth:`typical_scale`, with the bounds when there are
        any (a :class:`~zfitlite.backends.numdiff.Scales`), so that no step leaves them."""
        if not self.has_bounds:
            return self.typical_scale()
        from .backends.numdiff import Scales

        return Scales(self.typical_scale(), self.lower, self.upper)

    def to_dict(self) -> dict[str, list]:
        """The dict-of-arrays form, as plain Python lists."""
        return {
            "name": list(self.names),
            "value": self.values.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "stepsize": self.stepsize.tolist(),
        }

    def __repr__(self) -> str:
        items = ", ".join(f"{n}={v:.6g}" for n, v in zip(self.names, self.values))
        return f"Params({items})"


@functools.lru_cache(maxsize=256)
def _constant(n: int, value: float) -> np.ndarray:
    """A read-only array of ``n`` times ``value`` (the default bounds and step sizes)."""
    arr = np.full(n, value)
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=256)
def _default_names(n: int) -> tuple[str, ...]:
    """``("p0", "p1", ...)``: the names of parameters given as plain start values."""
    return tuple(f"p{i}" for i in range(n))


def _plain_params(values: np.ndarray) -> Params:
    """:class:`Params` of plain start values (a fresh float64 vector, owned here): default
    names, no bounds, no step sizes. The common case of every fit in a loop, built
    without the general constructor's copies and checks where the values are finite;
    anything else goes through it (and its error messages)."""
    n = values.size
    if n == 0 or not all(map(math.isfinite, values.tolist())):
        return Params(_default_names(n), values)
    return _unchecked(
        _default_names(n),
        values,
        _constant(n, -np.inf),
        _constant(n, np.inf),
        _constant(n, np.nan),
        False,
    )


def _unchecked(
    names: tuple[str, ...],
    values: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    stepsize: np.ndarray,
    has_bounds: bool,
) -> Params:
    """:class:`Params` from fields already valid (``values`` a fresh float64 vector, made
    read-only here; the others read-only already), without the constructor's checks."""
    values.setflags(write=False)
    p = object.__new__(Params)
    # the frozen dataclass's fields, set as its own __setattr__-free constructor would
    p.__dict__.update(
        names=names,
        values=values,
        lower=lower,
        upper=upper,
        stepsize=stepsize,
        _has_bounds=has_bounds,
    )
    return p


def _validate(p: Params) -> None:
    n = len(p.names)
    if n == 0:
        raise ValueError(
            "the parameter list is empty: give at least one start value, e.g. params=[1.0]"
        )
    for key in ("values", "lower", "upper", "stepsize"):
        arr = getattr(p, key)
        if arr.shape != (n,):
            raise ValueError(
                f"parameter '{key}' has {arr.size} entries but there are {n} parameters {list(p.names)}; "
                "give one entry per parameter"
            )
    # the default names p0, p1, ... are valid: checked once, when they were made
    seen: set[str] = set()
    for name in () if p.names is _default_names(n) else p.names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"parameter names must be non-empty strings, got {name!r}")
        if name in seen:
            raise ValueError(
                f"duplicate parameter name '{name}': every parameter needs a unique name; "
                "rename one of them"
            )
        seen.add(name)
    # Python floats: for the few parameters of a fit, cheaper than numpy's elementwise calls
    rows = zip(p.names, p.values.tolist(), p.lower.tolist(), p.upper.tolist(), p.stepsize.tolist())
    for name, v, lo, hi, s in rows:
        if not math.isfinite(v):
            raise ValueError(
                f"parameter '{name}' has a non-finite start value {v}; give a finite number"
            )
        if math.isnan(lo) or math.isnan(hi):
            raise ValueError(
                f"parameter '{name}' has a NaN bound; use -inf/inf (or None) for no bound"
            )
        if lo > hi:
            raise ValueError(
                f"parameter '{name}' has lower bound {lo} > upper bound {hi}; swap or fix them"
            )
        if not lo <= v <= hi:
            raise ValueError(
                f"parameter '{name}' starts at {v}, outside its bounds [{lo}, {hi}]; "
                "choose a start value inside the bounds"
            )
        if not math.isnan(s) and not (math.isfinite(s) and s > 0):
            raise ValueError(
                f"parameter '{name}' has step size {s}; a step size must be finite and > 0"
            )


def _as_float_array(obj: Any, what: str) -> np.ndarray:
    if isinstance(obj, (str, bytes)):
        raise TypeError(f"{what} must be numbers, got the string {obj!r}")
    try:
        arr = np.asarray(obj)
    except Exception as exc:  # pragma: no cover - numpy raises for ragged input
        raise TypeError(f"{what} must be numbers: {exc}") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{what} must be numbers, got {obj!r}")
    if arr.dtype.kind == "c":
        raise TypeError(f"{what} must be real numbers, got complex values {obj!r}")
    if arr.ndim > 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {arr.shape}")
    return arr.astype(np.float64).reshape(-1)


def _bound(value: Any, default: float, what: str) -> float:
    if value is None:
        return default
    if not isinstance(value, Real) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        raise TypeError(f"{what} must be a number or None, got {value!r}")
    return float(value)


def _from_array_dict(d: Mapping[str, Any]) -> Params:
    unknown = set(d) - set(_ARRAY_KEYS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(unknown)} in the parameter dict; allowed keys are {list(_ARRAY_KEYS)}"
        )
    values = _as_float_array(d["value"], "params['value']")
    n = values.size
    names = d.get("name")
    if names is None:
        names = [f"p{i}" for i in range(n)]
    elif isinstance(names, str):
        names = [names]
    names = tuple(names)
    if len(names) != n:
        raise ValueError(
            f"params['name'] has {len(names)} names but params['value'] has {n} values"
        )
    arrays: dict[str, Any] = {}
    for key in ("lower", "upper", "stepsize"):
        if d.get(key) is None:
            arrays[key] = None
            continue
        raw = d[key]
        if np.ndim(raw) == 0:
            raw = [raw] * n
        raw = [np.nan if (r is None and key == "stepsize") else r for r in raw]
        if key != "stepsize":
            raw = [(-np.inf if key == "lower" else np.inf) if r is None else r for r in raw]
        arr = _as_float_array(raw, f"params['{key}']")
        if arr.size != n:
            raise ValueError(
                f"params['{key}'] has {arr.size} entries but params['value'] has {n} values; "
                "give one entry per parameter (or a single number for all)"
            )
        arrays[key] = arr
    return Params(names, values, **arrays)


def _from_name_dict(d: Mapping[str, Any]) -> Params:
    names, values, lower, upper, stepsize = [], [], [], [], []
    for name, spec in d.items():
        if not isinstance(name, str):
            raise TypeError(f"parameter names (the dict's keys) must be strings, got {name!r}")
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(_PER_PARAM_KEYS)
            if unknown:
                raise ValueError(
                    f"parameter '{name}': unknown key(s) {sorted(unknown)}; allowed keys are {list(_PER_PARAM_KEYS)}"
                )
            if "value" not in spec:
                raise ValueError(
                    f"parameter '{name}' has no 'value'; write {{'{name}': {{'value': 1.0, ...}}}}"
                )
            value = spec["value"]
            lo = _bound(spec.get("lower"), -np.inf, f"parameter '{name}': lower")
            hi = _bound(spec.get("upper"), np.inf, f"parameter '{name}': upper")
            st = _bound(spec.get("stepsize"), np.nan, f"parameter '{name}': stepsize")
        else:
            value, lo, hi, st = spec, -np.inf, np.inf, np.nan
        if isinstance(value, (bool, np.bool_)) or not (
            isinstance(value, Real)
            or (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu")
        ):
            raise TypeError(f"parameter '{name}': the value must be a real number, got {value!r}")
        names.append(name)
        values.append(float(value))
        lower.append(lo)
        upper.append(hi)
        stepsize.append(st)
    return Params(tuple(names), values, lower, upper, stepsize)  # pyright: ignore[reportArgumentType]


def make_params(params: Any, loss: Any = None, init: Any = None) -> Params:
    """Turn any accepted parameter form into :class:`Params`.

    Parameters
    ----------
    params : sequence, dict, Params or None
        The user's parameters (see the module docstring for the forms).
    loss : optional
        A loss that may know its parameters (attribute ``params``), used when ``params`` is None.
        A loss with a ``complete_params(Params) -> Params`` method (zfit losses, iminuit
        costs) gets the final say: it names, orders and bounds the parameters as it knows them.
    init : FitResult, optional
        A previous result: when ``params`` is None its layout and values are the start;
        when ``params`` is given, its values win and ``init`` only contributes step sizes
        (its Hesse errors) where ``params`` has none.

    Returns
    -------
    Params

    Raises
    ------
    ValueError, TypeError
        With a message naming the offending parameter and how to fix it.
    """
    result: Params
    if type(params) is np.ndarray and params.dtype == np.float64 and params.ndim == 1:
        # start values as a float64 vector, the common case of a fit in a loop: what the
        # general branch below makes of it (a fresh copy), without its type tests
        result = _plain_params(params.copy())
    elif params is None:
        known = getattr(loss, "params", None) if loss is not None else None
        if known is not None:
            result = known if isinstance(known, Params) else make_params(known)
            if init is not None and tuple(init.params_spec.names) == result.names:
                result = result.with_values(init.x)
        elif init is not None:
            result = init.params_spec
        else:
            raise ValueError(
                "no parameters given: pass start values, e.g. minimize(loss, [1.0, 2.0]), or a dict "
                "{name: value}, or create the loss with SimpleLoss(func, params=...)"
            )
    elif isinstance(params, Params):
        result = params
    elif isinstance(params, Mapping):
        if not params:
            raise ValueError(
                "the parameter dict is empty: give at least one parameter, e.g. {'mu': 1.0}"
            )
        result = _from_array_dict(params) if "value" in params else _from_name_dict(params)
    elif isinstance(params, (str, bytes)):
        raise TypeError(f"params must be numbers, a dict or None, got the string {params!r}")
    elif isinstance(params, (Sequence, np.ndarray)) or hasattr(params, "__array__"):
        if (
            isinstance(params, Sequence)
            and len(params) > 0
            and all(isinstance(p, Mapping) for p in params)
        ):
            raise TypeError(
                "params as a list of dicts is not a supported form; use {name: {'value': ...}} instead"
            )
        result = _plain_params(_as_float_array(params, "params (start values)"))
    elif isinstance(params, Real):
        raise TypeError(
            f"params must be a sequence of start values, got the single number {params!r}; write [{params!r}]"
        )
    else:
        raise TypeError(
            f"params of type {type(params).__name__} is not understood; give a sequence of start values, "
            "a dict {name: value}, a dict of arrays with key 'value', or None"
        )
    known = getattr(loss, "params", None) if params is not None and loss is not None else None
    if (
        isinstance(known, Params)
        and len(known) != len(result)
        and not hasattr(loss, "complete_params")
    ):
        raise ValueError(
            f"the loss has {len(known)} parameters {list(known.names)} but {len(result)} start "
            f"value(s) were given {list(result.names)}; give one start value per parameter, or "
            "params=None to use the loss's own"
        )
    if init is not None and params is not None:
        result = _stepsize_from_init(result, init)
    # losses that name their own parameters (zfit losses, iminuit costs) rename, reorder
    # and bound the user's values to match them
    complete = getattr(loss, "complete_params", None)
    if callable(complete):
        result = complete(result)  # pyright: ignore[reportAssignmentType]
    return result


def _stepsize_from_init(p: Params, init: Any) -> Params:
    """Fill unknown step sizes from the Hesse errors of a previous result with the same names."""
    errors = getattr(init, "_hesse_errors_by_name", None)
    if errors is None:
        return p
    err = errors()
    if not err:
        return p
    step = p.stepsize.copy()
    changed = False
    for i, name in enumerate(p.names):
        if np.isnan(step[i]) and name in err and np.isfinite(err[name]) and err[name] > 0:
            step[i] = err[name]
            changed = True
    return p.with_stepsize(step) if changed else p
