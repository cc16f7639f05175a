"""The result of ``soundnet units``: per unit its segments, hint and media, and the tables.

:func:`describe_units` reads every distinct segment once (:mod:`.describe`), scores the heads on
it, and optionally draws its thumbnail and saves its audio (``OUT/audio/sNNNNN.flac``, 22,050 Hz
mono 16-bit FLAC, what the network heard). :func:`write_tables` writes ``units.json`` (everything)
and ``units.csv`` (one row per segment: :data:`CSV_COLUMNS`), atomically.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import SoundNetError
from ..files.fsutil import atomic_path, atomic_write_text
from .describe import Hint, head_probabilities, hint_window, read_window, thumbnail_png, unit_hint
from .top import Segment

if TYPE_CHECKING:
    from ..model import SoundNet

CSV_COLUMNS = ("unit", "rank", "file", "start", "end", "activation")
AUDIO_DIR = "audio"


@dataclass
class UnitEntry:
    """One unit: its segments (highest first), activation variance over the collection, the
    heads' hint (``None`` without heads or hints), and per segment rank its thumbnail (a
    ``data:image/png`` URI) and audio file (relative to the output folder)."""

    unit: int
    variance: float
    segments: list[Segment]
    hint: Hint | None = None
    thumbs: dict[int, str] = field(default_factory=dict)
    audio: dict[int, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether the unit ever exceeded zero (a unit that never did, after its ReLU, has
        arbitrary "top" segments: no hint is given for it)."""
        return bool(self.segments) and self.segments[0].activation > 0

    @property
    def consistency(self) -> float:
        return self.hint.consistency if self.hint is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"unit": self.unit, "active": self.active,
                               "variance": round(self.variance, 6),
                               "segments": [s.row() for s in self.segments]}
        for s in doc["segments"]:
            s.pop("unit")
            if s["rank"] in self.audio:
                s["audio"] = self.audio[s["rank"]]
        if self.hint is not None:
            doc["hint"] = {"labels": {h: [{"label": lab, "probability": p} for lab, p in v]
                                      for h, v in self.hint.labels.items()},
                           "consistency": round(self.hint.consistency, 4),
                           "head": self.hint.head, "label": self.hint.label,
                           "agree": self.hint.agree}
        return doc


def describe_units(model: SoundNet, entries: list[UnitEntry], durations: dict[str, float], *,
                   hints: bool = True, media_dir: Path | None = None,
                   on_segment: Callable[[], None] | None = None) -> list[str]:
    """Fill the hints (and, with ``media_dir``, thumbnails and audio files) of ``entries`` that
    ever exceeded zero;
    returns the problems met (a segment whose recording cannot be read anymore is left without
    hint or media, and named).

    Each distinct ``(file, start, end)`` is read and scored once, whatever the number of units
    sharing it. ``durations`` gives each file's decoded length in seconds.
    """
    cache: dict[tuple[str, float, float], tuple[dict[str, np.ndarray], str, str]] = {}
    heard: dict[tuple[str, float, float], dict[str, np.ndarray]] = {}  # by hint window
    problems: list[str] = []
    for entry in entries:
        if not entry.active:  # arbitrary segments: nothing to hear or to name
            continue
        probs = []
        for seg in entry.segments:
            key = (seg.file, seg.start, seg.end)
            if key not in cache:
                try:
                    cache[key] = _describe(model, seg, durations[seg.file], hints, media_dir,
                                           len(cache), heard)
                except (SoundNetError, OSError) as e:
                    problems.append(f"{seg.file}: segment {seg.start:.2f}-{seg.end:.2f} s: {e}")
                    cache[key] = ({}, "", "")
                if on_segment is not None:
                    on_segment()
            p, thumb, audio = cache[key]
            if p:
                probs.append(p)
            if thumb:
                entry.thumbs[seg.rank] = thumb
            if audio:
                entry.audio[seg.rank] = audio
        if hints and probs and model.config.heads and entry.active:
            entry.hint = unit_hint(model, probs)
    return problems


def _describe(model: SoundNet, seg: Segment, duration: float, hints: bool,
              media_dir: Path | None, number: int,
              heard: dict[tuple[str, float, float], dict[str, np.ndarray]]
              ) -> tuple[dict[str, np.ndarray], str, str]:
    """Head probabilities, thumbnail and audio file of one segment; ``heard`` caches the
    heads' output per hint window (a short recording's segments all share one: the whole
    recording)."""
    rate = model.config.sample_rate
    lo, hi = hint_window(model, seg, duration) if hints else (seg.start, seg.end)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # silence/loudness were reported by the scan
        window = read_window(seg.file, lo, hi, rate)
    a = int(round((seg.start - lo) * rate))
    b = int(round((seg.end - lo) * rate))
    piece = window[a:max(b, a + 1)]
    probs: dict[str, np.ndarray] = {}
    if hints:
        where = (seg.file, round(lo, 4), round(hi, 4))
        if where not in heard:
            heard[where] = head_probabilities(model, window)
        probs = heard[where]
    if media_dir is None or piece.size == 0:
        return probs, "", ""
    import soundfile as sf

    thumb = "data:image/png;base64," + base64.b64encode(thumbnail_png(piece, rate)).decode()
    name = f"{AUDIO_DIR}/s{number:05d}.flac"
    target = media_dir / name
    with atomic_path(target) as tmp:
        sf.write(str(tmp), np.clip(piece, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
    return probs, thumb, name


def sort_entries(entries: list[UnitEntry]) -> list[UnitEntry]:
    """Most consistent hint first; then higher top activation; then unit number (units that
    never fired come last, having no hint)."""
    def key(e: UnitEntry) -> tuple[float, float, int]:
        top = e.segments[0].activation if e.segments else float("-inf")
        return (-e.consistency, -top, e.unit)
    return sorted(entries, key=key)


def write_tables(out_dir: Path, entries: list[UnitEntry], settings: dict[str, Any]
                 ) -> tuple[Path, Path]:
    """Write ``units.json`` (``settings`` and every entry) and ``units.csv`` (one row per
    segment, by unit then rank) under ``out_dir``, atomically; returns their paths."""
    json_path, csv_path = out_dir / "units.json", out_dir / "units.csv"
    doc = {**settings, "units": [e.to_json() for e in entries]}
    atomic_write_text(json_path, json.dumps(doc, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in sorted(entries, key=lambda e: e.unit):
        for s in e.segments:
            writer.writerow([s.unit, s.rank, s.file, f"{s.start:.4f}", f"{s.end:.4f}",
                             f"{s.activation:.6g}"])
    atomic_write_text(csv_path, buf.getvalue())
    return json_path, csv_path
