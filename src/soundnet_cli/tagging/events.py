"""Detections: which labels of a :class:`~.results.TagResult` to trust, and events.

A tag result holds every head's scores for every label; this module decides what is reported:

- **Confidence** (``min_conf``): a label is kept, for the clip or for one step, only when its
  score is at least the head's threshold. When nothing is left the output says *no confident
  label* instead of naming the best of bad guesses. Softmax heads (``probabilities``) default to
  :data:`DEFAULT_MIN_CONF` (measured: benchmarks/RESULTS.md, "Abstention"); heads with other scores
  (SVM decision values) default to 0, the SVM's own decision boundary. An explicit ``min_conf``
  applies to every head.
- **Class filter** (``classes``): only these labels are ranked and reported.
- **Too little audio**: a file that decoded to less than ``min_seconds`` (a truncated download, a
  click) gets no confident label at all, whatever the network says: tiling a few milliseconds to
  the network's length makes a periodic signal that the network happily names.
- **Events**: runs of steps in which the same label is kept are merged into one event with an
  onset, an offset and the max and mean of its step scores.

Event times
-----------
A step's receptive field is much longer than its hop (SoundNet-8: 8.6 s seen every 1.49 s), so
steps overlap. For events each step stands for the hop-long interval centred on its receptive
field, ``[c - hop/2, c + hop/2)`` with ``c = offset + i*hop + window/2``; the first step's
interval is extended back to 0 and the last one's to the end, so the steps tile the file. An event
of steps ``i..j`` spans step ``i``'s interval start to step ``j``'s end, clipped to the decoded
duration. The timeline's resolution is therefore the hop, not the receptive field.

Merging (``merge``, the minimum-gap rule): two kept steps of one label belong to the same event
when no more than ``min_gap`` seconds lie between the end of the earlier one's interval and the
start of the later one's. With the default ``min_gap = 0`` only consecutive steps merge; with
``min_gap = hop`` one missed step is bridged (the bridged step's score does not enter the mean).
Without ``merge`` every kept step is its own event.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from ..errors import SoundNetError, UsageError
from .results import Label

if TYPE_CHECKING:
    from .results import HeadScores, TagResult

#: Default threshold of softmax heads. Chosen from the abstention measurement on the embedded
#: network (benchmarks/abstention.py, benchmarks/RESULTS.md "Abstention").
DEFAULT_MIN_CONF = 0.5
#: Files that decode to less audio than this (seconds) get no confident label, only a warning.
MIN_AUDIO_SECONDS = 0.5
#: What every output says when a head keeps no label.
NO_CONFIDENT_LABEL = "no confident label"


@dataclass(frozen=True)
class DetectOptions:
    """What counts as a detection (see the module docs).

    Attributes
    ----------
    min_conf
        Lowest kept score; ``None``: each head's own default (the network's measured one), else
        :data:`DEFAULT_MIN_CONF` for probability heads and 0 for others.
    classes
        Labels to report (``None``: all). Names not in a head are ignored for that head.
    merge
        Merge runs of kept steps of one label into events.
    min_gap
        Seconds between two kept steps of one label that still merge (0: only neighbours).
    min_seconds
        Files shorter than this (decoded seconds) keep no label.
    class_min_conf
        Per-class thresholds ``((label, threshold), ...)`` (``--min-conf @thresholds.csv``,
        :func:`read_thresholds`); labels not listed use the head's threshold.
    """

    min_conf: float | None = None
    classes: frozenset[str] | None = None
    merge: bool = True
    min_gap: float = 0.0
    min_seconds: float = MIN_AUDIO_SECONDS
    class_min_conf: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        # A usage error (exit 2): a NaN threshold would keep nothing and an infinite one make
        # JSON output impossible.
        if self.min_conf is not None and not math.isfinite(self.min_conf):
            raise UsageError(f"--min-conf must be a finite number, got {self.min_conf}")
        if not math.isfinite(self.min_gap) or self.min_gap < 0:
            raise UsageError(f"--min-gap must be a finite number of seconds >= 0, "
                             f"got {self.min_gap}")

    def threshold(self, head: "HeadScores") -> float:
        """The lowest score kept for ``head``: ``min_conf`` when given, else the head's own
        measured default (its network's), else :data:`DEFAULT_MIN_CONF` for probabilities and 0
        for other scores."""
        if self.min_conf is not None:
            return float(self.min_conf)
        if head.default_min_conf is not None:
            return float(head.default_min_conf)
        return DEFAULT_MIN_CONF if head.probabilities else 0.0

    def thresholds(self, head: "HeadScores") -> np.ndarray:
        """``(classes,)`` float64: the lowest score kept for each of ``head``'s labels."""
        out = np.full(len(head.labels), self.threshold(head), np.float64)
        if self.class_min_conf:
            per_class = dict(self.class_min_conf)
            for j, name in enumerate(head.labels):
                if name in per_class:
                    out[j] = per_class[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (provenance, run.json)."""
        doc: dict[str, Any] = {
            "min_conf": self.min_conf, "default_min_conf": DEFAULT_MIN_CONF,
            "classes": None if self.classes is None else sorted(self.classes),
            "merge": self.merge, "min_gap": self.min_gap, "min_seconds": self.min_seconds}
        if self.class_min_conf:  # only when set: runs without it keep their settings_id
            doc["class_min_conf"] = dict(sorted(self.class_min_conf))
        return doc


@dataclass(frozen=True)
class Event:
    """One detection: ``label`` kept in steps ``first..last`` of ``head``.

    ``start``/``end`` are seconds in the decoded file (see the module docs); ``max_score`` and
    ``mean_score`` summarise the kept steps' scores; ``steps`` counts them.
    """

    head: str
    label: str
    index: int
    start: float
    end: float
    max_score: float
    mean_score: float
    first: int
    last: int
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "start": round(self.start, 4),
                "end": round(self.end, 4), "max_score": round(self.max_score, 6),
                "mean_score": round(self.mean_score, 6), "first_step": self.first,
                "last_step": self.last, "steps": self.steps}


@dataclass
class HeadDetections:
    """What one head reports: clip labels, per-step labels and events, all already filtered."""

    name: str
    threshold: float
    clip: list["Label"]
    steps: list[list["Label"]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def confident(self) -> bool:
        """False when the head keeps no clip label (the output says :data:`NO_CONFIDENT_LABEL`)."""
        return bool(self.clip)


def too_short(result: "TagResult", options: DetectOptions) -> bool:
    """Whether ``result`` decoded to too little audio to be given any label."""
    return result.ok and result.duration < options.min_seconds


def kept_labels(head: "HeadScores", options: DetectOptions, top_k: int,
                step: int | None = None) -> list["Label"]:
    """The best ``top_k`` labels of the clip (``step=None``) or one step that pass the class
    filter and the head's threshold, best first."""
    row = head.clip_scores if step is None else head.scores[step]
    allowed = _allowed(head, options)
    order = [j for j in np.argsort(-row, kind="stable") if allowed is None or j in allowed]
    threshold = options.thresholds(head)
    return [Label(head.labels[j], int(j), float(row[j])) for j in order[: max(0, top_k)]
            if float(row[j]) >= threshold[j]]  # float64: a huge threshold does not overflow


def _allowed(head: "HeadScores", options: DetectOptions) -> set[int] | None:
    if options.classes is None:
        return None
    return {j for j, name in enumerate(head.labels) if name in options.classes}


def step_intervals(head: "HeadScores", duration: float, analysed: float) -> np.ndarray:
    """``(steps, 2)`` seconds each step stands for on the event timeline (module docs), clipped
    to ``[0, duration]``; ``analysed`` is the length fed to the network (tiling)."""
    return np.clip(head.axis.owned(head.steps, analysed), 0.0, duration)


def find_events(head: "HeadScores", steps: Sequence[Sequence["Label"]], duration: float,
                analysed: float, options: DetectOptions) -> list[Event]:
    """Events of one head from its per-step kept labels, sorted by onset, then label order."""
    bounds = step_intervals(head, duration, analysed)
    runs: dict[int, list[list[int]]] = {}
    for i, labels in enumerate(steps):
        if bounds[i, 1] <= bounds[i, 0]:  # a step wholly in the tiled repeat, past the file's end
            continue
        for lab in labels:
            spans = runs.setdefault(lab.index, [])
            if (options.merge and spans
                    and bounds[i, 0] - bounds[spans[-1][-1], 1] <= options.min_gap + 1e-9):
                spans[-1].append(i)
            else:
                spans.append([i])
    events = []
    for j, spans in runs.items():
        for span in spans:
            scores = head.scores[span, j].astype(np.float64)
            events.append(Event(head.name, head.labels[j], j, float(bounds[span[0], 0]),
                                float(bounds[span[-1], 1]), float(scores.max()),
                                float(scores.mean()), span[0], span[-1], len(span)))
    return sorted(events, key=lambda e: (e.start, e.index))


def detect(result: "TagResult", options: DetectOptions, top_k: int) -> list[HeadDetections]:
    """Every head's kept clip labels, kept step labels and events (empty for failed results).

    Step labels are ranked like clip labels (top ``top_k``); an event needs its label kept in
    at least one step.
    """
    if not result.ok:
        return []
    out = []
    for head in result.heads:
        threshold = options.threshold(head)
        if too_short(result, options):
            out.append(HeadDetections(head.name, threshold, [], [[] for _ in range(head.steps)]))
            continue
        steps = [kept_labels(head, options, top_k, i) for i in range(head.steps)]
        events = find_events(head, steps, result.duration, result.analysed_duration, options)
        out.append(HeadDetections(head.name, threshold, kept_labels(head, options, top_k),
                                  steps, events))
    return out


def parse_classes(spec: str | None, known: Iterable[str]) -> frozenset[str] | None:
    """``--classes`` as a set: comma-separated names, or ``@FILE`` (one name per line or commas;
    ``#`` starts a comment). Raises :class:`SoundNetError` naming unknown labels."""
    if spec is None or not spec.strip():
        return None
    text = spec.strip()
    if text.startswith("@"):
        path = Path(os.path.expanduser(text[1:]))
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SoundNetError(f"--classes {spec}: cannot read {path}: {e.strerror or e}") from e
    names = [n.strip() for line in text.splitlines() for n in line.split("#", 1)[0].split(",")]
    wanted = frozenset(n for n in names if n)
    if not wanted:
        raise SoundNetError(f"--classes {spec}: no class names given")
    vocabulary = set(known)
    unknown = sorted(wanted - vocabulary)
    if unknown:
        raise SoundNetError(f"--classes: unknown label(s) {', '.join(map(repr, unknown))}; the "
                            f"network's labels include {', '.join(sorted(vocabulary)[:12])}, ...")
    return wanted


def parse_min_conf(spec: str | None) -> tuple[float | None, tuple[tuple[str, float], ...] | None]:
    """``--min-conf`` as ``(threshold, per-class thresholds)``: a number, or ``@FILE`` (a CSV
    with ``class`` and ``threshold`` columns, as ``soundnet evaluate`` writes; a row of class
    ``*`` sets the threshold of every other label). Raises :class:`SoundNetError`."""
    if spec is None:
        return None, None
    text = spec.strip()
    if not text.startswith("@"):
        try:
            return float(text), None
        except ValueError:
            raise SoundNetError(f"--min-conf {spec}: not a number or @FILE") from None
    table = read_thresholds(Path(os.path.expanduser(text[1:])))
    default = table.pop("*", None)
    return default, tuple(sorted(table.items()))


def read_thresholds(path: Path) -> dict[str, float]:
    """``class -> threshold`` from a CSV with a header naming ``class`` (or ``label``) and
    ``threshold`` columns; other columns are ignored."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SoundNetError(f"--min-conf @{path}: cannot read it: {e}") from e
    out: dict[str, float] = {}
    for n, row in enumerate(rows, 2):
        name = (row.get("class") or row.get("label") or "").strip()
        value = (row.get("threshold") or "").strip()
        if not name or not value:
            raise SoundNetError(f"{path}:{n}: needs a class and a threshold (columns class, "
                                "threshold)")
        try:
            out[name] = float(value)
        except ValueError:
            raise SoundNetError(f"{path}:{n}: threshold {value!r} is not a number") from None
    if not out:
        raise SoundNetError(f"{path}: no thresholds (expected columns class, threshold)")
    return out
