"""Detections placed in time and space (``soundnet detections OUT``): one row per event with
clock times and site columns, and counts per hour and per day.

Files written into the output folder:

- ``detections.csv``: ``source, head, class, onset, offset, score, mean_score`` and, with
  ``--time-from-name``, ``recording_start, start_time, end_time`` (ISO 8601 with the offset),
  and the ``--meta`` columns;
- ``per_hour.csv`` and ``per_day.csv`` (with ``--time-from-name``): ``[group,] hour|day, class,
  detections`` (the hour's start or the date in ``--tz``), grouped by the ``site`` column when
  the metadata has one;
- ``activity.png`` (with matplotlib): detections per hour of day, one line per class.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Sequence

from ..files.fsutil import atomic_write_text
from .clips import Detection
from .timeinfo import Placement, activity

BASE_COLUMNS = ("source", "head", "class", "onset", "offset", "score", "mean_score")


def detection_rows(found: Sequence[Detection], placement: Placement) -> list[dict[str, Any]]:
    """One row per detection: :data:`BASE_COLUMNS` then ``placement``'s columns."""
    return [{"source": d.source, "head": d.head, "class": d.label, "onset": f"{d.start:.4f}",
             "offset": f"{d.end:.4f}", "score": f"{d.score:.6f}",
             "mean_score": f"{d.mean_score:.6f}", **placement.row(d.source, d.start, d.end)}
            for d in found]


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """``rows`` as a CSV with a header, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def write_tables(found: Sequence[Detection], placement: Placement,
                 out_dir: str | os.PathLike, *, plot: bool = True) -> dict[str, Any]:
    """Write the files of the module docs; returns ``{name: path}`` and the per-day rows
    (``"per_day_rows"``) for printing."""
    out = Path(out_dir)
    rows = detection_rows(found, placement)
    written: dict[str, Any] = {"detections": write_csv(
        out / "detections.csv", [*BASE_COLUMNS, *placement.columns], rows)}
    if placement.spec is None:
        return written
    group = "site" if placement.sites is not None and "site" in placement.sites.columns \
        else None
    lead = [group] if group else []
    per_hour = activity(rows, "hour", group)
    per_day = activity(rows, "day", group)
    written["per_hour"] = write_csv(out / "per_hour.csv",
                                    [*lead, "hour", "class", "detections", "hour_of_day"],
                                    per_hour)
    written["per_day"] = write_csv(out / "per_day.csv", [*lead, "day", "class", "detections"],
                                   per_day)
    written["per_day_rows"] = per_day
    if plot and per_hour:
        from .plots import activity_figure

        written["activity"] = activity_figure(per_hour, out / "activity.png",
                                              "detections per hour of day")
    return written
