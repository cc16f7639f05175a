"""Each unit's top segments over a collection, with memory bounded by units x top.

:class:`UnitTops` takes the recordings' peaks one at a time (:class:`~.peaks.Peaks`) and keeps,
per unit, the ``top`` highest in a ``(top, units)`` table (a vectorised bounded heap: the new
candidates are merged and the table cut back to ``top`` rows). Ties keep the earlier recording,
so results depend only on the input order. :func:`parse_units` reads ``--units``;
:meth:`UnitTops.segments` turns the kept peaks into :class:`Segment` s (seconds in the file).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SoundNetError
from .peaks import Peaks

if TYPE_CHECKING:
    from ..model import SoundNet


@dataclass(frozen=True)
class Segment:
    """One of a unit's top segments: ``file`` from ``start`` to ``end`` seconds (clipped to the
    recording), where the unit reached ``activation`` at the frame centred at ``peak`` seconds;
    ``rank`` 1 is the unit's highest."""

    unit: int
    rank: int
    file: str
    start: float
    end: float
    activation: float
    peak: float

    def row(self) -> dict:
        return asdict(self)


class UnitTops:
    """The ``top`` highest peaks of every unit over many recordings.

    Parameters
    ----------
    channels
        Units of the layer.
    top
        Segments kept per unit.
    """

    def __init__(self, channels: int, top: int) -> None:
        self.top = top
        self.values = np.full((top, channels), -np.inf, np.float32)
        self.files = np.full((top, channels), -1, np.int64)
        self.keys = np.full((top, channels), np.iinfo(np.int64).max, np.int64)
        self.frames = np.full((top, channels), -1, np.int64)
        self.paths: list[str] = []
        self.samples: list[int] = []
        self.total = np.zeros(channels, np.float64)
        self.total_sq = np.zeros(channels, np.float64)
        self.count = 0

    def add(self, path: str, peaks: Peaks, key: int | None = None) -> None:
        """Merge one recording's peaks (``(per_recording, channels)``) into the table.

        ``key`` orders equal activations (default: the order of the calls), so a run that
        reuses some recordings' scans and computes others ranks ties as one that computed all.
        """
        index = len(self.paths)
        key = index if key is None else key
        self.paths.append(path)
        self.samples.append(peaks.samples)
        self.total += peaks.total
        self.total_sq += peaks.total_sq
        self.count += peaks.count
        values = np.concatenate([self.values, peaks.values])
        files = np.concatenate([self.files, np.where(peaks.frames >= 0, index, -1)])
        frames = np.concatenate([self.frames, peaks.frames])
        keys = np.concatenate([self.keys, np.full(peaks.frames.shape, key, np.int64)])
        order = np.lexsort((frames, keys, -values), axis=0)[:self.top]
        self.values = np.take_along_axis(values, order, axis=0)
        self.files = np.take_along_axis(files, order, axis=0)
        self.frames = np.take_along_axis(frames, order, axis=0)
        self.keys = np.take_along_axis(keys, order, axis=0)

    def variance(self) -> np.ndarray:
        """Each unit's activation variance over every frame seen, ``(channels,)`` float64."""
        n = max(self.count, 1)
        mean = self.total / n
        return np.maximum(self.total_sq / n - mean ** 2, 0.0)

    def segments(self, model: SoundNet, layer: str, units: list[int],
                 seconds: float | None = None) -> dict[int, list[Segment]]:
        """``{unit: its segments, highest first}`` for ``units``.

        A segment is the peak frame's receptive field, or with ``seconds`` a window of that
        length centred on it (moved to stay inside the recording where it can); both are clipped
        to the recording.
        """
        axis = model.time_axis(layer)
        rate = model.config.sample_rate
        out: dict[int, list[Segment]] = {}
        for u in units:
            segs = []
            for rank in range(self.top):
                f = int(self.files[rank, u])
                if f < 0:
                    break
                frame = int(self.frames[rank, u])
                duration = self.samples[f] / rate
                centre = float(axis.centres(1, frame)[0])
                width = axis.window if seconds is None else seconds
                start, end = _window(centre, width, duration, shift=seconds is not None)
                segs.append(Segment(u, rank + 1, self.paths[f], round(start, 4), round(end, 4),
                                    float(self.values[rank, u]),
                                    round(min(max(centre, 0.0), duration), 4)))
            out[u] = segs
        return out


def _window(centre: float, width: float, duration: float, shift: bool) -> tuple[float, float]:
    start, end = centre - width / 2, centre + width / 2
    if shift:  # keep the asked length where the recording allows
        if start < 0:
            start, end = 0.0, end - start
        if end > duration:
            start, end = start - (end - duration), duration
    return max(start, 0.0), min(end, duration)


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_units(spec: str, channels: int, variance: np.ndarray | None = None) -> list[int]:
    """Units named by ``spec``: ``all``, a list of numbers and ranges (``0-9,17,20-31``,
    inclusive) or ``top-variance:N`` (also ``top-variance N`` or ``=N``: the N units whose
    activations vary most over the collection; needs ``variance``). Raises :class:`SoundNetError` naming what is wrong."""
    text = spec.strip().lower()
    if text == "all":
        return list(range(channels))
    m = re.fullmatch(r"top-variance[\s=:-]*(\d+)", text)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise SoundNetError(f"--units {spec!r}: N must be at least 1")
        if variance is None:
            raise SoundNetError("top-variance needs the collection's statistics")
        order = np.argsort(-variance, kind="stable")[:min(n, channels)]
        return sorted(int(u) for u in order)
    units: list[int] = []
    for part in text.split(","):
        r = _RANGE.match(part)
        if r is None:
            hint = (" (one word on the command line: --units top-variance:64)"
                    if text.startswith("top-variance") else "")
            raise SoundNetError(f"--units {spec!r}: expected all, top-variance:N, or numbers "
                                f"and ranges such as 0-9,17{hint}")
        lo = int(r.group(1))
        hi = int(r.group(2)) if r.group(2) is not None else lo
        if hi < lo or hi >= channels:
            raise SoundNetError(f"--units {spec!r}: {part.strip()} is outside 0-{channels - 1} "
                                "(the layer's units)")
        units.extend(u for u in range(lo, hi + 1) if u not in units)
    return sorted(units)
