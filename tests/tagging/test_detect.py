"""Detections: thresholds, class filter, too little audio, events (soundnet_cli.tagging.events)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundnet_cli.tagging.events import (
    DEFAULT_MIN_CONF,
    DetectOptions,
    detect,
    find_events,
    kept_labels,
    parse_classes,
    step_intervals,
)
from soundnet_cli.errors import SoundNetError
from soundnet_cli.tagging import HeadScores, TagResult, result_csv_rows, result_to_json


def _head(scores, probabilities=True, name="h") -> HeadScores:
    # hop 1 s, window 4 s, offset -1.5 s: step i is centred on i + 0.5 and stands for [i, i + 1)
    return HeadScores(name, ("a", "b", "c"), np.asarray(scores, np.float32), probabilities,
                      1.0, 4.0, -1.5)


def _result(head: HeadScores, duration: float | None = None) -> TagResult:
    d = float(head.steps) if duration is None else duration
    return TagResult(Path("x.wav"), [head], d, max(d, float(head.steps)))


STEPS = [[0.9, 0.05, 0.05],   # a
         [0.8, 0.1, 0.1],     # a
         [0.2, 0.7, 0.1],     # b
         [0.3, 0.3, 0.4],     # nothing >= 0.5
         [0.6, 0.2, 0.2],     # a
         [0.55, 0.25, 0.2]]   # a


def test_thresholds_default_per_kind_and_explicit_for_all():
    opts = DetectOptions()
    assert opts.threshold(_head(STEPS)) == DEFAULT_MIN_CONF
    assert opts.threshold(_head(STEPS, probabilities=False)) == 0.0  # SVM decision boundary
    assert DetectOptions(min_conf=0.25).threshold(_head(STEPS, probabilities=False)) == 0.25


def test_kept_labels_drop_scores_below_min_conf():
    head = _head(STEPS)
    opts = DetectOptions(min_conf=0.5)
    assert [lab.label for lab in kept_labels(head, opts, 5, step=0)] == ["a"]
    assert kept_labels(head, opts, 5, step=3) == []
    assert [lab.label for lab in kept_labels(head, DetectOptions(min_conf=0.0), 2, 3)] == ["c", "a"]
    # clip means: a 0.558, b 0.267, c 0.175
    assert [lab.label for lab in kept_labels(head, opts, 5)] == ["a"]


def test_class_filter_ranks_only_the_named_labels():
    head = _head(STEPS)
    opts = DetectOptions(min_conf=0.0, classes=frozenset({"b", "c"}))
    assert [lab.label for lab in kept_labels(head, opts, 5)] == ["b", "c"]
    found = detect(_result(head), opts, 1)[0]
    assert {e.label for e in found.events} <= {"b", "c"}


def test_events_merge_consecutive_steps_with_max_and_mean():
    head = _head(STEPS)
    (found,) = detect(_result(head), DetectOptions(min_conf=0.5), 3)
    spans = [(e.label, e.start, e.end, e.first, e.last, e.steps) for e in found.events]
    assert spans == [("a", 0.0, 2.0, 0, 1, 2), ("b", 2.0, 3.0, 2, 2, 1),
                     ("a", 4.0, 6.0, 4, 5, 2)]
    first = found.events[0]
    assert first.max_score == pytest.approx(0.9) and first.mean_score == pytest.approx(0.85)


def test_min_gap_bridges_missed_steps_and_no_merge_splits_them():
    head = _head(STEPS)
    bridged = detect(_result(head), DetectOptions(min_conf=0.5, min_gap=2.0), 1)[0].events
    a = [e for e in bridged if e.label == "a"]
    assert [(e.start, e.end, e.steps) for e in a] == [(0.0, 6.0, 4)]  # the gap of 2 s bridged
    assert a[0].mean_score == pytest.approx((0.9 + 0.8 + 0.6 + 0.55) / 4)  # kept steps only
    one_gap = detect(_result(head), DetectOptions(min_conf=0.5, min_gap=1.0), 1)[0].events
    assert len([e for e in one_gap if e.label == "a"]) == 2  # 2 s apart > 1 s
    split = detect(_result(head), DetectOptions(min_conf=0.5, merge=False), 1)[0].events
    assert [(e.label, e.steps) for e in split] == [("a", 1), ("a", 1), ("b", 1), ("a", 1),
                                                   ("a", 1)]


def test_step_intervals_tile_the_file_and_clip_to_its_duration():
    head = _head(STEPS)
    bounds = step_intervals(head, 6.0, 6.0)
    assert bounds[0, 0] == 0.0 and bounds[-1, 1] == 6.0
    np.testing.assert_allclose(bounds[1:, 0], bounds[:-1, 1])  # contiguous
    tiled = step_intervals(head, 2.5, 6.0)  # a 2.5 s clip tiled to 6 s
    assert tiled.max() == 2.5
    events = find_events(head, [kept_labels(head, DetectOptions(), 1, i) for i in range(6)],
                         2.5, 6.0, DetectOptions())
    assert all(e.end <= 2.5 and e.end > e.start for e in events)


def test_too_little_audio_gets_no_confident_label():
    head = _head([[1.0, 0.0, 0.0]])
    result = _result(head, duration=0.06)
    (found,) = detect(result, DetectOptions(min_conf=0.0), 5)
    assert found.clip == [] and found.events == [] and not found.confident
    assert detect(result, DetectOptions(min_conf=0.0, min_seconds=0.0), 5)[0].confident


def test_no_confident_label_in_json_and_csv():
    head = _head(STEPS)
    opts = DetectOptions(min_conf=0.95)
    doc = result_to_json(_result(head), 3, segments=True, detect=opts)
    assert doc["no_confident_label"] is True
    assert doc["heads"][0]["no_confident_label"] and doc["heads"][0]["top"] == []
    assert doc["heads"][0]["min_conf"] == 0.95 and doc["heads"][0]["events"] == []
    assert all(seg["top"] == [] for seg in doc["heads"][0]["segments"])
    rows = list(result_csv_rows(_result(head), 3, segments=True, detect=opts))
    assert len(rows) == 1 + head.steps  # one clip row and one per step, each saying so
    assert {r["note"] for r in rows} == {"no confident label"} and {r["label"] for r in rows} == {""}
    kept = result_to_json(_result(head), 3, detect=DetectOptions(min_conf=0.5))
    assert kept["no_confident_label"] is False and kept["heads"][0]["top"][0]["label"] == "a"
    assert [e["label"] for e in kept["heads"][0]["events"]] == ["a", "b", "a"]


def test_event_rows_in_csv():
    rows = list(result_csv_rows(_result(_head(STEPS)), 1, detect=DetectOptions(min_conf=0.5)))
    events = [r for r in rows if r["scope"] == "event"]
    assert [(r["label"], r["start"], r["end"]) for r in events] == [
        ("a", 0.0, 2.0), ("b", 2.0, 3.0), ("a", 4.0, 6.0)]
    assert events[0]["score"] == pytest.approx(0.9) and events[0]["mean_score"] == pytest.approx(0.85)


def test_parse_classes(tmp_path):
    known = ["dog", "rain", "clock tick"]
    assert parse_classes(None, known) is None
    assert parse_classes("dog, rain", known) == {"dog", "rain"}
    f = tmp_path / "classes.txt"
    f.write_text("# wanted\ndog\nclock tick  # the readable spelling\n\n")
    assert parse_classes(f"@{f}", known) == {"dog", "clock tick"}
    with pytest.raises(SoundNetError, match="unknown label.*'cat'"):
        parse_classes("dog,cat", known)
    with pytest.raises(SoundNetError, match="cannot read"):
        parse_classes(f"@{tmp_path / 'missing.txt'}", known)
    with pytest.raises(SoundNetError):
        DetectOptions(min_gap=-1.0)
