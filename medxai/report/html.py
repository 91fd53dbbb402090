"""HTML building blocks for the run report: escaping, tables, embedded images and the page shell.

Every string that comes from a file or from the environment passes through :func:`html.escape`
here, so section code can concatenate the returned fragments without escaping again. The page
needs no JavaScript and loads nothing from outside the file: images are ``data:`` URIs and the
CSS is inline.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CSS = """
:root { color-scheme: light dark; --fg: #1d1f21; --bg: #ffffff; --muted: #5f6368; --line: #d7dbe0;
  --head: #f3f5f7; --bad: #b3261e; --bad-bg: #fdecea; --warn-bg: #fff6e0; --ok: #1e7d32; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e6e6; --bg: #17191c; --muted: #a0a6ad; --line: #3a3f45; --head: #23272b;
    --bad: #ff8a80; --bad-bg: #3a1f1d; --warn-bg: #3a3220; --ok: #81c995; }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 0 16px 48px; }
header.page { padding: 16px 0 8px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.3rem; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 20px 0 6px; }
p, li { overflow-wrap: anywhere; }
.muted { color: var(--muted); font-size: 0.9rem; }
nav.toc ul { list-style: none; padding: 0; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 6px 14px; }
nav.toc a { color: inherit; }
.table-scroll { overflow-x: auto; max-width: 100%; margin: 8px 0;
  border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.9rem; min-width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--head); position: sticky; top: 0; }
table.kv th { width: 35%; }
table.kv td { overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre { overflow-x: auto; max-width: 100%; background: var(--head); padding: 8px; border-radius: 4px;
  font-size: 0.85rem; line-height: 1.35; }
figure { margin: 12px 0; }
figure img, td img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 4px; overflow-wrap: anywhere; }
.notice { padding: 8px 12px; border-radius: 4px; margin: 8px 0; border-left: 4px solid var(--muted);
  background: var(--warn-bg); }
.notice.error { border-left-color: var(--bad); background: var(--bad-bg); }
tr.wrong td { background: var(--bad-bg); }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 0.8rem; font-weight: 600;
  white-space: nowrap; }
.badge.wrong { color: var(--bad); border: 1px solid var(--bad); }
.badge.right { color: var(--ok); border: 1px solid var(--ok); }
.grid td:first-child { min-width: 10em; }
.grid td.cell img { width: 240px; max-width: none; }
@media (max-width: 600px) { .grid td.cell img { width: 160px; } }
.grid tr.wrong td.cell img { outline: 3px solid var(--bad); outline-offset: -3px; }
details > summary { cursor: pointer; margin: 6px 0; }
"""


@dataclass(frozen=True)
class Section:
    """One top-level part of the report.

    Attributes:
        anchor: HTML id of the section, also the target of its table-of-contents link.
        title: Heading text (plain text, escaped on rendering).
        body: HTML fragment of the content, already escaped by the helpers in this module.
    """

    anchor: str
    title: str
    body: str


def esc(value: object) -> str:
    """Return ``str(value)`` with ``& < > " '`` escaped for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return ``"1 sample"`` or ``"3 samples"``; ``plural_form`` overrides the added "s"."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count} {noun}"


def paragraph(text: str, css_class: str | None = None) -> str:
    """Return an escaped ``<p>`` element."""
    class_attr = f' class="{esc(css_class)}"' if css_class else ""
    return f"<p{class_attr}>{esc(text)}</p>"


def notice(text: str, *, error: bool = False) -> str:
    """Return a highlighted box with ``text``: a warning, or an error when ``error`` is true."""
    css_class = "notice error" if error else "notice"
    return f'<div class="{css_class}" role="note">{esc(text)}</div>'


def preformatted(text: str) -> str:
    """Return ``text`` escaped inside a horizontally scrolling ``<pre>``."""
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, body_html: str) -> str:
    """Return a collapsed ``<details>`` block that opens without JavaScript."""
    return f"<details><summary>{esc(summary)}</summary>{body_html}</details>"


def format_cell(value: object) -> tuple[str, bool]:
    """Format one table value and report whether it is numeric.

    Floats get 4 significant digits, integers are shown whole, and strings that parse as
    numbers are formatted the same way, so CSV cells line up with JSON values. Lists and
    mappings are shown as JSON.

    Returns:
        The display text (not yet escaped) and True when the value is a number.
    """
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str), False
    if isinstance(value, bool) or value is None:
        return ("" if value is None else str(value)), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return _format_float(value), True
    if isinstance(value, str):
        stripped = value.strip()
        try:
            number = float(stripped)
        except ValueError:
            return value, False
        if stripped.lstrip("+-").isdigit():
            return stripped, True
        return _format_float(number), True
    return str(value), False


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    row_classes: Sequence[str] | None = None,
    css_class: str = "",
) -> str:
    """Return an escaped table wrapped in a container that scrolls horizontally.

    Args:
        header: Column titles.
        rows: Cell values; numbers are right-aligned and formatted by :func:`format_cell`.
            Rows shorter than ``header`` are padded with empty cells.
        row_classes: Optional CSS class per row (for example ``"wrong"``), same order as ``rows``.
        css_class: Optional CSS class of the ``<table>`` element.

    Returns:
        The HTML fragment.
    """
    head_html = "".join(f'<th scope="col">{esc(title)}</th>' for title in header)
    body_parts = []
    for position, row in enumerate(rows):
        cells = list(row) + [""] * max(0, len(header) - len(row))
        cell_html = []
        for value in cells:
            text, numeric = format_cell(value)
            cell_class = ' class="num"' if numeric else ""
            cell_html.append(f"<td{cell_class}>{esc(text)}</td>")
        row_class = row_classes[position] if row_classes and position < len(row_classes) else ""
        class_attr = f' class="{esc(row_class)}"' if row_class else ""
        body_parts.append(f"<tr{class_attr}>{''.join(cell_html)}</tr>")
    table_class = f' class="{esc(css_class)}"' if css_class else ""
    return (
        f'<div class="table-scroll"><table{table_class}><thead><tr>{head_html}</tr></thead>'
        f"<tbody>{''.join(body_parts)}</tbody></table></div>"
    )


def key_value_table(pairs: Iterable[tuple[object, object]]) -> str:
    """Return a two-column table with the keys as row headers; a None value reads ``null``."""
    rows = []
    for key, value in pairs:
        text = "null" if value is None else format_cell(value)[0]
        rows.append(f'<tr><th scope="row">{esc(key)}</th><td>{esc(text)}</td></tr>')
    return f'<div class="table-scroll"><table class="kv"><tbody>{"".join(rows)}</tbody></table></div>'


def png_data_uri(png: bytes) -> str:
    """Return ``png`` as a base64 ``data:image/png`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, *, caption: str | None = None) -> str:
    """Return an embedded PNG, scaled to the page width, inside a ``<figure>``."""
    img = f'<img src="{png_data_uri(png)}" alt="{esc(alt)}">'
    caption_html = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f"<figure>{img}{caption_html}</figure>"


def inline_image(png: bytes, alt: str) -> str:
    """Return an embedded PNG without a ``<figure>``, for table cells."""
    return f'<img src="{png_data_uri(png)}" alt="{esc(alt)}" loading="eager">'


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """Assemble the complete HTML document.

    Args:
        title: Page title and main heading.
        subtitle: One line under the heading (for example the run folder and build time).
        sections: Parts of the report in display order.

    Returns:
        A complete, self-contained HTML5 document.
    """
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # An empty icon stops browsers from requesting favicon.ico next to the file.
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body><main><header class="page"><h1>{esc(title)}</h1>'
        f'<p class="muted">{esc(subtitle)}</p>'
        f'<nav class="toc" aria-label="Sections"><ul>{toc}</ul></nav></header>'
        f"{body}</main></body></html>\n"
    )
