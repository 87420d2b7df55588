"""Text and HTML tables for FitResult and BatchFitResult.

Deterministic: no timings or memory addresses in a FitResult's table, so golden files
(tests/golden/) hold. What a reader needs first comes first: valid or not (and why not),
the EDM against its goal, the minimum, the work done, then one row per parameter with
its value, Hesse error, profile errors (a column only once computed) and whether it sits
at a bound.
"""

from __future__ import annotations

import html as _html
from typing import Any

import numpy as np

__all__ = ["batch_html", "batch_text", "html", "text"]

_ONE_SIGMA_CL = 0.6826894921370859


def _num(v: Any, fmt: str = ".6g") -> str:
    if v is None:
        return ""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if np.isnan(v):
        return "nan"
    return format(v, fmt)


def _cl_text(cl: Any) -> str:
    """``1 sigma (cl 0.683)`` for a confidence level."""
    try:
        cl = float(cl)
    except (TypeError, ValueError):
        return "?"
    from .uncertainties import level

    k = level(cl, None)[0] if 0 < cl < 1 else float("nan")
    return f"{k:.3g} sigma (cl {cl:.3g})"


def _limit_side(p: dict[str, Any]) -> str:
    """``"AT LOWER"``/``"AT UPPER"`` for a parameter on a bound, else ``""``."""
    if not p.get("at_limit"):
        return ""
    value, lo, hi = p["value"], p["lower"], p["upper"]
    if np.isfinite(lo) and np.isfinite(hi):
        return "AT LOWER" if abs(value - lo) <= abs(value - hi) else "AT UPPER"
    return "AT LOWER" if np.isfinite(lo) else "AT UPPER"


def _rows(result: Any) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and footnotes of the parameter table."""
    params = result.params
    has_hesse = any(isinstance(p.get("hesse"), dict) for p in params.values())
    has_errors = any(isinstance(p.get("errors"), dict) for p in params.values())
    has_bounds = any(np.isfinite(p["lower"]) or np.isfinite(p["upper"]) for p in params.values())
    header = ["name", "value"]
    if has_hesse:
        header.append("hesse error")
    if has_errors:
        header += ["profile lower", "profile upper"]
    if has_bounds:
        header += ["bounds", "at limit"]
    rows = []
    notes: list[str] = []
    hesse_cls: dict[float, float] = {}
    error_cls: dict[float, float] = {}
    error_bound = False
    for name, p in params.items():
        row = [name, _num(p["value"], ".8g")]
        if has_hesse:
            h = p.get("hesse") if isinstance(p.get("hesse"), dict) else {}
            row.append(_num(h.get("error"), ".3g"))
            if h:
                cl = float(h.get("cl", _ONE_SIGMA_CL))
                hesse_cls.setdefault(round(cl, 6), cl)
        if has_errors:
            e = p.get("errors") if isinstance(p.get("errors"), dict) else {}
            hit = e.get("at_limit") or {}
            cells = []
            for side in ("lower", "upper"):
                cell = _num(e.get(side), "+.3g")
                if hit.get(side):
                    cell += " (bound)"
                    error_bound = True
                cells.append(cell)
            row += cells
            if e:
                cl = float(e.get("cl", _ONE_SIGMA_CL))
                error_cls.setdefault(round(cl, 6), cl)
        if has_bounds:
            lo, hi = p["lower"], p["upper"]
            bounded = np.isfinite(lo) or np.isfinite(hi)
            row.append(f"[{_num(lo)}, {_num(hi)}]" if bounded else "")
            row.append(_limit_side(p))
        rows.append(row)
    for what, cls in (("hesse error", hesse_cls), ("profile errors", error_cls)):
        if cls:
            notes.append(f"{what}: " + ", ".join(_cl_text(cls[c]) for c in sorted(cls)))
    if has_errors:
        profiled = [n for n, p in params.items() if isinstance(p.get("errors"), dict)]
        if len(profiled) < len(params):
            notes.append(
                f"profile errors computed for {', '.join(profiled)} only (blank: not asked "
                "for; result.errors() without params profiles every parameter)"
            )
    if error_bound:
        notes.append(
            "(bound): the profile did not rise enough before the bound; the error is the distance to it"
        )
    return header, rows, notes


def _edm_text(result: Any) -> str:
    goal = result.edm_goal
    if np.isfinite(result.edm):
        rel = "<" if result.edm < goal else ">="
    else:
        rel = "vs"
    return (
        f"{_num(result.edm, '.3g')} {rel} goal {_num(goal, '.3g')} "
        f"(tol {_num(result.tol, '.3g')} x errordef {_num(result.errordef, '.3g')})"
    )


def _summary(result: Any) -> list[tuple[str, str]]:
    info = result.info
    counts = " ".join(
        f"{k}={info[k]}" for k in ("nfev", "ngrad", "nhess", "nres", "njac") if info.get(k)
    )
    rows = [
        ("valid", str(result.valid)),
        ("converged", str(result.converged)),
        ("status", result.status.name),
        ("EDM", _edm_text(result)),
        ("fmin", _num(result.fmin, ".12g")),
        ("evaluations", counts or "0"),
        (
            "iterations",
            # -1: the run stopped abnormally (maxiter, NaN, Ctrl-C) before the solver said
            "unknown (stopped early)" if info.get("niter") == -1 else str(info.get("niter", "")),
        ),
    ]
    if info.get("backend"):
        rows.append(("backend", str(info["backend"])))
    rows.append(("params at limit", ", ".join(result.params_at_limit) or "none"))
    rows.append(("message", result.message))
    return rows


def _headline(result: Any) -> tuple[str, str | None]:
    """The title, and for an invalid result the reason in one line."""
    name = result.minimizer_info.get("name", "unknown minimizer")
    if result.valid:
        return f"FitResult of {name}: VALID", None
    reasons = []
    if not result.converged:
        reasons.append(f"{result.status.name}: {result.message}")
    elif result.message and result.message != result.status.message:
        reasons.append(result.message)
    if not np.isfinite(result.fmin):
        reasons.append("the minimum is not finite")
    if result.params_at_limit:
        reasons.append("at a bound: " + ", ".join(result.params_at_limit))
    return f"FitResult of {name}: INVALID", "; ".join(reasons) or result.message


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  " + " | ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  " + "-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append("  " + " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


def text(result: Any) -> str:
    """Plain-text rendering: a headline, a summary block and a parameter table."""
    title, why = _headline(result)
    lines = [title]
    if why:
        lines.append(f"  !! {why}")
    summary = _summary(result)
    width = max(len(k) for k, _ in summary)
    lines += [f"  {k:<{width}} : {v}" for k, v in summary]
    header, rows, notes = _rows(result)
    lines.append("")
    lines += _table_lines(header, rows)
    lines += [f"  {n}" for n in notes]
    return "\n".join(lines)


def html(result: Any) -> str:
    """HTML rendering for Jupyter: the same content, validity coloured, reasons first."""
    esc = _html.escape
    good, bad = "#c8f7c5", "#f7c5c5"
    title, why = _headline(result)
    parts = [
        '<div class="zfitlite-fitresult">',
        f'<p style="margin:0;padding:2px 6px;background:{good if result.valid else bad}">'
        f"<b>{esc(title)}</b></p>",
    ]
    if why:
        parts.append(f'<p style="margin:0;padding:2px 6px;color:#a00000"><b>{esc(why)}</b></p>')
    parts.append("<table><tbody>")
    for k, v in _summary(result):
        style = ""
        if k == "valid":
            style = f' style="background:{good if result.valid else bad}"'
        elif k == "EDM":
            style = f' style="background:{good if result.converged else bad}"'
        parts.append(f"<tr><th style='text-align:left'>{esc(k)}</th><td{style}>{esc(v)}</td></tr>")
    parts.append("</tbody></table>")
    header, rows, notes = _rows(result)
    parts.append(
        "<table><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
    )
    limit_col = header.index("at limit") if "at limit" in header else -1
    for r in rows:
        cells = []
        for n, c in enumerate(r):
            style = f' style="background:{bad}"' if n == limit_col and c else ""
            cells.append(f"<td{style}>{esc(c)}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts += [f"<p style='margin:0'><small>{esc(n)}</small></p>" for n in notes]
    parts.append("</div>")
    return "\n".join(parts)


# -- batches ---------------------------------------------------------------------------
def _batch_parts(result: Any, timing: bool) -> dict[str, Any]:
    from .status import Status

    total = len(result)
    nvalid = int(np.sum(result.valid))
    info = result.info
    run = (
        f"minimizer: {info.get('minimizer')}, method: {info['method']} ({info['backend']}), "
        f"{info['nchunks']} chunk(s) of {info['chunk_size']}"
    )
    if timing:
        run += f", {info['time']:.3g} s"
    parts: dict[str, Any] = {
        "title": f"BatchFitResult: {total} member(s), {nvalid} valid, {total - nvalid} invalid",
        "run": run,
        "status": ", ".join(f"{k} {v}" for k, v in result.status_counts().items()),
        "fmin": None,
        "params": [],
        "invalid": [],
        "more": 0,
    }
    if not total:
        return parts
    finite = np.isfinite(result.fmin)
    if finite.any():
        parts["fmin"] = (
            f"median {np.median(result.fmin[finite]):.6g}, "
            f"niter: median {int(np.median(result.niter))}, max {int(result.niter.max())}"
        )
    ok = np.asarray(result.valid, dtype=bool)
    if ok.any():
        x = np.asarray(result.x)[ok]
        q = np.percentile(x, [16, 50, 84], axis=0)
        for k, name in enumerate(result.names):
            parts["params"].append((name, _num(q[1, k]), f"[{_num(q[0, k])}, {_num(q[2, k])}]"))
    bad = np.flatnonzero(~ok)
    for k in bad[:5]:
        parts["invalid"].append((repr(result.ids[k]), Status(int(result.status[k])).name))
    parts["more"] = max(int(bad.size) - 5, 0)
    return parts


def batch_text(result: Any, timing: bool = True) -> str:
    """Plain-text summary of a :class:`~zfitlite.batch.BatchFitResult`.

    Parameters
    ----------
    result : BatchFitResult
    timing : bool, default True
        Include the wall-clock time (False for reproducible output).
    """
    p = _batch_parts(result, timing)
    lines = [p["title"], f"  {p['run']}", f"  status: {p['status']}"]
    if p["fmin"]:
        lines.append(f"  fmin: {p['fmin']}")
    if p["params"]:
        lines.append("  valid members' parameters: median [16 %, 84 % quantiles]")
        width = max(len(n) for n, _, _ in p["params"])
        lines += [f"    {n:<{width}} : {m} {r}" for n, m, r in p["params"]]
    for ident, status in p["invalid"]:
        lines.append(f"  invalid: id {ident}: {status}")
    if p["more"]:
        lines.append(f"  ... and {p['more']} more invalid")
    return "\n".join(lines)


def batch_html(result: Any, timing: bool = True) -> str:
    """HTML summary of a :class:`~zfitlite.batch.BatchFitResult` for Jupyter."""
    esc = _html.escape
    p = _batch_parts(result, timing)
    all_valid = bool(np.all(result.valid))
    color = "#c8f7c5" if all_valid else "#f7c5c5"
    parts = [
        '<div class="zfitlite-batchfitresult">',
        f'<p style="margin:0;padding:2px 6px;background:{color}"><b>{esc(p["title"])}</b></p>',
        "<table><tbody>",
        f"<tr><th style='text-align:left'>run</th><td>{esc(p['run'])}</td></tr>",
        f"<tr><th style='text-align:left'>status</th><td>{esc(p['status'])}</td></tr>",
    ]
    if p["fmin"]:
        parts.append(f"<tr><th style='text-align:left'>fmin</th><td>{esc(p['fmin'])}</td></tr>")
    parts.append("</tbody></table>")
    if p["params"]:
        parts.append(
            "<table><thead><tr><th>name</th><th>median</th><th>16 % - 84 %</th></tr></thead><tbody>"
        )
        for n, m, r in p["params"]:
            parts.append(f"<tr><td>{esc(n)}</td><td>{esc(m)}</td><td>{esc(r)}</td></tr>")
        parts.append("</tbody></table>")
    if p["invalid"]:
        items = "".join(f"<li>id {esc(i)}: {esc(s)}</li>" for i, s in p["invalid"])
        more = f"<li>... and {p['more']} more</li>" if p["more"] else ""
        parts.append(f"<p style='margin:0'>invalid members:</p><ul>{items}{more}</ul>")
    parts.append("</div>")
    return "\n".join(parts)
