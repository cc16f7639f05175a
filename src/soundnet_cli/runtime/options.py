"""How a run is scheduled, none of what it computes: :class:`RunOptions`.

Everything here (device, batch size, decoding processes, threads, chunking, the streaming
threshold, memory bounds) changes speed and memory, never the activations: the same inputs give
the same outputs under any :class:`RunOptions`. What does change results (the layers, the length
clips are tiled or looped to, the input scale) is not here; it stays an explicit argument of
:func:`~soundnet_cli.runtime.batch.iter_activations`, :func:`~soundnet_cli.tagging.scoring.tag_files`,
:func:`~soundnet_cli.extract.extract_files` and :func:`~soundnet_cli.svm.features.extract_features`,
which all take ``options: RunOptions | None``.

:meth:`RunOptions.plan` is how the CLI chooses decoding processes and threads for a device and a
number of inputs (:func:`auto_workers`, :func:`plan_threads`); a library caller that wants the
CLI's scheduling calls it too.

Torch-free (like :mod:`.decode`): the CLI builds its options, and may start decoding
(:func:`.run.early_decoder`), before torch loads; :func:`configure_threads` imports torch only
when called. The defaults below are the only copies.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from .decode import DecodePool

#: Files whose header says they last longer than this (seconds) are streamed in chunks instead of
#: decoded whole (same frames, bounded memory).
LONG_FILE_SECONDS = 60.0
#: Audio per streamed chunk, seconds (bounds memory; the frames do not depend on it).
CHUNK_SECONDS = 10.0
#: Most files per forward pass (only clips of identical length share one). 32: a pass reads every
#: weight of the later layers however few clips it carries, and the authors' heads alone are
#: 46 MB; tagging 400 ESC-50 clips took 9.2 s at 8 and 7.6 s at 32 (extract: the same at both;
#: benchmarks/RESULTS.md, "Tagging speed with the authors' network").
BATCH_SIZE = 32
#: Most waveform samples the first, high-rate layers process at once (a batch is cut into slices
#: for them): their output is ~32 bytes per input sample and must stay in the CPU caches. The
#: later layers, whose weights dominate, see the whole batch.
MICRO_BATCH_SAMPLES = 1 << 18
#: Most bytes of activations one streamed file may collect in memory (1 GiB); larger requests fail
#: for that file and point to :func:`.stream.stream_to_npy`, which writes them to disk instead.
MAX_RESULT_BYTES = 1 << 30
#: Most bytes of decoded audio waiting in the decoding processes' queues (256 MiB: about 50 min of
#: float32 at 22,050 Hz).
MAX_QUEUED_BYTES = 256 << 20


@dataclass(frozen=True)
class RunOptions:
    """Scheduling of a run: what never changes its results.

    Attributes
    ----------
    device
        Where the network runs (``torch.device`` or a string such as ``"cuda:0"``); ``None``: the
        model's own device. Audio is decoded on the CPU and moved there in batches or chunks.
    batch_size
        Most files per forward pass (clips are batched only with clips of identical length).
    workers
        Decoding processes (0: decode in the calling process).
    threads
        Torch intra-op threads while the network runs (restored afterwards). ``None``: with
        ``workers`` on a CPU, the cores the workers leave (:func:`plan_threads`),
        otherwise torch's own setting.
    long_seconds
        Files whose header says they last longer, in seconds, are streamed in ``chunk_seconds``
        pieces instead of decoded whole (never below what the layers need); ``None`` or
        ``math.inf``: never stream.
    chunk_seconds
        Audio per streamed chunk, seconds (> 0).
    micro_batch_samples
        The first layers run on slices of a batch of at most this many samples (``None``: whole
        batches).
    max_result_bytes
        A streamed file whose requested activations would exceed this many bytes fails alone
        instead of exhausting memory (``None``: no limit).
    max_queued_bytes
        Bound on decoded audio waiting for the network in the decoding processes' queues, bytes.
    decoder
        Decoding processes already started on the inputs (:class:`.decode.DecodePool`, e.g. by
        :func:`.run.early_decoder` before torch loaded), used instead of starting ``workers``
        new ones when they decode the same way (sample rate, long-file threshold); consumed by
        the first call that is given them. Not compared, not shown.
    on_audio
        Progress inside long files: ``on_audio(path, seconds)`` after each streamed chunk, with
        the seconds of audio (at the network's rate) the chunk held, so a multi-hour file shows
        how far it got. Short files report nothing here (their callers see each file finish).
        Not compared, not shown.
    """

    device: "torch.device | str | None" = None
    batch_size: int = BATCH_SIZE
    workers: int = 0
    threads: int | None = None
    long_seconds: float | None = LONG_FILE_SECONDS
    chunk_seconds: float = CHUNK_SECONDS
    micro_batch_samples: int | None = MICRO_BATCH_SAMPLES
    max_result_bytes: int | None = MAX_RESULT_BYTES
    max_queued_bytes: int = MAX_QUEUED_BYTES
    decoder: "DecodePool | None" = field(default=None, compare=False, repr=False)
    on_audio: "Callable[[Path, float], None] | None" = field(default=None, compare=False,
                                                             repr=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not self.chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if self.max_queued_bytes < 1:
            raise ValueError(f"max_queued_bytes must be positive, got {self.max_queued_bytes}")

    @classmethod
    def plan(cls, device: Any, inputs: int, *, workers: int | None = None,
             threads: int | None = None, decoder: "DecodePool | None" = None,
             **fields: Any) -> "RunOptions":
        """The options the CLI runs with: decoding processes and threads planned for ``device``
        and ``inputs`` files.

        Parameters
        ----------
        device
            Where the network runs (``torch.device``, or a ``--device`` string such as ``"cpu"``
            or ``"auto"``, whose type is guessed without importing torch).
        inputs
            How many files the run decodes.
        workers
            Decoding processes; ``None``: :func:`auto_workers` (half the cores on a CPU,
            at least 2, at most 8 and never more than the files; all but one core on a GPU; none
            for a single file). Ignored when ``decoder`` is given: its processes are the workers.
        threads
            Torch threads; ``None``: on a CPU, the cores the workers leave, at least one, unless
            ``OMP_NUM_THREADS`` is set (:func:`plan_threads`).
        decoder
            Decoding processes already started on the inputs (see :attr:`decoder`).
        **fields
            Any other :class:`RunOptions` field (``batch_size``, ``long_seconds``, ...).
        """
        kind = device_type(device)
        n = decoder.workers if decoder is not None else auto_workers(kind, inputs, workers)
        if threads is None:
            threads = plan_threads(kind, n)
        return cls(device=device, workers=n, threads=threads, decoder=decoder, **fields)

    def replace(self, **changes: Any) -> "RunOptions":
        """A copy with ``changes`` applied (:func:`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)

    def thread_count(self, device: Any) -> int | None:
        """Torch threads to run with on ``device`` (the network's resolved device): ``threads``,
        else the plan for ``workers`` on a CPU, else ``None`` (leave torch's setting)."""
        if self.threads is not None:
            return self.threads
        if self.workers > 0:
            return plan_threads(device_type(device), self.workers)
        return None


# ---------------------------------------------------------------------------------------------
# The plan: how many decoding processes and torch threads


def available_cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(device: object, files: int, requested: int | None = None) -> int:
    """Decoding processes for ``files`` inputs: ``requested`` if given, else a plan.

    On CPU, decoding and resampling cost about what the forward pass to conv5 plus writing costs,
    so half the cores decode and the rest run torch. At least two workers even on 2 cores: the
    stages wait on each other, and a third process fills those gaps (both measured:
    ``benchmarks/RESULTS.md``). On a GPU the forward pass is cheap, so all but one core decode.
    One file: decode in the main process.
    """
    if requested is not None:
        return requested
    if files <= 1:
        return 0
    cores = available_cores()
    if device_type(device) != "cpu":
        return max(1, min(8, cores - 1))
    return min(8, max(2, cores // 2), files)


def plan_threads(device: object, workers: int) -> int | None:
    """Torch threads for a run with ``workers`` decoding processes: on CPU, the cores the workers
    leave free (at least one); ``None`` (torch's own setting) on other devices or when
    ``OMP_NUM_THREADS`` is set (the user's choice wins).

    Oversubscribing cores makes torch's OpenMP threads spin-wait on each other: a forward pass with
    more threads than free cores runs far slower (``benchmarks/RESULTS.md``).
    """
    import os

    if device_type(device) != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, available_cores() - workers)


def configure_threads(device: object, workers: int) -> None:
    """Set torch's threads (for the whole process) to :func:`plan_threads`, when it has a plan."""
    threads = plan_threads(device, workers)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def device_type(device: object) -> str:
    """``"cpu"``, ``"cuda"``, ... of a ``torch.device`` or a ``--device`` string (``auto`` is
    guessed without torch, see :func:`guess_device_type`); ``None`` is ``"cpu"``."""
    if isinstance(device, str):
        return guess_device_type(device)
    return str(getattr(device, "type", "cpu"))


#: Niceness of the decoding processes: the network's process, which waits on them, keeps its core
#: when there are more processes than cores (measured: ``benchmarks/RESULTS.md``).
DECODE_NICE = 10


def guess_device_type(device: str) -> str:
    """The device type a ``--device`` value will resolve to, guessed without importing torch
    (``auto`` is ``cuda`` where an NVIDIA driver is present). Only used to plan decoding
    processes before torch loads; the network's real device is resolved later."""
    import os

    name = device.strip().lower()
    if name == "auto":
        return "cuda" if os.path.exists("/dev/nvidiactl") else "cpu"
    return name.split(":", 1)[0]
