"""Importing SoundNet weights from other formats into soundnet-cli checkpoints.

:mod:`.formats` reads a file into a :class:`~.formats.source.SourceNetwork`;
:func:`~.formats.geometry.check_geometry` checks it against SoundNet-8/5 (kernel sizes, the
channel chain, head count, and strides, paddings and pools where the source records them); :func:`build_network`
fills a :class:`~soundnet_cli.model.SoundNet`, taking channel counts from the tensors (so narrow
networks of the same geometry import too) and category names from the original's
``categories_*.txt``. :func:`import_network` does all of it for one file and records provenance.

Missing BatchNorm statistics are imported as identity normalisation with a loud warning (one
public port drops them); shapes that do not fit are refused, naming the layer.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import SoundNetWarning, WeightsError
from .formats.detect import detect_format
from .formats.geometry import check_geometry
from .formats.source import (
    FORMATS,
    BatchNormParams,
    ConvParams,
    SourceNetwork,
    read_source,
)

#: The two heads of the original networks, in the order of the original's ConcatTable.
HEAD_NAMES = ("objects", "scenes")

__all__ = ["FORMATS", "HEAD_NAMES", "ImportResult", "build_network", "check_geometry",
           "detect_format", "import_network", "label_files", "read_labels", "read_source"]


@dataclass
class ImportResult:
    """An imported network: the eval-mode model, what to warn about, and its provenance."""

    model: Any  # SoundNet
    warnings: list[str]
    provenance: dict[str, Any]

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint atomically (:func:`~.checkpoint.save_checkpoint`)."""
        from .checkpoint import save_checkpoint

        return save_checkpoint(self.model, path, provenance=self.provenance)


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Category names, one per line (the original's ``categories_*.txt``), trailing blanks dropped.

    Lines are kept verbatim apart from surrounding whitespace, as the original prints them.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: cannot read category names: {e}") from e
    while lines and not lines[-1].strip():
        lines.pop()
    labels = tuple(line.strip() for line in lines)
    if not labels:
        raise WeightsError(f"{path}: no category names in the file")
    if "" in labels:
        raise WeightsError(f"{path}: line {labels.index('') + 1} is empty")
    return labels


def label_files(specs: Iterable[str], heads: Sequence[str] = HEAD_NAMES) -> dict[str, Path]:
    """Parse ``--labels`` values: ``HEAD=FILE`` or ``FILE``.

    Bare files go to the heads without a file, in order (``objects`` first, then ``scenes``).
    """
    out: dict[str, Path] = {}
    bare: list[Path] = []
    for spec in specs:
        head, sep, file = spec.partition("=")
        if sep and re.fullmatch(r"\w+", head) and not Path(spec).exists():
            out[head] = Path(file)
        else:
            bare.append(Path(spec))
    free = [h for h in heads if h not in out]
    if len(bare) > len(free):
        raise WeightsError(f"--labels: more category files than heads ({', '.join(heads)})")
    out.update(zip(free, bare))
    return out


# ---------------------------------------------------------------------------------------------
# Checking and building


def _bn_status(trunk: Sequence[ConvParams]) -> tuple[str, list[str]]:
    """``present``, ``missing`` or ``default`` (all-zero means, all-one variances)."""
    missing = [c.name for c in trunk
               if c.bn is None or c.bn.running_mean is None or c.bn.running_var is None]
    if missing:
        return "missing", missing
    if all(np.all(c.bn.running_mean == 0) and np.all(c.bn.running_var == 1)  # type: ignore[union-attr]
           for c in trunk):  # every bn and statistic is present: checked just above
        return "default", [c.name for c in trunk]
    return "present", []


def _order_heads(heads: list[ConvParams]) -> tuple[list[ConvParams], bool]:
    """Objects first: by size when the heads are 1000/401 wide, else by name hints, else as is."""
    sizes = [h.out_channels for h in heads]
    if sizes == [401, 1000]:
        return heads[::-1], True
    scene_hint = re.compile(r"scn|scene|place|_2$", re.I)
    if scene_hint.search(heads[0].name) and not scene_hint.search(heads[1].name):
        return heads[::-1], True
    return heads, False


def build_network(
    source: SourceNetwork,
    *,
    arch: str | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    input_scale: float = 256.0,
) -> tuple[Any, list[str]]:
    """Check ``source`` and fill a :class:`~soundnet_cli.model.SoundNet` with its weights.

    Parameters
    ----------
    labels
        ``{"objects": names, "scenes": names}``; a head without names gets placeholders
        (``object_0000`` ...). A count that differs from the head's width is refused.
    input_scale
        Stored in the config: 256 as the original's demo and feature scripts (512 as its
        ESC-50/DCASE evaluation).

    Returns
    -------
    (model, warnings)
        An eval-mode CPU model whose config has heads ``objects``/``scenes`` and
        ``tile_seconds`` 10, and human-readable warnings (missing BN statistics, placeholders).
    """
    import torch

    from ..model import (
        ORIGINAL_HEAD_GEOMETRY,
        ORIGINAL_HEAD_SKIP_LAST,
        HeadSpec,
        SoundNet,
        make_config,
        placeholder_labels,
    )

    arch = check_geometry(source, arch)
    notes: list[str] = []
    heads, swapped = _order_heads(list(source.heads))
    if swapped:
        notes.append(f"heads reordered: {heads[0].name} -> objects, {heads[1].name} -> scenes")
    labels = dict(labels or {})
    unknown = set(labels) - set(HEAD_NAMES)
    if unknown:
        raise WeightsError(f"labels for unknown heads {sorted(unknown)}; heads are "
                           f"{', '.join(HEAD_NAMES)}")
    k, s, p = ORIGINAL_HEAD_GEOMETRY[arch]
    head_specs = []
    for name, conv in zip(HEAD_NAMES, heads):
        names = labels.get(name)
        if names is None:
            names = placeholder_labels(name.rstrip("s"), conv.out_channels)
            notes.append(f"head {name}: no category file given, labels are placeholders "
                         f"({names[0]} ...)")
        elif len(names) != conv.out_channels:
            raise WeightsError(f"head {name} has {conv.out_channels} outputs but its category "
                               f"file has {len(names)} names")
        head_specs.append(HeadSpec(name, tuple(names), k, s, p, ORIGINAL_HEAD_SKIP_LAST[arch]))
    eps = _common_eps(source.trunk)
    preset = make_config(arch, head_specs, input_scale=input_scale)
    convs = tuple(dataclasses.replace(spec, out_channels=conv.out_channels)
                  for spec, conv in zip(preset.convs, source.trunk))
    config = dataclasses.replace(preset, convs=convs, bn_eps=eps, tile_seconds=10.0)
    status, layers = _bn_status(source.trunk)
    if status == "missing":
        notes.append(
            f"BATCHNORM STATISTICS MISSING in {', '.join(layers)}: imported as identity "
            "normalisation (mean 0, variance 1). Unless the source folded BatchNorm into its "
            "convolutions, activations will NOT match the original network. Import the "
            "original .t7 or a port that keeps running_mean/running_var instead.")
    elif status == "default":
        notes.append(
            "BATCHNORM STATISTICS ARE DEFAULTS (every running mean 0, every variance 1): the "
            "source port most likely dropped them; activations will NOT match the original. "
            "Import the original .t7 or a port that keeps running_mean/running_var instead.")
    model = SoundNet(config)
    state = _state_dict(source.trunk, heads, config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return model.eval(), notes


def _common_eps(trunk: Sequence[ConvParams]) -> float:
    values = {c.bn.eps for c in trunk if c.bn is not None and c.bn.eps is not None}
    if len(values) > 1:
        raise WeightsError(f"BatchNorm layers use different eps values {sorted(values)}; "
                           "SoundNet uses one (1e-5)")
    return float(values.pop()) if values else 1e-5


def _state_dict(trunk: Sequence[ConvParams], heads: Sequence[ConvParams],
                config: Any) -> dict[str, np.ndarray]:
    state: dict[str, np.ndarray] = {}
    for conv, spec in zip(trunk, config.convs):
        n = conv.out_channels
        bn = conv.bn or BatchNormParams()
        prefix = f"trunk.{spec.name}"
        state[f"{prefix}.conv.weight"] = conv.weight
        state[f"{prefix}.conv.bias"] = _or(conv.bias, np.zeros(n, np.float32))
        state[f"{prefix}.bn.weight"] = _or(bn.weight, np.ones(n, np.float32))
        state[f"{prefix}.bn.bias"] = _or(bn.bias, np.zeros(n, np.float32))
        state[f"{prefix}.bn.running_mean"] = _or(bn.running_mean, np.zeros(n, np.float32))
        state[f"{prefix}.bn.running_var"] = _or(bn.running_var, np.ones(n, np.float32))
        state[f"{prefix}.bn.num_batches_tracked"] = np.array(0, dtype=np.int64)
    for conv, spec in zip(heads, config.heads):
        state[f"heads.{spec.name}.weight"] = conv.weight
        state[f"heads.{spec.name}.bias"] = _or(conv.bias, np.zeros(conv.out_channels, np.float32))
    return state


def _or(value: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    return default if value is None else value


def import_network(
    path: str | os.PathLike,
    *,
    fmt: str = "auto",
    arch: str | None = None,
    labels: Mapping[str, str | os.PathLike] | None = None,
    member: str | None = None,
    input_scale: float = 256.0,
    provenance: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Convert a weights file into a SoundNet network ready to save as a checkpoint.

    Parameters
    ----------
    path
        A ``.t7``, the release ``.zip``, a ``.npy``/``.npz``, a PyTorch state dict, a
        safetensors file, or a soundnet-cli checkpoint.
    fmt
        One of :data:`FORMATS`; ``"auto"`` detects it from the content.
    arch
        ``"soundnet8"``/``"soundnet5"`` to insist on one (default: from the layer count); for the
        release zip it also picks the member.
    labels
        ``{"objects": path, "scenes": path}``: category files, one name per line.
    member
        The ``.t7`` inside a zip archive (default ``<arch>_final.t7``).
    provenance
        Extra provenance to record (a download adds its URLs).

    Returns
    -------
    ImportResult
        Also issues each warning as a :class:`~soundnet_cli.errors.SoundNetWarning`.
    """
    from .._version import __version__
    from .checkpoint import file_sha256

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    names = {head: read_labels(file) for head, file in (labels or {}).items()}
    detected = detect_format(path) if fmt == "auto" else fmt
    if detected == "soundnet-cli":
        notes: list[str] = []
        model, details = _reimport(path, names), {}
        status = "present"
    else:
        source = read_source(path, detected, member=member, arch=arch)
        try:
            model, notes = build_network(source, arch=arch, labels=names,
                                         input_scale=input_scale)
        except WeightsError as e:  # what the file holds does not fit: name the file
            message = str(e)
            raise WeightsError(message if str(path) in message else f"{path}: {message}") \
                from None
        details, status = source.details, _bn_status(source.trunk)[0]
    record = {
        "kind": "import",
        "source_format": detected,
        "source_file": path.name,
        "source_sha256": file_sha256(path),
        **details,
        "labels": {head: {"file": Path(file).name, "sha256": file_sha256(file)}
                   for head, file in (labels or {}).items()},
        "bn_statistics": status,
        "input_scale": model.config.input_scale,
        "imported_with": f"soundnet-cli {__version__}",
        "imported_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        **dict(provenance or {}),
    }
    if notes:
        record["warnings"] = list(notes)
    for note in notes:
        warnings.warn(f"{path.name}: {note}", SoundNetWarning, stacklevel=2)
    return ImportResult(model, notes, record)


def _reimport(path: Path, names: Mapping[str, Sequence[str]]) -> Any:
    """A soundnet-cli checkpoint, with head labels replaced where ``names`` gives them."""
    from ..model import SoundNet
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    heads = []
    for head in ckpt.config.heads:
        new = names.get(head.name)
        if new is not None and len(new) != head.classes:
            raise WeightsError(f"head {head.name} has {head.classes} outputs but its category "
                               f"file has {len(new)} names")
        heads.append(dataclasses.replace(head, labels=tuple(new)) if new is not None else head)
    unknown = set(names) - {h.name for h in heads}
    if unknown:
        raise WeightsError(f"{path}: no heads named {sorted(unknown)} (it has "
                           f"{', '.join(h.name for h in heads) or 'none'})")
    model = SoundNet(ckpt.config.with_heads(heads))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt.state_dict.items()}, strict=True)
    return model.eval()
