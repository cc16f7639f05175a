"""Audio from standard input: ``cat clip.ogg | soundnet tag -`` and ``soundnet extract -``."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from helpers import synth
from soundnet_cli.cli import app


def audio_bytes(fmt: str = "WAV", seconds: float = 2.0, freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, synth(seconds, freq=freq)[:, 0], 22_050, format=fmt)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch) -> Path:
    """The spooled copy of standard input goes under tmp_path (and is checked to be gone)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    yield spool
    assert list(spool.iterdir()) == []  # removed when the command ended


def invoke(args: list, data: bytes):
    return CliRunner().invoke(app, [str(a) for a in args], input=data)


@pytest.mark.parametrize("spelling", ["-", "/dev/stdin"])
def test_tag_reads_standard_input(tiny_checkpoint: Path, spelling: str):
    result = invoke(["tag", spelling, "-w", tiny_checkpoint, "--json", "--device", "cpu"],
                    audio_bytes("OGG"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout.splitlines()[0])
    assert doc["path"] == "stdin" and abs(doc["duration"] - 2.0) < 0.01
    assert "spool" not in result.output  # the temporary copy is never named


def test_tag_names_standard_input_with_stdin_name(tiny_checkpoint: Path, tmp_path: Path):
    named = invoke(["tag", "-", "-w", tiny_checkpoint, "--csv", "--stdin-name", "call.flac",
                    "--device", "cpu"], audio_bytes("FLAC"))
    assert named.exit_code == 0, named.output
    rows = list(csv.DictReader(io.StringIO(named.stdout)))
    assert rows and {r["path"] for r in rows} == {"call.flac"}
    out = tmp_path / "res"
    files = invoke(["tag", "-", "-w", tiny_checkpoint, "--out", out, "--device", "cpu"],
                   audio_bytes())
    assert files.exit_code == 0, files.output
    record = json.loads((out / "stdin.tags.json").read_text())
    assert record["path"] == "stdin"
    assert "stdin" in (out / "tags.csv").read_text()


def test_tag_fails_cleanly_on_an_empty_or_corrupt_pipe(tiny_checkpoint: Path):
    for data in (b"", b"not audio at all" * 10):
        result = invoke(["tag", "-", "-w", tiny_checkpoint, "--device", "cpu"], data)
        assert result.exit_code == 1, result.output
        assert "stdin" in result.output and "spool" not in result.output
        assert "Traceback" not in result.output


def test_stdin_usage_errors(tiny_checkpoint: Path, tmp_path: Path):
    clip = tmp_path / "a.wav"
    clip.write_bytes(audio_bytes())
    alone = invoke(["tag", clip, "-w", tiny_checkpoint, "--stdin-name", "x"], b"")
    assert alone.exit_code == 2 and "'-'" in alone.output
    twice = invoke(["tag", "-", "/dev/stdin", "-w", tiny_checkpoint], b"")
    assert twice.exit_code == 2 and "once" in twice.output
    bad = invoke(["extract", "-", "-w", tiny_checkpoint, "--stdin-name", "a/b"], b"")
    assert bad.exit_code == 2 and "without '/'" in bad.output


def test_extract_reads_standard_input_and_recomputes_it(tiny_checkpoint: Path, tmp_path: Path):
    out = tmp_path / "feats"
    args = ["extract", "-", "-w", tiny_checkpoint, "--out", out, "--device", "cpu",
            "--layer", "conv2"]
    first = invoke(args, audio_bytes(freq=440.0))
    assert first.exit_code == 0, first.output
    array = np.load(out / "stdin.conv2.npy")
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["input"] for r in rows] == ["stdin"]
    second = invoke(args, audio_bytes(freq=3000.0))  # other audio down the same pipe name
    assert second.exit_code == 0, second.output
    assert not np.array_equal(np.load(out / "stdin.conv2.npy"), array), second.output
    named = invoke([*args, "--stdin-name", "take2.wav"], audio_bytes())
    assert named.exit_code == 0 and (out / "take2.conv2.npy").is_file()


def test_tag_plots_standard_input(tiny_checkpoint: Path, tmp_path: Path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "res"
    result = invoke(["tag", "-", "-w", tiny_checkpoint, "--out", out, "--plot", "--device", "cpu"],
                    audio_bytes())
    assert result.exit_code == 0, result.output
    assert (out / "stdin.tags.png").is_file()
