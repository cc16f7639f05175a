"""``soundnet detections OUT``: every event of a run with clock times and site columns, and
detections per hour and per day."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .common import QuietOpt, doc, err, user_errors, warn

if TYPE_CHECKING:
    from ..review.clips import Detection
    from ..review.rundir import RunDir
    from ..review.timeinfo import Placement

TimeFromNameOpt = Annotated[Optional[str], typer.Option(
    "--time-from-name", metavar="auto|audiomoth|song-meter|PATTERN", show_default=False,
    help="Read each recording's start from its file name (AudioMoth 20250714_085526.WAV, Song "
    "Meter SITE_20250714_085526.wav, or a strftime pattern such as %Y%m%d-%H%M%S); events get "
    "ISO 8601 start and end times.")]
TzOpt = Annotated[Optional[str], typer.Option(
    "--tz", show_default="UTC", help="Time zone of the names' clock: an IANA name "
    "(Europe/Berlin) or +HH:MM.")]
MetaOpt = Annotated[Optional[Path], typer.Option(
    "--meta", show_default=False, help="CSV keyed by file or folder (first column) whose other "
    "columns (site, latitude, longitude, ...) are added to every row.")]


def detections(
    run_dir: Annotated[Path, typer.Argument(help="A `soundnet tag --out` folder.",
                                            show_default=False)],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", file_okay=False, show_default="OUT/detections",
        help="Where detections.csv, per_hour.csv, per_day.csv and activity.png go.")] = None,
    time_from_name: TimeFromNameOpt = None,
    tz: TzOpt = None,
    meta: MetaOpt = None,
    classes: Annotated[Optional[list[str]], typer.Option(
        "--class", "-c", show_default="all", help="Only these classes (repeat or "
        "comma-separate).")] = None,
    head: Annotated[Optional[str], typer.Option("--head", show_default="all heads",
                                                help="Only this head's events.")] = None,
    min_conf: Annotated[float, typer.Option(
        "--min-conf", help="Lowest event score (max step score) to count.")] = 0.0,
    plot: Annotated[bool, typer.Option(
        "--plot/--no-plot", help="activity.png: detections per hour of day (needs "
        "matplotlib).")] = True,
    quiet: QuietOpt = False,
) -> None:
    """Place a run's detections in time and space: clock times, sites, counts per hour and day.

    Writes detections.csv (one row per event, with ISO 8601 times and site columns), and with
    --time-from-name detections per hour and per day (tables and a plot).

    Stdout: the per-day table (tab-separated), or the number of detections without times.
    """
    import importlib.util

    from ..review.tables import write_tables

    with user_errors():
        run, placement, found = placed_detections(run_dir, classes, head, min_conf,
                                                  time_from_name, tz, meta)
        plot = plot and importlib.util.find_spec("matplotlib") is not None
        written = write_tables(found, placement, out_dir or run.out_dir / "detections",
                               plot=plot)
    for source in placement.unknown:
        warn(f"{source}: no recording time in its name ({time_from_name}); its rows have no "
             "clock times", quiet)
    days = written.get("per_day_rows")
    if days is None:
        sys.stdout.write(f"{len(found)} detection(s)\n")
    else:
        columns = list(days[0]) if days else ["day", "class", "detections"]
        sys.stdout.write("\t".join(columns) + "\n")
        sys.stdout.writelines("\t".join(str(r[c]) for c in columns) + "\n" for r in days)
    if not quiet:
        files = ", ".join(str(v) for k, v in written.items() if k != "per_day_rows")
        err.print(f"{len(found)} detection(s); {files}", highlight=False, soft_wrap=True)


detections.__doc__ = f"{detections.__doc__}\n\n    Reference: {doc('review.md')}\n"


def placed_detections(run_dir: Path, classes: Optional[list[str]], head: Optional[str],
                      min_conf: float, time_from_name: Optional[str], tz: Optional[str],
                      meta: Optional[Path]) -> tuple[RunDir, Placement, list[Detection]]:
    """The run in ``run_dir``, where and when its recordings were made (``--time-from-name``,
    ``--tz``, ``--meta``) and its events chosen by ``--class`` (repeated or comma-separated),
    ``--head`` and ``--min-conf``: what ``detections`` and ``clips`` start from."""
    from ..review.clips import detections as find
    from ..review.rundir import open_run
    from ..review.timeinfo import Placement

    wanted = None if not classes else [c.strip() for v in classes for c in v.split(",")
                                       if c.strip()]
    placement = Placement.from_options(time_from_name, tz, meta)
    run = open_run(run_dir)
    placement.cwd = run.cwd
    return run, placement, find(run, classes=wanted, head=head, min_conf=min_conf)
