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
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import WeightsError

NPY_MAGIC = b"\x93NUMPY"


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


def _read_npy_header(f: io.BufferedIOBase) -> dict[str, Any]:
    if f.read(6) != NPY_MAGIC:
        raise WeightsError("not a .npy file")
    major, _minor = f.read(2)
    if major == 1:
        (length,) = struct.unpack("<H", f.read(2))
    elif major in (2, 3):
        (length,) = struct.unpack("<I", f.read(4))
    else:
        raise WeightsError(f".npy format version {major} is not supported")
    raw = f.read(length)
    try:
        header = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin1"))
    except (ValueError, SyntaxError) as e:
        raise WeightsError(f"corrupt .npy header: {e}") from e
    if not isinstance(header, dict) or not {"descr", "shape"} <= set(header):
        raise WeightsError("corrupt .npy header")
    return header


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
                return np.load(f, allow_pickle=False)
            try:
                obj = RestrictedUnpickler(f, encoding="latin1").load()
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
    """Read every array of a ``.npz`` file (no pickles allowed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: cannot read .npz: {e}") from e


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
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable PyTorch file: {e}") from e
