"""Self-contained HTML for the run report and the comparison (trainer.report, trainer.compare).

A page is one file with everything inside: the style sheet inline, every figure a PNG as a
base64 ``data:`` URI, no script, font or style fetched from anywhere, so it can be mailed,
archived or opened from a blob URL (the dashboard does) and still show everything. Written
by hand: a few elements and escaping are all it needs, and a template engine would be one more
dependency for that."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterable

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem 1.5rem 3rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
figure{margin:.5rem 0 1rem}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}
.missing{background:#fff4e5;border-left:4px solid #f0a030;padding:.4rem .8rem;margin:.5rem 0}
.meta{color:#555;font-size:.9rem}
nav a{margin-right:.8rem;font-size:.9rem}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def cell(value: Any) -> str:
    """A table cell's text: integers with separators, floats to 4 significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows: list[dict], columns: list[str] | None = None, css_class: str = "") -> str:
    """``rows`` as an HTML table, columns in the first row's order unless given."""
    if not rows:
        return '<p class="meta">(none)</p>'
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th>{esc(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell(row.get(column)))}</td>" for column in columns) + "</tr>"
                   for row in rows)
    attribute = f' class="{esc(css_class)}"' if css_class else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure(path: Path, caption: str, name: str) -> str:
    """A PNG embedded as a data URI; ``name`` is a stable id for tests and links."""
    return (f'<figure data-figure="{esc(name)}"><img alt="{esc(caption)}" src="{data_uri(path)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def missing(what: str, why: str) -> str:
    """A notice in place of a section that cannot be drawn, saying what it would need."""
    return f'<div class="missing" data-missing="{esc(what)}"><strong>{esc(what)}:</strong> {esc(why)}</div>'


def section(key: str, title: str, parts: Iterable[str]) -> str:
    return f'<section id="{esc(key)}" data-section="{esc(key)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def page(title: str, header: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: ``sections`` as (key, title, html) with a link to each at the top."""
    links = "".join(f'<a href="#{esc(key)}">{esc(name)}</a>' for key, name, _ in sections)
    body = "".join(section(key, name, [content]) for key, name, content in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{header}<nav>{links}</nav>{body}"
            "</body></html>\n")
