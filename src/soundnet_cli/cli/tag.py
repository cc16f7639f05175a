"""``soundnet tag``: top-k labels per head for audio files (table, JSON Lines or CSV)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..runtime.options import BATCH_SIZE, LONG_FILE_SECONDS, RunOptions
from ..runtime.workers import early_decoder
from .common import (
    AudioProgress,
    BatchOpt,
    DeviceOpt,
    InputsArg,
    QuietOpt,
    RecursiveOpt,
    WeightsOpt,
    WorkersOpt,
    doc,
    out,
    report_failures,
    user_errors,
    warn,
)

if TYPE_CHECKING:
    from ..tag import TagResult


TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels shown per head.")]
SegmentsOpt = Annotated[bool, typer.Option(
    "--segments", "-s",
    help="Also show the top labels of every time step, with start/end seconds.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help=f"JSON Lines on stdout: one object per file (schema: {doc('tag.md')}).")]
CsvOpt = Annotated[bool, typer.Option(
    "--csv", help="Long-format CSV on stdout: one row per file, head, step and rank.")]


def tag(
    inputs: InputsArg,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    top_k: TopKOpt = 5,
    segments: SegmentsOpt = False,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    svm: Annotated[Optional[Path], typer.Option(
        "--svm", help="Tag with the classes of an SVM saved by `soundnet fit-svm --out` "
        "(decision values, not probabilities) instead of the network's heads.")] = None,
    recursive: RecursiveOpt = False,
    batch_size: BatchOpt = BATCH_SIZE,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tag sounds: the top labels of every head (objects, scenes, ...) for each FILE or DIR.

    Clip-level scores average the per-step softmax; clips shorter than the network's tile_seconds (5 s for the embedded network, 10 s for the original SoundNet) are tiled (repeated) to that length first, as the original does.

    Results go to stdout; progress and warnings to stderr.
    """
    if json_out and csv_out:
        raise typer.BadParameter("--json and --csv are mutually exclusive", param_hint="--json")
    failures: list[tuple[str, str]] = []
    with user_errors():
        from ..audio import find_audio_files

        files, missing = find_audio_files(inputs, recursive=recursive)
        # Decoding starts before torch loads (~1.5 s), so the network finds work waiting.
        decoder = early_decoder(weights, device, files, workers, LONG_FILE_SECONDS)

        from ..tag import TagResult, tag_files
        from ..weights.registry import load_model

        model = load_model(weights, device)
        scorers = _svm_scorers(svm, model) if svm is not None else None
        options = RunOptions.plan(next(model.parameters()).device, len(files), workers=workers,
                                  decoder=decoder, batch_size=batch_size)
        failures += [(str(p), f"{p}: no such file or directory") for p in missing]
        if not files and not missing:
            failures.append(("", "no audio files found in " + ", ".join(map(str, inputs))))
        emit = _emitter("json" if json_out else "csv" if csv_out else "table", top_k, segments)
        for path, message in failures:
            if path:  # --json lists missing inputs too
                emit(TagResult(Path(path), error=message))
        with AudioProgress("tagging", len(files), quiet) as progress:
            for result in tag_files(model, files, scorers=scorers, options=options):
                progress.advance(result.duration)
                if not result.ok:
                    failures.append((str(result.path), result.error or "failed"))
                for message in result.warnings:
                    warn(message, quiet)
                emit(result)
    raise typer.Exit(report_failures(failures, quiet))


def _svm_scorers(path: Path, model: Any) -> list:
    """The SVM as the only scorer (tag_files runs the network at the SVM's input scale)."""
    from ..svm.model import SvmModel
    from ..tag import SvmScorer

    return [SvmScorer(SvmModel.load(path, expected_fingerprint=model.fingerprint))]


def _emitter(fmt: str, top_k: int, segments: bool):
    """A function printing one :class:`TagResult` to stdout in ``fmt``."""
    if fmt == "json":
        import json

        from ..tag import result_to_json

        def emit_json(result: "TagResult") -> None:
            sys.stdout.write(json.dumps(result_to_json(result, top_k, segments)) + "\n")
            sys.stdout.flush()

        return emit_json
    if fmt == "csv":
        import csv

        from ..tag import CSV_COLUMNS, result_csv_rows

        writer: Any = None

        def emit_csv(result: "TagResult") -> None:
            nonlocal writer
            if writer is None:  # bind to the stdout current at the first row (CliRunner swaps it)
                writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
                writer.writeheader()
            writer.writerows(result_csv_rows(result, top_k, segments))
            sys.stdout.flush()

        return emit_csv
    return lambda result: _print_table(result, top_k, segments)


def _print_table(result: "TagResult", top_k: int, segments: bool) -> None:
    """A Rich table per file: rows are the clip and (with ``segments``) each step; one column per
    head holding its top-k labels and scores. Heads whose steps differ get separate tables."""
    if not result.ok:
        return
    note = f", tiled to {result.analysed_duration:.2f} s" if result.tiled else ""
    title = f"{result.path}  ({result.duration:.2f} s{note})"
    groups: dict[tuple, list] = {}
    for head in result.heads:
        key = (head.steps, head.hop, head.window, head.offset) if segments else ()
        groups.setdefault(key, []).append(head)
    for heads in groups.values() or [[]]:
        out.print(_table(title, result, heads, top_k, segments))


def _table(title: str, result: "TagResult", heads: list, top_k: int, segments: bool) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left", show_lines=True)
    table.add_column("segment", no_wrap=True)
    for head in heads:
        table.add_column(escape(f"{head.name} ({'p' if head.probabilities else 'score'})"))

    def cell(head: Any, step: int | None) -> str:
        ranked = head.top_k(top_k, step)
        return "\n".join(f"{lab.score:.3f}  {escape(lab.label)}" for lab in ranked)

    table.add_row("clip", *(cell(h, None) for h in heads))
    if segments and heads:
        for i, (start, end) in enumerate(heads[0].segments(result.analysed_duration)):
            table.add_row(f"{i}: {start:.2f}-{end:.2f} s", *(cell(h, i) for h in heads))
    return table
