"""The command line: ``python -m zfitlite`` / the ``zfitlite`` script."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import zfitlite
from zfitlite import __main__ as cli


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"zfitlite {zfitlite.__version__}"


def test_help_names_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: zfitlite")
    for word in ("demo", "bench", "plots", "--version", "examples:"):
        assert word in out


def test_default_command_is_the_demo(monkeypatch):
    calls = []
    monkeypatch.setattr("zfitlite.demo.main", lambda argv: calls.append(argv) or 0)
    assert cli.main([]) == 0
    assert cli.main(["demo", "--quiet"]) == 0
    assert cli.main(["--quiet"]) == 0
    assert calls == [[], ["--quiet"], ["--quiet"]]


def test_demo_failure_is_the_exit_code(monkeypatch):
    monkeypatch.setattr("zfitlite.demo.main", lambda argv: 1)
    assert cli.main(["demo"]) == 1


def test_bench_list(capsys):
    assert cli.main(["bench", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "bench_nist" in names and "bench_batch" in names
    assert all(n.startswith("bench_") for n in names)


def test_bench_runs_the_named_modules(monkeypatch, capsys):
    import benchmarks.bench_scipy_overhead as mod

    ran = []
    monkeypatch.setattr(mod, "main", lambda: ran.append("overhead"))
    assert cli.main(["bench", "scipy_overhead"]) == 0
    assert ran == ["overhead"]
    assert "## bench_scipy_overhead" in capsys.readouterr().out


def test_bench_unknown_name_lists_the_choices(capsys):
    assert cli.main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "bench_nist" in err


def test_bench_without_a_checkout_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # as if installed from a wheel
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench"]) == 2
    assert "not installed with the package" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_python_dash_m_help():
    out = subprocess.run(
        [sys.executable, "-m", "zfitlite", "--help"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("usage: zfitlite")
    assert "bench" in out.stdout


def test_plots_without_matplotlib_names_the_extra(tmp_path):
    """After the README's install (no `plot` extra) `zfitlite plots` exits with 2 and says
    what to install, with no traceback."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from zfitlite.__main__ import main\n"
        f"raise SystemExit(main(['plots', {str(tmp_path / 'figs')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "zfitlite[plot]" in out.stderr and "matplotlib" in out.stderr
    assert not (tmp_path / "figs").exists()


def test_bench_batch_floor_helper_times_a_real_step():
    """The straggler floor (``python -m benchmarks.bench_batch floor``) times a real
    compiled program: a positive, finite cost per lane-step on a tiny batch."""
    pytest.importorskip("jax")
    from benchmarks.bench_batch import bare_step_seconds, straggler_data

    t = bare_step_seconds(straggler_data(8), lanes=8, steps=2)
    assert np.isfinite(t) and 0 < t < 1e-3
