"""Starting a run over files (soundnet_cli.runtime.run), shard status as a context manager, and
long files streamed into a sink by the runtime (soundnet_cli.runtime.batch.stream_into)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from soundnet_cli.errors import WeightsError
from soundnet_cli.files import NpySink
from soundnet_cli.runtime.batch import stream_into
from soundnet_cli.runtime import RunOptions
from soundnet_cli.runtime.run import find_inputs, start_run
from soundnet_cli.runtime import stream_to_npy
from soundnet_cli.shards import Shard
from soundnet_cli.shards import ShardStatus


def test_start_run_lists_starts_and_loads(tiny_checkpoint, write_audio, tmp_path):
    a, b = write_audio("d/a.wav", 0.5), write_audio("d/sub/b.wav", 0.5)
    notes: list[str] = []
    run = start_run([tmp_path / "d", tmp_path / "gone.wav"], recursive=True,
                    weights=tiny_checkpoint, device="cpu", workers=0, say=notes.append)
    assert run.files == [a, b] and run.roots == [tmp_path / "d"] and run.shard is None
    assert [str(p) for p, _ in run.problems] == [str(tmp_path / "gone.wav")]
    assert run.failures() == [(str(tmp_path / "gone.wav"), run.problems[0][1])]
    assert run.network.source and str(run.options.device) == "cpu"
    assert run.options.workers == 0 and run.decoder is None and notes == []  # no shard: no note
    with pytest.raises(WeightsError, match=r"^start_run\("):
        start_run([a], weights=tmp_path / "absent.safetensors", device="cpu")


def test_nothing_found_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    assert find_inputs([tmp_path / "empty"]).failures() == [
        ("", f"no audio files found in {tmp_path / 'empty'}")]
    assert find_inputs([]).failures("list.txt") == [
        ("", "--files-from list.txt: the list is empty")]


def test_shards_take_every_input_once(write_audio, tmp_path):
    files = [write_audio(f"d/{i}.wav", 0.2) for i in range(5)]
    shares = [find_inputs([tmp_path / "d"], shard=Shard(i, 2)) for i in range(2)]
    assert sorted(p for s in shares for p in s.files) == sorted(files)
    assert all(s.total == 5 and len(s.everyone) == 5 for s in shares)
    assert shares[1].note == "shard 1/2: 2 of 5 input(s)"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_shard_status_is_a_context_manager(tmp_path):
    shard = Shard(0, 2)
    with ShardStatus(tmp_path, shard, "extract", {}, ["a.wav", "b.wav"], 4) as status:
        assert [e.get("outcome") for e in _lines(status.path)[1:]] == ["pending", "pending"]
        status.record_failures([("b.wav", "b.wav: broken"), ("", "not an input")])
        status.record("a.wav", "ok")
    assert _lines(status.path)[-1] == {"finished": True, "ok": 1, "skipped": 0, "failed": 1}
    with pytest.raises(KeyboardInterrupt):
        with ShardStatus(tmp_path, shard, "extract", {}, ["a.wav"], 4) as status:
            raise KeyboardInterrupt
    assert "finished" not in _lines(status.path)[-1]
    with ShardStatus(tmp_path, shard, "extract", {}, ["a.wav"], 4) as status:
        status.record("a.wav", "ok")
        status.unfinished()  # e.g. its manifest could not be written
    assert _lines(status.path)[-1] == {"input": "a.wav", "outcome": "ok"}


def test_stream_into_a_sink_writes_what_stream_to_npy_writes(tiny_model, write_audio, tmp_path):
    path = write_audio("long.wav", 6.0)
    layers = ["conv3", "conv5"]
    expected = stream_to_npy(tiny_model, path, {n: tmp_path / f"e.{n}.npy" for n in layers},
                             chunk_seconds=1.5)
    sink = NpySink({n: tmp_path / f"s.{n}.npy" for n in layers},
                   {n: tiny_model.channels(n) for n in layers})
    report = stream_into(tiny_model, path, layers, sink, options=RunOptions(chunk_seconds=1.5))
    assert report.error is None and sink.shapes == expected
    for n in layers:
        assert (tmp_path / f"s.{n}.npy").read_bytes() == (tmp_path / f"e.{n}.npy").read_bytes()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    failed = NpySink({"conv3": tmp_path / "x.conv3.npy"}, {"conv3": tiny_model.channels("conv3")})
    report = stream_into(tiny_model, broken, ["conv3"], failed)
    assert report.error and "broken.wav" in report.error  # reported, not raised
    assert not (tmp_path / "x.conv3.npy").exists()
    assert not list(tmp_path.glob("*.part"))
    assert np.load(tmp_path / "s.conv5.npy").shape == expected["conv5"]
