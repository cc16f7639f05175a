"""``soundnet tag``: labels per head for audio files (table, summary, JSON Lines, CSV, or files)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from ..runtime.options import BATCH_SIZE
from .common import (
    AudioProgress,
    BatchOpt,
    DeviceOpt,
    FilesFromOpt,
    OptionalInputsArg,
    QuietOpt,
    RecursiveOpt,
    RunWarnings,
    ShardOpt,
    WeightsOpt,
    WorkersOpt,
    choose_shard,
    doc,
    err,
    gather_inputs,
    notes,
    out,
    report_failures,
    user_errors,
    warn,
)
from .stdin import NO_STDIN, StdinNameOpt, StdinNames, spooled_stdin

if TYPE_CHECKING:
    from ..runtime.options import RunOptions
    from ..runtime.run import FileRun
    from ..tagging.events import DetectOptions
    from ..tagging.results import TagResult

#: With more files than this, the table output becomes one line per file (see --summary).
SUMMARY_AFTER = 5

TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels shown per head.")]
SegmentsOpt = Annotated[bool, typer.Option(
    "--segments", "-s",
    help="Also show the top labels of every time step, with start/end seconds.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="JSON Lines on stdout: one object per file (schema: the reference page "
    "named below).")]
CsvOpt = Annotated[bool, typer.Option(
    "--csv", help="Long-format CSV on stdout: one row per file, head, scope, step and rank.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", file_okay=False, show_default=False,
    help="Write results as files here: one set per input (tree mirrored), combined tables and "
    "run.json; inputs already done with the same network and settings are skipped.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="With --out: jsonl, csv, raven, audacity, parquet, png, scores "
    "(every step's score, for `soundnet evaluate`), html (the review page), comma-separated, "
    "or all.")]
MinConfOpt = Annotated[Optional[str], typer.Option(
    "--min-conf", metavar="P|@FILE", show_default="each head's measured default (embedded "
    "network: objects 0.1, scenes 0.1, esc50 0.6), else 0.5 for probabilities, 0 for SVM scores",
    help="Drop labels scoring below this (clip and steps); 'no confident label' when none is "
    "left. @FILE: one threshold per class from a CSV (class,threshold; `soundnet evaluate` "
    "writes one).")]
ClassesOpt = Annotated[Optional[str], typer.Option(
    "--classes", show_default=False,
    help="Only these labels: comma-separated names, or @FILE with one name per line.")]
MergeOpt = Annotated[bool, typer.Option(
    "--merge/--no-merge", help="Merge consecutive steps of one label into events (Raven, "
    "Audacity, JSON, CSV); --no-merge: one event per step.")]
GapOpt = Annotated[float, typer.Option(
    "--min-gap", min=0.0, help="Seconds between two detections of one label that still merge "
    "into one event (0: only consecutive steps).")]
SummaryOpt = Annotated[Optional[bool], typer.Option(
    "--summary/--no-summary", show_default=f"on for more than {SUMMARY_AFTER} files",
    help="One line per file (the best labels) instead of a table per file.")]
PlotOpt = Annotated[bool, typer.Option(
    "--plot", help="With --out: a PNG per input (spectrogram, score timeline, events); same as "
    "adding png to --format. Needs matplotlib.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="With --out: recompute inputs that are already done.")]


SvmOpt = Annotated[Optional[Path], typer.Option(
    "--svm", help="Tag with the classes of an SVM saved by `soundnet fit-svm --out` "
    "(decision values, not probabilities) instead of the network's heads.")]


def tag(
    inputs: OptionalInputsArg = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    top_k: TopKOpt = 5,
    min_conf: MinConfOpt = None,
    classes: ClassesOpt = None,
    segments: SegmentsOpt = False,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    summary: SummaryOpt = None,
    out_dir: OutOpt = None,
    formats: FormatOpt = "jsonl,csv",
    plot: PlotOpt = False,
    merge: MergeOpt = True,
    min_gap: GapOpt = 0.0,
    overwrite: OverwriteOpt = False,
    svm: SvmOpt = None,
    recursive: RecursiveOpt = False,
    batch_size: BatchOpt = BATCH_SIZE,
    workers: WorkersOpt = None,
    shard: ShardOpt = None,
    files_from: FilesFromOpt = None,
    stdin_name: StdinNameOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Tag sounds: the confident labels of every head (objects, scenes, ...) for each FILE or DIR.

    Clip-level scores average the per-step softmax; clips shorter than the heads' shortest input (10.98 s for SoundNet-8) are looped to that length first. Labels below --min-conf are dropped.

    Results go to stdout (or, with --out, to files); progress and warnings to stderr. The input - (or /dev/stdin) reads audio from standard input: cat clip.ogg | soundnet tag -

    A shard (--shard, or SLURM/torchrun) with --out writes its per-input files, OUT/tags.shard-I-of-N.jsonl and OUT/status.shard-I-of-N.jsonl; `soundnet merge OUT` then writes the combined tables and run.json a single run writes.
    """
    if json_out and csv_out:
        raise typer.BadParameter("--json and --csv are mutually exclusive", param_hint="--json")
    chosen = _formats(formats, plot, out_dir)
    left_out = _left_out(formats, out_dir, quiet)
    failures: list[tuple[str, str]] = []
    with user_errors(), spooled_stdin(inputs, stdin_name) as (inputs, names):
        from ..runtime.run import start_run

        part = choose_shard(shard)
        inputs, roots = gather_inputs(inputs, files_from)
        detect = _detect_options(min_conf, merge, min_gap)
        run = start_run(inputs, roots=roots, recursive=recursive, shard=part, weights=weights,
                        device=device, workers=workers, batch_size=batch_size,
                        todo=lambda found: _not_done(found.files, roots, out_dir, overwrite),
                        say=notes(quiet), option="--weights")

        from ..tagging.results import TagResult
        from ..tagging.scoring import head_scorers

        model, files, options = run.network, run.files, run.options
        scorers = _svm_scorers(svm, model) if svm is not None else head_scorers(model)
        detect = _with_classes(detect, classes, scorers)
        failures += run.failures(files_from)
        fmt = "json" if json_out else "csv" if csv_out else "table"
        many = summary if summary is not None else (out_dir is not None
                                                     or len(files) > SUMMARY_AFTER)
        emit = _emitter("summary" if fmt == "table" and many else fmt, top_k, segments, detect)
        for path, message in failures:
            if path:  # --json lists missing inputs too
                emit(TagResult(Path(path), error=message))
        if names:
            emit = _renamed(emit, names)
        if out_dir is None:
            failures += _tag_to_stdout(model, files, scorers, options, emit, quiet, names)
        else:
            settings = _run_settings(run, batch_size, recursive, overwrite, left_out)
            failures = _tag_to_dir(run, scorers, emit, quiet, out_dir, chosen, top_k, segments,
                                   detect, settings, failures, names)
        failures = [(names.text(p), names.text(m)) for p, m in failures]
    raise typer.Exit(report_failures(failures, quiet))


# The installed path of the reference page, in the help text (free text wraps; a table cell
# would cut the path short).
tag.__doc__ = f"{tag.__doc__}\n\n    Reference (formats, thresholds, events, plots): {doc('tag.md')}\n"


def _formats(spec: str, plot: bool, out_dir: Optional[Path]) -> tuple[str, ...]:
    from ..errors import SoundNetError

    if out_dir is None:
        if plot or spec != "jsonl,csv":
            raise typer.BadParameter("--format and --plot write files: add --out DIR",
                                     param_hint="--out")
        return ()
    try:
        from ..tagging.layout import parse_formats

        return parse_formats(spec + (",png" if plot else ""))
    except SoundNetError as e:
        raise typer.BadParameter(str(e), param_hint="--format") from None


def _detect_options(min_conf: Optional[str], merge: bool, min_gap: float) -> "DetectOptions":
    from ..errors import SoundNetError
    from ..tagging.events import DetectOptions, parse_min_conf

    try:
        threshold, per_class = parse_min_conf(min_conf)
    except SoundNetError as e:
        raise typer.BadParameter(str(e), param_hint="--min-conf") from None
    return DetectOptions(min_conf=threshold, merge=merge, min_gap=min_gap,
                         class_min_conf=per_class)


def _with_classes(detect: "DetectOptions", spec: Optional[str], scorers: list) -> "DetectOptions":
    from dataclasses import replace

    from ..errors import SoundNetError
    from ..tagging.events import parse_classes

    known = {label for s in scorers for label in s.labels}
    unknown = sorted({name for name, _ in detect.class_min_conf or ()} - known)
    if unknown:
        raise typer.BadParameter(f"thresholds for unknown label(s) {', '.join(map(repr, unknown))}"
                                 f"; the network's labels include {', '.join(sorted(known)[:12])}"
                                 ", ...", param_hint="--min-conf")
    try:
        return replace(detect, classes=parse_classes(spec, known))
    except SoundNetError as e:
        raise typer.BadParameter(str(e), param_hint="--classes") from None


def _not_done(files: list[Path], roots: list[Path], out_dir: Optional[Path],
              overwrite: bool) -> list[Path]:
    """Files worth decoding early: all, or with --out those without a record yet (a record's
    settings are checked once the network is loaded)."""
    if out_dir is None or overwrite:
        return files
    from ..tagging.layout import record_path

    return [f for f in files if not record_path(f, roots, out_dir).exists()]


def _run_settings(run: "FileRun", batch_size: int, recursive: bool, overwrite: bool,
                  left_out: Any) -> dict[str, Any]:
    """What ``run.json`` records of how the run was asked for (beside the provenance)."""
    settings: dict[str, Any] = {"batch_size": batch_size, "workers": run.options.workers,
                                "device": str(run.options.device), "recursive": recursive,
                                "overwrite": overwrite}
    if run.shard is not None:
        settings["shard"] = run.shard.to_dict()
    if left_out:
        settings["formats_left_out"] = sorted(left_out)
    return settings


def _renamed(emit: Callable[["TagResult"], None],
             names: StdinNames) -> Callable[["TagResult"], None]:
    """``emit`` showing standard input's temporary copy under its name."""
    from dataclasses import replace

    def _emit(result: "TagResult") -> None:
        if result.path == names.spooled:
            result = replace(result, path=names.path(result.path),
                             error=names.text(result.error) if result.error else result.error,
                             warnings=[names.text(w) for w in result.warnings])
        emit(result)

    return _emit


def _tag_to_stdout(model: Any, files: list[Path], scorers: list, options: "RunOptions",
                   emit: Callable[["TagResult"], None], quiet: bool,
                   names: StdinNames = NO_STDIN) -> list[tuple[str, str]]:
    from ..tagging.scoring import LOOPED_NOTE, tag_files

    failures = []
    notes = RunWarnings(quiet, LOOPED_NOTE)
    with AudioProgress("tagging", len(files), quiet) as progress:
        for result in tag_files(model, files, scorers=scorers,
                                options=options.replace(on_audio=progress.audio)):
            progress.advance(result.duration)
            if not result.ok:
                failures.append((str(result.path), result.error or "failed"))
            for message in result.warnings:
                notes(names.text(message))
            emit(result)
    notes.summary()
    return failures


def _tag_to_dir(run: "FileRun", scorers: list, emit: Callable[["TagResult"], None], quiet: bool,
                out_dir: Path, formats: tuple[str, ...], top_k: int, segments: bool,
                detect: "DetectOptions", settings: dict[str, Any],
                failures: list[tuple[str, str]], names: StdinNames = NO_STDIN
                ) -> list[tuple[str, str]]:
    """Tag ``run``'s files into ``out_dir`` (:class:`~soundnet_cli.tagging.folder.DirTagging`);
    ``failures`` (found before) come back with this run's added. A shard of the run keeps a
    status file and writes its table instead of run.json and the combined tables."""
    from ..tagging.folder import DirTagging
    from ..tagging.scoring import LOOPED_NOTE

    job = DirTagging(run, out_dir, formats, scorers, top_k=top_k, segments=segments,
                     detect=detect, settings=settings, failures=failures, shown=names.path)
    job.start()  # before anything is written: refuses a folder of other settings
    status = job.shard_status() if run.shard is not None else None
    with status or contextlib.nullcontext():
        if status is not None:
            status.record_failures(failures)
        notes = RunWarnings(quiet, LOOPED_NOTE)
        with AudioProgress("tagging", len(run.files), quiet) as progress:
            for outcome in job.tag(run.options.replace(on_audio=progress.audio)):
                _tagged(outcome, progress, status, job.book.shown, emit, notes)
        notes.summary()
        if "html" in formats and run.shard is None and not quiet:
            err.print(f"writing the review page ({out_dir / 'review.html'}); new spectrograms "
                      "decode their input once", highlight=False, soft_wrap=True)
        tables = job.combine()
    done = job.finish()
    if not quiet:
        where = ", ".join(str(p) for p in tables.values()) or str(out_dir)
        missing = sorted(set(settings.get("formats_left_out", ())))
        err.print(f"{done.tagged} file(s) tagged, {done.skipped} skipped (already done) "
                  f"({', '.join(formats)}"
                  + (f"; not written: {', '.join(missing)}, their packages are missing" if missing
                     else "")
                  + f"); results: {where}", highlight=False, soft_wrap=True)
    return done.failures


def _tagged(outcome: Any, progress: AudioProgress, status: Any, shown: Callable[[Path], Path],
            emit: Callable[["TagResult"], None], notes: RunWarnings) -> None:
    """Show one input's outcome: progress, its status line, warnings, the result."""
    result = outcome.result
    progress.advance(result.duration if result is not None else 0.0)
    if status is not None:
        status.record(outcome.path, "skipped" if outcome.skipped else
                      "ok" if outcome.ok else "failed", outcome.error)
    if result is None:
        return
    where = str(shown(result.path))  # standard input's copy: its name
    for message in result.warnings:
        notes(message.replace(str(result.path), where))
    emit(result)


def _svm_scorers(path: Path, model: Any) -> list:
    """The SVM as the only scorer (tag_files runs the network at the SVM's input scale)."""
    from ..svm.model import SvmModel
    from ..tagging.scoring import SvmScorer

    return [SvmScorer(SvmModel.load(path, expected_fingerprint=model.fingerprint))]


def _emitter(fmt: str, top_k: int, segments: bool, detect: "DetectOptions"):
    """A function printing one :class:`TagResult` to stdout in ``fmt``."""
    if fmt == "json":
        import json

        from ..tagging.schema import result_to_json

        def emit_json(result: "TagResult") -> None:
            doc = result_to_json(result, top_k, segments, detect)
            sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
            sys.stdout.flush()

        return emit_json
    if fmt == "csv":
        import csv

        from ..tagging.schema import CSV_COLUMNS, result_csv_rows

        writer: Any = None

        def emit_csv(result: "TagResult") -> None:
            nonlocal writer
            if writer is None:  # bind to the stdout current at the first row (CliRunner swaps it)
                writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
                writer.writeheader()
            writer.writerows(result_csv_rows(result, top_k, segments, detect))
            sys.stdout.flush()

        return emit_csv
    if fmt == "summary":
        return lambda result: _print_summary(result, top_k, detect)
    return lambda result: _print_table(result, top_k, segments, detect)


def _print_summary(result: "TagResult", top_k: int, detect: "DetectOptions") -> None:
    """One line: path, duration, and per head its kept labels or 'no confident label'."""
    from ..tagging.events import NO_CONFIDENT_LABEL
    from ..tagging.events import detect as find

    if not result.ok:
        return
    parts = []
    for det in find(result, detect, min(top_k, 3)):
        labels = ", ".join(f"{lab.label} {lab.score:.2f}" for lab in det.clip)
        parts.append(f"{det.name}: {labels or NO_CONFIDENT_LABEL}")
    sys.stdout.write(f"{result.path}\t{result.duration:.2f} s\t{'  |  '.join(parts)}\n")
    sys.stdout.flush()


def _print_table(result: "TagResult", top_k: int, segments: bool,
                 detect: "DetectOptions") -> None:
    """A Rich table per file: rows are the clip, its events and (with ``segments``) each step;
    one column per head holding its kept labels and scores. Heads whose steps differ get
    separate tables."""
    from ..tagging.events import detect as find

    if not result.ok:
        return
    note = f", tiled to {result.analysed_duration:.2f} s" if result.tiled else ""
    title = f"{result.path}  ({result.duration:.2f} s{note})"
    groups: dict[tuple, list] = {}
    for head, det in zip(result.heads, find(result, detect, top_k)):
        key = (head.steps, head.hop, head.window, head.offset) if segments else ()
        groups.setdefault(key, []).append((head, det))
    for heads in groups.values() or [[]]:
        out.print(_table(title, result, heads, segments))


def _table(title: str, result: "TagResult", heads: list, segments: bool) -> Any:
    from rich.markup import escape
    from rich.table import Table

    from ..tagging.events import NO_CONFIDENT_LABEL

    table = Table(title=escape(title), title_justify="left", show_lines=True)
    table.add_column("segment", no_wrap=True)
    for head, _ in heads:
        table.add_column(escape(f"{head.name} ({'p' if head.probabilities else 'score'})"))

    def cell(labels: list) -> str:
        if not labels:
            return f"[dim]{NO_CONFIDENT_LABEL}[/]"
        return "\n".join(f"{lab.score:.3f}  {escape(lab.label)}" for lab in labels)

    def events(det: Any) -> str:
        return "\n".join(f"{e.start:.2f}-{e.end:.2f} s  {escape(e.label)} ({e.max_score:.2f})"
                         for e in det.events)

    table.add_row("clip", *(cell(d.clip) for _, d in heads))
    if any(d.events for _, d in heads):
        table.add_row("events", *(events(d) for _, d in heads))
    if segments and heads:
        from ..tagging.events import step_intervals

        # Each step's own hop-long span of the timeline (as events and plots use), not its
        # receptive field: those overlap, and the first ones all start at 0 (padding).
        length = result.analysed_duration or result.duration
        for i, (start, end) in enumerate(step_intervals(heads[0][0], length, length)):
            table.add_row(f"{i}: {start:.2f}-{end:.2f} s", *(cell(d.steps[i]) for _, d in heads))
    return table


def _left_out(spec: str, out_dir: Optional[Path], quiet: bool) -> dict[str, str]:
    """Formats ``--format all`` cannot write here (their package is missing), said on stderr
    before any work."""
    if out_dir is None:
        return {}
    from ..tagging.layout import formats_left_out

    left_out = formats_left_out(spec)
    for fmt, install in left_out.items():
        warn(f"--format all: {fmt} is not written (its package is missing; {install})", quiet)
    return left_out
