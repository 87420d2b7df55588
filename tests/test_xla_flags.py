"""``import zfitlite`` sets XLA's CPU compiler for short compiles and lean loops, only where
that is safe."""

from __future__ import annotations

import os

import pytest

from zfitlite.backends import _xla_flags
from zfitlite.backends._xla_flags import (
    FAST_COMPILE_ENV,
    FLAG,
    JAXLIB_RANGE,
    SMALL_LOOPS_ENV,
    SMALL_LOOPS_FLAG,
    apply,
)

BOTH = f"{FLAG} {SMALL_LOOPS_FLAG}"


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No XLA_FLAGS, no off switch, a jaxlib in range whose backend has not started."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv(FAST_COMPILE_ENV, raising=False)
    monkeypatch.delenv(SMALL_LOOPS_ENV, raising=False)
    monkeypatch.setattr(_xla_flags, "_jaxlib_version", lambda: JAXLIB_RANGE[0])
    monkeypatch.setattr(_xla_flags, "_backend_started", lambda: False)
    monkeypatch.setattr(_xla_flags, "_old_tensorflow", lambda: False)
    return monkeypatch


def test_the_options_are_added_and_other_options_are_kept(clean: pytest.MonkeyPatch) -> None:
    assert apply()
    assert os.environ["XLA_FLAGS"] == BOTH
    clean.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert apply()
    assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {BOTH}"
    assert not apply()  # once is enough
    assert os.environ["XLA_FLAGS"].count("xla_cpu_use_fusion_emitters") == 1
    assert os.environ["XLA_FLAGS"].count("xla_cpu_small_while_loop_byte_threshold") == 1


@pytest.mark.parametrize("value", ["0", "off", "False", " no "])
def test_the_off_switches(clean: pytest.MonkeyPatch, value: str) -> None:
    clean.setenv(FAST_COMPILE_ENV, value)
    assert apply()  # the other option alone
    assert os.environ["XLA_FLAGS"] == SMALL_LOOPS_FLAG
    clean.delenv("XLA_FLAGS")
    clean.setenv(SMALL_LOOPS_ENV, value)
    assert not apply()
    assert "XLA_FLAGS" not in os.environ
    clean.delenv(FAST_COMPILE_ENV)
    assert apply()
    assert os.environ["XLA_FLAGS"] == FLAG


@pytest.mark.parametrize(
    ("own", "added"),
    [
        ("--xla_cpu_use_fusion_emitters=true", SMALL_LOOPS_FLAG),
        ("--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=0", FLAG),
        ("--xla_backend_extra_options=something_else=1", FLAG),
    ],
)
def test_the_users_own_setting_wins(clean: pytest.MonkeyPatch, own: str, added: str) -> None:
    clean.setenv("XLA_FLAGS", own)
    assert apply()
    assert os.environ["XLA_FLAGS"] == f"{own} {added}"
    assert not apply()


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
    flags = os.environ.get("XLA_FLAGS", "")
    for switch, name in (
        (FAST_COMPILE_ENV, "--xla_cpu_use_fusion_emitters="),
        (SMALL_LOOPS_ENV, "xla_cpu_small_while_loop_byte_threshold="),
    ):
        if os.environ.get(switch, "").strip().lower() not in {"0", "off", "false", "no"}:
            assert name in flags


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
    clean.delenv(SMALL_LOOPS_ENV, raising=False)
    clean.setattr(_xla_flags, "_jaxlib_version", lambda: JAXLIB_RANGE[0])
    clean.setattr(_xla_flags, "_backend_started", lambda: False)
    clean.setattr(_xla_flags, "_version", lambda name: installed if name == "tensorflow" else None)
    assert _xla_flags._old_tensorflow() is old
    assert apply() is (not old)
    assert ("XLA_FLAGS" in os.environ) is (not old)


def test_a_two_parameter_lm_loop_compiles_into_one_function() -> None:
    """The compiled LM solve of a two-parameter fit holds no LAPACK call (its SVD is the
    elementwise Jacobi one) and, with the raised small-loop threshold this process got
    from ``import zfitlite``, every loop in it is compiled into one function (with XLA's
    default threshold of 1 kB the main loop runs operation by operation: this test then
    fails, as checked by setting that threshold in ``XLA_FLAGS``). Three parameters keep
    LAPACK's SVD, so their loop stays as it was."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import numpy as np

    from zfitlite.backends.jax_backend import JaxOps
    from zfitlite.solvers.levenberg_marquardt import _compiled_lsq_solve
    from zfitlite.solvers.lm_least_squares import LSQSettings, native_functions

    if "xla_cpu_small_while_loop_byte_threshold" not in os.environ.get("XLA_FLAGS", ""):
        pytest.skip("the small-loop threshold is not set in this run")
    t = np.linspace(0.0, 5.0, 14)

    def compiled_text(n: int) -> str:
        def residuals(x, tt, yy):
            if n > 2:
                return yy - jnp.polyval(x, tt)
            return yy - x[0] * jnp.exp(-x[1] * tt)

        solve = _compiled_lsq_solve(JaxOps(), native_functions(JaxOps(), residuals), False, False)
        inputs = np.zeros(3 * n + len(LSQSettings._fields))
        return jax.jit(solve).lower(inputs, (t, np.exp(-t))).compile().as_text()

    two = compiled_text(2)
    assert "custom-call(" not in two
    assert two.count(" while(") >= 1
    assert two.count('xla_cpu_small_call="true"') == two.count(" while(")
    three = compiled_text(3)
    assert "custom-call(" in three  # LAPACK's SVD
    assert three.count('xla_cpu_small_call="true"') < three.count(" while(")


def test_the_two_column_svd_is_jacobis_and_matches_lapack() -> None:
    pytest.importorskip("jax")
    import jax.numpy as jnp
    import numpy as np

    from zfitlite.backends.jax_backend import JaxOps

    rng = np.random.default_rng(5)
    for A in (rng.normal(size=(14, 2)), rng.normal(size=(6, 2)) * [1.0, 1e-9]):
        U, s, Vt = (np.asarray(a) for a in JaxOps().svd(jnp.asarray(A)))
        ref = np.linalg.svd(A, compute_uv=False)
        np.testing.assert_allclose(s, ref, rtol=1e-13)
        np.testing.assert_allclose((U * s) @ Vt, A, atol=1e-14 * ref[0])
        np.testing.assert_allclose(U.T @ U, np.eye(2), atol=1e-13)
