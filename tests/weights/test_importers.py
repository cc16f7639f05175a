"""Importing each source format, checked against a direct computation in the source's own layout.

Synthetic networks (random weights, tiny widths of the real geometry) are written in each format,
imported, and our activations at every named layer are compared with a reference computed the
way the source computes them: Torch7's SpatialConvolution as ``conv2d`` over ``(N, C, T, 1)``,
TensorFlow's NHWC convolution as explicit float64 windows in NumPy, and the PyTorch ports'
own module layouts. The error measure is ``max |ours - ref| / max |ref|`` per layer.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import make_tiny_model, tiny_config
from helpers.torch7_writer import original_params, soundnet_module, write_t7

from soundnet_cli.weights import load_checkpoint
from soundnet_cli.errors import SoundNetWarning, WeightsError
from soundnet_cli.weights.convert import (build_network, detect_format, import_network, label_files,
                                    read_labels)
from soundnet_cli.audio import tile
from soundnet_cli.model import ORIGINAL_HEAD_SKIP_LAST, SoundNet, make_config, min_tag_samples, original_heads
from helpers.torch7_writer import flat_state_dict

TOL = 1e-5
SECONDS = 12.0  # long enough for the heads of both architectures (SoundNet-8 skipping the last frame: 10.98 s)


# ---------------------------------------------------------------------------------------------
# Synthetic networks in the original layout


def waveform(seconds: float = SECONDS, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 22050)) / 22050
    x = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.1 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))


def our_activations(model: SoundNet, wave: np.ndarray) -> dict[str, np.ndarray]:
    """Every named layer of our model, as (channels, frames) float64."""
    with torch.inference_mode():
        out = model.features(torch.from_numpy(wave)[None], model.layer_names)
    return {k: v[0].double().numpy() for k, v in out.items()}


def assert_matches(model: SoundNet, reference: dict[str, np.ndarray], wave: np.ndarray) -> None:
    ours = our_activations(model, wave)
    assert set(reference) == set(ours), (sorted(reference), sorted(ours))
    errors = {name: rel_err(ours[name], reference[name]) for name in ours}
    assert max(errors.values()) <= TOL, errors


def write_labels(tmp_path: Path, config) -> dict[str, Path]:
    files = {}
    for h in config.heads:
        files[h.name] = tmp_path / f"categories_{h.name}.txt"
        files[h.name].write_text("".join(f"/{h.name[0]}/{h.name}_{i}\n" for i in range(h.classes)))
    return files


# ---------------------------------------------------------------------------------------------
# Reference computations in each source's layout


def torch7_reference(params, config, wave: np.ndarray) -> dict[str, np.ndarray]:
    """The original: SpatialConvolution over (N, C, T, 1), kernels (out, in, k, 1)."""
    x = torch.from_numpy(wave * np.float32(256.0)).double().view(1, 1, -1, 1)
    out = {}
    for c in config.convs:
        p = {k: torch.from_numpy(v).double() for k, v in params[c.name].items()}
        x = F.conv2d(x, p["weight"], p["bias"], stride=(c.stride, 1), padding=(c.padding, 0))
        x = F.batch_norm(x, p["running_mean"], p["running_var"], p["bn_weight"], p["bn_bias"],
                         training=False, eps=1e-5)
        x = F.relu(x)
        out[c.name] = x
        if c.pool:
            x = F.max_pool2d(x, (c.pool, 1), (c.pool, 1))
            out[c.pool_name] = x
    # The imported heads skip the trunk's last frame, which the original's 20-s training never
    # read (model.ORIGINAL_HEAD_SKIP_LAST): every other step is the original's.
    skip = ORIGINAL_HEAD_SKIP_LAST[config.arch]
    x = x[:, :, : x.shape[2] - skip]
    for h in config.heads:
        p = {k: torch.from_numpy(v).double() for k, v in params[h.name].items()}
        out[h.name] = F.conv2d(x, p["weight"], p["bias"], stride=(h.stride, 1),
                               padding=(h.padding, 0))
    return {k: v[0, :, :, 0].numpy() for k, v in out.items()}


def to_tf_dict(params, config) -> dict[str, dict[str, np.ndarray]]:
    """The TensorFlow port's sound8.npy layout: HWIO kernels, conv8/conv8_2 heads."""
    names = {c.name: c.name for c in config.convs}
    stage = int(config.head_stage[4:])
    names[config.heads[0].name] = f"conv{stage}"
    names[config.heads[1].name] = f"conv{stage}_2"
    out = {}
    for ours, theirs in names.items():
        p = params[ours]
        layer = {"weights": p["weight"].transpose(2, 3, 1, 0), "biases": p["bias"]}
        if "running_mean" in p:
            layer.update(gamma=p["bn_weight"], beta=p["bn_bias"], mean=p["running_mean"],
                         var=p["running_var"])
        out[theirs] = layer
    return out


def tf_reference(tf: dict, config, wave: np.ndarray) -> dict[str, np.ndarray]:
    """NHWC float64 convolution by explicit windows, as tf.nn.conv2d(VALID) after tf.pad."""
    x = (wave.astype(np.float64) * 256.0).reshape(1, -1, 1, 1)

    def conv(x, layer, stride, pad):
        w = layer["weights"].astype(np.float64)  # (k, 1, in, out)
        xp = np.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
        win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[0], axis=1)[:, ::stride]
        # win: (N, T', 1, in, k) -> sum over k and in
        return np.einsum("ntwik,kwio->ntwo", win, w) + layer["biases"].astype(np.float64)

    out = {}
    stage = int(config.head_stage[4:])
    for c in config.convs:
        layer = tf[c.name]
        x = conv(x, layer, c.stride, c.padding)
        x = (x - layer["mean"]) / np.sqrt(layer["var"].astype(np.float64) + 1e-5) \
            * layer["gamma"] + layer["beta"]
        x = np.maximum(x, 0)
        out[c.name] = x
        if c.pool:
            t = x.shape[1] // c.pool
            x = x[:, : t * c.pool].reshape(1, t, c.pool, 1, -1).max(axis=2)
            out[c.pool_name] = x
    h = config.heads[0]
    out[config.heads[0].name] = conv(x, tf[f"conv{stage}"], h.stride, h.padding)
    out[config.heads[1].name] = conv(x, tf[f"conv{stage}_2"], h.stride, h.padding)
    return {k: v[0, :, 0, :].T for k, v in out.items()}


class PortBlocks(nn.Module):
    """A PyTorch port in the style of SoundNet_Pytorch: convN = Sequential(Conv2d, BN, ReLU[, pool])
    with kernels (k, 1), heads conv8 and conv8_2."""

    def __init__(self, config) -> None:
        super().__init__()
        cin = 1
        for c in config.convs:
            layers = [nn.Conv2d(cin, c.out_channels, (c.kernel, 1), (c.stride, 1), (c.padding, 0)),
                      nn.BatchNorm2d(c.out_channels), nn.ReLU()]
            if c.pool:
                layers.append(nn.MaxPool2d((c.pool, 1), (c.pool, 1)))
            setattr(self, c.name, nn.Sequential(*layers))
            cin = c.out_channels
        h = config.heads[0]
        stage = config.head_stage
        setattr(self, stage, nn.Sequential(nn.Conv2d(cin, h.classes, (h.kernel, 1), (h.stride, 1),
                                                     (h.padding, 0))))
        h2 = config.heads[1]
        setattr(self, f"{stage}_2", nn.Sequential(
            nn.Conv2d(cin, h2.classes, (h2.kernel, 1), (h2.stride, 1), (h2.padding, 0))))
        self.config = config

    def load_original(self, params) -> "PortBlocks":
        for c in self.config.convs:
            block, p = getattr(self, c.name), params[c.name]
            block[0].weight.data = torch.from_numpy(p["weight"])
            block[0].bias.data = torch.from_numpy(p["bias"])
            block[1].weight.data = torch.from_numpy(p["bn_weight"])
            block[1].bias.data = torch.from_numpy(p["bn_bias"])
            block[1].running_mean.data = torch.from_numpy(p["running_mean"])
            block[1].running_var.data = torch.from_numpy(p["running_var"])
        stage = self.config.head_stage
        for h, attr in zip(self.config.heads, (stage, f"{stage}_2")):
            getattr(self, attr)[0].weight.data = torch.from_numpy(params[h.name]["weight"])
            getattr(self, attr)[0].bias.data = torch.from_numpy(params[h.name]["bias"])
        return self.eval()

    def reference(self, wave: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(wave * np.float32(256)).double().view(1, 1, -1, 1)
        model = self.double()
        out = {}
        with torch.inference_mode():
            for c in self.config.convs:
                block = getattr(model, c.name)
                x = block[2](block[1](block[0](x)))
                out[c.name] = x
                if c.pool:
                    x = block[3](x)
                    out[c.pool_name] = x
            stage = self.config.head_stage
            out[self.config.heads[0].name] = getattr(model, stage)(x)
            out[self.config.heads[1].name] = getattr(model, f"{stage}_2")(x)
        return {k: v[0, :, :, 0].numpy() for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Torch7


def write_original_t7(path: Path, params, config, **kw) -> Path:
    with open(path, "wb") as f:
        write_t7(soundnet_module(params, config, **kw), f)
    return path


@pytest.mark.parametrize("arch,cudnn", [("soundnet8", True), ("soundnet8", False),
                                        ("soundnet5", True)])
def test_torch7_matches_original_computation(tmp_path, arch, cudnn):
    config = tiny_config(arch)
    params = original_params(config)
    t7 = write_original_t7(tmp_path / f"{arch}_final.t7", params, config, cudnn=cudnn)
    labels = write_labels(tmp_path, config)
    result = import_network(t7, labels=labels)
    assert result.warnings == []
    model = result.model
    assert model.config.arch == arch
    assert [c.out_channels for c in model.config.convs] == [c.out_channels for c in config.convs]
    assert model.config.heads[0].labels == read_labels(labels["objects"])
    wave = waveform()
    assert_matches(model, torch7_reference(params, config, wave), wave)
    assert result.provenance["source_format"] == "torch7"
    assert result.provenance["bn_statistics"] == "present"


def test_torch7_old_running_std_and_separate_storages(tmp_path):
    config = tiny_config()
    params = original_params(config, seed=3)
    t7 = write_original_t7(tmp_path / "old.t7", params, config, shared=False, running_std=True)
    with pytest.warns(SoundNetWarning, match="placeholders"):
        result = import_network(t7)
    wave = waveform(seed=4)
    assert_matches(result.model, torch7_reference(params, config, wave), wave)


def test_torch7_refuses_wrong_head_padding(tmp_path):
    """A known port bug pads conv8 by 2; such a network is not the original and is refused."""
    config = tiny_config()
    bad = config.with_heads([h.__class__(h.name, h.labels, h.kernel, h.stride, 2)
                             for h in config.heads])
    t7 = write_original_t7(tmp_path / "bad.t7", original_params(config), bad)
    with pytest.raises(WeightsError, match="padding 2, expected 0"):
        import_network(t7)


def test_release_archive_members(tmp_path):
    archive = tmp_path / "soundnet_models_public.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for arch in ("soundnet8", "soundnet5"):
            config = tiny_config(arch)
            buf = io.BytesIO()
            write_t7(soundnet_module(original_params(config), config), buf)
            z.writestr(f"soundnet_models_public/{arch}_final.t7", buf.getvalue())
    assert detect_format(archive) == "zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SoundNetWarning)
        r8 = import_network(archive)
        r5 = import_network(archive, arch="soundnet5")
    assert r8.model.config.arch == "soundnet8"
    assert r5.model.config.arch == "soundnet5"
    assert r5.provenance["member"] == "soundnet_models_public/soundnet5_final.t7"
    with pytest.raises(WeightsError, match="soundnet8_final.t7, soundnet_models_public/soundnet5"):
        import_network(archive, member="nope.t7")


# ---------------------------------------------------------------------------------------------
# TensorFlow port (.npy dict)


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the TF port's np.save: byte strings as
    BINSTRING and NumPy under ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "").replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def save_npy_dict(path: Path, obj, py2: bool = False) -> Path:
    arr = np.empty((), dtype=object)
    arr[()] = obj
    if not py2:
        np.save(path, arr, allow_pickle=True)
        return path
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        Py2Pickler(f, protocol=2).dump(arr)
    return path


@pytest.mark.parametrize("py2", [False, True])
def test_tf_npy_matches_tf_computation(tmp_path, py2):
    config = tiny_config()
    tf = to_tf_dict(original_params(config, seed=5), config)
    npy = save_npy_dict(tmp_path / "sound8.npy", tf, py2=py2)
    assert detect_format(npy) == "npy"
    result = import_network(npy, labels=write_labels(tmp_path, config))
    wave = waveform(seed=6)
    assert_matches(result.model, tf_reference(tf, config, wave), wave)


def test_npz_with_flat_keys(tmp_path):
    config = tiny_config("soundnet5")
    tf = to_tf_dict(original_params(config, seed=7), config)
    npz = tmp_path / "sound5.npz"
    np.savez(npz, **{f"{layer}/{k}": v for layer, p in tf.items() for k, v in p.items()})
    result = import_network(npz, labels=write_labels(tmp_path, config))
    wave = waveform(seed=8)
    assert_matches(result.model, tf_reference(tf, config, wave), wave)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch evil-ran",))


def test_npy_pickle_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    npy = save_npy_dict(tmp_path / "evil.npy", {"conv1": {"weights": _Evil()}})
    with pytest.raises(WeightsError, match="refusing to load (posix|nt).system"):
        import_network(npy)
    assert not (tmp_path / "evil-ran").exists()


# ---------------------------------------------------------------------------------------------
# PyTorch ports (state dicts)


def blocks_state_dict(params, config) -> dict[str, torch.Tensor]:
    return PortBlocks(config).load_original(params).state_dict()


@pytest.mark.parametrize("style", ["blocks", "flat", "conv1d", "wrapped", "transposed", "legacy"])
def test_pytorch_state_dicts_match_port_computation(tmp_path, style):
    config = tiny_config()
    params = original_params(config, seed=9)
    sd = blocks_state_dict(params, config) if style in ("blocks", "wrapped", "legacy") \
        else flat_state_dict(params, config)
    if style == "conv1d":  # kernels (out, in, k)
        sd = {k: v[..., 0] if v.dim() == 4 else v for k, v in sd.items()}
    if style == "transposed":  # kernels (out, in, 1, k): time on the width axis
        sd = {k: v.transpose(2, 3) if v.dim() == 4 else v for k, v in sd.items()}
    if style == "wrapped":  # DataParallel prefixes inside a training checkpoint
        sd = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    path = tmp_path / "soundnet.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=style != "legacy")  # legacy: PyTorch < 1.6
    assert detect_format(path) == "torch"
    result = import_network(path, labels=write_labels(tmp_path, config))
    assert result.warnings == []
    wave = waveform(seed=10)
    reference = PortBlocks(config).load_original(params).reference(wave)
    assert_matches(result.model, reference, wave)


def test_safetensors_state_dict_and_soundnet5(tmp_path):
    from safetensors.torch import save_file

    config = tiny_config("soundnet5")
    params = original_params(config, seed=11)
    path = tmp_path / "port.safetensors"
    save_file({k: v.contiguous() for k, v in blocks_state_dict(params, config).items()}, str(path))
    assert detect_format(path) == "safetensors"
    result = import_network(path, labels=write_labels(tmp_path, config))
    wave = waveform(seed=12)
    assert_matches(result.model, PortBlocks(config).load_original(params).reference(wave), wave)


@pytest.mark.parametrize("bn,status", [("default", "ARE DEFAULTS"), ("none", "MISSING")])
def test_missing_batchnorm_statistics_warn_loudly(tmp_path, bn, status):
    config = tiny_config()
    path = tmp_path / "port.pth"
    torch.save(flat_state_dict(original_params(config), config, bn=bn), path)
    with pytest.warns(SoundNetWarning, match=f"BATCHNORM STATISTICS {status}"):
        result = import_network(path, labels=write_labels(tmp_path, config))
    assert result.provenance["bn_statistics"] == ("default" if bn == "default" else "missing")
    assert any("will NOT match" in w for w in result.warnings)


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(PortBlocks(tiny_config()), path)
    with pytest.raises(WeightsError, match="loading it would run code"):
        import_network(path)


def test_state_dict_in_alphabetical_order_is_reordered(tmp_path):
    config = tiny_config()
    params = original_params(config, seed=13)
    sd = blocks_state_dict(params, config)
    path = tmp_path / "sorted.pth"
    torch.save(dict(sorted(sd.items())), path)  # conv1.*, conv2.*, ... conv8.*, conv8_2.* by name
    result = import_network(path, labels=write_labels(tmp_path, config))
    wave = waveform(seed=14)
    assert_matches(result.model, PortBlocks(config).load_original(params).reference(wave), wave)


# ---------------------------------------------------------------------------------------------
# Refusals


def _sd(config, params) -> dict[str, torch.Tensor]:
    return blocks_state_dict(params, config)


def test_refuses_wrong_kernel(tmp_path):
    config = tiny_config()
    params = original_params(config)
    sd = _sd(config, params)
    sd["conv3.0.weight"] = sd["conv3.0.weight"][:, :, :15]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"conv3\.0 \(conv3 of soundnet8\): kernel size 15, "
                                           "expected 16"):
        import_network(tmp_path / "bad.pth")


def test_refuses_broken_channel_chain(tmp_path):
    config = tiny_config()
    sd = _sd(config, original_params(config))
    sd["conv5.0.weight"] = sd["conv5.0.weight"][:, :-1]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="input channels, but the layer before it gives"):
        import_network(tmp_path / "bad.pth")


def test_refuses_missing_layer_and_wrong_label_count(tmp_path):
    config = tiny_config()
    sd = {k: v for k, v in _sd(config, original_params(config)).items()
          if not k.startswith("conv6.")}
    torch.save(sd, tmp_path / "short.pth")
    with pytest.raises(WeightsError, match="6 trunk convolutions and 2 heads"):
        import_network(tmp_path / "short.pth")
    torch.save(_sd(config, original_params(config)), tmp_path / "ok.pth")
    labels = tmp_path / "few.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(WeightsError,
                       match="head objects has 7 outputs but its category file has 2"):
        import_network(tmp_path / "ok.pth", labels={"objects": labels})
    with pytest.raises(WeightsError, match="do not make soundnet5"):
        import_network(tmp_path / "ok.pth", arch="soundnet5")


def test_refuses_unknown_files(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x07" * 64)
    with pytest.raises(WeightsError, match="unknown weights format"):
        import_network(junk)
    with pytest.raises(WeightsError, match="no such file"):
        import_network(tmp_path / "missing.t7")
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros(3))
    with pytest.raises(WeightsError, match="expected a dict of per-layer dicts"):
        import_network(plain)


# ---------------------------------------------------------------------------------------------
# Labels, re-import, full size, the tag answer


def test_read_labels_and_label_specs(tmp_path):
    f = tmp_path / "categories_places2.txt"
    f.write_text("/a/abbey\n/a/airfield  \n\n")
    assert read_labels(f) == ("/a/abbey", "/a/airfield")
    g = tmp_path / "holes.txt"
    g.write_text("a\n\nb\n")
    with pytest.raises(WeightsError, match="line 2 is empty"):
        read_labels(g)
    assert label_files([str(f), "objects=x.txt"]) == {"objects": Path("x.txt"), "scenes": f}
    assert label_files(["a.txt", "b.txt"]) == {"objects": Path("a.txt"), "scenes": Path("b.txt")}
    with pytest.raises(WeightsError, match="more category files than heads"):
        label_files(["a", "b", "c"])


def test_reimport_checkpoint_with_new_labels(tmp_path, tiny_checkpoint):
    config = tiny_config()
    labels = write_labels(tmp_path, config)
    result = import_network(tiny_checkpoint, labels=labels)
    assert result.provenance["source_format"] == "soundnet-cli"
    assert result.model.config.heads[1].labels == read_labels(labels["scenes"])
    out = result.save(tmp_path / "copy.safetensors")
    original = load_checkpoint(tiny_checkpoint).build()
    wave = waveform(seed=15)
    ours = our_activations(load_checkpoint(out).build(), wave)
    ref = our_activations(original, wave)
    assert all(rel_err(ours[k], ref[k]) == 0 for k in ref)


def test_full_size_soundnet8_t7(tmp_path):
    """The real shapes (14.35 M parameters, 1000 + 401 categories) import and compute alike."""
    config = make_config("soundnet8", original_heads("soundnet8"))
    params = original_params(config, seed=16)
    t7 = write_original_t7(tmp_path / "soundnet8_final.t7", params, config, cudnn=True)
    labels = write_labels(tmp_path, config)
    result = import_network(t7, labels=labels)
    model = result.model
    counts = model.parameter_count()
    assert counts["trunk"] == pytest.approx(2.87e6, rel=0.01)
    assert counts["total"] == pytest.approx(14.35e6, rel=0.01)
    assert [h.classes for h in model.config.heads] == [1000, 401]
    wave = waveform(seconds=11.0, seed=17)
    ours = our_activations(model, wave)
    ref = torch7_reference(params, config, wave)
    for name in ("conv1", "pool5", "conv7", "objects", "scenes"):
        assert rel_err(ours[name], ref[name]) <= TOL, name


def test_tag_answer_matches_original_procedure(tmp_path):
    """The original's extract_predictions.lua: tile to >= 10 s (repeatTensor), softmax over
    categories per step, report the arg-max at step ceil(T/2) (1-based)."""
    config = tiny_config()
    params = original_params(config, seed=18)
    t7 = write_original_t7(tmp_path / "soundnet8_final.t7", params, config)
    labels = write_labels(tmp_path, config)
    model = import_network(t7, labels=labels).model
    assert (model.config.tile_seconds, model.config.input_scale) == (10.0, 256.0)
    assert model.config.head_names == ("objects", "scenes")

    clip = waveform(seconds=3.0, seed=19)
    reps = math.ceil(10 * 22050 / clip.size)  # sound:repeatTensor(1, 1, ceil(min/len), 1)
    ref = torch7_reference(params, config, np.tile(clip, reps))
    ours = our_activations(model, tile(clip, min_tag_samples(model)))
    for head in ("objects", "scenes"):
        names = read_labels(labels[head])
        ref_p = torch.softmax(torch.from_numpy(ref[head]), dim=0).numpy()
        our_p = torch.softmax(torch.from_numpy(ours[head]), dim=0).numpy()
        assert our_p.shape == ref_p.shape and our_p.shape[1] >= 1
        assert np.allclose(our_p.sum(axis=0), 1.0)
        assert np.max(np.abs(our_p - ref_p)) <= TOL
        mid = math.ceil(ref_p.shape[1] / 2) - 1
        assert names[int(np.argmax(our_p[:, mid]))] == names[int(np.argmax(ref_p[:, mid]))]


def test_build_network_uses_tensor_widths():
    """Channel counts are read from the tensors, not assumed."""
    model = make_tiny_model()
    from soundnet_cli.weights.formats.source import BatchNormParams, ConvParams, SourceNetwork

    trunk = []
    for spec in model.config.convs:
        block = model.trunk[spec.name]
        trunk.append(ConvParams(spec.name, block.conv.weight.detach().numpy(),
                                block.conv.bias.detach().numpy(),
                                BatchNormParams(*(getattr(block.bn, k).detach().numpy() for k in
                                                  ("weight", "bias", "running_mean",
                                                   "running_var")))))
    heads = [ConvParams(h, model.heads[h].weight.detach().numpy(),
                        model.heads[h].bias.detach().numpy()) for h in model.config.head_names]
    built, notes = build_network(SourceNetwork("test", trunk, heads),
                                 labels={h.name: h.labels for h in model.config.heads})
    assert notes == []
    wave = waveform(seed=20)
    ours, ref = our_activations(built, wave), our_activations(model, wave)
    assert all(rel_err(ours[k], ref[k]) == 0 for k in ref)
