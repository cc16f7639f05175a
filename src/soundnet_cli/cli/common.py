"""What every command shares: option types, consoles, progress, error reporting, exit codes."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Iterator, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape

#: Results go to stdout; progress and diagnostics to stderr (so `--json | jq` works).
out = Console(soft_wrap=True)
err = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="Checkpoint path or name of an imported network "
                 "(default: the embedded network).", show_default=False),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", "-d", help="auto, cpu, cuda, cuda:N or mps.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")]
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into sub-directories of DIR inputs.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Files per forward pass.")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=0,
                                         help="Decoding processes (0: decode in the main process).")]
InputsArg = Annotated[
    list[Path], typer.Argument(help="Audio files and/or directories.", show_default=False)
]


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    # soft_wrap: long paths stay whole (the terminal wraps them), so they can be copied
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True,
              soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's exceptions into a message and an exit code (2 for bad options)."""
    from ..errors import DeviceError, LayerError, SoundNetError

    try:
        yield
    except (LayerError, DeviceError) as e:
        fail(str(e), EXIT_USAGE)
    except SoundNetError as e:
        fail(str(e), EXIT_FAILED)
    except KeyboardInterrupt:
        err.print("interrupted; finished outputs are kept, a rerun resumes")
        raise typer.Exit(130)


def make_progress(quiet: bool):
    """A Rich progress display on stderr (disabled with ``quiet`` or when stderr is not a TTY and
    nothing would be shown)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[audio]}"), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, disable=quiet, transient=False,
    )


def report_failures(failures: list[tuple[str, str]], quiet: bool = False) -> int:
    """List failed inputs on stderr; return the exit code for the run."""
    if not failures:
        return EXIT_OK
    err.print(f"[bold red]{len(failures)} input(s) failed:[/]")
    for _, message in failures:
        err.print(f"  {message}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_FAILED


def warn(message: str, quiet: bool) -> None:
    if not quiet:
        err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()
