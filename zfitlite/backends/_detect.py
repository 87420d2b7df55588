"""``backend="auto"``: which functions are worth a JAX trace, and a per-function memory.

Tracing a function under JAX costs about a second on the first call (importing jax,
tracing, failing) and gains nothing when the function is plain numpy. So JAX is tried
only for a function that uses JAX or uses no other numerical library:

* **known to use JAX**: its module imports jax (a global bound to ``jax`` or a ``jax.*``
  module, such as ``jnp``), or a global it reads or a variable it closes over is a jax
  module, something defined by jax (``jnp.exp``, ``jax.scipy.special.erf``) or a JAX
  array: JAX is tried;
* **known to use something else**: otherwise, when a global it reads or a variable it
  closes over is a numpy, scipy, math, TensorFlow, PyTorch or pandas module or function
  (``np``, ``np.sum``, ``math.exp``): JAX is not tried, numpy (or TensorFlow) is used;
* **pure Python arithmetic** (neither): JAX is tried, as it may trace.

The functions it calls or closes over count too, up to three levels deep;
``functools.partial`` objects, bound methods and callable objects are looked through, and
their bound arguments count as well. ``backend="jax"`` forces JAX.

The outcome is remembered per function (weakly: forgetting a function forgets its entry)
and per number of parameters and kind of bound data, so a new loss of the same function
per fit does not detect again.
"""

from __future__ import annotations

import functools
import sys
import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["remembered_choice", "try_jax", "uses"]

_MAX_DEPTH = 3
_JAX = ("jax", "jaxlib")
_OTHER = ("numpy", "scipy", "math", "cmath", "tensorflow", "torch", "pandas")


def _kind_of_name(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    top = name.split(".", 1)[0]
    if top in _JAX:
        return "jax"
    if top in _OTHER:
        return "other"
    return None


def _kind_of_thing(obj: Any) -> str | None:
    """ "jax" for a jax module, function or array; "other" for a module or function of
    another numerical library; None otherwise (numpy arrays and plain data: None)."""
    if isinstance(obj, types.ModuleType):
        return _kind_of_name(obj.__name__)
    try:
        if _kind_of_name(type(obj).__module__) == "jax":  # JAX arrays, jitted functions
            return "jax"
        if callable(obj) and not isinstance(obj, type):
            return _kind_of_name(getattr(obj, "__module__", None))
    except Exception:  # an object with a strange __getattr__
        return None
    return None


def _module_imports_jax(module_name: str | None) -> bool:
    module = sys.modules.get(module_name or "")
    if module is None:
        return False
    if _kind_of_name(module_name) == "jax":
        return True
    return any(
        isinstance(v, types.ModuleType) and _kind_of_name(v.__name__) == "jax"
        for v in list(vars(module).values())
    )


def _names(code: types.CodeType) -> set[str]:
    """Global names read by ``code`` and the code nested in it (lambdas, comprehensions)."""
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def uses(func: Any) -> set[str]:
    """What ``func`` is known to use: a subset of ``{"jax", "other"}`` (see above)."""
    found: set[str] = set()
    _scan(func, 0, set(), found)
    return found


def try_jax(func: Any) -> bool:
    """Whether ``backend="auto"`` tries JAX on ``func`` (the rule of this module)."""
    found = uses(func)
    return "jax" in found or "other" not in found


def _scan(func: Any, depth: int, seen: set[int], found: set[str]) -> None:
    if "jax" in found or id(func) in seen or depth > _MAX_DEPTH:
        return
    seen.add(id(func))
    kind = _kind_of_thing(func)
    if kind is not None:
        found.add(kind)
        return
    if isinstance(func, functools.partial):
        for part in (func.func, *func.args, *func.keywords.values()):
            _value(part, depth, seen, found)
        return
    if isinstance(func, types.MethodType):
        if _module_imports_jax(type(func.__self__).__module__):
            found.add("jax")
            return
        _scan(func.__func__, depth, seen, found)
        return
    if _ours(func):
        # zfitlite's own wrappers (masked, robust, constrained residuals ...): what they
        # wrap decides, not the numpy plumbing of their module
        for value in _wrapped(func):
            _value(value, depth, seen, found)
        return
    if not isinstance(func, types.FunctionType):
        call = getattr(type(func), "__call__", None)  # noqa: B004 - the method itself
        if isinstance(call, types.FunctionType):
            if _module_imports_jax(type(func).__module__):
                found.add("jax")
                return
            _scan(call, depth, seen, found)
        return
    if _module_imports_jax(func.__module__):
        found.add("jax")
        return
    for cell in func.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        _value(value, depth + 1, seen, found)
    glob = func.__globals__
    for name in _names(func.__code__):
        if name in glob:
            _value(glob[name], depth + 1, seen, found)


def _ours(func: Any) -> bool:
    """True for a function or callable object defined by zfitlite itself."""
    module = func.__module__ if isinstance(func, types.FunctionType) else type(func).__module__
    return isinstance(module, str) and module.split(".", 1)[0] == "zfitlite"


def _wrapped(func: Any) -> list[Any]:
    """What a zfitlite wrapper holds: its closure's values, or the object's attributes."""
    if isinstance(func, types.FunctionType):
        out = []
        for cell in func.__closure__ or ():
            try:
                out.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        return out
    return list(getattr(func, "__dict__", {}).values())


def _value(value: Any, depth: int, seen: set[int], found: set[str]) -> None:
    kind = _kind_of_thing(value)
    if kind is not None:
        found.add(kind)
    elif isinstance(value, (tuple, list)):
        for v in value[:16]:
            _value(v, depth, seen, found)
    elif callable(value) and not isinstance(value, type):
        _scan(value, depth, seen, found)


# -- the memory ---------------------------------------------------------------------------

_CHOICES: weakref.WeakKeyDictionary[Any, dict[Hashable, str]] = weakref.WeakKeyDictionary()


def _data_key(value: Any) -> Hashable:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return (type(value).__qualname__, tuple(shape), str(getattr(value, "dtype", "")))
    return type(value).__qualname__


def _memory_key(func: Callable, n: int) -> tuple[Any, Hashable] | None:
    """``(function to remember on, key)``, or None for what cannot be remembered safely."""
    from .base import after_x

    extra: tuple = ()
    if (
        isinstance(func, functools.partial)
        and func.func is after_x
        and len(func.args) == 2
        and not func.keywords
    ):
        # a loss's function with its data bound: only the data's kinds and shapes matter
        func, data = func.args
        extra = tuple(_data_key(a) for a in data)
    if not isinstance(func, types.FunctionType):
        return None  # bound methods are new objects on each access; objects may mutate
    return func, (n, "tensorflow" in sys.modules, extra)


def remembered_choice(func: Callable, n: int, choose: Callable[[], str]) -> str:
    """The backend name ``choose()`` picks for ``func``, remembered per function."""
    found = _memory_key(func, n)
    if found is None:
        return choose()
    target, key = found
    try:
        per_func = _CHOICES.setdefault(target, {})
    except TypeError:  # not weakly referenceable
        return choose()
    if key not in per_func:
        per_func[key] = choose()
    return per_func[key]
