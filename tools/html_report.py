"""``report.html``: the report as one self-contained page (the verdict, the tables, the plots inline).

The page is ``report.md`` (the Markdown subset ``tools.reporting`` writes: headings, tables,
lists, bold, code spans) turned into HTML, followed by every PNG of the run embedded as a
``data:`` URI, so the one file can be mailed, attached to a CI run or opened offline.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["markdown_to_html", "write"]

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:110em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
td:has(> .bad){background:#fde8e8}.bad{color:#a00}.ok{color:#070}code{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:4px}details{margin:1em 0}"""


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    t = t.replace("✗", '<span class="bad">✗</span>').replace("✓", '<span class="ok">✓</span>')
    return t


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(md: str) -> str:
    """The Markdown subset of the reports as HTML (headings, tables, lists, paragraphs)."""
    out, table, items = [], [], []

    def flush():
        if table:
            head, *body = table
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
            items.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            if not re.fullmatch(r"\|(\s*-+\s*\|)+", s):
                table.append(_cells(s))
            continue
        if line.startswith("  ") and items and s:  # a list item's continuation line
            items[-1] += "<br>" + _inline(s)
            continue
        if s.startswith("- "):
            if table:
                flush()
            items.append(_inline(s[2:]))
            continue
        flush()
        m = re.match(r"(#{1,3}) (.*)", s)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif s:
            out.append(f"<p>{_inline(s)}</p>")
    flush()
    return "\n".join(out)


def write(path, md: str, images: dict[str, list[Path]], title: str = "Conformance report") -> Path:
    """Write the page: ``md`` as HTML, then each group of ``images`` (title -> PNG paths) inline."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", markdown_to_html(md)]
    if any(images.values()):
        parts.append("<h2>Plots</h2>")
    for name, pngs in images.items():
        if not pngs:
            continue
        parts.append(f"<details><summary>{html.escape(name)} ({len(pngs)} plots)</summary>")
        for p in pngs:
            data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(Path(p).stem)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(Path(p).stem)}</figcaption></figure>")
        parts.append("</details>")
    parts.append("</body></html>\n")
    p = Path(path)
    p.write_text("\n".join(parts), encoding="utf-8")
    return p
