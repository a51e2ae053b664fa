"""Writing the documentation bundle: the same sections as Markdown and as one self-contained HTML page.

Both formats are written from one layout (:mod:`mlsteward.evidence.layout`). The HTML has its CSS
inline, loads nothing, and prints to PDF on A4.
"""

from __future__ import annotations

import html
from typing import Any

from mlsteward.evidence import layout

Obj = dict[str, Any]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:2rem auto;
max-width:60rem;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #d0d7de;
padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.warn{background:#fff4e5;border-left:4px solid #d9822b;padding:.5rem .8rem;margin:.6rem 0}
.ok{color:#1a7f37}.bad{color:#cf222e}.muted{color:#57606a}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}table,.warn{break-inside:avoid}
@page{size:A4;margin:15mm}}
"""


def to_markdown(doc: Obj) -> str:
    lines = [f"# Documentation bundle: {doc['title']}", ""]
    for heading, blocks in layout.sections(doc):
        lines += [f"## {heading}", ""]
        for kind, *rest in blocks:
            content = rest[0] if len(rest) == 1 else tuple(rest)
            if kind == "p":
                lines += [_md(content), ""]
            elif kind == "h3":
                lines += [f"### {_md(content)}", ""]
            elif kind == "warn":
                lines += [f"> **Warning:** {_md(content)}", ""]
            elif kind == "list":
                lines += [f"- {_md(item)}" for item in content] + [""]
            elif kind == "kv":
                lines += [f"- **{_md(k)}:** {_md(layout.number(v))}" for k, v in content] + [""]
            elif kind == "table":
                headers, rows = content
                lines += _md_table(headers, rows)
    return "\n".join(lines).rstrip() + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["_None._", ""]
    out = ["| " + " | ".join(_md(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def to_html(doc: Obj) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc['title'])}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['title'])}</h1>",
        '<p class="muted">Documentation bundle for artifact '
        f"<code>sha256:{e(doc['artifact']['digest'])}</code></p>",
    ]
    for heading, blocks in layout.sections(doc):
        parts.append(f"<h2>{e(heading)}</h2>")
        for kind, *rest in blocks:
            content = rest[0] if len(rest) == 1 else tuple(rest)
            if kind == "p":
                parts.append(f"<p>{e(str(content))}</p>")
            elif kind == "h3":
                parts.append(f"<h3>{e(str(content))}</h3>")
            elif kind == "warn":
                parts.append(f'<div class="warn" role="alert">{e(str(content))}</div>')
            elif kind == "list":
                parts.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in content) + "</ul>")
            elif kind == "kv":
                rows = "".join(
                    f"<tr><th>{e(str(k))}</th><td>{e(layout.number(v))}</td></tr>" for k, v in content
                )
                parts.append(f"<table>{rows}</table>")
            elif kind == "table":
                headers, rows_data = content
                if not rows_data:
                    parts.append('<p class="muted">None.</p>')
                    continue
                head = "".join(f"<th>{e(h)}</th>" for h in headers)
                body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows_data)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _cell(value: Any) -> str:
    text = str(value)
    numeric = text.replace(".", "", 1).replace("-", "", 1).isdigit() or (
        text.startswith("[") and text.endswith("]")
    )
    css = {"passed": "ok", "failed": "bad"}.get(text, "num" if numeric else "")
    return f'<td class="{css}">{html.escape(text)}</td>' if css else f"<td>{html.escape(text)}</td>"
