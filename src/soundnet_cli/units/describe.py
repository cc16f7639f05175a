"""What a unit's top segments sound like and what the network's heads call them.

For every distinct segment the recording is read around it (only that part: libsndfile seeks;
formats only FFmpeg reads are decoded up to it), and

- the heads' softmax is averaged over the steps of a window of ``tile_seconds`` (10 s for
  SoundNet-8) centred on the segment (the whole recording when it is shorter), tiled to what a
  head step needs without zero padding, counting only such steps: :func:`head_probabilities`;
- a spectrogram thumbnail is drawn (:func:`thumbnail_png`) and the segment's audio can be saved.

:func:`unit_hints` averages a unit's segments' head distributions into its hint and measures how
consistent it is: the share of its segments whose top label (in the most agreeing head) is the
same.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import AudioError

if TYPE_CHECKING:
    from ..model import SoundNet
    from .top import Segment


def read_window(path: str | os.PathLike, start: float, end: float, rate: int) -> np.ndarray:
    """Mono float32 audio of ``path`` from ``start`` to ``end`` seconds at ``rate`` Hz
    (``(samples,)``; shorter when the file ends first). Raises :class:`AudioError`."""
    from ..audio import _soundfile, iter_audio_blocks, resample

    try:
        f = _soundfile().SoundFile(os.fsencode(Path(path)))
    except Exception:  # not for libsndfile: FFmpeg, decoded from the start
        return _window_from_blocks(iter_audio_blocks(path, 30.0, rate), start, end, rate)
    try:
        with f:
            native = int(f.samplerate)
            first = max(0, int(math.floor(start * native)))
            f.seek(min(first, f.frames))
            data = f.read(max(0, int(math.ceil(end * native)) - first), dtype="float32",
                          always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: cannot decode: {e}") from e
    mono = data.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(resample(mono, native, rate), np.float32)


def _window_from_blocks(blocks: object, start: float, end: float, rate: int) -> np.ndarray:
    lo, hi = int(round(start * rate)), int(round(end * rate))
    pos, parts = 0, []
    for block in blocks:  # type: ignore[attr-defined]
        if pos + block.shape[0] > lo:
            parts.append(block[max(0, lo - pos):max(0, hi - pos)])
        pos += block.shape[0]
        if pos >= hi:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def interior_samples(model: SoundNet, layer: str) -> int:
    """Shortest input (samples) with a frame of ``layer`` whose receptive field lies wholly
    inside it (no zero padding: see :func:`.scan.valid_range`)."""
    g = model.geometry(layer)
    first = max(0, math.ceil(-g.first_sample / g.hop))
    return first * g.hop + g.first_sample + g.receptive_field


def head_probabilities(model: SoundNet, waveform: np.ndarray) -> dict[str, np.ndarray]:
    """``{head: (classes,) float32}``: each head's softmax averaged over its steps that lie
    wholly inside ``waveform`` (``(samples,)`` at the model's rate), which is first tiled to the
    tagging length and to what one such step needs (15 s for SoundNet-8) when shorter.

    Steps reaching into the zero padding are left out as for the units (:func:`.scan.valid_range`):
    for SoundNet-8 a 10 s input has one head step, mostly padding, whose labels barely depend on
    the sound."""
    import torch

    from ..audio import tile
    from ..model import min_tag_samples
    from ..tagging.scoring import softmax
    from .scan import valid_range

    heads = list(model.config.head_names)
    if not heads or waveform.size == 0:
        return {}
    need = max([min_tag_samples(model)] + [interior_samples(model, h) for h in heads])
    x = tile(waveform, need)
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model.features(torch.from_numpy(x)[None].to(device), heads)
    probs = {}
    for h in heads:
        logits = out[h][0].float().cpu().numpy()  # (classes, steps)
        a, b = valid_range(model, h, x.size, logits.shape[1])
        probs[h] = softmax(logits[:, a:b], axis=0).mean(axis=1)
    return probs


def hint_window(model: SoundNet, seg: Segment, duration: float) -> tuple[float, float]:
    """Seconds of the recording the heads hear for ``seg``: ``tile_seconds`` centred on it,
    inside the recording (all of it when shorter)."""
    from ..model import min_tag_samples

    width = max(min_tag_samples(model) / model.config.sample_rate, seg.end - seg.start)
    centre = (seg.start + seg.end) / 2
    start = min(max(0.0, centre - width / 2), max(0.0, duration - width))
    return start, min(duration, start + width)


def thumbnail_png(waveform: np.ndarray, rate: int, width: int = 192, height: int = 72) -> bytes:
    """A spectrogram (log frequency up to ``rate / 2``, 80 dB range, magma palette) of
    ``waveform`` as ``width x height`` 8-bit palette PNG bytes (a few kB)."""
    from matplotlib import colormaps
    from PIL import Image

    from ..plot import spectrogram

    n_fft = 512
    if waveform.size < n_fft:
        waveform = np.pad(waveform, (0, n_fft - waveform.size))
    db, _ = spectrogram([waveform], waveform.size, columns=width, n_fft=n_fft)
    bins = db.shape[1]
    rows = np.unique(np.geomspace(1, bins - 1, height * 2).astype(int))
    image = db[:, rows].T[::-1]
    cols = np.linspace(0, image.shape[1] - 1, width).astype(int)
    rows_out = np.linspace(0, image.shape[0] - 1, height).astype(int)
    image = image[rows_out][:, cols]
    index = np.round((np.clip(image, -80.0, 0.0) + 80.0) / 80.0 * 255).astype(np.uint8)
    palette = (colormaps["magma"](np.arange(256) / 255.0)[:, :3] * 255).round().astype(np.uint8)
    picture = Image.frombytes("P", (width, height), np.ascontiguousarray(index).tobytes())
    picture.putpalette(palette.ravel().tolist())
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@dataclass
class Hint:
    """A unit's hint: per head, the top labels of its segments' mean distribution
    (``[(label, probability)]``), and the consistency: the share of segments whose top-1 label
    is ``label`` in ``head`` (the head and label where most segments agree)."""

    labels: dict[str, list[tuple[str, float]]]
    consistency: float
    head: str
    label: str
    agree: int
    segments: int


def unit_hint(model: SoundNet, probs: Sequence[dict[str, np.ndarray]], k: int = 3) -> Hint:
    """The hint of one unit from its segments' head distributions (see :class:`Hint`)."""
    labels: dict[str, list[tuple[str, float]]] = {}
    best = (0, 0.0, "", "")
    for head in model.config.heads:
        rows = [p[head.name] for p in probs if head.name in p]
        if not rows:
            continue
        stack = np.stack(rows)
        mean = stack.mean(axis=0)
        order = np.argsort(-mean, kind="stable")[:k]
        labels[head.name] = [(head.labels[i], round(float(mean[i]), 4)) for i in order]
        tops = np.argmax(stack, axis=1)
        values, counts = np.unique(tops, return_counts=True)
        j = int(np.argmax(counts))
        cand = (int(counts[j]), float(mean[values[j]]), head.name, head.labels[int(values[j])])
        if cand[:2] > best[:2]:
            best = cand
    n = len(probs)
    return Hint(labels, best[0] / n if n else 0.0, best[2], best[3], best[0], n)
