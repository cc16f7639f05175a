"""Tagging: scores, tiling, segments, plug-in scorers and serialisation (soundnet_cli.tagging.scoring)."""

from __future__ import annotations

import dataclasses

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from soundnet_cli.audio import load_audio
from soundnet_cli.model import Geometry
from soundnet_cli.runtime import RunOptions
from soundnet_cli.tagging import (CSV_COLUMNS, TAG_SCHEMA_VERSION, HeadScores, head_scorers,
                                  result_csv_rows, result_to_json, tag_files)
from soundnet_cli.tagging.scoring import softmax


def _logits(model, path, head):
    wave = torch.from_numpy(load_audio(path))[None]
    with torch.inference_mode():
        return model.features(wave, [head])[head][0].T.double().numpy()  # (steps, classes)


def test_clip_scores_average_the_per_step_softmax(tiny_model, write_audio):
    path = write_audio("long.wav", 20.0, kind="noise")
    (result,) = tag_files(tiny_model, [path])
    assert result.ok and not result.tiled and result.warnings == []
    assert [h.name for h in result.heads] == ["objects", "scenes"]
    for head in result.heads:
        logits = _logits(tiny_model, path, head.name)
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert head.scores.shape == (4, len(head.labels)) and head.probabilities
        np.testing.assert_allclose(head.scores, expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(head.clip_scores, expected.mean(axis=0), rtol=1e-4, atol=1e-6)
        assert head.clip_scores.sum() == pytest.approx(1.0, abs=1e-5)


def test_top_k_is_sorted_clamped_and_stable():
    scores = np.array([[0.25, 0.5, 0.25], [0.5, 0.0, 0.5]], np.float32)  # exact in binary
    head = HeadScores("h", ("a", "b", "c"), scores, True, 1.0, 2.0, 0.0)
    # clip means 0.375, 0.25, 0.375: the tie keeps label order
    assert [l.label for l in head.top_k(2)] == ["a", "c"]
    assert [l.label for l in head.top_k(10)] == ["a", "c", "b"]
    assert [(l.label, l.index, l.score) for l in head.top_k(1, step=0)] == [("b", 1, 0.5)]
    assert head.top_k(0) == []


def test_short_clips_are_tiled_to_ten_seconds_and_say_so(tiny_model, write_audio):
    path = write_audio("short.wav", 3.0)
    (result,) = tag_files(tiny_model, [path])
    assert result.ok and result.tiled
    assert result.duration == pytest.approx(3.0)
    assert result.analysed_duration >= 10.0
    assert any("short.wav" in w and "tiled" in w for w in result.warnings)
    assert all(h.steps >= 1 for h in result.heads)


def test_segments_follow_the_receptive_field(tiny_model, write_audio):
    path = write_audio("long.wav", 20.0)
    (result,) = tag_files(tiny_model, [path])
    head = result.head("objects")
    g = tiny_model.geometry("objects")
    bounds = head.segments(result.analysed_duration)
    starts = (g.first_sample + g.hop * np.arange(4)) / 22_050
    np.testing.assert_allclose(bounds[:, 0], np.clip(starts, 0, 20))
    np.testing.assert_allclose(bounds[:, 1], np.clip(starts + g.receptive_field / 22_050, 0, 20))
    assert bounds[0, 0] == 0.0 and bounds[-1, 1] == 20.0
    assert np.all(np.diff(bounds[:, 0]) > 0)


def test_failures_are_results_not_exceptions(tiny_model, write_audio, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00garbage" * 10)
    good = write_audio("good.wav", 1.0)
    results = list(tag_files(tiny_model, [bad, tmp_path / "missing.wav", good]))
    assert [r.ok for r in results] == [False, False, True]
    assert "bad.wav" in results[0].error and "missing.wav" in results[1].error
    assert results[0].heads == [] and list(result_csv_rows(results[0])) == []


def test_json_schema(tiny_model, write_audio):
    path = write_audio("s.wav", 13.0)
    (result,) = tag_files(tiny_model, [path])
    doc = json.loads(json.dumps(result_to_json(result, top_k=3)))
    assert doc["schema_version"] == TAG_SCHEMA_VERSION
    assert set(doc) == {"schema_version", "path", "ok", "error", "duration", "analysed_duration",
                        "tiled", "warnings", "no_confident_label", "heads"}
    head = doc["heads"][0]
    assert set(head) == {"name", "probabilities", "classes", "steps", "hop", "window", "min_conf",
                         "no_confident_label", "top", "events", "segments"}
    assert head["min_conf"] is None and head["events"] is None  # no detection options given
    assert head["segments"] is None and len(head["top"]) == 3
    assert set(head["top"][0]) == {"label", "index", "score"}
    seg = result_to_json(result, top_k=2, segments=True)["heads"][1]["segments"]
    assert len(seg) == result.head("scenes").steps == 2
    assert set(seg[0]) == {"step", "start", "end", "top"} and len(seg[0]["top"]) == 2


def test_csv_rows_are_long_format(tiny_model, write_audio):
    path = write_audio("s.wav", 13.0)
    (result,) = tag_files(tiny_model, [path])
    rows = list(result_csv_rows(result, top_k=2, segments=True))
    assert all(tuple(r) == CSV_COLUMNS for r in rows)
    steps = result.head("objects").steps
    assert len(rows) == 2 * (2 + steps * 2)
    assert {r["note"] for r in rows} == {""} and {r["schema_version"] for r in rows} == {2}
    clip = [r for r in rows if r["scope"] == "clip" and r["head"] == "objects"]
    assert [r["rank"] for r in clip] == [1, 2] and clip[0]["score"] >= clip[1]["score"]
    assert clip[0]["end"] == pytest.approx(13.0)
    assert not [r for r in result_csv_rows(result, top_k=2) if r["scope"] == "step"]


@dataclass(frozen=True)
class CentroidScorer:
    """A stand-in for a linear SVM over a trunk layer: decision values per pool5 frame."""

    name: str = "svm"
    layer: str = "pool5"
    min_samples: int = 0
    labels: tuple[str, ...] = ("quiet", "loud")

    def score(self, activations: np.ndarray, geometry: Geometry, sample_rate: int) -> HeadScores:
        energy = activations.mean(axis=1, keepdims=True)
        scores = np.concatenate([-energy, energy], axis=1).astype(np.float32)
        return HeadScores(self.name, self.labels, scores, False,
                          **dataclasses.asdict(geometry.seconds(sample_rate)))


def test_plug_in_scorers_become_extra_heads(tiny_model, write_audio):
    path = write_audio("s.wav", 13.0)
    scorers = [*head_scorers(tiny_model), CentroidScorer()]
    (result,) = tag_files(tiny_model, [path], scorers=scorers)
    assert [h.name for h in result.heads] == ["objects", "scenes", "svm"]
    svm = result.head("svm")
    assert not svm.probabilities
    assert svm.steps == tiny_model.geometry("pool5").frames(int(result.analysed_duration * 22_050))
    doc = result_to_json(result, top_k=1, segments=True)
    assert doc["heads"][2]["probabilities"] is False
    assert len(doc["heads"][2]["segments"]) == svm.steps


def test_scorer_alone_does_not_tile(tiny_model, write_audio):
    path = write_audio("s.wav", 2.0)
    (result,) = tag_files(tiny_model, [path], scorers=[CentroidScorer()])
    assert not result.tiled and result.analysed_duration == pytest.approx(2.0)


def test_softmax_is_stable():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0]], atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Long files: streamed by default (over 60 s), a per-step timeline in bounded memory

LONG_SECONDS = 65.0  # just over the default streaming threshold (60 s)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """65 s of a tone that changes every 8 s plus noise, written block by block."""
    import soundfile as sf

    path = tmp_path_factory.mktemp("long") / "field.wav"
    rate, rng = 22_050, np.random.default_rng(3)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for k in range(int(LONG_SECONDS) // 5):
            t = np.arange(5 * rate) / rate
            freq = 200.0 * (1 + (k * 5) // 8)
            f.write((0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size))
                    .astype(np.float32))
    return path


def _guard_whole_decoding(monkeypatch):
    """Decoding a file of over 60 s whole fails; asking with ``max_seconds`` (which refuses a
    long file from its header before decoding) still works."""
    from soundnet_cli import audio
    from soundnet_cli.runtime import decode as decoding

    real = decoding.load_audio

    def guarded(path, *args, max_seconds=None, **kwargs):
        if max_seconds is None or max_seconds > 60.0:
            raise AssertionError(f"{path}: a long file was decoded whole")
        return real(path, *args, max_seconds=max_seconds, **kwargs)

    monkeypatch.setattr(decoding, "load_audio", guarded)
    monkeypatch.setattr(audio, "load_audio", guarded)


def test_long_file_timeline_is_streamed_and_equals_the_whole_file(tiny_model, long_file,
                                                                  monkeypatch):
    import tracemalloc

    _guard_whole_decoding(monkeypatch)
    tracemalloc.start()
    try:
        (streamed,) = tag_files(tiny_model, [long_file], options=RunOptions(chunk_seconds=2.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    monkeypatch.undo()
    assert streamed.ok, streamed.error
    whole_bytes = int(LONG_SECONDS * 22_050 * 4)
    assert peak < whole_bytes / 2, f"peak numpy memory {peak} bytes"
    assert streamed.duration == pytest.approx(LONG_SECONDS) and not streamed.tiled
    steps = tiny_model.geometry("objects").frames(int(LONG_SECONDS * 22_050))
    assert [h.steps for h in streamed.heads] == [steps, steps] and steps > 15

    (whole,) = tag_files(tiny_model, [long_file], options=RunOptions(long_seconds=None))
    for s, w in zip(streamed.heads, whole.heads):
        assert s.name == w.name and s.scores.shape == w.scores.shape
        np.testing.assert_allclose(s.scores, w.scores, atol=1e-4)
        np.testing.assert_array_equal(s.segments(streamed.analysed_duration),
                                      w.segments(whole.analysed_duration))


def test_cli_tag_segments_on_a_long_file(tiny_checkpoint, long_file, monkeypatch):
    import csv

    from typer.testing import CliRunner

    from soundnet_cli.cli import app

    _guard_whole_decoding(monkeypatch)
    runner = CliRunner()
    base = ["tag", str(long_file), "-w", str(tiny_checkpoint), "--segments", "-k", "2", "-q",
            "--min-conf", "0"]
    result = runner.invoke(app, [*base, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (doc,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert doc["ok"] and doc["duration"] == pytest.approx(LONG_SECONDS)
    for head in doc["heads"]:
        segments = head["segments"]
        assert len(segments) == head["steps"] > 15
        assert [s["step"] for s in segments] == list(range(head["steps"]))
        starts = [s["start"] for s in segments]
        assert starts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(starts))
        assert segments[-1]["end"] == pytest.approx(LONG_SECONDS)
        assert all(len(s["top"]) == 2 for s in segments)

    table = runner.invoke(app, [*base, "--csv"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    rows = list(csv.DictReader(table.stdout.splitlines()))
    steps = doc["heads"][0]["steps"]
    assert len([r for r in rows if r["scope"] == "step"]) == 2 * steps * 2  # heads x steps x k
    last = [r for r in rows if r["head"] == "objects" and r["step"] == str(steps - 1)]
    assert len(last) == 2 and float(last[0]["end"]) == pytest.approx(LONG_SECONDS)
