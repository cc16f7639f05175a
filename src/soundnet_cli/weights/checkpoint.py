"""The checkpoint format: one safetensors file, tensors plus a JSON header, never pickle.

Layout of a ``.safetensors`` checkpoint:

- tensors: the model's ``state_dict`` (float32, or float16 when saved with ``half=True``; BN
  running statistics always float32), keys as in :class:`~soundnet_cli.model.SoundNet`;
- metadata (strings): ``format`` = ``"soundnet-cli"``, ``format_version`` (an integer, see
  :data:`FORMAT_VERSION`), ``config`` (the :class:`~soundnet_cli.model.SoundNetConfig` as JSON)
  and ``provenance`` (free JSON: how the weights were made, data, command, metrics).

Loading reads only tensors and JSON, so a checkpoint can never execute code. Older format versions
are migrated on load by :data:`_MIGRATIONS`. :func:`load_checkpoint` validates everything before
anything is built: every config value (:class:`~soundnet_cli.model.SoundNetConfig` checks its own
ranges), the tensor names and shapes the config implies (worked out without allocating), and
that every floating-point tensor is finite. A file that fails any of these is a
:class:`~soundnet_cli.errors.WeightsError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..errors import WeightsError
from ..files.fsutil import atomic_path
from ..files.jsonutil import loads as strict_json
from ..model import SoundNet, SoundNetConfig
from .formats.detect import FORMAT_NAME, detect_format

#: Bumped whenever the layout changes; loaders migrate older versions.
FORMAT_VERSION = 1
#: Most tensors and header bytes a checkpoint may declare (SoundNet-8 with three heads has about
#: 60 tensors and a 60 KB header, most of it labels): a file declaring more is refused before
#: anything is allocated for what it lists.
MAX_TENSORS = 4096
MAX_HEADER_BYTES = 8 << 20
#: ``{version: function(metadata dict, tensors dict) -> (metadata, tensors) of version + 1}``.
_MIGRATIONS: dict[int, Callable[[dict[str, Any], dict[str, torch.Tensor]],
                                tuple[dict[str, Any], dict[str, torch.Tensor]]]] = {}


@dataclass
class Checkpoint:
    """A loaded checkpoint: config, tensors and provenance, plus the file's SHA-256."""

    config: SoundNetConfig
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: Path | None = None

    def build(self) -> SoundNet:
        """Instantiate the network (CPU, eval mode) with these weights."""
        model = SoundNet(self.config)
        missing, unexpected = model.load_state_dict(
            {k: v.float() for k, v in self.state_dict.items()}, strict=False
        )
        if missing or unexpected:
            raise WeightsError(
                f"{self.path or 'checkpoint'}: tensors do not match its config "
                f"(missing: {sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})"
            )
        model.eval()
        model.provenance = dict(self.provenance)
        model.source = str(self.path) if self.path else ""
        return model


def save_checkpoint(
    model: SoundNet,
    path: str | os.PathLike,
    *,
    provenance: Mapping[str, Any] | None = None,
    half: bool | str = False,
) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path.

    ``half`` stores weights as float16 (about half the size); BatchNorm running statistics stay
    float32. ``half="heads"`` halves only the convolutional heads, keeping the trunk and the small
    pooled heads exact (the
    embedded network: the authors' trunk in float32, its large heads in float16). Loading always
    yields float32.
    """
    from safetensors.torch import save_file

    if half not in (False, True, "heads"):
        raise ValueError(f"half must be True, False or 'heads', not {half!r}")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        t = value.detach().cpu().contiguous()
        halved = half is True or (half == "heads" and key.startswith("heads."))
        if halved and t.is_floating_point() and "running_" not in key:
            t = t.half()
        tensors[key] = t.clone()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": model.config.to_json(),
        "provenance": json.dumps(dict(provenance or {}), sort_keys=True, default=str),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint file. Raises :class:`WeightsError` for anything that is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    _check_header_size(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            names = list(f.keys())
            # Checked before any tensor is built: 200,000 empty tensors cost ~3 KB each.
            if metadata.get("format") == FORMAT_NAME and len(names) > MAX_TENSORS:
                raise WeightsError(f"{path}: lists {len(names):,} tensors; a soundnet-cli "
                                   f"checkpoint holds at most {MAX_TENSORS:,}")
            tensors = ({k: f.get_tensor(k) for k in names}
                       if metadata.get("format") == FORMAT_NAME else {})
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(_not_a_checkpoint(path, e)) from e
    if metadata.get("format") != FORMAT_NAME:
        raise WeightsError(f"{path}: safetensors file without a soundnet-cli header; "
                           "convert it with `soundnet weights import`")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError as e:
        raise WeightsError(f"{path}: bad format_version {metadata.get('format_version')!r}") from e
    if version > FORMAT_VERSION:
        raise WeightsError(f"{path}: checkpoint format {version} is newer than this soundnet-cli "
                           f"understands ({FORMAT_VERSION}); upgrade soundnet-cli")
    while version < FORMAT_VERSION:
        if version not in _MIGRATIONS:
            raise WeightsError(f"{path}: no migration from checkpoint format {version}")
        metadata, tensors = _MIGRATIONS[version](metadata, tensors)
        version += 1
    try:
        # NaN allowed here: from_dict names the value ("input_scale is nan")
        config = SoundNetConfig.from_dict(strict_json(metadata["config"], constants=True))
        provenance = strict_json(metadata.get("provenance", "{}"))
    except (KeyError, ValueError) as e:  # strict_json: also NaN and nesting too deep
        raise WeightsError(f"{path}: checkpoint header is malformed: {e}") from e
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    if not isinstance(provenance, dict):
        raise WeightsError(f"{path}: checkpoint provenance is not a JSON object")
    check_tensors(config, tensors, str(path))
    return Checkpoint(config, tensors, provenance, file_sha256(path), path)


class _Shapes(SoundNet):
    """A network built only for its tensors' names and shapes: no initial values.

    Initialising meta tensors (``nn.init.normal_``) runs torch's Python reference
    implementation, whose first call imports ``torch._dynamo``: 3-4 s of every command's start-up
    (benchmarks/RESULTS.md, "Sharding and scale")."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Nothing: meta tensors hold no values."""


def expected_tensors(config: SoundNetConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """``{name: (shape, floating)}`` of the state dict a network of ``config`` has, worked out on
    torch's meta device (nothing is allocated, whatever the config asks for)."""
    with torch.device("meta"):
        model = _Shapes(config)
    return {k: (tuple(v.shape), v.is_floating_point()) for k, v in model.state_dict().items()}


def check_tensors(config: SoundNetConfig, tensors: Mapping[str, torch.Tensor],
                  where: str = "checkpoint") -> None:
    """Raise :class:`WeightsError` unless ``tensors`` are exactly what ``config`` needs: the same
    names, shapes and kinds, every floating-point value finite (NaN weights would make every
    output NaN)."""
    want = expected_tensors(config)
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    if missing or unexpected:
        raise WeightsError(f"{where}: tensors do not match its config (missing: {missing[:5]}, "
                           f"unexpected: {unexpected[:5]})")
    for name, (shape, floating) in want.items():
        t = tensors[name]
        if tuple(t.shape) != shape:
            raise WeightsError(f"{where}: tensor {name} has shape {tuple(t.shape)}, its config "
                               f"needs {shape}")
        if t.is_floating_point() != floating:
            raise WeightsError(f"{where}: tensor {name} has dtype {t.dtype}")
        if floating and not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{where}: tensor {name} holds NaN or infinite values")


def _check_header_size(path: Path) -> None:
    """Refuse a safetensors header longer than :data:`MAX_HEADER_BYTES` before parsing it (its
    JSON becomes Python objects many times its size)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise WeightsError(f"{path}: cannot read: {e.strerror or e}") from e
    size = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:9] == b"{" and size > MAX_HEADER_BYTES:
        raise WeightsError(f"{path}: its safetensors header declares {size:,} bytes; a "
                           f"soundnet-cli checkpoint's is at most {MAX_HEADER_BYTES:,}")


def _not_a_checkpoint(path: Path, e: Exception) -> str:
    """What to say about a file safetensors cannot open: another weights format gets the
    command that converts it."""
    try:
        kind = detect_format(path)
    except WeightsError:
        kind = None
    if kind and kind not in ("soundnet-cli", "safetensors"):
        return (f"{path}: not a soundnet-cli checkpoint but a {kind} weights file; convert it "
                f"with `soundnet weights import {path}` and use the result")
    return f"{path}: not a soundnet-cli checkpoint (safetensors): {e}"


def rewrite_provenance(path: str | os.PathLike, provenance: Mapping[str, Any],
                       out: str | os.PathLike | None = None) -> Path:
    """Replace a checkpoint's provenance (in place, or into ``out``), keeping every tensor as it
    is stored (same dtype, same bytes) and every other header field; returns the written path.

    For records added after training (e.g. a training-data record,
    :mod:`soundnet_cli.provenance`); the network's fingerprint does not change.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    load_checkpoint(path)  # a soundnet-cli checkpoint of a version this code reads
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata["provenance"] = json.dumps(dict(provenance), sort_keys=True, default=str)
    target = Path(out) if out is not None else Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


def load_model_file(path: str | os.PathLike) -> SoundNet:
    """Load a checkpoint file into an eval-mode CPU :class:`SoundNet`."""
    return load_checkpoint(path).build()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(model: SoundNet) -> str:
    """The network's :attr:`~soundnet_cli.model.SoundNet.fingerprint` (of its current weights)."""
    return model.fingerprint
