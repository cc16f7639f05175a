"""How ``soundnet train`` makes a training example from a decoded clip (:class:`AugmentConfig`).

1. the clip is tiled ``tile`` times and a random window of ``clip_seconds`` is cropped (the original
   fine-tuning recipe: tile 3x, crop 5 s; for 5 s clips a random circular shift), optionally
   time-scaled by a random factor (``stretch``);
2. a random gain of up to +-``gain_db`` dB;
3. between-class mixing (Tokozume et al., "BC learning", 2018): with probability ``mix_prob`` the
   example is mixed with one of another class, ratio ``r ~ U(0, 1)``, sound-pressure aware
   (BC+), and the target is the mixed label distribution ``r*y1 + (1-r)*y2``.

Every function draws from the generator it is given, so an example is a function of
``(seed, epoch, index)`` (:meth:`.supervised.SupervisedTask.example`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import tile


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training examples (the steps are in the module docstring)."""

    clip_seconds: float = 5.0
    tile: int = 3
    random_crop: bool = True
    gain_db: float = 6.0
    mix_prob: float = 1.0  # 0 disables between-class mixing
    #: Time-scale (speed and pitch together, by resampling) by a factor log-uniform in
    #: [1/stretch, stretch] (EnvNet's "scale augmentation"); 1 disables it.
    stretch: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def db_gain(x: np.ndarray, frame: int = 2048) -> float:
    """Peak frame RMS level in dB (floored at -80 dB), for sound-pressure-aware mixing."""
    n = max(1, x.shape[0] // frame)
    frames = x[: n * frame].reshape(n, -1) if x.shape[0] >= frame else x[None, :]
    power = float((frames.astype(np.float64) ** 2).mean(axis=1).max())
    return max(-80.0, 10.0 * np.log10(power + 1e-12))


def bc_mix(x1: np.ndarray, x2: np.ndarray, r: float) -> np.ndarray:
    """BC+ mixing of two equal-length examples with label ratio ``r`` (weight of ``x1``)."""
    g1, g2 = db_gain(x1), db_gain(x2)
    r = min(max(r, 1e-6), 1 - 1e-6)
    p = 1.0 / (1.0 + 10 ** ((g1 - g2) / 20.0) * (1.0 - r) / r)
    return ((p * x1 + (1.0 - p) * x2) / np.sqrt(p**2 + (1.0 - p) ** 2)).astype(np.float32)


def crop(wave: np.ndarray, samples: int, aug: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Tile ``aug.tile`` times (at least up to ``samples``) and cut ``samples`` at a random start.

    The tiled clip is never built: it is ``wave`` repeated, so the crop is copied from ``wave``
    circularly (:func:`circular`), the same samples with the same random start.
    """
    tiled = wave.shape[0] * max(1, aug.tile)
    tiled *= max(1, -(-samples // tiled))  # :func:`tile`'s length
    start = int(rng.integers(0, tiled - samples + 1)) if aug.random_crop else 0
    return circular(wave, start, samples)


def circular(wave: np.ndarray, start: int, samples: int) -> np.ndarray:
    """Samples ``start .. start + samples - 1`` of ``wave (n,)`` repeated forever: index ``i``
    reads ``wave[i % n]`` (a view when no wrap is needed; never written to)."""
    n = wave.shape[0]
    head = wave[start % n : start % n + samples]
    if head.shape[0] == samples:
        return head
    full, rest = divmod(samples - head.shape[0], n)
    return np.concatenate([head, *([wave] * full), wave[:rest]])


def stretched_crop(wave: np.ndarray, samples: int, aug: AugmentConfig,
                   rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``samples * f`` samples resampled to ``samples`` (soxr, quick quality),
    ``f`` log-uniform in ``[1/aug.stretch, aug.stretch]``: the sound played ``f`` times faster."""
    import soxr

    f = float(np.exp(rng.uniform(-np.log(aug.stretch), np.log(aug.stretch))))
    length = max(2, int(round(samples * f)))
    seg = crop(wave, length, aug, rng)
    out = soxr.resample(seg, length, samples, quality="QQ").astype(np.float32, copy=False)
    return tile(out, samples)[:samples]
