"""Decoding audio files in background processes, without torch.

This module imports neither torch nor anything that does, so a command can start its decoding
processes *before* it imports torch and loads the network, and the decoders work through that
start-up instead of waiting (measured in benchmarks/RESULTS.md; see docs/long-files.md,
"Performance").

:class:`DecodePool` decodes ``paths[i]`` for every ``i`` in worker processes (worker ``k`` takes
``i = k, k + W, k + 2W, ...`` in order and has its own queue), so the consumer reads the results
in input order without reordering. The decoded audio waiting in the queues is bounded in bytes.
A decoder process that dies (a crashing codec library) costs only the file it was decoding: a
fresh process goes on where the results stopped arriving and retries that file once; a file that
kills two processes is reported as failed and skipped.

Decoding processes never outlive the process that started them: on Linux the kernel kills them
when it dies (``PR_SET_PDEATHSIG``, even after ``kill -9``), and everywhere a worker that finds its
parent gone (checked while it waits for room in its queue and before each file) exits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..audio import AudioTooLong, load_audio
from ..errors import DecodingError, SoundNetError
from .options import LONG_FILE_SECONDS as LONG_FILE_SECONDS  # re-exported; defaults: .options
from .options import MAX_QUEUED_BYTES


@dataclass
class DecodedClip:
    """One file after decoding: ``waveform`` ``(samples,)`` float32 at the model rate, or an
    ``error`` message. ``warnings`` holds messages such as silence. ``long`` marks a file left
    undecoded because it is to be streamed."""

    index: int
    path: Path
    waveform: np.ndarray | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    long: bool = False


def decode_file(index: int, path: str | os.PathLike, sample_rate: int,
                long_seconds: float | None = None) -> DecodedClip:
    """Decode ``path`` to mono float32 at ``sample_rate`` Hz; errors become the result's
    ``error``, never a raise (a decoder failure must not stop a batch of thousands).

    A file whose header says it lasts more than ``long_seconds`` is not decoded: it comes back
    with ``long=True`` for the caller to stream.
    """
    path = Path(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            wave = load_audio(path, sample_rate, max_seconds=long_seconds)
        except AudioTooLong:
            return DecodedClip(index, path, None, long=True)
        except SoundNetError as e:
            return DecodedClip(index, path, None, str(e))
        except Exception as e:  # noqa: BLE001 - any decoder failure is this file's error
            return DecodedClip(index, path, None, f"{path}: cannot decode: {e}")
    return DecodedClip(index, path, wave, None, [str(w.message) for w in caught])


def _default_context() -> Any:
    """``fork`` where it is safe and cheap (Linux), else ``spawn``."""
    if sys.platform.startswith("linux"):
        return mp.get_context("fork")
    return mp.get_context("spawn")


def die_with_parent(parent: int) -> None:
    """Make this (child) process die with ``parent``: ``PR_SET_PDEATHSIG`` on Linux, then a
    check that the parent did not die before that took effect. Elsewhere a no-op (callers also
    poll :func:`parent_gone`)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the polling still applies
            pass
    if parent_gone(parent):
        os._exit(0)


def parent_gone(parent: int) -> bool:
    """Whether the process that started this one has died (it was re-parented)."""
    return os.getppid() != parent


def _worker(start: int, step: int, paths: Sequence[str], sample_rate: int,
            long_seconds: float | None, out: Any, skip: Any, held: Any, current: Any,
            max_bytes: int, nice: int, parent: int) -> None:
    """Decode ``paths[start::step]`` in order into ``out`` as ``(index, clip, nbytes)``; wait
    while this worker's share of queued audio (``held``, bytes) exceeds ``max_bytes``. The
    index in hand is kept in ``current`` (shared memory, so it outlives a crash; results
    queued but not yet sent may not)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    # A forked child inherits the parent's Python SIGTERM handler (the CLI's, which raises
    # KeyboardInterrupt): terminate() must simply end a worker.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    for i in range(start, len(paths), step):
        if skip[i]:
            out.put((i, None, 0))
            continue
        while held.value > 0 and held.value >= max_bytes:
            if parent_gone(parent):  # nobody will ever read the queue: do not spin
                os._exit(0)
            time.sleep(0.002)
        if parent_gone(parent):
            os._exit(0)
        current.value = i
        clip = decode_file(i, paths[i], sample_rate, long_seconds)
        nbytes = 0 if clip.waveform is None else int(clip.waveform.nbytes)
        with held.get_lock():
            held.value += nbytes
        out.put((i, clip, nbytes))


class DecodePool:
    """Decode ``paths`` in ``workers`` background processes, starting now.

    Parameters
    ----------
    paths
        Audio files. Iterate the pool (or :meth:`take` a subsequence) for one
        :class:`DecodedClip` per path, in input order.
    sample_rate
        Output rate, Hz.
    workers
        Decoding processes (at least 1).
    long_seconds
        Files whose header says they last longer are not decoded (``long=True``).
    max_bytes
        Bound on the decoded audio waiting in the queues, bytes (split between the workers;
        each can always hold one clip, however long).
    nice
        Niceness added to the decoding processes (0: none), so that on a busy machine the
        process that consumes their output keeps its core.

    Use as a context manager, or call :meth:`close`; the processes are daemons either way.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], sample_rate: int, *, workers: int,
                 long_seconds: float | None = None, max_bytes: int = MAX_QUEUED_BYTES,
                 nice: int = 0, context: Any = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.paths = [Path(p) for p in paths]
        self.sample_rate = int(sample_rate)
        self.long_seconds = long_seconds
        self.workers = max(1, min(workers, len(self.paths)))
        self._ctx = context or _default_context()
        self._names = [str(p) for p in self.paths]
        self._skip = self._ctx.Array("b", max(1, len(self.paths)), lock=False)
        self._per_worker = max(1, int(max_bytes) // self.workers)
        self._nice = int(nice)
        self._queues: list[Any] = []
        self._held: list[Any] = []
        self._current: list[Any] = []
        self._procs: list[Any] = []
        self._next: list[int] = []  # the next index each worker owes
        self._deaths: dict[int, int] = {}  # index -> workers that died decoding it
        self._idle_deaths = 0
        self._killed: dict[int, str] = {}  # index -> why it failed (a worker died twice on it)
        self._taken = False
        self._closed = False
        for k in range(self.workers if self.paths else 0):
            self._queues.append(self._ctx.Queue())
            self._held.append(self._ctx.Value("q", 0))
            self._current.append(self._ctx.Value("q", -1))
            self._procs.append(None)
            self._next.append(k)
            self._start(k, k)

    # -- processes --------------------------------------------------------------------------

    def _start(self, k: int, first: int) -> None:
        """Start worker ``k`` at index ``first`` (a fresh queue, so nothing stale is read)."""
        if self._procs[k] is not None:  # a restart: the dead worker's queue is abandoned
            self._queues[k].close()
            self._queues[k] = self._ctx.Queue()
            self._held[k].value = 0
        proc = self._ctx.Process(
            target=_worker, name=f"soundnet-decode-{k}", daemon=True,
            args=(first, self.workers, self._names, self.sample_rate, self.long_seconds,
                  self._queues[k], self._skip, self._held[k], self._current[k],
                  self._per_worker, self._nice, os.getpid()))
        proc.start()
        self._procs[k] = proc
        if self._ctx.get_start_method() == "fork":
            # Keep no copy of the worker's write end (forked later workers do not inherit one
            # either): a worker that dies half-way through sending a result then shows as end of
            # file on the pipe. With a copy held here, the reader waits forever for the rest of
            # the message. (Under spawn the handle is passed after start, so it stays open.)
            writer = getattr(self._queues[k], "_writer", None)
            if writer is not None:
                writer.close()

    def close(self) -> None:
        """Stop the decoding processes (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for q in self._queues:
            q.cancel_join_thread()
        for proc in self._procs:
            if proc is not None and proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            if proc is not None:
                proc.join(timeout=5)
        for q in self._queues:
            q.close()

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- results ----------------------------------------------------------------------------

    def matches(self, paths: Sequence[str | os.PathLike], sample_rate: int,
                long_seconds: float | None) -> bool:
        """Whether :meth:`take` can serve ``paths`` decoded this way: the same rate and long-file
        limit, ``paths`` a subsequence of the pool's paths, and nothing taken yet."""
        if self._taken or self._closed or sample_rate != self.sample_rate:
            return False
        if long_seconds != self.long_seconds:
            return False
        return self._positions(paths) is not None

    def _positions(self, paths: Sequence[str | os.PathLike]) -> list[int] | None:
        out: list[int] = []
        j = 0
        for p in paths:
            p = Path(p)
            while j < len(self.paths) and self.paths[j] != p:
                j += 1
            if j == len(self.paths):
                return None
            out.append(j)
            j += 1
        return out

    def take(self, paths: Sequence[str | os.PathLike] | None = None) -> Iterator[DecodedClip]:
        """Yield a :class:`DecodedClip` for each of ``paths`` (default: all), in order, with
        ``index`` its position in ``paths``. ``paths`` must be a subsequence of the pool's
        (see :meth:`matches`); the others are not decoded if they have not been already.

        Only one ``take`` per pool; the pool closes when it ends.
        """
        if self._taken:
            raise RuntimeError("DecodePool.take() can be called only once")
        wanted = list(range(len(self.paths))) if paths is None else self._positions(paths)
        if wanted is None:
            raise ValueError("paths are not a subsequence of the pool's paths")
        self._taken = True
        return self._iterate(wanted)

    def __iter__(self) -> Iterator[DecodedClip]:
        return self.take()

    def _iterate(self, wanted: list[int]) -> Iterator[DecodedClip]:
        try:
            selected = set(wanted)
            for i in range(len(self.paths)):
                if i not in selected:
                    self._skip[i] = 1
            for out_index, i in enumerate(wanted):
                clip = self._get(i)
                clip.index = out_index
                yield clip
        finally:
            self.close()

    def _get(self, i: int) -> DecodedClip:
        """The clip of ``paths[i]``: read worker ``i % W``'s queue up to it."""
        k = i % self.workers
        while True:
            try:
                index, clip, nbytes = self._queues[k].get(timeout=0.5)
            except (queue_module.Empty, EOFError, OSError) as e:
                proc = self._procs[k]
                if isinstance(e, queue_module.Empty) and proc.is_alive():
                    continue
                proc.join(timeout=5)  # end of file: the worker is gone or going
                # The worker died decoding `culprit`; results it had queued but not sent died
                # with it, so a fresh worker starts again from the first one not received. A
                # file that kills two workers fails and is skipped from then on.
                culprit = self._current[k].value
                if culprit >= 0:
                    self._deaths[culprit] = self._deaths.get(culprit, 0) + 1
                    if self._deaths[culprit] >= 2:
                        self._killed[culprit] = _died(self.paths[culprit], proc)
                        self._skip[culprit] = 1
                else:  # died before taking a file: not the files' fault
                    self._idle_deaths += 1
                    if self._idle_deaths > 3:
                        raise DecodingError(
                            f"decoding processes keep dying before decoding anything "
                            f"(last: {_how(proc)}); try --workers 0") from None
                self._current[k].value = -1
                self._start(k, self._next[k])
                continue
            with self._held[k].get_lock():
                self._held[k].value -= nbytes
            self._next[k] = index + self.workers
            if index == i:
                if clip is None:  # skipped because it killed its decoders
                    return DecodedClip(i, self.paths[i], None, self._killed[i])
                return clip
            # an unselected file, decoded before the selection was known: drop it


def _how(proc: Any) -> str:
    code = proc.exitcode
    return f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"


def _died(path: Path, proc: Any) -> str:
    return f"{path}: cannot decode: the decoding process died ({_how(proc)})"
