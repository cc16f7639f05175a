"""The ``soundnet`` command: a thin Typer shell over the library.

Each command lives in its own module here, named in :data:`COMMANDS` and imported only when that
command runs (or a help page lists it): ``soundnet tag`` loads no other command's module. Command
modules import torch and the heavy library modules inside the command bodies, so ``--help``
stays fast.

Exit codes: 0 when everything went well, 1 when any input failed (the rest are still processed and
the failures listed at the end) or the work could not be done, 2 for usage errors.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any

# OpenMP threads that spin at barriers waste the cores when decoding workers or other processes
# share them (measured: benchmarks/RESULTS.md). Only effective before torch is imported, which
# commands do lazily; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer
from typer.core import TyperGroup

from .._version import __version__
from .common import doc
from .helptypes import tidy_help_types

tidy_help_types()

#: command -> "module" in this package whose function of the same name is the command, or
#: "module:attribute" (a function, or a Typer app of subcommands); in the order help lists them.
COMMANDS: dict[str, str] = {
    "tag": "tag", "extract": "extract", "train": "train", "teach": "teach", "distill": "distill",
    "fit-svm": "svm:fit_svm_command", "merge": "merge", "review": "review", "clips": "clips",
    "evaluate": "evaluate", "detections": "detections", "units": "units", "weights": "weights:app",
}


class _Commands(TyperGroup):
    """The root group: builds a command from its module on first use (:data:`COMMANDS`)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            attr = attr or module
            target = getattr(importlib.import_module(f".{module}", __name__), attr)
            holder = typer.Typer(add_completion=False)  # built as the eager app built it
            holder.callback()(lambda: None)
            if isinstance(target, typer.Typer):
                holder.add_typer(target, name=cmd_name)
            else:
                holder.command(cmd_name)(target)
            command = typer.main.get_group(holder).commands[cmd_name]
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)


app = typer.Typer(
    name="soundnet",
    cls=_Commands,
    help="SoundNet for environmental sound: tag sounds, extract features, fit SVMs, train.",
    epilog=f"Reference pages (formats, options, examples): {doc()}",
    no_args_is_help=True,
    # `soundnet --install-completion` adds tab completion of commands, options and paths to
    # bash, zsh, fish or PowerShell (typer's completion; no torch import).
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"soundnet-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """SoundNet (Aytar, Vondrick, Torralba 2016) on raw 22,050 Hz waveforms."""
    _bytes_as_named()


def _bytes_as_named() -> None:
    """File names that are not UTF-8 (surrogate escapes in Python) are printed with the bytes
    the OS names them with, as `ls` and `find` do, instead of raising UnicodeEncodeError."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="surrogateescape")
            except (ValueError, OSError):  # a stream that cannot change (closed, detached)
                pass


def main() -> None:
    """Console-script entry point."""
    # Before torch (and its OpenMP runtime) is loaded by a command: idle OpenMP threads sleep
    # instead of spinning, which starve each other on a busy machine (benchmarks/RESULTS.md).
    # An explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Keep the network's per-batch blocks of megabytes in the heap instead of mmap/munmap-ing
    # them each time (soundnet_cli.runtime.allocator); before torch or any worker process exists.
    from ..runtime.allocator import tune_malloc
    from .common import handle_sigterm

    tune_malloc()
    handle_sigterm()  # SIGTERM ends a run as Ctrl-C does: outputs kept, workers stopped
    app()
