"""A block-sparse least-squares problem for tests and benchmarks of the sparse path."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

__all__ = ["peaks_problem"]


def peaks_problem(n_params: int, seed: int = 3) -> dict[str, Any]:
    """Independent Gaussian peaks (amplitude, centre, width) on a shared linear background,
    15 points per peak (m = 5 n - 10): residuals, the sparse analytic Jacobian, its pattern
    and a start near the truth (amplitudes and widths 10 % off, centres 0.2 off, the
    background off; the centres sit at 0, 10, 20, ... so a *relative* perturbation, as in
    the first version of this benchmark, moved far peaks off their data and made the
    problem degenerate)."""
    k = (n_params - 2) // 3
    n = 3 * k + 2
    per = 15
    rng = np.random.default_rng(seed)
    centres = np.arange(k) * 10.0
    t = (centres[:, None] + np.linspace(-3.0, 3.0, per)[None, :]).ravel()
    which = np.repeat(np.arange(k), per)
    truth = np.concatenate(
        [np.stack([np.full(k, 5.0), centres, np.full(k, 1.0)], 1).ravel(), [0.3, 0.01]]
    )
    rows = np.tile(np.arange(t.size), 5)
    cols = np.concatenate(
        [3 * which, 3 * which + 1, 3 * which + 2, np.full(t.size, n - 2), np.full(t.size, n - 1)]
    )

    def model(p: np.ndarray) -> np.ndarray:
        pk = p[:-2].reshape(k, 3)
        a, c, w = pk[which, 0], pk[which, 1], pk[which, 2]
        return a * np.exp(-0.5 * ((t - c) / w) ** 2) + p[-2] + p[-1] * t

    y = model(truth) + 0.05 * rng.normal(size=t.size)

    def residuals(p: np.ndarray) -> np.ndarray:
        return (y - model(p)) / 0.05

    def jac(p: np.ndarray) -> Any:
        pk = p[:-2].reshape(k, 3)
        a, c, w = pk[which, 0], pk[which, 1], pk[which, 2]
        z = (t - c) / w
        e = np.exp(-0.5 * z * z)
        v = np.concatenate([e, a * e * z / w, a * e * z * z / w, np.ones(t.size), t]) / -0.05
        return scipy.sparse.csr_matrix((v, (rows, cols)), shape=(t.size, n))

    pattern = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(t.size, n))
    x0 = truth.copy()
    x0[0:-2:3] *= 1.0 + 0.1 * rng.normal(size=k)
    x0[1:-2:3] += 0.2 * rng.normal(size=k)
    x0[2:-2:3] *= 1.0 + 0.1 * rng.normal(size=k)
    x0[-2:] = [0.2, 0.0]
    return {"residuals": residuals, "jac": jac, "pattern": pattern, "x0": x0, "n": n, "m": t.size}
