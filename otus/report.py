"""A run report: Markdown plus a self-contained HTML page with the plots embedded."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from otus.io.atomic import atomic_path


@dataclass
class Section:
    """One stage of a report: a title, free text, an optional table and figures."""

    title: str
    text: str = ""
    table: list[list[str]] = field(default_factory=list)  # first row is the header
    figures: list[Path] = field(default_factory=list)


def _md_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def to_markdown(title: str, sections: list[Section], root: Path) -> str:
    out = [f"# {title}\n"]
    for s in sections:
        out.append(f"## {s.title}\n")
        if s.text:
            out.append(s.text.strip() + "\n")
        if s.table:
            out.append(_md_table(s.table))
        for fig in s.figures:
            out.append(f"![{fig.stem}]({os.path.relpath(fig, root)})\n")
    return "\n".join(out)


def to_html(title: str, sections: list[Section]) -> str:
    esc = html.escape
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;"
        "padding:2px 8px;text-align:right}img{max-width:48%;margin:1%}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for s in sections:
        out.append(f"<h2>{esc(s.title)}</h2>")
        for para in s.text.strip().split("\n\n"):
            if para:
                out.append(f"<p>{esc(para)}</p>")
        if s.table:
            head, *body = s.table
            out.append("<table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in head) + "</tr>")
            for r in body:
                out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
            out.append("</table>")
        for fig in s.figures:
            data = base64.b64encode(Path(fig).read_bytes()).decode()
            out.append(f"<img alt='{esc(fig.stem)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(
    out_dir: str | os.PathLike[str], title: str, sections: list[Section]
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` atomically; return both paths."""
    root = Path(out_dir)
    md, page = root / "report.md", root / "report.html"
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(title, sections, root))
    with atomic_path(page) as tmp:
        tmp.write_text(to_html(title, sections))
    return md, page
