"""Same-stem inputs (``x.mp3`` and ``x.m4a`` side by side, as phones export them): tag and extract
both keep every result, the suffix kept in the output names (soundnet_cli.files.fsutil.mirrored_output)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from helpers import synth
from soundnet_cli.files.fsutil import mirrored_output, same_stem_names


def pair_folder(root: Path) -> Path:
    root.mkdir()
    sf.write(str(root / "x.wav"), synth(2.0, freq=300.0)[:, 0], 22_050)
    sf.write(str(root / "x.flac"), synth(2.0, freq=3000.0)[:, 0], 22_050)
    sf.write(str(root / "y.wav"), synth(2.0, kind="noise")[:, 0], 22_050)
    (root / "y.txt").write_text("not audio: no clash with y.wav")
    return root


def test_names_keep_the_suffix_only_when_stems_collide(tmp_path: Path):
    root = pair_folder(tmp_path / "d")
    assert same_stem_names(root) == {"x.wav", "x.flac"}
    out = tmp_path / "out"
    assert mirrored_output(root / "x.wav", [root], out, ".tags.json") == out / "x.wav.tags.json"
    assert mirrored_output(root / "x.flac", [], out, ".npy") == out / "x.flac.npy"
    assert mirrored_output(root / "y.wav", [root], out, ".tags.json") == out / "y.tags.json"
    sf.write(str(root / "y.ogg"), synth(1.0)[:, 0], 22_050)  # added later: seen
    assert mirrored_output(root / "y.wav", [root], out, ".tags.json") == out / "y.wav.tags.json"


def test_tag_keeps_both_results(run, tiny_checkpoint: Path, tmp_path: Path):
    root = pair_folder(tmp_path / "d")
    res = tmp_path / "res"
    result = run("tag", root, "-w", tiny_checkpoint, "--out", res, "--device", "cpu")
    assert result.exit_code == 0, result.output
    docs = {p.name: json.loads(p.read_text()) for p in res.glob("*.tags.json")}
    assert set(docs) == {"x.wav.tags.json", "x.flac.tags.json", "y.tags.json"}
    assert docs["x.flac.tags.json"]["path"].endswith("x.flac")
    again = run("tag", root, "-w", tiny_checkpoint, "--out", res, "--device", "cpu")
    assert again.exit_code == 0 and "3 skipped" in again.output  # and both resume


def test_extract_keeps_both_outputs(run, tiny_checkpoint: Path, tmp_path: Path):
    root = pair_folder(tmp_path / "d")
    feats = tmp_path / "feats"
    result = run("extract", root, "-w", tiny_checkpoint, "--out", feats, "--layer", "conv2",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in feats.glob("*.npy")) == [
        "x.flac.conv2.npy", "x.wav.conv2.npy", "y.conv2.npy"]
    assert not np.array_equal(np.load(feats / "x.wav.conv2.npy"), np.load(feats / "x.flac.conv2.npy"))
