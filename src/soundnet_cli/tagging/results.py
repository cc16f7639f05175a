"""Tag results as records: a ranked :class:`Label`, one head's per-step :class:`HeadScores` and
one file's :class:`TagResult`.

Scorers (:mod:`.scoring`) make them, :mod:`.events` decides what of them is reported and
:mod:`.schema` writes them as JSON and CSV; this module imports none of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from ..model import TimeAxis


class Label(NamedTuple):
    """One ranked label: its name, its index in the head's label list and its score."""

    label: str
    index: int  # type: ignore[assignment]  # the field shadows tuple.index, by design
    score: float


@dataclass
class HeadScores:
    """Per-step scores of one head over its own labels.

    Attributes
    ----------
    name
        Head name (``objects``, ``scenes``, ``classes``, or a plug-in scorer's name).
    labels
        Label names; column ``j`` of ``scores`` belongs to ``labels[j]``.
    scores
        ``(steps, classes)`` float32. Rows are probability distributions when ``probabilities``.
    probabilities
        True for softmax outputs; False for unnormalised scores such as SVM decision values.
    hop, window, offset
        Seconds between step starts, seconds one step sees, and the (possibly negative) start of
        step 0 relative to the start of the analysed signal.
    clip
        Clip-level scores when the scorer computes its own (else the mean of the steps).
    default_min_conf
        The head's own default threshold (its network's measured one), or ``None``.
    """

    name: str
    labels: tuple[str, ...]
    scores: np.ndarray
    probabilities: bool
    hop: float
    window: float
    offset: float
    clip: np.ndarray | None = None
    default_min_conf: float | None = None

    @property
    def steps(self) -> int:
        return int(self.scores.shape[0])

    @property
    def clip_scores(self) -> np.ndarray:
        """``(classes,)`` float32: ``clip`` when the scorer set one (e.g. an SVM on whole-clip
        statistics), else the mean of the per-step scores."""
        if self.clip is not None:
            return np.asarray(self.clip, dtype=np.float32)
        return self.scores.mean(axis=0, dtype=np.float64).astype(np.float32)

    def top_k(self, k: int, step: int | None = None) -> list[Label]:
        """The ``k`` best labels of the clip (``step=None``) or of one step, best first.

        Ties keep label order, so results are deterministic.
        """
        row = self.clip_scores if step is None else self.scores[step]
        order = np.argsort(-row, kind="stable")[: max(0, min(k, row.shape[0]))]
        return [Label(self.labels[j], int(j), float(row[j])) for j in order]

    def segments(self, length: float) -> np.ndarray:
        """``(steps, 2)`` float64 start and end seconds of each step, clipped to ``[0, length]``."""
        return np.clip(self.axis.spans(self.steps), 0.0, length)

    @property
    def axis(self) -> "TimeAxis":
        """The steps' time axis (:class:`~soundnet_cli.model.TimeAxis`)."""
        from ..model import TimeAxis

        return TimeAxis(self.hop, self.window, self.offset)


@dataclass
class TagResult:
    """Scores of one file, or the reason it failed.

    ``duration`` is the decoded length in seconds; ``analysed_duration`` the length fed to the
    network (larger than ``duration`` when the clip was tiled); ``warnings`` holds messages such
    as silence or tiling, each naming the file.
    """

    path: Path
    heads: list[HeadScores] = field(default_factory=list)
    duration: float = 0.0
    analysed_duration: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tiled(self) -> bool:
        return self.analysed_duration > self.duration

    def head(self, name: str) -> HeadScores:
        """The scores of the head called ``name``; a :class:`KeyError` naming the heads there
        are otherwise (a failed result has none)."""
        for h in self.heads:
            if h.name == name:
                return h
        there = ", ".join(repr(h.name) for h in self.heads)
        raise KeyError(f"no head {name!r} in this result" + (f"; its heads: {there}" if there
                       else f" ({self.path} failed: {self.error})"))
