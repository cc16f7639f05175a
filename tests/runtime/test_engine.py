"""The fused inference engine computes what SoundNet.features computes, layer by layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_tiny_model

from soundnet_cli.runtime import Engine
from soundnet_cli.errors import LayerError

#: Agreement required, relative to each layer's activation scale (the issue's 1e-4 bound).
TOL = 1e-4


def assert_close(got: torch.Tensor, ref: torch.Tensor, name: str) -> None:
    assert got.shape == ref.shape, f"{name}: {tuple(got.shape)} != {tuple(ref.shape)}"
    scale = max(float(ref.abs().max()), 1e-6)
    err = float((got - ref).abs().max())
    assert err <= TOL * scale, f"{name}: max error {err:.3g} vs scale {scale:.3g}"


def waveform(samples: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, samples, generator=g)


@pytest.mark.parametrize("arch", ["soundnet8", "soundnet5"])
@pytest.mark.parametrize("s2d", [True, False])
def test_every_layer_matches_features(arch: str, s2d: bool) -> None:
    model = make_tiny_model(arch)
    heads_need = max(model.geometry(h).min_samples() for h in model.config.head_names)
    for samples in (heads_need, heads_need + 1, heads_need + 12345):
        x = waveform(samples)
        with torch.no_grad():
            ref = model.features(x, model.layer_names)
        got = Engine(model, model.layer_names, space_to_depth=s2d).forward(x)
        assert list(got) == list(ref)
        for name in ref:
            assert_close(got[name], ref[name], f"{arch} {samples} {name}")


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2", "pool2", "conv5", "pool5",
                                   "conv7", "objects", "conv8", "18"])
def test_single_layer_requests_fuse_differently_but_agree(layer: str) -> None:
    # Asking for pool1 alone fuses conv1 into it; asking for conv1 does not.
    model = make_tiny_model()
    x = waveform(215_000, batch=1, seed=3)
    with torch.no_grad():
        ref = model.features(x, [layer])
    got = Engine(model, [layer]).forward(x)
    assert list(got) == list(ref)
    for name in ref:
        assert_close(got[name], ref[name], name)


def test_fusion_plan_for_conv5() -> None:
    engine = Engine(make_tiny_model(), ["conv5"])
    assert [st.names for st in engine.stages] == [("pool1",), ("pool2",), ("conv3",),
                                                  ("conv4",), ("conv5",)]
    first = engine.stages[0]
    # conv1 (64/2/32) then pool 8: composite kernel 64 + 7*2, stride 16, padding 32.
    assert (first.kernel, first.stride, first.padding) == (78, 16, 32)


def test_heads_run_as_one_stage() -> None:
    engine = Engine(make_tiny_model(), ["conv8"])
    assert engine.stages[-1].names == ("objects", "scenes")
    assert engine.channels == {"objects": 7, "scenes": 5}


def test_frame_counts_follow_geometry() -> None:
    model = make_tiny_model()
    for samples in (4_000, 8_191, 8_192, 65_537):
        layers = [n for n in model.layer_names if model.geometry(n).min_samples() <= samples]
        got = Engine(model, layers).forward(waveform(samples, batch=1))
        for name in layers:
            assert got[name].shape[-1] == model.geometry(name).frames(samples), name


def test_too_short_raises_layer_error() -> None:
    model = make_tiny_model()
    need = model.geometry("objects").min_samples()
    with pytest.raises(LayerError, match="objects"):
        Engine(model, ["objects"]).forward(waveform(need - 1, batch=1))


def test_training_mode_model_uses_running_statistics() -> None:
    model = make_tiny_model()
    x = waveform(30_000, batch=1)
    with torch.no_grad():
        ref = model.eval().features(x, ["conv4"])["conv4"]
    got = Engine(model.train(), ["conv4"]).forward(x)["conv4"]
    assert_close(got, ref, "conv4")


def test_input_scale_is_applied() -> None:
    model = make_tiny_model()
    x = waveform(30_000, batch=1)
    a = Engine(model, ["conv1"]).forward(x)["conv1"]
    with torch.no_grad():
        ref = model.features(x, ["conv1"])["conv1"]
    assert_close(a, ref, "conv1")
    assert np.isclose(model.config.input_scale, 256.0)


def test_heads_of_different_geometry_are_siblings() -> None:
    from soundnet_cli.model import HeadSpec

    heads = (HeadSpec("wide", ("a", "b", "c"), 8, 2, 0), HeadSpec("narrow", ("x", "y"), 4, 1, 2))
    model = make_tiny_model(heads=heads)
    x = waveform(230_000)
    with torch.no_grad():
        ref = model.features(x, ["conv7", "wide", "narrow"])
    engine = Engine(model, ["conv7", "wide", "narrow"])
    assert [st.head for st in engine.stages][-2:] == [True, True]
    got = engine.forward(x)
    for name in ref:
        assert_close(got[name], ref[name], name)


@pytest.mark.parametrize("arch", ["soundnet8", "soundnet5"])
@pytest.mark.parametrize("s2d", [True, False])
def test_a_clip_gets_the_same_numbers_in_any_batch(arch: str, s2d: bool) -> None:
    """Bit for bit: alone, in a batch of two, or of five (a clip alone in its batch, e.g. in one
    shard of a sharded run, must not get other features; PyTorch's CPU convolution takes another
    kernel for one small clip than for a batch, see engine.conv1d)."""
    model = make_tiny_model(arch)
    layers = [*model.layer_names, *model.config.head_names]
    engine = Engine(model, layers, space_to_depth=s2d)
    x = waveform(engine.min_samples() + 4321, batch=5, seed=3)
    for max_samples in (None, x.shape[1]):  # whole batch, and one clip at a time early on
        alone = engine.forward(x[:1], max_samples=max_samples)
        for batch in (2, 5):
            together = engine.forward(x[:batch], max_samples=max_samples)
            for name in alone:
                assert torch.equal(alone[name][0], together[name][0]), (name, batch)


def test_soundnet8_clip_alone_or_batched_is_identical() -> None:
    """The same at the real network's widths and a 5 s clip (the case the shard benchmark hit)."""
    from soundnet_cli.model import SoundNet, make_config

    torch.manual_seed(0)
    model = SoundNet(make_config("soundnet8")).eval()
    engine = Engine(model, ["conv5", "conv7"])
    x = waveform(110_250, batch=2, seed=1)
    alone, together = engine.forward(x[:1]), engine.forward(x)
    for name in alone:
        assert torch.equal(alone[name][0], together[name][0]), name
