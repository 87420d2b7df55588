"""Figures of fits: profile likelihoods, confidence contours, fitted curves, minimizer paths.

Needs matplotlib (``pip install zfitlite[plot]``); it is imported only when a function
here is called, so ``import zfitlite`` (and ``import zfitlite.plot``) stay light.

Every function draws into the given matplotlib ``ax`` (or ``fig``), or a new figure
from :mod:`matplotlib.pyplot`, and returns the :class:`~matplotlib.figure.Figure`.
Scans over many profile fits show a progress bar where someone watches (see
:mod:`zfitlite._progress`; ``progress=False`` silences it).

Conventions: a profile is plotted as ``(F(t) - F_min) / errordef``, which is ``k**2`` at
``k`` sigma in one dimension (so 1 at the one-sigma errors). In two dimensions the
regions holding 68.3 % and 95.4 % (the one- and two-sigma probabilities) are
``(F - F_min) / errordef < 2.30`` and ``< 6.18`` (the chi-square quantiles with two
degrees of freedom); with ``errordef = 0.5`` (a negative log-likelihood) that is a rise
of the loss by ``0.5 * 2.30``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

__all__ = ["contour", "fit", "gallery", "path", "profile", "sigma_levels_2d"]

_S = "\N{GREEK SMALL LETTER SIGMA}"  # in labels
_INSTALL_HINT = "zfitlite.plot needs matplotlib: pip install zfitlite[plot]"


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return plt


def _figure_and_axes(ax: Any) -> tuple[Any, Any]:
    if ax is None:
        fig, ax = _pyplot().subplots()
        return fig, ax
    _pyplot()  # a clear message even when an ``ax`` came from elsewhere
    return ax.figure, ax


def sigma_levels_2d(sigmas: Sequence[float] = (1.0, 2.0)) -> np.ndarray:
    """The rise of ``(F - F_min) / errordef`` bounding a two-parameter region of ``k`` sigma.

    The region holds the probability of ``k`` sigma in one dimension
    (``chi2(1).cdf(k**2)``: 68.3 % for 1, 95.4 % for 2); its boundary is the chi-square
    quantile with two degrees of freedom.

    Parameters
    ----------
    sigmas : sequence of float
        Numbers of sigma.

    Returns
    -------
    numpy.ndarray
        One level per sigma (2.30 for 1, 6.18 for 2).

    Examples
    --------
    >>> sigma_levels_2d([1, 2]).round(2).tolist()
    [2.3, 6.18]
    """
    k = np.asarray(sigmas, dtype=np.float64)
    return scipy.stats.chi2(2).ppf(scipy.stats.chi2(1).cdf(k * k))


def _reference(result: Any, what: str) -> tuple[Any, Any, float]:
    """A profiler at the result's minimum and the loss value to measure rises from."""
    from ._profile import Profiler

    loss = result._require_loss(what)
    profiler = Profiler(loss, result.params_spec, result.x)
    f_ref = min(float(profiler.minimum()[0]), result.fmin)
    return loss, profiler, f_ref


def _hesse_sd(result: Any, i: int) -> float:
    try:
        var = float(result.covariance()[i, i])
    except Exception:  # no Hessian: no parabola, the caller gives a range
        return float("nan")
    return float(np.sqrt(var)) if np.isfinite(var) and var > 0 else float("nan")


def _scan_range(
    result: Any, i: int, center: float, width: float, bound: Sequence[float] | None
) -> tuple[float, float]:
    if bound is not None:
        lo, hi = (float(b) for b in bound)
    else:
        if not (np.isfinite(width) and width > 0):
            name = result.names[i]
            raise ValueError(
                f"no Hesse error for parameter '{name}' to choose the scan range from; give bound=(lo, hi)"
            )
        lo, hi = center - width, center + width
    spec = result.params_spec
    lo, hi = max(lo, float(spec.lower[i])), min(hi, float(spec.upper[i]))
    if not lo < hi:
        raise ValueError(f"empty scan range [{lo}, {hi}] for parameter '{result.names[i]}'")
    return lo, hi


def profile(
    result: Any,
    param: str | int,
    *,
    bound: Sequence[float] | None = None,
    sigma: float = 2.5,
    npoints: int = 41,
    hesse: bool = True,
    ax: Any = None,
    progress: bool | None = None,
) -> Any:
    """Plot the profile likelihood of one parameter, with the Hesse parabola.

    At each of ``npoints`` values ``t`` of the parameter the loss is minimised over the
    others; the curve is ``(F(t) - F_min) / errordef``, which crosses 1 at the one-sigma
    profile errors (and ``k**2`` at ``k`` sigma). Profile errors already computed with
    :meth:`FitResult.errors <zfitlite.FitResult.errors>` are marked.

    Parameters
    ----------
    result : FitResult
        A fit that still holds its loss.
    param : str or int
        The parameter, by name or index.
    bound : (float, float), optional
        The scan range (default: ``sigma`` Hesse errors each side, widened to show the
        profile errors, clipped to the parameter's bounds).
    sigma : float, default 2.5
        Half-width of the default range in Hesse errors.
    npoints : int, default 41
        Number of profile points.
    hesse : bool, default True
        Draw the Hesse parabola ``((t - x) / error)**2``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    progress : bool, optional
        A progress bar over the profile fits (default: automatic).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, zfitlite, zfitlite.plot
    >>> data = np.random.default_rng(1).normal(1.0, 2.0, 200)
    >>> def nll(p):
    ...     return np.sum(np.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2)
    >>> nll.errordef = 0.5
    >>> result = zfitlite.minimize.LevenbergMarquardt().minimize(
    ...     nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}})
    >>> errors, _ = result.errors()
    >>> fig = zfitlite.plot.profile(result, "sigma", progress=False)
    >>> fig.axes[0].get_xlabel()
    'sigma'
    """
    fig, ax = _figure_and_axes(ax)
    i = result._indices(param)[0]
    name = result.names[i]
    center = float(result.x[i])
    err = _hesse_sd(result, i)
    errs = result.params[name].get("errors")
    width = sigma * err
    if isinstance(errs, dict) and bound is None:
        width = max(width, 1.15 * max(-errs["lower"], errs["upper"]))
    lo, hi = _scan_range(result, i, center, width, bound)
    # symmetric grids put a point on the minimum
    t = np.linspace(lo, hi, int(npoints))
    _, profiler, f_ref = _reference(result, "plot.profile")
    f, _ = profiler.scan(i, t, progress)
    delta = (f - f_ref) / result.errordef

    ax.plot(t, delta, "-", color="C0", lw=2, label="profile")
    if hesse and np.isfinite(err):
        ax.plot(
            t, ((t - center) / err) ** 2, "--", color="C1", label=f"Hesse parabola (±{err:.3g})"
        )
    ax.axhline(1.0, color="0.4", ls=":", lw=1, label=f"1{_S}: Δ = 1")
    ax.plot([center], [0.0], "o", color="k", ms=4, label=f"minimum {center:.6g}")
    if isinstance(errs, dict):
        from .uncertainties import level

        k = level(errs.get("cl"), None)[0]
        if abs(k - 1.0) > 1e-9:
            ax.axhline(k * k, color="0.4", ls="-.", lw=1, label=f"{k:.3g}{_S}: Δ = {k * k:.3g}")
        ax.axvline(
            center + errs["lower"],
            color="C2",
            lw=1,
            label=f"profile errors {errs['lower']:+.3g} / {errs['upper']:+.3g}",
        )
        ax.axvline(center + errs["upper"], color="C2", lw=1)
    top = max(float(np.nanmax(delta)) if np.isfinite(delta).any() else 1.0, 1.0)
    ax.set_ylim(min(-0.05 * top, float(np.nanmin(delta))), 1.08 * top)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(name)
    ax.set_ylabel("Δ loss / errordef")
    ax.set_title(f"profile likelihood of {name}")
    ax.legend(fontsize="small", loc="upper center")
    return fig


def _ellipse(center: np.ndarray, cov: np.ndarray, level: float, n: int = 200) -> np.ndarray:
    """Points ``d`` with ``d^T cov^-1 d = level`` around ``center``: shape ``(n, 2)``."""
    L = np.linalg.cholesky(cov)
    u = np.linspace(0.0, 2.0 * np.pi, n)
    circle = np.stack([np.cos(u), np.sin(u)])
    return center + (np.sqrt(level) * (L @ circle)).T


def contour(
    result: Any,
    x: str | int,
    y: str | int,
    *,
    sigmas: Sequence[float] = (1.0, 2.0),
    npoints: int | tuple[int, int] = 25,
    bounds: Sequence[Sequence[float]] | None = None,
    hesse: bool = True,
    ax: Any = None,
    progress: bool | None = None,
) -> Any:
    """Plot two-parameter confidence regions from the profiled loss, with Hesse ellipses.

    On a grid of the two parameters the loss is minimised over all the others; the
    contours of ``(F - F_min) / errordef`` at :func:`sigma_levels_2d` (2.30 and 6.18 for
    one and two sigma) bound the regions holding 68.3 % and 95.4 %. The dashed ellipses
    are the same levels of the Hesse approximation ``d^T C^-1 d`` with ``C`` the
    covariance of the pair. (The contour set drawn is that of ``sqrt(delta)`` at the
    square roots of the levels: the same curves, interpolated more accurately.)

    Parameters
    ----------
    result : FitResult
        A fit that still holds its loss.
    x, y : str or int
        The two parameters (horizontal, vertical).
    sigmas : sequence of float, default (1, 2)
        Which regions to draw.
    npoints : int or (int, int), default 25
        Grid points along x and y (``nx * ny`` profile fits).
    bounds : ((float, float), (float, float)), optional
        The grid's ranges (default: 1.5 times the largest Hesse ellipse, clipped to
        the parameters' bounds).
    hesse : bool, default True
        Draw the Hesse ellipses.
    ax : matplotlib.axes.Axes, optional
    progress : bool, optional
        A progress bar over the grid (default: automatic).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, zfitlite, zfitlite.plot
    >>> data = np.random.default_rng(1).normal(1.0, 2.0, 200)
    >>> def nll(p):
    ...     return np.sum(np.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2)
    >>> nll.errordef = 0.5
    >>> result = zfitlite.minimize.LevenbergMarquardt().minimize(
    ...     nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}})
    >>> fig = zfitlite.plot.contour(result, "mu", "sigma", npoints=11, progress=False)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('mu', 'sigma')
    """
    fig, ax = _figure_and_axes(ax)
    i, j = result._indices([x, y])
    if i == j:
        raise ValueError(f"contour needs two different parameters, got '{result.names[i]}' twice")
    names = result.names[i], result.names[j]
    center = result.x[[i, j]]
    ks = np.sort(np.asarray(sigmas, dtype=np.float64))
    levels = sigma_levels_2d(ks)  # pyright: ignore[reportArgumentType]
    try:
        cov = result.covariance([i, j])
        cov_ok = bool(np.all(np.isfinite(cov))) and np.all(np.linalg.eigvalsh(cov) > 0)
    except Exception:
        cov, cov_ok = None, False
    nx, ny = (npoints, npoints) if np.isscalar(npoints) else npoints  # pyright: ignore[reportGeneralTypeIssues]
    ranges = []
    for a, k in enumerate((i, j)):
        half = 1.5 * np.sqrt(levels[-1] * cov[a, a]) if cov_ok else float("nan")  # pyright: ignore[reportOptionalSubscript]
        ranges.append(
            _scan_range(result, k, float(center[a]), half, None if bounds is None else bounds[a])
        )
    xv = np.linspace(*ranges[0], int(nx))  # pyright: ignore[reportArgumentType, reportCallIssue]
    yv = np.linspace(*ranges[1], int(ny))  # pyright: ignore[reportArgumentType, reportCallIssue]
    _, profiler, f_ref = _reference(result, "plot.contour")
    grid = profiler.scan2d(i, j, xv, yv, progress)
    delta = (grid - f_ref) / result.errordef

    colors = [f"C{n}" for n in range(len(ks))]
    # contour sqrt(delta): near a minimum it is close to a norm, which the grid's linear
    # interpolation follows far better than the quadratic delta itself
    ax.contour(
        xv,
        yv,
        np.sqrt(np.clip(delta, 0.0, None)),
        levels=np.sqrt(levels),
        colors=colors,
        linewidths=2,
    )
    for k, q, c in zip(ks, levels, colors):
        prob = scipy.stats.chi2(1).cdf(k * k)
        ax.plot([], [], color=c, lw=2, label=f"{k:g}{_S} profile ({100 * prob:.1f} %, Δ = {q:.2f})")
    if hesse and cov_ok:
        for k, q, c in zip(ks, levels, colors):
            pts = _ellipse(center, cov, q)  # pyright: ignore[reportArgumentType]
            ax.plot(pts[:, 0], pts[:, 1], "--", color=c, lw=1, label=f"{k:g}{_S} Hesse ellipse")
    ax.plot([center[0]], [center[1]], "k+", ms=10, label="minimum")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"{names[0]} and {names[1]}: confidence regions")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if fig.get_layout_engine() is None and len(fig.axes) == 1:
        fig.set_layout_engine("constrained")  # room for the legend on the right
    return fig


def fit(
    result: Any,
    *,
    loss: Any = None,
    npoints: int = 400,
    xlabel: str = "x",
    ylabel: str = "y",
    fig: Any = None,
) -> Any:
    """Plot a least-squares fit: data, fitted curve, and the pulls below.

    The lower panel shows the pulls ``(y - model(x, p)) / sigma`` of the observed points
    (missing ``y`` are left out), with a band at ±1.

    Parameters
    ----------
    result : FitResult
        A fit of a :meth:`LeastSquares.from_data <zfitlite.LeastSquares.from_data>` loss.
    loss : LeastSquares, optional
        The loss (default ``result.loss``); it must hold its data (``loss.data``).
    npoints : int, default 400
        Points of the drawn curve (for one-dimensional ``x``).
    xlabel, ylabel : str
        Axis labels.
    fig : matplotlib.figure.Figure, optional
        Where to draw the two stacked axes (default: a new figure).

    Returns
    -------
    matplotlib.figure.Figure
        With two axes: the fit (``fig.axes[0]``) and the pulls (``fig.axes[1]``).

    Examples
    --------
    >>> import numpy as np, zfitlite, zfitlite.plot
    >>> x = np.linspace(0, 1, 20)
    >>> y = 2 * x + 1 + np.random.default_rng(2).normal(0, 0.1, 20)
    >>> loss = zfitlite.LeastSquares.from_data(lambda x, p: p[0] * x + p[1], x, y, sigma=0.1)
    >>> result = zfitlite.minimize.LevenbergMarquardt().minimize(loss, {"a": 1.0, "b": 0.0})
    >>> fig = zfitlite.plot.fit(result)
    >>> fig.axes[1].get_ylabel()
    'pull'
    """
    plt = _pyplot()
    loss = result.loss if loss is None else loss
    data = getattr(loss, "data", None)
    if not isinstance(data, dict) or "model" not in data:
        raise TypeError(
            "plot.fit needs a least-squares loss built with LeastSquares.from_data(model, x, y, sigma) "
            "(it keeps the data); this result's loss has none"
        )
    model, xd, yd, sd, mask = (data[k] for k in ("model", "x", "y", "sigma", "mask"))
    p = result.x
    if fig is None:
        fig = plt.figure(figsize=(6.4, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    one_d = xd.ndim == 1
    xo = xd[mask] if one_d else np.flatnonzero(mask).astype(float)
    pred = np.asarray(model(xd[mask], p), dtype=np.float64)
    pulls = (yd[mask] - pred) / sd[mask]
    nmiss = int((~mask).sum())
    label = "data" + (f" ({nmiss} missing)" if nmiss else "")
    top.errorbar(xo, yd[mask], yerr=sd[mask], fmt="o", ms=4, color="k", capsize=2, label=label)
    if one_d:
        xf = np.linspace(float(xd.min()), float(xd.max()), int(npoints))
        curve = np.asarray(model(xf, p), dtype=np.float64)
        top.plot(xf, curve, "-", color="C0", lw=2, label="fit")
    else:
        top.plot(xo, pred, "s", color="C0", ms=4, label="fit")
    chi2 = float(np.sum(pulls**2))
    ndf = int(mask.sum()) - len(p)
    values = ", ".join(f"{n} = {v:.4g}" for n, v in zip(result.names, p))
    top.set_title(
        f"{getattr(loss, 'name', None) or 'least-squares fit'}: χ²/ndf = {chi2:.3g}/{ndf}"
    )
    top.set_ylabel(ylabel)
    top.legend(fontsize="small", title=values, title_fontsize="small")
    top.tick_params(labelbottom=False)
    bottom.axhspan(-1.0, 1.0, color="0.85", zorder=0)
    bottom.axhline(0.0, color="C0", lw=1)
    bottom.errorbar(xo, pulls, yerr=1.0, fmt="o", ms=4, color="k", capsize=2, label="pull")
    lim = max(3.0, 1.15 * float(np.max(np.abs(pulls) + 1.0)))
    bottom.set_ylim(-lim, lim)
    bottom.set_ylabel("pull")
    bottom.set_xlabel(xlabel if one_d else "observation")
    return fig


def path(
    minimizer: Any,
    loss: Any,
    params: Any = None,
    *,
    x: str | int = 0,
    y: str | int = 1,
    npoints: int = 80,
    bounds: Sequence[Sequence[float]] | None = None,
    background: bool = True,
    ax: Any = None,
) -> Any:
    """Run a minimizer and plot its path over the contours of a two-parameter loss.

    The iterations are recorded through the minimizer's callback (the user's own
    callback, if any, still runs); the path goes from the start point through every
    iteration to the result. With more than two parameters the others are held at the
    result's values for the contours.

    Parameters
    ----------
    minimizer : BaseMinimizer
        Any zfitlite minimizer (it is run once here).
    loss, params
        As for ``minimizer.minimize(loss, params)``.
    x, y : str or int, default 0 and 1
        The two parameters drawn.
    npoints : int, default 80
        Grid points per axis of the contours.
    bounds : ((float, float), (float, float)), optional
        Ranges of the plot (default: the path plus a margin).
    background : bool, default True
        Draw the loss contours (False to add another minimizer's path to an axes that
        has them).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The path is the axes' line labelled with the minimizer's name; its points are
        ``line.get_xydata()``.

    Examples
    --------
    >>> import zfitlite, zfitlite.plot
    >>> def rosen(p):
    ...     return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
    >>> rosen.errordef = 1.0
    >>> fig = zfitlite.plot.path(zfitlite.minimize.LevenbergMarquardt(), rosen, [-1.2, 1.0])
    >>> len(fig.axes[0].get_lines()) >= 1
    True
    """
    from .params import make_params
    from .to_loss import as_loss

    fig, ax = _figure_and_axes(ax)
    lossobj = as_loss(loss)
    p0 = make_params(params, lossobj)
    i, j = (list(p0.names).index(v) if isinstance(v, str) else int(v) for v in (x, y))
    if i == j:
        raise ValueError("path needs two different parameters")
    states: list[np.ndarray] = []
    user_callback = minimizer.callback

    def record(state: Any) -> None:
        states.append(np.array(state.x, dtype=np.float64))
        if user_callback is not None:
            user_callback(state)

    minimizer.callback = record
    try:
        result = minimizer.minimize(lossobj, p0)
    finally:
        minimizer.callback = user_callback
    pts = np.vstack([p0.values[None, :], *(s[None, :] for s in states), result.x[None, :]])
    px, py = pts[:, i], pts[:, j]
    if background:
        if bounds is None:
            span = [(float(v.min()), float(v.max())) for v in (px, py)]
            rng = []
            for lo, hi in span:
                pad = 0.15 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.5
                rng.append((lo - pad, hi + pad))
        else:
            rng = [tuple(map(float, b)) for b in bounds]
        gx = np.linspace(*rng[0], int(npoints))  # pyright: ignore[reportCallIssue]
        gy = np.linspace(*rng[1], int(npoints))  # pyright: ignore[reportCallIssue]
        compiled = lossobj.compiled(len(p0), p0.difference_scales())
        base = result.x.copy()
        z = np.empty((gy.size, gx.size))
        for r, yy in enumerate(gy):
            for c, xx in enumerate(gx):
                base[i], base[j] = xx, yy
                z[r, c] = float(compiled.value(base))
        finite = np.isfinite(z)
        zmin = min(float(z[finite].min()), result.fmin) if finite.any() else result.fmin
        dz = np.where(finite, z - zmin, np.nan)
        positive = dz[np.isfinite(dz) & (dz > 0)]
        if positive.size:
            lo = max(float(np.percentile(positive, 0.5)), float(positive.max()) * 1e-8)
            levels = np.geomspace(lo, float(positive.max()), 14)
            from matplotlib.colors import LogNorm

            norm = LogNorm(vmin=float(levels[0]), vmax=float(levels[-1]))
            cs = ax.contour(gx, gy, dz, levels=levels, cmap="viridis", norm=norm, linewidths=0.8)
            ax.plot([], [], color=cs.cmap(0.5), lw=0.8, label="loss - min, log-spaced levels")
    name = getattr(minimizer, "name", type(minimizer).__name__)
    line = ax.plot(
        px,
        py,
        "-o",
        ms=3,
        lw=1.2,
        label=f"{name}: {len(states)} iterations, {result.nfev} evaluations",
    )[0]
    ax.plot(px[:1], py[:1], "s", color=line.get_color(), ms=7)
    ax.plot(px[-1:], py[-1:], "*", color=line.get_color(), ms=12)
    ax.set_xlabel(p0.names[i])
    ax.set_ylabel(p0.names[j])
    title = f"minimizer path on {lossobj.name or 'the loss'}"
    if len(p0) > 2:
        title += " (other parameters at the result)"
    ax.set_title(title)
    ax.legend(fontsize="small")
    return fig


def gallery(directory: str | Path, progress: bool | None = False) -> list[Path]:
    """Make the example figures of the documentation as PNG files in ``directory``.

    Parameters
    ----------
    directory : str or pathlib.Path
        Created if missing.
    progress : bool, optional
        Progress bars of the scans (default off).

    Returns
    -------
    list of pathlib.Path
        ``plot_profile.png``, ``plot_contour.png``, ``plot_fit.png`` and ``plot_path.png``.
    """
    import zfitlite

    from .demo import least_squares_demo

    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    # a small Gaussian sample: sigma's profile is visibly asymmetric
    data = np.random.default_rng(11).normal(1.0, 2.0, 40)

    def nll(p: np.ndarray) -> float:
        return float(np.sum(np.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2))

    loss = zfitlite.SimpleLoss(nll, errordef=0.5, name="Gaussian NLL, 40 events")
    result = zfitlite.minimize.LevenbergMarquardt().minimize(
        loss, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}}
    )
    result.hesse()
    result.errors()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    profile(result, "mu", ax=axes[0], progress=progress)
    profile(result, "sigma", ax=axes[1], progress=progress)
    written.append(_save(fig, out / "plot_profile.png"))

    fig, ax = plt.subplots(figsize=(8.4, 4.8), layout="constrained")
    contour(result, "mu", "sigma", npoints=41, ax=ax, progress=progress)
    written.append(_save(fig, out / "plot_contour.png"))

    written.append(_save(fit(least_squares_demo(verbose=False)), out / "plot_fit.png"))

    def rosen(p: np.ndarray) -> float:
        return float((1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2)

    rosen.errordef = 1.0  # type: ignore[attr-defined]
    rloss = zfitlite.SimpleLoss(rosen, errordef=1.0, name="Rosenbrock")
    start = {"x": -1.2, "y": 1.0}
    fig, ax = plt.subplots(figsize=(7, 5.2))
    path(
        zfitlite.minimize.ScipyNelderMead(), rloss, start, ax=ax, bounds=((-1.6, 1.6), (-0.6, 1.8))
    )
    path(zfitlite.minimize.ScipyBFGS(), rloss, start, ax=ax, background=False)
    path(zfitlite.minimize.LevenbergMarquardt(), rloss, start, ax=ax, background=False)
    written.append(_save(fig, out / "plot_path.png"))
    return written


def _save(fig: Any, filename: Path) -> Path:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    # no metadata: the files stay the same from run to run
    fig.savefig(filename, dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return filename
