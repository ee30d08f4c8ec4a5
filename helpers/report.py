"""The dashboard's report (notebook 08): Markdown and HTML that open without Jupyter, with the
tables, the notes, the sources of every published figure quoted, and the plots as PNG files beside them.

The other jobs of the dashboard each have their module: :mod:`helpers.results_table` (manifest ->
table), :mod:`helpers.pareto` (the front and its plot), :mod:`helpers.claims` (published figures vs
measured), :mod:`helpers.latency` (same-run re-timing) and :mod:`helpers.benchmark_tool` (the wheel's
benchmark tool cross-check).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.paths import atomic_write_text, atomic_write_with
from helpers.results_table import ReportError


def _cell(value: Any, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (index included); NaN shows as "—"."""
    frame = frame.reset_index()
    head = "| " + " | ".join(_cell(c, floatfmt) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v, floatfmt) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def export_report(
    out_dir: Path,
    variants: pd.DataFrame,
    claims: pd.DataFrame | None = None,
    cross_check: pd.DataFrame | None = None,
    figures: Mapping[str, Any] | None = None,
    sources: pd.DataFrame | None = None,
    title: str = "LiteRT optimization workbook: results",
    notes: Sequence[str] = (),
    stem: str = "report",
) -> dict[str, Path]:
    """Write ``<out_dir>/<stem>.md`` and ``<stem>.html`` (tables, notes, sources, plots) and each figure
    as ``<out_dir>/<figure name>.png``; return ``{"md": path, "html": path, <figure>: path}``.

    ``sources`` (e.g. :func:`helpers.claims.sources_table`) lists where each published figure comes
    from: its rows become a "Sources" list (topic, figure, document, section, link).

    Both open without Jupyter; images are referenced by relative file name. Raises
    :class:`ReportError` when ``variants`` is empty.
    """
    if variants is None or variants.empty:
        raise ReportError("Nothing to report: the variants table is empty (is the manifest empty?).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, fig in (figures or {}).items():
        written[name] = atomic_write_with(out_dir / f"{name}.png",
                                          lambda tmp, fig=fig: fig.savefig(tmp, dpi=110, bbox_inches="tight"))

    sections: list[tuple[str, pd.DataFrame | None, str]] = [
        (f"All variants ({len(variants)})", variants, ".4g"),
        ("Published claims vs this machine", claims, ".4g"),
        ("Latency harness vs the wheel's benchmark tool", cross_check, ".4g"),
    ]
    md = [f"# {title}", ""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    parts = [f"<h1>{html.escape(title)}</h1>"] + (["<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"] if notes else [])
    for heading, table, fmt in sections:
        if table is None:
            continue
        md += [f"## {heading}", "", markdown_table(table, fmt), ""]
        parts += [f"<h2>{html.escape(heading)}</h2>", table.to_html(na_rep="—", float_format=lambda v: format(v, fmt), border=0)]
    if sources is not None and not sources.empty:
        md += ["## Sources of the published figures", ""]
        items = []
        for figure_id, row in sources.iterrows():
            where = ", ".join(str(p) for p in (row.get("source", ""), row.get("section", "")) if p)
            url = str(row.get("url", "") or "")
            md.append(f"- **{figure_id}** ({row.get('topic', '')}): {row.get('figure', '')}. {where}" + (f" <{url}>" if url else ""))
            link = f' <a href="{html.escape(url)}">{html.escape(url)}</a>' if url else ""
            items.append(f"<li><b>{html.escape(str(figure_id))}</b> ({html.escape(str(row.get('topic', '')))}): "
                         f"{html.escape(str(row.get('figure', '')))}. {html.escape(where)}{link}</li>")
        md.append("")
        parts += ["<h2>Sources of the published figures</h2>", "<ul>" + "".join(items) + "</ul>"]
    if written:
        md += ["## Plots", ""]
        parts.append("<h2>Plots</h2>")
        for name, png in written.items():
            md += [f"![{name}]({png.name})", ""]
            parts.append(f'<p><img src="{html.escape(png.name)}" alt="{html.escape(name)}" style="max-width:100%"></p>')
    style = "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
    written["md"] = atomic_write_text(out_dir / f"{stem}.md", "\n".join(md))
    written["html"] = atomic_write_text(
        out_dir / f"{stem}.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>"
        + "\n".join(parts) + "</body></html>\n",
    )
    return written
