"""Feature files, pooling, resume, atomic writes and the manifest (soundnet_cli.extract)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from soundnet_cli import extract as extract_mod
from soundnet_cli.errors import OutputError
from soundnet_cli.extract import (MANIFEST_COLUMNS, Manifest, extract_files, output_paths,
                                  pool_frames)
from soundnet_cli.inference import iter_activations


@pytest.fixture
def tree(write_audio, tmp_path):
    """``in/`` with a sub-directory, mixed formats; returns (root, files)."""
    files = [
        write_audio("in/a.wav", 1.0, kind="noise"),
        write_audio("in/sub/b.flac", 2.0, rate=44_100),
        write_audio("in/sub/deeper/c.ogg", 0.5, rate=16_000, kind="clicks"),
    ]
    return tmp_path / "in", files


def _run(model, files, root, out, **kw):
    return list(extract_files(model, files, kw.pop("layers", ["conv5"]), out, roots=[root], **kw))


def test_outputs_mirror_the_input_tree(tiny_model, tree, tmp_path):
    root, files = tree
    out = tmp_path / "out"
    outcomes = _run(tiny_model, files, root, out, layers=["conv5", "18"])
    assert all(o.ok and not o.skipped for o in outcomes)
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert found == ["a.conv5.npy", "a.pool5.npy", "sub/b.conv5.npy", "sub/b.pool5.npy",
                     "sub/deeper/c.conv5.npy", "sub/deeper/c.pool5.npy"]
    ref = {r.path: r for r in iter_activations(tiny_model, files, ["conv5", "pool5"])}
    for path in files:
        for layer, target in output_paths(path, [root], out, ["conv5", "pool5"]).items():
            array = np.load(target)
            assert array.dtype == np.float32 and array.ndim == 2
            np.testing.assert_array_equal(array, ref[path].activations[layer])


def test_files_named_directly_land_in_out_by_name(tiny_model, tree, tmp_path):
    _, files = tree
    outcomes = list(extract_files(tiny_model, files[1:2], ["conv3"], tmp_path / "o"))
    assert outcomes[0].records[0].output == str(tmp_path / "o" / "b.conv3.npy")


def test_colliding_outputs_fail_the_second_input(tiny_model, write_audio, tmp_path):
    a = write_audio("x/same.wav", 0.5)
    b = write_audio("y/same.wav", 0.5)
    outcomes = {o.path: o for o in extract_files(tiny_model, [a, b], ["conv2"], tmp_path / "o")}
    assert outcomes[a].ok
    assert not outcomes[b].ok and "also the output of" in outcomes[b].error


@pytest.mark.parametrize("pool,width", [("mean", 1), ("max", 1), ("meanmax", 2)])
def test_pooling(tiny_model, tree, tmp_path, pool, width):
    root, files = tree
    (o, *_) = _run(tiny_model, files, root, tmp_path / "out", pool=pool)
    record = o.records[0]
    assert record.output.endswith(f"a.conv5.{pool}.npy") and record.pool == pool
    array = np.load(record.output)
    channels = tiny_model.channels("conv5")
    assert array.shape == (1, width * channels) == (record.frames, record.channels)
    (full,) = iter_activations(tiny_model, files[:1], ["conv5"])
    a = full.activations["conv5"]
    expected = {"mean": a.mean(0), "max": a.max(0),
                "meanmax": np.concatenate([a.mean(0), a.max(0)])}[pool]
    np.testing.assert_allclose(array[0], expected, rtol=1e-6, atol=1e-6)


def test_pool_frames_none_is_identity():
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert pool_frames(a, "none") is a
    with pytest.raises(ValueError, match="unknown pool"):
        pool_frames(a, "median")


def test_rerun_skips_without_decoding_and_overwrite_recomputes(tiny_model, tree, tmp_path,
                                                              monkeypatch):
    root, files = tree
    out = tmp_path / "out"
    first = _run(tiny_model, files, root, out)
    target = Path(first[0].records[0].output)
    np.save(target, np.zeros((1, 1), np.float32))  # a marker the rerun must keep

    def no_decoding(*args, **kwargs):
        raise AssertionError("a skipped file was decoded")

    monkeypatch.setattr("soundnet_cli.inference.load_audio", no_decoding)
    again = _run(tiny_model, files, root, out)
    assert all(o.ok and o.skipped for o in again)
    assert again[0].records[0].frames == 1  # read from the existing file's header
    assert np.load(target).shape == (1, 1)
    monkeypatch.undo()
    redone = _run(tiny_model, files, root, out, overwrite=True)
    assert all(o.ok and not o.skipped for o in redone)
    assert np.load(target).shape == (first[0].records[0].frames, first[0].records[0].channels)


def test_new_layers_are_added_to_existing_outputs(tiny_model, tree, tmp_path):
    root, files = tree
    out = tmp_path / "out"
    _run(tiny_model, files, root, out, layers=["conv5"])
    outcomes = _run(tiny_model, files, root, out, layers=["conv5", "conv6"])
    for o in outcomes:
        assert [(r.layer, r.skipped) for r in o.records] == [("conv5", True), ("conv6", False)]


def test_a_killed_run_leaves_no_partial_file_and_a_rerun_finishes(tiny_model, tree, tmp_path,
                                                                  monkeypatch):
    root, files = tree
    out = tmp_path / "out"
    real_save = np.save
    calls = []

    def dying_save(f, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # die half-way through the second file's write
            f.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real_save(f, array, **kwargs)

    monkeypatch.setattr(extract_mod.np, "save", dying_save)
    done = []
    with pytest.raises(KeyboardInterrupt):
        for outcome in extract_files(tiny_model, files, ["conv5"], out, roots=[root]):
            done.append(outcome)
    monkeypatch.undo()
    assert len(done) == 1
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert leftovers == ["a.conv5.npy"]  # no temporary and no half-written file
    np.load(out / "a.conv5.npy")
    outcomes = _run(tiny_model, files, root, out)
    assert [o.skipped for o in outcomes] == [True, False, False]
    assert all(o.ok for o in outcomes)
    assert len(list(out.rglob("*.npy"))) == 3


def test_short_clips_are_tiled_per_layer(tiny_model, write_audio, tmp_path):
    path = write_audio("short.wav", 2.0)
    (both,) = extract_files(tiny_model, [path], ["conv5", "conv8"], tmp_path / "both")
    (alone,) = extract_files(tiny_model, [path], ["conv5"], tmp_path / "alone")
    by_layer = {r.layer: r for r in both.records}
    assert by_layer["conv5"].tiled_to_seconds == 0.0
    assert by_layer["objects"].tiled_to_seconds >= 209_374 / 22_050
    assert any("tiled" in w and "short.wav" in w for w in both.warnings)
    np.testing.assert_array_equal(np.load(by_layer["conv5"].output),
                                  np.load(alone.records[0].output))


def test_bad_inputs_and_unreadable_outputs_are_reported(tiny_model, tree, tmp_path):
    root, files = tree
    out = tmp_path / "out"
    bad = root / "bad.wav"
    bad.write_text("not audio")
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "b.conv5.npy").write_text("junk")
    outcomes = {o.path: o for o in _run(tiny_model, [*files, bad], root, out)}
    assert "bad.wav: cannot decode" in outcomes[bad].error
    assert "b.conv5.npy is unreadable" in outcomes[files[1]].error
    assert "--overwrite" in outcomes[files[1]].error
    assert outcomes[files[0]].ok and outcomes[files[2]].ok


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl"])
def test_manifest_lists_everything_and_merges_on_rerun(tiny_model, tree, tmp_path, name):
    root, files = tree
    out = tmp_path / "out"
    manifest = Manifest(tmp_path / name)
    for o in _run(tiny_model, files[:2], root, out, layers=["conv5", "pool5"]):
        manifest.update(o.records)
    manifest.write()
    manifest = Manifest(tmp_path / name)  # a resumed run: loads the earlier rows
    for o in _run(tiny_model, files, root, out, layers=["conv5", "pool5"]):
        manifest.update(o.records)
    manifest.write()
    text = (tmp_path / name).read_text()
    if name.endswith(".csv"):
        rows = list(csv.DictReader(text.splitlines()))
        assert tuple(rows[0]) == MANIFEST_COLUMNS
    else:
        rows = [json.loads(line) for line in text.splitlines()]
        assert tuple(rows[0]) == (*MANIFEST_COLUMNS, "shape")
        assert rows[0]["shape"] == [rows[0]["frames"], rows[0]["channels"]]
    assert len(rows) == 6
    assert {Path(r["output"]).name for r in rows} >= {"a.conv5.npy", "c.pool5.npy"}
    row = next(r for r in rows if r["output"].endswith("a.conv5.npy"))
    assert float(row["hop_seconds"]) == pytest.approx(2048 / 22_050)
    assert float(row["duration_seconds"]) == pytest.approx(1.0)
    assert float(row["tiled_to_seconds"]) == 0.0  # kept from the run that wrote it
    assert int(row["frames"]) == np.load(row["output"]).shape[0]


def test_manifest_format_and_unreadable_manifest(tmp_path):
    with pytest.raises(OutputError, match="use a .csv or .jsonl"):
        Manifest(tmp_path / "m.txt")
    broken = tmp_path / "m.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(OutputError, match="m.jsonl: cannot read the existing manifest"):
        Manifest(broken)
