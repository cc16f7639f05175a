"""``soundnet review OUT``: the review page of a finished ``tag --out`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import QuietOpt, doc, err, out, user_errors, warn
from .detections import MetaOpt, TimeFromNameOpt, TzOpt

MarginOpt = Annotated[float, typer.Option(
    "--margin", min=0.0, help="Seconds played before each event's onset and after its offset "
    "(changeable on the page).")]


def review(
    out_dir: Annotated[Path, typer.Argument(help="A `soundnet tag --out` folder.",
                                            show_default=False)],
    margin: MarginOpt = 1.0,
    spectrograms: Annotated[bool, typer.Option(
        "--spectrograms/--no-spectrograms",
        help="Make the spectrogram pictures that are missing or older than their audio "
        "(decodes those inputs).")] = True,
    copy_audio: Annotated[bool, typer.Option(
        "--copy-audio", help="Copy the audio under OUT/review/audio, so OUT alone can be "
        "shared; default: the page plays the recordings where they are.")] = False,
    time_from_name: TimeFromNameOpt = None,
    tz: TzOpt = None,
    meta: MetaOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write OUT/review.html: a static page to look at, filter and listen to a run's results.

    Every input with its labels, its events (each with a play button), its spectrogram and
    score timeline; filters by head, class and score; sortable; paginated.

    The page is static (no server, no network access): open it in a browser from disk. Its path
    goes to stdout.
    """
    from ..review.page import write_page
    from ..review.timeinfo import Placement
    from .common import make_progress

    with user_errors():
        placement = None
        if time_from_name is not None or meta is not None or tz is not None:
            placement = Placement.from_options(time_from_name, tz, meta)
        # a bar on a terminal; elsewhere the summary line below says it all
        with make_progress(quiet or not err.is_terminal) as progress:
            task = progress.add_task("review page", total=None, audio="", rate="")
            report = write_page(out_dir, margin=margin, spectrograms=spectrograms,
                                copy_audio=copy_audio, placement=placement,
                                progress=lambda n: progress.advance(task, n))
    for problem in report.problems:
        warn(problem, quiet)
    if not quiet:
        err.print(f"{report.inputs} input(s) on the page, {report.spectrograms} spectrogram(s) "
                  "made", highlight=False)
    out.print(str(report.path), highlight=False, soft_wrap=True)


review.__doc__ = f"{review.__doc__}\n\n    Reference: {doc('review.md')}\n"
