"""FitResult: what a minimization found, how sure it is, and how to go on from it.

A result is plain data (arrays, floats, dicts) plus references to the loss and the
minimizer that produced it. It pickles; a loss that cannot be pickled, or not be loaded
where the result is (a function of another process's ``__main__``), is dropped with a
warning when the result is loaded, and the rest of the result is kept. It
serialises to a dict or JSON that loading never executes.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._render import html as _render_html
from ._render import text as _render_text
from .approximations import Approximations
from .params import Params
from .status import Status
from .uncertainties import covariance_from_hessian, level, profile_interval

__all__ = ["Approximations", "FitResult", "ParamPairDict"]

_FORMAT = "zfitlite.FitResult"
_FORMAT_VERSION = 1


class ParamPairDict(dict):
    """A matrix over named parameters as a dict: ``d["mu", "sigma"]`` or ``d["mu"]["sigma"]``.

    The keys are name pairs ``(name_i, name_j)``, as zfit's ``covariance(as_dict=True)``
    (there keyed by parameter objects); iterating, ``len`` and ``==`` see those pairs.
    Indexing by a single name returns that parameter's row, ``{name_j: value}``.

    Examples
    --------
    >>> d = ParamPairDict.from_matrix(["mu", "sigma"], [[1.0, 0.5], [0.5, 4.0]])
    >>> d["mu", "sigma"], d["sigma"]["sigma"], d["sigma"]
    (0.5, 4.0, {'mu': 0.5, 'sigma': 4.0})
    """

    @classmethod
    def from_matrix(cls, names: Sequence[str], matrix: Any) -> ParamPairDict:
        """The pairs of a square ``matrix`` whose rows and columns are ``names``."""
        m = np.asarray(matrix, dtype=np.float64)
        return cls(
            ((a, b), float(m[i, j])) for i, a in enumerate(names) for j, b in enumerate(names)
        )

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            row = {b: v for (a, b), v in self.items() if a == key}
            if not row:
                names = list(dict.fromkeys(a for a, _ in self))
                raise KeyError(f"no parameter {key!r}; the parameters are {names}")
            return row
        return super().__getitem__(key)


class FitResult:
    """The outcome of :meth:`BaseMinimizer.minimize`.

    Attributes
    ----------
    params : dict
        ``{name: {"value": float, "lower": float, "upper": float, "at_limit": bool,
        "hesse": {...}, "errors": {...}}}``; uncertainty entries appear once computed.
    x : numpy.ndarray
        Values at the minimum, in parameter order.
    values : dict
        ``{name: value}``.
    fmin, fminopt : float
        The loss at the minimum (``fminopt`` is the same number; zfit keeps both names).
    edm : float
        Estimated distance to the minimum, ``g^T H^-1 g / 2``.
    valid : bool
        Converged, finite minimum, and no parameter at a bound.
    converged : bool
        The EDM fell below ``tol * errordef``.
    status : Status
    message : str
    info : dict
        Evaluation counts (``nfev``, ``ngrad``, ``nhess``, ``nres``, ``njac``: the
        evaluations of each kind asked for), ``ncalls`` (the budget spent: every call of
        the user's functions on the numpy backend, finite differences and the final
        Hessian included; evaluations on compiling backends), ``niter``, ``time``,
        ``backend`` and ``original`` (the wrapped solver's result).
    approx : Approximations
    minimizer, loss
        What produced the result (None after loading from a dict).
    params_at_limit : list of str
        Names of parameters on a bound; empty (falsy) when none.
    """

    def __init__(
        self,
        *,
        params: Params,
        fmin: float,
        edm: float,
        status: Status,
        tol: float,
        errordef: float,
        loss: Any = None,
        minimizer: Any = None,
        criterion: Any = None,
        approx: Approximations | None = None,
        info: Mapping[str, Any] | None = None,
        message: str | None = None,
        minimizer_info: Mapping[str, Any] | None = None,
    ) -> None:
        self.params_spec = params
        self.fmin = float(fmin)
        self.edm = float(edm)
        self.status = Status(status)
        self.tol = float(tol)
        self.errordef = float(errordef)
        self.loss = loss
        self.minimizer = minimizer
        self.criterion = criterion
        self.approx = approx if approx is not None else Approximations()
        self.info: dict[str, Any] = dict(info or {})
        self.message = message if message is not None else self.status.message
        if minimizer_info is None:
            minimizer_info = (
                minimizer.settings()
                if minimizer is not None and hasattr(minimizer, "settings")
                else {}
            )
        self.minimizer_info: dict[str, Any] = dict(minimizer_info or {})
        self._covariances: dict[str, np.ndarray] = {}
        #: ``(compiled functions, x, H)``: the Hessian the fit measured at its end with the
        #: loss's compiled Hessian (set by the minimizer); ``hesse()`` at that ``x`` reuses
        #: it instead of computing the same matrix again (on many events, the costliest call)
        self._known_hessian: tuple[Any, np.ndarray, np.ndarray] | None = None
        at_limit = (
            params.at_limit(params.values).tolist()
            if params.has_bounds
            else [False] * len(params.names)
        )
        self.params: dict[str, dict[str, Any]] = {
            name: {"value": value, "lower": lower, "upper": upper, "at_limit": limit}
            for name, value, lower, upper, limit in zip(
                params.names,
                params.values.tolist(),
                params.lower.tolist(),
                params.upper.tolist(),
                at_limit,
            )
        }

    # -- basic views ---------------------------------------------------------------------
    @property
    def x(self) -> np.ndarray:
        return self.params_spec.values.copy()

    @property
    def values(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.params_spec.names, self.params_spec.values)}

    @property
    def names(self) -> tuple[str, ...]:
        return self.params_spec.names

    @property
    def fminopt(self) -> float:
        return self.fmin

    @property
    def converged(self) -> bool:
        return self.status.success

    @property
    def params_at_limit(self) -> list[str]:
        return [n for n, p in self.params.items() if p["at_limit"]]

    @property
    def valid(self) -> bool:
        return self.converged and math.isfinite(self.fmin) and not self.params_at_limit

    @property
    def edm_goal(self) -> float:
        """The convergence threshold ``tol * errordef``."""
        return self.tol * self.errordef

    # scipy-style aliases
    @property
    def success(self) -> bool:
        return self.converged

    @property
    def fun(self) -> float:
        return self.fmin

    @property
    def jac(self) -> np.ndarray | None:
        return self.approx.gradient

    @property
    def hess(self) -> np.ndarray | None:
        return self.approx.hessian

    @property
    def hess_inv(self) -> np.ndarray | None:
        return self.approx.inv_hessian

    @property
    def nfev(self) -> int:
        """Evaluations of the loss (for a least-squares loss, of its residuals too), as scipy's."""
        return int(self.info.get("nfev", 0)) + int(self.info.get("nres", 0))

    @property
    def njev(self) -> int:
        """Evaluations of the gradient (for a least-squares loss, of its Jacobian too)."""
        return int(self.info.get("ngrad", 0)) + int(self.info.get("njac", 0))

    @property
    def nit(self) -> int:
        return int(self.info.get("niter", 0))

    # -- helpers -----------------------------------------------------------------------
    def _indices(self, params: Any) -> list[int]:
        names = list(self.params_spec.names)
        if params is None:
            return list(range(len(names)))
        if isinstance(params, (str, int, np.integer)):
            params = [params]
        out = []
        for p in params:
            if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
                if not 0 <= p < len(names):
                    raise ValueError(
                        f"parameter index {p} out of range for {len(names)} parameters"
                    )
                out.append(int(p))
            elif isinstance(p, str):
                if p not in names:
                    raise ValueError(f"unknown parameter '{p}'; the result has {names}")
                out.append(names.index(p))
            else:
                raise TypeError(f"parameters are selected by name or index, got {p!r}")
        return out

    def _require_loss(self, what: str) -> Any:
        if self.loss is None:
            raise ValueError(
                f"{what} needs the loss, which this result does not hold (it was loaded from a file, or the "
                "loss could not be pickled); refit, or use the stored covariance/errors"
            )
        return self.loss

    def _hesse_errors_by_name(self) -> dict[str, float]:
        """One-sigma Hesse errors computed so far (used as step sizes when chaining)."""
        one_sigma = level(None, 1.0)[1]
        return {
            n: p["hesse"]["error"]
            for n, p in self.params.items()
            if isinstance(p.get("hesse"), dict) and abs(p["hesse"].get("cl", 0) - one_sigma) < 1e-9
        }

    def _hessian(self, method: str) -> np.ndarray:
        if method == "approx":
            if self.approx.hessian is not None:
                return np.asarray(self.approx.hessian)
            if self.approx.inv_hessian is not None:
                return np.linalg.inv(self.approx.inv_hessian)
            raise ValueError("this result has no approximate Hessian; use method='hesse_np'")
        if method == "hesse_np":
            loss = self._require_loss("hesse(method='hesse_np')")
            compiled = loss.compiled(len(self.params_spec), self.params_spec.difference_scales())
            known = self._known_hessian
            if known is not None and known[0] is compiled and np.array_equal(known[1], self.x):
                return known[2].copy()  # the same function at the same point
            return np.asarray(compiled.hessian(self.x), dtype=np.float64)
        raise ValueError(f"unknown Hesse method {method!r}; choose 'hesse_np' or 'approx'")

    # -- uncertainties -------------------------------------------------------------------
    def covariance(
        self, params: Any = None, method: str | None = None, as_dict: bool = False
    ) -> Any:
        """Covariance ``2 * errordef * H^-1`` of the selected parameters.

        Parameters
        ----------
        params : names or indices, optional
            Default all.
        method : {"hesse_np", "approx"}, optional
            Default: a covariance already computed, else ``"hesse_np"``.
        as_dict : bool
            Return a :class:`ParamPairDict` instead of an array: keyed by name pairs
            ``d["mu", "sigma"]`` as in zfit, and by name as well, ``d["mu"]["sigma"]``
            (a row: ``{name_j: value}``).
        """
        if method is None:
            method = next(iter(self._covariances), "hesse_np")
        if method not in self._covariances:
            cov, posdef = covariance_from_hessian(self._hessian(method), self.errordef)
            self._covariances[method] = cov
            self.info.setdefault("hesse_posdef", {})[method] = posdef
        idx = self._indices(params)
        cov = self._covariances[method][np.ix_(idx, idx)]
        if as_dict:
            return ParamPairDict.from_matrix([self.params_spec.names[i] for i in idx], cov)
        return cov.copy()

    def correlation(
        self, params: Any = None, method: str | None = None, as_dict: bool = False
    ) -> Any:
        """Correlation matrix of the selected parameters (from :meth:`covariance`);
        ``as_dict=True`` gives a :class:`ParamPairDict` as :meth:`covariance` does."""
        cov = self.covariance(params, method)
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd)
        if as_dict:
            names = [self.params_spec.names[i] for i in self._indices(params)]
            return ParamPairDict.from_matrix(names, corr)
        return corr

    def hesse(
        self,
        params: Any = None,
        method: str = "hesse_np",
        cl: float | None = None,
        name: str | None = None,
    ) -> dict[str, dict[str, float]]:
        """Symmetric errors from the covariance ``2 * errordef * H^-1``.

        Parameters
        ----------
        params : names or indices, optional
            Default all.
        method : {"hesse_np", "approx"}
            ``"hesse_np"``: the loss's Hessian from its backend (exact with JAX, numerical
            otherwise). ``"approx"``: the minimizer's own estimate.
        cl : float, optional
            Confidence level; errors are scaled to it (default: one sigma, cl 0.683).
        name : str, optional
            Key under which the errors are stored in ``params`` (default ``"hesse"``).

        Returns
        -------
        dict
            ``{name: {"error": float, "cl": float}}``.
        """
        k, level_cl = level(cl, None)
        cov = self.covariance(None, method)
        key = name or "hesse"
        out = {}
        for i in self._indices(params):
            pname = self.params_spec.names[i]
            var = cov[i, i]
            err = float(np.sqrt(var) * k) if np.isfinite(var) and var > 0 else float("nan")
            entry = {"error": err, "cl": level_cl}
            self.params[pname][key] = {**entry, "method": method}
            out[pname] = entry
        return out

    def errors(
        self,
        params: Any = None,
        method: str = "profile",
        cl: float | None = None,
        sigma: float = 1,
        name: str | None = None,
    ) -> tuple[dict[str, dict[str, float]], FitResult | None]:
        """Asymmetric errors by profile likelihood: where the profiled loss rises by ``errordef * k**2``.

        Parameters
        ----------
        params : names or indices, optional
            Default all.
        method : {"profile"}
        cl : float, optional
            Confidence level; overrides ``sigma``.
        sigma : float, default 1
            Number of sigmas ``k``; the confidence level is ``chi2(1).cdf(k**2)``.
        name : str, optional
            Key under which the errors are stored in ``params`` (default ``"errors"``).

        Returns
        -------
        errors : dict
            ``{name: {"lower": negative float, "upper": positive float, "cl": float}}``.
        new_result : FitResult or None
            A new result when the scan found a lower minimum (its errors are the ones
            returned), else None.
        """
        if method != "profile":
            raise ValueError(f"unknown errors method {method!r}; the available method is 'profile'")
        k, level_cl = level(cl, sigma)
        loss = self._require_loss("errors()")
        from ._profile import Profiler

        profiler = Profiler(loss, self.params_spec, self.x)
        f_ref, x_ref = profiler.minimum()
        if f_ref < self.fmin - self.edm_goal:
            # the result was not at the minimum: refit from the better point and profile there
            return self._refit_and_errors(x_ref, params, method, cl, sigma, name)
        f_ref = min(f_ref, self.fmin)
        found: list[np.ndarray] = []

        def on_lower(f: float, x: np.ndarray) -> None:
            if f < f_ref - self.edm_goal:
                found.append(x)
                raise _LowerMinimum

        try:
            hesse = self.hesse(params, method="hesse_np")
        except Exception:  # a failing Hesse only loses the first guess of the scan
            hesse = {}
        delta = self.errordef * k * k
        key = name or "errors"
        out: dict[str, dict[str, float]] = {}
        for i in self._indices(params):
            pname = self.params_spec.names[i]
            guess = hesse.get(pname, {}).get("error", float("nan")) * k
            try:
                lo, up, extra = profile_interval(
                    profiler.profile,
                    i,
                    self.x,
                    f_ref,
                    delta,
                    guess,
                    self.params_spec.lower[i],
                    self.params_spec.upper[i],
                    on_lower_minimum=on_lower,
                )
            except _LowerMinimum:
                return self._refit_and_errors(found[-1], params, method, cl, sigma, name)
            entry = {"lower": lo, "upper": up, "cl": level_cl}
            self.params[pname][key] = {**entry, "at_limit": extra["at_limit"]}
            out[pname] = entry
        self.info["nprofile_fits"] = self.info.get("nprofile_fits", 0) + profiler.nfits
        return out, None

    def _refit_and_errors(
        self,
        x: np.ndarray,
        params: Any,
        method: str,
        cl: float | None,
        sigma: float,
        name: str | None,
    ) -> tuple[dict[str, dict[str, float]], FitResult]:
        from ._profile import default_solver

        minimizer = self.minimizer if self.minimizer is not None else default_solver(self.tol)
        new = minimizer.minimize(self.loss, self.params_spec.with_values(x))
        errors, newer = new.errors(params, method, cl, sigma, name)
        return errors, newer if newer is not None else new

    def update_params(self) -> FitResult:
        """Store the fitted values as the loss's parameter values (when the loss has parameters).

        For a zfit loss (:class:`~zfitlite.adapters.ZfitLossAdapter`) this sets the zfit
        parameters' values: assigning ``loss.params`` writes them through to zfit.
        """
        loss = self.loss
        if loss is not None and isinstance(getattr(loss, "params", None), Params):
            if loss.params.names == self.params_spec.names:
                loss.params = loss.params.with_values(self.x)
        return self

    # -- rendering -----------------------------------------------------------------------
    def __str__(self) -> str:
        return _render_text(self)

    def __repr__(self) -> str:
        return (
            f"<FitResult {self.minimizer_info.get('name', '?')} valid={self.valid} "
            f"fmin={self.fmin:.10g} edm={self.edm:.3g} status={self.status.name}>"
        )

    def _repr_html_(self) -> str:
        return _render_html(self)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data: values, errors, covariance, status, counts, the minimizer's name and settings."""
        info = {
            k: v
            for k, v in self.info.items()
            if isinstance(v, (int, float, str, bool)) and k != "original"
        }
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "params": self.params_spec.to_dict(),
            "param_results": _plain(self.params),
            "fmin": self.fmin,
            "edm": self.edm,
            "tol": self.tol,
            "errordef": self.errordef,
            "status": int(self.status),
            "status_name": self.status.name,
            "message": self.message,
            "valid": self.valid,
            "converged": self.converged,
            "info": info,
            "covariance": {k: v.tolist() for k, v in self._covariances.items()},
            "approx": self.approx.to_dict(),
            "minimizer": _plain(self.minimizer_info),
        }

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (NaN and inf written as JSON's NaN/Infinity)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FitResult:
        """Rebuild a result from :meth:`to_dict` output; nothing in it is executed.

        Raises
        ------
        ValueError
            For anything that is not a well-formed result dict.
        """
        from ._serialize import load_result_dict

        return load_result_dict(cls, d)

    @classmethod
    def from_json(cls, source: Any) -> FitResult:
        """Rebuild a result from :meth:`to_json` output; nothing in it is executed.

        Parameters
        ----------
        source : str, bytes, os.PathLike or file
            The JSON text (a ``str`` is always read as JSON text, never as a file name),
            a :class:`pathlib.Path` to a file holding it, or an open file.

        Raises
        ------
        ValueError
            Not JSON, too large or too deeply nested, or not a well-formed result (the
            message names the problem).
        TypeError
            For a source of another type.
        """
        from ._serialize import parse_json

        return cls.from_dict(parse_json(source))

    def __getstate__(self) -> dict[str, Any]:
        # The loss, minimizer and criterion are pickled on their own, so that one that
        # cannot be restored where the result is loaded (a function of another process's
        # ``__main__``, a module not installed there) costs only itself, not the result.
        state = self.__dict__.copy()
        state["_known_hessian"] = None  # tied to this process's compiled functions
        for key in _RESTORABLE:
            obj = state.get(key)
            if obj is not None:
                state[key] = _Pickled.of(obj)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key in _RESTORABLE:
            if isinstance(state.get(key), _Pickled):
                state[key] = state[key].restore(key)
        self.__dict__.update(state)


_RESTORABLE = ("loss", "minimizer", "criterion")


@dataclass(frozen=True)
class _Pickled:
    """A part of a pickled :class:`FitResult` that may fail to load: its own pickle bytes
    (``None`` when it could not be pickled), what it is and why it failed."""

    data: bytes | None
    what: str
    reason: str = ""

    @classmethod
    def of(cls, obj: Any) -> _Pickled:
        func = getattr(obj, "func", None) or getattr(obj, "residuals_func", None) or obj
        module = getattr(func, "__module__", None) or type(func).__module__
        name = getattr(func, "__qualname__", None) or type(func).__qualname__
        what = f"{module}.{name}"
        try:
            return cls(pickle.dumps(obj), what)
        except Exception as exc:
            return cls(None, what, f"it could not be pickled: {type(exc).__name__}: {exc}")

    def restore(self, key: str) -> Any:
        reason = self.reason
        if self.data is not None:
            try:
                return pickle.loads(self.data)
            except Exception as exc:
                reason = f"it could not be unpickled here: {type(exc).__name__}: {exc}"
        if key == "criterion":  # holds the loss, whose warning says it all
            return None
        hint = (
            "; hesse(method='hesse_np'), errors() and chaining need it: pass the loss again, "
            "e.g. minimizer.minimize(loss, init=result)"
            if key == "loss"
            else ""
        )
        warnings.warn(
            f"FitResult loaded without its {key} ({self.what}): {reason}. The values, status, "
            f"covariance and errors are kept{hint}",
            UserWarning,
            stacklevel=4,
        )
        return None


class _LowerMinimum(Exception):
    pass


def _plain(obj: Any) -> Any:
    """Convert to JSON-able plain data (numpy scalars/arrays to Python numbers/lists)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)
