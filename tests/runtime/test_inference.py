"""Batch inference over files (soundnet_cli.runtime.batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundnet_cli.audio import load_audio
from soundnet_cli.runtime.batch import iter_activations, required_samples
from soundnet_cli.audio import tile
from soundnet_cli.runtime import RunOptions


@pytest.fixture
def clips(write_audio, tmp_path):
    """Mixed lengths, rates and channel counts, one silent file and one that is not audio."""
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    return [
        write_audio("a.wav", 1.0, kind="noise"),
        write_audio("b.flac", 2.0, rate=44_100, channels=2),
        bad,
        write_audio("c.wav", 1.0, kind="clicks"),
        write_audio("quiet.wav", 0.5, rate=8_000, kind="silence"),
        write_audio("d.ogg", 1.5, rate=48_000, kind="noise", seed=3),
    ]


def _direct(model, path, layer):
    wave = torch.from_numpy(load_audio(path))[None]
    with torch.inference_mode():
        return model.features(wave, [layer])[layer][0].T.numpy()


@pytest.mark.filterwarnings("ignore::soundnet_cli.audio.SilentAudioWarning")
def test_results_in_input_order_and_equal_to_a_direct_forward(tiny_model, clips):
    results = list(iter_activations(tiny_model, clips, ["conv5", 18], options=RunOptions(batch_size=3)))
    assert [r.path for r in results] == clips
    assert [r.ok for r in results] == [True, True, False, True, True, True]
    assert "bad.wav: cannot decode" in results[2].error and results[2].activations is None
    for r in results:
        if not r.ok:
            continue
        assert set(r.activations) == {"conv5", "pool5"}
        a = r.activations["conv5"]
        assert a.dtype == np.float32 and a.shape[1] == tiny_model.channels("conv5")
        np.testing.assert_allclose(a, _direct(tiny_model, r.path, "conv5"), rtol=1e-4, atol=1e-4)
        assert r.duration == pytest.approx(load_audio(r.path).shape[0] / 22_050)
        assert r.tiled_to == 0.0


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_batch_size_does_not_change_outputs(tiny_model, clips, batch_size):
    ref = list(iter_activations(tiny_model, clips, ["conv4"], options=RunOptions(batch_size=4)))
    got = list(iter_activations(tiny_model, clips, ["conv4"], options=RunOptions(batch_size=batch_size)))
    for r, g in zip(ref, got):
        assert r.ok == g.ok
        if r.ok:
            np.testing.assert_allclose(g.activations["conv4"], r.activations["conv4"],
                                       rtol=1e-5, atol=1e-5)


def test_worker_processes_give_the_same_results(tiny_model, clips):
    ref = list(iter_activations(tiny_model, clips, ["pool5"], options=RunOptions(workers=0)))
    got = list(iter_activations(tiny_model, clips, ["pool5"], options=RunOptions(workers=2, batch_size=2)))
    assert [g.path for g in got] == clips
    for r, g in zip(ref, got):
        assert (r.ok, r.error, r.warnings) == (g.ok, g.error, g.warnings)
        if r.ok:
            np.testing.assert_array_equal(g.activations["pool5"], r.activations["pool5"])


def test_silence_is_a_warning_not_a_failure(tiny_model, clips):
    results = {r.path.name: r for r in iter_activations(tiny_model, clips, ["conv1"])}
    assert results["quiet.wav"].ok
    assert any("quiet.wav: audio is silent" in w for w in results["quiet.wav"].warnings)
    assert results["a.wav"].warnings == []


def test_short_clips_are_tiled_to_what_the_layer_needs(tiny_model, write_audio):
    path = write_audio("tiny.wav", 0.1)
    (r,) = iter_activations(tiny_model, [path], ["conv8"])
    need = tiny_model.geometry("objects").min_samples()
    assert r.ok and r.duration == pytest.approx(0.1, abs=1e-4)
    assert r.tiled_to * 22_050 >= need and r.activations["objects"].shape[0] == 1
    (t,) = iter_activations(tiny_model, [path], ["conv5"], min_samples=22_050 * 10)
    assert t.tiled_to == pytest.approx(10.0, abs=0.1)
    assert t.activations["conv5"].shape[0] == tiny_model.geometry("conv5").frames(220_500)


def test_tile_repeats_whole_copies():
    x = np.arange(5, dtype=np.float32)
    assert tile(x, 3) is x
    np.testing.assert_array_equal(tile(x, 12), np.tile(x, 3))


def test_required_samples(tiny_model):
    assert required_samples(tiny_model, ["conv1"]) == 1
    assert required_samples(tiny_model, ["conv1", "scenes"]) == 209_374
