"""``soundnet units --explain clip.wav``: which units of a layer fire most in one recording.

:func:`explain` runs the layer and the heads over the recording (tiled, when shorter, to the
tagging length and to what one head step needs without zero padding: 15 s for SoundNet-8).
Frames and steps reaching into the zero padding or the repeated audio are dropped
(:func:`.scan.valid_range`); the steps of a tiled clip, which hear it looped, are averaged into
one label for the whole clip. It ranks the units by their highest activation and, for each, says
when it peaked and what the heads' top label was at the step nearest that moment. :func:`explain_figure` draws the chosen
units' activations over time as a heat map (units down, seconds across) under one strip per head
naming its top label at each step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SoundNetError
from .describe import interior_samples
from .scan import valid_range

if TYPE_CHECKING:
    from ..model import SoundNet
    from ..runtime.options import RunOptions


@dataclass
class HeadTrack:
    """A head over time: ``probs`` ``(steps, classes)`` softmax, ``times`` ``(steps,)`` centres
    in seconds, and its ``labels``."""

    name: str
    labels: tuple[str, ...]
    probs: np.ndarray
    times: np.ndarray

    def top_at(self, seconds: float) -> tuple[str, float]:
        """The top label and its probability at the step centred nearest ``seconds``."""
        i = int(np.argmin(np.abs(self.times - seconds)))
        j = int(np.argmax(self.probs[i]))
        return self.labels[j], float(self.probs[i, j])


@dataclass
class Explanation:
    """One recording through ``layer``: ``activations`` ``(frames, units)`` float32 with frame
    centres ``times`` (seconds), the heads over time, the recording's ``duration`` (seconds)
    and the ``top`` units, highest peak first."""

    path: Path
    layer: str
    activations: np.ndarray
    times: np.ndarray
    heads: list[HeadTrack]
    duration: float
    top: list[int]

    def rows(self) -> list[dict[str, Any]]:
        """One row per top unit: rank, unit, peak activation, peak time (s), mean activation and
        each head's top label (probability) at the step nearest the peak."""
        out = []
        for rank, u in enumerate(self.top, 1):
            i = int(np.argmax(self.activations[:, u]))
            at = float(self.times[i])
            row: dict[str, Any] = {"rank": rank, "unit": u,
                                   "peak": float(self.activations[i, u]),
                                   "time": round(min(max(at, 0.0), self.duration), 3),
                                   "mean": float(self.activations[:, u].mean())}
            for h in self.heads:
                row[h.name] = h.top_at(at)
            out.append(row)
        return out


def _centres(model: SoundNet, layer: str, first: int, count: int) -> np.ndarray:
    return model.time_axis(layer).centres(count, first)


def explain(model: SoundNet, path: str | os.PathLike, layer: str | int, top: int = 5, *,
            options: RunOptions | None = None) -> Explanation:
    """The ``top`` units of ``layer`` with the highest activation anywhere in ``path``
    (see the module docs). Raises :class:`SoundNetError` when the file cannot be read."""
    from ..model import min_tag_samples
    from ..runtime.batch import iter_activations
    from ..tagging.scoring import softmax

    name = model.resolve_layers([layer])[0]
    heads = list(model.config.head_names)
    need = max([min_tag_samples(model)] + [interior_samples(model, h) for h in heads]) \
        if heads else None
    clip = next(iter_activations(model, [path], [name, *heads], min_samples=need,
                                 options=options))
    if not clip.ok or clip.activations is None:
        raise SoundNetError(clip.error or f"{path}: failed")
    rate = model.config.sample_rate
    samples = int(round(clip.duration * rate))
    first, end = valid_range(model, name, samples, clip.activations[name].shape[0])
    acts = clip.activations[name][first:end]
    tracks = []
    for h in model.config.heads:
        logits = clip.activations[h.name]
        heard = int(round(clip.tiled_to * rate)) if clip.tiled_to else samples
        a, b = valid_range(model, h.name, heard, logits.shape[0])
        probs = softmax(logits[a:b], axis=1)
        times = _centres(model, h.name, a, len(probs))
        if clip.tiled_to:  # the steps hear the looped clip: one label for all of it
            probs, times = probs.mean(axis=0, keepdims=True), np.array([clip.duration / 2])
        tracks.append(HeadTrack(h.name, h.labels, probs, times))
    order = np.argsort(-acts.max(axis=0), kind="stable")[:top]
    return Explanation(Path(path), name, acts, _centres(model, name, first, len(acts)), tracks,
                       clip.duration, [int(u) for u in order])


def explain_figure(exp: Explanation, short: Any = None) -> Any:
    """The heat map of ``exp`` (see the module docs) as a matplotlib figure. ``short`` shortens
    labels for display (default: as the gallery does)."""
    from ..plot import _pyplot
    from .gallery import _short

    plt = _pyplot()
    short = short or _short
    rows = len(exp.top)
    fig = plt.figure(figsize=(8.0, 1.2 + 0.45 * len(exp.heads) + 0.28 * max(rows, 3)))
    ratios = [0.55] * len(exp.heads) + [max(rows, 3) * 0.3]
    grid = fig.add_gridspec(len(ratios), 2, height_ratios=ratios, width_ratios=[40, 1],
                            hspace=0.08, wspace=0.02)
    edges = _edges(exp.times)
    for k, h in enumerate(exp.heads):
        ax = fig.add_subplot(grid[k, 0])
        _head_strip(ax, h, exp.duration, short)
    ax = fig.add_subplot(grid[len(exp.heads), 0])
    data = exp.activations[:, exp.top].T
    mesh = ax.pcolormesh(edges, np.arange(rows + 1), data, cmap="magma", shading="flat")
    ax.set_yticks(np.arange(rows) + 0.5, [f"unit {u}" for u in exp.top])
    ax.invert_yaxis()
    ax.set_xlim(0, exp.duration)
    ax.set_xlabel("seconds")
    cax = fig.add_subplot(grid[len(exp.heads), 1])
    fig.colorbar(mesh, cax=cax, label="activation")
    fig.suptitle(f"{exp.path.name}: top {rows} {exp.layer} units", x=0.02, ha="left", y=0.995)
    return fig


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges in seconds around frame ``centres`` (the midpoints; half a hop at the ends)."""
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    mid = (centres[1:] + centres[:-1]) / 2
    hop = centres[1] - centres[0]
    return np.concatenate([[centres[0] - hop / 2], mid, [centres[-1] + hop / 2]])


def _head_strip(ax: Any, h: HeadTrack, duration: float, short: Any) -> None:
    """One head's top label per step, written across a strip shaded by its probability
    (relative to the strip's highest); labels alternate between two lines so they never
    overlap their neighbours."""
    edges = _edges(h.times)
    best = h.probs.max(axis=1)
    ax.pcolormesh(edges, [0, 1], best[None, :], cmap="Blues", vmin=0,
                  vmax=max(float(best.max()) * 1.6, 1e-6), shading="flat")
    step = max(1, math.ceil(len(h.times) / 16))  # at most ~16 labels across
    for k, i in enumerate(range(0, len(h.times), step)):
        label = short(h.labels[int(np.argmax(h.probs[i]))])
        ax.text(h.times[i], 0.72 if k % 2 == 0 else 0.28, f"{label[:16]} {best[i]:.2f}",
                ha="center", va="center", fontsize=6, clip_on=True)
    ax.set_yticks([0.5], [h.name])
    ax.set_xticks([])
    ax.set_ylim(0, 1)
    ax.set_xlim(0, duration)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
