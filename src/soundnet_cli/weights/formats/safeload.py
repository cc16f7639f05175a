"""Reading other projects' weight files without executing anything from them.

- ``.npy`` files holding a pickled ``dict`` (the TensorFlow port's ``sound8.npy``, written by
  ``np.save(path, dict)``) need unpickling, which can run arbitrary code. :func:`load_npy` parses
  the ``.npy`` header itself and unpickles the payload with :class:`RestrictedUnpickler`, which
  resolves only the handful of NumPy names an array needs (``_reconstruct``, ``ndarray``,
  ``dtype``, ``scalar``) and ``_codecs.encode`` (how protocol-2 pickles spell ``bytes``); any
  other global, e.g. ``os.system``, is refused. Plain numeric ``.npy``/``.npz`` files are read with
  ``allow_pickle=False``.
- PyTorch files are read with ``torch.load(weights_only=True)`` (tensors and plain containers
  only); a file that pickles a whole ``nn.Module`` is refused with a way out.

Memory is bounded by the file: a plain array's header must not declare more bytes than follow it
(:func:`read_array`), pickled payloads are unpickled from the bytes actually read, and a ``.npz``
member may not expand beyond :data:`MAX_ZIP_RATIO` times its compressed size (:func:`read_npz`,
also used for saved SVMs).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from ...errors import WeightsError

NPY_MAGIC = b"\x93NUMPY"
#: A ``.npz`` member may expand to at most this many times its compressed size plus
#: :data:`_ZIP_SLACK` bytes (``np.savez`` stores arrays uncompressed; a zip bomb expands 1000x).
MAX_ZIP_RATIO = 100
_ZIP_SLACK = 16 << 20
#: What ``zipfile`` raises for a corrupt archive (a mangled name is a UnicodeDecodeError, a bad
#: stream a zlib.error, ...).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
              NotImplementedError, KeyError, IndexError, struct.error, __import__("zlib").error)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The NumPy callables an array pickle refers to, under every module name NumPy used."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {("_codecs", "encode"): __import__("codecs").encode}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "ndarray")] = np.ndarray
        allowed[(module, "dtype")] = np.dtype
    allowed[("collections", "OrderedDict")] = dict
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only NumPy arrays, scalars and plain Python containers."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only NumPy arrays and plain containers are "
                "allowed in a weights file") from None


def _read_npy_header(f: IO[bytes]) -> dict[str, Any]:
    if f.read(6) != NPY_MAGIC:
        raise WeightsError("not a .npy file")
    try:
        major, _minor = f.read(2)
        if major == 1:
            (length,) = struct.unpack("<H", f.read(2))
        elif major in (2, 3):
            (length,) = struct.unpack("<I", f.read(4))
        else:
            raise WeightsError(f".npy format version {major} is not supported")
    except (ValueError, struct.error) as e:
        raise WeightsError("truncated .npy header") from e
    if length > 1 << 16:  # numpy's own limit is 10,000 bytes
        raise WeightsError(f".npy header of {length:,} bytes is implausible")
    raw = f.read(length)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as e:
        raise WeightsError(f"corrupt .npy header: {e}") from e
    if not isinstance(header, dict) or not {"descr", "shape"} <= set(header):
        raise WeightsError("corrupt .npy header")
    return header


def read_array(f: IO[bytes], available: int) -> np.ndarray:
    """A plain (no objects) ``.npy`` array from ``f`` (positioned at its magic), of which at
    most ``available`` bytes remain; a header declaring more data than that is refused before
    anything is allocated. Raises :class:`WeightsError` (the caller names the file)."""
    start = f.tell()
    header = _read_npy_header(f)
    try:
        dtype = np.dtype(header["descr"])
        shape = tuple(int(n) for n in header["shape"])
    except (TypeError, ValueError) as e:
        raise WeightsError(f"corrupt .npy header: {e}") from e
    if dtype.hasobject:
        raise WeightsError("the array holds Python objects (pickled data), which is refused")
    need = dtype.itemsize
    for n in shape:
        if n < 0:
            raise WeightsError(f"corrupt .npy header: negative dimension in {shape}")
        need *= n
    left = available - (f.tell() - start)
    if need > left:
        raise WeightsError(f".npy header declares shape {shape} ({need:,} bytes) but only "
                           f"{max(left, 0):,} bytes follow: truncated or corrupt")
    f.seek(start)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise WeightsError(f"corrupt .npy data: {e}") from e


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, checked before reading: members of plausible size (see
    :data:`MAX_ZIP_RATIO`) holding plain arrays (:func:`read_array`). Raises
    :class:`WeightsError` naming the file."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > MAX_ZIP_RATIO * info.compress_size + _ZIP_SLACK:
                    raise WeightsError(f"member {info.filename} would expand to "
                                       f"{info.file_size:,} bytes from {info.compress_size:,}")
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as member:
                    out[name] = read_array(member, info.file_size)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    except ZIP_ERRORS as e:
        raise WeightsError(f"{path}: not a readable .npz (zip) file: {e}") from e
    return out


def load_npy(path: str | os.PathLike) -> Any:
    """Read a ``.npy`` file safely.

    Returns the array, or for a 0-d object array (``np.save`` of a ``dict``) the object itself.
    Raises :class:`WeightsError` naming the file for anything refused or malformed.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = _read_npy_header(f)
            if header["descr"] != "|O":
                f.seek(0)
                return read_array(f, path.stat().st_size)
            # Unpickle from the bytes read: a length the pickle declares cannot allocate more.
            payload = io.BytesIO(f.read())
            try:
                obj = RestrictedUnpickler(payload, encoding="latin1").load()
            except pickle.UnpicklingError as e:
                raise WeightsError(f"{path}: {e}") from e
            except Exception as e:  # malformed pickles raise many types
                raise WeightsError(f"{path}: corrupt pickled .npy payload: {e}") from e
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e}") from e
    except WeightsError as e:
        if str(path) in str(e):
            raise
        raise WeightsError(f"{path}: {e}") from e
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of a ``.npz`` file (no pickles allowed; see :func:`read_npz`)."""
    return read_npz(path)


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that say what to do."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path}: holds pickled Python objects beyond tensors (for example a whole "
            "nn.Module); loading it would run code from the file, so it is refused. Where the "
            "file was made, save only the weights: torch.save(model.state_dict(), 'sd.pth'), "
            f"then import that. ({str(e).splitlines()[0]})") from e
    except Exception as e:  # noqa: BLE001 - a corrupt file may make the reader raise anything
        raise WeightsError(f"{path}: not a readable PyTorch file: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
