"""The checkpoint format and weight resolution (soundnet_cli.weights.checkpoint, soundnet_cli.weights.registry)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from soundnet_cli.weights import registry as weights
from soundnet_cli.weights.checkpoint import (FORMAT_VERSION, file_sha256, load_checkpoint,
                                     load_model_file, save_checkpoint, weights_fingerprint)
from soundnet_cli.errors import WeightsError

from helpers import synth


def _outputs(model, seconds: float = 10.0) -> dict[str, torch.Tensor]:
    wave = torch.from_numpy(synth(seconds, kind="noise")[:, 0])[None]
    with torch.inference_mode():
        return model.features(wave, ["pool5", "conv8"])


def test_round_trip_is_exact(tmp_path, tiny_model):
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors", provenance={"data": "none"})
    ckpt = load_checkpoint(path)
    assert ckpt.config == tiny_model.config
    assert ckpt.provenance == {"data": "none"}
    assert ckpt.sha256 == file_sha256(path)
    model = ckpt.build()
    assert not model.training
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.fingerprint == weights_fingerprint(tiny_model)
    for name, t in _outputs(model).items():
        assert torch.equal(t, _outputs(tiny_model)[name])


def test_half_precision_is_smaller_and_close(tmp_path, tiny_model):
    full = save_checkpoint(tiny_model, tmp_path / "f.safetensors")
    half = save_checkpoint(tiny_model, tmp_path / "h.safetensors", half=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    ckpt = load_checkpoint(half)
    assert ckpt.state_dict["trunk.conv1.conv.weight"].dtype == torch.float16
    assert ckpt.state_dict["trunk.conv1.bn.running_var"].dtype == torch.float32
    model = ckpt.build()
    assert next(model.parameters()).dtype == torch.float32
    ref, got = _outputs(tiny_model), _outputs(model)
    for name in ref:
        scale = float(ref[name].abs().max())
        assert float((got[name] - ref[name]).abs().max()) <= 2e-3 * scale, name


def test_refuses_plain_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(WeightsError, match="without a soundnet-cli header"):
        load_checkpoint(path)


def test_refuses_newer_format_version(tmp_path, tiny_model):
    path = tmp_path / "future.safetensors"
    tensors = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    save_file(tensors, str(path), metadata={
        "format": "soundnet-cli", "format_version": str(FORMAT_VERSION + 1),
        "config": tiny_model.config.to_json(), "provenance": "{}"})
    with pytest.raises(WeightsError, match="newer than this soundnet-cli"):
        load_checkpoint(path)


def test_refuses_malformed_config(tmp_path, tiny_model):
    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={
        "format": "soundnet-cli", "format_version": str(FORMAT_VERSION),
        "config": json.dumps({"arch": "soundnet8"}), "provenance": "{}"})
    with pytest.raises(WeightsError, match="malformed"):
        load_checkpoint(path)


def test_refuses_tensors_that_do_not_fit_the_config(tmp_path, tiny_model):
    path = tmp_path / "mismatch.safetensors"
    tensors = {k: v.contiguous() for k, v in tiny_model.state_dict().items()
               if not k.startswith("heads.")}
    save_file(tensors, str(path), metadata={
        "format": "soundnet-cli", "format_version": str(FORMAT_VERSION),
        "config": tiny_model.config.to_json(), "provenance": "{}"})
    with pytest.raises(WeightsError, match="do not match its config"):
        load_model_file(path)


class _Payload:
    """Unpickling this runs ``Path.touch(marker)``: proof that code was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_pickle_named_safetensors_is_refused_without_executing(tmp_path, writer):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    else:
        torch.save({"state_dict": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="evil.safetensors: not a soundnet-cli checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "none.safetensors")


def test_resolve_weights_paths_names_and_default(tmp_path, tiny_checkpoint, monkeypatch):
    assert weights.resolve_weights(tiny_checkpoint) == tiny_checkpoint
    home = tmp_path / "home"
    home.mkdir()
    (home / "mine.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    monkeypatch.setenv("SOUNDNET_HOME", str(home))
    assert weights.resolve_weights("mine") == home / "mine.safetensors"
    with pytest.raises(WeightsError, match="no network named 'other'"):
        weights.resolve_weights("other")
    with pytest.raises(WeightsError, match="is a directory"):
        weights.resolve_weights(tmp_path)
    monkeypatch.setattr(weights, "DEFAULT_WEIGHTS_FILE", "absent.safetensors")
    with pytest.raises(WeightsError, match="no embedded default network"):
        weights.resolve_weights(None)


def test_load_model_places_an_eval_model_on_the_device(tiny_checkpoint):
    model = weights.load_model(tiny_checkpoint, "cpu")
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"


def test_fingerprint_follows_the_weights(tiny_model, tmp_path):
    """A network changed after loading (fine-tuned, new weights) reports its own fingerprint,
    never its starting checkpoint's; unchanged weights give the same one after a save/load."""
    path = save_checkpoint(tiny_model, tmp_path / "m.safetensors")
    model = load_model_file(path)
    start = model.fingerprint
    assert start == weights_fingerprint(tiny_model) and model.source == str(path)
    with torch.no_grad():
        next(model.trunk.parameters()).add_(0.5)  # an optimiser step does the same, in place
    tuned = model.fingerprint
    assert tuned != start and tuned == weights_fingerprint(model)
    model.load_state_dict(tiny_model.state_dict())
    assert model.fingerprint == start
    assert load_model_file(save_checkpoint(model, tmp_path / "n.safetensors")).fingerprint == start


def test_loading_a_checkpoint_does_not_import_dynamo(tiny_checkpoint):
    # The shape check once initialised meta tensors, whose first use imports torch._dynamo:
    # seconds of every command's start-up. A fresh process, so no other test has imported it.
    code = ("import sys; from soundnet_cli.weights.checkpoint import load_model_file; "
            f"load_model_file({str(tiny_checkpoint)!r}); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
