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

from ..fsutil import atomic_write_bytes

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
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def spectrogram_image(db: np.ndarray, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A ``(frames, bins)`` dB spectrogram as ``(height, width, 3)`` uint8 RGB: frames and bins
    averaged (or repeated) into pixels, low frequencies at the bottom."""
    frames, bins = db.shape
    cols = np.minimum((np.arange(frames) * width) // max(frames, 1), width - 1)
    rows = np.minimum((np.arange(bins) * height) // max(bins, 1), height - 1)
    total = np.zeros((width, height))
    count = np.zeros((width, height))
    np.add.at(total, (cols[:, None], rows[None, :]), db)
    np.add.at(count, (cols[:, None], rows[None, :]), 1)
    filled = _fill_empty(total, count)
    level = np.clip((filled - FLOOR_DB) / -FLOOR_DB, 0.0, 1.0)
    index = (level * 255).round().astype(np.uint8).T[::-1]  # (height, width), low freq at bottom
    return _LUT[index]


def _fill_empty(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mean per pixel; pixels no frame or bin fell into take their nearest filled neighbour
    (short files have fewer frames than pixels)."""
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    for axis in (0, 1):
        idx = np.where(~np.isnan(mean), np.arange(mean.shape[axis])[:, None] if axis == 0
                       else np.arange(mean.shape[1])[None, :], 0)
        idx = np.maximum.accumulate(idx, axis=axis)
        mean = np.take_along_axis(mean, idx, axis=axis)
    return np.nan_to_num(mean, nan=FLOOR_DB)


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
