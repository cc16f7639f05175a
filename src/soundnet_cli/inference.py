"""Batch inference over many audio files: decode in worker processes, batch, run the network.

This is the one path by which ``tag``, ``extract`` and ``fit-svm`` turn files into activations.
Decoding (libsndfile + soxr) happens in DataLoader workers; clips of equal length are stacked
into batches (batching never changes outputs); a file that fails is reported in its result and
the rest go on.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .audio import load_audio
from .errors import SoundNetError
from .model import SoundNet


@dataclass
class DecodedClip:
    """One file after decoding: ``waveform`` ``(samples,)`` float32 at the model rate, or an
    ``error`` message. ``warnings`` holds messages such as silence."""

    index: int
    path: Path
    waveform: np.ndarray | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ClipResult:
    """Activations of one file.

    ``activations`` maps layer name to ``(frames, channels)`` float32 arrays (``None`` when the
    file failed, see ``error``); ``duration`` is the decoded length in seconds before any tiling;
    ``tiled_to`` is the length in seconds the clip was tiled to (0.0 when it was not).
    """

    index: int
    path: Path
    activations: dict[str, np.ndarray] | None
    duration: float = 0.0
    tiled_to: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class AudioFileDataset(torch.utils.data.Dataset):
    """Decodes ``paths[i]`` to mono float32 at ``sample_rate``; errors become results, not raises."""

    def __init__(self, paths: Sequence[str | os.PathLike], sample_rate: int) -> None:
        self.paths = [Path(p) for p in paths]
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedClip:
        path = self.paths[index]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                wave = load_audio(path, self.sample_rate)
            except SoundNetError as e:
                return DecodedClip(index, path, None, str(e))
            except Exception as e:  # a decoder crash must not stop a batch of thousands
                return DecodedClip(index, path, None, f"{path}: cannot decode: {e}")
        return DecodedClip(index, path, wave, None, [str(w.message) for w in caught])


def iter_decoded(
    paths: Sequence[str | os.PathLike], sample_rate: int, *, workers: int = 0, prefetch: int = 4
) -> Iterator[DecodedClip]:
    """Decode files in ``workers`` background processes (0: in this process), in input order."""
    dataset = AudioFileDataset(paths, sample_rate)
    if workers <= 0 or len(dataset) <= 1:
        for i in range(len(dataset)):
            yield dataset[i]
        return
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=min(workers, len(dataset)),
        collate_fn=_identity, prefetch_factor=prefetch, persistent_workers=False,
    )
    yield from loader


def _identity(x: DecodedClip) -> DecodedClip:
    return x


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


def required_samples(model: SoundNet, layers: Sequence[str]) -> int:
    """Shortest input (samples) that gives every requested layer at least one frame."""
    return max(model.geometry(name).min_samples() for name in layers)


def iter_activations(
    model: SoundNet,
    paths: Sequence[str | os.PathLike],
    layers: Sequence[str | int],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    workers: int = 0,
    min_samples: int | None = None,
    length: int | None = None,
    input_scale: float | None = None,
) -> Iterator[ClipResult]:
    """Yield activations of ``layers`` for every file in ``paths`` (in input order).

    Parameters
    ----------
    model
        An eval-mode network, already on ``device``.
    layers
        Layer names or module numbers (resolved by the model).
    batch_size
        Files per forward pass; clips are batched only with clips of identical length.
    workers
        Decoding processes (0: decode in this process).
    min_samples
        Clips shorter than this are tiled up to it (default: the least the layers need). Tagging
        passes the model's ``tile_seconds`` here, as the original does.
    length
        Loop (tile circularly) or cut every clip to exactly this many samples, as the original
        ESC-50 evaluation does with 10 s; overrides ``min_samples``.
    input_scale
        Scale [-1, 1] audio by this instead of the model's ``config.input_scale`` (the original
        ESC-50 evaluation used 512 where the network was trained at 256). The network itself is
        not changed (its fingerprint stays the same).
    """
    names = model.resolve_layers(layers)
    need = max(min_samples or 0, required_samples(model, names))
    if length is not None:
        if length < required_samples(model, names):
            raise SoundNetError(f"length {length} samples is too short for layer(s) "
                                f"{', '.join(names)} (needs {required_samples(model, names)})")
        need = length
    gain = 1.0 if input_scale is None else float(input_scale) / model.config.input_scale
    rate = model.config.sample_rate
    device = torch.device(device)
    pending: list[DecodedClip] = []
    for clip in iter_decoded(paths, rate, workers=workers):
        pending.append(clip)
        if len(pending) >= batch_size:
            yield from _run_batch(model, pending, names, need, device, length is not None, gain)
            pending = []
    if pending:
        yield from _run_batch(model, pending, names, need, device, length is not None, gain)


def _run_batch(model: SoundNet, clips: list[DecodedClip], names: list[str], need: int,
               device: torch.device, exact: bool = False,
               gain: float = 1.0) -> Iterator[ClipResult]:
    rate = model.config.sample_rate
    results: dict[int, ClipResult] = {}
    groups: dict[int, list[tuple[DecodedClip, np.ndarray]]] = {}
    for clip in clips:
        if clip.waveform is None:
            results[clip.index] = ClipResult(clip.index, clip.path, None, error=clip.error)
            continue
        wave = loop_to(clip.waveform, need) if exact else tile(clip.waveform, need)
        groups.setdefault(wave.shape[0], []).append((clip, wave))
    for length, members in groups.items():
        batch = torch.from_numpy(np.stack([w for _, w in members])).to(device)
        if gain != 1.0:
            batch = batch * gain
        with torch.inference_mode():
            out = model.features(batch, names)
        arrays = {n: t.float().transpose(1, 2).cpu().numpy() for n, t in out.items()}
        for j, (clip, _) in enumerate(members):
            duration = clip.waveform.shape[0] / rate
            results[clip.index] = ClipResult(
                clip.index, clip.path, {n: np.ascontiguousarray(a[j]) for n, a in arrays.items()},
                duration=duration,
                tiled_to=length / rate if length != clip.waveform.shape[0] else 0.0,
                warnings=list(clip.warnings),
            )
    for clip in clips:
        yield results[clip.index]
