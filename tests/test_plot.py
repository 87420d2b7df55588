"""zfitlite.plot: each figure renders, is labelled, and draws the right numbers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import zfitlite  # noqa: E402
from zfitlite import plot  # noqa: E402
from zfitlite.minimize import LevenbergMarquardt  # noqa: E402

MEAN = np.array([1.0, 2.0, 3.0])
COV = np.array([[1.0, 0.6, 0.2], [0.6, 2.0, -0.3], [0.2, -0.3, 0.5]])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save(fig, path):
    fig.savefig(path)
    assert path.exists() and path.stat().st_size > 10_000
    return path


@pytest.fixture(scope="module")
def gaussian_result():
    """A correlated three-dimensional Gaussian NLL: its profiles are exact parabolas."""
    inv = np.linalg.inv(COV)

    def nll(p):
        d = np.asarray(p) - MEAN
        return 0.5 * d @ inv @ d

    loss = zfitlite.SimpleLoss(nll, errordef=0.5, name="gauss3")
    result = LevenbergMarquardt(tol=1e-8).minimize(loss, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert result.valid
    return result


def _crossings(t, d, level=1.0):
    """Where the piecewise-linear curve ``d(t)`` crosses ``level``, left and right of its minimum."""
    k = int(np.argmin(d))
    left = np.interp(level, d[: k + 1][::-1], t[: k + 1][::-1])
    right = np.interp(level, d[k:], t[k:])
    return left, right


def _line(ax, label):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    return lines[0]


def test_import_zfitlite_does_not_import_matplotlib():
    code = (
        "import sys, zfitlite, zfitlite.plot; "
        "print('matplotlib' in sys.modules, callable(zfitlite.plot.profile))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install zfitlite\[plot\]"):
        plot.profile(object(), "a")


def test_profile_of_a_gaussian_crosses_one_at_the_hesse_errors(gaussian_result, tmp_path):
    r = gaussian_result
    r.errors(params="b")
    fig = plot.profile(r, "b", npoints=41, progress=False)
    _save(fig, tmp_path / "profile.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "b" and "b" in ax.get_title()
    assert ax.get_ylabel() == "Δ loss / errordef"
    t, d = _line(ax, "profile").get_data()
    err = np.sqrt(COV[1, 1])
    # the profile of a Gaussian is the Hesse parabola everywhere
    np.testing.assert_allclose(d, ((t - MEAN[1]) / err) ** 2, atol=1e-6)
    lo, hi = _crossings(t, d)
    assert abs(lo - (MEAN[1] - err)) < 1e-3 * err
    assert abs(hi - (MEAN[1] + err)) < 1e-3 * err
    # the default range is 2.5 Hesse errors each side
    np.testing.assert_allclose([t[0], t[-1]], MEAN[1] + np.array([-2.5, 2.5]) * err, rtol=1e-6)
    # the profile errors are marked where they are
    marks = [ln for ln in ax.get_lines() if ln.get_label().startswith("profile errors")]
    assert len(marks) == 1
    np.testing.assert_allclose(marks[0].get_xdata()[0], MEAN[1] - err, atol=1e-6)


def test_profile_of_a_skewed_likelihood_crosses_one_at_the_profile_errors(tmp_path):
    data = np.random.default_rng(11).normal(1.0, 2.0, 40)

    def nll(p):
        return np.sum(np.log(p[1]) + 0.5 * ((data - p[0]) / p[1]) ** 2)

    nll.errordef = 0.5
    r = LevenbergMarquardt(tol=1e-8).minimize(
        nll, {"mu": 0.0, "sigma": {"value": 1.0, "lower": 0.1}}
    )
    errors, new = r.errors(params="sigma")
    assert new is None
    fig = plot.profile(r, "sigma", npoints=81, progress=False)
    _save(fig, tmp_path / "profile_sigma.png")
    t, d = _line(fig.axes[0], "profile").get_data()
    lo, hi = _crossings(t, d)
    x = r.values["sigma"]
    e = errors["sigma"]
    assert e["upper"] > -e["lower"] * 1.1  # visibly asymmetric
    assert abs(lo - (x + e["lower"])) < 2e-3 * e["upper"]
    assert abs(hi - (x + e["upper"])) < 2e-3 * e["upper"]
    # the Hesse parabola is drawn too, and differs from the profile here
    _, dp = _line(
        fig.axes[0],
        next(
            ln.get_label() for ln in fig.axes[0].get_lines() if ln.get_label().startswith("Hesse")
        ),
    ).get_data()
    assert np.max(np.abs(dp - d)) > 0.5


def _linear_chi2():
    x = np.linspace(-1.0, 1.0, 15)
    sigma = 0.2
    y = 1.0 + 0.5 * x - 0.8 * x**2 + np.random.default_rng(3).normal(0, sigma, x.size)

    def model(x, p):
        return p[0] + p[1] * x + p[2] * x**2

    loss = zfitlite.LeastSquares.from_data(model, x, y, sigma=sigma, name="quadratic")
    A = np.stack([np.ones_like(x), x, x**2], axis=1) / sigma
    cov = np.linalg.inv(A.T @ A)  # chi-square: errordef 1
    return loss, model, x, y, sigma, cov


def _segments(ax, level_index):
    cs = ax.collections[0]
    return np.vstack(cs.allsegs[level_index])


def test_contour_of_a_linear_chi2_is_the_analytic_ellipse(tmp_path):
    loss, _, _, _, _, cov = _linear_chi2()
    r = LevenbergMarquardt(tol=1e-10).minimize(loss, {"a": 0.0, "b": 0.0, "c": 0.0})
    fig = plot.contour(r, "a", "c", npoints=21, progress=False)
    _save(fig, tmp_path / "contour.png")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "c")
    assert "a" in ax.get_title() and "c" in ax.get_title()
    np.testing.assert_allclose(ax.collections[0].levels ** 2, [2.2957, 6.1801], atol=1e-4)
    sub = cov[np.ix_([0, 2], [0, 2])]
    center = r.x[[0, 2]]
    for n, q in enumerate((2.2957, 6.1801)):
        pts = _segments(ax, n) - center
        # every point of the drawn contour lies on the ellipse d^T C^-1 d = q ...
        m = np.einsum("ij,jk,ik->i", pts, np.linalg.inv(sub), pts)
        np.testing.assert_allclose(m, q, rtol=0.03)  # the grid's interpolation
        # ... and the contour reaches the ellipse's extent along each axis
        np.testing.assert_allclose(np.abs(pts).max(axis=0), np.sqrt(q * np.diag(sub)), rtol=0.01)


def test_contour_levels_scale_with_errordef():
    """A chi-square (errordef 1) and half of it as an NLL (errordef 0.5) give one region."""
    loss = _linear_chi2()[0]
    value = loss.value

    half = zfitlite.SimpleLoss(lambda p: 0.5 * value(p), errordef=0.5, backend="numpy")
    start = {"a": 0.0, "b": 0.0, "c": 0.0}
    r1 = LevenbergMarquardt(tol=1e-10).minimize(loss, start)
    r2 = LevenbergMarquardt(tol=1e-10).minimize(half, start)
    f1 = plot.contour(r1, "a", "b", npoints=9, progress=False)
    f2 = plot.contour(r2, "a", "b", npoints=9, progress=False)
    s1, s2 = _segments(f1.axes[0], 0), _segments(f2.axes[0], 0)
    assert s1.shape == s2.shape
    np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_fit_shows_data_curve_and_pulls(tmp_path):
    loss, model, x, y, sigma, _ = _linear_chi2()
    y = y.copy()
    y[4] = np.nan
    loss = zfitlite.LeastSquares.from_data(model, x, y, sigma=sigma, name="quadratic")
    r = LevenbergMarquardt(tol=1e-10).minimize(loss, {"a": 0.0, "b": 0.0, "c": 0.0})
    fig = plot.fit(r, xlabel="dose", ylabel="response")
    _save(fig, tmp_path / "fit.png")
    top, bottom = fig.axes
    assert top.get_ylabel() == "response" and bottom.get_xlabel() == "dose"
    assert bottom.get_ylabel() == "pull"
    observed = np.isfinite(y)
    pulls_drawn = bottom.containers[0].lines[0].get_ydata()
    expected = (y[observed] - model(x[observed], r.x)) / sigma
    np.testing.assert_allclose(pulls_drawn, expected, rtol=1e-12)
    np.testing.assert_allclose(np.sum(expected**2), r.fmin, rtol=1e-9)
    xc, yc = _line(top, "fit").get_data()
    np.testing.assert_allclose(yc, model(xc, r.x))
    assert any("1 missing" in t.get_text() for t in top.get_legend().get_texts())
    with pytest.raises(TypeError, match="from_data"):
        plot.fit(r, loss=zfitlite.SimpleLoss(lambda p: p[0] ** 2, errordef=1.0))


def test_path_draws_every_iteration_over_the_loss(tmp_path):
    def rosen(p):
        return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2

    rosen.errordef = 1.0
    seen = []
    m = LevenbergMarquardt(callback=lambda s: seen.append(s.iteration))
    fig = plot.path(m, rosen, {"x": -1.2, "y": 1.0})
    _save(fig, tmp_path / "path.png")
    assert m.callback is not None and m.callback.__name__ == "<lambda>"  # restored
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "y")
    label = next(ln.get_label() for ln in ax.get_lines() if ln.get_label().startswith(m.name))
    pts = _line(ax, label).get_xydata()
    assert len(seen) > 5 and pts.shape == (len(seen) + 2, 2)
    np.testing.assert_allclose(pts[0], [-1.2, 1.0])
    assert rosen(pts[-1]) < 1e-3 < rosen(pts[0])  # ends at the result, near (1, 1)
    np.testing.assert_allclose(pts[-1], [1.0, 1.0], atol=0.05)
    assert ax.collections, "the loss contours"
