"""Loading a FitResult from plain data, strictly: types are checked, nothing is executed.

The loader accepts exactly what :meth:`FitResult.to_dict <zfitlite.result.FitResult.to_dict>`
writes. Every key, type, shape and range is checked, and anything else (a missing or
unknown key, a string where a number is due, a boolean used as a number, an array of the
wrong shape, a status out of range, a nesting deeper than the format has, a file that
claims ``valid`` for a failed fit) is a :class:`ValueError` whose message names the
problem. Strings stay strings: nothing is imported, called, unpickled or evaluated, so
``"__class__"`` keys or ``"!!python/object"`` values are inert data.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .approximations import Approximations
from .params import Params
from .status import Status

__all__ = ["MAX_DEPTH", "MAX_JSON_BYTES", "load_result_dict", "parse_json"]

#: Largest JSON text :func:`parse_json` reads (bytes); a result with 2,000 parameters
#: and two covariance matrices is about 200 MB.
MAX_JSON_BYTES = 256 * 2**20
#: Deepest nesting of lists and dicts a result may have (``to_dict`` writes at most 5).
MAX_DEPTH = 12

_REQUIRED = frozenset({"format", "version", "params", "fmin", "edm", "tol", "errordef", "status"})
_OPTIONAL = frozenset(
    {
        "param_results",
        "status_name",
        "message",
        "valid",
        "converged",
        "info",
        "covariance",
        "approx",
        "minimizer",
    }
)
_PARAM_KEYS = frozenset({"name", "value", "lower", "upper", "stepsize"})
_COUNT_KEYS = ("nfev", "ngrad", "nhess", "nres", "njac", "ncalls", "niter", "nprofile_fits")
_APPROX_SHAPES = {"gradient": "n", "hessian": "nn", "inv_hessian": "nn"}
_NUMERIC_ENTRY_KEYS = frozenset({"error", "lower", "upper", "cl"})


def _bad(msg: str) -> ValueError:
    return ValueError(f"malformed FitResult data: {msg}")


def _is_number(v: Any) -> bool:
    """A real number, not a bool (``True`` is an int in Python) and not a str."""
    return (type(v) in (int, float)) or isinstance(v, (np.floating, np.integer))


def _as_float(v: Any, what: str) -> float:
    if not _is_number(v):
        raise _bad(f"{what} must be a number, got {type(v).__name__} {_short(v)}")
    try:
        return float(v)
    except OverflowError:
        raise _bad(f"{what} is too large for a float64: {_short(v)}") from None


def _short(v: Any) -> str:
    text = repr(v) if isinstance(v, (str, int, float, bool)) or v is None else ""
    return text if len(text) <= 60 else text[:57] + "..."


def _number(d: Mapping[str, Any], key: str, finite: bool = False, positive: bool = False) -> float:
    v = _as_float(d[key], f"'{key}'")
    if finite and not math.isfinite(v):
        raise _bad(f"'{key}' must be finite, got {v}")
    if positive and not v > 0:
        raise _bad(f"'{key}' must be > 0, got {v}")
    return v


def _numbers(v: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of exactly ``shape`` from nested lists of numbers (None means NaN).

    The nesting is checked before anything is built, so a list nested thousands deep
    is an error, not a RecursionError.
    """

    def check(item: Any, depth: int) -> Any:
        if isinstance(item, list):
            if depth >= len(shape):
                raise _bad(f"{what} is nested deeper than its shape {shape}")
            return [check(x, depth + 1) for x in item]
        if item is None:
            return math.nan
        if not _is_number(item):
            raise _bad(f"{what} must contain only numbers, found {type(item).__name__}")
        return _as_float(item, f"an entry of {what}")

    if not isinstance(v, list):
        raise _bad(f"{what} must be a list, got {type(v).__name__}")
    try:
        arr = np.array(check(v, 0), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if str(exc).startswith("malformed FitResult data"):
            raise
        raise _bad(f"{what} is not a rectangular array of numbers ({exc})") from None
    if arr.shape != shape:
        raise _bad(f"{what} has shape {arr.shape}, expected {shape}")
    return arr


def _plain_tree(v: Any, what: str, depth: int = 0) -> Any:
    """A copy of ``v`` made of dicts with str keys, lists, numbers, str, bool and None."""
    if depth > MAX_DEPTH:
        raise _bad(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise _bad(f"{what} has a key of type {type(k).__name__}; keys must be strings")
            out[k] = _plain_tree(x, f"{what}.{k}", depth + 1)
        return out
    if isinstance(v, list):
        return [_plain_tree(x, f"{what}[]", depth + 1) for x in v]
    if v is None or type(v) in (bool, str):
        return v
    if _is_number(v):
        return _as_float(v, what) if isinstance(v, (float, np.floating)) else int(v)
    raise _bad(f"{what} holds a {type(v).__name__}; only plain data is allowed")


def _dict(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise _bad(f"'{key}' must be a dict, got {type(v).__name__}")
    return v


def _check_param_entry(name: str, entry: Any, spec_row: dict[str, float]) -> dict[str, Any]:
    """One ``param_results`` entry: the spec's numbers, ``at_limit`` and uncertainty dicts."""
    if not isinstance(entry, dict):
        raise _bad(f"param_results.{name} must be a dict, got {type(entry).__name__}")
    out: dict[str, Any] = {}
    for key, val in entry.items():
        where = f"param_results.{name}.{key}"
        if key in ("value", "lower", "upper"):
            v = _as_float(val, where)
            if not (v == spec_row[key] or (math.isnan(v) and math.isnan(spec_row[key]))):
                raise _bad(f"{where} is {v}, but params.{key} says {spec_row[key]}")
            out[key] = v
        elif key == "at_limit":
            if type(val) is not bool:
                raise _bad(f"{where} must be true or false, got {_short(val)}")
            out[key] = val
        elif isinstance(val, dict):  # "hesse", "errors" or a custom name
            sub: dict[str, Any] = {}
            for k, x in val.items():
                if k in _NUMERIC_ENTRY_KEYS:
                    sub[k] = _as_float(x, f"{where}.{k}")
                elif k == "method":
                    if type(x) is not str:
                        raise _bad(f"{where}.method must be a string, got {type(x).__name__}")
                    sub[k] = x
                elif k == "at_limit":
                    ok = type(x) is bool or (
                        isinstance(x, dict) and all(type(b) is bool for b in x.values())
                    )
                    if not ok:
                        raise _bad(f"{where}.at_limit must be true/false or a dict of them")
                    sub[k] = dict(x) if isinstance(x, dict) else x
                else:  # anything else is kept as inert plain data
                    sub[k] = _plain_tree(x, f"{where}.{k}", 3)
            out[key] = sub
        else:
            raise _bad(f"{where} must be a dict of uncertainties, got {type(val).__name__}")
    return out


def load_result_dict(cls: type, d: Any) -> Any:
    """Validate ``d`` and build ``cls`` (a FitResult) from it, with no loss and no minimizer.

    Parameters
    ----------
    cls : type
        :class:`~zfitlite.result.FitResult` (or a subclass).
    d : Mapping
        The output of ``to_dict()`` (or of ``json.loads`` of ``to_json()``).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        For anything that is not a well-formed result dict; the message names the problem.
    """
    if not isinstance(d, Mapping):
        raise _bad(f"expected a dict, got {type(d).__name__}")
    keys = set(d)
    missing = _REQUIRED - keys
    if missing:
        raise _bad(f"missing key(s) {sorted(missing)}")
    unknown = keys - _REQUIRED - _OPTIONAL
    if unknown:
        shown = sorted(repr(k) for k in unknown)
        raise _bad(f"unknown key(s) {', '.join(shown[:10])}")
    if d["format"] != "zfitlite.FitResult":
        raise _bad(f"'format' is {_short(d['format'])}, expected 'zfitlite.FitResult'")
    version = d["version"]
    if type(version) is not int:
        raise _bad(f"'version' must be an integer, got {type(version).__name__}")
    if version != 1:
        raise _bad(
            f"unsupported version {version}; this zfitlite reads version 1"
            + (" (the file is from a newer zfitlite: upgrade)" if version > 1 else "")
        )

    # -- parameters ---------------------------------------------------------------------
    p = d["params"]
    if not isinstance(p, Mapping) or not {"name", "value"} <= set(p):
        raise _bad("'params' must be a dict with at least 'name' and 'value'")
    extra = set(p) - _PARAM_KEYS
    if extra:
        raise _bad(f"unknown key(s) in 'params': {sorted(map(str, extra))}")
    names = p["name"]
    if not isinstance(names, list) or not all(type(n) is str for n in names):
        raise _bad("'params.name' must be a list of strings")
    n = len(names)
    if n == 0:
        raise _bad("'params.name' is empty; a result has at least one parameter")
    arrays = {k: _numbers(p[k], f"params.{k}", (n,)) for k in _PARAM_KEYS - {"name"} if k in p}
    try:
        spec = Params(
            tuple(names),
            arrays["value"],
            **{k: arrays[k] for k in ("lower", "upper", "stepsize") if k in arrays},
        )
    except (TypeError, ValueError) as exc:
        raise _bad(f"invalid parameters: {exc}") from None

    # -- scalars and status -------------------------------------------------------------
    status = d["status"]
    valid_codes = [int(s) for s in Status]
    if type(status) is not int or status not in valid_codes:
        raise _bad(f"'status' must be one of {valid_codes}, got {_short(status)}")
    status = Status(status)
    name = d.get("status_name")
    if name is not None and name != status.name:
        raise _bad(
            f"'status_name' {_short(name)} does not match status {int(status)} ({status.name})"
        )
    fmin = _number(d, "fmin")  # NaN or inf: a failed fit
    edm = _number(d, "edm")
    tol = _number(d, "tol", finite=True, positive=True)
    errordef = _number(d, "errordef", finite=True, positive=True)
    message = d.get("message")
    if message is not None and type(message) is not str:
        raise _bad(f"'message' must be a string, got {type(message).__name__}")

    # -- approximations, info, minimizer ------------------------------------------------
    approx_d = _dict(d, "approx")
    extra = set(approx_d) - set(_APPROX_SHAPES)
    if extra:
        raise _bad(f"unknown key(s) in 'approx': {sorted(map(str, extra))}")
    arrays = {
        k: None
        if approx_d.get(k) is None
        else _numbers(approx_d[k], f"approx.{k}", (n,) if s == "n" else (n, n))
        for k, s in _APPROX_SHAPES.items()
    }
    approx = Approximations(arrays["gradient"], arrays["hessian"], arrays["inv_hessian"])
    info = _plain_tree(_dict(d, "info"), "info")
    for key in _COUNT_KEYS:
        v = info.get(key)
        if key == "niter" and v is not None and type(v) is not int:  # -1: not applicable
            raise _bad(f"info.niter must be an integer, got {_short(v)}")
        if key != "niter" and v is not None and (type(v) is not int or v < 0):
            raise _bad(f"info.{key} must be a non-negative integer, got {_short(v)}")
    minimizer_info = _plain_tree(_dict(d, "minimizer"), "minimizer")

    result = cls(
        params=spec,
        fmin=fmin,
        edm=edm,
        status=status,
        tol=tol,
        errordef=errordef,
        approx=approx,
        info=info,
        message=message,
        minimizer_info=minimizer_info,
    )

    # -- stored uncertainties -----------------------------------------------------------
    for method, cov in _dict(d, "covariance").items():
        if method not in ("hesse_np", "approx"):
            raise _bad(
                f"unknown covariance method {_short(method)}; expected 'hesse_np' or 'approx'"
            )
        result._covariances[method] = _numbers(cov, f"covariance.{method}", (n, n))
    pres = d.get("param_results")
    if pres is not None:
        if not isinstance(pres, Mapping):
            raise _bad(f"'param_results' must be a dict, got {type(pres).__name__}")
        unknown_names = set(pres) - set(names)
        if unknown_names:
            raise _bad(
                "'param_results' must be a dict keyed by the parameter names; unknown "
                f"parameter(s) {sorted(map(str, unknown_names))}"
            )
        if set(pres) != set(names):
            raise _bad(
                "'param_results' must be a dict keyed by the parameter names; missing "
                f"{sorted(set(names) - set(pres))}"
            )
        for pname in names:
            row = result.params[pname]
            result.params[pname].update(_check_param_entry(pname, pres[pname], row))

    # -- claims that must agree with the data -------------------------------------------
    for key, actual in (("converged", result.converged), ("valid", result.valid)):
        claimed = d.get(key)
        if claimed is None:
            continue
        if type(claimed) is not bool:
            raise _bad(f"'{key}' must be true or false, got {_short(claimed)}")
        if claimed != actual:
            raise _bad(
                f"'{key}' is {claimed} but the status, fmin and bounds say {actual}; "
                "the file was edited or corrupted"
            )
    return result


def parse_json(source: Any) -> Any:
    """Parse the JSON of a result from text, bytes, a path or an open file.

    Parameters
    ----------
    source : str, bytes, os.PathLike or file
        JSON text (a ``str`` is always text, never a file name), or a
        :class:`pathlib.Path` (or other path-like) to read, or an object with ``read()``.

    Returns
    -------
    object
        The parsed JSON value (checked afterwards by :func:`load_result_dict`).

    Raises
    ------
    ValueError
        Not JSON, larger than :data:`MAX_JSON_BYTES`, or nested deeper than the
        parser allows.
    TypeError
        For a source of another type.
    """
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        size = os.path.getsize(path)
        if size > MAX_JSON_BYTES:
            raise ValueError(
                f"{path} is {size} bytes; a FitResult file is at most {MAX_JSON_BYTES} bytes"
            )
        with open(path, "rb") as fh:
            text: Any = fh.read()
    elif hasattr(source, "read") and not isinstance(source, (str, bytes, bytearray)):
        text = source.read(MAX_JSON_BYTES + 1)
    elif isinstance(source, (str, bytes, bytearray)):
        text = source
    else:
        raise TypeError(
            f"from_json needs JSON text, got {type(source).__name__}; pass a str or bytes, "
            "a path (pathlib.Path) or an open file"
        )
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(
            f"the JSON text is longer than {MAX_JSON_BYTES} bytes; too large for a FitResult"
        )
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(
            "not valid JSON for a FitResult: nested too deeply for the parser"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        hint = ""
        if isinstance(source, str) and len(source) < 4096 and os.path.isfile(source):
            hint = "; to read a file, pass a path: FitResult.from_json(pathlib.Path(name))"
        raise ValueError(f"not valid JSON for a FitResult: {exc}{hint}") from None
