"""Batch inference over many audio files: decode in worker processes, batch, run the network.

This is the one path by which ``tag``, ``extract`` and ``fit-svm`` turn files into activations.
Decoding (libsndfile + soxr) happens in DataLoader workers while the main process runs the
network (:class:`.engine.Engine`: BatchNorm folded, pooling before ReLU, a dense first conv);
clips of equal length are stacked into batches (only equal lengths: padding would change the
frames near the end), looking a few batches ahead for partners and handing results back in input
order. Files longer than ``options.long_seconds`` are never decoded whole: they are streamed in
chunks (:mod:`.stream`), which gives the same frames. A file that fails is reported in its result
and the rest go on. How all this is scheduled is one :class:`.options.RunOptions`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, cast

import numpy as np
import torch

from ..audio import loop_to
from ..errors import SoundNetError
from ..model import SoundNet
from .decode import DecodedClip, DecodePool, decode_file
from .engine import Engine, nonfinite_message
from .options import MAX_QUEUED_BYTES, RunOptions
from .options import MICRO_BATCH_SAMPLES as DEFAULT_MICRO_BATCH_SAMPLES  # noqa: F401 - old name

if TYPE_CHECKING:
    from .stream import LayerChunk

#: How many batches ahead decoded clips are held while looking for equal-length partners.
LOOKAHEAD_BATCHES = 4


@dataclass
class ClipResult:
    """Activations of one file.

    ``activations`` maps layer name to ``(frames, channels)`` float32 arrays (``None`` when the
    file failed, see ``error``); ``duration`` is the decoded length in seconds before any tiling;
    ``tiled_to`` is the length in seconds the clip was tiled to (0.0 when it was not);
    ``streamed`` says the file was long and computed in chunks (same frames); ``deferred``
    that it was long and left to the caller (``iter_activations(defer_long=True)``): no
    activations, no error.
    """

    index: int
    path: Path
    activations: dict[str, np.ndarray] | None
    duration: float = 0.0
    tiled_to: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    streamed: bool = False
    deferred: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def iter_decoded(
    paths: Sequence[str | os.PathLike], sample_rate: int, *, workers: int = 0,
    long_seconds: float | None = None, max_bytes: int = MAX_QUEUED_BYTES,
) -> Iterator[DecodedClip]:
    """Decode files in ``workers`` background processes (0, or a single file: in this process),
    in input order (a :class:`.decode.DecodePool` holding at most ``max_bytes`` of decoded audio
    in its queues).

    Files longer than ``long_seconds`` are not decoded (``long=True``, see
    :func:`.decode.decode_file`).
    """
    if workers <= 0 or len(paths) <= 1:
        for i, path in enumerate(paths):
            yield decode_file(i, path, sample_rate, long_seconds)
        return
    with DecodePool(paths, sample_rate, workers=workers, long_seconds=long_seconds,
                    max_bytes=max_bytes) as pool:
        yield from pool.take()


def iter_dataset(dataset: torch.utils.data.Dataset, *, workers: int = 0,
                 prefetch: int = 4) -> Iterator:
    """Items of a map-style ``dataset`` in index order, loaded by ``workers`` background
    processes (0, or a single item: in this process). Items are yielded as the dataset returns
    them (no collation), so a dataset can return results or errors of any type."""
    n = len(dataset)  # type: ignore[arg-type]
    if workers <= 0 or n <= 1:
        for i in range(n):
            yield dataset[i]
        return
    with warnings.catch_warnings():
        # torch warns that more workers than CPUs "might freeze", once building the loader and
        # again starting it; the commands say it once themselves (cli.common.check_workers)
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=None, shuffle=False, num_workers=min(workers, n),
            collate_fn=_identity, prefetch_factor=prefetch, persistent_workers=False,
        )
        items = iter(loader)
    yield from items


def _identity(x):
    return x


def required_samples(model: SoundNet, layers: Sequence[str]) -> int:
    """Shortest input (samples) that gives every requested layer at least one frame."""
    return max(model.geometry(name).min_samples() for name in layers)


def iter_activations(
    model: SoundNet,
    paths: Sequence[str | os.PathLike],
    layers: Sequence[str | int],
    *,
    min_samples: int | None = None,
    length: int | None = None,
    input_scale: float | None = None,
    defer_long: bool = False,
    options: RunOptions | None = None,
) -> Iterator[ClipResult]:
    """Yield activations of ``layers`` for every file in ``paths`` (in input order).

    How the work is scheduled (device, batches, decoding processes, threads, streaming, memory
    bounds) is ``options`` (:class:`.options.RunOptions`; default ``RunOptions()``, decoding in
    this process); it never changes the activations. The arguments before it do.

    Parameters
    ----------
    model
        The network; BatchNorm uses its running statistics.
    layers
        Layer names or module numbers (resolved by the model).
    min_samples
        Clips shorter than this are tiled up to it (default: the least the layers need). Tagging
        passes the model's ``tile_seconds`` here, as the original does.
    length
        Loop (tile circularly) or cut every clip to exactly this many samples, as the original
        ESC-50 evaluation does with 10 s; overrides ``min_samples`` and disables streaming.
    input_scale
        Scale [-1, 1] audio by this instead of the model's ``config.input_scale`` (the original
        ESC-50 evaluation used 512 where the network was trained at 256); the network itself is
        not changed (its fingerprint stays the same). Disables streaming.
    defer_long
        Do not stream long files here: yield them with ``deferred=True`` (and no activations)
        for the caller to stream its own way (``extract`` writes them chunk by chunk). The
        decoding workers find them from the header, so nobody scans the inputs beforehand.
    options
        Scheduling (see :class:`.options.RunOptions`). Files longer than
        ``options.long_seconds`` are streamed in ``options.chunk_seconds`` pieces (same frames);
        a streamed file whose activations would exceed ``options.max_result_bytes`` fails alone
        (write such files with :func:`.stream.stream_to_npy`). ``options.decoder`` (processes
        already started on these files, or on a list of which ``paths`` is a subsequence) is
        used if it decodes the same way, otherwise closed; the call consumes it.

    Yields
    ------
    ClipResult
        One per path, in input order; failures carry ``error`` and the rest go on.
    """
    opts = options if options is not None else RunOptions()
    return _iter_activations(model, paths, layers, opts, min_samples=min_samples, length=length,
                             input_scale=input_scale, defer_long=defer_long)


def _iter_activations(model: SoundNet, paths: Sequence[str | os.PathLike],
                      layers: Sequence[str | int], opts: RunOptions, *, min_samples: int | None,
                      length: int | None, input_scale: float | None,
                      defer_long: bool) -> Iterator[ClipResult]:
    names = model.resolve_layers(layers)
    engine = Engine(model, names, opts.device)
    need = max(min_samples or 0, engine.min_samples())
    if length is not None:
        if length < engine.min_samples():
            raise SoundNetError(f"length {length} samples is too short for layer(s) "
                                f"{', '.join(names)} (needs {engine.min_samples()})")
        need = length
    gain = 1.0 if input_scale is None else float(input_scale) / model.config.input_scale
    long_seconds = opts.long_seconds
    if length is not None or gain != 1.0:
        long_seconds = None  # exact looping and rescaling apply to whole decoded clips
    rate = model.config.sample_rate
    batcher = _Batcher(engine, need, opts.batch_size, opts.micro_batch_samples)
    stream_opts = dict(chunk_seconds=opts.chunk_seconds, max_bytes=opts.max_result_bytes)
    if long_seconds is not None:  # a file that needs tiling is never streamed
        long_seconds = max(long_seconds, need / rate)
    decoder = opts.decoder
    with thread_limit(opts.thread_count(engine.device)):
        order = _InOrder()
        if decoder is not None and decoder.matches(paths, rate, long_seconds):
            clips: Iterator[DecodedClip] = decoder.take(paths)
        else:
            if decoder is not None:
                decoder.close()
            clips = iter_decoded(paths, rate, workers=opts.workers, long_seconds=long_seconds,
                                 max_bytes=opts.max_queued_bytes)
        for clip in clips:
            if clip.long and defer_long:
                order.add(ClipResult(clip.index, clip.path, None, deferred=True))
            elif clip.long:
                order.add(_streamed(model, engine, clip, stream_opts, opts.on_audio))
            elif clip.waveform is None:
                order.add(ClipResult(clip.index, clip.path, None, error=clip.error))
            else:
                if length is not None:
                    clip.waveform = loop_to(clip.waveform, length)
                if gain != 1.0:
                    clip.waveform = (clip.waveform * np.float32(gain)).astype(np.float32)
                batcher.add(clip)
            order.add(*batcher.ready())
            yield from order.ready()
        order.add(*batcher.flush())
        yield from order.ready()


class _InOrder:
    """Holds results that finished early until every earlier index has been handed out."""

    def __init__(self) -> None:
        self.done: dict[int, ClipResult] = {}
        self.next = 0

    def add(self, *results: ClipResult) -> None:
        for r in results:
            self.done[r.index] = r

    def ready(self) -> Iterator[ClipResult]:
        while self.next in self.done:
            yield self.done.pop(self.next)
            self.next += 1


@contextlib.contextmanager
def thread_limit(n: int | None) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads, restoring the setting after (``None``:
    leave it)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _streamed(model: SoundNet, engine: Engine, clip: DecodedClip, opts: dict,
              on_audio: Callable[[Path, float], None] | None = None) -> ClipResult:
    """Compute a long file in chunks (reporting each to ``on_audio``); errors become an error
    result."""
    from .stream import collect_activations  # only for long files

    on_block = None if on_audio is None else _seconds_of(on_audio, clip.path, engine.sample_rate)
    with _caught_warnings() as caught:
        try:
            got = collect_activations(model, clip.path, engine.layers, engine=engine,
                                      on_block=on_block, **opts)
        except SoundNetError as e:
            return ClipResult(clip.index, clip.path, None, error=str(e), streamed=True)
    return ClipResult(clip.index, clip.path, got.activations, duration=got.duration,
                      warnings=[str(w.message) for w in caught], streamed=True)


class FrameSink(Protocol):
    """Where a long file's frames go as they are computed (``extract``: ``.npy`` files,
    :class:`~soundnet_cli.files.npyio.NpySink`, or running pools).

    A context manager, entered before the first frame and left without an exception only when
    every frame arrived (it may then keep what it made, and should discard it otherwise);
    :meth:`add` takes each layer's runs of frames in order (:class:`.stream.LayerChunk`).
    """

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any: ...

    def add(self, chunk: LayerChunk) -> None: ...


@dataclass
class StreamReport:
    """How streaming one file into a sink went: its warnings (silence, loudness), and the
    error that stopped it (``None``: every frame reached the sink)."""

    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def stream_into(model: SoundNet, path: Path, layers: Sequence[str], sink: FrameSink, *,
                options: RunOptions | None = None,
                engines: dict[tuple[str, ...], Engine] | None = None) -> StreamReport:
    """Stream one (long) file's ``layers`` into ``sink`` chunk by chunk, never decoding it whole,
    as a run does: with ``options``' device, threads, chunk length and progress (``on_audio``),
    one :class:`.engine.Engine` per set of layers (kept in ``engines`` across files), the file's
    warnings collected and its failure (unreadable, too short, a write that failed) reported, not
    raised, so the run goes on with the next file.
    """
    from .stream import stream_activations

    opts = options if options is not None else RunOptions()
    engines = {} if engines is None else engines
    device = opts.device if opts.device is not None else next(model.parameters()).device
    rate = model.config.sample_rate
    on_audio = opts.on_audio
    on_block = None if on_audio is None else _seconds_of(on_audio, path, rate)
    report = StreamReport()
    with thread_limit(opts.thread_count(device)), _caught_warnings() as caught:
        try:
            key = tuple(layers)
            if key not in engines:
                engines[key] = Engine(model, list(layers), opts.device)
            with sink:
                for chunk in stream_activations(model, path, list(layers), engine=engines[key],
                                                chunk_seconds=opts.chunk_seconds,
                                                on_block=on_block):
                    sink.add(chunk)
        except SoundNetError as e:
            report.error = str(e)
        except OSError as e:
            report.error = f"{path}: cannot write its outputs: {e.strerror or e}"
    report.warnings = [str(w.message) for w in caught]
    return report


@contextlib.contextmanager
def _caught_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Collect every warning raised in the body (a file's, reported with its result)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def _seconds_of(on_audio: Callable[[Path, float], None], path: Path,
                rate: int) -> Callable[[int], None]:
    """``on_audio`` as a per-block callback taking samples at ``rate``."""
    return lambda samples: on_audio(path, samples / rate)


class _Batcher:
    """Groups decoded clips by (tiled) length and runs a group when it is full, or when the
    oldest waiting clip has waited ``LOOKAHEAD_BATCHES`` batches' worth of arrivals."""

    def __init__(self, engine: Engine, need: int, batch_size: int,
                 micro_batch_samples: int | None) -> None:
        self.engine, self.need = engine, need
        self.batch_size, self.micro = max(1, batch_size), micro_batch_samples
        self.groups: dict[int, list[tuple[DecodedClip, np.ndarray]]] = {}
        self.waiting = 0
        self._ready: list[ClipResult] = []

    def add(self, clip: DecodedClip) -> None:
        assert clip.waveform is not None  # only decoded clips are batched
        wave = clip.waveform
        if wave.shape[0] < self.need:  # loop to exactly the length needed, no whole copies more
            wave = loop_to(wave, self.need)
        group = self.groups.setdefault(wave.shape[0], [])
        group.append((clip, wave))
        self.waiting += 1
        if len(group) >= self.batch_size:
            self._run(wave.shape[0])
        while self.waiting >= LOOKAHEAD_BATCHES * self.batch_size:
            self._run(self._oldest())

    def ready(self) -> list[ClipResult]:
        out, self._ready = self._ready, []
        return out

    def flush(self) -> list[ClipResult]:
        while self.groups:
            self._run(self._oldest())
        return self.ready()

    def _oldest(self) -> int:
        return min(self.groups, key=lambda n: self.groups[n][0][0].index)

    def _run(self, length: int) -> None:
        members = self.groups.pop(length)
        self.waiting -= len(members)
        for start in range(0, len(members), self.batch_size):
            self._ready.extend(self._forward(members[start:start + self.batch_size], length))

    def _forward(self, members: list[tuple[DecodedClip, np.ndarray]], length: int
                 ) -> list[ClipResult]:
        engine, rate = self.engine, self.engine.sample_rate
        batch = torch.from_numpy(np.stack([w for _, w in members])).to(engine.device)
        out = engine.forward(batch, max_samples=self.micro)
        arrays = {n: t.transpose(1, 2).cpu().numpy() for n, t in out.items()}
        results = []
        for j, (clip, _) in enumerate(members):
            decoded = cast(np.ndarray, clip.waveform)  # batched clips are decoded ones
            bad = next((n for n, a in arrays.items() if not np.isfinite(a[j]).all()), None)
            if bad is not None:  # one file's overflow fails that file, not its batch
                peak = float(np.abs(decoded).max())
                results.append(ClipResult(clip.index, clip.path, None,
                                          error=nonfinite_message(str(clip.path), bad, peak)))
                continue
            results.append(ClipResult(
                clip.index, clip.path, {n: np.ascontiguousarray(a[j]) for n, a in arrays.items()},
                duration=decoded.shape[0] / rate,
                tiled_to=length / rate if length != decoded.shape[0] else 0.0,
                warnings=list(clip.warnings),
            ))
        return results
