"""Uncertainties: Hesse covariance and profile-likelihood intervals.

Conventions (shared with zfit and iminuit):

* covariance = ``2 * errordef * H^-1`` with ``H`` the Hessian of the loss at the minimum;
* an interval at ``sigma=k`` is where the profiled loss rises by ``errordef * k**2``,
  i.e. confidence level ``chi2(1).cdf(k**2)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

from ._progress import make_bar

__all__ = ["covariance_from_hessian", "level", "profile_interval"]


def level(cl: float | None, sigma: float | None) -> tuple[float, float]:
    """Return ``(k, cl)``: the number of sigmas and the confidence level, from either one.

    Raises
    ------
    ValueError
        For a ``cl`` outside (0, 1) or a non-positive ``sigma``.
    """
    if cl is not None:
        if not 0 < cl < 1:
            raise ValueError(f"cl must be a confidence level strictly between 0 and 1, got {cl}")
        # sqrt of chi2(1)'s quantile, in closed form (scipy.stats costs 0.3 s to import)
        return float(np.sqrt(2.0) * scipy.special.erfinv(cl)), float(cl)
    k = 1.0 if sigma is None else float(sigma)
    if not (np.isfinite(k) and k > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    return k, float(scipy.special.erf(k / np.sqrt(2.0)))  # chi2(1).cdf(k * k)


def covariance_from_hessian(hessian: np.ndarray, errordef: float) -> tuple[np.ndarray, bool]:
    """``2 * errordef * H^-1``, and whether ``H`` was positive definite.

    A Hessian that is not positive definite gives NaN on the diagonal entries that come
    out non-positive, rather than a silently wrong error.
    """
    H = 0.5 * (np.asarray(hessian, dtype=np.float64) + np.asarray(hessian, dtype=np.float64).T)
    try:
        c = scipy.linalg.cho_factor(H)
        inv = scipy.linalg.cho_solve(c, np.eye(H.shape[0]))
        posdef = True
    except (np.linalg.LinAlgError, ValueError):
        inv = np.linalg.pinv(H)
        posdef = False
    cov = 2.0 * errordef * inv
    if not posdef:
        bad = np.diag(cov) <= 0
        cov[bad, :] = np.nan
        cov[:, bad] = np.nan
    return 0.5 * (cov + cov.T), posdef


def profile_interval(
    profile: Callable[[int, float], tuple[float, np.ndarray]],
    i: int,
    x0: np.ndarray,
    fmin: float,
    delta: float,
    guess: float,
    lower: float,
    upper: float,
    rtol: float = 1e-10,
    on_lower_minimum: Callable[[float, np.ndarray], None] | None = None,
    progress: bool | None = None,
    name: str | None = None,
) -> tuple[float, float, dict[str, Any]]:
    """Find where the profiled loss of parameter ``i`` rises by ``delta`` on both sides.

    Parameters
    ----------
    profile : callable
        ``profile(i, t) -> (f, x)``: the loss minimised over the other parameters with
        parameter ``i`` fixed at ``t``, and the full parameter vector there.
    i : int
    x0 : numpy.ndarray
        The minimum.
    fmin : float
        The loss at the minimum.
    delta : float
        ``errordef * k**2``.
    guess : float
        A first guess of the distance (the Hesse error times ``k``).
    lower, upper : float
        The parameter's bounds: a side that does not reach ``delta`` before the bound
        reports the distance to the bound and flags it.
    rtol : float
        Relative tolerance of the root.
    on_lower_minimum : callable, optional
        Called with ``(f, x)`` when the scan finds a loss below ``fmin``.
    progress : bool, optional
        A bar counting the profile fits (None: automatic, see :mod:`zfitlite._progress`).
    name : str, optional
        The parameter's name, for the bar (default: taken from ``profile``'s owner, a
        :class:`~zfitlite._profile.Profiler`, else the index).

    Returns
    -------
    lower_error : float
        Negative (distance to the lower crossing).
    upper_error : float
        Positive.
    info : dict
        ``{"at_limit": {"lower": bool, "upper": bool}, "nprofile": int}``.
    """
    center = float(x0[i])
    guess = float(guess) if np.isfinite(guess) and guess > 0 else max(abs(center) * 0.1, 1e-3)
    nprofile = 0
    at_limit = {"lower": False, "upper": False}

    if name is None:
        owner = getattr(profile, "__self__", None)
        names = getattr(getattr(owner, "params", None), "names", None)
        name = str(names[i]) if names is not None else f"#{i}"
    bar = make_bar(progress, desc=f"errors {name}", unit="fit")

    def g(t: float) -> float:
        nonlocal nprofile
        nprofile += 1
        bar.update(1)
        f, x = profile(i, t)
        if f < fmin and on_lower_minimum is not None:
            on_lower_minimum(f, x)
        return f - fmin - delta

    try:
        result = _both_sides(g, center, guess, lower, upper, rtol, delta, i, at_limit)
    finally:
        bar.close()
    return float(result[-1]), float(result[1]), {"at_limit": at_limit, "nprofile": nprofile}


def _both_sides(
    g: Callable[[float], float],
    center: float,
    guess: float,
    lower: float,
    upper: float,
    rtol: float,
    delta: float,
    i: int,
    at_limit: dict[str, bool],
) -> dict[int, float]:
    """Bracket and solve ``g(t) = 0`` below and above ``center``: ``{-1: dlow, 1: dup}``."""
    result = {}
    for side, bound in ((-1, lower), (1, upper)):
        a = center
        b = center + side * guess
        if side * (b - bound) > 0:
            b = bound
        gb = g(b)
        expand = 0
        while gb < 0:
            if b == bound:
                break
            a = b
            b = center + side * 2.0 * abs(b - center)
            if side * (b - bound) > 0:
                b = bound
            gb = g(b)
            expand += 1
            if expand > 60:
                raise RuntimeError(
                    f"profile of parameter {i} did not rise by {delta} within 2**60 guesses"
                )
        if gb < 0:
            at_limit["lower" if side < 0 else "upper"] = True
            result[side] = b - center
            continue
        root = scipy.optimize.brentq(
            g, min(a, b), max(a, b), xtol=rtol * guess, rtol=4 * np.finfo(float).eps, maxiter=200
        )
        result[side] = root - center  # pyright: ignore[reportOperatorIssue]
    return result
