"""Loading a FitResult from plain data, strictly: types are checked, nothing is executed."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np

from .params import Params
from .status import Status

_REQUIRED = {"format", "version", "params", "fmin", "edm", "tol", "errordef", "status"}


def _bad(msg: str) -> ValueError:
    return ValueError(f"malformed FitResult data: {msg}")


def _number(d: Mapping[str, Any], key: str) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, Real):
        raise _bad(f"'{key}' must be a number, got {type(v).__name__}")
    return float(v)


def _numbers(v: Any, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    def check(item: Any) -> None:
        if isinstance(item, list):
            for it in item:
                check(it)
        elif item is not None and (isinstance(item, bool) or not isinstance(item, Real)):
            raise _bad(f"{what} must contain only numbers, found {type(item).__name__}")

    if not isinstance(v, list):
        raise _bad(f"{what} must be a list, got {type(v).__name__}")
    check(v)
    try:
        arr = np.array(
            [np.nan if e is None else e for e in v] if v and not isinstance(v[0], list) else v,
            dtype=np.float64,
        )
    except (TypeError, ValueError) as exc:
        raise _bad(f"{what} is not a rectangular array of numbers ({exc})") from None
    if shape is not None and arr.shape != shape:
        raise _bad(f"{what} has shape {arr.shape}, expected {shape}")
    return arr


def _plain_tree(v: Any, what: str, depth: int = 0) -> Any:
    if depth > 8:
        raise _bad(f"{what} is nested too deeply")
    if isinstance(v, Mapping):
        return {str(k): _plain_tree(x, f"{what}.{k}", depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_tree(x, what, depth + 1) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise _bad(f"{what} holds a {type(v).__name__}; only plain data is allowed")


def load_result_dict(cls: type, d: Any) -> Any:
    """Validate ``d`` and build ``cls`` (a FitResult) from it, with no loss and no minimizer."""
    if not isinstance(d, Mapping):
        raise _bad(f"expected a dict, got {type(d).__name__}")
    missing = _REQUIRED - set(d)
    if missing:
        raise _bad(f"missing key(s) {sorted(missing)}")
    if d["format"] != "zfitlite.FitResult":
        raise _bad(f"'format' is {d['format']!r}, expected 'zfitlite.FitResult'")
    if d["version"] != 1:
        raise _bad(f"unsupported version {d['version']!r}")
    p = d["params"]
    if not isinstance(p, Mapping) or not {"name", "value"} <= set(p):
        raise _bad("'params' must be a dict with at least 'name' and 'value'")
    names = p["name"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad("'params.name' must be a list of strings")
    n = len(names)
    arrays = {
        k: _numbers(p[k], f"params.{k}", (n,))
        for k in ("value", "lower", "upper", "stepsize")
        if k in p
    }
    try:
        spec = Params(
            tuple(names),
            arrays["value"],
            arrays.get("lower"),
            arrays.get("upper"),
            arrays.get("stepsize"),
        )
    except (TypeError, ValueError) as exc:
        raise _bad(f"invalid parameters: {exc}") from None
    status = d["status"]
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or status not in {int(s) for s in Status}
    ):
        raise _bad(f"'status' must be one of {[int(s) for s in Status]}, got {status!r}")
    from .result import Approximations

    approx_d = d.get("approx") or {}
    if not isinstance(approx_d, Mapping):
        raise _bad("'approx' must be a dict")
    shapes = {"gradient": (n,), "hessian": (n, n), "inv_hessian": (n, n)}
    approx = Approximations(
        **{
            k: None if approx_d.get(k) is None else _numbers(approx_d[k], f"approx.{k}", s)
            for k, s in shapes.items()
        }
    )
    message = d.get("message")
    if message is not None and not isinstance(message, str):
        raise _bad("'message' must be a string")
    info = _plain_tree(d.get("info") or {}, "info")
    minimizer_info = _plain_tree(d.get("minimizer") or {}, "minimizer")
    if not isinstance(info, dict) or not isinstance(minimizer_info, dict):
        raise _bad("'info' and 'minimizer' must be dicts")
    result = cls(
        params=spec,
        fmin=_number(d, "fmin"),
        edm=_number(d, "edm"),
        status=Status(status),
        tol=_number(d, "tol"),
        errordef=_number(d, "errordef"),
        approx=approx,
        info=info,
        message=message,
        minimizer_info=minimizer_info,
    )
    covs = d.get("covariance") or {}
    if not isinstance(covs, Mapping):
        raise _bad("'covariance' must be a dict")
    for method, cov in covs.items():
        if method not in ("hesse_np", "approx"):
            raise _bad(f"unknown covariance method {method!r}")
        result._covariances[method] = _numbers(cov, f"covariance.{method}", (n, n))
    pres = d.get("param_results")
    if pres is not None:
        pres = _plain_tree(pres, "param_results")
        if not isinstance(pres, dict) or set(pres) != set(names):
            raise _bad("'param_results' must be a dict keyed by the parameter names")
        for name, entry in pres.items():
            if not isinstance(entry, dict):
                raise _bad(f"param_results.{name} must be a dict")
            result.params[name].update(entry)
    return result
