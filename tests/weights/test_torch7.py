"""The Torch7 reader: values, shared references, bounds checks, and agreement with torchfile."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from helpers.torch7_writer import Module, Storage, Tensor, tensor, write_t7

from soundnet_cli.errors import WeightsError
from soundnet_cli.weights.formats.torch7 import LuaFunction, T7Object, read_t7, walk_modules


def roundtrip(obj) -> object:
    buf = io.BytesIO()
    write_t7(obj, buf)
    buf.seek(0)
    return read_t7(buf)


def test_plain_values():
    value = {"n": 3, "x": 0.25, "s": "relu", "t": True, "f": False, "list": [1, 2, "three"],
             7: "sparse"}
    assert roundtrip(value) == value
    assert roundtrip(None) is None


def test_tensors_views_and_shared_storage():
    storage = Storage(np.arange(24, dtype=np.float32))
    a = Tensor(storage, 0, (2, 3), (3, 1))
    b = Tensor(storage, 6, (3, 2), (1, 3))  # a transposed view further along
    out = roundtrip(Module("nn.Thing", {"a": a, "b": b, "same": a, "cuda": tensor(
        np.ones((2, 2), np.float32), cuda=True), "double": np.eye(2)}))
    assert isinstance(out, T7Object) and out.typename == "nn.Thing"
    assert np.array_equal(out.get("a"), np.arange(6).reshape(2, 3))
    assert np.array_equal(out.get("b"), np.arange(6, 12).reshape(2, 3).T)
    assert out.get("same") is out.get("a")
    assert out.get("cuda").dtype == np.float32 and out.get("double").dtype == np.float64
    assert out.get("a").flags.writeable  # a copy, not a view into the file's buffer


def test_self_reference_and_containers():
    inner = Module("nn.ReLU", {})
    seq = Module("nn.Sequential", {"modules": [inner, Module("nn.ConcatTable", {
        "modules": [Module("nn.SpatialConvolution", {}), Module("nn.SpatialConvolution", {})]})]})
    seq.fields["self"] = seq
    out = roundtrip(seq)
    assert out.get("self") is out
    walked = [(m.typename, parents) for m, parents in walk_modules(out)]
    assert walked == [
        ("nn.Sequential", ()), ("nn.ReLU", ("nn.Sequential",)),
        ("nn.ConcatTable", ("nn.Sequential",)),
        ("nn.SpatialConvolution", ("nn.Sequential", "nn.ConcatTable")),
        ("nn.SpatialConvolution", ("nn.Sequential", "nn.ConcatTable")),
    ]


def test_functions_stay_opaque():
    buf = io.BytesIO()
    buf.write(struct.pack("<iii", 6, 1, 4) + b"\x1bLua")  # function #1: 4 bytes of bytecode
    buf.write(struct.pack("<i", 0))  # no upvalues
    buf.seek(0)
    fn = read_t7(buf)
    assert fn == LuaFunction(b"\x1bLua", None)


def _tensor_bytes(size, stride, offset, count) -> bytes:
    out = struct.pack("<ii", 4, 1) + struct.pack("<i", 3) + b"V 1"
    out += struct.pack("<i", 17) + b"torch.FloatTensor"
    out += struct.pack("<i", len(size)) + struct.pack(f"<{len(size)}q", *size)
    out += struct.pack(f"<{len(stride)}q", *stride) + struct.pack("<q", offset)
    out += struct.pack("<ii", 4, 2) + struct.pack("<i", 3) + b"V 1"
    out += struct.pack("<i", 18) + b"torch.FloatStorage" + struct.pack("<q", count)
    return out + np.zeros(count, np.float32).tobytes()


def test_tensor_past_its_storage_is_refused():
    ok = read_t7(io.BytesIO(_tensor_bytes([2, 2], [2, 1], 1, 4)))
    assert ok.shape == (2, 2)
    with pytest.raises(WeightsError, match="reaches past its storage"):
        read_t7(io.BytesIO(_tensor_bytes([2, 2], [2, 1], 2, 4)))
    with pytest.raises(WeightsError, match="negative"):
        read_t7(io.BytesIO(_tensor_bytes([2, 2], [-2, 1], 4, 4)))


def test_truncated_and_garbage():
    data = _tensor_bytes([4], [1], 1, 4)
    with pytest.raises(WeightsError, match="truncated"):
        read_t7(io.BytesIO(data[:-3]))
    with pytest.raises(WeightsError, match="unknown type tag 99"):
        read_t7(io.BytesIO(struct.pack("<i", 99)))
    # a storage claiming 2**40 elements must fail before allocating them: over the cap, or (under
    # a larger cap) on the missing bytes
    huge = struct.pack("<ii", 4, 1) + struct.pack("<i", 3) + b"V 1" + struct.pack("<i", 18)
    huge += b"torch.FloatStorage" + struct.pack("<q", 2 ** 40)
    with pytest.raises(WeightsError, match="more than the 1,073,741,824 allowed"):
        read_t7(io.BytesIO(huge))
    with pytest.raises(WeightsError, match="truncated"):
        read_t7(io.BytesIO(huge), max_bytes=2 ** 43)


def test_agrees_with_torchfile(tmp_path):
    """An independent reader (torchfile, PyPI) sees the same values in what the test writer
    writes, so the writer speaks real Torch7 and the reader is checked against a second one."""
    torchfile = pytest.importorskip("torchfile")
    storage = Storage(np.linspace(-1, 1, 30, dtype=np.float32))
    module = Module("cudnn.SpatialConvolution", {
        "weight": Tensor(storage, 2, (2, 3, 4, 1), (12, 4, 1, 1)), "kH": 4, "padH": 2,
        "bias": Tensor(storage, 26, (2,), (1,)), "name": "conv1"})
    path = tmp_path / "m.t7"
    with open(path, "wb") as f:
        write_t7(module, f)
    theirs = torchfile.load(str(path))
    with open(path, "rb") as f:
        ours = read_t7(f)
    assert theirs._typename == b"cudnn.SpatialConvolution" == ours.typename.encode()
    assert np.array_equal(theirs["weight"], ours.get("weight"))
    assert np.array_equal(theirs["bias"], ours.get("bias"))
    assert theirs["kH"] == ours.get("kH") == 4
