"""``backend="auto"``: JAX is tried only where it may help, and the choice is remembered.

The rule (``zfitlite.backends._detect``): JAX is tried for a function that uses JAX or
no other numerical library; a plain numpy function goes straight to numpy, without
importing jax or paying for a trace. The functions here are defined in fresh module
namespaces (as in a user's script that does not import jax), since this test module
itself imports jax.
"""

from __future__ import annotations

import functools
import gc
import subprocess
import sys
import textwrap
import types
import weakref

import numpy as np
import pytest

import zfitlite
from zfitlite.backends import _detect, detect_backend
from zfitlite.backends.jax_backend import JaxBackend
from zfitlite.minimize import LevenbergMarquardt

jax = pytest.importorskip("jax")


def _script(source: str, name: str = "a_users_script") -> types.SimpleNamespace:
    """The functions of ``source``, run as a module called ``name`` (not imported)."""
    namespace = {"__name__": name}
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), namespace)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if callable(v)})


NUMPY_SCRIPT = """
import math
import numpy as np
from numpy import exp

DATA = np.linspace(0.0, 1.0, 50)

def nll(p):
    mu, sigma = p
    return np.sum(np.log(sigma) + 0.5 * ((DATA - mu) / sigma) ** 2)

def model(x, b):
    return b[0] * (1 - exp(-b[1] * x))

def helper(p):
    return nll(p)              # numpy one call away

def with_math(p):
    return math.exp(p[0]) - p[0] + (p[1] - 2.0) ** 2

def pure(p):
    return (p[0] - 2.0) ** 2 + 3.0 * (p[1] + 1.0) ** 2

class Model:
    def __call__(self, p):
        return nll(p)

    def value(self, p):
        return nll(p)
"""

JAX_SCRIPT = """
import jax.numpy as jnp

def nll(p):
    return jnp.sum((p - jnp.array([2.0, -1.0])) ** 2)
"""

CLOSURE_SCRIPT = """
def make(xp):
    def model(x, b):
        return b[0] * (1 - xp.exp(-b[1] * x))
    return model
"""


@pytest.fixture
def traces(monkeypatch):
    """Counts the JAX traces that backend detection attempts."""
    calls = []
    original = JaxBackend.traceable

    def spy(self, func, n):
        calls.append(func)
        return original(self, func, n)

    monkeypatch.setattr(JaxBackend, "traceable", spy)
    return calls


def test_the_rule():
    user = _script(NUMPY_SCRIPT)
    for name in ("nll", "model", "helper", "with_math"):
        assert not _detect.try_jax(getattr(user, name)), name
        assert _detect.uses(getattr(user, name)) == {"other"}, name
    assert _detect.uses(user.pure) == set() and _detect.try_jax(user.pure)
    assert _detect.uses(_script(JAX_SCRIPT).nll) == {"jax"}
    # through closures, partials, bound methods and callable objects
    make = _script(CLOSURE_SCRIPT).make
    assert _detect.uses(make(jax.numpy)) == {"jax"} and _detect.uses(make(np)) == {"other"}
    assert _detect.try_jax(functools.partial(user.pure, p=None))
    assert not _detect.try_jax(functools.partial(user.helper))

    assert not _detect.try_jax(user.Model()) and not _detect.try_jax(user.Model().value)

    class Model:
        def __call__(self, p):
            return user.nll(p)

    # a class defined in a module that imports jax (this one) is worth a try
    assert _detect.try_jax(Model()) and _detect.try_jax(Model().__call__)


def test_a_numpy_function_is_never_traced(traces):
    user = _script(NUMPY_SCRIPT)
    user.nll.errordef = 0.5
    result = LevenbergMarquardt().minimize(
        user.nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.01}}
    )
    assert result.valid and result.info["backend"] == "numpy"
    x = np.linspace(100.0, 5000.0, 20)
    loss = zfitlite.LeastSquares.from_data(user.model, x, 240.0 * (1 - np.exp(-5.5e-4 * x)))
    fit = LevenbergMarquardt(tol=1e-10).minimize(loss, [500.0, 1e-4])
    assert fit.info["backend"] == "numpy"
    np.testing.assert_allclose(fit.x, [240.0, 5.5e-4], rtol=1e-6)
    assert traces == []


def test_jax_and_pure_arithmetic_are_tried(traces):
    jnll = _script(JAX_SCRIPT).nll
    assert detect_backend(jnll, 2).name == "jax"
    pure = _script(NUMPY_SCRIPT).pure
    assert detect_backend(pure, 2).name == "jax"  # traces: exact derivatives
    model = _script(CLOSURE_SCRIPT).make(jax.numpy)
    x = np.linspace(100.0, 5000.0, 20)
    loss = zfitlite.LeastSquares.from_data(model, x, 240.0 * (1 - np.exp(-5.5e-4 * x)))
    assert LevenbergMarquardt(tol=1e-10).minimize(loss, [500.0, 1e-4]).info["backend"] == "jax"
    assert len(traces) == 3


def test_the_choice_is_remembered_per_function(traces):
    """A new loss of the same function per fit detects once; another parameter count or
    data of another shape detects again; a forgotten function leaves no entry."""
    pure = _script(NUMPY_SCRIPT, "remembered").pure
    for _ in range(5):
        assert zfitlite.SimpleLoss(pure, errordef=1.0).backend_for(2).name == "jax"
    assert len(traces) == 1
    zfitlite.SimpleLoss(pure, errordef=1.0).backend_for(3)
    assert len(traces) == 2

    def resid(p, x, y):
        return y - p[0] * x - p[1]

    for k in range(3):
        x = np.linspace(0.0, 1.0, 10)
        zfitlite.LeastSquares(resid, args=(x, 2.0 * x + k)).backend_for(2)
    assert len(traces) == 3
    x = np.linspace(0.0, 1.0, 11)
    zfitlite.LeastSquares(resid, args=(x, 2.0 * x)).backend_for(2)
    assert len(traces) == 4
    assert pure in _detect._CHOICES and resid in _detect._CHOICES
    gone = [weakref.ref(pure), weakref.ref(resid)]
    traces.clear()  # the spy's own references
    del pure, resid
    gc.collect()
    assert [r() for r in gone] == [None, None]  # the memory keeps no function alive


def test_a_numpy_script_does_not_import_jax():
    """The README's first fit in a fresh process: numpy, without importing jax."""
    code = textwrap.dedent(
        """
        import sys, time
        import numpy as np
        import zfitlite

        data = np.random.default_rng(0).normal(1.0, 2.0, 1000)

        def nll(p):
            mu, sigma = p
            return np.sum(np.log(sigma) + 0.5 * ((data - mu) / sigma) ** 2)
        nll.errordef = 0.5

        result = zfitlite.minimize.LevenbergMarquardt().minimize(
            nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.01}})
        print(result.valid, result.info["backend"], "jax" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "numpy", "False"]
