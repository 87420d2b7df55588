"""JAX's persistent compilation cache: on by default in the user's cache directory, off
with ``ZFITLITE_JAX_CACHE=0``, and never over a cache the user configured."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from zfitlite.backends import _jax_cache

pytest.importorskip("jax")

FIT = textwrap.dedent(
    """
    import jax, jax.monitoring
    events = []
    jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
    import jax.numpy as jnp, numpy as np, zfitlite
    from zfitlite.minimize import LevenbergMarquardt

    x = np.linspace(0.0, 4.0, 20)
    y = 2.0 * np.exp(-0.7 * x)
    loss = zfitlite.LeastSquares(lambda b, x, y: y - b[0] * jnp.exp(-b[1] * x), args=(x, y))
    lm = LevenbergMarquardt(tol=1e-10)
    lm.minimize(loss, [1.0, 1.0])  # a problem's first fit runs eagerly
    r = lm.minimize(loss, [1.0, 1.0])  # the second compiles the solver
    assert r.info["loop"] == "compiled"
    print(r.valid, np.round(r.x, 6).tolist(), jax.config.jax_compilation_cache_dir,
          sum(e.endswith("cache_hits") for e in events))
    """
)


def _run(tmp_path: Path, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "ZFITLITE_"))}
    environ.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), **env)
    out = subprocess.run(
        [sys.executable, "-c", FIT], capture_output=True, text=True, env=environ, cwd=os.getcwd()
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split(maxsplit=3)[:1] + out.stdout.rsplit(maxsplit=2)[-2:]


def test_a_second_process_reads_the_first_ones_programs(tmp_path):
    cache = tmp_path / "xdg" / "zfitlite" / "jax"
    valid, where, hits = _run(tmp_path)
    assert (valid, where, hits) == ("True", str(cache), "0")
    written = sorted(p.name for p in cache.iterdir())
    assert written, "nothing was written to the cache"
    valid, where, hits = _run(tmp_path)
    # every program the first process wrote (the compiled loop among them) came from the
    # disk; a program that compiled just under the cache's threshold there
    # (MIN_COMPILE_SECONDS) and just over it here may be written now
    assert valid == "True" and int(hits) >= len(written)
    assert set(written) <= {p.name for p in cache.iterdir()}


class _FakeConfig:
    def __init__(self, cache_dir=None):
        self.jax_compilation_cache_dir = cache_dir
        self.jax_persistent_cache_min_compile_time_secs = 1.0
        self.jax_compilation_cache_max_size = -1
        self.updates = {}

    def update(self, name, value):
        self.updates[name] = value
        setattr(self, name, value)


def _fake_jax(cache_dir=None):
    return types.SimpleNamespace(config=_FakeConfig(cache_dir))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("JAX_", "ZFITLITE_JAX")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_default_directory_and_settings(clean_env, monkeypatch):
    jax = _fake_jax()
    assert _jax_cache.enable(jax) == str(clean_env / "zfitlite" / "jax")
    assert (clean_env / "zfitlite" / "jax").is_dir()
    assert jax.config.updates["jax_compilation_cache_dir"] == str(clean_env / "zfitlite" / "jax")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == _jax_cache.MIN_COMPILE_SECONDS
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(clean_env / "home"))
    assert _jax_cache.default_cache_dir() == clean_env / "home" / ".cache" / "zfitlite" / "jax"


@pytest.mark.parametrize("off", ["0", "off", "False", "no"])
def test_the_off_switch(clean_env, monkeypatch, off):
    monkeypatch.setenv("ZFITLITE_JAX_CACHE", off)
    jax = _fake_jax()
    assert _jax_cache.enable(jax) is None
    assert jax.config.updates == {} and not (clean_env / "zfitlite").exists()


def test_a_directory_of_ones_own(clean_env, monkeypatch):
    monkeypatch.setenv("ZFITLITE_JAX_CACHE", str(clean_env / "mine"))
    assert _jax_cache.enable(_fake_jax()) == str(clean_env / "mine")


def test_the_users_own_jax_cache_is_left_alone(clean_env, monkeypatch):
    jax = _fake_jax(cache_dir="/somewhere/else")
    assert _jax_cache.enable(jax) is None and jax.config.updates == {}
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(clean_env / "env"))
    jax = _fake_jax()
    assert _jax_cache.enable(jax) is None and jax.config.updates == {}
    # nor a minimum compile time the user chose
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
    jax = _fake_jax()
    jax.config.jax_persistent_cache_min_compile_time_secs = 5.0
    _jax_cache.enable(jax)
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 5.0


def test_an_unwritable_home_means_no_cache_and_no_failure(clean_env, monkeypatch):
    blocker = clean_env / "file"
    blocker.write_text("")
    monkeypatch.setenv("ZFITLITE_JAX_CACHE", str(blocker / "jax"))
    jax = _fake_jax()
    assert _jax_cache.enable(jax) is None and jax.config.updates == {}
