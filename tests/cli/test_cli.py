"""The ``soundnet`` command line through Typer's CliRunner: outputs and exit codes 0/1/2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from soundnet_cli import __version__
from soundnet_cli.weights import registry as weights
from helpers import ROOT

SRC = ROOT / "src"


@pytest.fixture
def audio_dir(write_audio, tmp_path):
    write_audio("in/a.wav", 1.0, kind="noise")
    write_audio("in/sub/b.flac", 12.5, rate=44_100, channels=2)
    return tmp_path / "in"


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_lists_the_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    assert "tag" in result.stdout and "extract" in result.stdout


def _after_cli(argv: list[str], report: str) -> str:
    """Run the CLI with ``argv`` in a fresh interpreter, then the expression ``report`` (over
    ``sys.modules``); return what it wrote after the marker."""
    code = (f"import sys\nsys.argv = {['soundnet', *argv]!r}\nfrom soundnet_cli.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            f"sys.stderr.write('REPORT=' + {report})\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.rsplit("REPORT=", 1)[1]


def test_help_does_not_import_torch():
    heavy = _after_cli(["--help"], "','.join(m for m in ('torch', 'numpy', 'soundfile', 'soxr') "
                                   "if m in sys.modules)")
    assert heavy == ""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for command in ("tag", "extract"):
        proc = subprocess.run([sys.executable, "-m", "soundnet_cli", command, "--help"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0 and "Usage" in proc.stdout


def test_a_command_loads_no_other_commands_module():
    """``soundnet tag --help`` imports cli.tag and nothing of the other commands."""
    from soundnet_cli.cli import COMMANDS

    report = _after_cli(["tag", "--help"], "','.join(sorted(m for m in sys.modules "
                                           "if m.startswith('soundnet_cli.cli.')))")
    loaded = {m.rsplit(".", 1)[1] for m in report.split(",")}
    others = {spec.partition(":")[0] for name, spec in COMMANDS.items() if name != "tag"}
    assert "tag" in loaded and not loaded & others, loaded


def test_every_option_has_help_and_completion_is_on(run):
    import typer.main

    from soundnet_cli.cli import app

    root = typer.main.get_command(app)
    helpless = [f"{name} {p.opts[0]}" for name, cmd in root.commands.items()  # type: ignore[attr-defined]
                for p in cmd.params if p.param_type_name == "option" and not p.hidden
                and not getattr(p, "help", None)]
    assert helpless == []
    assert "--install-completion" in run("--help").stdout


def test_help_points_to_reference_pages_that_exist(run):
    from soundnet_cli.cli.common import doc

    assert Path(doc("tag.md")).is_file() and Path(doc("extract.md")).is_file()
    text = " ".join(run("tag", "--help").stdout.split())
    assert "10.98 s" in text and "tiled to 10 s" not in text
    assert "docs/tag.md" in text.replace("│", "").replace(" ", "")
    assert "Reference pages" in run("--help").stdout


# -- tag ------------------------------------------------------------------------------------------


def test_tag_table(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir, "-r", "-w", tiny_checkpoint, "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    assert "a.wav" in result.stdout and "b.flac" in result.stdout
    assert "objects" in result.stdout and "scenes" in result.stdout
    assert result.stderr == ""  # --quiet: no progress, no warnings


def test_tag_json_lines_parse(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir, "--recursive", "--weights", tiny_checkpoint, "--json",
                 "--segments", "--top-k", "3", "--workers", "0", "--min-conf", "0")
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(d["path"]).name for d in docs] == ["a.wav", "b.flac"]
    a, b = docs
    assert a["tiled"] and any("tiled" in w for w in a["warnings"])
    assert not b["tiled"] and b["duration"] == pytest.approx(12.5)
    assert [h["name"] for h in b["heads"]] == ["objects", "scenes"]
    assert len(b["heads"][0]["top"]) == 3 and len(b["heads"][0]["segments"]) == 2
    assert "tiled" in result.stderr  # the warning also goes to stderr


def test_tag_csv(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir / "a.wav", "-w", tiny_checkpoint, "--csv", "-k", "1",
                 "--min-conf", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    clip = [(r["head"], r["scope"], r["rank"]) for r in rows if r["scope"] == "clip"]
    assert clip == [("objects", "clip", "1"), ("scenes", "clip", "1")]
    assert {r["scope"] for r in rows} == {"clip", "event"}  # the kept label's events follow


def test_tag_json_and_csv_are_exclusive(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir, "-w", tiny_checkpoint, "--json", "--csv")
    assert result.exit_code == 2 and "mutually exclusive" in result.stderr


def test_tag_bad_top_k_is_a_usage_error(run, tiny_checkpoint, audio_dir):
    assert run("tag", audio_dir, "-w", tiny_checkpoint, "-k", "0").exit_code == 2


def test_tag_failures_exit_1_after_processing_the_rest(run, tiny_checkpoint, audio_dir, tmp_path):
    bad = audio_dir / "broken.wav"
    bad.write_text("text, not audio")
    result = run("tag", audio_dir, tmp_path / "missing.wav", "-w", tiny_checkpoint, "--json")
    assert result.exit_code == 1
    docs = {Path(d["path"]).name: d for d in map(json.loads, result.stdout.splitlines())}
    assert docs["a.wav"]["ok"] and not docs["broken.wav"]["ok"]
    assert not docs["missing.wav"]["ok"] and "no such file" in docs["missing.wav"]["error"]
    assert "2 input(s) failed" in result.stderr
    assert "broken.wav: cannot decode" in result.stderr
    assert "missing.wav: no such file" in result.stderr


def test_tag_empty_directory_fails(run, tiny_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("tag", tmp_path / "empty", "-w", tiny_checkpoint)
    assert result.exit_code == 1 and "no audio files found" in result.stderr


def test_tag_without_default_weights_is_a_clear_error(run, audio_dir, monkeypatch):
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS_FILE", "not-shipped.safetensors")
    result = run("tag", audio_dir)
    assert result.exit_code == 1
    assert "no embedded default network" in result.stderr and "--weights" in result.stderr


def test_missing_weights_file(run, audio_dir, tmp_path):
    result = run("tag", audio_dir, "-w", tmp_path / "nope.safetensors")
    assert result.exit_code == 1 and "nope.safetensors" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_cuda_is_an_error_not_a_cpu_run(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir, "-w", tiny_checkpoint, "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA device" in result.stderr
    assert result.stdout == ""


def test_unknown_device(run, tiny_checkpoint, audio_dir):
    result = run("tag", audio_dir, "-w", tiny_checkpoint, "--device", "tpu")
    assert result.exit_code == 2 and "unknown device" in result.stderr


# -- extract --------------------------------------------------------------------------------------


def test_extract_writes_mirrored_npy_and_a_manifest(run, tiny_checkpoint, audio_dir, tmp_path):
    out = tmp_path / "out"
    result = run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "--out", out,
                 "--layer", "conv5", "--layer", "18")
    assert result.exit_code == 0, result.output
    assert np.load(out / "a.conv5.npy").dtype == np.float32
    assert np.load(out / "sub" / "b.pool5.npy").shape[1] == 16
    rows = list(csv.DictReader((out / "manifest.csv").read_text().splitlines()))
    assert len(rows) == 4 and {r["layer"] for r in rows} == {"conv5", "pool5"}
    assert "4 file(s) written" in result.stderr

    again = run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "-o", out, "-l", "conv5",
                "-l", "pool5")
    assert again.exit_code == 0 and "0 file(s) written, 4 existing skipped" in again.stderr
    assert len(list(csv.DictReader((out / "manifest.csv").read_text().splitlines()))) == 4

    forced = run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "-o", out, "-l", "conv5",
                 "--overwrite")
    assert forced.exit_code == 0 and "2 file(s) written" in forced.stderr


def test_extract_pooled_jsonl_manifest(run, tiny_checkpoint, audio_dir, tmp_path):
    out = tmp_path / "out"
    result = run("extract", audio_dir / "a.wav", "-w", tiny_checkpoint, "-o", out, "-l", "conv4",
                 "--pool", "meanmax", "--manifest", tmp_path / "m.jsonl", "-q")
    assert result.exit_code == 0, result.output
    assert np.load(out / "a.conv4.meanmax.npy").shape == (1, 16)
    (row,) = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert row["shape"] == [1, 16] and row["pool"] == "meanmax"


def test_extract_usage_errors(run, tiny_checkpoint, audio_dir, tmp_path):
    unknown = run("extract", audio_dir, "-w", tiny_checkpoint, "-o", tmp_path / "o", "-l", "conv9")
    assert unknown.exit_code == 2 and "valid: conv1" in unknown.stderr
    number = run("extract", audio_dir, "-w", tiny_checkpoint, "-o", tmp_path / "o", "-l", "5")
    assert number.exit_code == 2 and "module number 5" in number.stderr
    manifest = run("extract", audio_dir, "-w", tiny_checkpoint, "-o", tmp_path / "o",
                   "--manifest", tmp_path / "m.txt")
    assert manifest.exit_code == 2 and ".jsonl" in manifest.stderr
    pool = run("extract", audio_dir, "-w", tiny_checkpoint, "-o", tmp_path / "o", "--pool", "avg")
    assert pool.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_extract_without_out_writes_to_features_in_the_current_folder(run, tiny_checkpoint,
                                                                     audio_dir, tmp_path,
                                                                     monkeypatch):
    """`soundnet extract --layer conv5 dir/` is how the product is introduced: it must run."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = run("extract", "--layer", "conv5", audio_dir, "-r", "-w", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == [
        "features", "features/a.conv5.npy", "features/extract.json", "features/manifest.csv",
        "features/sub", "features/sub/b.conv5.npy"]
    # Run from inside the input folder, the default lands beside the audio, never over it.
    monkeypatch.chdir(audio_dir)
    inputs = {p: p.read_bytes() for p in audio_dir.rglob("*") if p.is_file()}
    assert run("extract", "-l", "conv5", ".", "-w", tiny_checkpoint, "-q").exit_code == 0
    assert all(p.read_bytes() == data for p, data in inputs.items())


def test_extract_into_a_folder_made_by_other_weights_stops(run, tiny_checkpoint, audio_dir,
                                                         tmp_path):
    from helpers import make_tiny_model
    from soundnet_cli.weights import save_checkpoint

    other = save_checkpoint(make_tiny_model(seed=3), tmp_path / "other.safetensors")
    out = tmp_path / "out"
    assert run("extract", audio_dir, "-w", tiny_checkpoint, "-o", out, "-q").exit_code == 0
    before = (out / "a.pool5.npy").read_bytes()
    result = run("extract", audio_dir, "-w", other, "-o", out)
    assert result.exit_code == 1
    assert "pool5 (fingerprint" in result.stderr and "another output folder" in result.stderr
    assert "skipped" not in result.stderr and (out / "a.pool5.npy").read_bytes() == before


def test_tag_a_video_and_extract_phone_audio(run, tiny_checkpoint, tmp_path):
    """m4a, aac, mp4 ... decode through FFmpeg and are found in directories."""
    pytest.importorskip("av")
    from helpers.avworld import class_sound, write_video

    folder = tmp_path / "mixed"
    write_video(folder / "movie.mp4", [0], 3.0, audio=class_sound(0, 3.0, 22_050, 0))
    write_video(folder / "phone.m4a", [0], 2.0, audio=class_sound(1, 2.0, 22_050, 1),
                video=False)
    tagged = run("tag", folder / "movie.mp4", "-w", tiny_checkpoint, "--json", "-q")
    assert tagged.exit_code == 0, tagged.output
    doc = json.loads(tagged.stdout)
    assert abs(doc["duration"] - 3.0) < 0.1 and doc["heads"]
    out = tmp_path / "feats"
    extracted = run("extract", folder, "-w", tiny_checkpoint, "-o", out, "-l", "conv5", "-q")
    assert extracted.exit_code == 0, extracted.output
    assert sorted(p.name for p in out.glob("*.npy")) == ["movie.conv5.npy", "phone.conv5.npy"]


def test_extract_bad_file_exits_1_and_keeps_the_rest(run, tiny_checkpoint, audio_dir, tmp_path):
    (audio_dir / "zero.wav").write_bytes(b"")
    out = tmp_path / "out"
    result = run("extract", audio_dir, "-w", tiny_checkpoint, "-o", out, "-l", "conv3")
    assert result.exit_code == 1
    assert (out / "a.conv3.npy").exists() and not (out / "zero.conv3.npy").exists()
    assert "1 input(s) failed" in result.stderr and "zero.wav" in result.stderr


def test_extract_decodes_early_with_the_same_outputs(run, tiny_checkpoint, audio_dir, tmp_path,
                                                     monkeypatch):
    """Decoding processes started before the network loads give what in-process decoding gives,
    and a rerun that only needs some files hands just those to the network."""
    from soundnet_cli.runtime import run as common
    from soundnet_cli.runtime import DecodePool

    started: list[DecodePool] = []
    real = common.early_decoder

    def spy(*args, **kwargs):
        pool = real(*args, **kwargs)
        started.append(pool)
        return pool

    monkeypatch.setattr(common, "early_decoder", spy)
    early, inline = tmp_path / "early", tmp_path / "inline"
    result = run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "-o", early, "-l", "conv4",
                 "-l", "pool5", "-q")
    assert result.exit_code == 0, result.output
    assert isinstance(started[0], DecodePool) and started[0].workers == 2
    assert run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "-o", inline, "-l", "conv4",
               "-l", "pool5", "-q", "--workers", "0").exit_code == 0
    assert started[1] is None  # --workers 0: nothing starts early
    outputs = sorted(p.relative_to(early) for p in early.rglob("*.npy"))
    assert len(outputs) == 4
    for rel in outputs:
        np.testing.assert_array_equal(np.load(early / rel), np.load(inline / rel))

    (early / "sub" / "b.pool5.npy").unlink()
    again = run("extract", audio_dir, "-r", "-w", tiny_checkpoint, "-o", early, "-l", "conv4",
                "-l", "pool5")
    assert again.exit_code == 0 and "1 file(s) written, 3 existing skipped" in again.stderr
    np.testing.assert_array_equal(np.load(early / "sub" / "b.pool5.npy"),
                                  np.load(inline / "sub" / "b.pool5.npy"))


def test_tag_decodes_early_with_the_same_results(run, tiny_checkpoint, audio_dir, monkeypatch):
    from soundnet_cli.runtime import run as common

    started = []
    real = common.early_decoder
    monkeypatch.setattr(common, "early_decoder",
                        lambda *a, **k: started.append(real(*a, **k)) or started[-1])
    early = run("tag", audio_dir, "-r", "-w", tiny_checkpoint, "--json", "--segments", "-q")
    inline = run("tag", audio_dir, "-r", "-w", tiny_checkpoint, "--json", "--segments", "-q",
                 "--workers", "0")
    assert early.exit_code == inline.exit_code == 0
    assert started[0] is not None and started[1] is None
    assert [json.loads(line) for line in early.stdout.splitlines()] == \
        [json.loads(line) for line in inline.stdout.splitlines()]


def test_early_decoder_plan(tiny_checkpoint, audio_dir, tmp_path):
    from soundnet_cli.runtime.run import early_decoder
    from soundnet_cli.runtime.options import guess_device_type

    files = sorted(p for p in audio_dir.rglob("*") if p.is_file())
    assert early_decoder(str(tiny_checkpoint), "cpu", files[:1], None, 60.0) is None
    assert early_decoder(str(tiny_checkpoint), "cpu", files, 0, 60.0) is None
    assert early_decoder(str(tmp_path / "absent"), "cpu", files, None, 60.0) is None
    pool = early_decoder(str(tiny_checkpoint), "cpu", files, 1, 60.0)
    assert pool.workers == 1 and pool.sample_rate == 22_050 and pool.long_seconds == 60.0
    pool.close()
    assert guess_device_type("cuda:1") == "cuda" and guess_device_type("CPU") == "cpu"
    assert guess_device_type("auto") in ("cpu", "cuda")


def test_extract_without_default_weights(run, audio_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "default_weights_path", lambda: tmp_path / "absent.safetensors")
    result = run("extract", audio_dir, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "no embedded default network" in result.stderr


def test_configure_threads_leaves_cores_to_the_decoders(monkeypatch):
    from soundnet_cli.runtime.options import configure_threads

    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    configure_threads(torch.device("cpu"), 1)
    configure_threads(torch.device("cpu"), 8)
    configure_threads(torch.device("cuda"), 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    configure_threads(torch.device("cpu"), 1)
    assert calls == [3, 1]
