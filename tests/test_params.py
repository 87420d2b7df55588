"""Every accepted parameter form of ``make_params`` and one test per rejected form."""

from __future__ import annotations

import numpy as np
import pytest

import zfitlite
from zfitlite.minimize import LevenbergMarquardt
from zfitlite.params import Params, make_params


def _quad(x):
    return float((x[0] - 1.0) ** 2 + 4.0 * (x[1] + 2.0) ** 2)


def _assert_params(p, names, values, lower=None, upper=None, stepsize=None):
    n = len(names)
    assert isinstance(p, Params)
    assert p.names == tuple(names)
    np.testing.assert_array_equal(p.values, np.asarray(values, dtype=float))
    lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=float)
    np.testing.assert_array_equal(p.lower, lower)
    np.testing.assert_array_equal(p.upper, upper)
    if stepsize is None:
        assert np.all(np.isnan(p.stepsize))
    else:
        np.testing.assert_array_equal(p.stepsize, np.asarray(stepsize, dtype=float))


# -- accepted forms ------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [[1.0, -2.5, 3], (1.0, -2.5, 3)], ids=["list", "tuple"])
def test_sequence(seq):
    _assert_params(make_params(seq), ["p0", "p1", "p2"], [1.0, -2.5, 3.0])


def test_numpy_array():
    p = make_params(np.array([0.5, 7.0]))
    _assert_params(p, ["p0", "p1"], [0.5, 7.0])
    assert p.values.dtype == np.float64


def test_integer_numpy_array_becomes_float():
    p = make_params(np.array([1, 2], dtype=np.int32))
    _assert_params(p, ["p0", "p1"], [1.0, 2.0])
    assert p.values.dtype == np.float64


def test_dict_of_arrays_full():
    p = make_params(
        {
            "value": np.array([1.0, 2.0]),
            "name": ["mu", "sigma"],
            "lower": np.array([-5.0, 0.1]),
            "upper": np.array([5.0, 10.0]),
            "stepsize": np.array([0.1, 0.2]),
        }
    )
    _assert_params(p, ["mu", "sigma"], [1.0, 2.0], [-5.0, 0.1], [5.0, 10.0], [0.1, 0.2])


def test_dict_of_arrays_value_only_default_names():
    p = make_params({"value": [3.0, 4.0, 5.0]})
    _assert_params(p, ["p0", "p1", "p2"], [3.0, 4.0, 5.0])


def test_dict_of_arrays_scalar_bounds_broadcast():
    p = make_params({"value": [1.0, 2.0, 3.0], "lower": 0.0, "upper": 10.0, "stepsize": 0.5})
    _assert_params(
        p, ["p0", "p1", "p2"], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [10.0] * 3, [0.5, 0.5, 0.5]
    )


def test_dict_of_arrays_none_entries_mean_unbounded():
    p = make_params(
        {"value": [1.0, 2.0], "lower": [None, 0.0], "upper": [3.0, None], "stepsize": [None, 0.1]}
    )
    np.testing.assert_array_equal(p.lower, [-np.inf, 0.0])
    np.testing.assert_array_equal(p.upper, [3.0, np.inf])
    assert np.isnan(p.stepsize[0])
    assert p.stepsize[1] == 0.1


def test_dict_by_name():
    p = make_params({"a": 1.5, "b": -2, "c": np.float32(0.25)})
    _assert_params(p, ["a", "b", "c"], [1.5, -2.0, 0.25])


def test_nested_dict_by_name():
    p = make_params(
        {
            "mu": {"value": 1.0, "lower": -3.0, "upper": 3.0, "stepsize": 0.1},
            "sigma": {"value": 2.0, "lower": 0.5},
            "free": 4.0,
        }
    )
    _assert_params(
        p,
        ["mu", "sigma", "free"],
        [1.0, 2.0, 4.0],
        [-3.0, 0.5, -np.inf],
        [3.0, np.inf, np.inf],
        [0.1, np.nan, np.nan],
    )
    assert p.has_bounds


def test_params_instance_passes_through():
    given = Params(("x", "y"), [1.0, 2.0], lower=[0.0, 0.0], upper=[5.0, 5.0])
    assert make_params(given) is given


def test_none_with_loss_that_has_params():
    loss = zfitlite.SimpleLoss(_quad, params={"a": 0.0, "b": {"value": 0.5}}, errordef=1.0)
    p = make_params(None, loss)
    _assert_params(p, ["a", "b"], [0.0, 0.5])
    result = LevenbergMarquardt(tol=1e-8).minimize(loss)
    assert result.valid
    assert result.names == ("a", "b")
    np.testing.assert_allclose(result.x, [1.0, -2.0], atol=1e-6)


def test_none_with_init_result():
    loss = zfitlite.SimpleLoss(_quad, errordef=1.0)
    first = LevenbergMarquardt(tol=1e-8).minimize(loss, {"u": 3.0, "v": 3.0})
    p = make_params(None, loss, init=first)
    assert p.names == ("u", "v")
    np.testing.assert_array_equal(p.values, first.x)
    np.testing.assert_allclose(p.values, [1.0, -2.0], atol=1e-6)


def test_none_without_anything_raises():
    with pytest.raises(ValueError, match="no parameters given"):
        make_params(None)


def test_explicit_params_win_over_init():
    loss = zfitlite.SimpleLoss(_quad, errordef=1.0)
    first = LevenbergMarquardt(tol=1e-8).minimize(loss, {"u": 3.0, "v": 3.0})
    p = make_params({"u": 7.0, "v": -7.0}, loss, init=first)
    np.testing.assert_array_equal(p.values, [7.0, -7.0])
    # and the same through minimize: the fit starts at params, not at init
    seen = []
    second = LevenbergMarquardt(tol=1e-8, callback=lambda s: seen.append(s.x.copy())).minimize(
        loss, {"u": 7.0, "v": -7.0}, init=first
    )
    np.testing.assert_array_equal(seen[0], [7.0, -7.0])
    assert second.valid


def test_init_hesse_errors_become_stepsizes():
    loss = zfitlite.SimpleLoss(_quad, errordef=1.0, backend="numpy")
    first = LevenbergMarquardt(tol=1e-8).minimize(loss, {"u": 3.0, "v": 3.0})
    # before hesse() there are no errors: step sizes stay unknown
    assert np.all(np.isnan(make_params({"u": 0.0, "v": 0.0}, loss, init=first).stepsize))
    errs = first.hesse()
    # covariance = 2 * errordef * H^-1 with H = diag(2, 8): errors 1 and 0.5
    np.testing.assert_allclose([errs["u"]["error"], errs["v"]["error"]], [1.0, 0.5], rtol=1e-6)
    p = make_params({"u": 0.0, "v": {"value": 0.0, "stepsize": 0.03}}, loss, init=first)
    np.testing.assert_allclose(p.stepsize[0], errs["u"]["error"], rtol=0, atol=0)
    assert p.stepsize[1] == 0.03  # an explicit step size is kept
    np.testing.assert_array_equal(p.values, [0.0, 0.0])


def test_init_stepsize_only_for_matching_names():
    loss = zfitlite.SimpleLoss(_quad, errordef=1.0, backend="numpy")
    first = LevenbergMarquardt(tol=1e-8).minimize(loss, {"u": 3.0, "v": 3.0})
    first.hesse()
    p = make_params({"u": 0.0, "w": 0.0}, loss, init=first)
    np.testing.assert_allclose(p.stepsize[0], 1.0, rtol=1e-6)
    assert np.isnan(p.stepsize[1])


# -- rejected forms: one case each ---------------------------------------------------------

BAD_FORMS = [
    pytest.param(
        {"a": float("nan")}, ValueError, r"parameter 'a' has a non-finite start", id="nan-start"
    ),
    pytest.param(
        {"b": float("inf")}, ValueError, r"parameter 'b' has a non-finite start", id="inf-start"
    ),
    pytest.param(
        {"value": [1.0, -np.inf], "name": ["a", "b"]},
        ValueError,
        r"parameter 'b' has a non-finite start",
        id="neg-inf-start-array-dict",
    ),
    pytest.param(
        {"c": {"value": 5.0, "lower": 0.0, "upper": 1.0}},
        ValueError,
        r"parameter 'c' starts at 5\.0, outside its bounds \[0\.0, 1\.0\]",
        id="start-outside-bounds",
    ),
    pytest.param(
        {"d": {"value": 0.5, "lower": 2.0, "upper": 1.0}},
        ValueError,
        r"parameter 'd' has lower bound 2\.0 > upper bound 1\.0",
        id="lower-gt-upper",
    ),
    pytest.param(
        {"e": {"value": 0.5, "lower": float("nan")}},
        ValueError,
        r"parameter 'e' has a NaN bound",
        id="nan-bound-nested",
    ),
    pytest.param(
        {"value": [0.5, 1.0], "name": ["f", "g"], "upper": [1.0, float("nan")]},
        ValueError,
        r"parameter 'g' has a NaN bound",
        id="nan-bound-array-dict",
    ),
    pytest.param(
        {"value": [1.0, 2.0], "name": ["h", "h"]},
        ValueError,
        r"duplicate parameter name 'h'",
        id="duplicate-names",
    ),
    pytest.param([], ValueError, r"parameter list is empty", id="empty-list"),
    pytest.param({}, ValueError, r"parameter dict is empty", id="empty-dict"),
    pytest.param(
        {"value": [1.0], "lowr": [0.0]},
        ValueError,
        r"unknown key\(s\) \['lowr'\] in the parameter dict",
        id="unknown-key-array-dict",
    ),
    pytest.param(
        {"mu": {"value": 1.0, "uper": 2.0}},
        ValueError,
        r"parameter 'mu': unknown key\(s\) \['uper'\]",
        id="unknown-key-nested",
    ),
    pytest.param(
        {"sigma": {"lower": 0.0}},
        ValueError,
        r"parameter 'sigma' has no 'value'",
        id="nested-without-value",
    ),
    pytest.param(
        {"value": [1.0, 2.0, 3.0], "name": ["a", "b"]},
        ValueError,
        r"params\['name'\] has 2 names but params\['value'\] has 3 values",
        id="names-values-length-mismatch",
    ),
    pytest.param(
        {"value": [1.0, 2.0], "lower": [0.0, 0.0, 0.0]},
        ValueError,
        r"params\['lower'\] has 3 entries but params\['value'\] has 2 values",
        id="lower-length-mismatch",
    ),
    pytest.param(
        {"k": "1.0"},
        TypeError,
        r"parameter 'k': the value must be a real number, got '1\.0'",
        id="string-value",
    ),
    pytest.param(
        ["1.0", "2.0"],
        TypeError,
        r"params \(start values\) must be numbers",
        id="string-in-sequence",
    ),
    pytest.param(
        {"z": 1 + 2j},
        TypeError,
        r"parameter 'z': the value must be a real number",
        id="complex-value",
    ),
    pytest.param(
        [1.0 + 1j, 2.0],
        TypeError,
        r"params \(start values\) must be real numbers, got complex",
        id="complex-in-sequence",
    ),
    pytest.param(
        np.ones((2, 2)),
        ValueError,
        r"params \(start values\) must be one-dimensional, got shape \(2, 2\)",
        id="2d-values",
    ),
    pytest.param(
        {"value": [[1.0, 2.0], [3.0, 4.0]]},
        ValueError,
        r"params\['value'\] must be one-dimensional, got shape \(2, 2\)",
        id="2d-values-array-dict",
    ),
    pytest.param(
        {"value": [1.0, 2.0], "name": ["a", 3]},
        TypeError,
        r"parameter names must be non-empty strings, got 3",
        id="non-string-name-array-dict",
    ),
    pytest.param(
        {1: 1.0},
        TypeError,
        r"parameter names \(the dict's keys\) must be strings, got 1",
        id="non-string-name-dict-key",
    ),
    pytest.param(
        {"flag": True},
        TypeError,
        r"parameter 'flag': the value must be a real number, got True",
        id="bool-value",
    ),
    pytest.param(
        {"w": {"value": 1.0, "stepsize": -0.1}},
        ValueError,
        r"parameter 'w' has step size -0\.1; a step size must be finite and > 0",
        id="negative-stepsize",
    ),
    pytest.param(
        {"value": [1.0], "name": ["s"], "stepsize": [0.0]},
        ValueError,
        r"parameter 's' has step size 0\.0",
        id="zero-stepsize-array-dict",
    ),
    pytest.param(3.5, TypeError, r"got the single number 3\.5; write \[3\.5\]", id="single-number"),
    pytest.param("1.0", TypeError, r"got the string '1\.0'", id="string-params"),
    pytest.param(
        [{"value": 1.0}], TypeError, r"list of dicts is not a supported form", id="list-of-dicts"
    ),
    pytest.param(
        object(), TypeError, r"params of type object is not understood", id="unknown-type"
    ),
]


@pytest.mark.parametrize(("params", "exc", "match"), BAD_FORMS)
def test_bad_form(params, exc, match):
    with pytest.raises(exc, match=match):
        make_params(params)


@pytest.mark.parametrize(("params", "exc", "match"), BAD_FORMS[:8])
def test_bad_form_through_minimize(params, exc, match):
    """The same messages reach the user through ``minimize``."""

    def f(x):
        return float(np.sum(np.asarray(x) ** 2))

    f.errordef = 1.0
    with pytest.raises(exc, match=match):
        LevenbergMarquardt().minimize(f, params)


def test_bad_params_in_simple_loss_constructor():
    with pytest.raises(ValueError, match=r"duplicate parameter name 'q'"):
        zfitlite.SimpleLoss(_quad, params={"value": [1.0, 2.0], "name": ["q", "q"]}, errordef=1.0)


def test_params_instance_direct_validation():
    with pytest.raises(ValueError, match=r"parameter 'lower' has 1 entries but there are 2"):
        Params(("a", "b"), [1.0, 2.0], lower=[0.0])
    with pytest.raises(TypeError, match=r"parameter names must be non-empty strings, got ''"):
        Params(("",), [1.0])


def test_with_values_checks_length():
    p = make_params({"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match=r"expected 2 values for the parameters \['a', 'b'\]"):
        p.with_values([1.0, 2.0, 3.0])
    q = p.with_values([5.0, 6.0])
    np.testing.assert_array_equal(q.values, [5.0, 6.0])
    np.testing.assert_array_equal(p.values, [1.0, 2.0])
    assert not q.values.flags.writeable


def test_values_are_read_only():
    p = make_params([1.0, 2.0])
    with pytest.raises(ValueError, match="read-only"):
        p.values[0] = 3.0


def test_to_dict_round_trip():
    p = make_params({"a": {"value": 1.0, "lower": 0.0, "stepsize": 0.1}, "b": 2.0})
    d = p.to_dict()
    assert d["name"] == ["a", "b"]
    q = make_params(d)
    assert q.names == p.names
    np.testing.assert_array_equal(q.values, p.values)
    np.testing.assert_array_equal(q.lower, p.lower)
    np.testing.assert_array_equal(q.upper, p.upper)
    np.testing.assert_array_equal(q.stepsize, p.stepsize)


def test_plain_start_values_match_the_general_constructor() -> None:
    """``make_params`` of plain start values takes a short cut; what it builds is what
    :class:`Params` builds, and bad values still get the constructor's messages."""
    for given in ([1.0, -2.5, 3.0], np.array([0.5, 2.0]), (4,)):
        fast = make_params(given)
        ref = Params(tuple(f"p{i}" for i in range(len(fast))), np.asarray(given, float))
        assert fast.names == ref.names and not fast.has_bounds
        for key in ("values", "lower", "upper", "stepsize"):
            np.testing.assert_array_equal(getattr(fast, key), getattr(ref, key))
            assert not getattr(fast, key).flags.writeable
    source = np.array([1.0, 2.0])
    p = make_params(source)
    source[0] = 99.0  # the parameters own their values
    assert p.values[0] == 1.0
    with pytest.raises(ValueError, match="parameter 'p1' has a non-finite start value nan"):
        make_params([1.0, np.nan])
    with pytest.raises(ValueError, match="parameter list is empty"):
        make_params([])
