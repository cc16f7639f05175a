"""Reading SoundNet weights from other projects' files into one neutral form.

Formats (see ``docs/weights.md``):

- ``torch7``: the authors' Lua Torch7 networks (``soundnet8_final.t7``, ``soundnet5_final.t7``):
  ``nn.Sequential`` of ``(cudnn.|nn.)SpatialConvolution`` (weights ``(out, in, k, 1)``, time on the
  height axis), ``SpatialBatchNormalization``, ``ReLU``, ``SpatialMaxPooling`` and a
  ``ConcatTable`` holding the two heads; parsed by :mod:`soundnet_cli.weights.formats.torch7`.
- ``zip``: the authors' release archive holding those ``.t7`` files (read without unpacking).
- ``npy``: the TensorFlow port's ``sound8.npy``, a pickled ``{layer: {"weights" (k, 1, in, out),
  "biases", "gamma", "beta", "mean", "var"}}``, read by a restricted unpickler
  (:mod:`soundnet_cli.weights.formats.safeload`); ``.npz`` with ``layer/param`` keys likewise.
- ``torch``: PyTorch ports' state dicts (``Conv2d`` kernels ``(out, in, k, 1)`` or ``(out, in, 1,
  k)``, ``Conv1d`` kernels ``(out, in, k)``, any key names), read with ``weights_only=True``;
  ``safetensors`` files without a soundnet-cli header likewise.

Each becomes a :class:`SourceNetwork`: convolutions in forward order with kernels ``(out, in, k)``,
each trunk convolution with its BatchNorm, and what the source records about strides, paddings
and pools (``None`` where it records nothing). Checking it against SoundNet's geometry and
building the model is :mod:`soundnet_cli.weights.convert`'s job (the geometry check is
:mod:`.geometry`'s).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...errors import WeightsError
from .detect import detect_format
from .geometry import check_geometry

FORMATS = ("auto", "torch7", "zip", "npy", "torch", "safetensors", "soundnet-cli")


@dataclass
class BatchNormParams:
    """A BatchNorm layer's tensors, ``(channels,)`` each; ``None`` where the source lacks one."""

    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    eps: float | None = None


@dataclass
class ConvParams:
    """One convolution in canonical layout, with what the source says about its geometry.

    ``weight`` is ``(out, in, kernel)``; ``stride``/``padding``/``pool`` are ``None`` when the
    source format does not record them (state dicts), ``pool`` is 0 for "no pool follows".
    """

    name: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    bn: BatchNormParams | None = None
    stride: int | None = None
    padding: int | None = None
    pool: int | None = None

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class SourceNetwork:
    """A network read from some format, before it is checked and converted."""

    format: str
    trunk: list[ConvParams]
    heads: list[ConvParams]
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _f32(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise WeightsError(f"{what}: expected numbers, got {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise WeightsError(f"{what}: holds NaN or infinite values")
    return arr


def _kernel(w: np.ndarray, what: str) -> np.ndarray:
    """``(out, in, k)`` from ``(out, in, k)``, ``(out, in, k, 1)`` or ``(out, in, 1, k)``."""
    w = _f32(w, what)
    if w.ndim == 4:
        if w.shape[3] == 1:
            w = w[:, :, :, 0]
        elif w.shape[2] == 1:
            w = w[:, :, 0, :]
        else:
            raise WeightsError(f"{what}: a 2-D kernel {w.shape[2]}x{w.shape[3]}; SoundNet's "
                               "kernels are 1-D (one spatial size must be 1)")
    if w.ndim != 3:
        raise WeightsError(f"{what}: kernel of shape {tuple(w.shape)} is not a convolution")
    return np.ascontiguousarray(w)


def _vector(a: Any, n: int, what: str) -> np.ndarray | None:
    if a is None:
        return None
    v = _f32(a, what).reshape(-1)
    if v.shape[0] != n:
        raise WeightsError(f"{what}: {v.shape[0]} values for {n} channels")
    return v


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``conv2`` before ``conv10`` and ``conv8`` before ``conv8_2``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


# ---------------------------------------------------------------------------------------------
# Torch7


_T7_IGNORED = {
    "Sequential", "ConcatTable", "ParallelTable", "MapTable", "SplitTable", "FlattenTable",
    "ReLU", "Contiguous", "LogSoftMax", "SoftMax", "SpatialSoftMax", "Squeeze", "Identity",
    "Dropout", "SpatialDropout", "View", "Reshape", "Transpose",
}


def read_torch7_network(stream: Any, name: str = "network",
                        max_bytes: int | None = None) -> SourceNetwork:
    """Read an original SoundNet network from a Torch7 stream (file or zip member); at most
    ``max_bytes`` of storage (default :data:`.torch7.MAX_STORAGE_BYTES`)."""
    from .torch7 import MAX_STORAGE_BYTES, T7Object, read_t7, walk_modules

    try:
        root = read_t7(stream, MAX_STORAGE_BYTES if max_bytes is None else max_bytes)
    except WeightsError as e:
        raise WeightsError(f"{name}: {e}") from e
    if not isinstance(root, T7Object):
        raise WeightsError(f"{name}: the file holds a {type(root).__name__}, not a network")
    trunk: list[ConvParams] = []
    heads: list[ConvParams] = []
    for module, parents in walk_modules(root):
        kind = module.typename.rsplit(".", 1)[-1]
        in_heads = any(p.endswith("ConcatTable") for p in parents)
        where = f"{name}: {module.typename} #{len(trunk) + len(heads) + 1}"
        if kind in ("SpatialConvolution", "SpatialConvolutionMM"):
            conv = _t7_conv(module, where, len(heads if in_heads else trunk) + 1, in_heads)
            (heads if in_heads else trunk).append(conv)
        elif kind == "SpatialBatchNormalization":
            if in_heads or not trunk or trunk[-1].bn is not None:
                raise WeightsError(f"{where}: BatchNorm in an unexpected place")
            trunk[-1].bn = _t7_bn(module, trunk[-1].out_channels, where)
        elif kind == "SpatialMaxPooling":
            if in_heads or not trunk or trunk[-1].pool:
                raise WeightsError(f"{where}: max-pooling in an unexpected place")
            trunk[-1].pool = _t7_pool(module, where)
        elif kind not in _T7_IGNORED:
            raise WeightsError(f"{name}: unexpected module {module.typename}: not the original "
                               "SoundNet layout, refusing to guess")
    return SourceNetwork("torch7", trunk, heads)


def _t7_time_axis(module: Any) -> tuple[int, int, int]:
    """(kernel, stride, pad) along time: the original convolves along height (kW = 1)."""
    kh, kw = module.get("kH", 1), module.get("kW", 1)
    if kw == 1:
        return kh, module.get("dH", 1), module.get("padH", 0)
    return kw, module.get("dW", 1), module.get("padW", 0)


def _t7_conv(module: Any, where: str, index: int, head: bool) -> ConvParams:
    w = module.get("weight")
    if not isinstance(w, np.ndarray):
        raise WeightsError(f"{where}: convolution without a weight tensor")
    if w.ndim == 2:  # SpatialConvolutionMM of old Torch7: (out, in * kH * kW)
        n_in, kh, kw = module.get("nInputPlane"), module.get("kH"), module.get("kW")
        try:
            w = w.reshape(w.shape[0], n_in, kh, kw)
        except (TypeError, ValueError) as e:
            raise WeightsError(f"{where}: cannot reshape a 2-D weight: {e}") from e
    if (module.get("groups") or 1) != 1:
        raise WeightsError(f"{where}: grouped convolution is not SoundNet")
    kernel = _kernel(w, f"{where} weight")
    k, stride, pad = _t7_time_axis(module)
    if k != kernel.shape[2]:
        raise WeightsError(f"{where}: kernel size {k} disagrees with its weight {w.shape}")
    bias = _vector(module.get("bias"), kernel.shape[0], f"{where} bias")
    name = f"head{index}" if head else f"conv{index}"
    return ConvParams(name, kernel, bias, None, int(stride), int(pad), None if head else 0)


def _t7_bn(module: Any, channels: int, where: str) -> BatchNormParams:
    eps = float(module.get("eps", 1e-5))
    var = module.get("running_var")
    if var is None and module.get("running_std") is not None:
        # Torch7 nn before mid-2016 stored running_std = 1 / sqrt(var + eps).
        std = _f32(module.get("running_std"), f"{where} running_std").astype(np.float64)
        var = 1.0 / np.square(std) - eps
    return BatchNormParams(
        _vector(module.get("weight"), channels, f"{where} weight"),
        _vector(module.get("bias"), channels, f"{where} bias"),
        _vector(module.get("running_mean"), channels, f"{where} running_mean"),
        _vector(var, channels, f"{where} running_var"),
        eps,
    )


def _t7_pool(module: Any, where: str) -> int:
    k, stride, pad = _t7_time_axis(module)
    if stride != k or pad:
        raise WeightsError(f"{where}: pooling with kernel {k}, stride {stride}, pad {pad}; "
                           "SoundNet pools with stride = kernel and no padding")
    if module.get("ceil_mode"):
        raise WeightsError(f"{where}: ceil-mode pooling is not SoundNet's")
    return int(k)


def read_release_archive(path: Path, member: str | None = None,
                         arch: str | None = None) -> SourceNetwork:
    """Read one ``.t7`` network from the authors' zip archive, without unpacking it to disk.

    ``member`` names the file (its base name is enough); by default ``<arch>_final.t7``
    (``soundnet8_final.t7`` unless ``arch`` says otherwise).
    """
    from .safeload import ZIP_ERRORS

    wanted = member or f"{arch or 'soundnet8'}_final.t7"
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(".t7")]
            match = [n for n in names if n == wanted or n.rsplit("/", 1)[-1] == wanted]
            if not match:
                raise WeightsError(f"{path}: no {wanted} in the archive; it holds "
                                   f"{', '.join(names) or 'no .t7 files'} (choose with --member)")
            info = z.getinfo(match[0])
            _check_member_size(path, info)
            with z.open(info) as stream:
                source = read_torch7_network(stream, f"{path}:{match[0]}", info.file_size)
    except WeightsError:
        raise
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: corrupt zip archive: {e}") from e
    source.format = "zip"
    source.details["member"] = match[0]
    return source


#: A zip member may expand to at most this many times its compressed size plus
#: :data:`_MEMBER_SLACK` (trained float weights barely compress, about 1.1x; a zip bomb expands a
#: thousandfold, and low-entropy bytes 30x would cost memory far beyond the archive's size).
MAX_ZIP_RATIO = 4
_MEMBER_SLACK = 16 << 20


def _check_member_size(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a zip member before reading it when its declared size is implausible."""
    from .torch7 import MAX_STORAGE_BYTES

    limit = min(MAX_STORAGE_BYTES + _MEMBER_SLACK,
                MAX_ZIP_RATIO * info.compress_size + _MEMBER_SLACK)
    if info.file_size > limit:
        raise WeightsError(f"{path}: member {info.filename} would expand to {info.file_size:,} "
                           f"bytes from {info.compress_size:,} (at most {limit:,} accepted); "
                           "not the authors' archive")


# ---------------------------------------------------------------------------------------------
# Dicts of arrays: the TensorFlow port's .npy and PyTorch/safetensors state dicts


#: Parameter names used by ports, mapped to ours: conv weight/bias, BN weight/bias/mean/var.
_PARAM_ALIASES = {
    "weights": "weight", "kernel": "weight", "w": "weight", "weight": "weight",
    "biases": "bias", "b": "bias", "bias": "bias",
    "gamma": "bn_weight", "scale": "bn_weight",
    "beta": "bn_bias", "offset": "bn_bias",
    "mean": "running_mean", "moving_mean": "running_mean", "running_mean": "running_mean",
    "var": "running_var", "moving_variance": "running_var", "running_var": "running_var",
}
_IGNORED_PARAMS = {"num_batches_tracked"}


def read_tf_npy(path: Path) -> SourceNetwork:
    """Read the TensorFlow port's ``sound8.npy`` (or a ``.npz`` with ``layer/param`` keys).

    Kernels there are ``(k, 1, in, out)`` (TensorFlow's HWIO with time as height); layers are
    named ``conv1`` ... ``conv7``, ``conv8`` (objects) and ``conv8_2`` (scenes).
    """
    from .safeload import load_npy, load_npz

    if zipfile.is_zipfile(path):
        flat = load_npz(path)
        data: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            layer, _, param = key.replace(".", "/").rpartition("/")
            data.setdefault(layer, {})[param] = value
    else:
        data = load_npy(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise WeightsError(f"{path}: expected a dict of per-layer dicts of arrays (as the "
                           "TensorFlow port's sound8.npy), got a "
                           f"{type(data).__name__}")
    layers = []
    for layer in sorted(data, key=lambda k: natural_key(_str(k))):
        params: dict[str, Any] = {}
        for key, value in data[layer].items():
            param = _str(key)
            if param not in _PARAM_ALIASES:
                raise WeightsError(f"{path}: unexpected parameter {_str(layer)}/{param}")
            params[_PARAM_ALIASES[param]] = value
        if "weight" not in params:
            raise WeightsError(f"{path}: layer {_str(layer)} has no weights")
        w = _f32(params["weight"], f"{path}: {_str(layer)} weights")
        if w.ndim == 4:  # HWIO -> OIHW
            w = w.transpose(3, 2, 0, 1)
        elif w.ndim == 3:  # (k, in, out) of a Conv1D port
            w = w.transpose(2, 1, 0)
        layers.append((_str(layer), {**params, "weight": w}))
    return _from_param_groups("npy", layers, path)


def _str(key: Any) -> str:
    return key.decode("latin1") if isinstance(key, bytes) else str(key)


def read_state_dict(path: Path, fmt: str) -> SourceNetwork:
    """Read a PyTorch state dict (``.pth``/``.pt``) or a plain safetensors file."""
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        try:
            tensors: Mapping[str, Any] = load_file(str(path))
        except Exception as e:
            raise WeightsError(f"{path}: corrupt safetensors file: {e}") from e
    else:
        from .safeload import load_torch

        tensors = _unwrap_state_dict(load_torch(path), path)
    groups: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        key = str(key)
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        layer, _, param = key.rpartition(".")
        if param in _IGNORED_PARAMS:
            continue
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        groups.setdefault(layer, {})[param] = arr
    layers = []
    for layer, params in groups.items():
        w = params.get("weight")
        is_conv = w is not None and np.ndim(w) >= 3
        renamed: dict[str, Any] = {}
        for param, value in params.items():
            if param not in ("weight", "bias", "running_mean", "running_var"):
                raise WeightsError(f"{path}: unexpected tensor {layer}.{param}")
            renamed[param if is_conv or param.startswith("running") else f"bn_{param}"] = value
        layers.append((layer, renamed))
    return _from_param_groups("torch" if fmt == "torch" else fmt, layers, path)


#: Keys of the resumable state ``soundnet train`` and ``distill`` write (training/loop.py).
RUN_STATE_KEYS = frozenset({"epoch", "model", "model_config", "optimizer", "scheduler"})


def run_state_message(path: Path) -> str:
    """What to do with ``RUN_DIR/state.pt``: its networks are checkpoints already."""
    run = path.parent
    return (f"{path} is the resumable training state of a `soundnet train`/`distill` run, not a "
            f"network; the run's networks are checkpoints already: {run / 'last.safetensors'} "
            f"(and best.safetensors, model.safetensors): use one with --weights, or `soundnet "
            f"weights import {run / 'last.safetensors'} --name NAME` to call it by a name")


def is_run_state(obj: Any) -> bool:
    """Whether a loaded torch file is a training run's ``state.pt``."""
    return isinstance(obj, Mapping) and RUN_STATE_KEYS <= set(obj)


def _unwrap_state_dict(obj: Any, path: Path) -> Mapping[str, Any]:
    import torch

    if is_run_state(obj):
        raise WeightsError(run_state_message(path))
    for _ in range(3):  # {"state_dict": {...}}, {"model": {...}} ...
        if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor)
                                                    for v in obj.values()):
            return obj
        if isinstance(obj, Mapping):
            inner = [v for k, v in obj.items() if k in ("state_dict", "model", "model_state_dict",
                                                         "net", "network", "weights")]
            if len(inner) == 1:
                obj = inner[0]
                continue
        break
    raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")


def _from_param_groups(fmt: str, layers: list[tuple[str, dict[str, Any]]],
                       path: Path) -> SourceNetwork:
    """Turn named parameter groups into convolutions with their BatchNorms.

    A group with a weight of 3+ dimensions is a convolution; one with BN parameters attaches to
    the convolution before it (or, in TF-style dicts, sits in the same group). The last two
    convolutions are the heads. Tries the file's own order first, then natural name order.
    """
    errors = []
    for order in (layers, sorted(layers, key=lambda item: natural_key(item[0]))):
        try:
            source = _sequence(fmt, order, path)
            check_geometry(source)
            return source
        except WeightsError as e:
            errors.append(e)
    raise errors[0]


def _sequence(fmt: str, layers: list[tuple[str, dict[str, Any]]], path: Path) -> SourceNetwork:
    convs: list[ConvParams] = []
    for layer, params in layers:
        label = f"{path}: {layer or '<top level>'}"
        if "weight" in params:
            w = _kernel(params["weight"], f"{label} weight")
            convs.append(ConvParams(layer, w, _vector(params.get("bias"), w.shape[0],
                                                      f"{label} bias")))
        bn_keys = {"bn_weight", "bn_bias", "running_mean", "running_var"} & set(params)
        if not bn_keys:
            continue
        if not convs or convs[-1].bn is not None:
            raise WeightsError(f"{label}: BatchNorm parameters without a convolution before them")
        n = convs[-1].out_channels
        weight, bias, mean, var = (_vector(params.get(k), n, f"{label} {k}")
                                   for k in ("bn_weight", "bn_bias", "running_mean", "running_var"))
        convs[-1].bn = BatchNormParams(weight, bias, mean, var)
    if len(convs) < 3:
        raise WeightsError(f"{path}: found {len(convs)} convolutions; SoundNet has 9 (SoundNet-8) "
                           "or 6 (SoundNet-5), heads included")
    trunk, heads = convs[:-2], convs[-2:]
    for h in heads:
        if h.bn is not None:
            raise WeightsError(f"{path}: {h.name} is in a head's place but has BatchNorm; "
                               "SoundNet's two heads are plain convolutions")
    return SourceNetwork(fmt, trunk, heads)


# ---------------------------------------------------------------------------------------------
# Any format


def read_source(path: str | os.PathLike, fmt: str = "auto", *, member: str | None = None,
                arch: str | None = None) -> SourceNetwork:
    """Read any supported file into a :class:`SourceNetwork` (``fmt`` "auto" detects it)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    if fmt not in FORMATS:
        raise WeightsError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "torch7":
        with open(path, "rb") as f:
            return read_torch7_network(f, str(path), path.stat().st_size)
    if fmt == "zip":
        return read_release_archive(path, member, arch)
    if fmt == "npy":
        return read_tf_npy(path)
    if fmt in ("torch", "safetensors"):
        return read_state_dict(path, fmt)
    raise WeightsError(f"{path}: {fmt} files are not read as a source network")


