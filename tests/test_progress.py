"""Progress bars: forced on they draw, automatic they stay quiet unless someone watches."""

from __future__ import annotations

import io

import numpy as np
import pytest

import zfitlite
from zfitlite._progress import NullBar, make_bar, progress_iter, should_show
from zfitlite.minimize import DifferentialEvolution, LevenbergMarquardt, MultiStart


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ZFITLITE_PROGRESS", raising=False)


def _quadratic():
    def f(x):
        return (x[0] - 1.0) ** 2 + 10 * (x[1] + 0.5) ** 2

    f.errordef = 1.0
    return f


BOUNDED = {
    "a": {"value": 0.0, "lower": -3, "upper": 3},
    "b": {"value": 0.0, "lower": -3, "upper": 3},
}


def test_auto_is_quiet_under_pytest(no_env):
    assert should_show(None) is False  # stderr is captured here: not a terminal
    assert isinstance(make_bar(None, total=3), NullBar)


def test_auto_shows_on_a_terminal_but_not_in_ci(no_env, monkeypatch):
    tty = _Terminal()
    assert should_show(None, tty) is True
    assert should_show(None, io.StringIO()) is False
    assert should_show(False, tty) is False
    monkeypatch.setenv("CI", "true")
    assert should_show(None, tty) is False
    assert should_show(True, io.StringIO()) is True  # forcing wins over CI
    monkeypatch.setenv("ZFITLITE_PROGRESS", "1")
    assert should_show(None, io.StringIO()) is True
    monkeypatch.setenv("ZFITLITE_PROGRESS", "0")
    assert should_show(None, tty) is False


def test_forced_bar_writes_to_its_stream():
    out = io.StringIO()
    assert list(progress_iter(range(4), True, desc="work", unit="step", file=out, leave=True)) == [
        0,
        1,
        2,
        3,
    ]
    text = out.getvalue()
    assert "work" in text and "4/4" in text and "step" in text


def test_progress_iter_closes_on_break():
    out = io.StringIO()
    for k in progress_iter(range(10), True, desc="brk", file=out, leave=True):
        if k == 2:
            break
    assert "2/10" in out.getvalue()  # the items finished before the break


def test_global_search_bar_forced_and_auto(no_env, capsys, monkeypatch):
    m = DifferentialEvolution(seed=1, options={"maxgen": 5}, progress=True)
    r = m.minimize(_quadratic(), BOUNDED)
    assert r.valid
    err = capsys.readouterr().err
    assert f"{m.name}:" in err and "iter" in err
    # automatic, stderr captured: nothing
    m.progress = None
    m.minimize(_quadratic(), BOUNDED)
    assert capsys.readouterr().err == ""
    # automatic on a terminal: a bar
    tty = _Terminal()
    monkeypatch.setattr("sys.stderr", tty)
    m.minimize(_quadratic(), BOUNDED)
    assert f"{m.name}:" in tty.getvalue()


def test_multistart_counts_starts(capsys):
    m = MultiStart(LevenbergMarquardt(), n_starts=3, seed=0, progress=True)
    r = m.minimize(_quadratic(), BOUNDED)
    assert r.valid
    assert "start" in capsys.readouterr().err


def test_profile_errors_are_quiet_by_default_and_can_show(capsys):
    from zfitlite._profile import Profiler
    from zfitlite.uncertainties import profile_interval

    r = LevenbergMarquardt(tol=1e-10).minimize(_quadratic(), {"a": 0.0, "b": 0.0})
    errors, _ = r.errors()
    np.testing.assert_allclose(errors["a"]["upper"], 1.0, rtol=1e-6)
    assert capsys.readouterr().err == ""
    profiler = Profiler(r.loss, r.params_spec, r.x)
    lo, up, info = profile_interval(
        profiler.profile, 1, r.x, r.fmin, 1.0, 0.3, -np.inf, np.inf, progress=True
    )
    np.testing.assert_allclose([lo, up], [-np.sqrt(0.1), np.sqrt(0.1)], rtol=1e-6)
    err = capsys.readouterr().err
    assert "errors b" in err and "fit" in err and info["nprofile"] > 2


def test_profile_scan_bar(capsys):
    from zfitlite._profile import Profiler

    r = LevenbergMarquardt(tol=1e-10).minimize(_quadratic(), {"a": 0.0, "b": 0.0})
    profiler = Profiler(r.loss, r.params_spec, r.x)
    f, _ = profiler.scan(0, np.linspace(0, 2, 5), progress=True)
    np.testing.assert_allclose(f - r.fmin, (np.linspace(0, 2, 5) - 1) ** 2, atol=1e-9)
    assert "profile a" in capsys.readouterr().err


def test_zfitlite_exposes_plot_lazily():
    assert "plot" in zfitlite.__all__
    with pytest.raises(AttributeError):
        zfitlite.no_such_thing  # noqa: B018


@pytest.mark.parametrize("name", ["LevenbergMarquardt", "ScipyBFGS", "ScipyNelderMead", "Minuit"])
def test_a_local_fit_shows_iterations_with_verbosity_or_when_forced(
    no_env, capsys, monkeypatch, name
):
    if name == "Minuit":
        pytest.importorskip("iminuit")
    cls = getattr(zfitlite.minimize, name)
    # forced: a bar with the minimizer's name, the iterations and the loss
    r = cls(progress=True).minimize(_quadratic(), [0.0, 0.0])
    assert r.valid
    err = capsys.readouterr().err
    assert f"{cls().name}:" in err and "iter" in err
    # verbosity 1, automatic, stderr captured (not a terminal): only the printed lines
    cls(verbosity=1).minimize(_quadratic(), [0.0, 0.0])
    captured = capsys.readouterr()
    assert captured.err == "" and "valid=True" in captured.out
    # verbosity 1 on a terminal: a bar; verbosity 0 on a terminal: none
    tty = _Terminal()
    monkeypatch.setattr("sys.stderr", tty)
    cls(verbosity=1).minimize(_quadratic(), [0.0, 0.0])
    assert f"{cls().name}:" in tty.getvalue()
    tty.truncate(0)
    tty.seek(0)
    cls().minimize(_quadratic(), [0.0, 0.0])
    assert tty.getvalue() == ""


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        LevenbergMarquardt(progress="yes")
