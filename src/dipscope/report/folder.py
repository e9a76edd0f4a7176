"""The report of an experiment's folder (what ``dipscope experiment …`` writes): its verdict,
its tables and its figures, on one page.

Read from the folder's top level only: the verdict from ``README.md`` (or ``verdict.md`` /
``verdict.txt``), the tables from the other Markdown files (``summary.md``, ``table.md``, …)
and from every ``.csv`` file, the figures from every image file. Markdown is rendered with
raw HTML switched off (it shows as text); an image it embeds is inlined when it is a file in
the folder, else replaced by its description, so the page loads nothing from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .page import IMAGE_SUFFIXES, csv_table, esc, figure, file_uri, page

VERDICT_FILES = ("README.md", "verdict.md", "verdict.txt")


def has_content(directory: Path) -> bool:
    """True when the folder holds something a folder report shows (a verdict, a table or a figure)."""
    return any(_is_shown(p) for p in directory.iterdir())


def _is_shown(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() in (".md", ".csv", *IMAGE_SUFFIXES) or path.name in VERDICT_FILES)


def folder_report_html(directory: str | Path) -> str:
    """The report page of an experiment's folder (a complete HTML document).

    Parameters
    ----------
    directory
        The folder: its top-level ``README.md`` (the verdict), Markdown and CSV tables and
        image files are shown; subfolders are not read.

    Returns
    -------
    str
        The page, every image inline.
    """
    directory = Path(directory)
    inlined: set[str] = set()
    body = [f"<h1>{esc(directory.resolve().name)}</h1>"]
    verdict = next((directory / n for n in VERDICT_FILES if (directory / n).is_file()), None)
    if verdict is not None:
        body += ["<h2>Verdict</h2>", _text(verdict, inlined)]
    markdown = [p for p in sorted(directory.glob("*.md")) if p != verdict]
    tables = [_text(p, inlined) for p in markdown]
    tables += [f"<details{' open' if not markdown else ''}><summary>{esc(p.name)}</summary>{csv_table(p)}</details>"
               for p in sorted(directory.glob("*.csv"))]
    if tables:
        body += ["<h2>Tables</h2>", *tables]
    images = [p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
              and p.name not in inlined and p.name != "report.html"]
    if images:
        body += ["<h2>Figures</h2>",
                 "".join(figure(file_uri(p), p.name, kind="plot", alt=p.name) for p in images)]
    return page(f"dipscope: {directory.resolve().name}", body)


def _text(path: Path, inlined: set[str]) -> str:
    """A Markdown (or plain text) file as HTML; the folder's images it embeds are inlined."""
    text = path.read_text(errors="replace")
    if path.suffix.lower() != ".md":
        return f"<pre>{esc(text)}</pre>"
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                _inline_image(child, path.parent, inlined)
    return f'<div class="markdown">{md.renderer.render(tokens, md.options, {})}</div>'


def _inline_image(token: Any, folder: Path, inlined: set[str]) -> None:
    """Point a Markdown image at a ``data:`` URI of its file in ``folder``, or make it plain text."""
    src = str(token.attrs.get("src", ""))
    target = (folder / src).resolve() if src and "://" not in src and not src.startswith("data:") else None
    if target is not None and target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES \
            and target.is_relative_to(folder.resolve()):
        token.attrs["src"] = file_uri(target)
        inlined.add(target.name if target.parent == folder.resolve() else "")
        return
    token.type, token.tag, token.attrs, token.children = "text", "", {}, None
    token.content = f"[image: {token.content or src}]"
