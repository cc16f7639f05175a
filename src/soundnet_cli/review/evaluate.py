"""A run's scores against annotations: per-class AP, ROC AUC, P/R/F1, event- and segment-based
scores, and per-class thresholds (``soundnet evaluate OUT --truth ANNOTATIONS``).

Units of evaluation
-------------------
- **steps** (annotations with times): every time step of every annotated input is an item; its
  score for class ``c`` is the step's score (from the input's ``.scores.npz``, so the run must
  have been tagged with ``--format scores``), and it is positive when the interval the step
  stands for (:func:`~soundnet_cli.tagging.events.step_intervals`) overlaps an annotation of
  ``c``. Threshold-free: average precision and ROC AUC (scikit-learn); at the run's threshold
  (``--min-conf``, per class when given): precision, recall, F1.
- **clips**: every annotated input is an item; its score is the clip score (mean over steps),
  positive when the input holds an annotation of ``c`` anywhere.
- **events** (sed_eval's event-based definition): the run's events of ``c`` against the
  annotations of ``c``, matched one to one when the onsets differ by at most the *collar* and
  the offsets by at most ``max(collar, half the annotation's length)``; the collar defaults to
  the head's hop, the run's time resolution.
- **segments** (sed_eval's segment-based definition): each input is cut into ``segment``-second
  segments; a segment is active for ``c`` in the truth (in the run) when an annotation (an event)
  of ``c`` overlaps it.
- **verdicts** (a ``soundnet clips`` table with its ``verdict`` column filled in): each reviewed
  detection is an item with its score; AP, precision at the run's threshold and the threshold
  that reaches a target precision are then among the *reviewed detections* (recall is relative
  to them: the clips never show what the run missed).

Which annotated inputs count: those matched by name (see :func:`.truth.match_inputs`); with
``all_inputs`` every input of the run, unannotated ones being negatives throughout.

Thresholds: per class, the lowest threshold whose precision reaches ``target_precision`` (steps,
clips for clip-level annotations, or verdicts), else the one with the best F1; a class whose
reviewed detections were all wrong gets a threshold just above the best of them. They are written
as ``thresholds.csv``, which ``soundnet tag --min-conf @thresholds.csv`` reads.

Why scikit-learn and not sed_scores_eval / sed_eval / psds_eval: sed_scores_eval and sed_eval
pull in dcase_util, librosa and numba (about 150 MB, LLVM included) for the few formulas used
here, and psds_eval computes PSDS, not these; scikit-learn is already a dependency.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import OutputError, SoundNetError, UsageError
from ..files.fsutil import atomic_write_text
from .rundir import InputRecord, RunDir
from .truth import Annotation, Truth, Verdict, match_inputs

THRESHOLDS_CSV = "thresholds.csv"
REPORT_JSON = "report.json"


@dataclass(frozen=True)
class EvalOptions:
    """``collar`` (seconds; ``None``: the head's hop), ``segment`` (seconds),
    ``target_precision`` (``None``: best F1), ``head`` (``None``: any head holding the label),
    ``all_inputs`` (unannotated inputs count as negatives)."""

    collar: float | None = None
    segment: float = 1.0
    target_precision: float | None = None
    head: str | None = None
    all_inputs: bool = False

    def __post_init__(self) -> None:
        if self.collar is not None and self.collar < 0:
            raise UsageError(f"--collar must be >= 0 seconds, got {self.collar:g}")
        if self.segment <= 0:
            raise UsageError(f"--segment must be > 0 seconds, got {self.segment:g}")
        if self.target_precision is not None and not 0 < self.target_precision <= 1:
            raise UsageError(f"--target-precision must be in (0, 1], got "
                             f"{self.target_precision:g}")


# ---------------------------------------------------------------------------------------------
# Threshold-free and threshold scores of one class


def binary_scores(y: np.ndarray, s: np.ndarray, threshold: float | None,
                  target: float | None) -> dict[str, Any]:
    """Scores of one class over items with truth ``y`` ``(n,)`` bool and scores ``s`` ``(n,)``:
    counts, ``ap`` and ``roc_auc`` (``None`` where undefined), P/R/F1 ``at_threshold``, the
    ``best_f1`` point and the ``target`` point (lowest threshold reaching ``target`` precision,
    ``None`` when no threshold does), plus the curve (``curve``: precision, recall, thresholds)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y = np.asarray(y, bool)
    s = np.asarray(s, np.float64)
    pos = int(y.sum())
    out: dict[str, Any] = {"items": int(y.size), "positives": pos, "ap": None, "roc_auc": None,
                           "at_threshold": None, "best_f1": None, "target": None, "curve": None}
    if threshold is not None:
        out["at_threshold"] = _counts(y, s >= threshold, threshold)
    if pos == 0:
        return out
    out["ap"] = float(average_precision_score(y, s))
    if pos < y.size:
        out["roc_auc"] = float(roc_auc_score(y, s))
    precision, recall, thresholds = precision_recall_curve(y, s)
    out["curve"] = {"precision": precision.tolist(), "recall": recall.tolist(),
                    "thresholds": thresholds.tolist()}
    p, r = precision[:-1], recall[:-1]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    best = int(np.argmax(f1))
    out["best_f1"] = {"threshold": float(thresholds[best]), "precision": float(p[best]),
                      "recall": float(r[best]), "f1": float(f1[best])}
    if target is not None:
        reach = np.flatnonzero(p >= target - 1e-12)
        if reach.size:
            i = int(reach[0])  # thresholds ascend: the first is the lowest, the best recall
            out["target"] = {"threshold": float(thresholds[i]), "precision": float(p[i]),
                             "recall": float(r[i])}
    return out


def _counts(y: np.ndarray, predicted: np.ndarray, threshold: float | None) -> dict[str, Any]:
    tp = int((y & predicted).sum())
    fp = int((~y & predicted).sum())
    fn = int((y & ~predicted).sum())
    return {"threshold": threshold, **prf(tp, fp, fn)}


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    """Counts with precision, recall and F1 (``None`` where a denominator is 0)."""
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f}


# ---------------------------------------------------------------------------------------------
# Event- and segment-based scores


def match_events(truth: Sequence[tuple[float, float]], found: Sequence[tuple[float, float]],
                 collar: float) -> int:
    """How many of ``found`` ``(onset, offset)`` match ``truth`` one to one: onsets within
    ``collar`` s, offsets within ``max(collar, half the truth's length)`` s; closest onsets
    matched first."""
    pairs = []
    for i, (a0, a1) in enumerate(truth):
        off_collar = max(collar, 0.5 * (a1 - a0))
        for j, (b0, b1) in enumerate(found):
            if abs(b0 - a0) <= collar + 1e-9 and abs(b1 - a1) <= off_collar + 1e-9:
                pairs.append((abs(b0 - a0), i, j))
    used_t, used_f = set(), set()
    for _, i, j in sorted(pairs):
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t)


def segment_activity(events: Sequence[tuple[float, float]], duration: float,
                     segment: float) -> np.ndarray:
    """``(ceil(duration / segment),)`` bool: segments that an event overlaps."""
    n = max(1, math.ceil(duration / segment - 1e-9))
    active = np.zeros(n, bool)
    for a, b in events:
        first = int(math.floor(a / segment))
        last = int(math.ceil(b / segment - 1e-9)) - 1
        active[max(first, 0):min(max(last, first), n - 1) + 1] = True
    return active


# ---------------------------------------------------------------------------------------------
# A run against annotations


@dataclass
class _Input:
    record: InputRecord
    annotations: list[Annotation]
    scores: Any = None  # ScoreFile, for step and clip scores


@dataclass
class EvalReport:
    """Everything :func:`evaluate_run` found: ``classes`` (per class, per unit), ``overall``,
    the settings used, what could not be matched, and the chosen ``thresholds``."""

    mode: str
    settings: dict[str, Any]
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    overall: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmatched_files: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        classes = self.classes if curves else {
            c: {u: {k: v for k, v in d.items() if k != "curve"} if isinstance(d, dict) else d
                for u, d in units.items()} for c, units in self.classes.items()}
        return {"mode": self.mode, "settings": self.settings, "overall": self.overall,
                "classes": classes, "thresholds": self.thresholds,
                "unmatched_files": self.unmatched_files, "unknown_labels": self.unknown_labels}


def evaluate_run(run: RunDir, truth: Truth, options: EvalOptions | None = None) -> EvalReport:
    """Evaluate ``run`` against ``truth`` (module docs). Raises :class:`SoundNetError` when no
    annotated input is in the run or the scores files are missing."""
    options = options or EvalOptions()
    if truth.verdicts:
        return _evaluate_verdicts(run, truth.verdicts, options)
    inputs, unmatched = _annotated_inputs(run, truth, options)
    heads = _label_heads(inputs, options.head)
    labels = sorted({a.label for i in inputs for a in i.annotations if a.label})
    unknown = [label for label in labels if label not in heads]
    classes = [label for label in labels if label in heads]
    if not classes:
        raise SoundNetError(f"none of the annotated labels ({', '.join(labels) or 'none'}) is a "
                            f"label of the run's heads")
    timed = not truth.clip_level
    hops = _hops(run)
    collar = options.collar if options.collar is not None else max(
        hops.get(heads[c][0], 0.0) for c in classes)
    report = EvalReport("annotations", {
        "units": ["steps", "clips", "events", "segments"] if timed else ["clips"],
        "collar": collar, "offset_collar": "max(collar, 50% of the annotation's length)",
        "segment": options.segment, "target_precision": options.target_precision,
        "inputs": len(inputs), "all_inputs": options.all_inputs,
        "threshold_choice": "lowest reaching target precision" if options.target_precision
        else "best F1"}, unmatched_files=unmatched, unknown_labels=unknown)
    pooled: dict[str, list[np.ndarray]] = {"y": [], "s": []}
    totals = {u: [0, 0, 0] for u in ("events", "segments")}
    for c in classes:
        head, j = heads[c]
        threshold = _run_threshold(inputs[0].record, head, c)
        units: dict[str, Any] = {"head": head}
        y, s = _clip_items(inputs, c, head, j)
        units["clips"] = binary_scores(y, s, threshold, options.target_precision)
        if timed:
            y, s = _step_items(inputs, c, head, j)
            pooled["y"].append(y)
            pooled["s"].append(s)
            units["steps"] = binary_scores(y, s, threshold, options.target_precision)
            units["events"] = _event_scores(inputs, c, head, collar)
            units["segments"] = _segment_scores(inputs, c, head, options.segment)
            for u in totals:
                for k, key in enumerate(("tp", "fp", "fn")):
                    totals[u][k] += units[u][key]
        report.classes[c] = units
        report.thresholds[c] = _chosen(units["steps" if timed else "clips"], head, threshold)
    report.overall = _overall(report, pooled, totals, timed)
    return report


def _annotated_inputs(run: RunDir, truth: Truth, options: EvalOptions
                      ) -> tuple[list[_Input], list[str]]:
    from ..tagging.scorefile import read_scores

    found, missing = match_inputs(truth.files, [i.path for i in run.inputs])
    by_path = {i.path: i for i in run.inputs}
    chosen: dict[str, _Input] = {}
    for a in truth.annotations:
        if a.file in found:
            item = chosen.setdefault(found[a.file], _Input(by_path[found[a.file]], []))
            item.annotations.append(a)
    if options.all_inputs:
        for i in run.inputs:
            chosen.setdefault(i.path, _Input(i, []))
    if not chosen:
        raise SoundNetError(f"none of the {len(truth.files)} annotated file(s) is an input of "
                            f"the run (e.g. {', '.join(missing[:3])})")
    inputs = [chosen[p] for p in sorted(chosen)]
    for item in inputs:
        path = item.record.view("scores")
        if path is None:
            raise OutputError(f"{item.record.path}: no scores file ({item.record.stem.name}"
                              ".scores.npz); tag again with --format scores added (the other "
                              "files are kept) to evaluate")
        item.scores = read_scores(path)
    return inputs, missing


def _label_heads(inputs: list[_Input], head: str | None) -> dict[str, tuple[str, int]]:
    """label -> (head, column) over the run's heads (the first head holding it, or ``head``)."""
    out: dict[str, tuple[str, int]] = {}
    timelines = inputs[0].scores.heads
    if head is not None and head not in timelines:
        raise UsageError(f"--head {head}: not a head of this run ({', '.join(timelines)})")
    for name, timeline in timelines.items():
        if head is None or name == head:
            for j, label in enumerate(timeline.labels):
                out.setdefault(label, (name, j))
    return out


def _hops(run: RunDir) -> dict[str, float]:
    doc = run.inputs[0].doc
    return {h["name"]: float(h.get("hop") or 0.0) for h in doc.get("heads", [])}


def _run_threshold(record: InputRecord, head: str, label: str) -> float | None:
    settings = record.doc.get("provenance", {}).get("settings", {})
    per_class = settings.get("class_min_conf") or {}
    if label in per_class:
        return float(per_class[label])
    for h in record.doc.get("heads", []):
        if h["name"] == head and h.get("min_conf") is not None:
            return float(h["min_conf"])
    return None


def _clip_items(inputs: list[_Input], label: str, head: str, j: int
                ) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([any(a.label == label for a in i.annotations) for i in inputs], bool)
    s = np.array([float(i.scores.heads[head].clip_scores[j]) for i in inputs])
    return y, s


def _spans(item: _Input, label: str) -> list[tuple[float, float]]:
    return [(float(a.onset), float(a.offset)) for a in item.annotations
            if a.label == label and a.onset is not None and a.offset is not None]


def _step_items(inputs: list[_Input], label: str, head: str, j: int
                ) -> tuple[np.ndarray, np.ndarray]:
    ys, ss = [], []
    for item in inputs:
        timeline = item.scores.heads[head]
        iv = timeline.intervals
        y = np.zeros(iv.shape[0], bool)
        for a, b in _spans(item, label):
            y |= (np.minimum(iv[:, 1], b) - np.maximum(iv[:, 0], a)) > 0
        keep = iv[:, 1] > iv[:, 0]  # steps wholly in a tiled repeat stand for nothing
        ys.append(y[keep])
        ss.append(timeline.scores[keep, j].astype(np.float64))
    return np.concatenate(ys), np.concatenate(ss)


def _run_events(item: _Input, label: str, head: str) -> list[tuple[float, float]]:
    return [(float(ev["start"]), float(ev["end"])) for name, ev in item.record.events()
            if name == head and ev["label"] == label]


def _event_scores(inputs: list[_Input], label: str, head: str, collar: float) -> dict[str, Any]:
    tp = fp = fn = 0
    for item in inputs:
        truth, found = _spans(item, label), _run_events(item, label, head)
        hit = match_events(truth, found, collar)
        tp, fp, fn = tp + hit, fp + len(found) - hit, fn + len(truth) - hit
    return prf(tp, fp, fn)


def _segment_scores(inputs: list[_Input], label: str, head: str,
                    segment: float) -> dict[str, Any]:
    tp = fp = fn = 0
    for item in inputs:
        duration = item.scores.duration
        t = segment_activity(_spans(item, label), duration, segment)
        r = segment_activity(_run_events(item, label, head), duration, segment)
        tp, fp, fn = tp + int((t & r).sum()), fp + int((~t & r).sum()), fn + int((t & ~r).sum())
    return prf(tp, fp, fn)


def _chosen(scores: dict[str, Any], head: str, run_threshold: float | None) -> dict[str, Any]:
    point = scores["target"] or scores["best_f1"]
    how = "target precision" if scores["target"] else "best F1" if point else "none"
    if point is None:
        return {"head": head, "threshold": None, "how": how, "run_threshold": run_threshold}
    return {"head": head, "threshold": point["threshold"], "precision": point["precision"],
            "recall": point["recall"], "how": how, "run_threshold": run_threshold}


def _overall(report: EvalReport, pooled: dict[str, list[np.ndarray]],
             totals: dict[str, list[int]], timed: bool) -> dict[str, Any]:
    unit = "steps" if timed else "clips"
    aps = [u[unit]["ap"] for u in report.classes.values() if u[unit]["ap"] is not None]
    aucs = [u[unit]["roc_auc"] for u in report.classes.values() if u[unit]["roc_auc"] is not None]
    out: dict[str, Any] = {"unit": unit, "classes": len(report.classes),
                           "mean_ap": float(np.mean(aps)) if aps else None,
                           "mean_roc_auc": float(np.mean(aucs)) if aucs else None}
    if timed and pooled["y"]:
        from sklearn.metrics import average_precision_score

        y, s = np.concatenate(pooled["y"]), np.concatenate(pooled["s"])
        out["micro_ap"] = float(average_precision_score(y, s)) if y.any() else None
        for u, (tp, fp, fn) in totals.items():
            out[u] = prf(tp, fp, fn)
    return out


def _evaluate_verdicts(run: RunDir, verdicts: list[Verdict], options: EvalOptions) -> EvalReport:
    report = EvalReport("verdicts", {"units": ["verdicts"],
                                     "target_precision": options.target_precision,
                                     "reviewed": len(verdicts),
                                     "note": "recall is among the reviewed detections only"})
    record = run.inputs[0]
    reported = run.head_labels()
    for label in sorted({v.label for v in verdicts}):
        mine = [v for v in verdicts if v.label == label]
        head = next((h for h, labels in reported.items() if label in labels), "")
        threshold = _run_threshold(record, head, label)
        y = np.array([v.correct for v in mine])
        s = np.array([v.score for v in mine])
        scores = binary_scores(y, s, threshold, options.target_precision)
        report.classes[label] = {"head": head, "verdicts": scores}
        report.thresholds[label] = _chosen(scores, head, threshold)
        if not y.any():  # every reviewed detection was wrong: keep none of them
            report.thresholds[label].update(threshold=float(s.max()) + 1e-6, precision=None,
                                            recall=None, how="every reviewed detection wrong")
    aps = [u["verdicts"]["ap"] for u in report.classes.values() if u["verdicts"]["ap"] is not None]
    report.overall = {"unit": "verdicts", "classes": len(report.classes),
                      "mean_ap": float(np.mean(aps)) if aps else None}
    return report


# ---------------------------------------------------------------------------------------------
# Files


def _cell(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def write_report(report: EvalReport, out_dir: str | os.PathLike, *,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``thresholds.csv`` (what ``tag --min-conf @FILE`` reads: classes
    without a threshold are left out) and, with ``plots`` and matplotlib, ``pr/CLASS.png``."""
    out = Path(out_dir)
    written = {"report": out / REPORT_JSON, "thresholds": out / THRESHOLDS_CSV}
    atomic_write_text(written["report"],
                      json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["class", "threshold", "head", "precision", "recall", "how"])
    for label, t in report.thresholds.items():
        if t["threshold"] is not None:
            writer.writerow([label, f"{t['threshold']:.6g}", t["head"], _cell(t.get("precision")),
                             _cell(t.get("recall")), t["how"]])
    atomic_write_text(written["thresholds"], buf.getvalue())
    if plots:
        from .plots import pr_curves

        written.update(pr_curves(report, out / "pr"))
    return written
