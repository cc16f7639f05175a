"""A minimal Torch7 binary writer for tests, and the original SoundNet's module layout.

``write_t7`` writes what Lua's ``torch.save`` writes (little-endian, 8-byte longs): tables,
strings, numbers, booleans, Torch objects, tensors and storages, with shared references. The
module layout follows the original ``main_train.lua``/``main_train_small.lua``: an
``nn.Sequential`` of conv/BN/ReLU(/pool) blocks, a ``ConcatTable`` of the two heads and the
split/flatten/log-softmax tail; ``shared=True`` packs every parameter into one storage as
``net:getParameters()`` does before the original saves.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import torch

_STORAGE = {np.dtype(np.float32): "torch.FloatStorage", np.dtype(np.float64): "torch.DoubleStorage",
            np.dtype(np.int64): "torch.LongStorage"}


@dataclass(eq=False)
class Module:
    typename: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Storage:
    data: np.ndarray
    cuda: bool = False


@dataclass(eq=False)
class Tensor:
    storage: Storage | None
    offset: int  # 0-based
    size: tuple[int, ...]
    stride: tuple[int, ...]


def tensor(array: np.ndarray, cuda: bool = False) -> Tensor:
    """A contiguous tensor with its own storage."""
    a = np.ascontiguousarray(array)
    strides = tuple(s // a.itemsize for s in a.strides)
    return Tensor(Storage(a.reshape(-1), cuda), 0, a.shape, strides)


class _Writer:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.ids: dict[int, int] = {}

    def i32(self, v: int) -> None:
        self.f.write(struct.pack("<i", v))

    def i64s(self, vs) -> None:
        self.f.write(struct.pack(f"<{len(vs)}q", *vs))

    def string(self, s: str | bytes) -> None:
        b = s.encode() if isinstance(s, str) else s
        self.i32(len(b))
        self.f.write(b)

    def ref(self, obj: Any) -> bool:
        """Write the reference id; True when the object was written before."""
        if id(obj) in self.ids:
            self.i32(self.ids[id(obj)])
            return True
        self.ids[id(obj)] = len(self.ids) + 1
        self.i32(self.ids[id(obj)])
        return False

    def obj(self, o: Any) -> None:
        if o is None:
            self.i32(0)
        elif isinstance(o, bool):
            self.i32(5)
            self.i32(1 if o else 0)
        elif isinstance(o, (int, float)):
            self.i32(1)
            self.f.write(struct.pack("<d", float(o)))
        elif isinstance(o, (str, bytes)):
            self.i32(2)
            self.string(o)
        elif isinstance(o, (dict, list)):
            self.i32(3)
            if self.ref(o):
                return
            items = list(o.items()) if isinstance(o, dict) else list(enumerate(o, 1))
            self.i32(len(items))
            for k, v in items:
                self.obj(k)
                self.obj(v)
        elif isinstance(o, np.ndarray):
            self.obj(tensor(o))
        else:
            self.i32(4)
            if self.ref(o):
                return
            self.string("V 1")
            if isinstance(o, Tensor):
                kind = _STORAGE[o.storage.data.dtype].replace("Storage", "Tensor")
                if o.storage.cuda:
                    kind = kind.replace("torch.Float", "torch.Cuda")
                self.string(kind)
                self.i32(len(o.size))
                self.i64s(o.size)
                self.i64s(o.stride)
                self.i64s([o.offset + 1])
                self.obj(o.storage)
            elif isinstance(o, Storage):
                kind = _STORAGE[o.data.dtype]
                if o.cuda:
                    kind = kind.replace("torch.Float", "torch.Cuda")
                self.string(kind)
                self.i64s([o.data.shape[0]])
                little = o.data.astype(o.data.dtype.newbyteorder("<"))
                self.f.write(np.ascontiguousarray(little).tobytes())
            else:
                self.string(o.typename)
                self.obj(o.fields)


def write_t7(obj: Any, f: BinaryIO) -> None:
    _Writer(f).obj(obj)


# ---------------------------------------------------------------------------------------------
# The original network layout


def _conv(prefix: str, cin: int, w: Any, b: Any, k: int, s: int, p: int) -> Module:
    cout = w.size[0] if isinstance(w, Tensor) else w.shape[0]
    return Module(f"{prefix}.SpatialConvolution", {
        "nInputPlane": cin, "nOutputPlane": cout, "kW": 1, "kH": k, "dW": 1, "dH": s,
        "padW": 0, "padH": p, "weight": w, "bias": b, "train": False, "_type": "torch.FloatTensor",
        "output": np.zeros(0, np.float32), "gradInput": np.zeros(0, np.float32),
    })


def _pack(arrays: list[np.ndarray], cuda: bool) -> list[Tensor]:
    """Views into one shared storage, like ``net:getParameters()``."""
    flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float32)
    storage = Storage(flat, cuda)
    out, offset = [], 0
    for a in arrays:
        strides = [1] * a.ndim
        for i in range(a.ndim - 2, -1, -1):
            strides[i] = strides[i + 1] * a.shape[i + 1]
        out.append(Tensor(storage, offset, tuple(a.shape), tuple(strides)))
        offset += a.size
    return out


def soundnet_module(params: dict[str, dict[str, np.ndarray]], config, *, cudnn: bool = False,
                    shared: bool = True, running_std: bool = False) -> Module:
    """The original network as Torch7 modules.

    ``params[name]`` holds arrays in the original layout: ``weight`` ``(out, in, k, 1)``,
    ``bias``; trunk layers also ``bn_weight``, ``bn_bias``, ``running_mean``, ``running_var``.
    ``config`` supplies names and geometry (a :class:`~soundnet_cli.model.SoundNetConfig`).
    ``running_std`` writes BN statistics the pre-2016 way (``1 / sqrt(var + eps)``).
    """
    prefix = "cudnn" if cudnn else "nn"
    order = [(c.name, k) for c in config.convs
             for k in ("weight", "bias", "bn_weight", "bn_bias")] + \
            [(h.name, k) for h in config.heads for k in ("weight", "bias")]
    arrays = [params[n][k] for n, k in order]
    views = dict(zip(order, _pack(arrays, cudnn) if shared else [tensor(a, cudnn) for a in arrays]))
    modules: list[Module] = []
    cin = 1
    for c in config.convs:
        modules.append(_conv(prefix, cin, views[c.name, "weight"], views[c.name, "bias"],
                             c.kernel, c.stride, c.padding))
        p = params[c.name]
        bn = {"weight": views[c.name, "bn_weight"], "bias": views[c.name, "bn_bias"],
              "running_mean": tensor(p["running_mean"], cudnn), "eps": 1e-5, "momentum": 0.1,
              "affine": True, "train": False, "nDim": 4}
        if running_std:
            bn["running_std"] = tensor((1.0 / np.sqrt(p["running_var"] + 1e-5)).astype(np.float32))
        else:
            bn["running_var"] = tensor(p["running_var"], cudnn)
        modules.append(Module(f"{prefix}.SpatialBatchNormalization", bn))
        modules.append(Module(f"{prefix}.ReLU", {"inplace": True, "threshold": 0, "val": 0}))
        if c.pool:
            modules.append(Module(f"{prefix}.SpatialMaxPooling", {
                "kW": 1, "kH": c.pool, "dW": 1, "dH": c.pool, "padW": 0, "padH": 0,
                "ceil_mode": False}))
        cin = c.out_channels
    heads = [_conv(prefix, cin, views[h.name, "weight"], views[h.name, "bias"],
                   h.kernel, h.stride, h.padding) for h in config.heads]
    modules.append(Module("nn.ConcatTable", {"modules": heads}))
    modules.append(Module("nn.ParallelTable", {"modules": [
        Module("nn.SplitTable", {"dimension": 3}), Module("nn.SplitTable", {"dimension": 3})]}))
    modules.append(Module("nn.FlattenTable", {}))
    modules.append(Module("nn.ParallelTable", {"modules": [
        Module("nn.Sequential", {"modules": [Module("nn.Contiguous"), Module("nn.LogSoftMax"),
                                             Module("nn.Squeeze")]}) for _ in range(8)]}))
    return Module("nn.Sequential", {"modules": modules, "train": False,
                                    "_type": "torch.CudaTensor" if cudnn else "torch.FloatTensor"})


def original_params(config, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Random weights in the original layout: kernels (out, in, k, 1), BN vectors."""
    rng = np.random.default_rng(seed)
    params, cin = {}, 1
    for c in config.convs:
        n = c.out_channels
        params[c.name] = {
            "weight": (rng.standard_normal((n, cin, c.kernel, 1)) / math.sqrt(cin * c.kernel)),
            "bias": 0.1 * rng.standard_normal(n),
            "bn_weight": rng.uniform(0.5, 1.5, n), "bn_bias": 0.1 * rng.standard_normal(n),
            "running_mean": 0.5 * rng.standard_normal(n), "running_var": rng.uniform(0.5, 3.0, n),
        }
        cin = n
    for h in config.heads:
        params[h.name] = {
            "weight": rng.standard_normal((h.classes, cin, h.kernel, 1))
            / math.sqrt(cin * h.kernel),
            "bias": 0.1 * rng.standard_normal(h.classes),
        }
    return {n: {k: v.astype(np.float32) for k, v in p.items()} for n, p in params.items()}


def original_t7_bytes(config, seed: int = 0, **kw) -> bytes:
    """A whole random network in the original's .t7 form, as bytes."""
    buf = io.BytesIO()
    write_t7(soundnet_module(original_params(config, seed), config, **kw), buf)
    return buf.getvalue()


def flat_state_dict(params, config, bn: str = "real") -> dict[str, torch.Tensor]:
    """Another port's naming: convN/batchnormN modules, heads conv8_objs/conv8_scns.
    ``bn``: "real", "default" (the port that drops the statistics) or "none"."""
    sd = {}
    for i, c in enumerate(config.convs, 1):
        p = params[c.name]
        sd[f"conv{i}.weight"] = torch.from_numpy(p["weight"])
        sd[f"conv{i}.bias"] = torch.from_numpy(p["bias"])
        if bn == "none":
            continue
        n = c.out_channels
        real = bn == "real"
        sd[f"batchnorm{i}.weight"] = torch.from_numpy(p["bn_weight"]) if real else torch.ones(n)
        sd[f"batchnorm{i}.bias"] = torch.from_numpy(p["bn_bias"]) if real else torch.zeros(n)
        sd[f"batchnorm{i}.running_mean"] = \
            torch.from_numpy(p["running_mean"]) if real else torch.zeros(n)
        sd[f"batchnorm{i}.running_var"] = \
            torch.from_numpy(p["running_var"]) if real else torch.ones(n)
        sd[f"batchnorm{i}.num_batches_tracked"] = torch.tensor(0)
    objs, scns = config.heads
    sd["conv8_objs.weight"] = torch.from_numpy(params[objs.name]["weight"])
    sd["conv8_objs.bias"] = torch.from_numpy(params[objs.name]["bias"])
    sd["conv8_scns.weight"] = torch.from_numpy(params[scns.name]["weight"])
    sd["conv8_scns.bias"] = torch.from_numpy(params[scns.name]["bias"])
    return sd
