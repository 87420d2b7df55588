"""Gaussian constraints (priors) on parameters, with zfit's ``GaussianConstraint`` semantics.

A constraint with mean ``mu`` and covariance ``C`` (from ``sigma``, a diagonal, or a full
``cov`` for correlated parameters) is the Gaussian negative log-likelihood
``0.5 * (x - mu)^T C^-1 (x - mu)`` (up to a constant), as zfit adds it to an NLL
(errordef 0.5). zfitlite adds it to any loss in that loss's own units:
``errordef * (x - mu)^T C^-1 (x - mu)``, i.e. ``+0.5 * chi2_c`` to an NLL and
``+chi2_c`` to a chi-square, so that one unit of ``errordef`` is one sigma of the prior.

On a :class:`~zfitlite.loss.LeastSquares` the constraint becomes extra residuals
``sqrt(errordef) * L^-1 (x - mu)`` with ``C = L L^T`` (its Cholesky factor, taken once):
the sum of squares gains exactly the term above, and Levenberg-Marquardt, the batch and
``ScipyLeastSquares`` keep their Gauss-Newton structure. Hesse and profile errors of a
fit include the constraints, since they are part of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["GaussianConstraint", "combine_constraints"]


class GaussianConstraint:
    """A Gaussian constraint (prior) on some parameters.

    Parameters
    ----------
    params : str, int, or sequence of them
        The constrained parameters, by name (needs a loss with ``params``) or by position.
    observation : float or array_like
        The means ``mu`` (zfit calls them observations), one per parameter.
    uncertainty : float or array_like, optional
        zfit's argument: 1-D (or scalar) standard deviations, or a 2-D covariance matrix.
    sigma : float or array_like, optional
        Standard deviations (uncorrelated).
    cov : array_like, optional
        Covariance matrix (correlated parameters); must be symmetric positive definite.

    Examples
    --------
    >>> c = GaussianConstraint(["a", "b"], [1.0, 2.0], cov=[[1.0, 0.5], [0.5, 2.0]])
    >>> round(c.value([1.0, 2.0]), 12), round(c.value([2.0, 2.0]), 6)
    (0.0, 0.571429)
    """

    def __init__(
        self,
        params: Any,
        observation: Any,
        uncertainty: Any = None,
        *,
        sigma: Any = None,
        cov: Any = None,
    ) -> None:
        if isinstance(params, (str, int, np.integer)):
            params = [params]
        self.params = list(params)
        k = len(self.params)
        if k == 0:
            raise ValueError("GaussianConstraint needs at least one parameter")
        self.observation = np.broadcast_to(np.asarray(observation, dtype=np.float64), (k,)).copy()
        given = [v is not None for v in (uncertainty, sigma, cov)]
        if sum(given) != 1:
            raise ValueError("GaussianConstraint needs exactly one of uncertainty, sigma or cov")
        if uncertainty is not None:
            u = np.asarray(uncertainty, dtype=np.float64)
            if u.ndim == 2:
                cov = u
            else:
                sigma = u
        if cov is None:
            s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (k,))
            if not np.all(np.isfinite(s) & (s > 0)):
                raise ValueError(f"GaussianConstraint: sigma must be finite and > 0, got {s}")
            cov = np.diag(s**2)
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (k, k):
            raise ValueError(f"GaussianConstraint: cov must have shape {(k, k)}, got {cov.shape}")
        if not np.allclose(cov, cov.T, rtol=1e-12, atol=0.0):
            raise ValueError("GaussianConstraint: cov must be symmetric")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("GaussianConstraint: cov must be positive definite") from None
        self.cov = cov
        #: The whitening matrix ``L^-1`` (``C = L L^T``).
        self.whitening = np.linalg.solve(chol, np.eye(k))

    @property
    def sigma(self) -> np.ndarray:
        """The standard deviations (square roots of the covariance's diagonal)."""
        return np.sqrt(np.diag(self.cov))

    def residuals(self, values: Any) -> np.ndarray:
        """The whitened residuals ``L^-1 (values - mu)`` at the constrained parameters' values."""
        return self.whitening @ (np.asarray(values, dtype=np.float64) - self.observation)

    def value(self, values: Any) -> float:
        """zfit's value: ``0.5 * (values - mu)^T C^-1 (values - mu)`` (an NLL, no constant)."""
        w = self.residuals(values)
        return 0.5 * float(w @ w)

    def sample(self, n: int, rng: Any = None) -> np.ndarray:
        """``(n, k)`` draws from the prior (e.g. start values of a batch)."""
        rng = np.random.default_rng(rng)
        return rng.multivariate_normal(self.observation, self.cov, size=n)

    def __repr__(self) -> str:
        return f"<GaussianConstraint params={self.params} mu={self.observation.tolist()}>"


def _index(p: Any, names: Sequence[str] | None, n: int | None) -> int:
    if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
        i = int(p)
        if n is not None and not -n <= i < n:
            raise IndexError(f"constraint on parameter {i}: the loss has {n} parameters")
        return i % n if n is not None else i
    name = getattr(p, "name", p)
    if names is None:
        raise ValueError(
            f"a constraint names parameter {name!r} but the loss has no params: give the "
            "loss params=[...] or constrain parameters by position (integers)"
        )
    if name not in names:
        raise ValueError(f"constraint on unknown parameter {name!r}; the loss has {list(names)}")
    return list(names).index(name)  # pyright: ignore[reportArgumentType]


def combine_constraints(
    constraints: Any, names: Sequence[str] | None = None, n: int | None = None
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """``(indices, mu, W)`` of several constraints: ``W`` block-diagonal whitening.

    The constraint residuals are ``W @ (x[indices] - mu)``.
    """
    if isinstance(constraints, GaussianConstraint):
        constraints = [constraints]
    constraints = list(constraints)
    for c in constraints:
        if not isinstance(c, GaussianConstraint):
            raise TypeError(
                f"constraints must be GaussianConstraint objects, got {type(c).__name__}"
            )
    idx = tuple(_index(p, names, n) for c in constraints for p in c.params)
    mu = np.concatenate([c.observation for c in constraints]) if constraints else np.zeros(0)
    k = len(idx)
    W = np.zeros((k, k))
    at = 0
    for c in constraints:
        kc = len(c.params)
        W[at : at + kc, at : at + kc] = c.whitening
        at += kc
    return idx, mu, W
