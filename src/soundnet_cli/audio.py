"""Decoding, down-mixing and resampling audio files into what SoundNet reads.

SoundNet reads mono waveforms at :data:`SAMPLE_RATE` (22,050 Hz). Files are decoded with
libsndfile (through ``soundfile``: wav, flac, ogg/vorbis, opus, mp3, aiff, ...), channels are
averaged, and other rates are resampled with ``soxr``. torchaudio is deliberately not used (its
wheels pin one torch build and link CUDA). Samples are returned as float32 in [-1, 1]; the
network's own input scale (x256 for SoundNet) is applied inside the model, from its checkpoint.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import AudioError, SoundNetWarning

#: SoundNet's sample rate in Hz. Every hop and window in seconds is derived from it.
SAMPLE_RATE = 22_050
#: Peak amplitude below which a decoded file counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5
#: Suffixes treated as audio when a directory is expanded (libsndfile's formats, lower case).
AUDIO_SUFFIXES = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
        ".au", ".snd", ".caf", ".w64", ".rf64", ".sd2", ".voc", ".wve", ".mat", ".htk",
        ".pvf", ".xi", ".sds", ".avr", ".nist", ".sph", ".ircam", ".sf", ".paf", ".mpc",
    }
)


class SilentAudioWarning(SoundNetWarning):
    """A decoded file has no signal above :data:`SILENCE_PEAK`."""


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
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: permission denied")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: native rate, channels, frames. Raises :class:`AudioError`."""
    path = Path(path)
    _check_path(path)
    sf = _soundfile()
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioError(
            f"{path}: cannot decode: not a readable audio file ({_reason(e, path)})") from e
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


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
        Any file libsndfile reads.
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
    _check_path(path)
    sf = _soundfile()
    try:
        with sf.SoundFile(str(path)) as f:
            native_rate = f.samplerate
            if max_seconds is not None and f.frames > max_seconds * native_rate:
                info = AudioInfo(path, int(native_rate), int(f.channels), int(f.frames))
                raise AudioTooLong(f"{path}: {info.duration:.1f} s, longer than {max_seconds:g} s",
                                   info)
            data = f.read(dtype="float32", always_2d=True)
    except AudioTooLong:
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
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        warnings.warn(f"{name}: audio is silent", SilentAudioWarning, stacklevel=3)
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

    Blocks are read with libsndfile and resampled with a streaming soxr resampler; the
    concatenation of all blocks is bit-identical to :func:`load_audio` (tested).
    Each yielded array is ``(samples,)``; block lengths vary and the last may be short.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(f"{path}: empty audio (no samples)")
    sf = _soundfile()
    import soxr

    block = max(1, int(round(block_seconds * info.sample_rate)))
    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32",
                                     quality=resample_quality)
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                last = data.shape[0] < block
                if data.size and not np.isfinite(data).all():
                    raise AudioError(f"{path}: audio holds NaN or infinite samples")
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if stream is not None:
                    mono = stream.resample_chunk(np.ascontiguousarray(mono), last=last)
                if mono.size:
                    yield np.ascontiguousarray(mono, dtype=np.float32)
                if last:
                    break
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: cannot decode: {_reason(e, path)}") from e


def find_audio_files(
    inputs: Iterable[str | os.PathLike], *, recursive: bool = False
) -> tuple[list[Path], list[Path]]:
    """Expand files and directories into audio file paths.

    Files named explicitly are kept whatever their suffix (decoding will judge them); directories
    contribute files whose suffix is in :data:`AUDIO_SUFFIXES`, sorted, descending into
    sub-directories only with ``recursive``. Returns ``(files, missing)``, where ``missing`` lists
    inputs that do not exist. Duplicates are dropped, order kept.
    """
    from .fsutil import find_files

    return find_files(inputs, AUDIO_SUFFIXES, recursive=recursive)


def _reason(e: BaseException, path: str | os.PathLike | None = None) -> str:
    text = str(e).strip() or type(e).__name__
    # libsndfile messages repeat the path; keep the part after it when present.
    text = text.split(": ", 1)[-1] if text.startswith("Error opening") else text
    # libsndfile reports some corrupt files (an MP3 whose frames it cannot parse) as missing.
    if path is not None and "does not exist" in text and Path(path).is_file():
        return "corrupt or unsupported audio data (libsndfile cannot open it)"
    return text
