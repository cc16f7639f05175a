"""Spectrogram pictures for the review page: PNG written with NumPy and zlib alone.

The review page must not need matplotlib (an optional extra) to show what a recording looks
like, so the pictures here are plain RGB PNGs: time left to right, 0 Hz at the bottom to the
Nyquist frequency (11,025 Hz at SoundNet's 22,050 Hz) at the top, dB mapped through a perceptual
colour ramp.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files.fsutil import atomic_write_bytes

#: Picture size in pixels: columns (time) and rows (frequency).
WIDTH, HEIGHT = 720, 96
#: Lowest dB drawn (relative to the loudest bin of the file).
FLOOR_DB = -80.0
# Anchors of a dark-blue-to-yellow ramp (viridis-like), linearly interpolated to 256 entries.
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                    dtype=np.float64)


def _ramp() -> np.ndarray:
    x = np.linspace(0, len(_ANCHORS) - 1, 256)
    lo = np.floor(x).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (x - lo)[:, None]
    return ((1 - t) * _ANCHORS[lo] + t * _ANCHORS[lo + 1]).round().astype(np.uint8)


_LUT = _ramp()


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode ``(height, width, 3)`` uint8 as a PNG (8-bit RGB, no interlace)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (h, w, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 3)) + chunk(b"IEND", b""))


def spectrogram_image(db: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A ``(frames, bins)`` dB spectrogram as ``(height, width, 3)`` uint8 RGB: frames and bins
    averaged into pixels (or repeated, when there are fewer than pixels), low frequencies at the
    bottom."""
    pooled = _pool_mean(_pool_mean(np.asarray(db, np.float64), width, axis=0), height, axis=1)
    level = np.clip((pooled - FLOOR_DB) / -FLOOR_DB, 0.0, 1.0)
    index = (level * 255).round().astype(np.uint8).T[::-1]  # (height, width), low freq at bottom
    return _LUT[index]


def _pool_mean(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """``x`` with ``axis`` cut into ``n`` equal runs, each replaced by its mean (a run holds at
    least one element: with fewer elements than ``n``, elements repeat). Prefix sums: O(size)."""
    m = x.shape[axis]
    start = (np.arange(n) * m) // n
    stop = np.maximum(start + 1, (np.arange(1, n + 1) * m) // n)
    sums = np.concatenate([np.zeros_like(np.take(x, [0], axis=axis)),
                           np.cumsum(x, axis=axis)], axis=axis)
    total = np.take(sums, stop, axis=axis) - np.take(sums, start, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n
    return total / (stop - start).reshape(shape)


def write_spectrogram(audio: str | os.PathLike, path: str | os.PathLike,
                      sample_rate: int = 22_050) -> Path:
    """Decode ``audio`` (in blocks when long) and write its spectrogram PNG to ``path``
    atomically. Raises :class:`~soundnet_cli.errors.AudioError` when it cannot be decoded."""
    from ..audio import audio_info, iter_audio_blocks
    from ..plot import spectrogram

    info = audio_info(audio)
    samples = int(info.duration * sample_rate)
    db, _ = spectrogram(iter_audio_blocks(audio, 60.0, sample_rate), max(samples, 1),
                        columns=WIDTH * 2)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, png_bytes(spectrogram_image(db)))
    return out
