"""A minimal, safe reader for Torch7's binary serialisation (``torch.save`` in Lua, ``.t7``).

The original SoundNet networks were saved by Lua Torch7. This reader turns such a file into plain
Python data: numbers, strings, booleans, ``dict``/``list`` for Lua tables, NumPy arrays for tensors
and storages, and :class:`T7Object` (a class name plus its fields) for every other Torch class such
as ``nn.SpatialConvolution``. It never instantiates a class named by the file and never runs code:
serialised Lua functions are kept as opaque bytes.

Format (little-endian, as written by 64-bit Linux/macOS Torch7; ``long`` is 8 bytes):

- every object starts with an ``int32`` type tag: 0 nil, 1 number (``float64``), 2 string
  (``int32`` length + bytes), 3 table, 4 Torch object, 5 boolean (``int32``), 6/7/8 function;
- tables, Torch objects and functions then carry an ``int32`` reference id: an id seen before is a
  reference to the same object (shared storages, e.g. after ``net:getParameters()``);
- a table is an ``int32`` pair count and that many key/value objects;
- a Torch object is a version string (``"V 1"``) and its class name, then for tensors ``int32``
  ndim, ``int64`` sizes, ``int64`` strides, ``int64`` 1-based storage offset and the storage
  object; for storages ``int64`` element count and the raw elements; for anything else the
  object's field table.

Tensor views are bounds-checked against their storage, so a corrupt file raises
:class:`~soundnet_cli.errors.WeightsError` instead of reading outside memory.

Memory is bounded by the file, never by what it declares: storages are read in pieces (a bogus
size meets the end of the file, not an allocation), their total is capped (``max_bytes``, by
default :data:`MAX_STORAGE_BYTES`; SoundNet-8 holds about 57 MB), a tensor may not have more
elements than its storage (a stride-0 view of one number cannot become a gigabyte), and all
tensors together may not exceed the storages read plus :data:`_SLACK`.
"""

from __future__ import annotations

import builtins  # _Reader has a method named int, which annotations in its body would see
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from ...errors import WeightsError

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8
_REFERENCED = (TYPE_TABLE, TYPE_TORCH, TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION,
               TYPE_RECUR_FUNCTION)

#: Element type of each tensor/storage class. CUDA classes hold the same bytes once saved; the
#: float CUDA classes are ``torch.CudaTensor``/``torch.CudaStorage`` (no "Float").
_KINDS = {"Byte": np.uint8, "Char": np.int8, "Short": np.int16, "Int": np.int32,
          "Long": np.int64, "Float": np.float32, "Double": np.float64}
_DTYPES: dict[str, np.dtype] = {}
for _kind, _dtype in _KINDS.items():
    for _name in (f"torch.{_kind}", "torch.Cuda" if _kind == "Float" else f"torch.Cuda{_kind}"):
        _DTYPES[f"{_name}Tensor"] = _DTYPES[f"{_name}Storage"] = np.dtype(_dtype).newbyteorder("<")

_CHUNK = 1 << 26  # read storages in 64 MiB pieces: a bogus size cannot allocate memory up front
_MAX_DIMS = 16
#: Most storage bytes one file may hold (the largest original network is about 57 MB).
MAX_STORAGE_BYTES = 1 << 30
#: Tensor bytes allowed beyond the storage bytes read (small views, empty tensors).
_SLACK = 1 << 20


@dataclass
class T7Object:
    """A Torch class instance that is not a tensor or storage: its class name and its fields."""

    typename: str
    fields: Any = field(default=None, repr=False)
    version: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the object (``None``/``default`` when absent or not a table)."""
        return self.fields.get(key, default) if isinstance(self.fields, dict) else default


@dataclass(frozen=True)
class LuaFunction:
    """A serialised Lua function, kept as opaque bytecode (never loaded or run)."""

    bytecode: bytes
    upvalues: Any


class _Reader:
    def __init__(self, f: BinaryIO, max_bytes: int = MAX_STORAGE_BYTES) -> None:
        self.f = f
        self.objects: dict[int, Any] = {}
        self.max_bytes = int(max_bytes)
        self.storage_bytes = 0
        self.tensor_bytes = 0

    # -- primitives ---------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        if n <= _CHUNK:
            data = self.f.read(n)
        else:  # a declared length is not trusted with an allocation: read what is there
            pieces, left = [], n
            while left:
                piece = self.f.read(min(left, _CHUNK))
                if not piece:
                    break
                pieces.append(piece)
                left -= len(piece)
            data = b"".join(pieces)
        if len(data) != n:
            raise WeightsError("Torch7 file is truncated")
        return data

    def int(self) -> int:
        return struct.unpack("<i", self._read_exact(4))[0]

    def long(self) -> builtins.int:
        return struct.unpack("<q", self._read_exact(8))[0]

    def longs(self, n: builtins.int) -> list[builtins.int]:
        return list(struct.unpack(f"<{n}q", self._read_exact(8 * n))) if n else []

    def string(self) -> bytes:
        n = self.int()
        if n < 0:
            raise WeightsError(f"Torch7 file has a string of negative length {n}")
        return self._read_exact(n)

    # -- objects ------------------------------------------------------------------------------
    def obj(self) -> Any:
        tag = self.int()
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            x = struct.unpack("<d", self._read_exact(8))[0]
            return int(x) if x.is_integer() else x
        if tag == TYPE_STRING:
            return _text(self.string())
        if tag == TYPE_BOOLEAN:
            return self.int() == 1
        if tag not in _REFERENCED:
            raise WeightsError(f"not a Torch7 file, or a corrupt one (unknown type tag {tag})")
        index = self.int()
        if index in self.objects:
            return self.objects[index]
        if tag == TYPE_TABLE:
            return self._table(index)
        if tag == TYPE_TORCH:
            return self._torch(index)
        bytecode = self.string()
        self.objects[index] = None
        self.objects[index] = LuaFunction(bytecode, self.obj())
        return self.objects[index]

    def _table(self, index: builtins.int) -> dict | list:
        table: dict[Any, Any] = {}
        self.objects[index] = table  # before the contents: tables may refer to themselves
        n = self.int()
        if n < 0:
            raise WeightsError(f"Torch7 file has a table of negative size {n}")
        for _ in range(n):
            key = self.obj()
            table[_hashable(key)] = self.obj()
        if table and all(isinstance(k, int) for k in table) and set(table) == set(
                range(1, len(table) + 1)):
            as_list = [table[i] for i in range(1, len(table) + 1)]
            self.objects[index] = as_list
            return as_list
        return table

    def _torch(self, index: builtins.int) -> Any:
        version_text = self.string()
        if version_text.startswith(b"V "):
            try:
                version = int(float(version_text[2:]))
            except ValueError as e:
                raise WeightsError(f"Torch7 file has a bad version {version_text!r}") from e
            typename = _text(self.string())
        else:  # written before Torch7 versioned its classes
            version, typename = 0, _text(version_text)
        if typename.endswith("Storage") and typename in _DTYPES:
            self.objects[index] = self._storage(_DTYPES[typename])
        elif typename.endswith("Tensor") and typename in _DTYPES:
            self.objects[index] = self._tensor(_DTYPES[typename])
        elif "Half" in typename and typename.endswith(("Tensor", "Storage")):
            raise WeightsError(f"{typename} is not supported: convert the network with "
                               "net:float() in Torch7 and save it again")
        else:
            obj = T7Object(typename, version=version)
            self.objects[index] = obj  # before the fields, for self-references
            obj.fields = self.obj()
        return self.objects[index]

    def _storage(self, dtype: np.dtype) -> np.ndarray:
        count = self.long()
        if count < 0:
            raise WeightsError(f"Torch7 file has a storage of negative size {count}")
        nbytes = count * dtype.itemsize
        if self.storage_bytes + nbytes > self.max_bytes:
            raise WeightsError(f"Torch7 file declares {self.storage_bytes + nbytes:,} bytes of "
                               f"storage, more than the {self.max_bytes:,} allowed (SoundNet "
                               "networks hold under 100 MB)")
        self.storage_bytes += nbytes
        # Grown piece by piece in place: joining a list of pieces would hold the data twice.
        data, remaining = bytearray(), nbytes
        while remaining:
            piece = self._read_exact(min(remaining, _CHUNK))
            data += piece
            remaining -= len(piece)
        return np.frombuffer(data, dtype=dtype)

    def _tensor(self, dtype: np.dtype) -> np.ndarray:
        ndim = self.int()
        if not 0 <= ndim <= _MAX_DIMS:
            raise WeightsError(f"Torch7 file has a tensor with {ndim} dimensions")
        size, stride = self.longs(ndim), self.longs(ndim)
        offset = self.long() - 1
        storage = self.obj()
        if ndim == 0 or storage is None or any(s == 0 for s in size):
            shape = [max(s, 0) for s in size] if ndim else [0]
            return np.zeros(shape, dtype=dtype.newbyteorder("="))
        if not isinstance(storage, np.ndarray) or storage.dtype != dtype:
            raise WeightsError("Torch7 file has a tensor whose storage is of another type")
        if offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise WeightsError("Torch7 file has a tensor with a negative size, stride or offset")
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.shape[0]:
            raise WeightsError("Torch7 file has a tensor that reaches past its storage")
        elements = 1
        for n in size:
            elements *= n
        if elements > storage.shape[0]:  # overlapping (e.g. stride-0) views amplify memory
            raise WeightsError(f"Torch7 file has a tensor view of {elements:,} elements on a "
                               f"storage of {storage.shape[0]:,}")
        self.tensor_bytes += elements * dtype.itemsize
        if self.tensor_bytes > self.storage_bytes + _SLACK:
            raise WeightsError("Torch7 file's tensors add up to more than its storages hold")
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * dtype.itemsize for s in stride])
        return np.array(view, dtype=dtype.newbyteorder("="))  # a native-order copy


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _hashable(key: Any) -> Any:
    """Lua tables may be keyed by tables; Python dicts need hashable keys."""
    try:
        hash(key)
        return key
    except TypeError:
        return ("<table key>", id(key))


def read_t7(f: BinaryIO, max_bytes: int = MAX_STORAGE_BYTES) -> Any:
    """Read one object (usually the saved network) from a binary Torch7 stream.

    Parameters
    ----------
    f
        Any object with ``read(n)`` (a file opened ``"rb"``, a zip member stream).
    max_bytes
        Most storage bytes to accept (see the module docs); more is a :class:`WeightsError`.

    Returns
    -------
    The object tree: ``T7Object`` for classes, ``np.ndarray`` for tensors (copied, native byte
    order), ``list`` for tables with keys 1..n, ``dict`` for other tables.

    Raises
    ------
    WeightsError
        Truncated, corrupt or unsupported content (the caller adds the file name).
    """
    try:
        return _Reader(f, max_bytes).obj()
    except RecursionError as e:
        raise WeightsError("Torch7 file nests tables too deeply") from e
    except (struct.error, OverflowError, MemoryError, ValueError) as e:
        raise WeightsError(f"corrupt Torch7 file: {e}") from e


def walk_modules(obj: Any) -> list[tuple[T7Object, tuple[str, ...]]]:
    """Every ``nn`` module inside ``obj`` in forward order, depth first.

    Returns ``(module, containers)`` pairs where ``containers`` lists the class names of the
    enclosing container modules (``nn.Sequential``, ``nn.ConcatTable`` ...), outermost first.
    Containers themselves are included too.
    """
    out: list[tuple[T7Object, tuple[str, ...]]] = []

    def visit(o: Any, parents: tuple[str, ...], depth: int) -> None:
        if depth > 64:
            raise WeightsError("Torch7 network nests containers too deeply")
        if not isinstance(o, T7Object):
            return
        out.append((o, parents))
        children = o.get("modules")
        if isinstance(children, dict):  # a sparse table: keep numeric order
            children = [children[k] for k in sorted(k for k in children if isinstance(k, int))]
        if isinstance(children, list):
            for child in children:
                visit(child, parents + (o.typename,), depth + 1)

    visit(obj, (), 0)
    return out
