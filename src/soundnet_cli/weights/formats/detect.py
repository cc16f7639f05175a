"""What a weights file is, from its first bytes (and, for zips, its members): one of the formats
:mod:`.source` reads, or a soundnet-cli checkpoint (:mod:`soundnet_cli.weights.checkpoint`).

Torch-free, so telling a user what a file is costs no torch import.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from ...errors import WeightsError

#: The ``format`` metadata of a soundnet-cli checkpoint (written and checked by
#: :mod:`soundnet_cli.weights.checkpoint`): it tells the project's checkpoints from other
#: safetensors files.
FORMAT_NAME = "soundnet-cli"


def detect_format(path: str | os.PathLike) -> str:
    """Guess a weights file's format from its first bytes (and, for zips, its members)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e}") from e
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        from .safeload import ZIP_ERRORS

        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except ZIP_ERRORS as e:
            raise WeightsError(f"{path}: corrupt zip file: {e}") from e
        if any(n.endswith(".t7") for n in names):
            return "zip"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if path.suffix == ".npz":
            return "npy"
        raise WeightsError(f"{path}: a zip archive with neither .t7 networks nor a PyTorch file")
    # safetensors before pickles: a header length whose lowest byte is 0x80 (the pickle opcode
    # PROTO) is still safetensors when its JSON header follows.
    if len(head) >= 9 and head[8:9] == b"{":
        size = int.from_bytes(head[:8], "little")
        if 0 < size < 100_000_000:
            return _safetensors_kind(path)
    if head[:1] == b"\x80":  # a pickle: PyTorch's legacy (pre-1.6) serialisation
        return "torch"
    if int.from_bytes(head[:4], "little") in (3, 4):  # Torch7: a table or a Torch object
        return "torch7"
    raise WeightsError(f"{path}: unknown weights format (expected a Torch7 .t7, the release .zip, "
                       "a .npy/.npz dict, a PyTorch state dict or safetensors)")


def _safetensors_kind(path: Path) -> str:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise WeightsError(f"{path}: corrupt safetensors file: {e}") from e
    return "soundnet-cli" if meta.get("format") == FORMAT_NAME else "safetensors"
