"""SoundNet as data: the frozen config a checkpoint carries, its validation, and the presets.

The config describes every layer (:class:`ConvSpec` blocks, :class:`HeadSpec` heads over the last
block, :class:`PooledHeadSpec` heads over a layer's time statistics), so one network class serves
SoundNet-8, SoundNet-5 and the tiny networks the tests use; loading never needs CLI flags.
Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..audio import SAMPLE_RATE
from ..errors import WeightsError


@dataclass(frozen=True)
class ConvSpec:
    """One Conv1d -> BatchNorm1d -> ReLU block, optionally followed by a max-pool.

    ``kernel``, ``stride`` and ``padding`` are in frames of the block's input; ``pool`` is the
    max-pool kernel and stride (0: no pool), whose output is addressable as ``pool_name``.
    """

    name: str
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool: int = 0
    pool_name: str | None = None


@dataclass(frozen=True)
class HeadSpec:
    """One output head: a Conv1d (no BN, no ReLU) over the last block, one channel per label.

    ``skip_last`` is how many frames at the end of the last block the head never reads. The
    trunk's even kernels with half-kernel padding give every layer one extra frame at the right
    end, computed mostly from zero padding; the authors trained their heads on 20-s clips, whose
    steps never read conv7's last frame (15 frames, 4 steps of 8 frames, stride 2). A step that
    reads it (at 10 s or 16 s, say) is garbage, so their heads skip it (``1``); at the training
    length that changes nothing. ``0`` (the default, and older checkpoints) reads every frame.

    ``min_conf`` is the head's default ``--min-conf`` (``None``: the tool's 0.5), measured for the
    network (benchmarks/abstention.py): the authors' heads spread their softmax over 1,000 and
    401 classes, so their best scores on real recordings are far below 0.5.
    """

    name: str
    labels: tuple[str, ...]
    kernel: int
    stride: int
    padding: int = 0
    skip_last: int = 0
    min_conf: float | None = None

    @property
    def classes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class PooledHeadSpec:
    """A head over the time statistics of one trunk layer: at every step, the mean and the max of
    the layer's frames in the step's window (``2 * channels`` values), then a small MLP
    (``Linear -> ReLU -> Linear``; ``hidden == 0``: one ``Linear``) to one logit per label.

    Steps are ``window`` frames of ``layer`` every ``stride`` frames from frame 0; an input with
    fewer than ``window`` frames is one step over all its frames. The embedded network's ``esc50``
    head reads pool5 with ``window`` 32 and ``stride`` 8: the steps of the objects and scenes heads
    (8 conv7 frames every 2). Its input standardisation is folded into the first ``Linear``.
    """

    name: str
    labels: tuple[str, ...]
    layer: str
    window: int
    stride: int
    hidden: int = 0
    min_conf: float | None = None

    @property
    def classes(self) -> int:
        return len(self.labels)

    def steps(self, frames: int) -> int:
        """Steps for ``frames`` frames of :attr:`layer` (0 for none)."""
        if frames <= 0:
            return 0
        return 1 if frames <= self.window else (frames - self.window) // self.stride + 1


@dataclass(frozen=True)
class SoundNetConfig:
    """Everything needed to rebuild a network; stored in every checkpoint.

    Attributes
    ----------
    arch
        ``"soundnet8"`` or ``"soundnet5"`` (informative; the layers below are authoritative).
    convs
        The trunk's blocks in order.
    heads
        The parallel output heads, each with its label names.
    head_stage
        Public name of the heads' stage (``conv8`` in SoundNet-8): addresses every head at once.
    sample_rate
        Input rate in Hz (22,050).
    input_scale
        Factor applied to [-1, 1] audio before the first layer (256 as the original; its ESC-50
        evaluation scripts used 512).
    bn_eps
        BatchNorm epsilon (1e-5).
    tile_seconds
        Inputs too short for the heads are tiled (circularly repeated) to at least this many
        seconds before tagging, as the original does (10 s).
    pooled_heads
        Heads over a trunk layer's statistics (:class:`PooledHeadSpec`), trained on the trunk as
        it is: any change of the trunk or of :attr:`heads` drops them.
    """

    arch: str
    convs: tuple[ConvSpec, ...]
    heads: tuple[HeadSpec, ...]
    head_stage: str = "conv8"
    sample_rate: int = SAMPLE_RATE
    input_scale: float = 256.0
    bn_eps: float = 1e-5
    tile_seconds: float = 10.0
    pooled_heads: tuple[PooledHeadSpec, ...] = ()

    def __post_init__(self) -> None:
        _validate_config(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SoundNetConfig":
        try:
            d = dict(d)
            d["convs"] = tuple(ConvSpec(**c) for c in _list(d["convs"], "convs"))
            d["heads"] = tuple(
                HeadSpec(**{**h, "labels": tuple(_list(h["labels"], "labels"))})
                for h in _list(d["heads"], "heads")
            )
            d["pooled_heads"] = tuple(
                PooledHeadSpec(**{**h, "labels": tuple(_list(h["labels"], "labels"))})
                for h in _list(d.get("pooled_heads", []), "pooled_heads")
            )
            return cls(**d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise WeightsError(f"checkpoint config is malformed: {e}") from e

    def with_heads(self, heads: Sequence[HeadSpec]) -> "SoundNetConfig":
        """The same trunk with other heads (fine-tuning, distillation); no pooled heads (they
        were trained on a trunk that is about to change)."""
        return dataclasses.replace(self, heads=tuple(heads), pooled_heads=())

    @property
    def head_names(self) -> tuple[str, ...]:
        """The convolutional heads (the ``conv8`` stage)."""
        return tuple(h.name for h in self.heads)

    @property
    def pooled_head_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.pooled_heads)


#: Bounds a config must keep (far beyond any SoundNet): a malformed or hostile checkpoint header is
#: refused before it can ask for absurd allocations (``tile_seconds: 1e9`` would tile every clip
#: to 31 years of audio).
MAX_CHANNELS, MAX_KERNEL, MAX_LABELS = 1 << 14, 1 << 16, 1 << 17
SAMPLE_RATE_RANGE = (1_000, 768_000)
MAX_TILE_SECONDS, MAX_INPUT_SCALE = 600.0, 1e6


def _list(value: Any, what: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{what} must be a list, got {type(value).__name__}")
    return list(value)


def _int_in(value: Any, what: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WeightsError(f"config {what} is {value!r}; expected an integer in [{low}, {high}]")


def _float_in(value: Any, what: str, low: float, high: float, *, open_low: bool = True) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and value <= high
    if not ok:
        bound = "(" if open_low else "["
        raise WeightsError(f"config {what} is {value!r}; expected a finite number in "
                           f"{bound}{low:g}, {high:g}]")


def _min_conf_in(value: Any, where: str) -> None:
    if value is not None:
        _float_in(value, f"{where}.min_conf", 0.0, 1.0, open_low=False)


def _head_named(h: Any, kind: "type[HeadSpec] | type[PooledHeadSpec]", group: str,
                names: set[str]) -> str:
    """Check a head's type, unique name and labels (adding the name to ``names``); returns its
    path in the config for messages (``heads.objects``)."""
    if not isinstance(h, kind) or not isinstance(h.name, str) or not h.name:
        raise WeightsError(f"config {group.replace('_', ' ')[:-1]} {h!r} is malformed")
    where = f"{group}.{h.name}"
    if h.name in names:
        raise WeightsError(f"config layer name {h.name!r} is used twice")
    names.add(h.name)
    if not 1 <= len(h.labels) <= MAX_LABELS or not all(isinstance(x, str) for x in h.labels):
        raise WeightsError(f"config {where}.labels must be 1 to {MAX_LABELS} strings")
    return where


def _validate_config(c: "SoundNetConfig") -> None:
    """Every value of a config in range (the one check, run whenever a config is made, so a
    checkpoint's header is validated on load). Raises :class:`WeightsError` naming the field."""
    if not isinstance(c.arch, str) or not isinstance(c.head_stage, str):
        raise WeightsError("config arch and head_stage must be strings")
    if not c.convs:
        raise WeightsError("config has no convolutions")
    names: set[str] = set()
    for spec in c.convs:
        if not isinstance(spec, ConvSpec) or not isinstance(spec.name, str) or not spec.name:
            raise WeightsError(f"config convolution {spec!r} is malformed")
        where = f"convs.{spec.name}"
        _int_in(spec.out_channels, f"{where}.out_channels", 1, MAX_CHANNELS)
        _int_in(spec.kernel, f"{where}.kernel", 1, MAX_KERNEL)
        _int_in(spec.stride, f"{where}.stride", 1, MAX_KERNEL)
        _int_in(spec.padding, f"{where}.padding", 0, MAX_KERNEL)
        _int_in(spec.pool, f"{where}.pool", 0, MAX_KERNEL)
        if spec.pool and spec.pool_name is not None and not isinstance(spec.pool_name, str):
            raise WeightsError(f"config {where}.pool_name must be a string")
        pool = (spec.pool_name or f"pool_{spec.name}") if spec.pool else None
        for n in (spec.name, pool):
            if n is not None and n in names:
                raise WeightsError(f"config layer name {n!r} is used twice")
            if n is not None:
                names.add(n)
    for h in c.heads:
        where = _head_named(h, HeadSpec, "heads", names)
        _int_in(h.kernel, f"{where}.kernel", 1, MAX_KERNEL)
        _int_in(h.stride, f"{where}.stride", 1, MAX_KERNEL)
        _int_in(h.padding, f"{where}.padding", 0, MAX_KERNEL)
        _int_in(h.skip_last, f"{where}.skip_last", 0, MAX_KERNEL)
        _min_conf_in(h.min_conf, where)
    layer_names = set(names) - {h.name for h in c.heads}
    for ph in c.pooled_heads:
        where = _head_named(ph, PooledHeadSpec, "pooled_heads", names)
        if ph.layer not in layer_names:
            raise WeightsError(f"config {where}.layer {ph.layer!r} is not a trunk layer")
        _int_in(ph.window, f"{where}.window", 1, MAX_KERNEL)
        _int_in(ph.stride, f"{where}.stride", 1, MAX_KERNEL)
        _int_in(ph.hidden, f"{where}.hidden", 0, MAX_CHANNELS)
        _min_conf_in(ph.min_conf, where)
    low, high = SAMPLE_RATE_RANGE
    _int_in(c.sample_rate, "sample_rate", low, high)
    _float_in(c.input_scale, "input_scale", 0.0, MAX_INPUT_SCALE)
    _float_in(c.bn_eps, "bn_eps", 0.0, 1.0)
    _float_in(c.tile_seconds, "tile_seconds", 0.0, MAX_TILE_SECONDS, open_low=False)


# ---------------------------------------------------------------------------------------------
# Presets (SOUNDNET.md tables)

#: (name, out channels, kernel, stride, padding, pool, pool name) of SoundNet-8's trunk.
_SOUNDNET8_TRUNK = (
    ("conv1", 16, 64, 2, 32, 8, "pool1"),
    ("conv2", 32, 32, 2, 16, 8, "pool2"),
    ("conv3", 64, 16, 2, 8, 0, None),
    ("conv4", 128, 8, 2, 4, 0, None),
    ("conv5", 256, 4, 2, 2, 4, "pool5"),
    ("conv6", 512, 4, 2, 2, 0, None),
    ("conv7", 1024, 4, 2, 2, 0, None),
)
_SOUNDNET5_TRUNK = (
    ("conv1", 32, 64, 2, 32, 8, "pool1"),
    ("conv2", 64, 32, 2, 16, 8, "pool2"),
    ("conv3", 128, 16, 2, 8, 8, "pool3"),
    ("conv4", 256, 8, 2, 4, 0, None),
)
#: Head geometry (kernel, stride, padding) of the original heads and of classifier heads.
ORIGINAL_HEAD_GEOMETRY = {"soundnet8": (8, 2, 0), "soundnet5": (16, 12, 4)}
#: Trailing trunk frames the original heads never saw in training (``HeadSpec.skip_last``):
#: SoundNet-8's 20-s training clips give conv7 15 frames and 4 steps reading frames 0-13.
#: SoundNet-5's conv4 has padding 4 = kernel/2 too, but its heads pad by 4 and read every frame.
ORIGINAL_HEAD_SKIP_LAST = {"soundnet8": 1, "soundnet5": 0}
#: The original fine-tuning replaced the heads by one kernel-4 conv over conv7 of 5 s inputs.
CLASSIFIER_HEAD_GEOMETRY = {"soundnet8": (4, 1, 0), "soundnet5": (16, 12, 4)}
_HEAD_STAGE = {"soundnet8": "conv8", "soundnet5": "conv5"}
ARCHITECTURES = tuple(_HEAD_STAGE)


def placeholder_labels(prefix: str, n: int) -> tuple[str, ...]:
    """``prefix_0000`` ... labels for heads whose category names are not known."""
    return tuple(f"{prefix}_{i:04d}" for i in range(n))


def original_heads(
    arch: str = "soundnet8",
    object_labels: Sequence[str] | None = None,
    scene_labels: Sequence[str] | None = None,
) -> tuple[HeadSpec, HeadSpec]:
    """The original two heads: ImageNet objects (1000) and Places scenes (401); they skip the
    trunk's last frame, which their training never read (:class:`HeadSpec`)."""
    k, s, p = ORIGINAL_HEAD_GEOMETRY[_check_arch(arch)]
    skip = ORIGINAL_HEAD_SKIP_LAST[arch]
    objects = tuple(object_labels) if object_labels is not None else placeholder_labels("object", 1000)
    scenes = tuple(scene_labels) if scene_labels is not None else placeholder_labels("scene", 401)
    return (HeadSpec("objects", objects, k, s, p, skip), HeadSpec("scenes", scenes, k, s, p, skip))


def classifier_head(arch: str, labels: Sequence[str], name: str = "classes") -> HeadSpec:
    """A single classification head for a labelled dataset (the original fine-tuning geometry)."""
    k, s, p = CLASSIFIER_HEAD_GEOMETRY[_check_arch(arch)]
    return HeadSpec(name, tuple(labels), k, s, p)


def make_config(
    arch: str = "soundnet8",
    heads: Sequence[HeadSpec] | None = None,
    *,
    width: float = 1.0,
    input_scale: float = 256.0,
) -> SoundNetConfig:
    """Build a preset config.

    ``width`` scales every block's channel count (at least 1): the full network is ``1.0``;
    tests use e.g. ``0.0625`` for a tiny network of the same geometry.
    """
    trunk = _SOUNDNET8_TRUNK if _check_arch(arch) == "soundnet8" else _SOUNDNET5_TRUNK
    convs = tuple(
        ConvSpec(n, max(1, int(round(c * width))), k, s, p, pool, pname)
        for n, c, k, s, p, pool, pname in trunk
    )
    heads = tuple(heads) if heads is not None else original_heads(arch)
    return SoundNetConfig(arch=arch, convs=convs, heads=heads, head_stage=_HEAD_STAGE[arch],
                          input_scale=input_scale)


def _check_arch(arch: str) -> str:
    if arch not in _HEAD_STAGE:
        raise WeightsError(f"unknown architecture {arch!r}: choose from {', '.join(_HEAD_STAGE)}")
    return arch

