"""Feature files, pooling, resume, atomic writes and the manifest (soundnet_cli.extract)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from soundnet_cli import audio as audio_mod
from soundnet_cli import extract as extract_mod
from soundnet_cli.runtime import decode as decoding_mod
from soundnet_cli.runtime import stream as streaming_mod
from soundnet_cli.cli import app
from soundnet_cli.errors import OutputError
from soundnet_cli.runtime import RunOptions
from soundnet_cli.files.manifest import MANIFEST_COLUMNS, Manifest
from soundnet_cli.extract import (extract_files, output_paths,
                                  pool_frames)
from soundnet_cli.runtime import iter_activations


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


def test_colliding_outputs_fail_both_inputs(tiny_model, write_audio, tmp_path):
    a = write_audio("x/same.wav", 0.5)
    b = write_audio("y/same.wav", 0.5)
    outcomes = {o.path: o for o in extract_files(tiny_model, [a, b], ["conv2"], tmp_path / "o")}
    for path, other in ((a, b), (b, a)):
        assert not outcomes[path].ok and str(other) in outcomes[path].error
        assert "separate" in outcomes[path].error
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.npy"))


def test_same_stem_in_one_folder_keeps_the_suffix_whatever_decodes(tiny_model, write_audio,
                                                                    tmp_path):
    """Regression (#16, #24): x.flac and x.wav side by side both failed, and an undecodable x.flac
    blocked a valid x.wav. Now their outputs keep the suffix; each succeeds or fails alone."""
    good = write_audio("d/x.wav", 0.5)
    bad = tmp_path / "d" / "x.flac"
    bad.write_bytes(b"not audio")
    outcomes = {o.path: o for o in extract_files(tiny_model, [bad, good], ["conv2"],
                                                 tmp_path / "o", roots=[tmp_path / "d"])}
    assert outcomes[good].ok and (tmp_path / "o" / "x.wav.conv2.npy").is_file()
    assert not outcomes[bad].ok and "rename" not in outcomes[bad].error


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

    monkeypatch.setattr("soundnet_cli.runtime.decode.load_audio", no_decoding)
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
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                       if p.is_file() and p.name != "extract.json")
    # No temporary and no half-written file. Writing runs on a thread, so the third file's
    # write may have been under way, and then finished, when the second one was interrupted.
    assert leftovers in (["a.conv5.npy"], ["a.conv5.npy", "sub/deeper/c.conv5.npy"])
    for name in leftovers:
        np.load(out / name)
    outcomes = _run(tiny_model, files, root, out)
    skipped = {Path(o.path).stem for o in outcomes if o.skipped}
    assert skipped == {Path(name).name.split(".")[0] for name in leftovers}
    assert len(outcomes) == 3
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
    _run(tiny_model, files[:1], root, out)  # out/extract.json now records conv5's network
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


# ---------------------------------------------------------------------------------------------
# Long files: streamed from disk in chunks, same outputs as the in-memory path


LONG = {"options": RunOptions(long_seconds=12.0, chunk_seconds=2.5)}  # small threshold and chunks: fast tests
NEVER = {"options": RunOptions(long_seconds=math.inf)}  # the in-memory path, the reference


def write_long(path: Path, seconds: float, rate: int = 22_050, block_seconds: float = 4.0) -> Path:
    """A noisy tone written block by block (never held whole)."""
    rng = np.random.default_rng(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        done, n = 0, int(seconds * rate)
        while done < n:
            k = min(n - done, int(block_seconds * rate))
            t = (done + np.arange(k)) / rate
            f.write((0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(k))
                    .astype(np.float32))
            done += k
    return path


@pytest.fixture
def long_tree(tmp_path):
    """``in/`` with a 16 s file (long for LONG) in a sub-directory and a 2 s one (short)."""
    root = tmp_path / "in"
    return root, [write_long(root / "sub" / "long.wav", 16.0), write_long(root / "short.wav", 2.0)]


@pytest.fixture
def no_whole_decoding(monkeypatch):
    """Make decoding a long file whole fail (short files still decode); ``.undo()`` lifts it."""
    real = decoding_mod.load_audio

    def guarded(path, *args, **kwargs):
        duration = sf.info(str(path)).duration
        limit = kwargs.get("max_seconds")  # load_audio then refuses it from the header alone
        if duration > LONG["options"].long_seconds and not (limit is not None and duration > limit):
            raise AssertionError(f"{path}: a long file was decoded whole")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(decoding_mod, "load_audio", guarded)
    monkeypatch.setattr(audio_mod, "load_audio", guarded)
    return monkeypatch


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == np.float32
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert float(np.abs(actual - expected).max()) <= 1e-4 * scale


def test_long_file_outputs_equal_the_in_memory_outputs(tiny_model, long_tree, tmp_path,
                                                       no_whole_decoding):
    root, files = long_tree
    layers = ["conv1", "pool2", "conv5", "conv7", "conv8"]
    streamed = _run(tiny_model, files, root, tmp_path / "s", layers=layers, **LONG)
    assert [o.path for o in streamed] == [files[1], files[0]]  # short first, then the long
    no_whole_decoding.undo()
    in_memory = {o.path: o for o in _run(tiny_model, files, root, tmp_path / "w", layers=layers,
                                         **NEVER)}
    for s in streamed:
        w = in_memory[s.path]
        assert s.ok and w.ok and len(s.records) == len(w.records) == 6
        for rs, rw in zip(s.records, w.records):
            assert Path(rs.output).relative_to(tmp_path / "s") == \
                Path(rw.output).relative_to(tmp_path / "w")
            assert {**rs.row(), "output": ""} == pytest.approx({**rw.row(), "output": ""})
            _close(np.load(rs.output), np.load(rw.output))
    names = sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*"))
    assert "sub/long.objects.npy" in names and not [n for n in names if ".part" in n]


@pytest.mark.parametrize("pool,width", [("mean", 1), ("max", 1), ("meanmax", 2)])
def test_pooled_long_outputs_equal_pooled_in_memory_outputs(tiny_model, long_tree, tmp_path,
                                                            no_whole_decoding, pool, width):
    root, files = long_tree
    (o,) = _run(tiny_model, files[:1], root, tmp_path / "s", layers=["conv4", "pool5"],
                pool=pool, **LONG)
    no_whole_decoding.undo()
    (ref,) = _run(tiny_model, files[:1], root, tmp_path / "w", layers=["conv4", "pool5"],
                  pool=pool, **NEVER)
    assert o.ok and [r.output for r in o.records] == [
        str(tmp_path / "s" / "sub" / f"long.{n}.{pool}.npy") for n in ("conv4", "pool5")]
    for r, q in zip(o.records, ref.records):
        array = np.load(r.output)
        assert array.shape == (1, width * tiny_model.channels(r.layer)) == (r.frames, r.channels)
        _close(array, np.load(q.output))


def test_long_path_never_decodes_the_whole_file(tiny_model, tmp_path, monkeypatch):
    path = write_long(tmp_path / "long.flac", 14.0, rate=44_100)

    real = decoding_mod.load_audio

    def refuse(source, *args, **kwargs):
        limit = kwargs.get("max_seconds")  # the decoding workers' header check: allowed, since
        if limit is not None and sf.info(str(source)).duration > limit:  # it decodes nothing
            return real(source, *args, **kwargs)
        raise AssertionError("the long path decoded the whole file")

    monkeypatch.setattr(audio_mod, "load_audio", refuse)
    monkeypatch.setattr(decoding_mod, "load_audio", refuse)
    monkeypatch.setattr(sf, "read", refuse)
    for pool in ("none", "meanmax"):
        (o,) = extract_files(tiny_model, [path], ["conv5"], tmp_path / "out", pool=pool, **LONG)
        assert o.ok, o.error
        assert o.duration == pytest.approx(14.0) and o.records[0].tiled_to_seconds == 0.0


def test_long_files_resume_skip_and_overwrite(tiny_model, long_tree, tmp_path, monkeypatch):
    root, files = long_tree
    out = tmp_path / "out"
    first = _run(tiny_model, files[:1], root, out, **LONG)
    target = Path(first[0].records[0].output)
    np.save(target, np.zeros((1, 1), np.float32))  # a marker the rerun must keep

    def no_streaming(*args, **kwargs):
        raise AssertionError("a skipped long file was read")

    monkeypatch.setattr(streaming_mod, "iter_audio_blocks", no_streaming)
    (again,) = _run(tiny_model, files[:1], root, out, **LONG)
    assert again.ok and again.skipped and again.records[0].frames == 1
    assert again.duration == pytest.approx(16.0)
    monkeypatch.undo()
    (more,) = _run(tiny_model, files[:1], root, out, layers=["conv5", "pool5"], **LONG)
    assert [(r.layer, r.skipped) for r in more.records] == [("conv5", True), ("pool5", False)]
    assert np.load(target).shape == (1, 1)
    (redone,) = _run(tiny_model, files[:1], root, out, overwrite=True, **LONG)
    assert not redone.skipped and np.load(target).shape == (redone.records[0].frames,
                                                            redone.records[0].channels)


def test_an_interrupted_long_file_leaves_nothing_and_a_rerun_finishes(tiny_model, long_tree,
                                                                      tmp_path, monkeypatch):
    root, files = long_tree
    out = tmp_path / "out"
    from soundnet_cli.files import NpyStreamWriter

    real_append = NpyStreamWriter.append
    calls = []

    def dying_append(self, rows):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_append(self, rows)

    monkeypatch.setattr(NpyStreamWriter, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_model, files[:1], root, out, **LONG)
    monkeypatch.undo()
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["extract.json"]
    (o,) = _run(tiny_model, files[:1], root, out, **LONG)
    assert o.ok and not o.skipped and np.load(o.records[0].output).shape[0] == o.records[0].frames


def test_long_file_failures_are_reported_per_file(tiny_model, long_tree, tmp_path):
    root, files = long_tree
    other = write_long(root / "other.wav", 13.0)
    out = tmp_path / "out"
    (out / "sub" / "long.conv5.npy").mkdir(parents=True)  # cannot be replaced by a file
    outcomes = {o.path: o for o in _run(tiny_model, [files[0], other], root, out,
                                        overwrite=True, **LONG)}
    assert "long.wav" in outcomes[files[0]].error and "cannot write" in outcomes[files[0]].error
    assert outcomes[other].ok and np.load(outcomes[other].records[0].output).ndim == 2


def test_cli_extract_streams_long_files(tiny_checkpoint, long_tree, tmp_path, no_whole_decoding):
    root, files = long_tree
    runner = CliRunner()
    args = ["extract", str(root), "-r", "-w", str(tiny_checkpoint), "-l", "conv5", "-j", "0"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "s"), "--long-seconds", "12",
                                 "--chunk-seconds", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 file(s) written" in result.stderr
    rows = list(csv.DictReader((tmp_path / "s" / "manifest.csv").read_text().splitlines()))
    row = next(r for r in rows if r["input"] == str(files[0]))
    assert float(row["duration_seconds"]) == pytest.approx(16.0)
    assert int(row["frames"]) == np.load(tmp_path / "s" / "sub" / "long.conv5.npy").shape[0]
    bad = runner.invoke(app, [*args, "-o", str(tmp_path / "x"), "--chunk-seconds", "0"])
    assert bad.exit_code == 2


# -- what made the outputs (out/extract.json) --------------------------------------------------


def test_outputs_of_another_network_are_never_taken_as_done(tiny_model, tree, tmp_path):
    """A rerun with other weights used to skip every file as existing: now it stops first."""
    from helpers import make_tiny_model

    root, files = tree
    out = tmp_path / "out"
    assert all(o.ok for o in _run(tiny_model, files, root, out, layers=["conv5"]))
    record = json.loads((out / "extract.json").read_text())
    assert record["outputs"]["conv5"]["made_by"]["fingerprint"] == tiny_model.fingerprint
    before = {p: p.read_bytes() for p in out.rglob("*.npy")}
    other = make_tiny_model(seed=1)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="conv5 .*fingerprint.*another output folder"):
            _run(other, files, root, out, layers=["conv5"], overwrite=overwrite)
    assert {p: p.read_bytes() for p in out.rglob("*.npy")} == before  # nothing touched
    # The same network resumes as before; a new layer of it is recorded beside the first.
    again = _run(make_tiny_model(seed=0), files, root, out, layers=["conv5", "pool5"])
    assert [o.skipped for o in again] == [False] * 3
    assert {r.layer for o in again for r in o.records if r.skipped} == {"conv5"}
    assert set(json.loads((out / "extract.json").read_text())["outputs"]) == {"conv5", "pool5"}


def test_an_input_scale_or_head_change_is_another_maker(tiny_model, tree, tmp_path):
    import dataclasses

    import torch

    from helpers import make_tiny_model
    from soundnet_cli.model import SoundNet

    root, files = tree
    out = tmp_path / "out"
    _run(tiny_model, files[:1], root, out, layers=["conv5", "objects"])
    louder = SoundNet(dataclasses.replace(tiny_model.config, input_scale=512.0))
    louder.load_state_dict(tiny_model.state_dict())
    louder.eval()
    with pytest.raises(OutputError, match="conv5"):
        _run(louder, files[:1], root, out, layers=["conv5"])
    new_head = make_tiny_model()
    with torch.no_grad():
        new_head.heads["objects"].weight.mul_(2)
    (ok,) = _run(new_head, files[:1], root, out, layers=["conv5"])  # the trunk is the same
    assert ok.skipped
    with pytest.raises(OutputError, match="objects .*head"):
        _run(new_head, files[:1], root, out, layers=["objects"])


def test_unrecorded_outputs_need_overwrite(tiny_model, tree, tmp_path):
    root, files = tree
    out = tmp_path / "out"
    _run(tiny_model, files, root, out)
    (out / "extract.json").unlink()  # as an older soundnet-cli left them
    with pytest.raises(OutputError, match="3 existing conv5 output.*not listed.*--overwrite"):
        _run(tiny_model, files, root, out)
    redone = _run(tiny_model, files, root, out, overwrite=True)
    assert all(o.ok and not o.skipped for o in redone)
    assert [o.skipped for o in _run(tiny_model, files, root, out)] == [True] * 3


def test_an_output_never_overwrites_an_input(tiny_model, write_audio, tmp_path):
    clip = write_audio("x/b.wav", 1.0)
    trap = tmp_path / "x" / "b.conv5.npy"  # named directly as an input, it is b.wav's output
    trap.write_bytes(b"precious")
    outcomes = {o.path: o for o in extract_files(tiny_model, [trap, clip], ["conv5"],
                                                 tmp_path / "x")}
    assert "would overwrite an input" in outcomes[clip].error
    assert trap.read_bytes() == b"precious"
