"""``soundnet clips OUT``: cut chosen detections of a run into short audio files plus a CSV for
a person's verdicts."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import QuietOpt, doc, err, report_failures, user_errors, warn
from .detections import MetaOpt, TimeFromNameOpt, TzOpt, placed_detections


class Mode(str, Enum):
    top = "top"
    random = "random"
    balanced = "balanced"


class ClipFormat(str, Enum):
    flac = "flac"
    wav = "wav"
    ogg = "ogg"


def clips(
    run_dir: Annotated[Path, typer.Argument(help="A `soundnet tag --out` folder (a merged "
                                            "sharded run works too).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", file_okay=False, show_default=False,
                                          help="Folder for the clips and clips.csv.")],
    classes: Annotated[Optional[list[str]], typer.Option(
        "--class", "-c", show_default="every class with events",
        help="Only events of this class (repeat, or comma-separate).")] = None,
    head: Annotated[Optional[str], typer.Option(
        "--head", show_default="all heads", help="Only events of this head.")] = None,
    min_conf: Annotated[float, typer.Option(
        "--min-conf", help="Lowest event score (its max step score) to consider.")] = 0.0,
    per_class: Annotated[int, typer.Option("--per-class", "-n", min=1,
                                           help="Clips per class, at most.")] = 20,
    mode: Annotated[Mode, typer.Option(
        "--mode", help="top: highest scores; random: uniform sample; balanced: equal shares of "
        "four score bins (for choosing a threshold from the verdicts).")] = Mode.top,
    margin: Annotated[float, typer.Option(
        "--margin", min=0.0, help="Seconds of context before the onset and after the offset.")]
    = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random and balanced.")] = 0,
    fmt: Annotated[ClipFormat, typer.Option("--format", "-f", help="Clip audio format.")]
    = ClipFormat.flac,
    time_from_name: TimeFromNameOpt = None,
    tz: TzOpt = None,
    meta: MetaOpt = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing clips.csv (and its verdicts).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Cut chosen detections into short audio files, with a CSV for your verdicts.

    The clips are FLAC by default; OUT/clips.csv has source, onset, offset, class, score and an
    empty verdict column to fill in (then `soundnet evaluate RUN --truth OUT/clips.csv`).

    One line per class goes to stdout: how many clips were cut of how many detections.
    Deterministic: the same run, options and --seed give the same clips.
    """
    from ..review.clips import choose, cut_clips

    with user_errors():
        _, placement, found = placed_detections(run_dir, classes, head, min_conf,
                                                time_from_name, tz, meta)
        chosen = choose(found, per_class, mode.value, seed)
        report = cut_clips(chosen, out_dir, margin=margin, fmt=fmt.value, overwrite=overwrite,
                           extra=lambda d: placement.row(d.source, d.start, d.end))
    for source in placement.unknown:
        warn(f"{source}: no recording time in its name; its clips have no clock times", quiet)
    available: dict[str, int] = {}
    for det in found:
        available[det.label] = available.get(det.label, 0) + 1
    cut: dict[str, int] = {}
    for row in report.rows:
        cut[row["class"]] = cut.get(row["class"], 0) + 1
    for label in sorted(available):
        sys.stdout.write(f"{label}\t{cut.get(label, 0)} clip(s) of {available[label]} "
                         "detection(s)\n")
    if not quiet:
        err.print(f"{len(report.rows)} clip(s) ({mode.value}, seed {seed}); verdicts go in "
                  f"{report.csv}", highlight=False, soft_wrap=True)
    raise typer.Exit(report_failures(report.failed, quiet))


clips.__doc__ = f"{clips.__doc__}\n\n    Reference: {doc('review.md')}\n"
