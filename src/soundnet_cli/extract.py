"""Feature extraction: activations of named layers written as ``.npy`` files, plus a manifest.

Output files
------------
Every input file gives one ``.npy`` per requested layer, at the input's path relative to the
directory it was found in, under ``out_dir``, with the audio suffix replaced
(:func:`~soundnet_cli.files.fsutil.mirrored_output`): ``DIR/a/b.wav`` with ``--layer conv5`` becomes
``OUT/a/b.conv5.npy``; with ``--pool mean`` it becomes ``OUT/a/b.conv5.mean.npy``. Files named
directly on the command line land in ``OUT`` by name. Module numbers are written under the layer's
name (``--layer 18`` writes ``b.pool5.npy``).

Arrays are float32 ``(frames, channels)``; frame ``i`` starts ``offset + i * hop`` seconds into the
clip (see the manifest). Pooling over frames keeps two dimensions: ``mean`` and ``max`` give
``(1, channels)``, ``meanmax`` gives ``(1, 2 * channels)`` (the mean, then the max).

Every write goes to a temporary file that is renamed over the target, so an interrupted run never
leaves a partial ``.npy``; existing outputs are skipped (and never decoded) unless ``overwrite``.
An output path that is one of the inputs is refused, so no run can overwrite its own audio.

What made them
--------------
``out_dir/extract.json`` (:data:`RECORD_NAME`, a :class:`~soundnet_cli.files.runrecord.RunRecord`)
records, per layer, what determines the values of its outputs (:func:`made_by`: the network's
fingerprint, the head's weights for a head, the sample rate, ...). An existing output counts as
done only when its layer's record matches the network and settings of the run; a layer recorded
differently stops the run before anything is computed (:class:`~soundnet_cli.errors.OutputError`:
outputs of two networks are never mixed in one folder), and existing outputs of a layer the record
does not list (made before soundnet-cli kept records, or by something else) are recomputed only
with ``overwrite``. The record is written before the first output of a new layer.

Long files
----------
Files whose header says they last more than ``long_seconds`` are never decoded whole: they are
streamed in ``chunk_seconds`` blocks (:mod:`.runtime.stream`, the same frames as the whole-file pass).
Unpooled layers are appended to their ``.npy`` as the frames arrive
(:func:`.runtime.stream.stream_to_npy`); pooled outputs keep running sums and maxima per channel. Memory
is bounded by the chunk, whatever the file's length.

Manifest
--------
:class:`Manifest` keeps one row per output file (CSV or JSON Lines, chosen by suffix), columns
:data:`MANIFEST_COLUMNS`, sorted by input path then output (:func:`manifest_key`); reruns merge
into it, so after a resumed run it lists every output. A shard of a many-shard run writes its
own (``manifest.shard-I-of-N.csv``); ``soundnet merge`` joins them with the same writer
(:func:`write_manifest`), into the file one run would have written.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, TypedDict

import numpy as np

from .errors import OutputError, SoundNetError
from .files.fsutil import (
    atomic_path,
    collision_candidates,
    mirrored_output,
    names_inside,
    outside_message,
)
from .files.jsonutil import loads as strict_json
from .files.runrecord import RunRecord
from .runtime.options import (
    RunOptions,
)

if TYPE_CHECKING:
    import torch

    from .model import SoundNet

POOLS = ("none", "mean", "max", "meanmax")
#: Manifest columns, in order. JSON Lines rows carry the same keys plus ``shape``.
MANIFEST_COLUMNS = (
    "input", "output", "layer", "pool", "frames", "channels", "hop_seconds", "window_seconds",
    "offset_seconds", "duration_seconds", "tiled_to_seconds",
)
MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
#: The record of what made the outputs, in the output directory (see "What made them").
RECORD_NAME = "extract.json"
#: Version of what an output array holds (bumped if the computation of the values changes).
OUTPUT_FORMAT = 1
#: Most computed files whose outputs may wait for the writing thread (their activations are held).
MAX_PENDING_WRITES = 16


def pool_frames(activations: np.ndarray, pool: str) -> np.ndarray:
    """Pool ``(frames, channels)`` over frames.

    ``none`` returns the input; ``mean``/``max`` give ``(1, channels)``; ``meanmax`` gives
    ``(1, 2 * channels)``: the mean, then the max. Always float32.
    """
    a = np.asarray(activations, dtype=np.float32)
    if pool == "none":
        return a
    if pool == "mean":
        return a.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
    if pool == "max":
        return a.max(axis=0, keepdims=True)
    if pool == "meanmax":
        return np.concatenate([pool_frames(a, "mean"), pool_frames(a, "max")], axis=1)
    raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")


def output_suffix(layer: str, pool: str = "none") -> str:
    """``.conv5.npy``, or ``.conv5.mean.npy`` for a pooled output."""
    return f".{layer}.npy" if pool == "none" else f".{layer}.{pool}.npy"


def output_paths(source: Path, roots: Sequence[Path], out_dir: Path, layers: Sequence[str],
                 pool: str = "none") -> dict[str, Path]:
    """``{layer: output path}`` of one input (see the module docs for the naming scheme)."""
    return {name: mirrored_output(source, list(roots), out_dir, output_suffix(name, pool))
            for name in layers}


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save(path) would append ".npy" to tmp
            np.save(_Writes(f), array, allow_pickle=False)


class _Writes:
    """Only a file's ``write``: NumPy then writes in buffered pieces through Python, whose
    OSError carries the system's reason (``No space left on device``), instead of ``tofile``,
    whose error on a full disk says only how many bytes were written."""

    def __init__(self, f: Any) -> None:
        self.write = f.write


def npy_shape(path: Path) -> tuple[int, ...]:
    """The shape of a ``.npy`` file, reading only its header (memory-mapped, no data read)."""
    return tuple(int(n) for n in np.load(path, mmap_mode="r", allow_pickle=False).shape)


@dataclass
class ExtractRecord:
    """One output file: a manifest row (seconds are at the model's sample rate).

    ``tiled_to_seconds`` is 0.0 when the clip was long enough, the tiled length when it was
    repeated to reach what the requested layers need, and ``None`` when unknown (an output
    skipped on a rerun that the manifest did not list). ``skipped``: it existed already.
    """

    input: str
    output: str
    layer: str
    pool: str
    frames: int
    channels: int
    hop_seconds: float
    window_seconds: float
    offset_seconds: float
    duration_seconds: float | None
    tiled_to_seconds: float | None
    skipped: bool = False

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in MANIFEST_COLUMNS}


@dataclass
class FileOutcome:
    """What happened to one input: its records, or the error that stopped it."""

    path: Path
    records: list[ExtractRecord] = field(default_factory=list)
    duration: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def skipped(self) -> bool:
        return self.ok and bool(self.records) and all(r.skipped for r in self.records)


def made_by(model: SoundNet, layer: str) -> dict[str, Any]:
    """What determines the values of ``layer``'s outputs (recorded in :data:`RECORD_NAME` and
    compared on reruns): the trunk's fingerprint (weights, geometry, input scale), a head's own
    weights and geometry, the sample rate, BatchNorm epsilon, resampling quality and
    :data:`OUTPUT_FORMAT`. Pooling is not here: it is part of the file name."""
    key: dict[str, Any] = {"fingerprint": model.fingerprint,
                           "sample_rate": int(model.config.sample_rate),
                           "bn_eps": float(model.config.bn_eps), "resample_quality": "HQ",
                           "output_format": OUTPUT_FORMAT}
    head = next((h for h in model.config.heads if h.name == layer), None)
    if head is not None:
        h = hashlib.sha256(repr((head.kernel, head.stride, head.padding)).encode())
        for name, value in sorted(model.heads[layer].state_dict().items()):
            h.update(name.encode())
            h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        key["head"] = h.hexdigest()
    return key


def claim_outputs(model: SoundNet, out_dir: str | os.PathLike, layers: Sequence[str],
                  existing: Mapping[str, Sequence[Path]], overwrite: bool) -> RunRecord:
    """Check ``out_dir``'s record against the outputs ``layers`` would get now, and record the
    new layers (see "What made them" in the module docs).

    ``existing`` lists, per layer, outputs this run found on disk. Raises :class:`OutputError`
    when a layer was recorded with another network or settings, or when a layer has existing
    outputs but no record and ``overwrite`` is off.
    """
    from ._version import __version__

    record = RunRecord(out_dir, RECORD_NAME)
    for name in layers:
        found = list(existing.get(name, ()))
        if record.made_by(name) is None and found and not overwrite:
            raise OutputError(
                f"{out_dir}: {len(found)} existing {name} output(s) (e.g. {found[0]}) are not "
                f"listed in {record.path}, so the network that made them is unknown; recompute "
                "them with --overwrite, or choose another output folder")
    record.claim({n: made_by(model, n) for n in layers},
                 info={n: {"network": model.source or "(in memory)", "soundnet_cli": __version__}
                       for n in layers})
    return record


class _Plan:
    """Output paths of every input, which of them exist, and inputs whose outputs collide.

    Inputs whose outputs collide all fail (none is computed), so which one "wins" never depends
    on input order or on which of them decodes; the message says how to separate them.
    """

    def __init__(self, paths: Sequence[Path], roots: Sequence[Path], out_dir: Path,
                 layers: Sequence[str], pool: str, overwrite: bool,
                 run_inputs: Sequence[Path] | None = None) -> None:
        self.outputs: dict[Path, dict[str, Path]] = {}
        self.todo: dict[Path, list[str]] = {}
        self.collisions: dict[Path, str] = {}
        self.layers = list(layers)
        # Collisions are looked for among all the run's inputs (run_inputs: every shard's), so a
        # shard fails exactly the inputs one run would, and no output is written by two shards.
        planned = {path: output_paths(path, roots, out_dir, layers, pool) for path in paths}
        everyone = list(paths) if run_inputs is None else _candidates(run_inputs, planned, pool)
        inputs = {p.resolve() for p in everyone}
        owners: dict[Path, list[Path]] = {}
        for path in everyone:
            outs = planned.get(path) or output_paths(path, roots, out_dir, layers, pool)
            for o in outs.values():
                owners.setdefault(o.resolve(), []).append(path)
        for path, outs in planned.items():
            away = next((m for o in outs.values() if (m := outside_message(out_dir, o))), None)
            if away is not None:
                self.collisions[path] = f"{path}: not extracted: {away}"
                continue
            own = next((o for o in outs.values() if o.resolve() in inputs), None)
            if own is not None:
                self.collisions[path] = (f"{path}: its output {own} would overwrite an input; "
                                         "choose another output folder")
                continue
            clash = next((o for o in outs.values() if len(owners[o.resolve()]) > 1), None)
            if clash is not None:
                others = [p for p in owners[clash.resolve()] if p != path]
                self.collisions[path] = _collision_message(path, others, clash)
                continue
            self.outputs[path] = outs
            self.todo[path] = [n for n, o in outs.items() if overwrite or not o.exists()]

    def existing(self) -> dict[str, list[Path]]:
        """Outputs found on disk, per layer (empty with ``overwrite``: nothing was looked at)."""
        found: dict[str, list[Path]] = {n: [] for n in self.layers}
        for path, outs in self.outputs.items():
            for name, out in outs.items():
                if name not in self.todo[path]:
                    found[name].append(out)
        return found


def _candidates(run_inputs: Sequence[Path], planned: dict[Path, dict[str, Path]],
                pool: str) -> list[Path]:
    """The few inputs of the whole run (every shard's) that could collide with this shard's
    ``planned`` outputs, found by their names alone (see :func:`.fsutil.collision_candidates`),
    so a shard does not resolve every listed path."""
    names = {o.name for outs in planned.values() for o in outs.values()}
    stems = {o.name[:-len(output_suffix(n, pool))] for outs in planned.values()
             for n, o in outs.items()}
    return collision_candidates(run_inputs, list(planned), stems=stems, names=names)


def _collision_message(path: Path, others: list[Path], out: Path) -> str:
    other = others[0]
    if other.resolve().parent == path.resolve().parent:  # x.wav and x.flac side by side
        return (f"{path}: {other.name} in the same folder has the same name without its suffix, "
                f"so both would write {out}; neither was extracted: rename one of them")
    return (f"{path}: {other} would write the same output {out}; neither was extracted: pass "
            "their directories (outputs then mirror the tree) or extract them into separate "
            "--out directories")


class _Timing(TypedDict):
    hop_seconds: float
    window_seconds: float
    offset_seconds: float


def _timing(model: SoundNet, layer: str) -> _Timing:
    axis = model.time_axis(layer)
    return {"hop_seconds": axis.hop, "window_seconds": axis.window, "offset_seconds": axis.offset}


def _skipped_record(model: SoundNet, path: Path, layer: str, out: Path, pool: str,
                    duration: float | None) -> ExtractRecord:
    try:
        shape = npy_shape(out)
    except (OSError, ValueError) as e:
        raise OutputError(f"{path}: existing output {out} is unreadable ({e}); "
                          "delete it or rerun with --overwrite") from e
    if len(shape) != 2:
        raise OutputError(f"{path}: existing output {out} has shape {shape}, not "
                          "(frames, channels); delete it or rerun with --overwrite")
    return ExtractRecord(str(path), str(out), layer, pool, shape[0], shape[1],
                         **_timing(model, layer), duration_seconds=duration,
                         tiled_to_seconds=None, skipped=True)


def _skipped_outcome(model: SoundNet, path: Path, plan: "_Plan", pool: str,
                     duration: float | None) -> FileOutcome:
    outcome = FileOutcome(path, duration=duration or 0.0)
    try:
        for name, out in plan.outputs[path].items():
            if name not in plan.todo[path]:
                outcome.records.append(_skipped_record(model, path, name, out, pool, duration))
    except OutputError as e:
        outcome.error = str(e)
    return outcome


def _header_duration(path: Path) -> float | None:
    from .audio import audio_info
    from .errors import SoundNetError

    try:
        return audio_info(path).duration
    except SoundNetError:
        return None


def extract_files(
    model: SoundNet,
    paths: Sequence[str | os.PathLike],
    layers: Sequence[str | int],
    out_dir: str | os.PathLike,
    *,
    roots: Sequence[str | os.PathLike] = (),
    pool: str = "none",
    overwrite: bool = False,
    options: RunOptions | None = None,
    run_inputs: Sequence[str | os.PathLike] | None = None,
) -> Iterator[FileOutcome]:
    """Write the activations of ``layers`` for every file under ``out_dir``.

    Parameters
    ----------
    model
        An eval-mode network on ``device``.
    paths
        Audio files; ``roots`` are the directories they were found in (outputs mirror the tree
        below them; files outside every root land in ``out_dir`` by name).
    layers
        Public names, the heads' stage name or module numbers; resolved by the model.
    pool
        One of :data:`POOLS` (see :func:`pool_frames`).
    overwrite
        Recompute outputs that exist; otherwise files whose outputs all exist are not decoded.
    options
        Scheduling (:class:`~soundnet_cli.runtime.options.RunOptions`; the outputs do not depend
        on it). Files whose header says they last longer than ``options.long_seconds`` (and that
        need no tiling) are streamed from disk in ``options.chunk_seconds`` blocks, with bounded
        memory. ``options.decoder`` (processes already started on ``paths``) serves the files
        that need computing when it decodes the same way; it is always closed.
    run_inputs
        Every input of the whole run when ``paths`` is one shard of it: outputs colliding with
        another shard's input are refused as within one run (default: ``paths``).

    Yields
    ------
    FileOutcome
        One per input: first the inputs skipped because every output exists, then inputs whose
        outputs collide with an earlier input's (errors), then the computed short files in input
        order, then the streamed long files in input order. Failures (decoding, writing) carry
        ``error``; the others still run.

    Raises
    ------
    OutputError
        Before anything is computed, when ``out_dir`` holds outputs of these layers made by
        another network or settings, or unrecorded ones without ``overwrite``
        (:func:`claim_outputs`).
    """
    from .runtime.batch import thread_limit

    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")
    opts = options if options is not None else RunOptions()
    decoder = opts.decoder
    names = model.resolve_layers(layers)
    files = [Path(p) for p in paths]
    plan = _Plan(files, [Path(r) for r in roots], Path(out_dir), names, pool, overwrite,
                 None if run_inputs is None else
                 [p if isinstance(p, Path) else Path(p) for p in run_inputs])
    if plan.outputs:
        claim_outputs(model, out_dir, names, plan.existing(), overwrite)
    run: list[Path] = []
    for path in files:
        if path in plan.collisions:
            continue
        if plan.todo[path]:
            run.append(path)
            continue
        yield _skipped_outcome(model, path, plan, pool, _header_duration(path))
    for path, message in plan.collisions.items():
        yield FileOutcome(path, error=message)
    if not run:
        if decoder is not None:
            decoder.close()
        return
    # The decoding workers read each header and hand long files back undecoded (deferred);
    # they are streamed after the short ones.
    deferred: list[Path] = []
    yield from _compute(model, run, plan, pool, deferred, opts)
    engines: dict[tuple[str, ...], Any] = {}
    for path in deferred:
        try:
            duration = _stream_duration(model, path)
        except SoundNetError as e:
            yield FileOutcome(path, error=str(e))
            continue
        with thread_limit(opts.thread_count(_model_device(model, opts))):
            outcome = _stream_file(model, path, duration, plan, pool, engines,
                                   device=opts.device, chunk_seconds=opts.chunk_seconds,
                                   on_audio=opts.on_audio)
        yield outcome


def _model_device(model: SoundNet, opts: RunOptions) -> Any:
    return opts.device if opts.device is not None else next(model.parameters()).device


def _compute(model: SoundNet, run: list[Path], plan: _Plan, pool: str, deferred: list[Path],
             opts: RunOptions) -> Iterator[FileOutcome]:
    """Compute and write the missing outputs of ``run``, one pass over the files if they are long
    enough for every layer.

    A clip shorter than a layer needs is tiled to exactly what *that* layer needs, so an output
    never depends on which other layers were requested with it. A pass tiles short clips to what
    its deepest layer needs and writes only that layer's outputs for them; their other layers go
    to another pass over just those clips (each pass needs strictly less, so passes end).
    ``opts.decoder`` (already started) serves the first pass.
    """
    from .runtime.batch import iter_activations, required_samples

    pending = {p: list(plan.todo[p]) for p in run}
    outcomes: dict[Path, FileOutcome] = {}
    # Files are written on a thread while the network computes the next batch (both release the
    # GIL); outcomes are still yielded in input order, each once its writes are done.
    writes: collections.deque[tuple[Any, list[str], list[str], FileOutcome, Any]] = \
        collections.deque()

    def finish(item: tuple[Any, list[str], list[str], FileOutcome, Any]) -> FileOutcome | None:
        clip, layers, exact, outcome, job = item
        if job is not None:
            job.result()
        if outcome.ok and len(exact) < len(layers):
            pending[clip.path] = [n for n in layers if n not in exact]
            outcomes[clip.path] = outcome
            return None
        return outcome

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="soundnet-write") as writer:
        while pending:
            files = list(pending)
            wanted = [n for n in plan.layers if any(n in pending[p] for p in files)]
            need = required_samples(model, wanted)
            for clip in iter_activations(model, files, wanted, defer_long=True, options=opts):
                layers = pending.pop(clip.path)
                if clip.deferred:  # long: the caller streams it
                    deferred.append(clip.path)
                    continue
                outcome = outcomes.pop(clip.path, None) or _start_outcome(model, clip, plan, pool)
                exact: list[str] = []
                if outcome.ok:
                    exact = [n for n in layers
                             if not clip.tiled_to or required_samples(model, [n]) == need]
                job = (writer.submit(_write_layers, model, clip, exact, plan, pool, outcome)
                       if outcome.ok else None)
                writes.append((clip, layers, exact, outcome, job))
                while writes and (writes[0][4] is None or writes[0][4].done()
                                  or len(writes) > MAX_PENDING_WRITES):
                    done = finish(writes.popleft())
                    if done is not None:
                        yield done
            while writes:
                done = finish(writes.popleft())
                if done is not None:
                    yield done
            opts = opts.replace(decoder=None)  # consumed by the first pass


def _stream_duration(model: SoundNet, path: Path) -> float:
    """Decoded duration in seconds (at the network's rate) that ``path``'s header implies."""
    from .audio import audio_info
    from .runtime.stream import expected_samples

    rate = model.config.sample_rate
    return expected_samples(audio_info(path), rate) / rate


def _stream_file(model: SoundNet, path: Path, duration: float, plan: _Plan, pool: str,
                 engines: dict[tuple[str, ...], Any], *, device: "torch.device | str | None",
                 chunk_seconds: float,
                 on_audio: Callable[[Path, float], None] | None = None) -> FileOutcome:
    """Compute the missing outputs of one long file chunk by chunk, never decoding it whole.

    Unpooled layers are appended to their ``.npy`` files as frames arrive
    (:func:`.runtime.stream.stream_to_npy`: atomic, nothing left behind on failure); pooled ones keep
    a running float64 sum and a running max per channel. ``duration`` is the decoded length the
    header implies (:func:`.runtime.stream.expected_samples`).
    """
    import warnings

    from .errors import SoundNetError
    from .runtime.engine import Engine

    outcome = _skipped_outcome(model, path, plan, pool, duration)
    if not outcome.ok:
        return outcome
    layers = list(plan.todo[path])
    targets = {name: plan.outputs[path][name] for name in layers}
    key = tuple(layers)
    rate = model.config.sample_rate
    on_block = None if on_audio is None else (lambda n: on_audio(path, n / rate))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if key not in engines:
                engines[key] = Engine(model, layers, device)
            if pool == "none":
                from .runtime.stream import stream_to_npy

                shapes = stream_to_npy(model, path, targets, chunk_seconds=chunk_seconds,
                                       on_block=on_block,
                                       engine=engines[key])
            else:
                shapes = _stream_pooled(model, path, targets, pool, engines[key], chunk_seconds,
                                        on_block)
        except SoundNetError as e:
            outcome.error = str(e)
        except OSError as e:
            outcome.error = f"{path}: cannot write its outputs: {e.strerror or e}"
    outcome.warnings += [str(w.message) for w in caught]
    if outcome.error is not None:
        return outcome
    for name in layers:
        frames, channels = shapes[name]
        outcome.records.append(ExtractRecord(
            str(path), str(targets[name]), name, pool, int(frames), int(channels),
            **_timing(model, name), duration_seconds=duration, tiled_to_seconds=0.0))
    return outcome


class _RunningPool:
    """Mean and max over frames of a ``(frames, channels)`` array seen in pieces."""

    def __init__(self, channels: int) -> None:
        self.total = np.zeros(channels, np.float64)
        self.peak = np.full(channels, -np.inf, np.float32)
        self.frames = 0

    def add(self, rows: np.ndarray) -> None:
        self.total += rows.sum(axis=0, dtype=np.float64)
        np.maximum(self.peak, rows.max(axis=0), out=self.peak)
        self.frames += rows.shape[0]

    def result(self, pool: str) -> np.ndarray:
        mean = (self.total / max(self.frames, 1)).astype(np.float32)[None]
        peak = self.peak[None]
        return {"mean": mean, "max": peak,
                "meanmax": np.concatenate([mean, peak], axis=1)}[pool]


def _stream_pooled(model: SoundNet, path: Path, targets: dict[str, Path], pool: str, engine: Any,
                   chunk_seconds: float, on_block: Callable[[int], None] | None = None
                   ) -> dict[str, tuple[int, int]]:
    """Pooled outputs of one long file from running accumulators; ``{layer: shape}`` written."""
    from .runtime.stream import stream_activations

    acc = {name: _RunningPool(engine.channels[name]) for name in targets}
    for chunk in stream_activations(model, path, list(targets), chunk_seconds=chunk_seconds,
                                    engine=engine, on_block=on_block):
        acc[chunk.layer].add(chunk.data)
    shapes = {}
    for name, out in targets.items():
        if acc[name].frames == 0:  # the stream checks lengths; this would be a bug, not bad input
            raise RuntimeError(f"{path}: no frames of {name} were computed")
        array = acc[name].result(pool)
        save_array(out, array)
        shapes[name] = (int(array.shape[0]), int(array.shape[1]))
    return shapes


def _start_outcome(model: SoundNet, clip: Any, plan: _Plan, pool: str) -> FileOutcome:
    """The outcome of a computed file: records of its existing outputs, decoding warnings."""
    if not clip.ok or clip.activations is None:
        return FileOutcome(clip.path, error=clip.error or f"{clip.path}: failed")
    outcome = _skipped_outcome(model, clip.path, plan, pool, clip.duration)
    outcome.warnings = list(clip.warnings)
    return outcome


def _write_layers(model: SoundNet, clip: Any, layers: list[str], plan: _Plan, pool: str,
                  outcome: FileOutcome) -> None:
    """Pool and write ``layers`` of ``clip``, adding records (or the error) to ``outcome``."""
    if not clip.ok or clip.activations is None:
        outcome.error = clip.error or f"{clip.path}: failed"
        return
    if clip.tiled_to and layers:
        outcome.warnings.append(f"{clip.path}: {clip.duration:.3f} s is shorter than "
                                f"{', '.join(layers)} need(s); tiled (repeated) to "
                                f"{clip.tiled_to:.3f} s")
    for name in layers:
        out = plan.outputs[clip.path][name]
        array = pool_frames(clip.activations[name], pool)
        try:
            save_array(out, array)
        except OSError as e:
            outcome.error = f"{clip.path}: cannot write {out}: {e.strerror or e}"
            return
        outcome.records.append(ExtractRecord(
            str(clip.path), str(out), name, pool, int(array.shape[0]), int(array.shape[1]),
            **_timing(model, name), duration_seconds=clip.duration,
            tiled_to_seconds=clip.tiled_to))


# ---------------------------------------------------------------------------------------------
# Manifest


class Manifest:
    """The manifest file: one row per output, merged across runs, written atomically.

    ``path``'s suffix picks the format: ``.csv`` (header row :data:`MANIFEST_COLUMNS`) or
    ``.jsonl``/``.ndjson`` (one JSON object per line, the same keys plus ``shape``).

    Several runs may share one manifest (two ``extract`` runs into one ``--out``): :meth:`write`
    holds a lock (``<manifest>.lock``), reads the file again and merges this run's rows into what
    is there, so no run's rows are lost, whatever the order the runs finish in. The lock is an
    advisory ``flock`` on the manifest's directory.
    """

    def __init__(self, path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        #: Rows read back whose output is not inside this folder are dropped (hand-edited).
        self.out_dir = out_dir
        self.format = manifest_format(self.path)
        self.rows: dict[str, dict[str, Any]] = {}
        self._mine: dict[str, dict[str, Any]] = {}  # rows this run added or replaced
        if self.path.exists():
            self.rows.update(self._load())

    def _load(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
            if self.format == "csv":
                found = list(csv.DictReader(io.StringIO(text)))
            else:
                found = [strict_json(line) for line in text.splitlines() if line.strip()]
            for row in found:
                if self.out_dir is None or names_inside(self.out_dir, str(row["output"])):
                    rows[str(row["output"])] = row
        except (OSError, ValueError, KeyError, TypeError, csv.Error) as e:
            raise OutputError(f"{self.path}: cannot read the existing manifest ({e}); "
                              "move it away or pass another --manifest") from e
        return rows

    def update(self, records: Sequence[ExtractRecord]) -> None:
        """Add or replace rows; a skipped output keeps the row an earlier run wrote for it."""
        for r in records:
            if r.skipped and r.output in self.rows:
                continue
            self.rows[r.output] = self._mine[r.output] = r.row()

    def write(self) -> None:
        """Merge this run's rows into the manifest on disk and rewrite it atomically, under the
        manifest's lock (see the class docs)."""
        from .files.fsutil import locked

        try:
            with locked(self.path.parent):
                if self.path.exists():
                    self.rows = {**self._load(), **self._mine}
                self._write()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write the manifest: {e.strerror or e}") from e

    def _write(self) -> None:
        write_manifest(self.path, sorted(self.rows.values(), key=manifest_key))


def manifest_key(row: Mapping[str, Any]) -> tuple[str, str]:
    """The order of manifest rows: by input, then output. An ``input`` is written as
    :func:`~soundnet_cli.shards.partition.input_key` spells it, so this is the order shards split
    inputs in (compared as strings: no path parsing per row). A merge of per-shard manifests
    keeps it."""
    return str(row["input"]), str(row["output"])


def write_manifest(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write manifest ``rows`` (in the order given: :func:`manifest_key` for a whole manifest)
    to ``path`` atomically, streaming; the format follows the suffix (:func:`manifest_format`).

    The one writer of manifests: ``extract`` and ``soundnet merge`` both use it, so a merged
    manifest is byte-identical to one run's. Values read back from a CSV manifest (strings) are
    written unchanged."""
    path = Path(path)
    fmt = manifest_format(path)
    # surrogateescape: a file name that is not UTF-8 is written with the bytes the OS spells it
    # with (as `find` prints it), and read back so (read_manifest, Manifest).
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as f:
        if fmt == "csv":
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows([row.get(k) for k in MANIFEST_COLUMNS] for row in rows)  # None: ""
        else:
            for row in rows:
                doc = {k: row.get(k) for k in MANIFEST_COLUMNS}
                doc["shape"] = [doc["frames"], doc["channels"]]
                f.write(json.dumps(doc) + "\n")


def read_manifest(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The rows of a manifest file, streamed (CSV values as strings, JSON Lines as parsed)."""
    path = Path(path)
    fmt = manifest_format(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        if fmt == "csv":
            yield from csv.DictReader(f)
        else:
            for line in f:
                if line.strip():
                    yield strict_json(line)


def manifest_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from a manifest path's suffix; :class:`OutputError` otherwise."""
    fmt = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"manifest {path}: unknown format; use a .csv or .jsonl file name")
    return fmt
