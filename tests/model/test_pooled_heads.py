"""Pooled heads (model.PooledHeadSpec): an MLP over a trunk layer's mean and max per step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import make_tiny_model, tiny_config
from soundnet_cli.errors import WeightsError
from soundnet_cli.model import PooledHeadSpec, SoundNet, SoundNetConfig
from soundnet_cli.tagging import PooledHead, head_scorers, tag_files
from soundnet_cli.weights import load_checkpoint, save_checkpoint

LABELS = ("dog", "rain", "siren")


def pooled_model(hidden: int = 6) -> SoundNet:
    config = dataclasses.replace(tiny_config(), pooled_heads=(
        PooledHeadSpec("esc", LABELS, "pool5", window=32, stride=8, hidden=hidden),))
    model = make_tiny_model()
    state = model.state_dict()
    out = SoundNet(config)
    out.load_state_dict(state, strict=False)
    torch.manual_seed(1)
    for p in out.pooled.parameters():
        torch.nn.init.normal_(p, 0, 0.5)
    return out.eval()


def test_steps_follow_the_window_and_stride():
    spec = PooledHeadSpec("esc", LABELS, "pool5", window=32, stride=8)
    assert [spec.steps(n) for n in (0, 1, 29, 32, 39, 40, 54)] == [0, 1, 1, 1, 1, 2, 3]


def test_logits_are_the_mlp_of_mean_and_max_per_step():
    model = pooled_model()
    x = torch.rand(2, model.channels("pool5"), 54)
    got = model.pooled_logits("esc", x)
    assert got.shape == (2, 3, 3)
    for j in range(3):
        window = x[..., 8 * j: 8 * j + 32]
        stats = torch.cat([window.mean(-1), window.amax(-1)], -1)
        torch.testing.assert_close(got[..., j], model.pooled["esc"](stats))


def test_checkpoint_round_trip_and_old_headers(tmp_path):
    model = pooled_model()
    path = save_checkpoint(model, tmp_path / "p.safetensors", half="heads")
    ckpt = load_checkpoint(path)
    assert ckpt.config.pooled_heads == model.config.pooled_heads
    built = ckpt.build()
    assert built.fingerprint == model.fingerprint  # pooled heads are not the trunk
    x = torch.rand(1, model.channels("pool5"), 40)
    torch.testing.assert_close(built.pooled_logits("esc", x), model.pooled_logits("esc", x),
                               rtol=0, atol=0)
    assert ckpt.state_dict["trunk.conv1.conv.weight"].dtype == torch.float32
    assert ckpt.state_dict["heads.objects.weight"].dtype == torch.float16
    assert ckpt.state_dict["pooled.esc.0.weight"].dtype == torch.float32  # small: kept exact
    # a header from before pooled heads existed has none
    d = model.config.to_dict()
    del d["pooled_heads"]
    assert SoundNetConfig.from_dict(d).pooled_heads == ()


@pytest.mark.parametrize("change, match", [
    ({"layer": "nope"}, "not a trunk layer"),
    ({"layer": "objects"}, "not a trunk layer"),
    ({"window": 0}, "window"),
    ({"name": "objects"}, "used twice"),
    ({"labels": ()}, "labels"),
])
def test_malformed_pooled_heads_are_refused(change, match):
    spec = dataclasses.replace(PooledHeadSpec("esc", LABELS, "pool5", 32, 8, 4), **change)
    with pytest.raises(WeightsError, match=match):
        dataclasses.replace(tiny_config(), pooled_heads=(spec,))


def test_new_heads_drop_pooled_ones_and_keep_heads_keeps_them():
    model = pooled_model()
    model.keep_heads(["objects", "esc"])
    assert model.config.pooled_head_names == ("esc",) and model.config.head_names == ("objects",)
    model.replace_heads(tiny_config().heads)
    assert model.config.pooled_heads == () and len(model.pooled) == 0


def test_tagging_reports_the_pooled_head_after_the_others(write_audio):
    model = pooled_model()
    scorers = head_scorers(model)
    assert [s.name for s in scorers] == ["objects", "scenes", "esc"]
    assert isinstance(scorers[-1], PooledHead)
    (result,) = tag_files(model, [write_audio("a.wav", 25.0, kind="noise")])
    esc = result.head("esc")
    pool5 = model.geometry("pool5")
    assert esc.labels == LABELS and esc.probabilities
    assert esc.steps == model.config.pooled_heads[0].steps(pool5.frames(25 * 22050))
    assert np.allclose(esc.scores.sum(axis=1), 1.0, atol=1e-5)
    assert esc.hop == pytest.approx(8 * pool5.hop / 22050)
