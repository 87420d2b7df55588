"""Loading results is safe: nothing is executed, and bad input is a clear ValueError.

A catalogue of hostile and malformed inputs, each changing one thing of a good result
(or replacing the whole text), must give a ``ValueError`` whose message names the
problem; strings that look like code stay inert strings; and a round trip through
JSON keeps every number bit for bit.
"""

from __future__ import annotations

import copy
import io
import json
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zfitlite._serialize import MAX_JSON_BYTES
from zfitlite.loss import SimpleLoss
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.result import FitResult

_DATA = np.random.default_rng(8).normal(1.0, 2.0, 100)


def _nll(x: np.ndarray) -> float:
    mu, sigma = x
    return float(np.sum(np.log(sigma) + 0.5 * ((_DATA - mu) / sigma) ** 2))


@pytest.fixture(scope="module")
def result() -> FitResult:
    loss = SimpleLoss(_nll, errordef=0.5, backend="numpy")
    r = LevenbergMarquardt(tol=1e-8).minimize(
        loss, {"mu": 0.5, "sigma": {"value": 1.5, "lower": 0.1, "upper": 10.0}}
    )
    r.hesse()
    r.errors(params="mu")
    r.hesse(name="hesse_2sigma", cl=0.95)
    return r


@pytest.fixture
def good(result: FitResult) -> dict[str, Any]:
    return copy.deepcopy(result.to_dict())


def _bits(a: Any) -> bytes:
    return np.asarray(a, dtype=np.float64).tobytes()


# -- round trip ----------------------------------------------------------------------------


def test_round_trip_is_bit_for_bit(result: FitResult, tmp_path: Path) -> None:
    text = result.to_json()
    path = tmp_path / "result.json"
    path.write_text(text)
    for back in (
        FitResult.from_json(text),
        FitResult.from_json(text.encode()),
        FitResult.from_json(path),
        FitResult.from_json(io.StringIO(text)),
        FitResult.from_dict(json.loads(text)),
    ):
        assert _bits(back.x) == _bits(result.x)
        assert _bits(back.fmin) == _bits(result.fmin) and _bits(back.edm) == _bits(result.edm)
        assert back.tol == result.tol and back.errordef == result.errordef
        assert back.status is result.status and back.message == result.message
        assert back.valid == result.valid and back.converged == result.converged
        assert back.names == result.names
        for attr in ("lower", "upper", "stepsize"):
            assert _bits(getattr(back.params_spec, attr)) == _bits(
                getattr(result.params_spec, attr)
            )
        assert _bits(back.covariance()) == _bits(result.covariance())
        for k in ("gradient", "hessian", "inv_hessian"):
            a, b = getattr(back.approx, k), getattr(result.approx, k)
            assert (a is None and b is None) or _bits(a) == _bits(b)
        assert back.params == json.loads(json.dumps(result.params))
        assert back.params["mu"]["errors"]["lower"] == result.params["mu"]["errors"]["lower"]
        assert back.nfev == result.nfev and back.njev == result.njev and back.nit == result.nit
        assert back.minimizer_info == json.loads(json.dumps(result.minimizer_info))
        assert back.to_json() == text  # and the loaded result writes the same text
        assert back.loss is None and back.minimizer is None


def test_round_trip_of_a_failed_result_keeps_nan() -> None:
    def bad(x: np.ndarray) -> float:
        return float("nan") if x[0] > 1.5 else float((x[0] - 3.0) ** 2)

    bad.errordef = 1.0
    from zfitlite.minimize import DefaultToyStrategy

    r = LevenbergMarquardt(strategy=DefaultToyStrategy()).minimize(bad, [0.0])
    back = FitResult.from_json(r.to_json())
    assert back.status is r.status and back.valid is False
    assert _bits(back.fmin) == _bits(r.fmin) and _bits(back.edm) == _bits(r.edm)


def test_loaded_result_refuses_what_needs_the_loss(result: FitResult) -> None:
    back = FitResult.from_json(result.to_json())
    with pytest.raises(ValueError, match="needs the loss"):
        back.errors()
    # but stored uncertainties are there
    assert back.params["mu"]["hesse"]["error"] == result.params["mu"]["hesse"]["error"]


# -- the catalogue ---------------------------------------------------------------------------

_DELETE = object()


def _set(d: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


def _nested(depth: int) -> Any:
    v: Any = 1.0
    for _ in range(depth):
        v = [v]
    return v


def _nested_dict(depth: int) -> Any:
    v: Any = "x"
    for _ in range(depth):
        v = {"k": v}
    return v


#: (path into the good dict, new value or _DELETE, regex the message must match)
MUTATIONS = [
    (("format",), _DELETE, r"missing key\(s\) \['format'\]"),
    (("params",), _DELETE, r"missing key\(s\) \['params'\]"),
    (("errordef",), _DELETE, r"missing key\(s\) \['errordef'\]"),
    (("format",), "zfit.FitResult", r"'format' is 'zfit.FitResult', expected"),
    (("format",), None, r"'format' is None, expected"),
    (("version",), 2, r"unsupported version 2.*newer zfitlite"),
    (("version",), 10**6, r"unsupported version 1000000"),
    (("version",), 0, r"unsupported version 0"),
    (("version",), True, r"'version' must be an integer, got bool"),
    (("version",), 1.0, r"'version' must be an integer, got float"),
    (("version",), "1", r"'version' must be an integer, got str"),
    (("fmin",), "1e3", r"'fmin' must be a number, got str"),
    (("fmin",), [1.0], r"'fmin' must be a number, got list"),
    (("fmin",), True, r"'fmin' must be a number, got bool"),
    (("fmin",), 10**400, r"'fmin' is too large for a float64"),
    (("edm",), "nan", r"'edm' must be a number, got str"),
    (("tol",), float("nan"), r"'tol' must be finite"),
    (("tol",), float("inf"), r"'tol' must be finite"),
    (("tol",), -1e-3, r"'tol' must be > 0"),
    (("errordef",), 0, r"'errordef' must be > 0"),
    (("errordef",), False, r"'errordef' must be a number, got bool"),
    (("status",), 99, r"'status' must be one of \[0, 1, 2, 3, 4, 5, 6, 7, 8\], got 99"),
    (("status",), -1, r"'status' must be one of"),
    (("status",), True, r"'status' must be one of .*got True"),
    (("status",), "CONVERGED", r"'status' must be one of .*got 'CONVERGED'"),
    (("status",), 0.0, r"'status' must be one of .*got 0.0"),
    (("status_name",), "MAXITER", r"'status_name' 'MAXITER' does not match status 0"),
    (("status",), 1, r"'status_name' 'CONVERGED' does not match status 1 \(MAXITER\)"),
    (("converged",), False, r"'converged' is False but the status, fmin and bounds say True"),
    (("valid",), False, r"'valid' is False but the status, fmin and bounds say True"),
    (("valid",), 1, r"'valid' must be true or false, got 1"),
    (("message",), 42, r"'message' must be a string, got int"),
    (("message",), {"__class__": "os.system"}, r"'message' must be a string, got dict"),
    (("params",), [1.0, 2.0], r"'params' must be a dict with at least 'name' and 'value'"),
    (("params", "name"), "mu", r"'params.name' must be a list of strings"),
    (("params", "name"), ["mu", 1], r"'params.name' must be a list of strings"),
    (("params", "name"), ["mu", "mu"], r"invalid parameters: duplicate parameter name 'mu'"),
    (("params", "name"), [], r"'params.name' is empty"),
    (("params", "value"), [0.0], r"params.value has shape \(1,\), expected \(2,\)"),
    (("params", "value"), [0.0] * 10_000, r"params.value has shape \(10000,\), expected"),
    (("params", "value"), ["1.0", 2.0], r"params.value must contain only numbers, found str"),
    (("params", "value"), [True, 2.0], r"params.value must contain only numbers, found bool"),
    (("params", "value"), [[1.0], [2.0]], r"params.value is nested deeper than its shape"),
    (("params", "value"), {"0": 1.0}, r"params.value must be a list, got dict"),
    (("params", "value"), [float("nan"), 2.0], r"parameter 'mu' has a non-finite start"),
    (("params", "value"), [float("inf"), 2.0], r"parameter 'mu' has a non-finite start"),
    (("params", "value"), [1.0, 50.0], r"parameter 'sigma' starts at 50.0, outside its bounds"),
    (("params", "lower"), [0.0, float("nan")], r"parameter 'sigma' has a NaN bound"),
    (("params", "stepsize"), [-1.0, 0.1], r"parameter 'mu' has step size -1.0"),
    (("params", "exec"), "os.system('echo hacked')", r"unknown key\(s\) in 'params': \['exec'\]"),
    (("covariance",), [[1.0]], r"'covariance' must be a dict, got list"),
    (("covariance", "hesse_np"), [[1.0, 0.0, 0.0]], r"has shape \(1, 3\), expected \(2, 2\)"),
    (("covariance", "hesse_np"), [[1.0, 0.0], [0.0]], r"is not a rectangular array of numbers"),
    (("covariance", "hesse_np"), [1.0, 0.0, 0.0, 1.0], r"has shape \(4,\), expected \(2, 2\)"),
    (("covariance", "hesse_np"), [[1.0, "0"], [0.0, 1.0]], r"only numbers, found str"),
    (("covariance", "hesse_np"), _nested(5000), r"nested deeper than its shape"),
    (("covariance", "minos"), [[1.0, 0.0], [0.0, 1.0]], r"unknown covariance method 'minos'"),
    (("approx",), [1.0], r"'approx' must be a dict, got list"),
    (("approx", "hessian"), [1.0, 2.0], r"approx.hessian has shape \(2,\), expected \(2, 2\)"),
    (("approx", "gradient"), [[1.0, 2.0]], r"approx.gradient is nested deeper"),
    (("approx", "evil"), None, r"unknown key\(s\) in 'approx': \['evil'\]"),
    (("info",), "nfev=3", r"'info' must be a dict, got str"),
    (("info", "nfev"), -3, r"info.nfev must be a non-negative integer, got -3"),
    (("info", "nfev"), "3", r"info.nfev must be a non-negative integer, got '3'"),
    (("info", "niter"), 2.5, r"info.niter must be an integer, got 2.5"),
    (("info", "deep"), _nested_dict(5000), r"info.deep.k.k.*is nested too deeply"),
    (("info", "deep"), _nested(5000), r"info.deep.*is nested too deeply"),
    (("minimizer",), ["LevenbergMarquardt"], r"'minimizer' must be a dict, got list"),
    (("param_results",), [], r"'param_results' must be a dict, got list"),
    (("param_results", "zeta"), {}, r"keyed by the parameter names; unknown parameter\(s\)"),
    (("param_results", "sigma"), _DELETE, r"keyed by the parameter names; missing \['sigma'\]"),
    (("param_results", "mu"), 3.0, r"param_results.mu must be a dict, got float"),
    (("param_results", "mu", "value"), "0.9", r"param_results.mu.value must be a number"),
    (("param_results", "mu", "value"), 123.0, r"param_results.mu.value is 123.0, but params"),
    (("param_results", "mu", "at_limit"), "no", r"param_results.mu.at_limit must be true"),
    (("param_results", "mu", "hesse", "error"), "0.1", r"mu.hesse.error must be a number"),
    (("param_results", "mu", "hesse", "error"), True, r"mu.hesse.error must be a number, got bool"),
    (("param_results", "mu", "hesse", "method"), 3, r"mu.hesse.method must be a string"),
    (("param_results", "mu", "errors", "at_limit"), "x", r"mu.errors.at_limit must be true"),
    (("param_results", "mu", "hesse"), 0.1, r"param_results.mu.hesse must be a dict"),
    (("extra_key",), 1, r"unknown key\(s\) 'extra_key'"),
    (("__reduce__",), ["os.system", ["echo hacked"]], r"unknown key\(s\) '__reduce__'"),
    (("__class__",), "zfitlite.result.FitResult", r"unknown key\(s\) '__class__'"),
]


@pytest.mark.parametrize(
    ("path", "value", "match"),
    MUTATIONS,
    ids=[f"{'.'.join(p)}-{i}" for i, (p, _, _) in enumerate(MUTATIONS)],
)
def test_malformed_dict_is_a_clear_error(
    good: dict[str, Any], path: tuple, value: Any, match: str
) -> None:
    d = _set(good, path, value)
    with pytest.raises(ValueError, match=r"malformed FitResult data: .*" + match):
        FitResult.from_dict(d)
    # the same through JSON text (where the value has a JSON form)
    try:
        text = json.dumps(d)
    except (TypeError, ValueError, RecursionError):
        return
    with pytest.raises(ValueError, match=match):
        FitResult.from_json(text)


#: whole texts that are not a result: (text, regex)
TEXTS = [
    ("", r"not valid JSON for a FitResult"),
    ("{not json", r"not valid JSON for a FitResult"),
    ("\x80\x81", r"not valid JSON for a FitResult"),
    (b"\xff\xfe\x00garbage", r"not valid JSON for a FitResult"),
    ("null", r"expected a dict, got NoneType"),
    ("[1, 2, 3]", r"expected a dict, got list"),
    ('"zfitlite.FitResult"', r"expected a dict, got str"),
    ("3.5", r"expected a dict, got float"),
    ("NaN", r"expected a dict, got float"),
    ("{}", r"missing key\(s\)"),
    ("!!python/object/apply:os.system ['echo hacked']", r"not valid JSON for a FitResult"),
    ("cos\nsystem\n(S'echo hacked'\ntR.", r"not valid JSON for a FitResult"),  # a pickle
    ("[" * 100_000 + "]" * 100_000, r"nested too deeply|expected a dict"),
    ('{"a":' * 100_000 + "1" + "}" * 100_000, r"nested too deeply|unknown key"),
    ("1" * 5000, r"not valid JSON for a FitResult"),  # beyond Python's int digit limit
]


@pytest.mark.parametrize(("text", "match"), TEXTS, ids=[f"text-{i}" for i in range(len(TEXTS))])
def test_bad_text_is_a_clear_error(text: str | bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FitResult.from_json(text)


def test_pickle_bytes_are_not_unpickled(result: FitResult) -> None:
    with pytest.raises(ValueError, match="not valid JSON for a FitResult"):
        FitResult.from_json(pickle.dumps(result))


def test_code_looking_strings_stay_inert_strings(good: dict[str, Any]) -> None:
    payloads = [
        {"__class__": "os.system", "__reduce__": ["os.system", ["echo hacked"]]},
        "!!python/object/apply:os.system ['echo hacked']",
        "__import__('os').system('echo hacked')",
        {"py/object": "subprocess.Popen", "$type": "System.Diagnostics.Process"},
    ]
    for i, payload in enumerate(payloads):
        good["info"][f"payload{i}"] = payload
        good["minimizer"][f"payload{i}"] = payload
    good["param_results"]["mu"]["custom"] = {"note": payloads[1], "obj": payloads[0]}
    good["message"] = payloads[2]
    back = FitResult.from_json(json.dumps(good))
    for i, payload in enumerate(payloads):
        assert back.info[f"payload{i}"] == payload
        assert back.minimizer_info[f"payload{i}"] == payload
    assert back.params["mu"]["custom"]["obj"] == payloads[0]
    assert back.message == payloads[2]
    assert isinstance(back.info["payload1"], str)


def test_nan_and_infinity_tokens_where_allowed(good: dict[str, Any]) -> None:
    """NaN/Infinity are fine for fmin, edm, bounds, step sizes and matrices; not elsewhere."""
    good["status"], good["status_name"] = 5, "NOT_CONVERGED"
    good["converged"] = good["valid"] = False
    good["fmin"], good["edm"] = math.nan, math.inf
    good["covariance"]["hesse_np"] = [[math.nan, 0.0], [0.0, math.inf]]
    good["params"]["lower"][0] = -math.inf
    back = FitResult.from_json(json.dumps(good))
    assert math.isnan(back.fmin) and back.edm == math.inf and not back.valid
    assert math.isnan(back.covariance()[0, 0])
    text = json.dumps(good).replace('"tol": 1e-08', '"tol": NaN')
    with pytest.raises(ValueError, match="'tol' must be finite"):
        FitResult.from_json(text)


def test_null_entries_in_arrays_are_nan(good: dict[str, Any]) -> None:
    good["params"]["stepsize"] = [None, None]
    good["approx"]["gradient"] = [None, 1.0]
    back = FitResult.from_dict(good)
    assert np.isnan(back.params_spec.stepsize).all() and np.isnan(back.approx.gradient[0])


def test_python_objects_in_a_dict_are_rejected(good: dict[str, Any]) -> None:
    class Evil(float):
        def __float__(self) -> float:  # pragma: no cover - must never run
            raise AssertionError("executed")

    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda d: d.__setitem__("fmin", Evil(1.0)), r"'fmin' must be a number, got Evil"),
        (lambda d: d["info"].__setitem__("obj", object()), r"info.obj holds a object"),
        (lambda d: d["info"].__setitem__(3, 1), r"info has a key of type int"),
        (lambda d: d["params"].__setitem__("value", np.array([1.0, 2.0])), r"must be a list"),
    ]
    for mutate, match in cases:
        d = copy.deepcopy(good)
        mutate(d)
        with pytest.raises(ValueError, match=match):
            FitResult.from_dict(d)


def test_from_json_sources(result: FitResult, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(result.to_json())
    # a str is JSON text, never a file name; the error says how to read a file
    with pytest.raises(ValueError, match=r"pass a path: FitResult.from_json\(pathlib.Path"):
        FitResult.from_json(str(path))
    assert FitResult.from_json(path).fmin == result.fmin
    with path.open() as fh:
        assert FitResult.from_json(fh).fmin == result.fmin
    with pytest.raises(TypeError, match="from_json needs JSON text, got int"):
        FitResult.from_json(3)
    with pytest.raises(FileNotFoundError):
        FitResult.from_json(tmp_path / "missing.json")


def test_too_large_input_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zfitlite._serialize as ser

    assert MAX_JSON_BYTES >= 2**27
    monkeypatch.setattr(ser, "MAX_JSON_BYTES", 1000)
    big = "[" + ", ".join(["1.0"] * 400) + "]"
    with pytest.raises(ValueError, match="longer than 1000 bytes"):
        FitResult.from_json(big)
    path = tmp_path / "big.json"
    path.write_text(big)
    with pytest.raises(ValueError, match=r"big.json is \d+ bytes; a FitResult file is at most"):
        FitResult.from_json(path)
    with path.open() as fh, pytest.raises(ValueError, match="longer than 1000 bytes"):
        FitResult.from_json(fh)
