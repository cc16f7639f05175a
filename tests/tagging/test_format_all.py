"""``tag --format all`` says which formats it could not write (their package missing)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from helpers import synth


def test_format_all_says_what_it_left_out(run, tiny_checkpoint: Path, tmp_path: Path,
                                          monkeypatch):
    import soundfile as sf

    clip = tmp_path / "in" / "a.wav"
    clip.parent.mkdir()
    sf.write(str(clip), synth(2.0)[:, 0], 22_050)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("matplotlib", "pyarrow") else real(name, *a))
    out = tmp_path / "res"
    result = run("tag", tmp_path / "in", "-w", tiny_checkpoint, "--out", out, "--format", "all",
                 "--device", "cpu")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--format all: png is not written (its package is missing; pip install " \
           "'soundnet-cli[plot]')" in text
    assert "parquet is not written" in text
    assert "not written: parquet, png, their packages are missing" in text
    options = json.loads((out / "run.json").read_text())["options"]
    assert options["formats_left_out"] == ["parquet", "png"]
    assert not list(out.glob("*.png")) and (out / "a.tags.csv").is_file()
