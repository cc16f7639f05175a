"""The ``soundnet`` command: a thin Typer shell over the library.

Each command group lives in its own module here and is registered below. Command modules import
torch and the heavy library modules inside the command bodies, so ``soundnet --help`` stays fast.

Exit codes: 0 when everything went well, 1 when any input failed (the rest are still processed and
the failures listed at the end) or the work could not be done, 2 for usage errors.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .._version import __version__

app = typer.Typer(
    name="soundnet",
    help="SoundNet for environmental sound: tag sounds, extract features, fit SVMs, train.",
    no_args_is_help=True,
    add_completion=False,
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
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """SoundNet (Aytar, Vondrick, Torralba 2016) on raw 22,050 Hz waveforms."""


# Command groups register themselves here, one line each.
from . import svm as _svm  # noqa: E402

app.command("fit-svm")(_svm.fit_svm_command)


def main() -> None:
    """Console-script entry point."""
    app()
