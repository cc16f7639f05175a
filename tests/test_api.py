"""The Python API (soundnet_cli.api): arrays, files and the CLI give the same numbers and errors."""

from __future__ import annotations

import dataclasses

import csv
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import soundnet_cli
from helpers import synth
from soundnet_cli.api import Network
from soundnet_cli.errors import AudioError, LayerError, SoundNetError, UsageError
from soundnet_cli.runtime import RunOptions
from soundnet_cli.tagging import CSV_COLUMNS


@pytest.fixture
def net(tiny_checkpoint: Path) -> Network:
    return soundnet_cli.load(tiny_checkpoint, "cpu")


def _float_wav(path: Path, data: np.ndarray, rate: int) -> Path:
    """A 32-bit float WAV holding exactly ``data``: decoding it gives the array's samples."""
    sf.write(str(path), data, rate, subtype="FLOAT")
    return path


@pytest.mark.parametrize("rate,channels,seconds", [(22_050, 1, 3.0), (44_100, 2, 2.5),
                                                    (8_000, 1, 0.4)])
def test_embed_array_file_and_cli_identical(net, run, tiny_checkpoint, tmp_path, rate, channels,
                                            seconds):
    x = synth(seconds, rate, "noise", channels=channels, seed=3)
    path = _float_wav(tmp_path / "clip.wav", x, rate)
    emb, t = net.embed(x if channels > 1 else x[:, 0], sr=rate)
    from_file, t_file = net.embed(path)
    from_tensor, _ = net.embed(torch.from_numpy(x), sr=rate)
    result = run("extract", path, "--weights", tiny_checkpoint, "--out", tmp_path / "f", "-q")
    assert result.exit_code == 0, result.output
    from_cli = np.load(tmp_path / "f" / "clip.pool5.npy")
    assert emb.dtype == np.float32 and emb.shape == from_cli.shape
    assert emb.shape[1] == net.model.channels("pool5")
    np.testing.assert_array_equal(emb, from_file)
    np.testing.assert_array_equal(emb, from_tensor)
    np.testing.assert_array_equal(emb, from_cli)
    np.testing.assert_array_equal(t, t_file)
    g = net.model.geometry("pool5")
    expected = (g.first_sample + np.arange(emb.shape[0]) * g.hop + g.receptive_field / 2) / 22_050
    np.testing.assert_allclose(t, expected)


def test_embed_other_layers_and_module_numbers(net):
    x = synth(2.0, 22_050, "tone")[:, 0]
    conv5, _ = net.embed(x, 22_050, layer="conv5")
    by_number, _ = net.embed(x, 22_050, layer=18)  # the original's module 18 is pool5
    pool5, _ = net.embed(x, 22_050)
    assert conv5.shape[1] == net.model.channels("conv5")
    np.testing.assert_array_equal(by_number, pool5)
    with pytest.raises(LayerError, match="conv5"):
        net.embed(x, 22_050, layer="conv99")


def test_long_arrays_stream_like_long_files(tiny_model, tmp_path):
    """Past ``long_seconds`` an array is streamed in the chunks a file of it is read in: the
    same frames as the file, and the whole-array frames to float rounding."""
    x = synth(5.0, 22_050, "noise", seed=1)[:, 0]
    path = _float_wav(tmp_path / "long.wav", x, 22_050)
    streaming = Network(tiny_model, RunOptions(long_seconds=2.0, chunk_seconds=0.7))
    whole = Network(tiny_model)
    a, _ = streaming.embed(x, 22_050, layer="conv7")
    f, _ = streaming.embed(path, layer="conv7")
    w, _ = whole.embed(x, 22_050, layer="conv7")
    np.testing.assert_array_equal(a, f)
    np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


def _cli_csv(run, *args) -> list[dict[str, str]]:
    result = run("tag", *args, "--csv", "-q")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_tag_array_file_and_cli_identical(net, run, tiny_checkpoint, tmp_path):
    x = synth(6.0, 44_100, "clicks", channels=2)
    path = _float_wav(tmp_path / "clicks.wav", x, 44_100)
    options = dict(min_conf=0.05, top_k=3, segments=True)
    from_array = net.tag(x, sr=44_100, **options)
    from_file = net.tag(path, **options)
    cli = _cli_csv(run, path, "--weights", tiny_checkpoint, "--min-conf", "0.05", "-k", "3",
                   "--segments")
    assert len(from_array) == 1 and from_array[0].path == Path("<array>")
    np.testing.assert_array_equal(from_array[0].head("objects").scores,
                                  from_file[0].head("objects").scores)
    rows_a, rows_f = from_array.rows(), from_file.rows()
    assert [{**r, "path": ""} for r in rows_a] == [{**r, "path": ""} for r in rows_f]
    as_text = [{k: str(v) for k, v in r.items()} for r in rows_f]
    assert as_text == cli
    assert any(r["scope"] == "step" for r in cli) and any(r["scope"] == "event" for r in cli)


def test_tables_have_the_csv_columns_and_values(net, run, tiny_checkpoint, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    paths = [_float_wav(tmp_path / f"{i}.wav", synth(2.0 + i, 22_050, "noise", seed=i), 22_050)
             for i in range(2)]
    results = net.tag([str(p) for p in paths], min_conf=0.0, top_k=2)
    frame = results.to_pandas()
    table = results.to_arrow()
    cli = pd.read_csv(io.StringIO(run("tag", *paths, "--weights", tiny_checkpoint, "--csv",
                                      "--min-conf", "0", "-k", "2", "-q").stdout))
    assert tuple(frame.columns) == CSV_COLUMNS == tuple(table.column_names) == tuple(cli.columns)
    assert len(frame) == len(cli) == table.num_rows
    assert (frame["scope"] == "clip").sum() == 2 * 2 * 2  # files x heads x top-k
    for col in ("path", "head", "scope", "label"):
        assert frame[col].tolist() == cli[col].tolist() == table.column(col).to_pylist()
    for col in ("start", "end", "score", "rank", "index"):
        np.testing.assert_array_equal(frame[col].to_numpy(dtype=float),
                                      cli[col].to_numpy(dtype=float))
    assert frame["step"].isna().all() and table.column("step").null_count == len(frame)


def test_list_of_arrays_and_class_filter(net):
    clips = [synth(1.0, 16_000, "tone", freq=f)[:, 0] for f in (300.0, 3000.0)]
    results = net.tag(clips, sr=16_000, min_conf=0.0, classes=["obj1", "scene2"])
    assert [str(r.path) for r in results] == ["<array 0>", "<array 1>"]
    assert {r["label"] for r in results.rows()} <= {"obj1", "scene2"}
    same = net.tag(clips, sr=16_000, min_conf=0.0, classes="obj1,scene2")
    assert same.rows() == results.rows()


def test_tag_files_writes_what_tag_out_writes(net, run, tiny_checkpoint, tmp_path):
    src = tmp_path / "in"
    for i, rel in enumerate(["c0.wav", "sub/c1.wav", "sub/deeper/c2.wav"]):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        _float_wav(src / rel, synth(1.5 + i, 22_050, "noise", seed=i), 22_050)
    (src / "broken.wav").write_bytes(b"RIFF not really")
    cli = run("tag", src, "--weights", tiny_checkpoint, "--recursive", "--out", tmp_path / "cli",
              "-f", "jsonl,csv,raven,audacity", "--min-conf", "0.1", "-q")
    assert cli.exit_code == 1  # the broken file
    done = soundnet_cli.tag_files([src], out=tmp_path / "api", weights=tiny_checkpoint,
                                  device="cpu", recursive=True,
                                  formats=["jsonl", "csv", "raven", "audacity"], min_conf=0.1)
    assert done.tagged == 3 and done.skipped == 0 and not done.ok
    assert [p for p, _ in done.failures] == [str(src / "broken.wav")]
    a = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*") if p.is_file())
    b = sorted(p.relative_to(tmp_path / "api") for p in (tmp_path / "api").rglob("*") if p.is_file())
    assert a == b and len(a) > 10
    for rel in a:
        left, right = (tmp_path / "cli" / rel).read_bytes(), (tmp_path / "api" / rel).read_bytes()
        if rel.name == "run.json":
            left_doc, right_doc = json.loads(left), json.loads(right)
            assert left_doc.pop("out_dir") != right_doc.pop("out_dir")
            assert left_doc == right_doc
        else:
            assert left == right, rel
    again = soundnet_cli.tag_files([src], out=tmp_path / "api", weights=tiny_checkpoint,
                                   device="cpu", recursive=True, min_conf=0.1,
                                   formats="jsonl,csv,raven,audacity")
    assert again.skipped == 3 and again.tagged == 0


def test_errors_are_the_clis(net, run, tiny_checkpoint, tmp_path):
    with pytest.raises(AudioError, match="empty audio"):
        net.embed(np.zeros(0, np.float32), 22_050)
    with pytest.raises(AudioError, match="NaN or infinite"):
        net.embed(np.full(4000, np.nan, np.float32), 22_050)
    with pytest.raises(AudioError, match="expected"):
        net.embed(np.zeros((2, 2, 2), np.float32), 22_050)
    with pytest.raises(AudioError, match="transpose"):
        net.embed(np.zeros((2, 44_100), np.float32), 44_100)  # (channels, samples)
    with pytest.raises(AudioError, match="sample rate"):
        net.embed(np.zeros(4000, np.float32), 22_050.5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="sr"):
        net.embed(np.zeros(4000, np.float32))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    with pytest.raises(AudioError) as raised:
        net.embed(broken)
    cli = run("extract", broken, "--weights", tiny_checkpoint, "--out", tmp_path / "f")
    assert cli.exit_code == 1 and str(raised.value) in " ".join(cli.output.split())
    (failed,) = net.tag(broken)
    assert failed.error == str(raised.value)
    with pytest.raises(SoundNetError, match="broken.wav"):
        net.tag(broken).raise_failures()
    with pytest.raises(SoundNetError, match="unknown label"):
        net.tag(np.zeros(4000, np.float32) + 0.1, 22_050, classes=["no-such-label"])
    with pytest.raises(UsageError, match="sr="):
        net.tag(broken, sr=22_050)
    with pytest.raises(SoundNetError, match="unknown"):
        soundnet_cli.tag_files([broken], out=tmp_path / "o", weights=tiny_checkpoint,
                               formats="xml")


def test_silence_warns_in_the_result_not_the_console(net):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (result,) = net.tag(np.zeros(30_000, np.float32), 22_050)
    assert any("silent" in w for w in result.warnings)
    assert any("tiled" in w for w in result.warnings)


def test_network_properties(net):
    assert net.sample_rate == 22_050 and net.device.type == "cpu"
    assert "pool5" in net.layers and set(net.labels) == {"objects", "scenes"}
    assert repr(net).startswith("Network(") and "objects: 7" in repr(net) and "\n" not in repr(net)


class _ScaledScorer:
    """A plug-in scorer that needs the network at another input scale (as an SVM fit at 512)."""

    name, layer, min_samples, labels = "lin", "conv1", 0, ("a", "b")

    def __init__(self, input_scale: float | None) -> None:
        self.input_scale = input_scale

    def score(self, activations, geometry, sample_rate):
        from soundnet_cli.tagging import HeadScores

        total = activations.sum(axis=1, keepdims=True)  # every channel, some may be all zero
        return HeadScores(self.name, self.labels, np.hstack([total, -total]).astype(np.float32),
                          False, **dataclasses.asdict(geometry.seconds(sample_rate)))


def test_scorers_at_another_input_scale_see_arrays_as_files(net, tmp_path):
    x = synth(2.0, 22_050, "noise", seed=7)[:, 0]
    path = _float_wav(tmp_path / "n.wav", x, 22_050)
    at_512 = [_ScaledScorer(512.0)]
    from_array = net.tag(x, 22_050, scorers=at_512)[0].head("lin").scores
    from_file = net.tag(path, scorers=at_512)[0].head("lin").scores
    own = net.tag(x, 22_050, scorers=[_ScaledScorer(None)])[0].head("lin").scores
    np.testing.assert_array_equal(from_array, from_file)
    assert not np.array_equal(from_array, own)  # the scale was applied
