"""``import zfitlite`` sets XLA's CPU compiler for short compiles, only where that is safe."""

from __future__ import annotations

import os

import pytest

from zfitlite.backends import _xla_flags
from zfitlite.backends._xla_flags import FAST_COMPILE_ENV, FLAG, JAXLIB_RANGE, apply


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No XLA_FLAGS, no off switch, a jaxlib in range whose backend has not started."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv(FAST_COMPILE_ENV, raising=False)
    monkeypatch.setattr(_xla_flags, "_jaxlib_version", lambda: JAXLIB_RANGE[0])
    monkeypatch.setattr(_xla_flags, "_backend_started", lambda: False)
    monkeypatch.setattr(_xla_flags, "_old_tensorflow", lambda: False)
    return monkeypatch


def test_the_option_is_added_and_other_options_are_kept(clean: pytest.MonkeyPatch) -> None:
    assert apply()
    assert os.environ["XLA_FLAGS"] == FLAG
    clean.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert apply()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {FLAG}"
    assert not apply()  # once is enough
    assert os.environ["XLA_FLAGS"].count("xla_cpu_use_fusion_emitters") == 1


@pytest.mark.parametrize("value", ["0", "off", "False", " no "])
def test_the_off_switch(clean: pytest.MonkeyPatch, value: str) -> None:
    clean.setenv(FAST_COMPILE_ENV, value)
    assert not apply()
    assert "XLA_FLAGS" not in os.environ


def test_the_users_own_setting_wins(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert not apply()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_use_fusion_emitters=true"


@pytest.mark.parametrize("version", [None, (0, 4), JAXLIB_RANGE[1], (1, 0)])
def test_an_unknown_jaxlib_is_left_alone(clean: pytest.MonkeyPatch, version) -> None:
    # XLA aborts the whole process on an option it does not know
    clean.setattr(_xla_flags, "_jaxlib_version", lambda: version)
    assert not apply()
    assert "XLA_FLAGS" not in os.environ


def test_nothing_changes_once_the_backend_has_started(clean: pytest.MonkeyPatch) -> None:
    clean.setattr(_xla_flags, "_backend_started", lambda: True)
    assert not apply()
    assert "XLA_FLAGS" not in os.environ


def test_this_process_got_it_from_import_zfitlite() -> None:
    """conftest imports zfitlite before any JAX computation, as a user's script would."""
    version = _xla_flags._jaxlib_version()
    if version is None or not JAXLIB_RANGE[0] <= version < JAXLIB_RANGE[1]:
        pytest.skip(f"jaxlib {version} is outside {JAXLIB_RANGE}: the option is not set")
    if os.environ.get(FAST_COMPILE_ENV, "").strip().lower() in {"0", "off", "false", "no"}:
        pytest.skip(f"{FAST_COMPILE_ENV} switches it off in this run")
    assert "--xla_cpu_use_fusion_emitters=" in os.environ.get("XLA_FLAGS", "")


def test_the_version_is_read_without_importing_jaxlib() -> None:
    version = _xla_flags._jaxlib_version()
    jaxlib = pytest.importorskip("jaxlib")
    assert version == tuple(int(p) for p in jaxlib.__version__.split(".")[:2])


@pytest.mark.parametrize(("installed", "old"), [(None, False), ((2, 21), False), ((2, 16), True)])
def test_an_older_tensorflow_is_left_alone(clean: pytest.MonkeyPatch, installed, old) -> None:
    """TensorFlow's own XLA reads XLA_FLAGS too (``jit_compile=True``)."""
    clean.undo()  # the real _old_tensorflow, with a made-up installed version
    clean.delenv("XLA_FLAGS", raising=False)
    clean.delenv(FAST_COMPILE_ENV, raising=False)
    clean.setattr(_xla_flags, "_jaxlib_version", lambda: JAXLIB_RANGE[0])
    clean.setattr(_xla_flags, "_backend_started", lambda: False)
    clean.setattr(_xla_flags, "_version", lambda name: installed if name == "tensorflow" else None)
    assert _xla_flags._old_tensorflow() is old
    assert apply() is (not old)
    assert ("XLA_FLAGS" in os.environ) is (not old)
