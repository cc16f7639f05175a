"""The network against a plain functional reference, its geometry against SOUNDNET.md's table, and
layer addressing (soundnet_cli.model)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from soundnet_cli.errors import LayerError
from soundnet_cli.model import SoundNet, kernels, make_config, min_tag_samples

from helpers import make_tiny_model, synth, tiny_config

#: SOUNDNET.md's SoundNet-8 table, retyped on purpose (the test must not read the preset):
#: name -> (kind, kernel, stride, padding, module number, hop, frames at 5/10/20 s).
TABLE = {
    "conv1": ("conv", 64, 2, 32, 3, 2, (55126, 110251, 220501)),
    "pool1": ("pool", 8, 8, 0, 4, 16, (6890, 13781, 27562)),
    "conv2": ("conv", 32, 2, 16, 7, 32, None),
    "pool2": ("pool", 8, 8, 0, 8, 256, (430, 861, 1722)),
    "conv3": ("conv", 16, 2, 8, 11, 512, (216, 431, 862)),
    "conv4": ("conv", 8, 2, 4, 14, 1024, (109, 216, 432)),
    "conv5": ("conv", 4, 2, 2, 17, 2048, (55, 109, 217)),
    "pool5": ("pool", 4, 4, 0, 18, 8192, (13, 27, 54)),
    "conv6": ("conv", 4, 2, 2, 21, 16384, (7, 14, 28)),
    "conv7": ("conv", 4, 2, 2, 24, 32768, (4, 8, 15)),
    "conv8": ("head", 8, 2, 0, 25, 65536, (0, 1, 4)),
}
SECONDS = (5, 10, 20)


def reference_activations(model: SoundNet, wave: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every named layer, computed with torch.nn.functional straight from the state dict and the
    table above (eval-mode BatchNorm with the running statistics)."""
    sd = model.state_dict()
    x = (wave * 256.0)[None, None]
    out: dict[str, torch.Tensor] = {}
    for name, (kind, k, s, p, *_rest) in TABLE.items():
        if kind == "conv":
            w = sd[f"trunk.{name}.conv.weight"]
            assert w.shape[-1] == k
            x = F.conv1d(x, w, sd[f"trunk.{name}.conv.bias"], stride=s, padding=p)
            x = F.batch_norm(x, sd[f"trunk.{name}.bn.running_mean"],
                             sd[f"trunk.{name}.bn.running_var"], sd[f"trunk.{name}.bn.weight"],
                             sd[f"trunk.{name}.bn.bias"], training=False, eps=1e-5)
            x = F.relu(x)
        elif kind == "pool":
            x = F.max_pool1d(x, k, s)
        else:
            for head in ("objects", "scenes"):
                out[head] = F.conv1d(x, sd[f"heads.{head}.weight"], sd[f"heads.{head}.bias"],
                                     stride=s, padding=p)
            continue
        out[name] = x
    return out


def test_every_layer_matches_the_functional_reference():
    model = make_tiny_model()
    wave = torch.from_numpy(synth(10.0, kind="noise")[:, 0])
    ref = reference_activations(model, wave)
    with torch.inference_mode():
        got = model.features(wave[None], list(ref))
    assert list(got) == list(ref)
    for name, expected in ref.items():
        assert got[name].shape == expected.shape, name
        torch.testing.assert_close(got[name], expected, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("seconds", SECONDS)
def test_frame_counts_match_the_table(seconds):
    model = make_tiny_model()
    samples = seconds * 22_050
    wave = torch.zeros(1, samples)
    trunk = [n for n in TABLE if n != "conv8"]
    with torch.inference_mode():
        feats = model.features(wave, trunk if seconds == 5 else trunk + ["conv8"])
    for name, (*_, hop, frames) in TABLE.items():
        for layer in (["objects", "scenes"] if name == "conv8" else [name]):
            assert model.geometry(layer).hop == hop
            if frames is None:
                continue
            expected = frames[SECONDS.index(seconds)]
            assert model.geometry(layer).frames(samples) == expected, (layer, seconds)
            if expected:
                assert feats[layer].shape[-1] == expected, (layer, seconds)


def test_heads_need_about_9_5_seconds():
    model = make_tiny_model()
    assert model.geometry("objects").min_samples() == 209_374
    assert model.geometry("objects").frames(209_374) == 1
    assert model.geometry("objects").frames(209_373) == 0
    assert min_tag_samples(model) == 220_500  # tile_seconds = 10 s
    with pytest.raises(LayerError, match="too short for layer objects.*209374"):
        model.features(torch.zeros(1, 5 * 22_050), ["objects"])


def test_module_numbers_address_layers():
    model = make_tiny_model()
    numbers = {name: row[4] for name, row in TABLE.items()}
    assert model.module_numbers() == {n: name for name, n in numbers.items()}
    assert model.resolve_layers(["18"]) == ["pool5"]
    assert model.resolve_layers([24, "conv5"]) == ["conv7", "conv5"]
    assert model.resolve_layers(["25"]) == ["objects", "scenes"]
    assert model.resolve_layers(["conv8", "scenes"]) == ["objects", "scenes"]


def test_unknown_layer_lists_valid_ones():
    model = make_tiny_model()
    with pytest.raises(LayerError) as e:
        model.resolve_layers(["conv9"])
    for name in ("conv1", "pool5", "conv7", "objects", "scenes", "conv8", "18"):
        assert name in str(e.value)
    with pytest.raises(LayerError, match="no layer with module number 5; valid: 3=conv1"):
        model.resolve_layers(["5"])


def test_full_soundnet8_parameter_counts():
    counts = SoundNet(make_config("soundnet8")).parameter_count()
    assert counts["trunk"] == pytest.approx(2.87e6, rel=0.005)
    assert counts["heads"] == pytest.approx(11.48e6, rel=0.005)
    assert counts["total"] == pytest.approx(14.35e6, rel=0.005)


def test_full_soundnet8_channels():
    model = SoundNet(make_config("soundnet8"))
    expected = {"conv1": 16, "conv2": 32, "conv3": 64, "conv4": 128, "conv5": 256, "pool5": 256,
                "conv6": 512, "conv7": 1024, "objects": 1000, "scenes": 401}
    assert {n: model.channels(n) for n in expected} == expected


def test_soundnet5_heads():
    model = SoundNet(make_config("soundnet5", width=1 / 16))
    assert model.resolve_layers(["conv5"]) == ["objects", "scenes"]
    with torch.inference_mode():
        out = model(torch.zeros(2, 5 * 22_050))
    assert out["objects"].shape[:2] == (2, 1000) and out["scenes"].shape[:2] == (2, 401)


def test_batching_does_not_change_outputs():
    model = make_tiny_model()
    waves = torch.from_numpy(synth(2.0, kind="noise", channels=1)[:, 0]).repeat(3, 1)
    waves[1] *= 0.3
    waves[2] = waves[2].flip(0)
    with torch.inference_mode():
        batched = model.features(waves, ["conv5"])["conv5"]
        single = torch.cat([model.features(w[None], ["conv5"])["conv5"] for w in waves])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


def test_model_moves_between_devices_and_dtypes():
    # nn.Module.to() goes through _apply; the network must not shadow it
    model = make_tiny_model().to("cpu").to(torch.float64).float()
    assert next(model.parameters()).dtype == torch.float32


def test_init_follows_the_original():
    model = SoundNet(make_config("soundnet8", width=0.25))
    w = model.trunk["conv3"].conv.weight.detach()
    bn = model.trunk["conv3"].bn.weight.detach()
    assert abs(float(w.std()) - 0.01) < 0.001 and not model.trunk["conv3"].conv.bias.any()
    assert abs(float(bn.mean()) - 1.0) < 0.01 and abs(float(bn.std()) - 0.02) < 0.01


# -- training-mode fusion of pooled layers ----------------------------------------------------


def _train_step(model: SoundNet, x: torch.Tensor, layers: list[str]):
    """Outputs, parameter gradients and buffers after one training-mode pass of ``model``."""
    out = model.features(x, layers)
    loss = sum((v * torch.linspace(-1, 1, v.shape[-1], dtype=v.dtype)).square().mean()
               for v in out.values())
    model.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads, {n: b.clone() for n, b in model.named_buffers()}


@pytest.mark.parametrize("arch,samples,layers,momentum", [
    ("soundnet8", 22050 * 10 + 7, ["objects", "scenes"], 0.1),  # frames not a multiple of 16
    ("soundnet8", 32 * 700 - 2, ["conv3"], 0.1),                  # a whole number of s2d rows
    ("soundnet8", 22050 * 3, ["pool1", "conv5"], None),          # cumulative BN (precise BN)
    ("soundnet5", 22050 * 4, ["pool3"], 0.1),                    # every layer pooled
])
def test_fused_training_pass_equals_the_op_by_op_one(arch, samples, layers, momentum):
    """The fused pooled layers (space-to-depth conv1, Gram statistics, pool before BN+ReLU) give
    the op-by-op network's outputs, gradients and BatchNorm running statistics, in float64 to
    rounding; a negative BatchNorm weight (min-pooling) is covered."""
    torch.manual_seed(3)
    fused = SoundNet(make_config(arch, tiny_config(arch).heads, width=1 / 4)).double().train()
    with torch.no_grad():
        fused.trunk["conv1"].bn.weight[1] = -0.5
        fused.trunk["conv2"].bn.weight[0] = -1.5
    for m in fused.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = momentum
    plain = SoundNet(fused.config).double().train()
    plain.load_state_dict(fused.state_dict())
    for m in plain.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = momentum
    plain.fast_training = False
    x = 0.1 * torch.randn(3, samples, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a_out, a_grad, a_buf = _train_step(fused, x, layers)
    b_out, b_grad, b_buf = _train_step(plain, x, layers)
    for k in b_out:
        torch.testing.assert_close(a_out[k], b_out[k], rtol=1e-10, atol=1e-10)
    assert a_grad.keys() == b_grad.keys()
    for k in b_grad:
        scale = max(1e-12, float(b_grad[k].abs().max()))
        if k.endswith("conv.bias"):  # zero in exact arithmetic (BatchNorm follows): rounding only
            assert float(a_grad[k].abs().max()) < 1e-8 and scale < 1e-8
            continue
        torch.testing.assert_close(a_grad[k] / scale, b_grad[k] / scale, rtol=0, atol=1e-9)
    for k in b_buf:
        torch.testing.assert_close(a_buf[k].double(), b_buf[k].double(), rtol=1e-10, atol=1e-10)


def test_fusion_is_off_in_eval_mode_and_for_requested_conv_outputs():
    model = make_tiny_model().train()
    calls = []
    block = model.trunk["conv1"]
    original = block.forward_pooled
    block.forward_pooled = lambda x, pool: calls.append(pool) or original(x, pool)  # type: ignore
    x = 0.1 * torch.randn(2, 22050 * 3, generator=torch.Generator().manual_seed(0))
    model.features(x, ["conv1", "conv2"])  # conv1 itself is wanted: not fused
    assert calls == []
    model.features(x, ["conv2"])
    assert calls == [8]
    model.eval()
    with torch.no_grad():
        model.features(x, ["conv2"])
    assert calls == [8]


@pytest.mark.parametrize("size", [1, 2, 4, 8, 6])
def test_max_first_is_torch_max_with_first_index_on_ties(size):
    g = torch.Generator().manual_seed(0)
    v = torch.randint(0, 3, (50, 7, size), generator=g).double()  # many ties
    v[0, 0] = 1.0  # all equal
    values, index = kernels.max_first(v)
    assert index.dtype == torch.uint8
    torch.testing.assert_close(values, v.max(-1).values, rtol=0, atol=0)
    first = (v == v.max(-1, keepdim=True).values).double().argmax(-1)  # first True
    assert torch.equal(index.long(), first)
    x = torch.randn(3, 5, 8, generator=g)
    assert torch.equal(kernels.max_first(x)[1].long(), x.max(-1).indices)


def test_fast_training_paths_run_on_cpu_only(monkeypatch) -> None:
    """The fused training layers are CPU kernels; on another device (here ``meta``, standing in
    for CUDA) training runs the plain modules."""
    from soundnet_cli.model import ConvBlock

    calls: list[str] = []
    pooled, train = ConvBlock.forward_pooled, ConvBlock.forward_train
    monkeypatch.setattr(ConvBlock, "forward_pooled",
                        lambda self, *a: calls.append("pooled") or pooled(self, *a))
    monkeypatch.setattr(ConvBlock, "forward_train",
                        lambda self, *a: calls.append("train") or train(self, *a))
    model = make_tiny_model("soundnet8").train()
    need = max(model.geometry(h).min_samples() for h in model.config.head_names)
    model(torch.randn(2, need))
    assert "pooled" in calls
    calls.clear()
    meta = model.to("meta")
    out = meta(torch.randn(2, need, device="meta"))
    assert calls == [] and all(t.device.type == "meta" for t in out.values())


def test_the_face_exports_resolve_and_config_and_geometry_need_no_torch() -> None:
    """``soundnet_cli.model`` exports lazily: its config and geometry import without torch, and
    the training kernels load on the first training-mode pass on CPU, never for inference."""
    import soundnet_cli.model as face

    assert not [n for n in face.__all__ if not hasattr(face, n)]
    code = ("import sys\n"
            "from soundnet_cli.model import Layers, TimeAxis, make_config, min_tag_samples\n"
            "assert 'torch' not in sys.modules, 'torch'\n"
            "from soundnet_cli.model import SoundNet\n"
            "import torch\n"
            "net = SoundNet(make_config(width=1 / 16)).eval()\n"
            "net(torch.zeros(1, min_tag_samples(net)))\n"
            "assert 'soundnet_cli.model.kernels' not in sys.modules, 'eval'\n"
            "net.train()(torch.zeros(2, min_tag_samples(net)))\n"
            "assert 'soundnet_cli.model.kernels' in sys.modules, 'train'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
