"""``find_units``: the whole of ``soundnet units DIR`` as one library call.

Scan every recording (:mod:`.scan`, reusing earlier scans), merge the peaks into each unit's top
segments (:class:`.top.UnitTops`, memory ``units x top``), choose the units, describe their
segments (:mod:`.report`: head hints, thumbnails, audio) and write ``units.json``, ``units.csv``
and the gallery ``index.html`` under the output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .report import UnitEntry, describe_units, sort_entries, write_tables
from .scan import ScanOutcome, scan_files
from .top import UnitTops, parse_units

if TYPE_CHECKING:
    from ..model import SoundNet
    from ..runtime.options import RunOptions


@dataclass
class UnitsRun:
    """What :func:`find_units` did: the units (most consistent hint first), the failed
    recordings ``[(path, message)]``, the scan's warnings, segments that could not be described
    (``problems``), how many recordings were scanned now or reused, and the files written."""

    entries: list[UnitEntry]
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scanned: int = 0
    reused: int = 0
    written: list[Path] = field(default_factory=list)


def gather(model: SoundNet, paths: Sequence[Path], layer: str, out_dir: Path, *, top: int,
           per_recording: int = 1, roots: Sequence[Path] = (), overwrite: bool = False,
           options: RunOptions | None = None,
           on_outcome: Callable[[ScanOutcome], None] | None = None) -> tuple[UnitTops, UnitsRun]:
    """Scan ``paths`` and merge every recording's peaks into the units' top table; the
    :class:`UnitsRun` so far holds the failures, warnings and counts (no entries yet)."""
    tops = UnitTops(model.channels(layer), top)
    run = UnitsRun([])
    order = {p: i for i, p in enumerate(paths)}
    for outcome in scan_files(model, paths, layer, out_dir, roots=roots,
                              per_recording=per_recording, overwrite=overwrite, options=options):
        if on_outcome is not None:
            on_outcome(outcome)
        run.warnings += outcome.warnings
        if outcome.peaks is None:
            run.failures.append((str(outcome.path), outcome.error or "failed"))
            continue
        run.reused += outcome.reused
        run.scanned += not outcome.reused
        tops.add(str(outcome.path), outcome.peaks, key=order[outcome.path])
    return tops, run


def find_units(model: SoundNet, paths: Sequence[str | Path], layer: str | int,
               out_dir: str | Path, *, units: str = "all", top: int = 8, per_recording: int = 1,
               segment_seconds: float | None = None, roots: Sequence[str | Path] = (),
               hints: bool = True, gallery: bool = True, overwrite: bool = False,
               options: RunOptions | None = None,
               on_outcome: Callable[[ScanOutcome], None] | None = None,
               on_segment: Callable[[], None] | None = None) -> UnitsRun:
    """Find what the units of ``layer`` respond to most in ``paths`` and write the results.

    Parameters
    ----------
    model
        An eval-mode network; its heads (if any) give the hints.
    paths, roots
        Recordings, and the folders they were found in (scan files mirror the tree).
    layer
        Public name or module number (``conv7`` or ``24``).
    units
        ``all``, numbers and ranges (``0-9,17``) or ``top-variance N`` (:func:`.top.parse_units`).
    top, per_recording
        Segments kept per unit, and at most how many of them from one recording.
    segment_seconds
        Segment length centred on the peak frame (``None``: the frame's receptive field).
    hints, gallery
        Score the heads on the segments; write thumbnails, audio and ``index.html``.
    overwrite
        Scan every recording again instead of reusing ``out_dir/scan``.
    options
        Scheduling (:class:`~soundnet_cli.runtime.options.RunOptions`).

    Returns
    -------
    UnitsRun
        The units written (most consistent hint first) and what failed. Raises
        :class:`~soundnet_cli.errors.SoundNetError` for a bad ``units``, an output folder
        made with another network, or a gallery without matplotlib, before scanning.
    """
    name = model.resolve_layers([layer])[0]
    if gallery:  # thumbnails need matplotlib: say so before scanning, not after
        from ..plot import _pyplot

        _pyplot()
    out = Path(out_dir)
    files = [Path(p) for p in paths]
    # A bad --units stops the run before any scanning (zeros stand in for the variances).
    parse_units(units, model.channels(name), np.zeros(model.channels(name)))
    tops, run = gather(model, files, name, out, top=top, per_recording=per_recording,
                       roots=[Path(r) for r in roots], overwrite=overwrite, options=options,
                       on_outcome=on_outcome)
    chosen = parse_units(units, model.channels(name), tops.variance())
    variance = tops.variance()
    segments = tops.segments(model, name, chosen, segment_seconds)
    run.entries = [UnitEntry(u, float(variance[u]), segments[u]) for u in chosen]
    durations = {p: n / model.config.sample_rate for p, n in zip(tops.paths, tops.samples)}
    run.problems += describe_units(model, run.entries, durations, hints=hints,
                                   media_dir=out if gallery else None, on_segment=on_segment)
    run.entries = sort_entries(run.entries)
    settings = _settings(model, name, units, top, per_recording, segment_seconds, len(tops.paths))
    run.written += write_tables(out, run.entries, settings)
    if gallery:
        from .gallery import write_gallery

        run.written.append(write_gallery(out, run.entries, settings))
    return run


def _settings(model: SoundNet, layer: str, units: str, top: int, per_recording: int,
              segment_seconds: float | None, recordings: int) -> dict[str, Any]:
    axis = model.time_axis(layer)
    segment = (f"receptive field ({axis.window:.3f} s)" if segment_seconds is None
               else f"{segment_seconds:g} s around the peak")
    return {"layer": layer, "network": model.source or "(in memory)",
            "fingerprint": model.fingerprint, "units_selected": units, "top": top,
            "per_recording": per_recording, "segment": segment,
            "hop_seconds": axis.hop, "window_seconds": axis.window,
            "recordings": recordings, "heads": list(model.config.head_names)}
