"""Decoding, down-mixing and resampling audio files into what SoundNet reads.

SoundNet reads mono waveforms at :data:`SAMPLE_RATE` (22,050 Hz). Files are decoded with
libsndfile (through ``soundfile``: wav, flac, ogg/vorbis, opus, mp3, aiff, ...); what libsndfile
cannot open (m4a/aac, mp4, mov, webm, mkv, wma, ...: phone recorders and videos) is decoded with
FFmpeg through PyAV, the first audio track of the container. Both sit behind one reader
(:func:`open_audio`), so headers, whole-file decoding and block streaming behave the same for
every format. Channels are averaged, and other rates are resampled with ``soxr``. torchaudio is
deliberately not used (its wheels pin one torch build and link CUDA). Samples are returned as
float32 in [-1, 1]; the network's own input scale (x256 for SoundNet) is applied inside the
model, from its checkpoint.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import AudioError, SoundNetWarning
from .files.fsutil import AUDIO_SUFFIXES as AUDIO_SUFFIXES  # the suffixes a folder search takes
from .files.fsutil import file_kind, find_files

#: SoundNet's sample rate in Hz. Every hop and window in seconds is derived from it.
SAMPLE_RATE = 22_050
#: Peak amplitude below which a decoded file counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5
#: Peak amplitude above which a file is warned about: float files may exceed full scale (1.0)
#: a little, but 20 dB above it is a broken or mis-scaled file (huge values overflow the network
#: to non-finite activations, which then fail the file).
LOUD_PEAK = 10.0


class SilentAudioWarning(SoundNetWarning):
    """A decoded file has no signal above :data:`SILENCE_PEAK`."""


class LoudAudioWarning(SoundNetWarning):
    """A decoded file peaks far above full scale (:data:`LOUD_PEAK`)."""


def loudness_warning(name: str, peak: float) -> str | None:
    """The warning for a signal peaking at ``peak`` (``None`` when it is not too loud)."""
    if peak <= LOUD_PEAK:
        return None
    return (f"{name}: audio peaks at {peak:.3g}, far above full scale (1.0); the file is "
            "probably mis-scaled or corrupt")


class AudioTooLong(AudioError):
    """A file's header says it lasts longer than the caller's ``max_seconds`` (nothing decoded).

    Batch inference uses it to send long recordings to the streaming path; ``info`` is the header.
    """

    def __init__(self, message: str, info: "AudioInfo") -> None:
        super().__init__(message)
        self.info = info


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says, before decoding.

    Attributes are the native sample rate (Hz), channel count, frame count (samples per channel)
    and duration in seconds.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Duration in seconds at the native rate."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _soundfile():
    import soundfile

    return soundfile


def _check_path(path: Path) -> None:
    """Refuse what decoding must not open: missing, unreadable and non-regular files (opening a
    FIFO blocks until a writer appears; a device never ends)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except OSError as e:
        raise AudioError(f"{path}: cannot access: {e.strerror or e}") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path}: not a regular file ({file_kind(mode)}), not read")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")


def open_audio(path: str | os.PathLike) -> Any:
    """Open an audio file for reading: the one decoder every function here goes through.

    libsndfile first (exact frame counts, no FFmpeg start-up); when it cannot open the file,
    FFmpeg through PyAV (:class:`_FFmpegFile`: the first audio track of any container it knows).
    The returned reader is a context manager with ``samplerate``, ``channels`` and ``frames``
    (exact for libsndfile, from the container's duration for FFmpeg) and
    ``read(frames=-1, dtype="float32", always_2d=True)`` giving ``(frames, channels)`` float32.

    Raises :class:`AudioError` naming the file and what both decoders said.
    """
    path = Path(path)
    _check_path(path)
    try:
        # bytes: names that are not valid UTF-8 (surrogateescape in Python) open too
        return _soundfile().SoundFile(os.fsencode(path))
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        sf_reason = _reason(e, path)
        first = e
    try:
        return _FFmpegFile(path)
    except _NotOpened as e:
        raise AudioError(f"{path}: cannot decode: not a readable audio file (libsndfile: "
                         f"{sf_reason}; FFmpeg: {e})") from first


class _NotOpened(Exception):
    """FFmpeg could not open a file as audio (the reason; :func:`open_audio` adds the rest)."""


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise _NotOpened("PyAV is not installed (pip install av)") from e
    return av


class _FFmpegFile:
    """The first audio track of a file FFmpeg decodes, read like a ``soundfile.SoundFile``.

    Decoded frames are converted to planar float32 at the track's own rate and channel layout
    (resampling to the network's rate stays with soxr, as for every other file). ``frames`` comes
    from the stream's or the container's duration (exact to a codec frame, not to a sample);
    ``read`` returns what the decoder produces. Opening raises :class:`_NotOpened`; reading raises
    :class:`AudioError` naming the file.
    """

    def __init__(self, path: Path) -> None:
        av = _av()
        self.path = path
        try:
            # Tags are not what we read: garbled ones (a bit flip) must not stop the audio.
            self._container = av.open(str(path), metadata_errors="replace")
        except Exception as e:
            raise _NotOpened(_av_reason(e)) from e
        try:
            streams = self._container.streams.audio
            if not streams:
                raise _NotOpened("no audio track")
            stream = streams[0]
            ctx = stream.codec_context
            self.samplerate = int(ctx.sample_rate or 0)
            self.channels = int(ctx.channels or 0)
            if self.samplerate <= 0 or self.channels <= 0:
                raise _NotOpened("the audio track has no sample rate or channels")
            self.frames = self._duration_frames(stream)
            layout = getattr(ctx.layout, "name", None) or None
            self._resampler = av.AudioResampler(format="fltp", layout=layout,
                                                rate=self.samplerate)
            self._frames = self._container.decode(stream)
        except _NotOpened:
            self._container.close()
            raise
        except Exception as e:
            self._container.close()
            raise _NotOpened(_av_reason(e)) from e
        self._pending: list[np.ndarray] = []  # (channels, n) pieces decoded but not yet read
        self._buffered = 0
        self._done = False

    def _duration_frames(self, stream: Any) -> int:
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            seconds = self._container.duration / 1_000_000  # AV_TIME_BASE
        else:
            return 0
        return max(0, int(round(seconds * self.samplerate)))

    def __enter__(self) -> "_FFmpegFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _decode_more(self) -> None:
        try:
            frame = next(self._frames)
        except StopIteration:
            frame = None
        except Exception as e:
            raise AudioError(f"{self.path}: cannot decode: {_av_reason(e)}") from e
        try:
            for out in self._resampler.resample(frame):  # None flushes the resampler
                data = np.asarray(out.to_ndarray(), dtype=np.float32)  # (channels, n) planar
                if data.shape[0] != self.channels:
                    raise AudioError(f"{self.path}: cannot decode: the audio track changed from "
                                     f"{self.channels} to {data.shape[0]} channels")
                if data.shape[1]:
                    self._pending.append(data)
                    self._buffered += data.shape[1]
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(f"{self.path}: cannot decode: {_av_reason(e)}") from e
        if frame is None:
            self._done = True

    def read(self, frames: int = -1, dtype: str = "float32",
             always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` samples per channel (all that is left with -1): ``(n, channels)``."""
        while not self._done and (frames < 0 or self._buffered < frames):
            self._decode_more()
        data = (np.concatenate(self._pending, axis=1) if self._pending
                else np.zeros((self.channels, 0), np.float32))
        take = data.shape[1] if frames < 0 else min(frames, data.shape[1])
        rest = data[:, take:]
        self._pending = [rest] if rest.shape[1] else []
        self._buffered = rest.shape[1]
        return np.ascontiguousarray(data[:, :take].T, dtype=dtype)


def _av_reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    # PyAV messages end with the path ("[Errno 1094995529] Invalid data ...: '/x/y.m4a'").
    text = text.split(": '", 1)[0]
    return text.split("] ", 1)[-1]


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: native rate, channels, frames. Raises :class:`AudioError`.

    For files FFmpeg decodes, ``frames`` comes from the container's duration (see
    :func:`open_audio`).
    """
    path = Path(path)
    with open_audio(path) as f:
        return AudioInfo(path, int(f.samplerate), int(f.channels), int(f.frames))


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    *,
    resample_quality: str = "HQ",
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode a file into a mono float32 waveform at ``sample_rate``.

    Parameters
    ----------
    path
        Any file libsndfile or FFmpeg reads (see :func:`open_audio`).
    sample_rate
        Target rate in Hz (SoundNet: 22,050).
    resample_quality
        soxr quality: ``"QQ"``, ``"LQ"``, ``"MQ"``, ``"HQ"`` (default) or ``"VHQ"``.
    max_seconds
        When given and the header says the file lasts longer, raise :class:`AudioTooLong`
        before decoding anything (the file is opened once either way).

    Returns
    -------
    numpy.ndarray
        Shape ``(samples,)``, float32, nominally in [-1, 1], channels averaged.

    Raises
    ------
    AudioError
        Missing, unreadable, not audio, corrupt, empty, or holding NaN/Inf samples.

    Warns
    -----
    SilentAudioWarning
        When the whole file is below :data:`SILENCE_PEAK`.
    """
    path = Path(path)
    f = open_audio(path)
    try:
        with f:
            native_rate = f.samplerate
            if max_seconds is not None and f.frames > max_seconds * native_rate:
                info = AudioInfo(path, int(native_rate), int(f.channels), int(f.frames))
                raise AudioTooLong(f"{path}: {info.duration:.1f} s, longer than {max_seconds:g} s",
                                   info)
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:  # AudioTooLong, or FFmpeg's reading errors (they name the file)
        raise
    except Exception as e:
        raise AudioError(f"{path}: cannot decode: {_reason(e, path)}") from e
    return prepare_waveform(data, native_rate, sample_rate, name=str(path),
                            resample_quality=resample_quality)


def prepare_waveform(
    data: np.ndarray,
    native_rate: int,
    sample_rate: int = SAMPLE_RATE,
    *,
    name: str = "<array>",
    resample_quality: str = "HQ",
) -> np.ndarray:
    """Validate, down-mix and resample decoded samples.

    ``data`` is ``(samples,)`` or ``(samples, channels)`` at ``native_rate`` Hz; the result is
    ``(samples',)`` float32 at ``sample_rate`` Hz. Raises :class:`AudioError` on empty or
    non-finite input and warns (:class:`SilentAudioWarning`) on silence.
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise AudioError(f"{name}: expected (samples, channels) audio, got shape {data.shape}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"{name}: empty audio (no samples)")
    if native_rate <= 0:
        raise AudioError(f"{name}: invalid sample rate {native_rate}")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if native_rate != sample_rate:
        mono = resample(mono, native_rate, sample_rate, quality=resample_quality)
    if mono.size == 0:
        raise AudioError(f"{name}: too short to resample to {sample_rate} Hz (no samples left)")
    peak = float(np.abs(mono).max())
    if peak < SILENCE_PEAK:
        warnings.warn(f"{name}: audio is silent", SilentAudioWarning, stacklevel=3)
    loud = loudness_warning(name, peak)
    if loud:
        warnings.warn(loud, LoudAudioWarning, stacklevel=3)
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(x: np.ndarray, from_rate: int, to_rate: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample a mono float32 signal ``(samples,)`` from ``from_rate`` to ``to_rate`` Hz (soxr)."""
    import soxr

    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    return soxr.resample(np.asarray(x, dtype=np.float32), from_rate, to_rate, quality=quality)


def iter_audio_blocks(
    path: str | os.PathLike,
    block_seconds: float = 60.0,
    sample_rate: int = SAMPLE_RATE,
    *,
    resample_quality: str = "HQ",
) -> Iterator[np.ndarray]:
    """Stream a file as mono float32 blocks at ``sample_rate``, never holding the whole file.

    Blocks are read with :func:`open_audio` (libsndfile, else FFmpeg) and resampled with a streaming soxr resampler; the
    concatenation of all blocks is bit-identical to :func:`load_audio` (tested).
    Each yielded array is ``(samples,)``; block lengths vary and the last may be short.
    """
    path = Path(path)
    info = audio_info(path)
    import soxr

    block = max(1, int(round(block_seconds * info.sample_rate)))
    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32",
                                     quality=resample_quality)
    produced = 0
    try:
        with open_audio(path) as f:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                last = data.shape[0] < block
                if data.size and not np.isfinite(data).all():
                    raise AudioError(f"{path}: audio holds NaN or infinite samples")
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if stream is not None:
                    mono = stream.resample_chunk(np.ascontiguousarray(mono), last=last)
                if mono.size:
                    produced += mono.size
                    yield np.ascontiguousarray(mono, dtype=np.float32)
                if last:
                    break
        if not produced:
            raise AudioError(f"{path}: empty audio (no samples)")
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: cannot decode: {_reason(e, path)}") from e


def find_audio_files(
    inputs: Iterable[str | os.PathLike], *, recursive: bool = False
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and directories into audio file paths.

    Files named explicitly are kept whatever their suffix (decoding will judge them); directories
    contribute files whose suffix is in :data:`AUDIO_SUFFIXES`, sorted, descending into
    sub-directories only with ``recursive``. Returns ``(files, problems)``: ``(path, message)``
    for inputs that do not exist or are not regular files, and directories that cannot be listed
    (see :func:`.fsutil.find_files`). Duplicates are dropped, order kept.
    """
    return find_files(inputs, AUDIO_SUFFIXES, recursive=recursive)


def _reason(e: BaseException, path: str | os.PathLike | None = None) -> str:
    text = str(e).strip() or type(e).__name__
    # libsndfile messages repeat the path; keep the part after it when present.
    text = text.split(": ", 1)[-1] if text.startswith("Error opening") else text
    # libsndfile reports some corrupt files (an MP3 whose frames it cannot parse) as missing.
    if path is not None and "does not exist" in text and Path(path).is_file():
        return "corrupt or unsupported audio data (libsndfile cannot open it)"
    return text


def tile(waveform: np.ndarray, min_samples: int) -> np.ndarray:
    """Repeat ``waveform`` ``(samples,)`` circularly until it has at least ``min_samples``."""
    if waveform.shape[0] >= min_samples:
        return waveform
    reps = -(-min_samples // waveform.shape[0])
    return np.tile(waveform, reps)


def loop_to(waveform: np.ndarray, samples: int) -> np.ndarray:
    """Repeat ``waveform`` ``(samples,)`` circularly and cut it to exactly ``samples`` samples
    (longer inputs keep their first ``samples``)."""
    return tile(waveform, samples)[:samples]
