"""The ``soundnet`` command: a thin Typer shell over the library.

Each command group lives in its own module here and is registered below. Command modules import
torch and the heavy library modules inside the command bodies, so ``soundnet --help`` stays fast.

Exit codes: 0 when everything went well, 1 when any input failed (the rest are still processed and
the failures listed at the end) or the work could not be done, 2 for usage errors.
"""

from __future__ import annotations

import os
from typing import Annotated

# OpenMP threads that spin at barriers waste the cores when decoding workers or other processes
# share them (measured: benchmarks/RESULTS.md). Only effective before torch is imported, which
# commands do lazily; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer

from .._version import __version__
from . import clips as _clips
from . import detections as _detections
from . import distill as _distill
from . import evaluate as _evaluate
from . import extract as _extract
from . import merge as _merge
from . import review as _review
from . import svm as _svm
from . import tag as _tag
from . import teach as _teach
from . import train as _train
from . import units as _units
from . import weights as _weights
from .common import doc
from .helptypes import tidy_help_types

tidy_help_types()

app = typer.Typer(
    name="soundnet",
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


# Command groups register themselves here, one line each.
app.command("tag")(_tag.tag)
app.command("extract")(_extract.extract)
app.command("train")(_train.train)
app.command("teach")(_teach.teach)
app.command("distill")(_distill.distill)
app.add_typer(_weights.app, name="weights")
app.command("fit-svm")(_svm.fit_svm_command)
app.command("merge")(_merge.merge)
app.command("review")(_review.review)
app.command("clips")(_clips.clips)
app.command("evaluate")(_evaluate.evaluate)
app.command("detections")(_detections.detections)
app.command("units")(_units.units)


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
