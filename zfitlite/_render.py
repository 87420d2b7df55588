"""Text and HTML tables for FitResult (deterministic: no timings, so golden files hold)."""

from __future__ import annotations

import html as _html
from typing import Any

import numpy as np


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


def _rows(result: Any) -> tuple[list[str], list[list[str]]]:
    has_hesse = any("hesse" in p for p in result.params.values())
    has_errors = any("errors" in p for p in result.params.values())
    header = ["name", "value"]
    if has_hesse:
        header.append("hesse")
    if has_errors:
        header += ["lower err", "upper err"]
    header += ["bounds", "at limit"]
    rows = []
    for name, p in result.params.items():
        row = [name, _num(p["value"], ".8g")]
        if has_hesse:
            row.append(_num(p.get("hesse", {}).get("error"), ".3g"))
        if has_errors:
            e = p.get("errors", {})
            row += [_num(e.get("lower"), "+.3g"), _num(e.get("upper"), "+.3g")]
        lo, hi = p["lower"], p["upper"]
        row.append("" if not (np.isfinite(lo) or np.isfinite(hi)) else f"[{_num(lo)}, {_num(hi)}]")
        row.append("yes" if p["at_limit"] else "")
        rows.append(row)
    return header, rows


def _summary(result: Any) -> list[tuple[str, str]]:
    info = result.info
    counts = " ".join(
        f"{k}={info[k]}" for k in ("nfev", "ngrad", "nhess", "nres", "njac") if info.get(k)
    )
    return [
        ("valid", str(result.valid)),
        ("converged", str(result.converged)),
        ("status", result.status.name),
        (
            "EDM",
            f"{_num(result.edm, '.3g')} (goal {_num(result.edm_goal, '.3g')} = tol {_num(result.tol, '.3g')}"
            f" x errordef {_num(result.errordef, '.3g')})",
        ),
        ("fmin", _num(result.fmin, ".12g")),
        ("evaluations", counts or "0"),
        ("iterations", str(info.get("niter", ""))),
        ("backend", str(info.get("backend", ""))),
        ("params at limit", ", ".join(result.params_at_limit) or "none"),
        ("message", result.message),
    ]


def text(result: Any) -> str:
    """Plain-text rendering: a summary block and a parameter table."""
    name = result.minimizer_info.get("name", "unknown minimizer")
    lines = [f"FitResult of {name}"]
    summary = _summary(result)
    width = max(len(k) for k, _ in summary)
    lines += [f"  {k:<{width}} : {v}" for k, v in summary]
    header, rows = _rows(result)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    sep = "  " + "-+-".join("-" * w for w in widths)
    lines.append("")
    lines.append("  " + " | ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append(sep)
    for r in rows:
        lines.append("  " + " | ".join(c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def html(result: Any) -> str:
    """HTML rendering for Jupyter: the same summary and table, validity coloured."""
    esc = _html.escape
    color = "#c8f7c5" if result.valid else "#f7c5c5"
    name = esc(str(result.minimizer_info.get("name", "unknown minimizer")))
    parts = [f'<div class="zfitlite-fitresult"><b>FitResult of {name}</b>', "<table><tbody>"]
    for k, v in _summary(result):
        style = f' style="background:{color}"' if k == "valid" else ""
        parts.append(f"<tr><th style='text-align:left'>{esc(k)}</th><td{style}>{esc(v)}</td></tr>")
    parts.append("</tbody></table>")
    header, rows = _rows(result)
    parts.append(
        "<table><thead><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in header)
        + "</tr></thead><tbody>"
    )
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
    parts.append("</tbody></table></div>")
    return "\n".join(parts)
