"""``soundnet weights export``: ONNX and TorchScript graphs that compute what PyTorch computes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import soundnet_cli
from helpers import synth
from soundnet_cli.errors import SoundNetError
from soundnet_cli.weights import export as export_mod
from soundnet_cli.weights import export_network

WINDOW = 10.0
SAMPLES = int(WINDOW * 22_050)


def _reference(model, x: np.ndarray, layers: list[str]) -> list[np.ndarray]:
    with torch.no_grad():
        feats = model.features(torch.from_numpy(x), layers)
    return [feats[n].numpy() for n in layers]


def test_onnx_export_runs_in_onnxruntime(run, tiny_checkpoint, tiny_model, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    real = tmp_path / "real.wav"
    sf.write(str(real), synth(3.0, 44_100, "clicks", channels=2), 44_100)
    out = tmp_path / "net.onnx"
    result = run("weights", "export", tiny_checkpoint, "--format", "onnx", "--out", out,
                 "--layers", "pool5,objects", "-l", "scenes", "--check-audio", real)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "on random input: max |difference|" in text and "on real.wav input" in text
    assert f"{out}\tsha256:" in result.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["pool5", "objects", "scenes"]
    x = (np.random.default_rng(5).standard_normal((2, SAMPLES)) * 0.2).astype(np.float32)
    got = session.run(None, {"waveform": x})
    for g, r in zip(got, _reference(tiny_model, x, ["pool5", "objects", "scenes"])):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5 * float(np.abs(r).max()))
    # the same frames the CLI's engine gives for this window
    net = soundnet_cli.Network(tiny_model)
    frames, _ = net.embed(x[0], 22_050, layer="pool5")
    np.testing.assert_allclose(got[0][0].T, frames, rtol=1e-4, atol=1e-5 * float(frames.max()))
    meta = json.loads(session.get_modelmeta().custom_metadata_map["soundnet"])
    assert meta["fingerprint"] == tiny_model.fingerprint
    assert meta["input"]["shape"] == ["batch", SAMPLES]
    assert [o["name"] for o in meta["outputs"]] == ["pool5", "objects", "scenes"]
    assert meta["outputs"][1]["labels"] == [f"obj{i}" for i in range(7)]
    assert meta["outputs"][0]["hop"] == 8192


def test_torchscript_export(tiny_model, tmp_path):
    out = tmp_path / "net.pt"
    result = export_network(tiny_model, out, "torchscript", seconds=3.0, layers=["conv5", 18])
    frames = {n: tiny_model.geometry(n).frames(66_150) for n in ("conv5", "pool5")}
    assert result.layers == {"conv5": (16, frames["conv5"]), "pool5": (16, frames["pool5"])}
    assert result.samples == 66_150 and frames["pool5"] == frames["conv5"] // 4
    assert [c.input for c in result.checks] == ["random", "chirp"]
    assert all(c.relative < 1e-5 for c in result.checks)
    extra = {"soundnet.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["soundnet.json"])["outputs"][1]["name"] == "pool5"
    x = (np.random.default_rng(1).uniform(-0.5, 0.5, (3, 66_150))).astype(np.float32)
    got = [t.numpy() for t in loaded(torch.from_numpy(x))]
    for g, r in zip(got, _reference(tiny_model, x, ["conv5", "pool5"])):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6 * float(np.abs(r).max()))


def test_export_errors(run, tiny_checkpoint, tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "x.onnx"
    short = run("weights", "export", tiny_checkpoint, "-f", "onnx", "-o", out, "--seconds", "5")
    assert short.exit_code == 2 and "too short for layer objects" in short.output
    unknown = run("weights", "export", tiny_checkpoint, "-f", "torchscript", "-o", out,
                  "--layers", "conv99")
    assert unknown.exit_code == 2 and "valid: conv1" in " ".join(unknown.output.split())
    assert not list(tmp_path.glob("x.onnx*"))
    out.write_text("keep me")
    exists = run("weights", "export", tiny_checkpoint, "-f", "onnx", "-o", out)
    assert exists.exit_code == 1 and "--overwrite" in exists.output
    assert out.read_text() == "keep me"
    monkeypatch.setattr(export_mod, "MAX_RELATIVE_DIFFERENCE", -1.0)  # every check now fails
    with pytest.raises(SoundNetError, match="differs from PyTorch on random input"):
        export_network(tiny_model, tmp_path / "y.pt", "torchscript", seconds=2.0,
                       layers=["conv5"])
    assert not list(tmp_path.glob("y.pt*"))
    with pytest.raises(SoundNetError, match="unknown export format"):
        export_network(tiny_model, tmp_path / "z", "tflite")
