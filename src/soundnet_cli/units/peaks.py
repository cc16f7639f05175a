"""Per-recording peaks of every unit of a layer, found in one pass over its frames.

A recording's frames arrive in runs (the whole file at once, or chunk after chunk when a long
file is streamed); :class:`RecordingPeaks` keeps, per unit (channel), the ``per_recording``
highest frames at least ``min_gap`` frames apart, plus running sums for each unit's variance.
Memory is ``per_recording x channels`` whatever the recording's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Peaks:
    """The peaks of one recording.

    ``values`` and ``frames`` are ``(per_recording, channels)``: float32 activations (``-inf``
    where the recording had fewer separated frames) and int64 frame indices of the layer (``-1``
    there); row 0 is each unit's highest frame. ``total`` and ``total_sq`` are ``(channels,)``
    float64 sums of the activations and of their squares over ``count`` frames; ``samples`` is
    the decoded length at the network's rate, before any tiling.
    """

    values: np.ndarray
    frames: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray
    count: int
    samples: int


def select_peaks(values: np.ndarray, frames: np.ndarray, n: int, min_gap: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy peak picking, per column: the highest entry, then the highest at least ``min_gap``
    frames from every one picked, ``n`` times.

    ``values`` is ``(candidates, channels)`` float32 and ``frames`` the same shape (or
    ``(candidates, 1)``, shared by every channel) of frame indices. Returns ``(n, channels)``
    values (``-inf`` where nothing was left) and frames (``-1`` there). Ties go to the earlier
    candidate row.
    """
    values = np.array(values, dtype=np.float32, copy=True)
    frames = np.broadcast_to(frames, values.shape)
    channels = values.shape[1]
    out_v = np.full((n, channels), -np.inf, np.float32)
    out_f = np.full((n, channels), -1, np.int64)
    cols = np.arange(channels)
    for k in range(n):
        if values.shape[0] == 0:
            break
        best = np.argmax(values, axis=0)
        v = values[best, cols]
        f = frames[best, cols]
        found = np.isfinite(v)
        out_v[k] = np.where(found, v, -np.inf)
        out_f[k] = np.where(found, f, -1)
        if k + 1 < n:
            near = np.abs(frames - f[None, :]) < max(min_gap, 1)
            values[near & found[None, :]] = -np.inf
    return out_v, out_f


class RecordingPeaks:
    """Running peaks and sums of one recording's ``(frames, channels)`` activations.

    Parameters
    ----------
    channels
        Units of the layer.
    per_recording
        Peaks kept per unit (1: each unit's single highest frame).
    min_gap
        Least distance in frames between two peaks of one unit (the receptive field over the
        hop, so two segments of a unit never overlap much).
    valid
        ``(first, end)``: only frames ``first .. end - 1`` count (those centred on the
        recording itself, not on the zero padding around it or on tiled audio: see
        :func:`.scan.valid_range`); ``None``: every frame counts.
    samples
        Decoded length of the recording in samples (stored in the result).
    """

    def __init__(self, channels: int, per_recording: int, min_gap: int,
                 valid: tuple[int, int] | None, samples: int) -> None:
        self.n = per_recording
        self.min_gap = min_gap
        self.valid = valid
        self.samples = samples
        self.values = np.full((per_recording, channels), -np.inf, np.float32)
        self.frames = np.full((per_recording, channels), -1, np.int64)
        self.total = np.zeros(channels, np.float64)
        self.total_sq = np.zeros(channels, np.float64)
        self.count = 0

    def add(self, start: int, rows: np.ndarray) -> None:
        """Take frames ``start .. start + len(rows) - 1`` (``rows``: ``(frames, channels)``)."""
        if self.valid is not None:
            first, end = self.valid
            skip = min(max(0, first - start), rows.shape[0])
            rows = rows[skip:max(skip, end - start)]
            start += skip
        if rows.shape[0] == 0:
            return
        rows = np.asarray(rows, np.float32)
        self.total += rows.sum(axis=0, dtype=np.float64)
        self.total_sq += np.square(rows, dtype=np.float64).sum(axis=0)
        self.count += rows.shape[0]
        index = np.arange(start, start + rows.shape[0], dtype=np.int64)[:, None]
        if self.n == 1:  # the common case: a running maximum, earlier frame on ties
            best = np.argmax(rows, axis=0)
            v = rows[best, np.arange(rows.shape[1])]
            better = v > self.values[0]
            self.values[0] = np.where(better, v, self.values[0])
            self.frames[0] = np.where(better, index[best, 0], self.frames[0])
            return
        chunk_v, chunk_f = select_peaks(rows, index, self.n, self.min_gap)
        self.values, self.frames = select_peaks(
            np.concatenate([self.values, chunk_v]), np.concatenate([self.frames, chunk_f]),
            self.n, self.min_gap)

    def result(self) -> Peaks:
        return Peaks(self.values, self.frames, self.total, self.total_sq, self.count,
                     self.samples)
