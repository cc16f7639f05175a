"""Detection clips: the chosen events of a run cut out of their recordings, for listening and
labelling (``soundnet clips OUT``).

Every event of the run (a label kept over consecutive steps, see
:mod:`soundnet_cli.tagging.events`) is a *detection* with a score (the event's max step score).
:func:`choose` picks up to ``per_class`` of them per class, by one of three modes:

- ``top``: the highest scores (ties: input path, then onset);
- ``random``: a uniform sample without replacement (seeded);
- ``balanced``: score-stratified: the score range of the class's candidates is cut into
  :data:`BALANCED_BINS` equal-width bins and each bin gets an equal share (seeded random within a
  bin; a bin with too few gives its share to the others), so the verdicts cover low and high
  scores alike, which is what choosing a threshold from them needs.

:func:`cut_clips` writes each one as ``OUT/CLASS/NNNN_STEM_ONSETs.flac`` (onset minus ``margin``
to offset plus ``margin``, clipped to the recording, at the recording's own sample rate) and a
``clips.csv`` with the source, onset, offset, class, score and an empty ``verdict`` column for the
person listening (``soundnet evaluate OUT --truth clips.csv`` reads the verdicts back).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..errors import AudioError, OutputError, SoundNetError, UsageError
from ..files.fsutil import atomic_path, atomic_write_text
from .rundir import RunDir

MODES = ("top", "random", "balanced")
BALANCED_BINS = 4
CLIPS_CSV = "clips.csv"
#: Columns of ``clips.csv``; ``verdict`` is left empty for the reviewer (yes/no, 1/0, ...).
CLIP_COLUMNS = ("clip", "source", "onset", "offset", "clip_start", "clip_end", "head", "class",
                "score", "mean_score", "verdict")
CLIP_FORMATS = ("flac", "wav", "ogg")


@dataclass(frozen=True)
class Detection:
    """One event of a run: ``source`` (input path as given), ``audio`` (found file or ``None``),
    ``head``, ``label``, ``start``/``end`` seconds, ``score`` (max) and ``mean_score``."""

    source: str
    audio: Path | None
    head: str
    label: str
    start: float
    end: float
    score: float
    mean_score: float

    @property
    def key(self) -> tuple[str, float, str]:
        return (self.source, self.start, self.head)


def detections(run: RunDir, *, classes: Iterable[str] | None = None, head: str | None = None,
               min_conf: float = 0.0) -> list[Detection]:
    """Every event of ``run`` of the given classes (all: ``None``) and head, scoring at least
    ``min_conf``, in input order. Raises :class:`SoundNetError` for a class or head the run never
    reported."""
    wanted = None if classes is None else set(classes)
    known = run.head_labels()
    if head is not None and head not in known:
        raise UsageError(f"no head {head!r} in this run; heads: {', '.join(known)}")
    if wanted is not None:
        seen = {label for h, labels in known.items() if head in (None, h) for label in labels}
        unknown = sorted(wanted - seen)
        if unknown:
            raise UsageError(f"class(es) {', '.join(map(repr, unknown))} never reported in "
                                f"this run; reported: {', '.join(sorted(seen)[:20])}")
    out = []
    for item in run.inputs:
        for name, ev in item.events():
            if (head is None or name == head) and (wanted is None or ev["label"] in wanted) \
                    and ev["max_score"] >= min_conf:
                out.append(Detection(item.path, item.audio, name, ev["label"], float(ev["start"]),
                                     float(ev["end"]), float(ev["max_score"]),
                                     float(ev["mean_score"])))
    return out


def choose(found: Sequence[Detection], per_class: int, mode: str = "top",
           seed: int = 0) -> list[Detection]:
    """Up to ``per_class`` detections of each class by ``mode`` (module docs); the result is
    grouped by class (sorted names), best score first within a class. Deterministic for a seed."""
    if mode not in MODES:
        raise SoundNetError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    if per_class < 1:
        raise SoundNetError(f"per-class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Detection]] = {}
    for det in sorted(found, key=lambda d: (-d.score, d.key)):
        by_class.setdefault(det.label, []).append(det)
    chosen = []
    for label in sorted(by_class):
        pool = by_class[label]
        if mode == "top" or len(pool) <= per_class:
            picked = pool[:per_class]
        elif mode == "random":
            picked = [pool[i] for i in rng.choice(len(pool), per_class, replace=False)]
        else:
            picked = _balanced(pool, per_class, rng)
        chosen += sorted(picked, key=lambda d: (-d.score, d.key))
    return chosen


def _balanced(pool: list[Detection], n: int, rng: np.random.Generator) -> list[Detection]:
    """``n`` of ``pool`` spread over :data:`BALANCED_BINS` equal-width score bins."""
    scores = np.array([d.score for d in pool])
    lo, hi = float(scores.min()), float(scores.max())
    edges = np.linspace(lo, hi, BALANCED_BINS + 1)
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, BALANCED_BINS - 1)
    members = [list(rng.permutation(np.flatnonzero(bins == b))) for b in range(BALANCED_BINS)]
    picked: list[int] = []
    while len(picked) < n:  # round-robin over the bins: empty ones give their turn away
        for group in members:
            if group and len(picked) < n:
                picked.append(int(group.pop()))
    return [pool[i] for i in picked]


@dataclass
class ClipReport:
    """What :func:`cut_clips` wrote: the CSV, the rows, and the detections it could not cut."""

    csv: Path
    rows: list[dict[str, Any]]
    failed: list[tuple[str, str]]


def cut_clips(chosen: Sequence[Detection], out_dir: str | os.PathLike, *, margin: float = 1.0,
              fmt: str = "flac", overwrite: bool = False,
              extra: Callable[[Detection], dict[str, Any]] | None = None) -> ClipReport:
    """Cut ``chosen`` into ``out_dir`` (module docs); ``extra(detection)`` gives more columns
    for its row (recording time, site). Refuses to replace an existing ``clips.csv``
    (it may hold verdicts) unless ``overwrite``."""
    if margin < 0:
        raise SoundNetError(f"margin must be >= 0 seconds, got {margin:g}")
    if fmt not in CLIP_FORMATS:
        raise SoundNetError(f"clip format {fmt!r}: choose one of {', '.join(CLIP_FORMATS)}")
    out = Path(out_dir)
    table = out / CLIPS_CSV
    if table.exists() and not overwrite:
        raise OutputError(f"{table} exists (it may hold verdicts); choose another --out or "
                          "pass --overwrite")
    rows, failed = [], []
    counters: dict[str, int] = {}
    for det in chosen:
        n = counters[det.label] = counters.get(det.label, 0) + 1
        name = Path(_safe(det.label)) / f"{n:04d}_{_safe(Path(det.source).stem)}_{det.start:.1f}s.{fmt}"
        try:
            begin, finish = _cut(det, out / name, margin)
        except (AudioError, OSError, RuntimeError) as e:
            failed.append((det.source, f"{det.source}: cannot cut {det.start:.2f}-{det.end:.2f} s: {e}"))
            continue
        rows.append({"clip": name.as_posix(), "source": det.source, "onset": f"{det.start:.4f}",
                     "offset": f"{det.end:.4f}", "clip_start": f"{begin:.4f}",
                     "clip_end": f"{finish:.4f}", "head": det.head, "class": det.label,
                     "score": f"{det.score:.6f}", "mean_score": f"{det.mean_score:.6f}",
                     "verdict": "", **(extra(det) if extra else {})})
    columns = list(CLIP_COLUMNS) + [k for k in (rows[0] if rows else {}) if k not in CLIP_COLUMNS]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(table, buf.getvalue())
    return ClipReport(table, rows, failed)


def _safe(text: str) -> str:
    """A file-name-safe version of a label or stem."""
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "_"


def _cut(det: Detection, target: Path, margin: float) -> tuple[float, float]:
    """Write ``det`` +/- ``margin`` seconds of its recording to ``target``; returns the clip's
    start and end seconds in the recording."""
    import soundfile as sf

    if det.audio is None:
        raise AudioError("the recording is not found")
    begin = max(0.0, det.start - margin)
    try:
        info = sf.info(str(det.audio))
        rate, frames = int(info.samplerate), int(info.frames)
        start = int(round(begin * rate))
        stop = min(frames, int(round((det.end + margin) * rate)))
        data, _ = sf.read(str(det.audio), start=start, stop=stop, dtype="float32", always_2d=True)
    except sf.LibsndfileError:  # a format only FFmpeg reads: decode at SoundNet's rate
        from ..audio import load_audio

        rate = 22_050
        whole = load_audio(det.audio, rate)
        start = int(round(begin * rate))
        stop = min(whole.shape[0], int(round((det.end + margin) * rate)))
        data = whole[start:stop, None]
    if data.shape[0] == 0:
        raise AudioError("the event lies beyond the end of the recording")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        sf.write(str(tmp), data, rate, format=target.suffix[1:].upper())
    return start / rate, (start + data.shape[0]) / rate
