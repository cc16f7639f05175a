"""``soundnet units``: what each unit of a layer responds to most, over a collection or in one
recording (the paper's visualisations)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..runtime.options import BATCH_SIZE
from .common import (
    AudioProgress,
    BatchOpt,
    DeviceOpt,
    FilesFromOpt,
    OptionalInputsArg,
    QuietOpt,
    ShardOpt,
    WeightsOpt,
    WorkersOpt,
    choose_shard,
    err,
    gather_inputs,
    notes,
    out,
    report_failures,
    user_errors,
    warn,
)

DEFAULT_OUT = Path("units")


def units(
    inputs: OptionalInputsArg = None,
    layer: Annotated[str, typer.Option(
        "--layer", "-l", help="Layer whose units to study (conv1..conv7, pool5, ... or the "
        "original's module number, 24 = conv7).")] = "conv7",
    which: Annotated[str, typer.Option(
        "--units", "-u", metavar="all|RANGES|top-variance:N",
        help="Units to show: all, numbers and ranges (0-9,17), or top-variance:N (the N "
        "whose activations vary most over the collection).")] = "all",
    top: Annotated[int, typer.Option(
        "--top", "-k", min=1, help="Segments per unit (with --explain: units shown).")] = 8,
    per_recording: Annotated[int, typer.Option(
        "--per-recording", min=1, help="Most segments of one unit from one recording.")] = 1,
    segment_seconds: Annotated[Optional[float], typer.Option(
        "--segment-seconds", min=0.1, show_default="the peak frame's receptive field",
        help="Segment length centred on the peak frame.")] = None,
    out_dir: Annotated[Path, typer.Option(
        "--out", "-o", file_okay=False, show_default="./units",
        help="Output folder: units.json, units.csv, index.html, audio/, scan/.")] = DEFAULT_OUT,
    explain_file: Annotated[Optional[Path], typer.Option(
        "--explain", dir_okay=False, show_default=False,
        help="Explain one recording instead: its --top most active units as a table "
        "(stdout) and OUT/<name>.units.png.")] = None,
    gallery: Annotated[bool, typer.Option(
        "--gallery/--no-gallery", help="Write index.html with thumbnails and audio.")] = True,
    hints: Annotated[bool, typer.Option(
        "--hints/--no-hints", help="Score the heads on each unit's segments.")] = True,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Scan every recording again (default: reuse OUT/scan).")] = False,
    recursive: Annotated[bool, typer.Option(
        "--recursive/--no-recursive", "-r", help="Descend into sub-directories.")] = True,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = BATCH_SIZE,
    workers: WorkersOpt = None,
    shard: ShardOpt = None,
    files_from: FilesFromOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """What the units of a layer hear: each unit's top segments over DIRS, as units.json, units.csv and a gallery page (index.html) under --out.

    Every recording is scanned once: its per-unit peaks are kept in OUT/scan/, so a rerun (another --top or --units, or after an interruption) reuses them. With --shard I/N only that shard's recordings are scanned; a final run without --shard then reuses every scan and writes the results.

    --explain FILE: which units of --layer fire most in one recording, as a table and a heat map.
    """
    with user_errors():
        if explain_file is not None:
            if inputs or files_from:
                raise typer.BadParameter("give either --explain FILE or DIRS, not both")
            _explain(explain_file, layer, top, out_dir, weights, device, quiet)
            return
        code = _collection(inputs, files_from, layer, which, top, per_recording,
                           segment_seconds, out_dir, gallery, hints, overwrite, recursive,
                           weights, device, batch_size, workers, shard, quiet)
    raise typer.Exit(code)


def _collection(inputs: Any, files_from: Any, layer: str, which: str, top: int,
                per_recording: int, segment_seconds: float | None, out_dir: Path, gallery: bool,
                hints: bool, overwrite: bool, recursive: bool, weights: Any, device: str,
                batch_size: int, workers: Any, shard: Any, quiet: bool) -> int:
    import numpy as np

    from ..errors import SoundNetError
    from ..runtime.run import RunInputs, start_run
    from ..units import find_units, gather, parse_units

    part = choose_shard(shard)
    inputs, roots = gather_inputs(inputs, files_from)
    own = out_dir.resolve()

    def recordings(found: RunInputs) -> list[Path]:
        """The output folder holds audio too (the segments): never take it for recordings."""
        return [f for f in found.files if own not in f.resolve().parents]

    started = start_run(inputs, roots=roots, recursive=recursive, shard=part, weights=weights,
                        device=device, workers=workers, batch_size=batch_size, todo=recordings,
                        say=notes(quiet), option="--weights")
    files = recordings(started)
    failures = [(str(p), m) for p, m in started.problems]
    if not any(own not in f.resolve().parents for f in started.everyone) and not started.problems:
        return report_failures([("", "no audio files found in " +
                                 ", ".join(map(str, inputs)))], quiet)
    model = started.network
    name = model.resolve_layers([layer])[0]
    try:
        parse_units(which, model.channels(name), np.zeros(model.channels(name)))
    except SoundNetError as e:
        if started.decoder is not None:  # started early on the recordings: stop it
            started.decoder.close()
        raise typer.BadParameter(str(e), param_hint="--units") from None
    options = started.options
    with AudioProgress("scanning", len(files), quiet) as progress:
        def seen(outcome: Any) -> None:
            progress.advance(outcome.duration)
            for message in outcome.warnings:
                warn(message, quiet)

        opts = options.replace(on_audio=progress.audio)
        if part is not None:
            _, run = gather(model, files, name, out_dir, top=top, per_recording=per_recording,
                            roots=roots, overwrite=overwrite, options=opts, on_outcome=seen)
        else:
            run = find_units(model, files, name, out_dir, units=which, top=top,
                             per_recording=per_recording, segment_seconds=segment_seconds,
                             roots=roots, hints=hints, gallery=gallery, overwrite=overwrite,
                             options=opts, on_outcome=seen)
    failures += run.failures
    if not quiet:
        err.print(f"{run.scanned} recording(s) scanned, {run.reused} reused from "
                  f"{out_dir / 'scan'}", highlight=False, soft_wrap=True)
        if part is not None:
            err.print(f"shard {part}: scans written; run again without --shard to gather the "
                      "results", highlight=False, soft_wrap=True)
    if part is None:
        for message in run.problems:
            warn(message, quiet)
        _print_summary(run, out_dir, quiet)
    return report_failures(failures, quiet)


def _print_summary(run: Any, out_dir: Path, quiet: bool) -> None:
    """One line per unit that ever fired on stdout (most consistent first): unit, consistency,
    hint, top file; units that never did and the files written on stderr."""
    for e in (e for e in run.entries if e.active):
        hint = (f"{e.hint.agree}/{e.hint.segments} {e.hint.head}: {e.hint.label}"
                if e.hint is not None else "")
        first = e.segments[0] if e.segments else None
        where = f"{first.file} {first.start:.2f}-{first.end:.2f}s" if first else "(no segment)"
        out.print(f"unit {e.unit}\t{hint}\t{where}", highlight=False, markup=False)
    if not quiet:
        dead = sum(not e.active for e in run.entries)
        if dead:
            err.print(f"{dead} unit(s) never exceeded zero on these recordings (listed in "
                      "units.json with active: false)", highlight=False, soft_wrap=True)
        err.print("wrote " + ", ".join(str(p) for p in run.written), highlight=False,
                  soft_wrap=True)


def _explain(path: Path, layer: str, top: int, out_dir: Path, weights: Any, device: str,
             quiet: bool) -> None:
    from rich.table import Table

    from ..plot import save_figure
    from ..runtime.options import RunOptions
    from ..units import explain, explain_figure
    from ..weights.registry import load_model

    model = load_model(weights, device)
    exp = explain(model, path, layer, top,
                  options=RunOptions(device=next(model.parameters()).device))
    table = Table(title=f"{path.name}: top {len(exp.top)} {exp.layer} units", title_justify="left")
    for col in ("rank", "unit", "peak", "at (s)", "mean", *(h.name for h in exp.heads)):
        table.add_column(col, justify="right" if col not in {h.name for h in exp.heads}
                         else "left")
    for row in exp.rows():
        table.add_row(str(row["rank"]), str(row["unit"]), f"{row['peak']:.3g}",
                      f"{row['time']:.2f}", f"{row['mean']:.3g}",
                      *(f"{row[h.name][0]} ({row[h.name][1]:.2f})" for h in exp.heads))
    out.print(table)
    png = out_dir / f"{path.stem}.units.png"
    save_figure(explain_figure(exp), png,
                {"input": str(path), "layer": exp.layer, "network": model.source or "(in memory)"},
                dpi=150)
    if not quiet:
        err.print(f"wrote {png}", highlight=False, soft_wrap=True)
