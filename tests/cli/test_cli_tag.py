"""``soundnet tag`` for collections: --out and its formats, resume, summary, --min-conf,
--classes, --plot (through Typer's CliRunner)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import synth

HAS_PLOT = importlib.util.find_spec("matplotlib") is not None
HAS_PARQUET = importlib.util.find_spec("pyarrow") is not None


def _decodes(path: Path) -> bool:
    from soundnet_cli.audio import AUDIO_SUFFIXES, load_audio
    from soundnet_cli.errors import SoundNetError

    if path.suffix not in AUDIO_SUFFIXES:
        return False
    try:
        load_audio(path)
    except SoundNetError:
        return False
    return True


@pytest.fixture
def collection(tmp_path) -> tuple[Path, list[str]]:
    """wav, flac, ogg, mp3 and, where this installation decodes them, m4a and an mp4 video."""
    root = tmp_path / "coll"
    root.mkdir()
    x = synth(6.0, kind="noise")[:, 0]
    sf.write(str(root / "a.wav"), x, 22_050)
    sf.write(str(root / "b.flac"), synth(3.0, rate=44_100, channels=2), 44_100)
    sf.write(str(root / "c.ogg"), x, 22_050, format="OGG", subtype="VORBIS")
    sf.write(str(root / "d.mp3"), x, 22_050, format="MP3")
    names = ["a", "b", "c", "d"]
    if importlib.util.find_spec("av") is not None:
        from helpers.avworld import write_video

        write_video(root / "e.m4a", None, 4.0, audio=x[: 4 * 22_050], video=False)
        write_video(root / "f.mp4", [0, 1], 4.0, audio=x[: 4 * 22_050])
        names += [p.stem for p in (root / "e.m4a", root / "f.mp4") if _decodes(p)]
        for p in (root / "e.m4a", root / "f.mp4"):
            if p.stem not in names:
                p.unlink()  # not decodable here yet (PyAV decoding lands separately)
    return root, names


def test_a_collection_tags_into_every_format_and_a_rerun_does_nothing(run, tiny_checkpoint,
                                                                      collection, tmp_path):
    root, names = collection
    res = tmp_path / "res"
    first = run("tag", root, "-w", tiny_checkpoint, "--out", res, "--format", "all",
                "--min-conf", "0.1")
    assert first.exit_code == 0, first.output
    suffixes = [".tags.json", ".tags.csv", ".selections.txt", ".labels.txt"]
    suffixes += [".tags.png"] if HAS_PLOT else []
    for name in names:
        for suffix in suffixes:
            assert (res / f"{name}{suffix}").is_file(), name + suffix
    combined = ["run.json", "tags.jsonl", "tags.csv", "selections.txt"]
    combined += ["tags.parquet"] if HAS_PARQUET else []
    assert all((res / c).is_file() for c in combined)
    assert len((res / "tags.jsonl").read_text().splitlines()) == len(names)
    # stdout: one summary line per file; stderr: what was written
    assert len(first.stdout.splitlines()) == len(names)
    assert f"{len(names)} file(s) tagged, 0 skipped (already done)" in first.stderr
    run_doc = json.loads((res / "run.json").read_text())
    assert run_doc["finished"] and run_doc["tagged"] == len(names)
    assert run_doc["settings"]["min_conf"] == 0.1 and run_doc["network"]["fingerprint"]
    before = {p: p.stat().st_mtime_ns for p in res.glob("*.tags.json")}
    again = run("tag", root, "-w", tiny_checkpoint, "--out", res, "--format", "all",
                "--min-conf", "0.1")
    assert again.exit_code == 0 and again.stdout == ""
    assert f"0 file(s) tagged, {len(names)} skipped (already done)" in again.stderr
    assert before == {p: p.stat().st_mtime_ns for p in res.glob("*.tags.json")}


def test_summary_mode_is_one_line_per_file(run, tiny_checkpoint, tmp_path, write_audio):
    for i in range(6):
        write_audio(f"many/{i}.wav", 1.0 + i, kind="noise", seed=i)
    many = run("tag", tmp_path / "many", "-w", tiny_checkpoint, "-q", "--min-conf", "0")
    assert many.exit_code == 0
    lines = many.stdout.splitlines()
    assert len(lines) == 6 and all(line.count("\t") == 2 and "objects: " in line for line in lines)
    tables = run("tag", tmp_path / "many", "-w", tiny_checkpoint, "-q", "--no-summary")
    assert len(tables.stdout.splitlines()) > 6 * 3
    one = run("tag", tmp_path / "many" / "0.wav", "-w", tiny_checkpoint, "-q", "--summary")
    assert len(one.stdout.splitlines()) == 1


def test_looped_short_clips_are_summed_up_after_three(run, tiny_checkpoint, tmp_path,
                                                      write_audio):
    """One looping note per 5-s clip drowned the other warnings: the first three are shown, the
    rest counted in one line; each record still carries its own note."""
    for i in range(5):
        write_audio(f"short/{i}.wav", 2.0, kind="noise", seed=i)
    write_audio("short/tiny.wav", 0.06, kind="noise")  # another kind of warning: always shown
    for out in ([], ["--out", str(tmp_path / "o")]):
        result = run("tag", tmp_path / "short", "-w", tiny_checkpoint, "--min-conf", "0", *out)
        assert result.exit_code == 0
        err = " ".join(result.stderr.split())
        assert err.count("tiled (looped) to") == 3, result.stderr
        assert "3 more input(s) were shorter than tagging needs and were looped likewise (6 in " \
               "all; each record notes it)" in err
        assert "only 0.060 s of audio" in err
    records = [json.loads(p.read_text()) for p in (tmp_path / "o").rglob("*.json")
               if p.name != "run.json" and p.name != "tag.json"]
    assert sum(any("tiled (looped) to" in w for w in r["warnings"]) for r in records) == 6


def test_no_confident_label_on_stdout(run, tiny_checkpoint, write_audio):
    path = write_audio("x.wav", 6.0, kind="noise")
    base = ("tag", path, "-w", tiny_checkpoint, "-q", "--min-conf", "0.99")
    table = run(*base)
    assert table.exit_code == 0 and table.stdout.count("no confident label") == 2  # two heads
    doc = json.loads(run(*base, "--json").stdout)
    assert doc["no_confident_label"] and all(h["min_conf"] == 0.99 for h in doc["heads"])
    rows = run(*base, "--csv").stdout.splitlines()
    assert len(rows) == 3 and all(r.split(",")[11] == "no confident label" for r in rows[1:])


def test_a_truncated_file_is_warned_about_not_labelled(run, tiny_checkpoint, write_audio):
    path = write_audio("tiny.wav", 0.06, kind="noise")
    result = run("tag", path, "-w", tiny_checkpoint, "--min-conf", "0", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["no_confident_label"] and "only 0.060 s of audio" in result.stderr


def test_classes_filter_and_its_errors(run, tiny_checkpoint, write_audio, tmp_path):
    path = write_audio("x.wav", 6.0, kind="noise")
    result = run("tag", path, "-w", tiny_checkpoint, "--json", "--min-conf", "0",
                 "--classes", "obj1,obj3")
    assert result.exit_code == 0, result.output
    objects, scenes = json.loads(result.stdout)["heads"]
    assert {lab["label"] for lab in objects["top"]} == {"obj1", "obj3"}
    assert scenes["top"] == [] and scenes["no_confident_label"]
    listed = tmp_path / "wanted.txt"
    listed.write_text("scene2\n")
    result = run("tag", path, "-w", tiny_checkpoint, "--json", "--min-conf", "0",
                 "--classes", f"@{listed}")
    assert [lab["label"] for lab in json.loads(result.stdout)["heads"][1]["top"]] == ["scene2"]
    bad = run("tag", path, "-w", tiny_checkpoint, "--classes", "obj1,unicorn")
    assert bad.exit_code == 2 and "unicorn" in bad.stderr


def test_file_options_need_out(run, tiny_checkpoint, write_audio):
    path = write_audio("x.wav", 1.0)
    for extra in (["--plot"], ["--format", "raven"]):
        result = run("tag", path, "-w", tiny_checkpoint, *extra)
        assert result.exit_code == 2 and "--out" in result.stderr
    result = run("tag", path, "-w", tiny_checkpoint, "--out", path.parent / "r", "-f", "xml")
    assert result.exit_code == 2 and "unknown" in result.stderr


@pytest.mark.skipif(not HAS_PLOT, reason="matplotlib not installed")
def test_plot_writes_a_png_per_input_with_its_provenance(run, tiny_checkpoint, write_audio,
                                                        tmp_path):
    write_audio("p/long.wav", 14.0, kind="clicks")
    write_audio("p/short.wav", 0.2, kind="noise")
    res = tmp_path / "res"
    result = run("tag", tmp_path / "p", "-w", tiny_checkpoint, "--out", res, "--plot",
                 "--format", "raven", "--min-conf", "0.15", "-q")
    assert result.exit_code == 0, result.output
    for name in ("long", "short"):
        data = (res / f"{name}.tags.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"settings_id" in data


@pytest.mark.skipif(not HAS_PLOT, reason="matplotlib not installed")
def test_spectrogram_in_blocks_equals_whole(tmp_path):
    from soundnet_cli.plot import spectrogram

    x = np.random.default_rng(0).standard_normal(50_000).astype(np.float32)
    whole, hop = spectrogram([x], x.shape[0])
    blocks, hop2 = spectrogram(np.array_split(x, 7), x.shape[0])
    assert hop == hop2 and whole.shape == blocks.shape
    np.testing.assert_allclose(whole, blocks, atol=1e-3)
