"""A clinical modeller's personalisation: a logistic disease-progression model per subject.

The model is leaspy's multivariate logistic model in small: each subject ``i`` has a
time shift ``tau_i`` (the age at which the disease reaches its reference stage), a
log-acceleration ``xi_i`` (the subject's pace: ``exp(xi_i)`` times the population's) and
``Q`` sources ``s_i`` (how the features deviate from the average ordering). Feature ``k``
at age ``t`` is

    y_k(t) = sigmoid( v_k * exp(xi_i) * (t - tau_i) + c_k + (A s_i)_k ),

with the population's speeds ``v``, offsets ``c`` and mixing matrix ``A`` known (as after
leaspy's ``fit``). Personalisation fits ``z_i = (tau_i, xi_i, s_i)`` to the subject's visits
with Gaussian priors on them, as leaspy's ``ScipyMinimize`` does (a Gaussian attachment
plus a Gaussian regularity term), here as a :class:`~zfitlite.loss.LeastSquares` with
:class:`~zfitlite.constraints.GaussianConstraint` priors: missing visits are NaN, follow-up
is ragged (1 to 10 visits), and all subjects are personalised in one batched, compiled
Levenberg-Marquardt solve (:func:`~zfitlite.minimize_batch`). A subset is fitted again
member by member with :class:`~zfitlite.minimize.ScipyMinimize` (leaspy's default, BFGS
with ``gtol=1e-2``) for comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import zfitlite
from zfitlite.constraints import GaussianConstraint

__all__ = ["Population", "personalisation_demo", "progression_data", "progression_loss"]


@dataclass(frozen=True)
class Population:
    """The population parameters of the logistic model (known: as after leaspy's fit)."""

    t0: float = 70.0  # mean time shift (years of age)
    tau_std: float = 5.0
    xi_std: float = 0.5
    speeds: tuple[float, ...] = (0.30, 0.20, 0.25, 0.15)  # per year
    offsets: tuple[float, ...] = (-0.5, 0.0, 0.5, 1.0)
    mixing: tuple[tuple[float, ...], ...] = ((0.6, 0.0), (0.0, 0.6), (-0.5, 0.3), (0.2, -0.5))
    noise: float = 0.05
    names: tuple[str, ...] = field(default=("tau", "xi", "s1", "s2"))

    @property
    def prior(self) -> GaussianConstraint:
        """The Gaussian priors of the individual parameters."""
        q = len(self.mixing[0])
        sigma = [self.tau_std, self.xi_std] + [1.0] * q
        return GaussianConstraint(list(self.names), [self.t0, 0.0] + [0.0] * q, sigma=sigma)


def _xp():
    from zfitlite.backends import jax_available

    if jax_available():
        import jax.numpy as jnp

        return jnp
    return np  # pragma: no cover - the demo installs jax


def progression_residuals(z: Any, t: Any, y: Any) -> Any:
    """``(y - model(t, z)) / noise`` for every visit and feature (NaN where missing)."""
    xp = _xp()
    pop = Population()
    v = np.asarray(pop.speeds)
    c = np.asarray(pop.offsets)
    A = np.asarray(pop.mixing)
    shift = A @ z[2:] if xp is np else xp.matmul(A, z[2:])
    psi = xp.exp(z[1]) * (t[:, None] - z[0])
    pred = 0.5 + 0.5 * xp.tanh(0.5 * (v * psi + c + shift))  # the sigmoid, overflow-free
    return xp.reshape((y - pred) / pop.noise, (-1,))


def progression_data(n: int, seed: int = 3, missing: float = 0.15) -> dict[str, Any]:
    """Synthetic subjects: true individual parameters, ragged visit ages and scores.

    Returns ``{"z": (n, 4) truth, "t": [ages per subject], "y": [(visits, 4) scores]}``;
    each subject has 1 to 10 yearly visits (with jitter) and ``missing`` of the scores NaN.
    """
    rng = np.random.default_rng(seed)
    pop = Population()
    q = len(pop.mixing[0])
    z = np.column_stack(
        [
            rng.normal(pop.t0, pop.tau_std, n),
            rng.normal(0.0, pop.xi_std, n),
            rng.normal(0.0, 1.0, (n, q)),
        ]
    )
    ts, ys = [], []
    for i in range(n):
        visits = int(rng.integers(1, 11))
        t = z[i, 0] + rng.uniform(-8.0, 4.0) + np.arange(visits) + rng.uniform(-0.2, 0.2, visits)
        clean = -np.asarray(progression_residuals(z[i], t, np.zeros((visits, 4)))).reshape(
            visits, 4
        )
        y = clean * pop.noise + rng.normal(0.0, pop.noise, (visits, 4))
        y[rng.random((visits, 4)) < missing] = np.nan
        ts.append(t)
        ys.append(y)
    return {"z": z, "t": ts, "y": ys}


def progression_loss() -> zfitlite.LeastSquares:
    """The personalisation loss: the attachment residuals plus the Gaussian priors."""
    pop = Population()
    return zfitlite.LeastSquares(
        progression_residuals,
        params=dict(zip(pop.names, pop.prior.observation.tolist())),
        constraints=pop.prior,
    )


@dataclass
class PersonalisationSummary:
    """What the demo measured."""

    n_subjects: int
    n_valid: int
    batch_seconds: float
    per_subject_ms: float
    pulls_mean: np.ndarray
    pulls_std: np.ndarray
    n_compare: int
    scipy_seconds: float
    max_objective_gap: float  # max over the subset of (LM - ScipyMinimize) in chi2 units
    max_shift_in_sigma: float  # max |x_LM - x_scipy| / Hesse error over the subset
    batch: Any = None


def personalisation_demo(
    verbose: bool = True, n_subjects: int = 2000, n_compare: int = 10, seed: int = 3
) -> PersonalisationSummary:
    """Personalise ``n_subjects`` in one batch; ``n_compare`` of them again with ScipyMinimize."""
    pop = Population()
    data = progression_data(n_subjects, seed=seed)
    loss = progression_loss()
    x0 = pop.prior.observation  # the prior means, as leaspy starts
    start = time.perf_counter()
    result = zfitlite.minimize_batch(
        zfitlite.minimize.LevenbergMarquardt(tol=1e-6),
        loss,
        x0,
        args=[data["t"], data["y"]],  # ragged: padded (NaN, masked) by minimize_batch
        ids=[f"patient-{i:04d}" for i in range(n_subjects)],
        progress=False,
    )
    elapsed = time.perf_counter() - start
    errors = result.hesse_errors
    pulls = (result.x - data["z"]) / errors
    # the same fits, member by member, with leaspy's default (BFGS, gtol 1e-2)
    k = min(n_compare, n_subjects)
    scipy_start = time.perf_counter()
    each = zfitlite.minimize_batch(
        zfitlite.minimize.ScipyMinimize(),
        loss,
        x0,
        args=[data["t"][:k], data["y"][:k]],
        ids=result.ids[:k],
        vectorize=False,
        progress=False,
    )
    scipy_seconds = time.perf_counter() - scipy_start
    gap = float(np.max(result.fmin[:k] - each.fmin))
    shift = float(np.max(np.abs(result.x[:k] - each.x) / errors[:k]))
    summary = PersonalisationSummary(
        n_subjects=n_subjects,
        n_valid=int(result.valid.sum()),
        batch_seconds=elapsed,
        per_subject_ms=1e3 * elapsed / n_subjects,
        pulls_mean=pulls.mean(axis=0),
        pulls_std=pulls.std(axis=0),
        n_compare=k,
        scipy_seconds=scipy_seconds,
        max_objective_gap=gap,
        max_shift_in_sigma=shift,
        batch=result,
    )
    if verbose:
        visits = np.array([t.size for t in data["t"]])
        print("=" * 78)
        print(
            f"4) Disease progression: logistic model, {len(pop.names)} individual parameters "
            f"(time shift, acceleration, {len(pop.names) - 2} sources) with Gaussian priors,"
        )
        print(
            f"   {n_subjects} subjects, {visits.min()} to {visits.max()} visits each, "
            f"{np.mean([np.isnan(y).mean() for y in data['y']]):.0%} of scores missing"
        )
        print(
            f"   batched Levenberg-Marquardt: {summary.n_valid} of {n_subjects} valid in "
            f"{elapsed:.2f} s ({summary.per_subject_ms:.2f} ms per subject, with compilation)"
        )
        print(
            f"   pulls (fit - truth) / error: mean {np.round(summary.pulls_mean, 2).tolist()}, "
            f"std {np.round(summary.pulls_std, 2).tolist()}"
        )
        print(
            f"   {result.ids[0]}: tau = {result.x[0, 0]:.2f} +- {errors[0, 0]:.2f}, "
            f"xi = {result.x[0, 1]:.2f} +- {errors[0, 1]:.2f}"
        )
        print(
            f"   ScipyMinimize member by member on {k} subjects: {scipy_seconds:.2f} s "
            f"({1e3 * scipy_seconds / k:.0f} ms per subject); objective LM - scipy <= "
            f"{gap:.2g}, parameters within {shift:.2g} sigma"
        )
    return summary
