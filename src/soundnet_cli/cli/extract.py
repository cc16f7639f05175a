"""``soundnet extract``: layer activations of audio files as ``.npy`` files plus a manifest."""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..runtime.options import BATCH_SIZE, CHUNK_SECONDS, LONG_FILE_SECONDS
from .common import (
    AudioProgress,
    BatchOpt,
    DeviceOpt,
    FilesFromOpt,
    OptionalInputsArg,
    QuietOpt,
    RecursiveOpt,
    ShardOpt,
    WeightsOpt,
    WorkersOpt,
    choose_shard,
    err,
    gather_inputs,
    notes,
    report_failures,
    user_errors,
    warn,
)
from .stdin import NO_STDIN, StdinNameOpt, StdinNames, spooled_stdin

if TYPE_CHECKING:
    from ..runtime.run import FileRun


class Pool(str, Enum):
    none = "none"
    mean = "mean"
    max = "max"
    meanmax = "meanmax"


LayerOpt = Annotated[list[str], typer.Option(
    "--layer", "-l", help="Layer name (conv1..conv7, pool1, pool2, pool5, a head, conv8) or the "
    "original's module number (18 = pool5, 24 = conv7); repeat for several.")]
#: The default output folder, in the current directory (demucs' `separated/`: see docs/extract.md).
DEFAULT_OUT = Path("features")
OutOpt = Annotated[Path, typer.Option(
    "--out", "-o", help="Output directory; the input tree is mirrored below it, and "
    "OUT/extract.json records the network and settings that made the outputs.",
    file_okay=False, show_default="./features")]
PoolOpt = Annotated[Pool, typer.Option(
    "--pool", help="Pool over time: none (frames, C), mean or max (1, C), meanmax (1, 2C).")]
ManifestOpt = Annotated[Optional[Path], typer.Option(
    "--manifest", "-m", help="Manifest file, .csv or .jsonl (default: OUT/manifest.csv); merged "
    "with an existing one.", dir_okay=False, show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Recompute outputs that exist (default: skip them).")]
LongOpt = Annotated[float, typer.Option(
    "--long-seconds", min=0.0, help="Files longer than this are streamed from disk in chunks "
    "(bounded memory, same outputs) instead of decoded whole.")]
def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


ChunkOpt = Annotated[float, typer.Option(
    "--chunk-seconds", callback=_positive, help="Audio per chunk when streaming a long "
    "file; bounds memory, does not change the outputs.")]


def extract(
    inputs: OptionalInputsArg = None,
    out_dir: OutOpt = DEFAULT_OUT,
    layer: LayerOpt = ["pool5"],  # noqa: B006 - Typer needs a literal default
    pool: PoolOpt = Pool.none,
    manifest: ManifestOpt = None,
    overwrite: OverwriteOpt = False,
    long_seconds: LongOpt = LONG_FILE_SECONDS,
    chunk_seconds: ChunkOpt = CHUNK_SECONDS,
    recursive: RecursiveOpt = False,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = BATCH_SIZE,
    workers: WorkersOpt = None,
    shard: ShardOpt = None,
    files_from: FilesFromOpt = None,
    stdin_name: StdinNameOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Extract features: one float32 (frames, channels) .npy per input and layer, under --out.

    DIR/a/b.wav gives OUT/a/b.<layer>.npy (OUT/a/b.<layer>.<pool>.npy when pooled). The input - (or /dev/stdin) reads audio from standard input and gives OUT/stdin.<layer>.npy (--stdin-name), recomputed every time.

    Existing outputs are skipped unless --overwrite, but only when OUT/extract.json says the same network and settings made them (another network stops the run: never mixed); writes are atomic, so a rerun finishes an interrupted run.

    Files longer than --long-seconds are streamed in --chunk-seconds pieces: hours-long recordings need no more memory than short clips.

    A shard (--shard, or SLURM/torchrun) writes OUT/manifest.shard-I-of-N.csv and OUT/status.shard-I-of-N.jsonl instead of the manifest; `soundnet merge OUT` joins them into the manifest a single run writes.
    """
    failures: list[tuple[str, str]] = []
    with user_errors(), spooled_stdin(inputs, stdin_name) as (inputs, names):
        from ..errors import OutputError
        from ..extract import shard_status
        from ..files.manifest import Manifest, manifest_format
        from ..runtime.run import start_run

        part = choose_shard(shard)
        inputs, roots = gather_inputs(inputs, files_from)
        manifest_path = manifest or out_dir / "manifest.csv"
        try:
            manifest_format(manifest_path)
        except OutputError as e:
            raise typer.BadParameter(str(e), param_hint="--manifest") from None
        run = start_run(inputs, roots=roots, recursive=recursive, shard=part, weights=weights,
                        device=device, workers=workers, batch_size=batch_size,
                        long_seconds=long_seconds, chunk_seconds=chunk_seconds,
                        say=notes(quiet), option="--weights")
        layers = run.network.resolve_layers(layer)
        failures += run.failures(files_from)
        status: Any = contextlib.nullcontext()
        if part is not None:
            from ..shards.status import shard_path

            status = shard_status(run, layers, pool.value, out_dir, manifest_path)
            manifest_path = shard_path(manifest_path, part)
        with status:
            book = Manifest(manifest_path, out_dir)
            if names and not overwrite:  # what came down the pipe cannot be checked: redo it
                from ..extract import output_paths

                assert names.spooled is not None
                for old in output_paths(names.spooled, roots, out_dir, layers,
                                        pool.value).values():
                    old.unlink(missing_ok=True)
            counts = _run(run, layers, out_dir, pool.value, overwrite, quiet, book, failures,
                          status if part is not None else None, manifest_path, names)
        if not quiet:
            err.print(f"{counts[0]} file(s) written, {counts[1]} existing skipped "
                      f"({', '.join(layers)}, pool {pool.value}); manifest: {manifest_path}",
                      highlight=False, soft_wrap=True)
        failures = [(names.text(p), names.text(m)) for p, m in failures]
    raise typer.Exit(report_failures(failures, quiet))


def _run(run: "FileRun", layers: list[str], out_dir: Path, pool: str, overwrite: bool,
         quiet: bool, book: Any, failures: list[tuple[str, str]], status: Any,
         manifest_path: Path, names: StdinNames = NO_STDIN) -> tuple[int, int]:
    """Extract ``run``'s files into ``out_dir``, filling ``book``, ``failures`` and ``status``;
    returns ``(written, skipped)`` output counts."""
    from ..errors import OutputError
    from ..extract import extract_files

    written = skipped = 0
    if status is not None:
        status.record_failures(failures)
    try:
        with AudioProgress("extracting", len(run.files), quiet) as progress:
            for outcome in extract_files(
                run.network, run.files, layers, out_dir, roots=run.roots,
                pool=pool, overwrite=overwrite,
                run_inputs=run.everyone if run.shard is not None else None,
                options=run.options.replace(on_audio=progress.audio),
            ):
                progress.advance(outcome.duration)
                if names and outcome.path == names.spooled:
                    _rename(outcome, names)
                book.update(outcome.records)
                written += sum(not r.skipped for r in outcome.records)
                skipped += sum(r.skipped for r in outcome.records)
                if not outcome.ok:
                    failures.append((str(outcome.path), outcome.error or "failed"))
                if status is not None:
                    status.record(outcome.path, "skipped" if outcome.skipped else
                                  "ok" if outcome.ok else "failed", outcome.error)
                for message in outcome.warnings:
                    warn(names.text(message), quiet)
    finally:
        if run.decoder is not None:
            run.decoder.close()
        if book.rows or status is not None:
            try:
                book.write()
            except OutputError as e:  # a full disk: still list every failure and the summary
                failures.append((str(manifest_path), str(e)))
                if status is not None:
                    status.unfinished()
    return written, skipped


def _rename(outcome: Any, names: StdinNames) -> None:
    """Standard input's outcome under its name (manifest rows, error, warnings)."""
    from dataclasses import replace

    outcome.records = [replace(r, input=names.name) for r in outcome.records]
    outcome.error = names.text(outcome.error) if outcome.error else outcome.error
    outcome.warnings = [names.text(w) for w in outcome.warnings]
