"""The scan: every recording's per-unit peaks, computed once and kept on disk.

Each recording gives one small ``.npz`` (:class:`~.peaks.Peaks`: ``per_recording x channels``
values and frames, per-unit sums) under ``OUT/scan/``, at the input's path relative to its root
(``DIR/a/b.wav`` -> ``OUT/scan/a/b.conv7.p1.npz``; ``p1``: one peak per recording), written
atomically. A rerun with the same network, layer and ``per_recording`` loads these instead of
decoding the recording again, so an interrupted run resumes, another ``--top``/``--units``
costs no network pass, and shards (each scanning its share) fill one folder.
``OUT/scan/scan.json`` (a :class:`~soundnet_cli.files.runrecord.RunRecord`) records what made them;
another network or layer setting into the same folder stops with an error before anything is
computed.

Only frames about the recording itself count (:func:`valid_range`: receptive field inside the
recording, not reaching into the zero padding at either end or into tiled audio). Short recordings go
through the batched path (:func:`~soundnet_cli.runtime.batch.iter_activations`, tiled when
shorter than the layer needs); recordings longer
than ``options.long_seconds`` are streamed chunk by chunk
(:func:`~soundnet_cli.runtime.stream.stream_activations`), so memory never grows with a file's
length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ..errors import OutputError, SoundNetError
from ..files.fsutil import atomic_path, mirrored_output
from ..files.runrecord import RunRecord
from .peaks import Peaks, RecordingPeaks

if TYPE_CHECKING:
    from ..model import SoundNet
    from ..runtime.options import RunOptions

#: Folder of the per-recording results under the output folder, and its record's name.
SCAN_DIR = "scan"
RECORD_NAME = "scan.json"
#: Version of what a scan file holds.
SCAN_FORMAT = 1


@dataclass
class ScanOutcome:
    """One recording: its peaks (``None`` when it failed: ``error``), whether they were loaded
    from an earlier run (``reused``), its duration in seconds and any decoding warnings."""

    path: Path
    peaks: Peaks | None = None
    reused: bool = False
    duration: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def min_gap_frames(model: SoundNet, layer: str) -> int:
    """Least distance between two peaks of a unit in one recording: a receptive field, in
    frames of ``layer`` (at least 1)."""
    g = model.geometry(layer)
    return max(1, math.ceil(g.receptive_field / g.hop))


def valid_range(model: SoundNet, layer: str, samples: int, frames: int) -> tuple[int, int]:
    """``(first, end)``: the frames of ``layer`` (of ``frames`` computed) that are about the
    recording itself, ``samples`` samples long.

    Those are the frames whose receptive field lies wholly inside the recording. A frame that
    reaches into the zero padding before the start or after the end responds to the step between
    sound and silence, in many units at once: counted, it makes recordings that stop abruptly the
    top segments of most units (seen on ESC-50). A recording shorter than one receptive field has
    no such frame; then the frames centred inside it count, and when none is (shorter than a
    hop), the frame centred nearest its middle. Frames over the repeated audio of a tiled clip
    never count.
    """
    g = model.geometry(layer)
    first = max(0, math.ceil(-g.first_sample / g.hop))
    end = min(frames, (samples - g.receptive_field - g.first_sample) // g.hop + 1)
    if first < end:
        return first, end
    centre0 = g.first_sample + g.receptive_field / 2
    first = max(0, math.ceil(-centre0 / g.hop))
    end = min(frames, max(0, math.ceil((samples - centre0) / g.hop)))
    if first >= end:
        middle = int(round((samples / 2 - centre0) / g.hop))
        first = min(max(middle, 0), max(frames - 1, 0))
        end = first + 1
    return first, end


def scan_path(source: Path, roots: Sequence[Path], out_dir: Path, layer: str,
              per_recording: int) -> Path:
    """Where the scan of ``source`` is kept (see the module docs)."""
    return mirrored_output(source, list(roots), out_dir / SCAN_DIR,
                           f".{layer}.p{per_recording}.npz")


def save_peaks(path: Path, peaks: Peaks) -> None:
    """Write ``peaks`` to ``path`` (``.npz``) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, values=peaks.values, frames=peaks.frames, total=peaks.total,
                 total_sq=peaks.total_sq, count=np.int64(peaks.count),
                 samples=np.int64(peaks.samples), format=np.int64(SCAN_FORMAT))


def load_peaks(path: Path, channels: int, per_recording: int) -> Peaks:
    """Read a scan file; :class:`OutputError` when it is unreadable or of another shape."""
    try:
        with np.load(path, allow_pickle=False) as z:
            peaks = Peaks(z["values"], z["frames"], z["total"], z["total_sq"], int(z["count"]),
                          int(z["samples"]))
    except (OSError, ValueError, KeyError) as e:
        raise OutputError(f"{path}: unreadable scan file ({e}); delete it or rerun with "
                          "--overwrite") from e
    if peaks.values.shape != (per_recording, channels):
        raise OutputError(f"{path}: holds {peaks.values.shape} peaks, not "
                          f"({per_recording}, {channels}); delete it or rerun with --overwrite")
    return peaks


def made_by(model: SoundNet, layer: str, per_recording: int) -> dict:
    """What determines a scan file's values (compared on reruns)."""
    from ..extract import made_by as layer_made_by

    return {**layer_made_by(model, layer), "per_recording": per_recording,
            "min_gap": min_gap_frames(model, layer), "scan_format": SCAN_FORMAT}


def claim(model: SoundNet, out_dir: Path, layer: str, per_recording: int) -> None:
    """Record (or check) what makes this folder's scan files; :class:`OutputError` when an
    earlier run used another network or settings for the same files."""
    from .._version import __version__

    RunRecord(out_dir / SCAN_DIR, RECORD_NAME).claim(
        {f"{layer}.p{per_recording}": made_by(model, layer, per_recording)},
        info={f"{layer}.p{per_recording}": {"network": model.source or "(in memory)",
                                            "soundnet_cli": __version__}})


def scan_files(model: SoundNet, paths: Sequence[Path], layer: str, out_dir: Path, *,
               roots: Sequence[Path] = (), per_recording: int = 1, overwrite: bool = False,
               options: RunOptions | None = None) -> Iterator[ScanOutcome]:
    """Peaks of every unit of ``layer`` in every recording of ``paths``.

    Yields one :class:`ScanOutcome` per path: first those reused from ``out_dir`` (unless
    ``overwrite``), then inputs whose scan files would collide, then the computed ones in input
    order (long ones, streamed, last). A recording that fails carries ``error``; the rest go on.
    Raises :class:`OutputError` before computing anything when ``out_dir`` holds scans made
    differently (:func:`claim`).
    """
    from ..runtime.options import RunOptions

    opts = options or RunOptions()
    targets = {p: scan_path(p, roots, out_dir, layer, per_recording) for p in paths}
    owners: dict[Path, list[Path]] = {}
    for p, t in targets.items():
        owners.setdefault(t.resolve(), []).append(p)
    claim(model, out_dir, layer, per_recording)
    channels = model.channels(layer)
    todo: list[Path] = []
    clashes: list[ScanOutcome] = []
    for p, t in targets.items():
        others = [o for o in owners[t.resolve()] if o != p]
        if others:
            clashes.append(ScanOutcome(p, error=f"{p}: {others[0]} would use the same scan file "
                                       f"{t}; neither was scanned: rename one, or pass their "
                                       "folders so the tree is mirrored"))
        elif overwrite or not t.exists():
            todo.append(p)
        else:
            try:
                peaks = load_peaks(t, channels, per_recording)
                yield ScanOutcome(p, peaks, reused=True,
                                  duration=peaks.samples / model.config.sample_rate)
            except OutputError as e:
                yield ScanOutcome(p, error=str(e))
    yield from clashes
    for outcome in _compute(model, todo, layer, per_recording, opts):
        if outcome.peaks is not None:
            try:
                save_peaks(targets[outcome.path], outcome.peaks)
            except OSError as e:
                outcome.error = f"{outcome.path}: cannot write its scan: {e.strerror or e}"
        yield outcome


def _compute(model: SoundNet, paths: list[Path], layer: str, per_recording: int,
             opts: RunOptions) -> Iterator[ScanOutcome]:
    """Scan ``paths``: short files batched, long ones (deferred by the batcher) streamed."""
    if not paths:
        if opts.decoder is not None:
            opts.decoder.close()
        return
    from ..runtime.batch import iter_activations

    rate = model.config.sample_rate
    gap = min_gap_frames(model, layer)
    channels = model.channels(layer)
    deferred: list[Path] = []
    for clip in iter_activations(model, paths, [layer], defer_long=True, options=opts):
        if clip.deferred:
            deferred.append(clip.path)
            continue
        if not clip.ok or clip.activations is None:
            yield ScanOutcome(clip.path, error=clip.error or f"{clip.path}: failed")
            continue
        samples = int(round(clip.duration * rate))
        acts = clip.activations[layer]
        acc = RecordingPeaks(channels, per_recording, gap,
                             valid_range(model, layer, samples, acts.shape[0]), samples)
        acc.add(0, acts)
        yield ScanOutcome(clip.path, acc.result(), duration=clip.duration,
                          warnings=list(clip.warnings))
    engines: dict = {}  # the runtime's engine for this layer, kept across the long files
    for path in deferred:
        yield _stream(model, path, layer, per_recording, opts, engines)


class _PeaksSink:
    """A long recording's frames into its per-unit peaks, as the runtime streams them (a
    :class:`~soundnet_cli.runtime.batch.FrameSink`)."""

    def __init__(self, peaks: RecordingPeaks) -> None:
        self.peaks = peaks

    def __enter__(self) -> "_PeaksSink":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add(self, chunk: Any) -> None:
        self.peaks.add(chunk.start, chunk.data)


def _stream(model: SoundNet, path: Path, layer: str, per_recording: int, opts: RunOptions,
            engines: dict) -> ScanOutcome:
    """Scan one long file chunk by chunk (memory bounded by the chunk), streamed by the runtime
    (:func:`~soundnet_cli.runtime.batch.stream_into`: threads, warnings, errors)."""
    from ..audio import audio_info
    from ..runtime.batch import stream_into
    from ..runtime.stream import expected_samples

    rate = model.config.sample_rate
    try:
        samples = expected_samples(audio_info(path), rate)
    except SoundNetError as e:
        return ScanOutcome(path, error=str(e))
    frames = model.geometry(layer).frames(samples)
    peaks = RecordingPeaks(model.channels(layer), per_recording, min_gap_frames(model, layer),
                           valid_range(model, layer, samples, frames), samples)
    report = stream_into(model, path, [layer], _PeaksSink(peaks), options=opts, engines=engines)
    if report.error is not None:
        return ScanOutcome(path, error=report.error)
    return ScanOutcome(path, peaks.result(), duration=samples / rate, warnings=report.warnings)
