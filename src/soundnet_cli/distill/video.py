"""Decoding videos for student–teacher training: the soundtrack and one frame per time step.

A video is cut into time steps of ``step_seconds`` (5 s in the original), measured on its audio
track from the first audio sample. Step ``i`` covers audio ``[i*step, (i+1)*step)``; its frame is
the decoded frame whose timestamp is nearest to the middle of the step, ``(i + 0.5) * step``
(for a final, partial step after which the video ends, that is the last frame). The teacher
labels that frame and the student hears that step: the time steps of audio and frames line up.

Audio is decoded with PyAV (FFmpeg), channels are averaged and the signal resampled to 22,050 Hz
with soxr, exactly as :func:`soundnet_cli.audio.prepare_waveform` does for audio files. At most
``max_seconds`` are decoded (the original used the first 20 s of each video).

Number of steps: a video with ``d`` seconds of audio has ``floor(d / step)`` whole steps, plus a
final partial step when the remainder holds at least ``min_partial_step`` of a step (it is
zero-padded to a whole step at training time, as the original does). The same rule holds for
the first step: a video shorter than one step is one such padded step (a warning says so) when
it holds at least ``min_partial_step`` of a step, and is refused otherwise (a 0.2 s video would
be a 5 s target of 96 % silence). Videos without audio samples, without frames, or
that FFmpeg cannot decode raise :class:`VideoError`.

PyAV is a core dependency (also used by :func:`soundnet_cli.audio.open_audio` for audio files
libsndfile cannot open); it is imported only when a video is decoded.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, cast

import numpy as np

from ..audio import SAMPLE_RATE, prepare_waveform
from ..errors import SoundNetError, VideoError

if TYPE_CHECKING:
    from torch.utils.data import Dataset

#: Suffixes treated as video when a directory is expanded (lower case).
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg", ".mpeg", ".ts",
        ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".wmv", ".asf", ".vob", ".divx",
    }
)


@dataclass(frozen=True)
class FrameSampling:
    """How a video is cut into time steps (see the module docstring).

    ``max_seconds`` 0 decodes whole videos; ``max_short_side`` (pixels, 0: keep) shrinks frames
    whose shorter side is larger, before any teacher sees them (teachers resize further).
    """

    step_seconds: float = 5.0
    max_seconds: float = 20.0
    min_partial_step: float = 0.5
    sample_rate: int = SAMPLE_RATE
    max_short_side: int = 0

    @property
    def max_steps(self) -> int | None:
        """Largest number of steps kept per video (``None``: unlimited)."""
        if self.max_seconds <= 0:
            return None
        return max(1, int(math.floor(self.max_seconds / self.step_seconds + 1e-9)))

    @property
    def step_samples(self) -> int:
        """Audio samples per step at ``sample_rate``."""
        return int(round(self.step_seconds * self.sample_rate))


@dataclass
class DecodedVideo:
    """One video after decoding.

    Attributes
    ----------
    audio
        ``(samples,)`` float32 mono at ``sample_rate``: the first ``steps * step`` seconds (or
        less, when the video is shorter; the last step is padded later).
    frames
        ``(steps, height, width, 3)`` uint8 RGB, one frame per step.
    frame_times
        ``(steps,)`` float64, seconds from the first audio sample of each chosen frame.
    duration
        Seconds of audio decoded (at most ``max_seconds``).
    error
        Why the video could not be used (then ``audio`` and ``frames`` are ``None``).
    """

    index: int
    path: Path
    audio: np.ndarray | None = None
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    duration: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return 0 if self.frames is None else int(self.frames.shape[0])


def count_steps(duration: float, sampling: FrameSampling) -> int:
    """Time steps of a video with ``duration`` seconds of audio: one (zero-padded) step when it is
    shorter than a step but holds at least ``min_partial_step`` of one, 0 when it holds less."""
    step = sampling.step_seconds
    if duration + 1e-9 < sampling.min_partial_step * step or duration <= 0:
        return 0
    if duration + 1e-9 < step:
        return 1
    whole = int(math.floor(duration / step + 1e-9))
    rest = duration - whole * step
    steps = whole + (1 if rest + 1e-9 >= sampling.min_partial_step * step and rest > 1e-6 else 0)
    return steps if sampling.max_steps is None else min(steps, sampling.max_steps)


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise VideoError("decoding videos needs PyAV: pip install av") from e
    return av


def decode_video(path: str | os.PathLike, sampling: FrameSampling = FrameSampling()) -> DecodedVideo:
    """Decode the audio and one frame per time step of ``path`` (see the module docstring).

    Raises :class:`VideoError` naming the file for anything that makes the video unusable.
    """
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        container = av.open(str(path), metadata_errors="replace")  # garbled tags are not fatal
    except Exception as e:
        raise VideoError(f"{path}: cannot decode: {_reason(e)}") from e
    with container:
        if not container.streams.audio:
            raise VideoError(f"{path}: no audio track")
        if not container.streams.video:
            raise VideoError(f"{path}: no video track")
        try:
            reader = _Reader(container, sampling)
            reader.run()
        except SoundNetError:
            raise
        except Exception as e:
            raise VideoError(f"{path}: cannot decode: {_reason(e)}") from e
    return reader.result(path)


class _Reader:
    """One pass over a container: collects audio up to the limit and the frames of each step."""

    def __init__(self, container: Any, sampling: FrameSampling) -> None:
        av = _av()
        self.sampling = sampling
        self.container = container
        self.astream = container.streams.audio[0]
        self.vstream = container.streams.video[0]
        self.vstream.thread_type = "AUTO"
        self.resampler = av.AudioResampler(format="fltp")
        self.chunks: list[np.ndarray] = []
        self.native_rate = 0
        self.native_samples = 0
        start = self.astream.start_time
        #: Time of the first audio sample: frame times are measured from it.
        self.t0 = float(start * self.astream.time_base) if start is not None else 0.0
        self.limit_seconds = (sampling.max_steps * sampling.step_seconds
                              if sampling.max_steps is not None else math.inf)
        self.prev: tuple[float, Any] | None = None
        self.chosen: list[tuple[float, np.ndarray]] = []
        self.frame_count = 0

    @property
    def audio_done(self) -> bool:
        need = (self.limit_seconds + 0.05) * self.native_rate
        return bool(self.native_rate) and self.native_samples >= need

    @property
    def video_done(self) -> bool:
        return self.sampling.max_steps is not None and len(self.chosen) >= self.sampling.max_steps

    def run(self) -> None:
        for packet in self.container.demux(self.astream, self.vstream):
            is_audio = packet.stream.index == self.astream.index
            if (is_audio and self.audio_done) or (not is_audio and self.video_done):
                if self.audio_done and self.video_done:
                    break
                continue
            for frame in packet.decode():
                if is_audio:
                    self._audio(frame)
                else:
                    self._video(frame)

    def _audio(self, frame: Any) -> None:
        for out in self.resampler.resample(frame):
            data = out.to_ndarray()  # (channels, samples) float32, planar
            self.native_rate = self.native_rate or int(out.sample_rate)
            self.chunks.append(np.asarray(data, dtype=np.float32))
            self.native_samples += data.shape[1]

    def _video(self, frame: Any) -> None:
        t = frame.time
        if t is None:
            rate = float(self.vstream.average_rate or 25)
            t = self.frame_count / rate
        self.frame_count += 1
        t = float(t) - self.t0
        step = self.sampling.step_seconds
        while not self.video_done:
            centre = (len(self.chosen) + 0.5) * step
            if centre > t:
                break
            pick = frame
            if self.prev is not None and centre - self.prev[0] <= t - centre:
                pick = self.prev[1]
                t_pick = self.prev[0]
            else:
                t_pick = t
            self.chosen.append((t_pick, self._rgb(pick)))
        self.prev = (t, frame)

    def _rgb(self, frame: Any) -> np.ndarray:
        w, h = int(frame.width), int(frame.height)
        limit = self.sampling.max_short_side
        if self.chosen:  # every frame of a video gets the size of the first one
            h, w = self.chosen[0][1].shape[:2]
        elif limit and min(w, h) > limit:
            scale = limit / min(w, h)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        if (w, h) == (frame.width, frame.height):
            return frame.to_ndarray(format="rgb24")
        return frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()

    def result(self, path: Path) -> DecodedVideo:
        if not self.native_samples:
            raise VideoError(f"{path}: the audio track holds no samples")
        if self.prev is None:
            raise VideoError(f"{path}: the video track holds no frames")
        data = np.concatenate(self.chunks, axis=1).T  # (samples, channels)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audio = prepare_waveform(data, self.native_rate, self.sampling.sample_rate,
                                     name=str(path))
        duration = audio.shape[0] / self.sampling.sample_rate
        if self.limit_seconds < math.inf:
            duration = min(duration, self.limit_seconds)
        steps = count_steps(duration, self.sampling)
        if steps == 0 and audio.shape[0] == 0:
            raise VideoError(f"{path}: the audio track holds no samples at "
                             f"{self.sampling.sample_rate} Hz")
        if steps == 0:
            need = self.sampling.min_partial_step * self.sampling.step_seconds
            raise VideoError(f"{path}: {_seconds(duration)} s of audio is shorter than "
                             f"{need:g} s ({self.sampling.min_partial_step:g} of a "
                             f"{self.sampling.step_seconds:g} s step, --min-partial-step); "
                             "its target would be mostly silence")
        notes = [str(w.message) for w in caught]
        if duration + 1e-9 < self.sampling.step_seconds:
            # Enough digits that the comparison printed is the comparison made (0.9999 < 1).
            notes.append(f"{path}: {_seconds(duration)} s of audio is shorter than one "
                         f"{self.sampling.step_seconds:g} s step; zero-padded to one step, as "
                         "the original does")
        while len(self.chosen) < steps:  # steps whose middle lies after the last frame
            self.chosen.append((self.prev[0], self._rgb(self.prev[1])))
        chosen = self.chosen[:steps]
        audio = audio[: steps * self.sampling.step_samples]
        return DecodedVideo(
            index=-1, path=path, audio=np.ascontiguousarray(audio),
            frames=np.stack([f for _, f in chosen]),
            frame_times=np.array([t for t, _ in chosen], dtype=np.float64),
            duration=duration, warnings=notes,
        )


def _seconds(x: float) -> str:
    """``x`` with the fewest decimals (up to 6) that do not round it up to a whole step."""
    for digits in range(2, 7):
        text = f"{x:.{digits}f}"
        if float(text) <= x or digits == 6:
            return text
    return f"{x:.6f}"


def _reason(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).replace("\n", " ")


# ---------------------------------------------------------------------------------------------
# Many videos


class VideoFileDataset:
    """``dataset[i]`` decodes ``paths[i]``; failures become a :class:`DecodedVideo` with ``error``."""

    def __init__(self, paths: Sequence[str | os.PathLike], sampling: FrameSampling) -> None:
        self.paths = [Path(p) for p in paths]
        self.sampling = sampling

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedVideo:
        path = self.paths[index]
        try:
            video = decode_video(path, self.sampling)
        except SoundNetError as e:
            return DecodedVideo(index, path, error=str(e))
        except Exception as e:  # a decoder crash must not stop a collection of a million videos
            return DecodedVideo(index, path, error=f"{path}: cannot decode: {_reason(e)}")
        video.index = index
        return video


def iter_videos(paths: Sequence[str | os.PathLike], sampling: FrameSampling, *,
                workers: int = 0, prefetch: int = 2) -> Iterator[DecodedVideo]:
    """Decode videos in ``workers`` background processes (0: in this process), in input order."""
    from ..runtime.batch import iter_dataset

    dataset = cast("Dataset[DecodedVideo]", VideoFileDataset(paths, sampling))  # map-style
    yield from iter_dataset(dataset, workers=workers, prefetch=prefetch)


def find_video_files(inputs: Iterable[str | os.PathLike], *,
                     recursive: bool = False) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and directories into video paths; returns ``(files, problems)`` (see
    :func:`.fsutil.find_files`).

    Files named explicitly are kept whatever their suffix; directories contribute files whose
    suffix is in :data:`VIDEO_SUFFIXES`, sorted (sub-directories only with ``recursive``).
    """
    from ..files.fsutil import find_files

    return find_files(inputs, VIDEO_SUFFIXES, recursive=recursive)
