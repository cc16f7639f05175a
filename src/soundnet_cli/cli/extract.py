"""``soundnet extract``: layer activations of audio files as ``.npy`` files plus a manifest."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..runtime.options import BATCH_SIZE, CHUNK_SECONDS, LONG_FILE_SECONDS, RunOptions
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
    err,
    report_failures,
    user_errors,
    warn,
)


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
    inputs: InputsArg,
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
    quiet: QuietOpt = False,
) -> None:
    """Extract features: one float32 (frames, channels) .npy per input and layer, under --out.

    DIR/a/b.wav gives OUT/a/b.<layer>.npy (OUT/a/b.<layer>.<pool>.npy when pooled).

    Existing outputs are skipped unless --overwrite, but only when OUT/extract.json says the same network and settings made them (another network stops the run: never mixed); writes are atomic, so a rerun finishes an interrupted run.

    Files longer than --long-seconds are streamed in --chunk-seconds pieces: hours-long recordings need no more memory than short clips.
    """
    failures: list[tuple[str, str]] = []
    with user_errors():
        from ..audio import find_audio_files
        from ..errors import OutputError
        from ..extract import Manifest, extract_files, manifest_format
        from ..weights.registry import load_model

        manifest_path = manifest or out_dir / "manifest.csv"
        try:
            manifest_format(manifest_path)
        except OutputError as e:
            raise typer.BadParameter(str(e), param_hint="--manifest") from None
        files, problems = find_audio_files(inputs, recursive=recursive)
        # Decoding starts before torch loads (~1.5 s), so the network finds work waiting.
        decoder = early_decoder(weights, device, files, workers, long_seconds)
        model = load_model(weights, device)
        layers = model.resolve_layers(layer)
        options = RunOptions.plan(next(model.parameters()).device, len(files), workers=workers,
                                  decoder=decoder, batch_size=batch_size,
                                  long_seconds=long_seconds, chunk_seconds=chunk_seconds)
        failures += [(str(p), message) for p, message in problems]
        if not files and not problems:
            failures.append(("", "no audio files found in " + ", ".join(map(str, inputs))))
        book = Manifest(manifest_path)
        written = skipped = 0
        try:
            with AudioProgress("extracting", len(files), quiet) as progress:
                for outcome in extract_files(
                    model, files, layers, out_dir, roots=[p for p in inputs if p.is_dir()],
                    pool=pool.value, overwrite=overwrite,
                    options=options.replace(on_audio=progress.audio),
                ):
                    progress.advance(outcome.duration)
                    book.update(outcome.records)
                    written += sum(not r.skipped for r in outcome.records)
                    skipped += sum(r.skipped for r in outcome.records)
                    if not outcome.ok:
                        failures.append((str(outcome.path), outcome.error or "failed"))
                    for message in outcome.warnings:
                        warn(message, quiet)
        finally:
            if decoder is not None:
                decoder.close()
            if book.rows:
                try:
                    book.write()
                except OutputError as e:  # a full disk: still list every failure and the summary
                    failures.append((str(manifest_path), str(e)))
        if not quiet:
            err.print(f"{written} file(s) written, {skipped} existing skipped "
                      f"({', '.join(layers)}, pool {pool.value}); manifest: {manifest_path}",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(report_failures(failures, quiet))
