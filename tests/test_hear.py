"""The HEAR API (soundnet_cli.hear): hear-validator when installed, its checks, and the numbers."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import soundnet_cli
from soundnet_cli import hear
from soundnet_cli.errors import AudioError, SoundNetError, WeightsError


@pytest.fixture
def model(tiny_checkpoint: Path) -> hear.HearModel:
    return hear.load_model(str(tiny_checkpoint))


def test_hear_validator(tiny_checkpoint, capsys, monkeypatch):
    """The official validator (``pip install hearvalidator``), when it is installed. It imports
    TensorFlow, which this project does not pull in; without it, a stand-in module lets the
    validator's PyTorch branch (the only one a torch model takes) run unchanged."""
    if importlib.util.find_spec("hearvalidator") is None:
        reason = ("hear-validator is not installed (pip install hearvalidator; it requires "
                  "tensorflow); the test_validator_checks_* tests run its checks")
        with capsys.disabled():
            print(f"\nSKIP hear-validator: {reason}", file=sys.stderr)
        pytest.skip(reason)
    if importlib.util.find_spec("tensorflow") is None:
        stand_in = types.ModuleType("tensorflow")
        stand_in.Module = type("Module", (), {})  # nothing here is a TensorFlow module
        monkeypatch.setitem(sys.modules, "tensorflow", stand_in)
    from hearvalidator.validate import ValidateModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ValidateModel("soundnet_cli.hear", str(tiny_checkpoint), "cpu")()
    printed = capsys.readouterr().out
    assert "Checking get_scene_embeddings" in printed
    with capsys.disabled():
        print("\nhear-validator passed; its warnings: "
              + "; ".join(" ".join(str(w.message).split())[:80] for w in caught), file=sys.stderr)


@pytest.mark.parametrize("length", [1.07, 1.98, 4.0])
def test_validator_checks_timestamp_embeddings(model, length):
    """hear-validator's checks of get_timestamp_embeddings, as errors (its warnings too)."""
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate in (16_000, 22_050, 44_100, 48_000)
    assert isinstance(model.scene_embedding_size, int)
    assert isinstance(model.timestamp_embedding_size, int)
    audio = torch.rand((2, int(length * model.sample_rate))) * 2 - 1.0
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and emb.ndim == 3 and ts.ndim == 2
    assert emb.shape[0] == 2 and emb.shape[:2] == ts.shape
    assert emb.shape[2] == model.timestamp_embedding_size
    t = ts.numpy()
    diff = np.diff(t)
    avg = diff.mean()
    assert np.max(np.abs(diff - avg)) <= 1.0  # regular, to 1 ms
    assert np.all(t[:, 0] == t[0, 0])  # the same for every sound
    assert t.min() <= avg  # starts at the start
    assert t.max() >= 1000 * length - avg  # ends at the end (the validator errs at 2 hops)
    assert t.max() <= 1000 * length
    np.testing.assert_allclose(avg, 2048 / 22.05, rtol=1e-5)  # conv5's hop in ms


def test_validator_checks_scene_embeddings(model):
    audio = torch.rand((4, int(2.74 * model.sample_rate))) * 2 - 1.0
    emb = hear.get_scene_embeddings(audio, model)
    assert emb.dtype == torch.float32 and emb.shape == (4, model.scene_embedding_size)
    assert model.scene_embedding_size == 2 * model.timestamp_embedding_size  # conv5 mean + max


def test_timestamp_embeddings_are_the_api_frames(model, tiny_checkpoint):
    net = soundnet_cli.load(tiny_checkpoint, "cpu")
    sounds = torch.rand((3, 40_000)) * 1.6 - 0.8
    emb, ts = hear.get_timestamp_embeddings(sounds, model)
    for i in range(3):
        frames, seconds = net.embed(sounds[i].numpy(), 22_050, layer="conv5")
        inside = (seconds >= 0) & (seconds <= 40_000 / 22_050)
        np.testing.assert_array_equal(emb[i].numpy(), frames[inside])
        np.testing.assert_allclose(ts[i].numpy(), 1000 * seconds[inside], rtol=1e-6)


def test_scene_embeddings_are_extract_meanmax(model, tiny_checkpoint, run, tmp_path):
    sound = (np.random.default_rng(0).random(50_000, dtype=np.float32) - 0.5) * 0.8
    sf.write(str(tmp_path / "s.wav"), sound, 22_050, subtype="FLOAT")
    result = run("extract", tmp_path / "s.wav", "--weights", tiny_checkpoint, "--layer", "conv5",
                 "--pool", "meanmax", "--out", tmp_path / "f", "-q")
    assert result.exit_code == 0, result.output
    cli = np.load(tmp_path / "f" / "s.conv5.meanmax.npy")
    emb = hear.get_scene_embeddings(torch.from_numpy(sound)[None], model)
    np.testing.assert_array_equal(emb.numpy(), cli)


def test_short_and_bad_audio(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb, ts = hear.get_timestamp_embeddings(torch.zeros(2, 200), model)
    assert emb.shape == (2, 1, model.timestamp_embedding_size) and 0 <= ts[0, 0] <= 200 / 22.05
    assert hear.get_scene_embeddings(torch.zeros(1, 50), model).shape == (1, 2 * emb.shape[2])
    with pytest.raises(AudioError, match="n_sounds"):
        hear.get_scene_embeddings(torch.zeros(100), model)
    with pytest.raises(AudioError, match="NaN"):
        hear.get_scene_embeddings(torch.full((1, 5000), float("nan")), model)
    with pytest.raises(AudioError, match="empty"):
        hear.get_timestamp_embeddings(torch.zeros(1, 0), model)


def test_load_model_options_and_errors(tiny_checkpoint, tmp_path):
    m = hear.load_model(tiny_checkpoint, timestamp_layer="conv4", scene_layer="pool5",
                        scene_pool="mean")
    assert m.timestamp_embedding_size == m.network.channels("conv4")
    assert m.scene_embedding_size == m.network.channels("pool5")
    emb, ts = hear.get_timestamp_embeddings(torch.zeros(1, 22_050), m)
    np.testing.assert_allclose(np.diff(ts.numpy()).mean(), 1024 / 22.05, rtol=1e-5)
    with pytest.raises(WeightsError):
        hear.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(SoundNetError, match="scene_pool"):
        hear.load_model(tiny_checkpoint, scene_pool="none")
