"""What every command shares: the typer apps, the command class, the choices (built from the
tuples of the modules that own them), the option groups declared once, and the entry point.

Every user error (bad path, unreadable image, impossible configuration) prints one line
``error: …`` on stderr and exits with status 2; the commands never show a traceback for them.
"""

from __future__ import annotations

import errno
import functools
import inspect
import re
import sys
import typing
import warnings
from enum import Enum
from typing import Any, Callable, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from .. import interrupts
from ..errors import DipscopeError
from ..experiments.common import PROFILES
from ..models import FAMILIES
from ..presets import PRESETS
from ..runs.executors import EXECUTORS, STORAGES, ExecutorOptions
from ..runtime import PRECISIONS, keep_freed_memory
from ..tasks import TASKS


class _FlagsTakeNoValue:
    """Help shows no value placeholder (``<bool>``) for on/off flags such as ``--force`` and
    ``--help``: they take none."""

    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class Command(_FlagsTakeNoValue, TyperCommand):
    """A command whose usage line names arguments plainly (``IMAGE``, ``[IMAGES]...``, not
    ``{image}``) and whose flags show no value placeholder."""

    def collect_usage_pieces(self, ctx):  # type: ignore[no-untyped-def]
        pieces = super().collect_usage_pieces(ctx)
        return [re.sub(r"^\{(.+)\}", lambda m: m.group(1).upper(), re.sub(r"^\[(\w+)\]", lambda m: f"[{m.group(1).upper()}]", p))
                if p != "[OPTIONS]" else p for p in pieces]


class Group(_FlagsTakeNoValue, TyperGroup):
    """A command group whose ``--help`` shows no value placeholder either."""


app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run the Deep Image Prior fast, and measure its spectral bias.")
experiment_app = typer.Typer(cls=Group, no_args_is_help=True, help="Reproduce the study's experiments (resumable).")
data_app = typer.Typer(cls=Group, no_args_is_help=True, help="Named test sets (cbm3d9, barbara, triangle).")
gp_app = typer.Typer(cls=Group, no_args_is_help=True,
                     help="Infinite-width (NNGP) kernels of the networks at initialisation.")


def _version(value: bool) -> None:
    if value:
        from .. import __version__
        from ..runtime import source_commit

        source = source_commit()
        where = (f" (commit {source['commit'][:12]}{', with changes' if source['tree_changed'] else ''})"
                 if source else "")
        print(f"dipscope {__version__}{where}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print the version (and the git commit of a checkout) and exit.")) -> None:
    """Run the Deep Image Prior fast, and measure its spectral bias."""


app.add_typer(experiment_app, name="experiment")
app.add_typer(data_app, name="data")
app.add_typer(gp_app, name="gp")


def choices(name: str, values: typing.Iterable[str]) -> type[Enum]:
    """A ``str`` Enum of ``values`` for typer, made from the tuple the owning module declares."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


Model = choices("Model", FAMILIES)
Preset = choices("Preset", PRESETS)
Precision = choices("Precision", PRECISIONS)
Profile = choices("Profile", PROFILES)
ExecutorName = choices("ExecutorName", EXECUTORS)
RayStorage = choices("RayStorage", STORAGES)
LAYOUTS = ("auto", "nchw", "channels-last")
Layout = choices("Layout", LAYOUTS)
Task = choices("Task", TASKS)

IMAGES_HELP = "Image files, or set:NAME for a named data set (cbm3d9, barbara, triangle) from --data-dir."


# --- options every experiment takes ----------------------------------------------------------

def opt_out() -> Any:
    return typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run).")


def opt_profile(default: str = "cpu") -> Any:
    return typer.Option(Profile(default), help="smoke (seconds), cpu (reduced to run on 2 CPU cores), "
                                      "paper (the study's model settings).")


def opt_precision() -> Any:
    return typer.Option(Precision("auto"), help="auto (bf16 on CUDA and bf16-native CPUs), fp32, bf16, fp64.")


def opt_recover() -> Any:
    return typer.Option(False, "--recover-divergence", help="Reset the weights after a loss jump (off by default, "
                                                            "as in the study's scripts; each run records when it fired).")


def opt_data_dir() -> Any:
    return typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA).")


def opt_device() -> Any:
    return typer.Option("auto", help="auto (cuda → mps → cpu), cpu, cuda[:i] or mps.")


def opt_force(what: str = "tasks") -> Any:
    return typer.Option(False, "--force", help=f"Redo finished {what}.")


# --- the executor option group, declared once ------------------------------------------------

_PANEL = "Executor"
EXECUTOR_OPTIONS: list[tuple[str, Any, Any]] = [
    ("executor_name", ExecutorName, typer.Option(ExecutorName("local"), "--executor", rich_help_panel=_PANEL,
     help="local (here, one task after the other) or ray (each task a Ray task; needs Ray: the dipscope ray extra).")),
    ("retries", int, typer.Option(1, "--retries", rich_help_panel=_PANEL,
     help="Retry a failed task this many times, then report it.")),
    ("threads", Optional[int], typer.Option(None, "--threads", rich_help_panel=_PANEL,
     help="Torch threads in every task (default: --cpus-per-task, 1 unless set, with either executor: CPU numbers "
          "depend on it, so the same command gives the same numbers on both; a sweep resumes only with the thread "
          "count it was made with).")),
    ("ray_address", Optional[str], typer.Option(None, "--ray-address", rich_help_panel=_PANEL,
     help="auto (the cluster this node belongs to) or ray://HOST:10001; default: start a local Ray instance.")),
    ("cpus_per_task", float, typer.Option(1.0, "--cpus-per-task", rich_help_panel=_PANEL,
     help="CPUs each Ray task asks for.")),
    ("gpus_per_task", float, typer.Option(0.0, "--gpus-per-task", rich_help_panel=_PANEL,
     help="GPUs each Ray task asks for (fractions share a GPU).")),
    ("ray_storage", RayStorage, typer.Option(RayStorage("shared"), "--ray-storage", rich_help_panel=_PANEL,
     help="shared: tasks write the run directories (--out must be on a file system every node sees); driver: tasks "
          "return their files and this process writes them.")),
]


def with_options(options: list[tuple[str, Any, Any]], argument: str,
                 gather: Callable[[dict[str, Any]], Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator giving a command the option group ``options`` (``(name, type, typer.Option)``
    each) and calling it with ``gather(values)`` in its ``argument`` parameter: an option group
    is declared once and shared by the commands that take it."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(command)
        signature = inspect.signature(command)
        kept = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
                if p.name != argument]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                 for name, kind, option in options]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: _value(kwargs.pop(name)) for name, _, _ in options}
            return command(*args, **{argument: gather(given)}, **kwargs)

        del wrapper.__wrapped__  # typer must see the new signature, not the command's
        wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**{p.name: p.annotation for p in kept + added}, "return": None}
        return wrapper

    return decorate


def _executor_options(given: dict[str, Any]) -> ExecutorOptions:
    options = ExecutorOptions(name=given.pop("executor_name"), storage=given.pop("ray_storage"), **given)
    options.check()  # an unknown value, or Ray missing, fails here before any work
    return options


#: Give a command the executor options (:data:`EXECUTOR_OPTIONS`), as one checked
#: :class:`~dipscope.runs.ExecutorOptions` in its ``executor`` argument.
with_executor = with_options(EXECUTOR_OPTIONS, "executor", _executor_options)


def _value(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice


def comma_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise DipscopeError(f"{what} is empty")
    return items


def usage_error_line(error: Any) -> str:
    """A command-line parser's usage error as the one ``error:`` line of every user error,
    naming the command's ``--help`` (click prints a usage block and ``Error:`` instead)."""
    message = " ".join(str(error.format_message()).split())
    ctx = getattr(error, "ctx", None)
    path = getattr(ctx, "command_path", "") if ctx is not None else ""
    where = f" (see '{path} --help')" if path else " (see --help)"
    return f"error: {message}{where}"


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the app and turns user errors into one line and exit status 2.

    SIGINT and SIGTERM interrupt a fit cleanly (:mod:`dipscope.interrupts`): the outputs reached
    are saved and the process exits 130 (SIGINT) or 143 (SIGTERM). Freed memory is kept for
    reuse (:func:`dipscope.runtime.keep_freed_memory`; ``DIPSCOPE_MALLOC=system`` turns it off).
    """
    keep_freed_memory()
    previous = interrupts.install()
    with warnings.catch_warnings():  # restores the warning printer afterwards (tests call main in-process)
        warnings.simplefilter("once")  # an image read twice (checked, then fitted) warns once
        warnings.showwarning = _warning_line
        _main(argv, previous)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """A warning on the command line: one ``warning:`` line, without the source location."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def os_error_line(error: OSError) -> str:
    """An operating-system error as one line: what failed, on which file, and what to do."""
    where = f" ({error.filename})" if error.filename else ""
    text = f"{error.strerror or error}{where}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        text += "; free some space and run the command again (finished runs and tables are intact)"
    return text


def _main(argv: Optional[list[str]], previous: dict[int, object]) -> None:
    try:
        status = app(args=argv, standalone_mode=False)
        # typer catches a KeyboardInterrupt that escapes a command and returns 130 instead of raising
        if isinstance(status, int) and status != 0:
            if interrupts.received() is not None or status == 130:
                print(f"aborted by {interrupts.name()}", file=sys.stderr)
                sys.exit(interrupts.exit_code())
            sys.exit(status)
        if interrupts.received() is not None:  # a signal came while the results were being saved
            print(f"{interrupts.name()} received while saving: the results above are complete", file=sys.stderr)
            sys.exit(interrupts.exit_code())
    except DipscopeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:  # the system refused an operation (disk full, quota, busy): one line, as any error
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        print(f"aborted by {interrupts.name()}", file=sys.stderr)
        sys.exit(interrupts.exit_code())
    except Exception as e:
        # Usage errors and exits of the command-line parser (click, or the copy typer vendors).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            if type(e).__name__ == "NoArgsIsHelpError" or not hasattr(e, "format_message"):
                e.show()  # a command given without arguments: its help
            else:
                print(usage_error_line(e), file=sys.stderr)
            sys.exit(e.exit_code)
        if type(e).__name__ == "Exit" and hasattr(e, "exit_code"):
            sys.exit(e.exit_code)
        raise
    finally:
        interrupts.restore(previous)
