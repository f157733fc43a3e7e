"""The report as a document: a title, a headline and sections of Markdown, rendered to report.md
and to a self-contained report.html through a Markdown library (Python-Markdown, `tables`
extension), so emphasis and tables become HTML elements, never literal asterisks or pipes.

A section holds Markdown text, figures (linked from report.md, embedded in the HTML) and an
optional collapsed detail part (`<details>` in both: GitHub renders it in report.md too).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import markdown

from bench.report.plotting import Figure

MD_EXTENSIONS = ("tables",)
_CSS = (
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;line-height:1.4}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f3f3f3}"
    "img{max-width:100%}figure{margin:1em 0}details{margin:1em 0}summary{cursor:pointer}"
)


@dataclass(frozen=True)
class Section:
    title: str  # the section's heading (level 2)
    body: str  # Markdown
    figures: tuple[Figure, ...] = ()  # drawn figures shown after the body
    details: tuple[str, str] | None = None  # (summary line, Markdown) shown collapsed


@dataclass(frozen=True)
class Document:
    title: str
    headline: str  # Markdown shown under the title
    sections: tuple[Section, ...]


def _details_md(details: tuple[str, str]) -> str:
    summary, body = details
    # blank lines around the body: Markdown inside an HTML block is then parsed by GitHub
    return f"<details><summary>{html.escape(summary)}</summary>\n\n{body}\n\n</details>"


def render_markdown(doc: Document, fig_dir: str) -> str:
    """report.md: figures linked relative to the report (`fig_dir/<file>`)."""
    out = [f"# {doc.title}", "", doc.headline, ""]
    for s in doc.sections:
        out += [f"## {s.title}", "", s.body, ""]
        for f in s.figures:
            out += [f"![{f.caption}]({fig_dir}/{f.path.name})", "", f"*{f.caption}*", ""]
        if s.details is not None:
            out += [_details_md(s.details), ""]
    return "\n".join(out)


def _md(text: str) -> str:
    return markdown.markdown(text, extensions=list(MD_EXTENSIONS), output_format="html")


def _embed(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(doc: Document) -> str:
    """report.html: the same document with the figures embedded, so the file stands alone."""
    e = html.escape
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(doc.title)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
        _md(doc.headline),
    ]
    for s in doc.sections:
        out += [f"<h2>{e(s.title)}</h2>", _md(s.body)]
        for f in s.figures:
            img = f"<img src='{_embed(f.path)}' alt='{e(f.caption)}'>"
            out.append(f"<figure>{img}<figcaption>{e(f.caption)}</figcaption></figure>")
        if s.details is not None:
            summary, body = s.details
            out.append(f"<details><summary>{e(summary)}</summary>{_md(body)}</details>")
    return "\n".join([*out, "</body></html>"])
