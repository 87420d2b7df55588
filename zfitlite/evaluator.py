"""The evaluator: the only door from a solver to the loss.

It returns numpy data, checks shapes and types, counts calls, enforces ``maxiter``,
remembers the best finite point (for results after maxiter or an interruption), hands
non-finite outputs to the strategy and prints evaluations at verbosity 10.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse

from .backends import CompiledLoss
from .backends.base import COMPLEX_FIX, real_scalar
from .backends.numpy_backend import VALUE_BEFORE_FAILURE
from .exceptions import LossOutputError, MaximumIterationReached, ZfitliteError
from .params import Params
from .strategy import NonFiniteRecord, ZfitStrategy

__all__ = ["LossEvaluationError", "LossEvaluator"]


class LossEvaluationError(ZfitliteError, RuntimeError):
    """The loss raised an exception or returned something of the wrong kind.

    The message says which evaluation failed (value, gradient, ...), at which ``x``, why,
    and what to do; the original exception is chained as ``__cause__``. Raised out of
    ``minimize`` it carries ``best_x``/``best_value`` (see
    :class:`~zfitlite.exceptions.ZfitliteError`).
    """


_JAX_TRACE_ERRORS = frozenset(
    {
        "ConcretizationTypeError",
        "TracerBoolConversionError",
        "TracerArrayConversionError",
        "TracerIntegerConversionError",
        "UnexpectedTracerError",
        "NonConcreteBooleanIndexError",
    }
)
_RAISE_FIX = (
    "make the loss return a number for every x the minimizer may try (bounds keep it inside "
    "its domain), or use DefaultToyStrategy to get an invalid result with status LOSS_RAISED "
    "instead of this error"
)


_UNPACK = re.compile(r"(?:too many|not enough) values to unpack \(expected (\d+)")
_SHAPE = re.compile(r"\(([\d, ]*)\)")


def _shapes_hint(text: str, n: int, names: tuple[str, ...], from_data: int | None) -> str | None:
    """The hint for two common mistakes, recognised in the exception's text.

    A wrong number of start values (``mu, sigma = p`` given three) and a model written
    ``model(p, x)`` for :meth:`LeastSquares.from_data`, which calls ``model(x, p)``: the
    data then meet the ``n`` parameters, and numpy or JAX reports shapes that do not
    broadcast, one of them ``(n,)``. ``from_data`` is the number of data points of a
    ``from_data`` loss, else None.
    """
    unpack = _UNPACK.search(text)
    if unpack is not None and int(unpack.group(1)) != n:
        k = int(unpack.group(1))
        return (
            f"the loss unpacks {k} parameters but {n} start value{'s' * (n != 1)} were given "
            f"{list(names)}: "
            f"pass exactly one start value per parameter the loss reads ({k} here)"
        )
    if "broadcast" not in text:
        return None
    shapes = {tuple(int(d) for d in m.split(",") if d.strip()) for m in _SHAPE.findall(text)}
    if (n,) not in shapes or len(shapes) < 2:
        return None
    if from_data is not None:
        return (
            f"an array of the {n} parameters met the {from_data} data points: "
            "LeastSquares.from_data calls model(x, p), data first; a model written "
            "model(p, x) must swap its arguments (or pass one start value per model "
            "parameter)"
        )
    return (
        f"an array of the {n} parameters met an array of another shape: check the order of "
        "the function's arguments (parameters first for a loss, model(x, p) for "
        "LeastSquares.from_data) and that there is one start value per parameter"
    )


def _fix_for(
    exc: BaseException, n: int, names: tuple[str, ...], from_data: int | None = None
) -> str:
    """What the user can do about ``exc`` raised by their loss."""
    hint = _shapes_hint(str(exc), n, names, from_data)
    if hint is not None:
        return hint
    kind = type(exc).__name__
    module = type(exc).__module__ or ""
    text = str(exc)
    if kind in _JAX_TRACE_ERRORS or (module.startswith("jax") and "Tracer" in kind):
        return (
            "JAX could not trace the loss (Python `if`, float() or numpy calls on the traced "
            "parameters): write it with jax.numpy (jnp.where instead of if), or create it with "
            "SimpleLoss(func, errordef=..., backend='numpy')"
        )
    if module.startswith("tensorflow") or "{{node " in text:
        return (
            "TensorFlow could not build or run the loss's graph: check that the function runs "
            f"eagerly on a tf.float64 tensor of shape ({n},), or create it with backend='numpy'"
        )
    if isinstance(exc, IndexError):
        return (
            f"the loss may expect more parameters than the {n} given {list(names)}: pass one "
            f"start value per parameter the loss reads; otherwise {_RAISE_FIX}"
        )
    return _RAISE_FIX


_FLOATS = (float, np.float64)
EPS_CBRT = float(np.finfo(np.float64).eps) ** (1 / 3)  # central-difference step


def _finite_vector(a: np.ndarray, quiet: bool) -> bool:
    """All entries of a 1-D float array finite.

    Inside a solve (``quiet``: numpy's floating-point warnings are off) a dot product
    answers first, cheaply for small arrays; it may overflow, and then the elementwise
    test decides.
    """
    if quiet and math.isfinite(a.dot(a)):
        return True
    return bool(np.isfinite(a).all())


def _fmt(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=8, max_line_width=200)


class _MostCalls(NamedTuple):
    """The most user-function calls one evaluation of each kind may make (the budget
    check refuses a call that could overrun ``maxiter``)."""

    value: int
    value_gradient: int
    hessian: int
    hessian_at: int
    residuals: int
    jacobian: int
    jacobian_precise: int


def _most_calls(costs: dict[str, int] | None) -> _MostCalls:
    """:class:`_MostCalls` from a backend's ``CompiledLoss.costs`` (1 per call, 2 for a
    value with its gradient, where the backend gives none)."""
    costs = costs or {}
    h, j = costs.get("hessian", 1), costs.get("jacobian", 1)
    return _MostCalls(
        costs.get("value", 1),
        costs.get("value_and_gradient", 2),
        h,
        costs.get("hessian_at", h),
        costs.get("residuals", 1),
        j,
        costs.get("jacobian_precise", j),
    )


class LossEvaluator:
    """Wraps a compiled loss for one fit.

    Parameters
    ----------
    loss : BaseLoss
    params : Params
    strategy : ZfitStrategy
    maxiter : int
        Budget of work. On the numpy backend it counts every call of the user's own
        functions (value, gradient, Hessian, residuals, Jacobian), finite-difference
        calls included: a call that could overrun the budget (its most calls, e.g.
        ``4 n + 2`` for a finite-difference value and gradient, ``2 n^2 + 1`` for a
        finite-difference Hessian) is refused, so the calls never exceed ``maxiter``. On
        compiling backends (JAX, TensorFlow) each evaluation counts one (value and
        gradient two). A refused call raises :class:`MaximumIterationReached`.
    verbosity : int, default 0
        At 10 every evaluation is printed.
    compiled : CompiledLoss, optional
        Built from the loss when not given.
    auto_budget : bool, default False
        ``maxiter`` is the "auto" default, counted in evaluations: on the numpy backend
        it is multiplied by the calls of one finite-difference gradient (``2 n + 1`` per
        evaluation; 1 with exact derivatives), so "auto" allows as many evaluations as
        it always did.

    Attributes
    ----------
    nfev, ngrad, nhess, nres, njac : int
        Evaluations of each kind asked for so far.
    ncalls : int
        The budget spent: calls of the user's functions on the numpy backend, finite
        differences included; evaluations on compiling backends.
    best_x, best_value
        The lowest finite value seen and where.
    """

    def __init__(
        self,
        loss: Any,
        params: Params,
        strategy: ZfitStrategy,
        maxiter: int,
        verbosity: int = 0,
        compiled: CompiledLoss | None = None,
        auto_budget: bool = False,
    ) -> None:
        self.loss = loss
        self.params = params
        self.n = len(params)
        self._shape = (self.n,)
        self.errordef = loss.errordef
        self.strategy = strategy
        self.maxiter = int(maxiter)
        self.verbosity = verbosity
        if compiled is None:
            # per-parameter scales matter only for finite differences (non-compiling backends)
            compiles = loss.backend_for(self.n).compiles
            scales = None if compiles else params.difference_scales()
            self.compiled: CompiledLoss = loss.compiled(self.n, scales)
        else:
            self.compiled = compiled
        self.nfev = self.ngrad = self.nhess = self.nres = self.njac = 0
        self.nhvp = 0
        self.best_x: np.ndarray = params.values.copy()
        self.best_value = float("inf")
        self.record = NonFiniteRecord(errordef=self.errordef)
        self.last_value_gradient: tuple[np.ndarray | None, float, np.ndarray] | None = None
        #: ``(x, H)`` of the last Hessian from the compiled functions' own ``hessian``
        self.last_hessian: tuple[np.ndarray, np.ndarray] | None = None
        self._budget_on = True
        self._calls = 0  # the budget spent (see ncalls)
        self._quiet = False
        # numpy backend: the user's own calls are counted (finite differences included);
        # a call is refused unless its most calls still fit in the budget
        self._raw = self.compiled.raw
        self._need = _most_calls(self.compiled.costs)
        if auto_budget and self._raw is not None:
            self.maxiter *= max(1, self._need.value_gradient // 2)

    # -- bookkeeping -------------------------------------------------------------------
    @property
    def ncalls(self) -> int:
        """The budget spent: every call of the user's functions (numpy backend, finite
        differences included), or every evaluation (value and gradient count two) on a
        compiling backend."""
        return self._calls

    @property
    def backend(self) -> str:
        """Name of the backend that evaluates the loss."""
        return self.compiled.backend

    @property
    def has_exact_gradient(self) -> bool:
        """True when the gradient is not a finite-difference estimate: autodiff (JAX,
        TensorFlow) or a gradient or residual Jacobian the user gave.

        ``CompiledLoss.exact_derivatives`` alone is not enough: the numpy backend sets it
        only when both a gradient and a Hessian are given.
        """
        if self.compiled.backend != "numpy" or self.compiled.exact_derivatives:
            return True
        return (
            getattr(self.loss, "gradient_func", None) is not None
            or getattr(self.loss, "jacobian_func", None) is not None
        )

    @property
    def has_residuals(self) -> bool:
        """True for least-squares losses."""
        return self.compiled.residuals is not None

    def counts(self) -> dict[str, int]:
        """The call counters as a dict (stored in ``FitResult.info``)."""
        return {
            "nfev": self.nfev,
            "ngrad": self.ngrad,
            "nhess": self.nhess,
            "nres": self.nres,
            "njac": self.njac,
            "nhvp": self.nhvp,
            "ncalls": self._calls,
        }

    def add_counts(
        self, *, nres: int = 0, njac: int = 0, x: np.ndarray | None = None, value: float = np.inf
    ) -> None:
        """Account for evaluations a compiled solver made on its own (and its best point)."""
        self.nres += nres
        self.njac += njac
        self._calls += nres + njac
        if x is not None and math.isfinite(value):
            self._remember(np.asarray(x, dtype=np.float64), float(value))

    def unbudgeted(self) -> _Unbudgeted:
        """Context manager: evaluations inside do not hit ``maxiter`` (final EDM, Hesse)."""
        return _Unbudgeted(self)

    def silenced(self) -> _Silenced:
        """Context manager for a whole solve: numpy's floating-point warnings off once.

        Floating-point trouble surfaces as NaN/inf and goes to the strategy, not as
        warnings; inside, the evaluator skips setting that up on every call.
        """
        return _Silenced(self)

    def _spend(self, k: int = 1, need: int = 1) -> None:
        """Refuse a call that could overrun the budget (``need``: its most calls); count
        ``k`` where the backend compiles (the numpy backend counts real calls in
        :meth:`_call`)."""
        if self._budget_on and self._calls + need > self.maxiter:
            raise MaximumIterationReached(
                f"maxiter={self.maxiter} reached ({self._calls} calls spent, the next "
                f"evaluation may take {need})"
            )
        if self._raw is None:
            self._calls += k

    def _x(self, x: Any) -> np.ndarray:
        if type(x) is not np.ndarray or x.dtype != np.float64:
            x = np.asarray(x, dtype=np.float64)
        if x.shape != self._shape:
            raise ValueError(
                f"the evaluator expects {self.n} parameter values, got shape {x.shape}"
            )
        return x

    def wrap_error(self, exc: Exception, what: str, x: Any) -> LossEvaluationError:
        """A :class:`LossEvaluationError` for ``exc``, raised by the loss's ``what`` at ``x``.

        The message names the failure and the fix (JAX tracing and TensorFlow graph errors
        get their own advice); raise it ``from exc`` to keep the original traceback.
        """
        x = np.asarray(x)
        if isinstance(exc, LossOutputError):
            msg = str(exc)
            if "at x=" not in msg:
                msg = f"{msg} (while computing its {what} at x={_fmt(x)})"
            return LossEvaluationError(msg)
        lines = str(exc).strip().splitlines() or [""]
        text = lines[0] + (" [...]" if len(lines) > 1 else "")
        return LossEvaluationError(
            f"the loss raised {type(exc).__name__} while computing its {what} at "
            f"x={_fmt(x)}: {text}; {_fix_for(exc, self.n, self.params.names, self._from_data())}"
        )

    def _from_data(self) -> int | None:
        """The number of data points of a ``LeastSquares.from_data`` loss, else None."""
        data = getattr(self.loss, "data", None)
        if isinstance(data, dict) and "model" in data and "y" in data:
            return int(np.size(data["y"]))
        return None

    def _call(self, fn: Callable, x: np.ndarray, what: str) -> Any:
        """``fn`` on a copy of ``x``; on the numpy backend the user's function calls it
        made are added to the budget spent (finite differences included)."""
        raw = self._raw
        before = 0 if raw is None else raw.n
        try:
            if self._quiet:
                return fn(x.copy())
            # floating-point trouble surfaces as NaN/inf and goes to the strategy, not as warnings
            with np.errstate(all="ignore"):
                return fn(x.copy())
        except (MaximumIterationReached, KeyboardInterrupt):
            raise
        except Exception as exc:
            # a value computed before a derivative failed still counts (best_x/best_value)
            value = getattr(exc, VALUE_BEFORE_FAILURE, None)
            if isinstance(value, (float, np.floating)) and math.isfinite(value):
                self._remember(x, float(value))
            raise self.wrap_error(exc, what, x) from exc
        finally:
            if raw is not None:
                self._calls += raw.n - before

    def _remember(self, x: np.ndarray, value: float) -> None:
        x = x.copy()  # one copy, shared: neither is mutated afterwards
        self.record.last_x = x
        self.record.last_value = value
        if value < self.best_value:
            self.best_value = value
            self.best_x = x

    # -- validation --------------------------------------------------------------------
    def _scalar(self, v: Any, x: np.ndarray) -> float:
        try:
            return real_scalar(v, lambda: f" at x={_fmt(x)}")
        except LossOutputError as exc:
            raise LossEvaluationError(str(exc)) from None

    def _array(self, v: Any, shape: tuple[int | None, ...], what: str, x: np.ndarray) -> np.ndarray:
        arr = np.asarray(v)
        if arr.dtype == np.float64:  # the common cases, kept cheap
            got = arr.shape
            if got == shape or (
                shape[0] is None and len(got) == len(shape) and got[1:] == shape[1:]
            ):  # residuals (m,) and Jacobians (m, n), whatever m
                return arr
        if arr.dtype.kind == "c":
            raise LossEvaluationError(f"the loss's {what} is complex at x={_fmt(x)}; {COMPLEX_FIX}")
        try:
            arr = arr.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            raise LossEvaluationError(
                f"the loss's {what} is {v!r} at x={_fmt(x)}; it must be an array of real numbers"
            ) from None
        ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = tuple("m" if s is None else s for s in shape)
            if what == "residuals":
                fix = "the residuals must be a 1-D array (one entry per observation)"
            else:
                fix = (
                    f"the {what} function must return shape {want}, one entry per parameter "
                    f"{list(self.params.names)} in that order"
                )
            raise LossEvaluationError(
                f"the loss's {what} has shape {arr.shape}, expected {want}, at x={_fmt(x)}; {fix}"
            )
        return arr

    def _finite(self, what: str, x: np.ndarray, value: Any) -> Any:
        if np.isfinite(value).all():
            return value
        return self.strategy.handle_nonfinite(what, x, value, self.record)

    # -- the loss ----------------------------------------------------------------------
    def value(self, x: Any) -> float:
        """The loss at ``x``."""
        x = self._x(x)
        self._spend(1, self._need.value)
        self.nfev += 1
        v = self._call(self.compiled.value, x, "value")
        v = float(v) if type(v) in _FLOATS else self._scalar(v, x)
        if self.verbosity >= 10:
            print(f"  eval value   x={_fmt(x)} -> {v!r}")
        if math.isfinite(v):
            self._remember(x, v)
            return v
        return float(self._finite("value", x, v))

    def value_gradient(self, x: Any) -> tuple[float, np.ndarray]:
        """Value and gradient at ``x``."""
        x = self._x(x)
        self._spend(2, self._need.value_gradient)
        self.nfev += 1
        self.ngrad += 1
        v, g = self._call(self.compiled.value_and_gradient, x, "value and gradient")
        v = float(v) if type(v) in _FLOATS else self._scalar(v, x)
        g = self._array(g, self._shape, "gradient", x)
        if self.verbosity >= 10:
            print(f"  eval value+gradient x={_fmt(x)} -> {v!r}, {_fmt(g)}")
        if math.isfinite(v):
            self._remember(x, v)
            if _finite_vector(g, self._quiet):
                # kept for the final EDM: a solver's last point is usually one it evaluated
                self.last_value_gradient = (self.record.last_x, v, g.copy())
                return v, g
        else:
            v = float(self._finite("value", x, v))
        return v, self._finite("gradient", x, g)

    def value_gradient_reusing(self, x: Any) -> tuple[float, np.ndarray]:
        """:meth:`value_gradient`, without a new call when the last one was at ``x``.

        For the EDM at a solver's answer: gradient solvers usually evaluated it last.
        """
        last = self.last_value_gradient
        if last is not None and last[0] is not None and np.array_equal(last[0], x):
            return last[1], last[2].copy()
        return self.value_gradient(x)

    def gradient(self, x: Any) -> np.ndarray:
        """Gradient at ``x``."""
        return self.value_gradient(x)[1]

    def hessian(self, x: Any, f: float | None = None, g: np.ndarray | None = None) -> np.ndarray:
        """Hessian at ``x`` (exact from the backend, or numerical).

        ``f``, ``g``: the value and gradient at ``x`` when known (e.g. from
        :meth:`value_gradient_reusing`); a backend that differences numerically then takes
        them as the centre instead of computing them again (numpy with an exact gradient:
        ``n`` gradient calls instead of ``4 n``; from values: one call less).
        """
        x = self._x(x)
        at = self.compiled.hessian_at
        own = True  # the compiled functions' own Hessian (not differenced around f, g)
        if f is not None and g is not None and at is not None and math.isfinite(f):
            own = False
            g = np.array(g, dtype=np.float64)
            self._spend(1, self._need.hessian_at)
            self.nhess += 1
            H = self._call(lambda y: at(y, f, g), x, "hessian")
        else:
            self._spend(1, self._need.hessian)
            self.nhess += 1
            H = self._call(self.compiled.hessian, x, "hessian")
        H = self._array(H, (self.n, self.n), "hessian", x)
        if self.verbosity >= 10:
            print(f"  eval hessian x={_fmt(x)}")
        H = self._finite("hessian", x, H)
        if own:  # what ``compiled.hessian(x)`` gives: a result's hesse() reuses it
            self.last_hessian = (x.copy(), np.array(H, dtype=np.float64))
        return H

    def hessian_vector(self, x: Any, v: Any, g: np.ndarray | None = None) -> np.ndarray:
        """The Hessian at ``x`` times ``v``, without forming the Hessian.

        Exact where the backend has a Hessian-vector product (JAX: forward over reverse,
        one evaluation each); otherwise a central difference of two gradients along
        ``v`` (two value-and-gradient evaluations). Counted in ``nhvp``.
        """
        x = self._x(x)
        v = np.asarray(v, dtype=np.float64)
        hvp = self.compiled.hvp
        self.nhvp += 1
        if hvp is not None:
            self._spend(1, 1)
            out = self._array(
                self._call(lambda y: hvp(y, v), x, "hessian"), self._shape, "hessian", x
            )
            return self._finite("hessian", x, out)
        vnorm = float(np.linalg.norm(v))
        if vnorm == 0.0:
            return np.zeros_like(v)
        xnorm = float(np.linalg.norm(x))
        h = (EPS_CBRT * max(xnorm, 1.0)) / vnorm
        gp = self.value_gradient(x + h * v)[1]
        gm = self.value_gradient(x - h * v)[1]
        return (gp - gm) / (2.0 * h)

    def value_gradient_hessian(self, x: Any) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and Hessian at ``x``."""
        v, g = self.value_gradient(x)
        return v, g, self.hessian(x)

    def residuals(self, x: Any) -> np.ndarray:
        """Residuals at ``x`` (least-squares losses only)."""
        if self.compiled.residuals is None:
            raise TypeError("residuals are only defined for LeastSquares losses")
        x = self._x(x)
        self._spend(1, self._need.residuals)
        self.nres += 1
        r = self._array(
            self._call(self.compiled.residuals, x, "residuals"), (None,), "residuals", x
        )
        if self.verbosity >= 10:
            print(f"  eval residuals x={_fmt(x)} -> sum of squares {float(r @ r)!r}")
        ss = float(r @ r)  # finite only when every residual is (else the elementwise test)
        if math.isfinite(ss) or np.isfinite(r).all():
            self._remember(x, ss)
        return r

    def jacobian(self, x: Any, precise: bool = False) -> Any:
        """Jacobian of the residuals at ``x``, shape ``(m, n)``: a float64 array, or a
        ``scipy.sparse`` CSR matrix where the loss's Jacobian is sparse.

        ``precise``: the backend's more accurate Jacobian where its usual one is a cheaper
        estimate (numpy's finite differences: Richardson-extrapolated, twice the calls).
        """
        if self.compiled.jacobian is None:
            raise TypeError("a residual Jacobian is only defined for LeastSquares losses")
        x = self._x(x)
        fn, need = self.compiled.jacobian, self._need.jacobian
        if precise and self.compiled.jacobian_precise is not None:
            fn, need = self.compiled.jacobian_precise, self._need.jacobian_precise
        self._spend(1, need)
        self.njac += 1
        J = self._call(fn, x, "jacobian")
        if scipy.sparse.issparse(J):  # a sparse Jacobian stays sparse (CSR)
            return self._sparse(J, x)
        return self._array(J, (None, self.n), "jacobian", x)

    def _sparse(self, J: Any, x: np.ndarray) -> Any:
        """A sparse Jacobian as float64 CSR, its shape checked as :meth:`_array` does."""
        if J.dtype.kind == "c":
            raise LossEvaluationError(
                f"the loss's jacobian is complex at x={_fmt(x)}; {COMPLEX_FIX}"
            )
        if J.ndim != 2 or J.shape[1] != self.n:
            raise LossEvaluationError(
                f"the loss's jacobian has shape {J.shape}, expected ('m', {self.n}), at "
                f"x={_fmt(x)}; the jacobian function must return shape ('m', {self.n}), one "
                f"column per parameter {list(self.params.names)} in that order"
            )
        return scipy.sparse.csr_matrix(J, dtype=np.float64)


class _Silenced:
    def __init__(self, ev: LossEvaluator) -> None:
        self.ev = ev
        self.errstate = np.errstate(all="ignore")
        self.prev = False

    def __enter__(self) -> LossEvaluator:
        self.errstate.__enter__()
        self.prev, self.ev._quiet = self.ev._quiet, True
        return self.ev

    def __exit__(self, *exc: Any) -> None:
        self.ev._quiet = self.prev
        self.errstate.__exit__(*exc)


class _Unbudgeted:
    def __init__(self, ev: LossEvaluator) -> None:
        self.ev = ev
        self.prev = True

    def __enter__(self) -> LossEvaluator:
        self.prev = self.ev._budget_on
        self.ev._budget_on = False
        return self.ev

    def __exit__(self, *exc: object) -> None:
        self.ev._budget_on = self.prev
