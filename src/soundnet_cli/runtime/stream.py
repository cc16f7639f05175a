"""Exact chunked inference for long recordings: memory bounded by the chunk, not the file.

A file is read in blocks (libsndfile block reads, streaming soxr resampling:
:func:`.audio.iter_audio_blocks`, bit-identical to :func:`.audio.load_audio`) and pushed through
the network one stage at a time (:class:`.engine.Engine`). Each stage keeps the few input frames
its next output still needs and adds its zero padding only at the true start and end of the file,
so every frame of every layer, heads included, is the one the whole-file computation gives (to
float rounding). There is no overlap to recompute: the carried state is at most one kernel of
frames per stage. Max-pooling keeps its floor behaviour because a stage emits only whole windows
and the leftover frames at the end are dropped, as the whole-file pass drops them.

Entry points:

- :func:`stream_activations` yields ``(layer, start_frame, (frames, channels))`` pieces;
- :func:`collect_activations` assembles whole arrays in memory, within a byte budget;
- :func:`stream_to_npy` writes each layer to a ``.npy`` file incrementally and atomically
  (:class:`~soundnet_cli.files.npyio.NpySink`);
- :func:`is_long` is the policy :func:`.batch.iter_activations` uses to route a file here.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, TypeVar

import numpy as np
import torch

from ..audio import (
    SILENCE_PEAK,
    AudioInfo,
    LoudAudioWarning,
    SilentAudioWarning,
    audio_info,
    iter_audio_blocks,
    loudness_warning,
)
from ..errors import AudioError, LayerError, MemoryBudgetError
from ..model import SoundNet
from .engine import Engine, Stage, nonfinite_message
from .options import CHUNK_SECONDS, MAX_RESULT_BYTES
from .options import LONG_FILE_SECONDS as LONG_FILE_SECONDS  # re-exported; defaults: .options

#: Audio per block pushed through the network (seconds, native rate): the same value as
#: :data:`.options.CHUNK_SECONDS`. Ten seconds keeps the largest intermediate (the first conv's
#: output, ~7 MB for SoundNet-8) within the CPU caches.
DEFAULT_CHUNK_SECONDS = CHUNK_SECONDS


class LayerChunk(NamedTuple):
    """A run of consecutive frames of one layer.

    ``data`` is ``(frames, channels)`` float32; its first row is frame ``start`` of ``layer``
    (frame ``i`` starts at input sample ``geometry.first_sample + i * geometry.hop``).
    """

    layer: str
    start: int
    data: np.ndarray


@dataclass
class StreamedClip:
    """Whole-file activations assembled from a stream: ``{layer: (frames, channels)}`` float32,
    and the decoded length in samples at ``sample_rate``."""

    activations: dict[str, np.ndarray]
    samples: int
    sample_rate: int

    @property
    def duration(self) -> float:
        """Decoded length in seconds."""
        return self.samples / self.sample_rate


# ---------------------------------------------------------------------------------------------
# Policy


def is_long(source: str | os.PathLike | AudioInfo, long_seconds: float = LONG_FILE_SECONDS) -> bool:
    """Whether a file should be streamed: its header says it lasts more than ``long_seconds``.

    ``source`` is a path (its header is read; :class:`.errors.AudioError` if unreadable) or an
    :class:`.audio.AudioInfo` already read.
    """
    info = source if isinstance(source, AudioInfo) else audio_info(source)
    return info.duration > long_seconds


def expected_samples(info: AudioInfo, sample_rate: int) -> int:
    """Length (samples at ``sample_rate``) a file decodes to, from its header (soxr keeps the
    duration: ``round(frames * sample_rate / native rate)``; exact when no resampling)."""
    if info.sample_rate == sample_rate:
        return info.frames
    return round(info.frames * sample_rate / info.sample_rate)


# ---------------------------------------------------------------------------------------------
# The stream


#: A stage with large weights waits until it can emit this many frames per weight-MiB/4 (up to
#: :data:`MAX_WAIT_FRAMES`): each call reads all its weights (the heads: 46 MB) however few frames
#: it computes. Results do not depend on it.
FRAMES_PER_QUARTER_MIB = 1
MAX_WAIT_FRAMES = 64


class _StageStream:
    """One stage's carried state: the input frames its next outputs still need."""

    def __init__(self, stage: Stage, device: torch.device) -> None:
        self.stage = stage
        self.pending = torch.zeros(1, stage.in_channels, stage.padding, device=device)
        self.min_frames = max(1, min(MAX_WAIT_FRAMES,
                                     FRAMES_PER_QUARTER_MIB * stage.weight_bytes // (1 << 18)))

    def push(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        """Feed input frames ``(1, in_channels, n)``; return every output frame now complete
        (``(1, channels, m)``, possibly ``m == 0``). ``last`` closes the stream (end padding)."""
        st = self.stage
        parts = [self.pending, x] if self.pending.shape[-1] else [x]
        buf = torch.cat(parts, dim=-1) if len(parts) > 1 else x
        if last and st.skip_last:  # the true end: those frames are never read
            buf = buf[..., : max(0, buf.shape[-1] - st.skip_last)]
        if last and st.padding:
            buf = torch.cat([buf, x.new_zeros(1, st.in_channels, st.padding)], dim=-1)
        # Before the end, the last skip_last frames may turn out to be the file's last: hold them.
        n = buf.shape[-1] - (0 if last else st.skip_last)
        frames = (n - st.kernel) // st.stride + 1 if n >= st.kernel else 0
        if frames == 0 or (frames < self.min_frames and not last):
            self.pending = buf
            return x.new_zeros(1, sum(st.widths), 0)
        y = st.fn(buf[..., : (frames - 1) * st.stride + st.kernel])
        # Keep only the unconsumed tail, as a copy, so the chunk's buffer can be freed.
        self.pending = buf[..., frames * st.stride:].clone()
        return y


def _with_last(blocks: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    """Pair each non-empty block with whether it is the last one (one block of look-ahead)."""
    previous = None
    for block in blocks:
        if block.size == 0:
            continue
        if previous is not None:
            yield previous, False
        previous = block
    if previous is not None:
        yield previous, True


def _push(streams: list[_StageStream], block: np.ndarray, last: bool, engine: Engine
          ) -> list[tuple[str, torch.Tensor]]:
    """One block through every stage; the requested layers' new frames, in stage order."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    if not block.flags.writeable:  # torch.from_numpy wants a writeable array
        block = block.copy()
    x = torch.from_numpy(block).to(engine.device).view(1, 1, -1)
    wanted = set(engine.layers)
    ready = []
    for stream in streams:
        y = stream.push(x, last)
        ready += [(n, part) for n, part in stream.stage.split(y).items()
                  if n in wanted and part.shape[-1]]
        if not stream.stage.head:
            x = y
            if x.shape[-1] == 0 and not last:
                break  # nothing new downstream until more input arrives
    return ready


def run_stream(engine: Engine, blocks: Iterable[np.ndarray], *, name: str = "<stream>",
               on_block: Callable[[int], None] | None = None) -> Iterator[LayerChunk]:
    """Push waveform blocks through ``engine`` and yield each layer's frames as they complete.

    Parameters
    ----------
    engine
        The stages to run (:class:`.engine.Engine` built for the wanted layers and device).
    blocks
        Consecutive pieces of one waveform, each ``(samples,)`` float32 in [-1, 1] at the model
        rate, of any lengths. Only one block (plus one of look-ahead) is held at a time.
    name
        Used in messages (the file name).
    on_block
        Called with each block's length in samples once it went through the network (progress
        of a long file: ``on_block(n)`` per block, the lengths sum to the waveform's).

    Yields
    ------
    LayerChunk
        For every requested layer, runs of frames in order; concatenated per layer they equal the
        whole-waveform activations (``(frames, channels)``).

    Raises
    ------
    LayerError
        At the end, when the waveform turned out too short for a requested layer.

    Warns
    -----
    SilentAudioWarning
        At the end, when every sample was below :data:`.audio.SILENCE_PEAK`.
    """
    streams = [_StageStream(st, engine.device) for st in engine.stages]
    emitted = dict.fromkeys(engine.layers, 0)
    samples, peak = 0, 0.0
    for block, last in _with_last(blocks):
        samples += block.shape[0]
        peak = max(peak, float(np.abs(block).max()))
        # Inference mode only around the computation: the consumer runs between our yields.
        with torch.inference_mode():
            ready = _push(streams, block, last, engine)
        for layer, frames in ready:
            data = np.ascontiguousarray(frames[0].T.cpu().numpy())
            if not np.isfinite(data).all():
                raise AudioError(nonfinite_message(name, layer, peak))
            yield LayerChunk(layer, emitted[layer], data)
            emitted[layer] += data.shape[0]
        if on_block is not None:
            on_block(block.shape[0])
    if samples == 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    engine.check_length(samples)
    if peak < SILENCE_PEAK:
        warnings.warn(f"{name}: audio is silent", SilentAudioWarning, stacklevel=2)
    loud = loudness_warning(name, peak)
    if loud:
        warnings.warn(loud, LoudAudioWarning, stacklevel=2)


def stream_activations(
    model: SoundNet,
    path: str | os.PathLike,
    layers: Sequence[str | int],
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    device: torch.device | str | None = None,
    resample_quality: str = "HQ",
    engine: Engine | None = None,
    on_block: Callable[[int], None] | None = None,
) -> Iterator[LayerChunk]:
    """Activations of ``layers`` for one file of any length, chunk by chunk, exactly.

    Parameters
    ----------
    model
        The network (BatchNorm uses its running statistics).
    path
        Any file :func:`.audio.load_audio` reads; it is never decoded whole.
    layers
        Names, the heads' stage name or module numbers.
    chunk_seconds
        Audio decoded and pushed per step (seconds). Memory is bounded by it; results do not
        depend on it.
    device
        Where the network runs (default: the model's device); audio stays on the CPU and moves
        one chunk at a time.
    resample_quality
        soxr quality, as :func:`.audio.load_audio`.
    engine
        A prebuilt :class:`.engine.Engine` for these layers (saves rebuilding it per file).
    on_block
        Progress: called with the samples (at the model rate) of each block done
        (:func:`run_stream`).

    Yields
    ------
    LayerChunk
        ``(layer, start_frame, (frames, channels) float32)``, each layer's runs in order.

    Raises
    ------
    AudioError
        Unreadable or corrupt file (possibly after some chunks were yielded).
    LayerError
        The file is too short for a requested layer.
    """
    _check_chunk(chunk_seconds)
    engine = engine or Engine(model, layers, device)
    info = audio_info(path)
    if info.frames:
        engine.check_length(expected_samples(info, engine.sample_rate))
    blocks = iter_audio_blocks(path, chunk_seconds, engine.sample_rate,
                               resample_quality=resample_quality)
    yield from run_stream(engine, prefetched(blocks), name=str(path), on_block=on_block)


def _check_chunk(chunk_seconds: float) -> None:
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")


T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead.

    Decoding (libsndfile) and resampling (soxr) release the GIL, so the next block decodes on
    one core while the network runs on the others. Exceptions are re-raised here, in order;
    closing this generator stops and closes ``items``.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failure(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="soundnet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is end:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


# ---------------------------------------------------------------------------------------------
# Consumers: in memory, or straight to .npy files


def estimated_bytes(model: SoundNet, layers: Sequence[str | int], samples: int) -> int:
    """Bytes the float32 activations of ``layers`` take for ``samples`` input samples."""
    names = model.resolve_layers(layers)
    return sum(4 * model.geometry(n).frames(samples) * model.channels(n) for n in names)


def collect_activations(
    model: SoundNet,
    path: str | os.PathLike,
    layers: Sequence[str | int],
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    device: torch.device | str | None = None,
    max_bytes: int | None = MAX_RESULT_BYTES,
    resample_quality: str = "HQ",
    engine: Engine | None = None,
    on_block: Callable[[int], None] | None = None,
) -> StreamedClip:
    """Whole-file activations of a (long) file, computed in chunks and assembled in memory.

    Peak memory is the result plus one chunk's working set. ``max_bytes`` bounds the result
    (``None``: no bound): a request over it raises :class:`.errors.MemoryBudgetError` before any
    work, naming the file, the size and :func:`stream_to_npy` as the way out.

    Returns
    -------
    StreamedClip
        ``activations``: ``{layer: (frames, channels)}`` float32, identical to the whole-file
        computation; ``samples``: the decoded length.
    """
    _check_chunk(chunk_seconds)
    engine = engine or Engine(model, layers, device)
    info = audio_info(path)
    guess = expected_samples(info, engine.sample_rate)
    if guess:
        engine.check_length(guess)
    need = estimated_bytes(model, engine.layers, guess)
    if max_bytes is not None and need > max_bytes:
        raise MemoryBudgetError(
            f"{path}: holding layer(s) {', '.join(engine.layers)} of this {info.duration:.0f} s "
            f"file in memory needs {need / 2**30:.2f} GiB (limit {max_bytes / 2**30:.2f} GiB); "
            f"write them to disk chunk by chunk instead (streaming.stream_to_npy)")
    # Preallocate from the header's length; grow if the decoder yields more.
    arrays = {n: np.empty((engine.geometry[n].frames(guess + 64), engine.channels[n]), np.float32)
              for n in engine.layers}
    filled = dict.fromkeys(engine.layers, 0)
    blocks = _SampleCounter(prefetched(iter_audio_blocks(
        path, chunk_seconds, engine.sample_rate, resample_quality=resample_quality)))
    for chunk in run_stream(engine, blocks.blocks(), name=str(path), on_block=on_block):
        a, end = arrays[chunk.layer], chunk.start + chunk.data.shape[0]
        if end > a.shape[0]:
            a = arrays[chunk.layer] = _grown(a, max(end, 2 * a.shape[0]))
        a[chunk.start:end] = chunk.data
        filled[chunk.layer] = end
    return StreamedClip({n: arrays[n][: filled[n]] for n in engine.layers}, blocks.samples,
                        engine.sample_rate)


class _SampleCounter:
    """Wraps a block iterator and counts the samples it yields."""

    def __init__(self, blocks: Iterable[np.ndarray]) -> None:
        self._blocks, self.samples = blocks, 0

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self._blocks:
            self.samples += block.shape[0]
            yield block


def _grown(a: np.ndarray, rows: int) -> np.ndarray:
    bigger = np.empty((rows,) + a.shape[1:], a.dtype)
    bigger[: a.shape[0]] = a
    return bigger


def stream_to_npy(
    model: SoundNet,
    path: str | os.PathLike,
    outputs: Mapping[str, str | os.PathLike] | Mapping[int, str | os.PathLike],
    *,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    device: torch.device | str | None = None,
    resample_quality: str = "HQ",
    engine: Engine | None = None,
    on_block: Callable[[int], None] | None = None,
) -> dict[str, tuple[int, int]]:
    """Write each requested layer of one file to its own ``.npy`` (``(frames, channels)``
    float32), chunk by chunk: memory stays bounded whatever the file length and layer size.

    Parameters
    ----------
    outputs
        ``{layer: output path}``; each key must name one layer (a head, not the heads' stage).
        Every file is written atomically; on any error none of them is left behind.

    Returns
    -------
    dict
        ``{layer: shape}`` of the written arrays.
    """
    targets: dict[str, Path] = {}
    for key, out in outputs.items():
        names = model.resolve_layers([key])
        if len(names) != 1:
            raise LayerError(f"{key!r} names several layers ({', '.join(names)}); give one "
                             f"output path per layer")
        targets[names[0]] = Path(out)
    from ..files.npyio import NpySink  # only here: tagging never writes .npy files

    engine = engine or Engine(model, list(targets), device)
    with NpySink(targets, engine.channels) as sink:
        for chunk in stream_activations(model, path, list(targets), chunk_seconds=chunk_seconds,
                                        resample_quality=resample_quality, engine=engine,
                                        on_block=on_block):
            sink.add(chunk)
    return sink.shapes
