"""``soundnet clips``: which detections are chosen, and the audio and CSV written for them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers.reviewrun import RATE, make_run, scores_with, tag_in_two_shards
from soundnet_cli.review import choose, detections, open_run


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """dog events at 2-5 s (0.9), 8-9 s (0.55) and 1-3 s in the second file (0.7); rain 4-6 s."""
    return make_run(tmp_path, {
        "a.wav": scores_with(12, {"dog": [(2, 5, 0.9), (8, 9, 0.55)]}),
        "b.wav": scores_with(10, {"dog": [(1, 3, 0.7)], "rain": [(4, 6, 0.8)]}),
    })


def test_top_clips_are_the_best_events_cut_with_their_margin(run_dir: Path, tmp_path: Path,
                                                              run) -> None:
    clips = tmp_path / "clips"
    result = run("clips", run_dir, "--class", "dog", "--per-class", "2", "--margin", "1",
                 "--out", clips)
    assert result.exit_code == 0, result.output
    assert result.stdout == "dog\t2 clip(s) of 3 detection(s)\n"
    rows = _rows(clips / "clips.csv")
    assert [(Path(r["source"]).name, float(r["onset"]), float(r["offset"]), float(r["score"]))
            for r in rows] == [("a.wav", 2.0, 5.0, 0.9), ("b.wav", 1.0, 3.0, 0.7)]
    assert all(r["verdict"] == "" and r["class"] == "dog" for r in rows)
    assert rows[0]["clip"] == "dog/0001_a_2.0s.flac"
    clip, rate = sf.read(clips / rows[0]["clip"], dtype="float32")
    source, _ = sf.read(run_dir.parent / "rec" / "a.wav", dtype="float32")
    assert rate == RATE and clip.shape[0] == 5 * RATE  # 1 s before 2 s to 1 s after 5 s
    assert np.abs(clip - source[RATE:6 * RATE]).max() < 1e-4  # FLAC is 16-bit
    clip, _ = sf.read(clips / rows[1]["clip"])
    assert float(rows[1]["clip_start"]) == 0.0 and clip.shape[0] == 4 * RATE  # clipped at 0


def test_min_conf_and_an_existing_table_is_kept(run_dir: Path, tmp_path: Path, run) -> None:
    clips = tmp_path / "clips"
    first = run("clips", run_dir, "--min-conf", "0.6", "--out", clips, "-q")
    assert first.exit_code == 0
    assert {(r["class"], r["score"]) for r in _rows(clips / "clips.csv")} == {
        ("dog", "0.900000"), ("dog", "0.700000"), ("rain", "0.800000")}
    again = run("clips", run_dir, "--out", clips, "-q")
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert run("clips", run_dir, "--out", clips, "-q", "--overwrite").exit_code == 0


def test_unknown_class_is_a_usage_error(run_dir: Path, tmp_path: Path, run) -> None:
    result = run("clips", run_dir, "--class", "cat", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "'cat' never reported" in result.stderr


def _many(tmp_path: Path) -> list:
    """40 dog events with scores 0.50, 0.5125, ... 0.9875, one per 2-s file."""
    files = {f"f{i:02d}.wav": scores_with(2, {"dog": [(0, 1, 0.5 + 0.0125 * i)]})
             for i in range(40)}
    return detections(open_run(make_run(tmp_path, files)), classes=["dog"])


def test_random_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    found = _many(tmp_path)
    first = choose(found, 10, "random", seed=0)
    assert first == choose(found, 10, "random", seed=0)
    assert first != choose(found, 10, "random", seed=1)
    assert len({d.source for d in first}) == 10 and all(d.label == "dog" for d in first)


def test_balanced_takes_equal_shares_of_the_score_range(tmp_path: Path) -> None:
    found = _many(tmp_path)
    picked = choose(found, 8, "balanced", seed=3)
    bins = np.histogram([d.score for d in picked], bins=4, range=(0.5, 0.9875))[0]
    assert bins.tolist() == [2, 2, 2, 2]
    top = choose(found, 8, "top")
    assert min(d.score for d in top) == pytest.approx(0.9)


def test_clips_of_a_merged_sharded_run(tmp_path: Path, write_audio, tiny_checkpoint,
                                       run) -> None:
    for i in range(4):
        write_audio(f"rec/{i}.wav", 6.0, kind="noise", seed=i)
    res = tmp_path / "res"
    tag_in_two_shards(run, tmp_path / "rec", tiny_checkpoint, res, "--min-conf", "0.1")
    assert run("merge", res).exit_code == 0
    result = run("clips", res, "--class", "obj1", "--per-class", "10", "--out",
                 tmp_path / "clips", "-q")
    assert result.exit_code == 0, result.output
    sources = {Path(r["source"]).name for r in _rows(tmp_path / "clips" / "clips.csv")}
    assert sources == {"0.wav", "1.wav", "2.wav", "3.wav"}  # both shards' inputs
