"""Build-time hooks of the documentation site (named in ``mkdocs.yml``).

* ``on_files``: the records under ``results/`` and ``benchmarks/`` join the site as they are in the
  repository (pages, figures, tables), so the pages under ``docs/`` link to and embed them without
  copies or links in the repository;
* ``on_page_markdown``: a page under ``docs/`` links to a record by its path in the repository
  (``../../results/bias/README.md``, which a reader of the repository can follow too); such links
  are rewritten to the record's place in the site;
* ``on_page_markdown``: a page holding ``<!-- cli-reference -->`` gets the reference of every
  ``dipscope`` command, generated from the typer app itself.
"""

from __future__ import annotations

from pathlib import Path

import html
import os
import re

import typer
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ("results", "benchmarks")
SUFFIXES = {".md", ".png", ".csv", ".json", ".txt", ".py", ".sh"}
CLI_MARKER = "<!-- cli-reference -->"


def on_files(files, config):  # type: ignore[no-untyped-def]
    for folder in RECORDS:
        for path in sorted((ROOT / folder).rglob("*")):
            uri = path.relative_to(ROOT).as_posix()
            if path.is_file() and path.suffix in SUFFIXES and ":" not in uri:
                files.append(File(uri, src_dir=str(ROOT), dest_dir=config["site_dir"],
                                  use_directory_urls=config["use_directory_urls"]))
    return files


LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)")


def on_page_markdown(markdown, page, config, files):  # type: ignore[no-untyped-def]
    source = Path(page.file.abs_src_path).resolve()
    docs = Path(config["docs_dir"]).resolve()
    if docs in source.parents:
        markdown = LINK.sub(lambda m: m.group(1) + _site_link(m.group(2), source, page.file.src_uri), markdown)
    if CLI_MARKER not in markdown:
        return markdown
    from dipscope.cli import app

    root = typer.main.get_command(app)
    return markdown.replace(CLI_MARKER, "\n".join(_command_pages(root, ["dipscope"])))


def _site_link(target: str, source: Path, src_uri: str) -> str:
    """``target`` (relative to the page's file in the repository) as a link within the site."""
    path = (source.parent / target).resolve()
    if not any(ROOT / folder in [path, *path.parents] for folder in RECORDS):
        return target
    uri = path.relative_to(ROOT).as_posix()
    return os.path.relpath(uri, os.path.dirname(src_uri) or ".").replace(os.sep, "/")


def _command_pages(command, path: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The reference of ``command`` and of its subcommands (typer's own click objects)."""
    ctx = command.context_class(command, info_name=" ".join(path))
    lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "",
             (command.help or "").strip(), "",
             "```text", " ".join(path) + " " + " ".join(command.collect_usage_pieces(ctx)), "```", ""]
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument or option | meaning |", "|---|---|"]
        lines += [_param_row(p, ctx) for p in params]
        lines.append("")
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            lines += _command_pages(command.get_command(ctx, name), [*path, name])
    return lines


def _param_row(param, ctx) -> str:  # type: ignore[no-untyped-def]
    """One table row: the option's names and value (as ``--help`` shows them), and its help."""
    record = param.get_help_record(ctx)
    names, meaning = record if record else (param.name.upper(), "")
    return f"| <code>{_cell(html.escape(names))}</code> | {_cell(meaning)} |"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "&#124;")
