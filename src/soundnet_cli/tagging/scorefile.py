"""Every step's score of every label, per input (``tag --out DIR --format scores``).

A record (``b.tags.json``) holds what was *kept*: the labels above the threshold, and events. To
choose thresholds or measure a network against annotations (``soundnet evaluate``) every score is
needed, including the low ones; ``b.scores.npz`` holds them, next to the record.

File layout (NumPy ``.npz``, compressed; read with :func:`read_scores` or ``numpy.load``, no
pickles):

===================  =========================================================================
key                  value
===================  =========================================================================
``meta``             JSON string: ``{"version": 1, "path", "duration", "analysed_duration",
                     "heads": [{"name", "probabilities"}], "settings_id"}``
``h{i}_labels``      ``(classes,)`` str: head ``i``'s labels
``h{i}_scores``      ``(steps, classes)`` float32: per-step scores (softmax or decision values)
``h{i}_intervals``   ``(steps, 2)`` float64 seconds: the interval each step stands for on the
                     event timeline (:func:`~soundnet_cli.tagging.events.step_intervals`),
                     clipped to the decoded duration
===================  =========================================================================
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OutputError
from ..files.fsutil import atomic_write_bytes
from .events import step_intervals
from .layout import RECORD_SUFFIX, VIEW_SUFFIXES

if TYPE_CHECKING:
    from .results import TagResult

SCORES_VERSION = 1


@dataclass(frozen=True)
class HeadTimeline:
    """One head's scores over time.

    Attributes
    ----------
    name
        Head name.
    labels
        ``(classes,)`` label names.
    scores
        ``(steps, classes)`` float32.
    intervals
        ``(steps, 2)`` float64 seconds each step stands for (tiling the decoded file).
    probabilities
        True for softmax scores.
    """

    name: str
    labels: tuple[str, ...]
    scores: np.ndarray
    intervals: np.ndarray
    probabilities: bool

    @property
    def clip_scores(self) -> np.ndarray:
        """``(classes,)`` float32: the mean over steps (what ``tag`` ranks clips by)."""
        if not self.scores.shape[0]:
            return np.zeros(len(self.labels), np.float32)
        return self.scores.mean(axis=0, dtype=np.float64).astype(np.float32)


@dataclass(frozen=True)
class ScoreFile:
    """The contents of one ``.scores.npz``: metadata and a :class:`HeadTimeline` per head."""

    meta: dict[str, Any]
    heads: dict[str, HeadTimeline]

    @property
    def duration(self) -> float:
        return float(self.meta["duration"])


def write_scores(path: str | os.PathLike, result: "TagResult",
                 provenance: dict[str, Any] | None = None) -> None:
    """Write ``result``'s per-step scores to ``path`` (``.npz``) atomically."""
    meta = {"version": SCORES_VERSION, "path": str(result.path), "duration": result.duration,
            "analysed_duration": result.analysed_duration,
            "heads": [{"name": h.name, "probabilities": h.probabilities} for h in result.heads],
            "settings_id": (provenance or {}).get("settings_id")}
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for i, head in enumerate(result.heads):
        arrays[f"h{i}_labels"] = np.array(head.labels, dtype=str)
        arrays[f"h{i}_scores"] = np.asarray(head.scores, dtype=np.float32)
        arrays[f"h{i}_intervals"] = step_intervals(head, result.duration,
                                                   result.analysed_duration)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


def read_scores(path: str | os.PathLike) -> ScoreFile:
    """Read a file written by :func:`write_scores`. Raises :class:`OutputError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            heads = {}
            for i, info in enumerate(meta["heads"]):
                heads[info["name"]] = HeadTimeline(
                    info["name"], tuple(str(x) for x in z[f"h{i}_labels"]),
                    np.asarray(z[f"h{i}_scores"], np.float32),
                    np.asarray(z[f"h{i}_intervals"], np.float64), bool(info["probabilities"]))
    except (OSError, ValueError, KeyError) as e:
        raise OutputError(f"{path}: not a readable scores file ({e})") from e
    if meta.get("version") != SCORES_VERSION:
        raise OutputError(f"{path}: scores file version {meta.get('version')!r}, this "
                          f"soundnet-cli reads version {SCORES_VERSION}")
    return ScoreFile(meta, heads)


def scores_path(record: Path) -> Path:
    """The scores file beside a record (``a/b.tags.json`` -> ``a/b.scores.npz``)."""
    return record.with_name(record.name[: -len(RECORD_SUFFIX)] + VIEW_SUFFIXES["scores"])
