"""Build-time hooks of the documentation site (named in ``mkdocs.yml``).

* ``on_files``: the records under ``results/`` and ``benchmarks/`` join the site as they are in the
  repository (pages, figures, tables), so the pages under ``docs/`` link to and embed them without
  copies or links in the repository;
* ``on_page_markdown``: a page holding ``<!-- cli-reference -->`` gets the reference of every
  ``dipscope`` command, generated from the typer app itself.
"""

from __future__ import annotations

from pathlib import Path

import click
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


def on_page_markdown(markdown, page, config, files):  # type: ignore[no-untyped-def]
    if CLI_MARKER not in markdown:
        return markdown
    from dipscope.cli import app

    root = typer.main.get_command(app)
    return markdown.replace(CLI_MARKER, "\n".join(_command_pages(root, ["dipscope"])))


def _command_pages(command: click.Command, path: list[str]) -> list[str]:
    ctx = click.Context(command, info_name=" ".join(path))
    lines = [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", "",
             (command.help or "").strip(), "",
             "```text", " ".join(path) + " " + " ".join(command.collect_usage_pieces(ctx)), "```", ""]
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument or option | value | default | meaning |", "|---|---|---|---|"]
        lines += [_param_row(p, ctx) for p in params]
        lines.append("")
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            lines += _command_pages(command.get_command(ctx, name), [*path, name])
    return lines


def _param_row(param: click.Parameter, ctx: click.Context) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    if isinstance(param, click.Argument):
        names = f"`{param.human_readable_name}`"
    value = "" if getattr(param, "is_flag", False) else _cell(param.make_metavar(ctx) if _takes_ctx(param) else param.make_metavar())
    default = param.default if param.default is not None and not callable(param.default) else ""
    if getattr(param, "is_flag", False) and default is False:
        default = ""
    default = getattr(default, "value", default)
    return f"| {names} | {value} | {_cell(str(default)) if default != '' else ''} | {_cell(getattr(param, 'help', '') or '')} |"


def _takes_ctx(param: click.Parameter) -> bool:
    import inspect

    return "ctx" in inspect.signature(param.make_metavar).parameters


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
