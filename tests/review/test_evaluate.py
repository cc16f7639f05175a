"""``soundnet evaluate``: annotation readers, scores known by construction, thresholds files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.reviewrun import make_run, scores_with
from soundnet_cli.errors import SoundNetError
from soundnet_cli.review import open_run, read_truth
from soundnet_cli.review.evaluate import (
    EvalOptions,
    evaluate_run,
    match_events,
    segment_activity,
    write_report,
)
from soundnet_cli.tagging.events import parse_min_conf

TRUTH_CSV = "file,onset,offset,label\na.wav,2.0,5.0,dog\nb.wav,6.0,7.0,dog\nb.wav,1.0,3.0,rain\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """a.wav: dog found at 2-5 s (0.9, right) and 8-9 s (0.7, wrong); b.wav: the dog at 6-7 s
    scores 0.3 (missed at 0.5), rain at 1-3 s found (0.8)."""
    return make_run(tmp_path, {
        "a.wav": scores_with(10, {"dog": [(2, 5, 0.9), (8, 9, 0.7)]}),
        "b.wav": scores_with(10, {"dog": [(6, 7, 0.3)], "rain": [(1, 3, 0.8)]}),
    })


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _report(run_dir: Path, truth: Path, **options):
    return evaluate_run(open_run(run_dir), read_truth(truth), EvalOptions(**options))


def test_scores_known_by_construction(run_dir: Path, tmp_path: Path) -> None:
    report = _report(run_dir, _write(tmp_path / "truth.csv", TRUTH_CSV), target_precision=0.8)
    dog = report.classes["dog"]
    steps = dog["steps"]
    assert (steps["items"], steps["positives"]) == (20, 4)
    # ranked: 0.9 x3 (right), 0.7 (wrong), 0.3 (right), 0.05 x15: AP = .75*1 + .25*.8
    assert steps["ap"] == pytest.approx(0.95)
    assert steps["roc_auc"] == pytest.approx((3 + 15 / 16) / 4)
    at = steps["at_threshold"]
    assert (at["threshold"], at["tp"], at["fp"], at["fn"]) == (0.5, 3, 1, 1)
    assert steps["target"] == {"threshold": pytest.approx(0.3), "precision": pytest.approx(0.8),
                               "recall": 1.0}
    # events (collar = the 1 s hop): 2-5 matched, 8-9 false, b's 6-7 missed
    assert report.settings["collar"] == 1.0
    assert {k: dog["events"][k] for k in ("tp", "fp", "fn")} == {"tp": 1, "fp": 1, "fn": 1}
    assert {k: dog["segments"][k] for k in ("tp", "fp", "fn")} == {"tp": 3, "fp": 1, "fn": 1}
    assert dog["clips"]["ap"] == 1.0 and dog["clips"]["roc_auc"] is None  # no negative clip
    assert report.classes["rain"]["steps"]["ap"] == 1.0
    assert report.thresholds["dog"]["threshold"] == pytest.approx(0.3)
    assert report.overall["events"]["tp"] == 2  # dog 1 + rain 1


def test_ap_agrees_with_scikit_learn(run_dir: Path, tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score

    report = _report(run_dir, _write(tmp_path / "truth.csv", TRUTH_CSV))
    y = np.zeros(20, bool)
    y[[2, 3, 4, 16]] = True  # a.wav steps 2-4, b.wav step 6
    s = np.full(20, 0.05)
    s[[2, 3, 4]], s[8], s[16] = 0.9, 0.7, 0.3
    assert report.classes["dog"]["steps"]["ap"] == pytest.approx(
        average_precision_score(y, s), abs=1e-7)


def test_raven_audacity_and_csv_truth_agree(run_dir: Path, tmp_path: Path) -> None:
    head = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\n"
    raven = tmp_path / "raven"
    _write(raven / "a.Table.1.selections.txt", head + "1\tSpectrogram 1\t1\t2.0\t5.0\t0\t9000\tdog\n"
           "1\tWaveform 1\t1\t2.0\t5.0\t0\t9000\tdog\n")
    _write(raven / "b.Table.1.selections.txt", head + "1\tSpectrogram 1\t1\t6.0\t7.0\t0\t9000\tdog\n"
           "2\tSpectrogram 1\t1\t1.0\t3.0\t0\t9000\train\n")
    audacity = tmp_path / "aud"
    _write(audacity / "a.txt", "2.000000\t5.000000\tdog\n\\\t100\t9000\n")
    _write(audacity / "b.txt", "6\t7\tdog\n1\t3\train\n")
    reference = _report(run_dir, _write(tmp_path / "truth.csv", TRUTH_CSV)).to_dict()
    for folder in (raven, audacity):
        assert _report(run_dir, folder).to_dict() == reference


def test_clip_level_truth(run_dir: Path, tmp_path: Path) -> None:
    truth = _write(tmp_path / "clips.csv", "file,label\na.wav,dog\nb.wav,rain\n")
    report = _report(run_dir, truth)
    assert report.settings["units"] == ["clips"]
    dog = report.classes["dog"]["clips"]  # a: mean 0.38 (positive), b: mean 0.075
    assert (dog["positives"], dog["ap"], dog["roc_auc"]) == (1, 1.0, 1.0)


def test_unknown_labels_and_files_are_reported(run_dir: Path, tmp_path: Path) -> None:
    truth = _write(tmp_path / "t.csv", TRUTH_CSV + "a.wav,0,1,cat\nzzz.wav,0,1,dog\n")
    report = _report(run_dir, truth)
    assert report.unknown_labels == ["cat"] and report.unmatched_files == ["zzz.wav"]


def test_verdicts_choose_the_threshold_reaching_the_target(run_dir: Path,
                                                           tmp_path: Path) -> None:
    rows = [("0.9", "yes"), ("0.8", "y"), ("0.7", "no"), ("0.6", "1"), ("0.55", "0"),
            ("0.52", "")]
    text = "clip,source,onset,offset,class,score,verdict\n" + "".join(
        f"c{i}.flac,a.wav,{i},{i + 1},dog,{s},{v}\n" for i, (s, v) in enumerate(rows))
    text += "r1.flac,b.wav,1,3,rain,0.8,no\nr2.flac,b.wav,5,6,rain,0.6,no\n"
    report = _report(run_dir, _write(tmp_path / "clips.csv", text), target_precision=0.75)
    scores = report.classes["dog"]["verdicts"]
    assert scores["items"] == 5  # the unreviewed row is left out
    assert report.thresholds["dog"]["threshold"] == pytest.approx(0.6)
    assert scores["at_threshold"]["precision"] == pytest.approx(3 / 5)
    rain = report.thresholds["rain"]["threshold"]
    assert 0.8 < rain < 0.8 + 1e-5  # every rain clip was wrong: above the best of them
    written = write_report(report, tmp_path / "w", plots=False)
    _, per_class = parse_min_conf(f"@{written['thresholds']}")
    assert dict(per_class)["rain"] > 0.8


def test_cli_writes_report_thresholds_and_plots(run_dir: Path, tmp_path: Path, run) -> None:
    truth = _write(tmp_path / "truth.csv", TRUTH_CSV)
    out = tmp_path / "ev"
    result = run("evaluate", run_dir, "--truth", truth, "--out", out,
                 "--target-precision", "0.9")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0][:5] == ["class", "unit", "items", "positives", "ap"]
    assert lines[1][:5] == ["dog", "steps", "20", "4", "0.9500"]
    assert lines[-1][0] == "overall"
    report = json.loads((out / "report.json").read_text())
    assert report["classes"]["dog"]["steps"]["target"]["threshold"] == pytest.approx(0.9)
    threshold, per_class = parse_min_conf(f"@{out / 'thresholds.csv'}")
    assert threshold is None and dict(per_class) == {"dog": pytest.approx(0.9),
                                                     "rain": pytest.approx(0.8)}
    if pytest.importorskip("matplotlib"):
        assert (out / "pr" / "dog.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_scores_files_say_how_to_make_them(tmp_path: Path, run) -> None:
    out = make_run(tmp_path, {"a.wav": scores_with(4, {"dog": [(0, 2, 0.9)]})},
                   formats=("jsonl",))
    truth = _write(tmp_path / "t.csv", "file,onset,offset,label\na.wav,0,2,dog\n")
    result = run("evaluate", out, "--truth", truth)
    assert result.exit_code == 1 and "--format scores" in result.stderr
    bad = _write(tmp_path / "bad.csv", "file,onset,offset,label\na.wav,x,2,dog\n")
    result = run("evaluate", out, "--truth", bad)
    assert result.exit_code == 1 and "'x' is not a number" in result.stderr


def test_event_matching_and_segments() -> None:
    assert match_events([(0, 4)], [(0.9, 3.0)], collar=1.0) == 1  # offset within half of 4 s
    assert match_events([(0, 4)], [(1.5, 4.0)], collar=1.0) == 0
    assert match_events([(0, 1), (0.5, 1.5)], [(0.2, 1.2)], collar=1.0) == 1  # one to one
    assert segment_activity([(1.5, 2.0)], 4.0, 1.0).tolist() == [False, True, False, False]


def test_tag_reads_per_class_thresholds(tmp_path: Path, write_audio, tiny_checkpoint,
                                        run) -> None:
    path = write_audio("x.wav", 6.0, kind="noise")
    table = _write(tmp_path / "thr.csv", "class,threshold\nobj1,0.99\n*,0.01\n")
    result = run("tag", path, "-w", tiny_checkpoint, "--min-conf", f"@{table}", "--json", "-q")
    assert result.exit_code == 0, result.output
    labels = {t["label"] for h in json.loads(result.stdout)["heads"] for t in h["top"]}
    assert "obj1" not in labels and "obj0" in labels  # 0.01 for the others: every one kept
    bad = _write(tmp_path / "bad.csv", "class,threshold\nbanana,0.5\n")
    result = run("tag", path, "-w", tiny_checkpoint, "--min-conf", f"@{bad}", "-q")
    assert result.exit_code == 2 and "banana" in result.output
    with pytest.raises(SoundNetError, match="not a number"):
        parse_min_conf("high")


def test_write_report_leaves_out_classes_without_threshold(run_dir: Path,
                                                           tmp_path: Path) -> None:
    truth = _write(tmp_path / "t.csv", "file,onset,offset,label\na.wav,2,5,dog\nb.wav,0,1,bird\n")
    report = _report(run_dir, truth)  # bird: one positive step scoring like all others
    written = write_report(report, tmp_path / "w", plots=False)
    with open(written["thresholds"], newline="") as f:
        classes = [row["class"] for row in csv.DictReader(f)]
    assert classes == ["bird", "dog"]
    report.thresholds["bird"]["threshold"] = None
    written = write_report(report, tmp_path / "w2", plots=False)
    with open(written["thresholds"], newline="") as f:
        assert [row["class"] for row in csv.DictReader(f)] == ["dog"]


def test_all_inputs_counts_unannotated_ones_as_empty(tmp_path: Path) -> None:
    out = make_run(tmp_path, {"a.wav": scores_with(4, {"dog": [(0, 2, 0.9)]}),
                              "b.wav": scores_with(4, {"dog": [(1, 2, 0.8)]})})
    truth = _write(tmp_path / "t.csv", "file,onset,offset,label\na.wav,0,2,dog\n")
    only = _report(out, truth)
    assert only.classes["dog"]["steps"]["items"] == 4 and only.settings["inputs"] == 1
    every = _report(out, truth, all_inputs=True)
    dog = every.classes["dog"]
    assert dog["steps"]["items"] == 8 and dog["events"]["fp"] == 1  # b's event: a false alarm
