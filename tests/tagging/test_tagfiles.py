"""Results as files: formats against their rules, provenance, resume, combined tables
(soundnet_cli.tagging.outputs)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from soundnet_cli.tagging import DetectOptions
from soundnet_cli.errors import SoundNetError
from soundnet_cli.tagging import CSV_COLUMNS, TagRun, head_scorers, tag_to_files
from soundnet_cli.tagging.layout import RECORD_SUFFIX, parse_formats
from soundnet_cli.tagging import provenance
from soundnet_cli.tagging.views import RAVEN_COLUMNS

TEXT = ("jsonl", "csv", "raven", "audacity")


@pytest.fixture
def inputs(write_audio, tmp_path):
    write_audio("in/a.wav", 1.0, kind="noise")
    write_audio("in/sub/b.flac", 12.5, rate=44_100, channels=2)
    write_audio("in/c.wav", 7.0, kind="clicks")
    root = tmp_path / "in"
    return root, [root / "a.wav", root / "sub" / "b.flac", root / "c.wav"]


def _run(model, inputs, out, formats=TEXT, detect=None, top_k=3, **kw):
    root, files = inputs
    detect = detect or DetectOptions(min_conf=0.15)
    prov = provenance(model, head_scorers(model), top_k=top_k, segments=False, detect=detect)
    run = TagRun(out, formats, roots=[root], provenance=prov, top_k=top_k, detect=detect, **kw)
    outcomes = list(tag_to_files(model, files, run))
    run.combine(files)
    return run, outcomes


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_every_input_gets_its_files_mirroring_the_tree(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _, outcomes = _run(tiny_model, inputs, out)
    assert all(o.ok and not o.skipped for o in outcomes)
    for stem in ("a", "sub/b", "c"):
        for suffix in (RECORD_SUFFIX, ".tags.csv", ".selections.txt", ".labels.txt"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    assert {p.name for p in out.iterdir() if p.is_file()} >= {"tags.jsonl", "tags.csv",
                                                            "selections.txt"}
    assert not list(out.rglob("*.part"))


def test_raven_tables_follow_ravens_format(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out)
    for path in [out / "a.selections.txt", out / "sub" / "b.selections.txt"]:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t")
        assert header[:7] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                              "Low Freq (Hz)", "High Freq (Hz)"]
        assert tuple(header) == RAVEN_COLUMNS and len(lines) >= 2
        rows = [line.split("\t") for line in lines[1:]]
        assert all(len(r) == len(header) for r in rows)  # tab-separated, one row per selection
        assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))  # numbered from 1
        for r in rows:
            assert r[1] == "Spectrogram 1" and r[2] == "1"
            begin, end, low, high = map(float, r[3:7])
            assert 0.0 <= begin < end and low == 0.0 and high == 11025.0
    combined = (out / "selections.txt").read_text().splitlines()
    header = combined[0].split("\t")
    assert "Begin Path" in header and "File Offset (s)" in header
    numbers = [int(line.split("\t")[0]) for line in combined[1:]]
    assert numbers == list(range(1, len(numbers) + 1))


def test_audacity_labels_are_three_tab_separated_columns_in_seconds(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out)
    for path, duration in [(out / "a.labels.txt", 1.0), (out / "sub" / "b.labels.txt", 12.5)]:
        lines = path.read_text().splitlines()
        assert lines
        for line in lines:
            start, end, label = line.split("\t")
            assert 0.0 <= float(start) <= float(end) <= duration + 1e-6
            assert len(start.split(".")[1]) == 6 and label


def test_provenance_in_every_output(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    run, _ = _run(tiny_model, inputs, out)
    prov = run.provenance
    assert prov["network"]["fingerprint"] == tiny_model.fingerprint
    assert prov["heads"][0]["name"] == "objects" and prov["settings"]["min_conf"] == 0.15
    record = json.loads((out / f"c{RECORD_SUFFIX}").read_text())
    assert record["provenance"] == prov and record["schema_version"] == 2
    rows = list(csv.DictReader((out / "c.tags.csv").read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["fingerprint"] for r in rows} == {tiny_model.fingerprint}
    assert {r["settings_id"] for r in rows} == {prov["settings_id"]}
    raven = list(csv.DictReader((out / "c.selections.txt").read_text().splitlines(),
                                delimiter="\t"))
    assert {r["Settings ID"] for r in raven} == {prov["settings_id"]}
    lines = (out / "tags.jsonl").read_text().splitlines()
    assert [json.loads(x)["provenance"]["settings_id"] for x in lines] == [prov["settings_id"]] * 3
    settings = run.write_settings([inputs[0]], {"batch_size": 8})
    doc = json.loads(settings.read_text())
    assert doc["settings_id"] == prov["settings_id"] and doc["formats"] == list(TEXT)
    assert doc["options"] == {"batch_size": 8} and doc["network"]["fingerprint"]


def test_no_confident_label_in_every_file(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out, detect=DetectOptions(min_conf=0.99))  # tiny nets never reach it
    record = json.loads((out / f"a{RECORD_SUFFIX}").read_text())
    assert record["no_confident_label"] and all(h["top"] == [] for h in record["heads"])
    rows = list(csv.DictReader((out / "a.tags.csv").read_text().splitlines()))
    assert {r["note"] for r in rows} == {"no confident label"}
    raven = (out / "a.selections.txt").read_text().splitlines()[1:]
    assert len(raven) == 2 and all("\tno confident label\t" in r for r in raven)  # one per head
    labels = (out / "a.labels.txt").read_text().splitlines()
    assert labels == ["0.000000\t1.000000\tno confident label"] * 2


def test_rerun_does_nothing(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out)
    before = _mtimes(out)
    _, outcomes = _run(tiny_model, inputs, out)
    assert all(o.skipped for o in outcomes)
    after = _mtimes(out)
    per_file = [p for p in before if p.parent != out or p.name.startswith(("a.", "c."))]
    assert all(after[p] == before[p] for p in per_file)  # only the combined tables are rebuilt


def test_changed_settings_are_refused_a_changed_input_recomputed(tiny_model, inputs, tmp_path,
                                                                  write_audio):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out, detect=DetectOptions(min_conf=0.3))
    with pytest.raises(SoundNetError, match="min_conf: 0.3 -> 0.15"):
        _run(tiny_model, inputs, out)  # a new threshold: another folder (issue #22)
    write_audio("in/a.wav", 2.0, kind="noise")  # the input itself changed
    _, outcomes = _run(tiny_model, inputs, out, detect=DetectOptions(min_conf=0.3))
    assert [o.path.name for o in outcomes if not o.skipped] == ["a.wav"]
    doc = json.loads((out / f"a{RECORD_SUFFIX}").read_text())
    assert doc["duration"] == pytest.approx(2.0)


def test_missing_views_are_rebuilt_from_the_record(tiny_model, inputs, tmp_path):
    out = tmp_path / "res"
    _run(tiny_model, inputs, out, formats=("jsonl",))
    _, outcomes = _run(tiny_model, inputs, out, formats=("jsonl", "raven"))
    assert all(o.skipped for o in outcomes)  # nothing decoded again
    assert (out / "c.selections.txt").read_text().startswith("Selection\tView")


def test_an_interrupted_run_completes_with_no_half_written_file(tiny_model, inputs, tmp_path,
                                                              monkeypatch):
    import soundnet_cli.tagging.outputs as tf

    out = tmp_path / "res"
    real = tf.atomic_write_text
    calls = {"n": 0}

    def dying(path, text):
        calls["n"] += 1
        if calls["n"] == 6:  # in the middle of the second input's files
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(tf, "atomic_write_text", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_model, inputs, out)
    assert (out / f"a{RECORD_SUFFIX}").exists() and not (out / f"c{RECORD_SUFFIX}").exists()
    assert not list(out.rglob("*.part"))
    monkeypatch.setattr(tf, "atomic_write_text", real)
    _, outcomes = _run(tiny_model, inputs, out)
    assert [o.path.name for o in outcomes if o.skipped] == ["a.wav"]
    assert len((out / "tags.jsonl").read_text().splitlines()) == 3
    for path in out.rglob("*.json"):
        json.loads(path.read_text())


def test_inputs_with_the_same_outputs_are_reported(tiny_model, write_audio, tmp_path):
    # files of one name given from two folders land in OUT by name: the second is reported
    a, b = write_audio("x/a.wav", 1.0), write_audio("y/a.wav", 1.0)
    _, outcomes = _run(tiny_model, (tmp_path / "elsewhere", [a, b]), tmp_path / "res")
    bad = [o for o in outcomes if not o.ok]
    assert len(bad) == 1 and "would also be those of" in bad[0].error


def test_same_stem_inputs_side_by_side_keep_their_suffix(tiny_model, write_audio, tmp_path):
    write_audio("in/a.wav", 1.0)
    write_audio("in/a.flac", 1.0)
    root = tmp_path / "in"
    _, outcomes = _run(tiny_model, (root, [root / "a.flac", root / "a.wav"]), tmp_path / "res")
    assert all(o.ok for o in outcomes)
    assert {p.name for p in (tmp_path / "res").glob("*.tags.json")} == {"a.wav.tags.json",
                                                                       "a.flac.tags.json"}


def test_parse_formats(monkeypatch):
    assert parse_formats("raven, csv") == ("csv", "raven")
    with pytest.raises(SoundNetError, match="unknown"):
        parse_formats("csv,xml")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pyarrow", "matplotlib") else real(name))
    assert parse_formats("all") == (*TEXT, "scores", "html")
    with pytest.raises(SoundNetError, match=r"soundnet-cli\[parquet\]"):
        parse_formats("parquet")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow not installed")
def test_parquet_holds_the_long_table_and_its_provenance(tiny_model, inputs, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "res"
    run, _ = _run(tiny_model, inputs, out, formats=("csv", "parquet"))
    table = pq.read_table(out / "tags.parquet")
    assert table.column_names == list(CSV_COLUMNS)
    rows = list(csv.DictReader((out / "tags.csv").read_text().splitlines()))
    assert table.num_rows == len(rows)
    meta = json.loads(table.schema.metadata[b"soundnet_provenance"])
    assert meta["settings_id"] == run.provenance["settings_id"]
