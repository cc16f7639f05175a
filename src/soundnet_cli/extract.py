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
Files whose header says they last more than ``long_seconds`` are never decoded whole: the runtime
streams them in ``chunk_seconds`` blocks (:func:`.runtime.batch.stream_into`, the same frames as
the whole-file pass) into a sink per file: unpooled layers are appended to their ``.npy`` as the
frames arrive (:class:`.files.npyio.NpySink`); pooled outputs keep running sums and maxima per
channel. Memory is bounded by the chunk, whatever the file's length.

Writing
-------
``.npy`` files are written by :mod:`.files.npyio`; the manifest, one row per output
(:class:`~.files.manifest.ExtractRecord`), by :mod:`.files.manifest`.
"""

from __future__ import annotations

import collections
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence, TypedDict

import numpy as np

from .errors import OutputError, SoundNetError
from .files.fsutil import collision_candidates, mirrored_output, outside_message
from .files.manifest import ExtractRecord
from .files.npyio import NpySink, npy_shape, save_array
from .files.runrecord import RunRecord
from .runtime.options import RunOptions

if TYPE_CHECKING:
    from .model import SoundNet
    from .runtime.run import FileRun
    from .shards.status import ShardStatus

POOLS = ("none", "mean", "max", "meanmax")
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
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")
    opts = options if options is not None else RunOptions()
    names = model.resolve_layers(layers)
    files = [Path(p) for p in paths]
    plan = _Plan(files, [Path(r) for r in roots], Path(out_dir), names, pool, overwrite,
                 None if run_inputs is None else [Path(p) for p in run_inputs])
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
        if opts.decoder is not None:  # started on these files: none needs decoding
            opts.decoder.close()
        return
    # The decoding workers read each header and hand long files back undecoded (deferred);
    # they are streamed after the short ones.
    deferred: list[Path] = []
    yield from _compute(model, run, plan, pool, deferred, opts)
    yield from _stream_deferred(model, deferred, plan, pool, opts)


def _stream_deferred(model: SoundNet, deferred: list[Path], plan: "_Plan", pool: str,
                     opts: RunOptions) -> Iterator[FileOutcome]:
    """The long files the decoding workers handed back undecoded, streamed one after another."""
    engines: dict[tuple[str, ...], Any] = {}  # the runtime's engines, one per set of layers
    for path in deferred:
        try:
            duration = _stream_duration(model, path)
        except SoundNetError as e:
            yield FileOutcome(path, error=str(e))
            continue
        yield _stream_file(model, path, duration, plan, pool, engines, opts)


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
                 engines: dict[tuple[str, ...], Any], options: RunOptions) -> FileOutcome:
    """Compute the missing outputs of one long file chunk by chunk, never decoding it whole:
    the runtime streams it (:func:`.runtime.batch.stream_into`) into ``.npy`` files that grow as
    frames arrive (:class:`.files.npyio.NpySink`: atomic, nothing left behind on failure), or,
    pooled, into running float64 sums and maxima per channel (:class:`_PoolSink`). ``duration``
    is the decoded length the header implies (:func:`.runtime.stream.expected_samples`).
    """
    from .runtime.batch import stream_into

    outcome = _skipped_outcome(model, path, plan, pool, duration)
    if not outcome.ok:
        return outcome
    layers = list(plan.todo[path])
    targets = {name: plan.outputs[path][name] for name in layers}
    channels = {name: model.channels(name) for name in layers}
    sink = NpySink(targets, channels) if pool == "none" else _PoolSink(targets, channels, pool)
    report = stream_into(model, path, layers, sink, options=options, engines=engines)
    outcome.warnings += report.warnings
    if report.error is not None:
        outcome.error = report.error
        return outcome
    for name in layers:
        frames, width = sink.shapes[name]
        outcome.records.append(ExtractRecord(
            str(path), str(targets[name]), name, pool, int(frames), int(width),
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


class _PoolSink:
    """A long file's pooled outputs: running pools per layer while the frames arrive, each
    pooled array written (:func:`.files.npyio.save_array`) once the stream ended well."""

    def __init__(self, targets: dict[str, Path], channels: dict[str, int], pool: str) -> None:
        self.targets, self.pool = targets, pool
        self.acc = {name: _RunningPool(channels[name]) for name in targets}
        self.shapes: dict[str, tuple[int, int]] = {}

    def __enter__(self) -> "_PoolSink":
        return self

    def add(self, chunk: Any) -> None:
        self.acc[chunk.layer].add(chunk.data)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            return
        for name, out in self.targets.items():
            if self.acc[name].frames == 0:  # the stream checks lengths: a bug, not bad input
                raise RuntimeError(f"{out}: no frames of {name} were computed")
            array = self.acc[name].result(self.pool)
            save_array(out, array)
            self.shapes[name] = (int(array.shape[0]), int(array.shape[1]))


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


def shard_status(run: "FileRun", layers: list[str], pool: str, out_dir: Path,
                  manifest: Path) -> "ShardStatus":
    """The status file of one shard of an extract run into ``out_dir``, ``manifest`` its
    manifest (entering it writes every input as pending; see :mod:`soundnet_cli.shards.status`)."""
    from .shards.status import ShardStatus

    try:  # relative to OUT when inside it, so a merge from any directory finds it
        where = str(manifest.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        where = str(manifest.resolve())
    settings = {"layers": layers, "pool": pool, "manifest": where,
                "roots": [str(r.resolve()) for r in run.roots],
                "made_by": {n: made_by(run.network, n) for n in layers}}
    assert run.shard is not None
    return ShardStatus(out_dir, run.shard, "extract", settings,
                       [*run.files, *(p for p, _ in run.problems)], run.total)
