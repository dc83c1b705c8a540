"""The report page's frame: inline CSS, header, table of contents and sections; table cells of metric summaries.

Everything is inline (no script, font or stylesheet from elsewhere), so the file opens offline and can be mailed.
Every text that comes from data goes through `html.escape`.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a202c;
       max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid #e2e8f0; } h3 { font-size: 15px; margin: 22px 0 8px; }
h3 small, .muted { color: #718096; font-weight: normal; }
nav ul, .found { margin: 6px 0; padding-left: 20px; } code { font-size: 12px; color: #4a5568; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #e2e8f0; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f7fafc; } td.num { font-variant-numeric: tabular-nums; }
.ci { color: #718096; font-size: 12px; white-space: nowrap; } .table-wrap { overflow-x: auto; max-width: 100%; }
td.yes { color: #276749; font-weight: 600; } td.no { color: #c53030; font-weight: 600; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); gap: 8px 20px; }
details.block > summary { cursor: pointer; font-weight: 600; font-size: 15px; margin: 18px 0 8px; }
figure { margin: 10px 0 18px; } figure img { max-width: 100%; border: 1px solid #edf2f7; }
figcaption { font-size: 12px; color: #4a5568; }
.legend { display: flex; align-items: center; gap: 8px; margin: 4px 0 8px; font-size: 12px; color: #4a5568; }
.legend .bar { display: inline-block; width: 220px; height: 14px; border: 1px solid #cbd5e0; }
.heatmap { border: 1px solid #e2e8f0; border-radius: 6px; margin: 10px 0 14px; padding: 8px 10px 10px; }
.heatmap.correct { border-top: 3px solid #2b6cb0; } .heatmap.wrong { border-top: 3px solid #c53030; }
.trace-head { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: baseline; font-size: 12px;
              color: #4a5568; margin-bottom: 4px; }
.trace-id { font-family: ui-monospace, Menlo, Consolas, monospace; color: #1a202c; }
.verdict { font-weight: 700; text-transform: uppercase; font-size: 11px; padding: 1px 6px; border-radius: 3px;
           color: #fff; } .verdict.correct { background: #2b6cb0; } .verdict.wrong { background: #c53030; }
.heatmap.unchecked { border-top: 3px solid #a0aec0; } .verdict.unchecked { background: #718096; }
.question { font-size: 12px; color: #4a5568; background: #f7fafc; padding: 4px 8px; margin: 4px 0 6px;
            white-space: pre-wrap; border-radius: 3px; }
.step { display: flex; align-items: flex-start; gap: 8px; padding: 2px 4px; margin: 1px 0;
        border-left: 4px solid transparent; }
.step.true { border-left-color: #1a202c; } .step.pred { box-shadow: inset 4px 0 0 #dd6b20; }
.step-no { width: 22px; flex: none; text-align: right; color: #a0aec0; font-size: 11px; padding-top: 3px; }
.step-text { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; white-space: pre-wrap;
             word-break: break-word; line-height: 1.7; }
.tok { border-radius: 2px; } .tok.step-colour { padding: 1px 3px; } .tok.eos { font-size: 10px; padding: 0 4px; }
.badge { flex: none; font-size: 10px; font-weight: 700; padding: 1px 6px; border-radius: 3px; margin-top: 3px;
         text-transform: uppercase; letter-spacing: .03em; }
.badge.true { background: #1a202c; color: #fff; } .badge.pred { background: #dd6b20; color: #fff; }
"""


class Markup(str):
    """A string already in HTML (a table cell built here); any other string put in a table is escaped."""


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def page(title: str, run_dir: str, listing: list[tuple[str, str]], sections: dict[str, str]) -> str:
    """The whole HTML document. `listing`: (kind, relative path) of each file found; `sections`: title -> HTML."""
    nav = "".join(f'<li><a href="#{_slug(t)}">{html.escape(t)}</a></li>' for t in sections)
    files = "".join(
        f"<li><code>{html.escape(path)}</code> <span class='muted'>{html.escape(kind)}</span></li>"
        for kind, path in listing
    )
    body = "".join(
        f'<section id="{_slug(t)}"><h2>{html.escape(t)}</h2>{content}</section>' for t, content in sections.items()
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='muted'>run folder <code>{html.escape(run_dir)}</code></p>"
        f"<nav><ul>{nav}</ul></nav><details><summary>{len(listing)} output file(s) found</summary>"
        f"<ul class='found'>{files}</ul></details>{body}</body></html>\n"
    )


def collapsible(head: str, body: str, is_open: bool = True) -> str:
    """A `<details>` block (`head` is HTML): long pages (a demo's many runs) stay navigable."""
    return f"<details class='block'{' open' if is_open else ''}><summary>{head}</summary>{body}</details>"


def figure_grid(figures: list[str]) -> str:
    return f"<div class='figures'>{''.join(figures)}</div>" if figures else ""


def _summary_text(s: dict[str, Any]) -> str:
    if s.get("mean") is None:
        return "–" + (f" (n={s['n']})" if "n" in s else "")
    lo, hi = (s.get("ci95") or [None, None])[:2]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{s['mean']:.3f}{ci}" + (f" (n={s['n']})" if "n" in s else "")


def summary_cell(s: Any) -> Markup:
    """`<td>` of a `{"mean", "ci95", "n"}` summary: "0.512 [0.410, 0.600] (n=300)"; "–" when there is none."""
    if not isinstance(s, dict) or s.get("mean") is None:
        return Markup("<td class='num'>–</td>")
    lo, hi = (s.get("ci95") or [None, None])[:2]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    n = f" (n={s['n']})" if "n" in s else ""
    return Markup(f"<td class='num'>{s['mean']:.3f}<span class='ci'>{html.escape(ci + n)}</span></td>")


def value_cell(value: Any) -> Markup:
    """`<td>` of any JSON value: booleans as yes/no, numbers to 4 significant digits, summaries as above, a dict
    as `key: value; ...`, None as a dash."""
    if isinstance(value, bool):
        return Markup(f"<td class='{'yes' if value else 'no'}'>{'yes' if value else 'no'}</td>")
    if isinstance(value, dict) and "mean" in value:
        return summary_cell(value)
    if isinstance(value, float):
        return Markup(f"<td class='num'>{value:.4g}</td>" if math.isfinite(value) else f"<td>{value}</td>")
    if isinstance(value, int):
        return Markup(f"<td class='num'>{value}</td>")
    if isinstance(value, dict):  # e.g. a claim's {"airl": summary, "sft": summary, "diff": 0.1}
        parts = [
            f"{k}: {_summary_text(v) if isinstance(v, dict) and 'mean' in v else json.dumps(v)}"
            for k, v in value.items()
        ]
        return Markup(f"<td>{html.escape('; '.join(parts))}</td>")
    text = value if isinstance(value, str) else "–" if value is None else json.dumps(value, ensure_ascii=False)
    return Markup(f"<td>{html.escape(text)}</td>")


def summary_table(columns: list[str], rows: list[list[str]]) -> str:
    """A table; a row cell is `Markup` (from `summary_cell`/`value_cell`) or plain text (escaped)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(c if isinstance(c, Markup) else f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
