"""SoundNet as data: a frozen config, the network with named layers, and its frame geometry.

The config describes every layer, so one ``nn.Module`` serves SoundNet-8, SoundNet-5 and the tiny
networks the tests use; a checkpoint carries the config and loading never needs CLI flags.

Layers are addressed by public name (``conv1`` ... ``conv7``, ``pool1``, ``pool2``, ``pool5``, and
each head by its own name, e.g. ``objects``/``scenes`` or ``classes``), by the name of the heads'
stage (``conv8`` for SoundNet-8, ``conv5`` for SoundNet-5: every head) or by the original Torch7
code's 1-based module number (``18`` = pool5, ``24`` = conv7, ``25`` = the heads).

Activations are ``(batch, channels, frames)``; frame ``i`` of a layer with hop ``h`` starts at
input sample ``first_sample + i * h`` and spans ``receptive_field`` samples (see :class:`Geometry`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, cast

import numpy as np
import torch
from torch import nn

from ..audio import SAMPLE_RATE
from ..errors import LayerError, WeightsError


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


# ---------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class Geometry:
    """Where a layer's frames sit on the input, in samples.

    Frame ``i`` covers input samples ``[first_sample + i*hop, first_sample + i*hop +
    receptive_field)``; ``first_sample`` is negative where zero padding reaches before the start.
    ``ops`` lists (kernel, stride, padding) of every op up to the layer, for exact frame counts.
    """

    hop: int
    receptive_field: int
    first_sample: int
    ops: tuple[tuple[int, int, int], ...] = field(repr=False)
    #: Frames dropped from the end of the last op's input before it runs (a head's
    #: ``skip_last``): fewer frames, same positions.
    skip_last: int = 0

    def frames(self, samples: int) -> int:
        """Output frames for an input of ``samples`` samples (0 when too short)."""
        n = samples
        for i, (k, s, p) in enumerate(self.ops):
            if i == len(self.ops) - 1:
                n -= self.skip_last
            n = (n + 2 * p - k) // s + 1 if n + 2 * p >= k else 0
            if n <= 0:
                return 0
        return n

    def min_samples(self) -> int:
        """Smallest input length (samples) that yields at least one frame."""
        n = 1
        for i, (k, s, p) in enumerate(reversed(self.ops)):
            n = max(1, (n - 1) * s + k - 2 * p + (self.skip_last if i == 0 else 0))
        while self.frames(n) < 1:  # guard against padding arithmetic at the boundary
            n += 1
        return n

    def seconds(self, sample_rate: int) -> "TimeAxis":
        """The layer's time axis in seconds at ``sample_rate`` (see :class:`TimeAxis`)."""
        return TimeAxis(self.hop / sample_rate, self.receptive_field / sample_rate,
                        self.first_sample / sample_rate)


@dataclass(frozen=True)
class TimeAxis:
    """Which seconds a layer's frames cover: the one time axis of the package.

    Frame ``i`` covers ``[offset + i*hop, offset + i*hop + window)`` seconds of the network's
    input (its receptive field; ``offset`` is negative where zero padding reaches before the
    start). Every frame-to-seconds question (extract's records, tag steps and events, SVM
    segments, embedding timestamps, unit segments) is answered here.
    """

    hop: float
    window: float
    offset: float

    def starts(self, count: int, first: int = 0) -> np.ndarray:
        """``(count,)`` float64 start seconds of frames ``first .. first+count-1``."""
        return self.offset + self.hop * np.arange(first, first + count, dtype=np.float64)

    def spans(self, count: int, first: int = 0, frames: int = 1) -> np.ndarray:
        """``(count, 2)`` float64 start and end seconds of runs of ``frames`` consecutive frames
        beginning at ``first .. first+count-1`` (``frames=1``: each frame's receptive field)."""
        starts = self.starts(count, first)
        return np.stack([starts, starts + self.hop * (frames - 1) + self.window], axis=1)

    def centres(self, count: int, first: int = 0) -> np.ndarray:
        """``(count,)`` float64 centre seconds of frames ``first .. first+count-1`` (may lie
        slightly outside the input at its ends)."""
        return self.starts(count, first) + self.window / 2

    def owned(self, count: int, analysed: float) -> np.ndarray:
        """``(count, 2)`` float64: the seconds each of ``count`` frames stands for on a
        timeline, one hop around its centre; the first starts at 0 and the last reaches at least
        ``analysed`` (the length fed to the network), so the frames tile the input."""
        centres = self.centres(count)
        bounds = np.stack([centres - self.hop / 2, centres + self.hop / 2], axis=1)
        if count:
            bounds[0, 0] = 0.0
            bounds[-1, 1] = max(bounds[-1, 1], analysed)
        return bounds


@dataclass(frozen=True)
class _Stage:
    """A step of the forward pass: its public name and how it transforms frames."""

    name: str
    kind: str  # "conv" | "pool" | "heads"
    ops: tuple[tuple[int, int, int], ...]
    module_number: int


def _stages(config: SoundNetConfig) -> list[_Stage]:
    stages: list[_Stage] = []
    number = 0
    for c in config.convs:
        number += 3  # conv, BN, ReLU are three modules in the original
        stages.append(_Stage(c.name, "conv", ((c.kernel, c.stride, c.padding),), number))
        if c.pool:
            number += 1
            stages.append(_Stage(c.pool_name or f"pool_{c.name}", "pool", ((c.pool, c.pool, 0),),
                                 number))
    if config.heads:
        h = config.heads[0]
        stages.append(_Stage(config.head_stage, "heads", ((h.kernel, h.stride, h.padding),),
                             number + 1))
    return stages


def geometry_of(ops: Iterable[tuple[int, int, int]], skip_last: int = 0) -> Geometry:
    """Fold a list of (kernel, stride, padding) ops into a :class:`Geometry`; ``skip_last``
    frames are dropped from the end of the last op's input."""
    ops = tuple(ops)
    hop, rf, first = 1, 1, 0
    for k, s, p in ops:
        first -= p * hop
        rf += (k - 1) * hop
        hop *= s
    return Geometry(hop=hop, receptive_field=rf, first_sample=first, ops=ops, skip_last=skip_last)


# ---------------------------------------------------------------------------------------------
# The network


class ConvBlock(nn.Module):
    """Conv1d -> BatchNorm1d -> ReLU, as every SoundNet trunk layer."""

    def __init__(self, in_channels: int, spec: ConvSpec, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, spec.out_channels, spec.kernel, spec.stride,
                              spec.padding)
        self.bn = nn.BatchNorm1d(spec.out_channels, eps=bn_eps)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))

    def forward_train(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward`, with the convolution as a matrix product when it has few output
        frames (see :func:`conv_train`)."""
        return self.relu(self.bn(conv_train(self.conv, x)))

    def forward_pooled(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        """``max_pool(relu(bn(conv(x))), pool)`` with the same gradients and BatchNorm updates,
        computed with less memory traffic (see :func:`_fused_conv_bn_relu_pool`); for training,
        where BatchNorm normalises with batch statistics. ``(batch, in, samples)`` ->
        ``(batch, out, frames // pool)``."""
        return _fused_conv_bn_relu_pool(self.conv, self.bn, x, pool)


# ---------------------------------------------------------------------------------------------
# Training-mode fusion of a pooled layer
#
# In training, BatchNorm normalises with the batch's statistics, so it cannot be folded into the
# convolution as the inference engine does. What still holds exactly (in real arithmetic):
#
# - The affine map and the ReLU are monotone per channel, so ``max_pool(relu(a*y + b)) ==
#   relu(a*max_pool(y) + b)`` for a >= 0 (``min_pool`` for a < 0): the elementwise work runs on
#   the ``pool``-times smaller tensor, and backward touches the full-rate conv output only to
#   route the pooled gradient and for the statistics.
# - The first convolution (one input channel; conv1: kernel 64, stride 2) is one matrix product
#   over a space-to-depth view of the waveform: ``group`` output frames at once from overlapping
#   ``taps * stride * group``-sample rows. Its output comes channel-major within each row, so the
#   pooling windows are contiguous. Its batch statistics come from the rows' Gram matrix (a
#   96 x 96 product) instead of a pass over the 16 x 55,126-frame output; backward is the same
#   product transposed. oneDNN runs the thin original, and above all its weight gradient, far below
#   matrix-multiply speed.


#: A one-channel first convolution computes this many output frames per space-to-depth row.
TRAIN_S2D_FRAMES = 16
#: ... and runs on this many clips at a time (products of a few MB, pooled while in cache; fewer
#: parallel regions than clip by clip, which matters on a busy machine).
TRAIN_S2D_CLIPS = 4


def _s2d_weight(weight: torch.Tensor, stride: int, group: int) -> tuple[torch.Tensor, int]:
    """A kernel ``(out, in, k)`` as the dense ``(out*group, in*width)`` matrix of the
    space-to-depth product, and the row length ``width`` in input frames: row ``o*group + r``
    (output channel ``o``, frame phase ``r``) holds ``weight[o, c, j - stride*r]`` at column
    ``c*width + j`` where that lies in the kernel, else 0."""
    out, cin, k = weight.shape
    block = stride * group
    width = -(-(stride * (group - 1) + k) // block) * block
    j = torch.arange(width, device=weight.device)[None, :] - \
        stride * torch.arange(group, device=weight.device)[:, None]
    index = torch.where((j >= 0) & (j < k), j, torch.full_like(j, k))  # k: the zero pad
    padded = nn.functional.pad(weight, (0, 1))[:, :, index]  # (out, in, group, width)
    return padded.permute(0, 2, 1, 3).reshape(out * group, cin * width), width


class _S2DConvPool(torch.autograd.Function):
    """Max-pooled space-to-depth product, a few clips at a time so that each product is pooled
    while in cache; backward recomputes the clip's rows and needs only the window-local arg-max
    (uint8), not the product (28 M floats for 32 clips of 5 s).

    Inputs: ``wave (batch, need)`` (no gradient) and ``dense (out*group, width)``. Returns the
    pooled ``(batch, rows, out*group // pool)`` (windows of ``pool`` consecutive columns) and,
    without gradients, the rows' sums ``(width,)`` and Gram matrix ``(width, width)`` (float64)
    and each clip's last row ``(batch, width)``, for :func:`_gram_stats`.
    """

    @staticmethod
    def forward(ctx: Any, wave: torch.Tensor, dense: torch.Tensor, width: int, block: int,
                pool: int) -> tuple[torch.Tensor, ...]:
        batch, cols = wave.shape[0], dense.shape[0]
        rows = (wave.shape[1] - width) // block + 1
        pooled = wave.new_empty(batch, rows, cols // pool)
        index = torch.empty(batch, rows, cols // pool, dtype=torch.uint8, device=wave.device)
        sums = torch.zeros(width, dtype=torch.float64, device=wave.device)
        gram = torch.zeros(width, width, dtype=torch.float64, device=wave.device)
        last = wave.new_empty(batch, width)
        weight = dense.detach().t()
        for b in range(0, batch, TRAIN_S2D_CLIPS):
            u = _s2d_rows(wave[b:b + TRAIN_S2D_CLIPS], width, block)  # (clips*rows, width)
            n = u.shape[0] // rows
            pooled[b:b + n], index[b:b + n] = max_first((u @ weight).view(n, rows, -1, pool))
            sums += u.sum(0, dtype=torch.float64)
            gram += (u.t() @ u).double()
            last[b:b + n] = u.view(n, rows, width)[:, -1]
        ctx.save_for_backward(wave, index)
        ctx.shape = (width, block, pool, cols)
        ctx.mark_non_differentiable(sums, gram, last)
        return pooled, sums, gram, last

    @staticmethod
    def backward(ctx: Any, d_pooled: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        wave, index = ctx.saved_tensors
        width, block, pool, cols = ctx.shape
        d_dense = d_pooled.new_zeros(cols, width)
        rows = index.shape[1]
        for b in range(0, wave.shape[0], TRAIN_S2D_CLIPS):
            u = _s2d_rows(wave[b:b + TRAIN_S2D_CLIPS], width, block)
            n = u.shape[0] // rows
            dy = d_pooled.new_zeros(n, rows, cols // pool, pool)
            dy.scatter_(3, index[b:b + n].long().unsqueeze(-1), d_pooled[b:b + n].unsqueeze(-1))
            d_dense.addmm_(dy.view(n * rows, cols).t(), u)
        return None, d_dense, None, None, None


def max_first(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.max(v, dim=-1)``: the maxima and the (uint8) index of each one's first
    occurrence, for a last dim of at most 256. For a power of two it is a tournament of adjacent
    pairs (ties keep the left one, so the first index wins as in ``max``): elementwise ops that
    vectorise, 2-3x faster than ``max``'s reduction over a short last dim."""
    size = v.shape[-1]
    if size & (size - 1) or size > 256:
        top = v.max(dim=-1)
        return top.values, top.indices.to(torch.uint8)
    rights = []
    while v.shape[-1] > 1:
        left, right = v[..., 0::2], v[..., 1::2]
        rights.append(right > left)
        v = torch.maximum(left, right)
    index = torch.zeros(v.shape, dtype=torch.int64, device=v.device)
    for won in reversed(rights):  # down the bracket: which of each pair won
        index = index * 2 + won.gather(-1, index)
    return v.squeeze(-1), index.squeeze(-1).to(torch.uint8)


def _s2d_rows(wave: torch.Tensor, width: int, block: int) -> torch.Tensor:
    """The overlapping rows ``(clips*rows, width)`` of waveforms ``(clips, need)``, a copy."""
    return wave.unfold(1, width, block).reshape(-1, width)


def _first_conv_pooled(conv: nn.Conv1d, bn_weight: torch.Tensor, x: torch.Tensor, pool: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """A one-channel ``conv`` (without its bias) on padded input ``(batch, 1, n)``, max-pooled
    (min-pooled where ``bn_weight`` is negative): ``(batch, out, frames // pool)``, with the
    batch mean and biased variance ``(out,)`` of the un-pooled output and its frame count."""
    k, s = conv.kernel_size[0], conv.stride[0]
    group = pool * -(-TRAIN_S2D_FRAMES // pool)
    batch, _, n = x.shape
    out = conv.out_channels
    frames = (n - k) // s + 1
    dense, width = _s2d_weight(conv.weight, s, group)
    block, rows = s * group, -(-frames // group)
    need = (rows - 1) * block + width
    wave = x.reshape(batch, n)
    wave = nn.functional.pad(wave, (0, need - n)) if need > n else wave[:, :need]
    sign = None
    if bool((bn_weight < 0).any()):  # min-pool(y) = -max-pool(-y)
        sign = torch.where(bn_weight.detach() < 0, -1.0, 1.0).to(dense.dtype)
    signed = dense if sign is None else dense * sign.repeat_interleave(group)[:, None]
    pooled, sums, gram, last = _S2DConvPool.apply(wave.contiguous(), signed, width, block, pool)
    pooled = pooled.view(batch, rows, out, group // pool)
    pooled = pooled if sign is None else pooled * sign[:, None]
    pooled = pooled.permute(0, 2, 1, 3).reshape(batch, out, -1)[..., : frames // pool]
    mean, var = _gram_stats(sums, gram, last, dense, batch, frames, group)
    return pooled, mean, var, frames


def _gram_stats(sums: torch.Tensor, gram: torch.Tensor, last: torch.Tensor, dense: torch.Tensor,
                batch: int, frames: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``u @ dense.T`` over the true frames, from the
    rows' sums and Gram matrix and each clip's last row (whose phases from ``frames % group`` on
    lie past the true end); float64 on these small products, differentiable in ``dense``."""
    d = dense.double()
    s1, s2 = d @ sums, ((d @ gram) * d).sum(1)
    s1, s2 = s1.view(-1, group).sum(1), s2.view(-1, group).sum(1)
    rem = frames % group
    if rem:
        tail = (last.double() @ d.t()).view(batch, -1, group)[..., rem:]
        s1, s2 = s1 - tail.sum((0, 2)), s2 - (tail * tail).sum((0, 2))
    mean = s1 / (batch * frames)
    var = (s2 / (batch * frames) - mean * mean).clamp_min(0)
    return mean.to(dense.dtype), var.to(dense.dtype)


def _pool_windows(windows: torch.Tensor, bn_weight: torch.Tensor) -> torch.Tensor:
    """Max over the last dim of ``(..., channels, windows, pool)``, min for the channels whose
    BatchNorm weight is negative."""
    top = windows.max(dim=-1).values
    if bool((bn_weight < 0).any()):
        top = torch.where((bn_weight >= 0)[:, None], top, windows.min(dim=-1).values)
    return top


def _fused_conv_bn_relu_pool(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor,
                             pool: int) -> torch.Tensor:
    p = cast(tuple[int, ...], conv.padding)[0]  # built from an int
    x = nn.functional.pad(x, (p, p)) if p else x
    batch = x.shape[0]
    if conv.in_channels == 1 and not x.requires_grad:
        pooled, mean, var, frames = _first_conv_pooled(conv, bn.weight, x, pool)
    else:  # oneDNN's own convolution is the faster one here; the statistics read its output
        y = nn.functional.conv1d(x, conv.weight, None, conv.stride[0])
        frames = y.shape[-1]
        var, mean = torch.var_mean(y, dim=(0, 2), unbiased=False)
        windows = y[..., : frames // pool * pool].unflatten(2, (frames // pool, pool))
        pooled = _pool_windows(windows, bn.weight)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
    mean = mean + bias  # the conv bias shifts every frame, so the pool and the mean alike
    if bn.training or bn.running_mean is None or bn.running_var is None:
        _update_running_stats(bn, mean.detach(), var.detach(), frames * batch)
    else:
        mean, var = bn.running_mean, bn.running_var
    gain = bn.weight * torch.rsqrt(var + bn.eps)
    shift = bn.bias + (bias - mean) * gain
    return torch.relu(pooled * gain[None, :, None] + shift[None, :, None])


#: In training, convolutions with at most this many output frames run as one matrix product
#: over unfolded input (conv6, conv7 and the heads of SoundNet-8 on 5 s clips): oneDNN's kernels,
#: above all their backward, are slow on so few frames.
TRAIN_GEMM_FRAMES = 16


def conv_train(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for ``(batch, in, n)``; as ``unfold`` + one matrix product when the output has
    at most :data:`TRAIN_GEMM_FRAMES` frames (same result, to rounding, and the same gradients)."""
    k, s = conv.kernel_size[0], conv.stride[0]
    p = cast(tuple[int, ...], conv.padding)[0]  # built from an int
    frames = (x.shape[-1] + 2 * p - k) // s + 1
    if frames > TRAIN_GEMM_FRAMES or conv.groups != 1 or conv.dilation[0] != 1:
        return conv(x)
    batch, cin = x.shape[0], x.shape[1]
    x = nn.functional.pad(x, (p, p)) if p else x
    u = x.unfold(2, k, s).permute(0, 2, 1, 3).reshape(batch * frames, cin * k)
    weight = conv.weight.reshape(conv.out_channels, cin * k)
    y = u @ weight.t() if conv.bias is None else torch.addmm(conv.bias, u, weight.t())
    return y.view(batch, frames, -1).transpose(1, 2)


def _update_running_stats(bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor,
                          n: int) -> None:
    """What ``F.batch_norm`` does to the running statistics in training mode."""
    tracked, running_mean, running_var = bn.num_batches_tracked, bn.running_mean, bn.running_var
    if not bn.track_running_stats or tracked is None or running_mean is None or running_var is None:
        return
    with torch.no_grad():
        tracked.add_(1)
        momentum = (1.0 / float(tracked)) if bn.momentum is None else bn.momentum
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var * (n / max(1, n - 1)), alpha=momentum)


class SoundNet(nn.Module):
    """SoundNet on raw waveforms.

    ``forward(waveform)`` takes ``(batch, samples)`` float audio in [-1, 1] at
    ``config.sample_rate`` (the input scale is applied inside) and returns
    ``{head name: logits (batch, classes, steps)}``. :meth:`features` returns any named layers.

    Attributes
    ----------
    source
        The checkpoint file the weights were loaded from ("" for a network built in memory).
    provenance
        That checkpoint's provenance record (``{}`` when built in memory).
    fingerprint
        SHA-256 of the trunk's current weights and geometry (read-only; see
        :attr:`fingerprint`).
    """

    source: str
    provenance: dict[str, Any]

    def __init__(self, config: SoundNetConfig) -> None:
        super().__init__()
        self.config = config
        self.source = ""
        self.provenance = {}
        self._fingerprint: tuple[Any, str] | None = None
        self.trunk = nn.ModuleDict()
        channels = 1
        for c in config.convs:
            self.trunk[c.name] = ConvBlock(channels, c, config.bn_eps)
            channels = c.out_channels
            if c.pool:
                self.trunk[c.pool_name or f"pool_{c.name}"] = nn.MaxPool1d(c.pool, c.pool)
        self.heads = nn.ModuleDict(
            {h.name: nn.Conv1d(channels, h.classes, h.kernel, h.stride, h.padding)
             for h in config.heads}
        )
        self._stages = _stages(config)
        self.pooled = nn.ModuleDict({p.name: self._pooled_module(p) for p in config.pooled_heads})
        self.reset_parameters()

    def _pooled_module(self, spec: PooledHeadSpec) -> nn.Module:
        stats = 2 * self.channels(spec.layer)
        if not spec.hidden:
            return nn.Sequential(nn.Linear(stats, spec.classes))
        return nn.Sequential(nn.Linear(stats, spec.hidden), nn.ReLU(),
                             nn.Linear(spec.hidden, spec.classes))

    def pooled_logits(self, name: str, activations: torch.Tensor) -> torch.Tensor:
        """Pooled head ``name`` on its layer's activations ``(batch, channels, frames)``:
        ``(batch, classes, steps)`` logits (see :class:`PooledHeadSpec`)."""
        spec = next((p for p in self.config.pooled_heads if p.name == name), None)
        if spec is None:
            raise LayerError(f"{name!r} is not a pooled head; pooled heads: "
                             f"{', '.join(self.config.pooled_head_names) or 'none'}")
        frames = activations.shape[-1]
        steps = spec.steps(frames)
        if steps == 0:
            raise LayerError(f"no {spec.layer} frames for head {name}")
        stats = torch.stack([pooled_stats(activations[..., j * spec.stride:
                                                      j * spec.stride + spec.window])
                             for j in range(steps)], dim=1)  # (batch, steps, 2 * channels)
        return self.pooled[name](stats).transpose(1, 2)

    # -- identity -----------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """A SHA-256 over the trunk's tensors (as float32), its geometry and the input scale.

        Features at any trunk layer depend only on these, so feature caches and saved SVMs record
        it and refuse another network's features (heads do not change trunk features and are left
        out). It follows the weights: computed when asked and recomputed once any trunk tensor
        changed (training steps, ``load_state_dict``, a dtype change), so a network fine-tuned in
        memory never reports the checkpoint it started from.
        """
        tensors = sorted(self.trunk.state_dict().items())
        # In-place updates bump a tensor's version; replaced storage changes its pointer.
        key = (id(self.config), tuple((k, v.data_ptr(), v._version, v.dtype) for k, v in tensors))
        if self._fingerprint is None or self._fingerprint[0] != key:
            h = hashlib.sha256()
            h.update(json.dumps([c.__dict__ for c in self.config.convs], sort_keys=True).encode())
            h.update(repr(self.config.input_scale).encode())
            for name, value in tensors:
                if value.is_floating_point():
                    h.update(name.encode())
                    h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
            self._fingerprint = (key, h.hexdigest())
        return self._fingerprint[1]

    # -- parameters ---------------------------------------------------------------------------
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The original init: conv weights N(0, 0.01), biases 0; BN weight N(1, 0.02), bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.normal_(m.weight, 0.0, 0.01, generator=generator)
                if m.bias is not None:  # always: every convolution here has a bias
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()

    def replace_heads(self, heads: Sequence[HeadSpec]) -> None:
        """Swap the output heads for new, freshly initialised ones (keeps the trunk)."""
        config = self.config.with_heads(heads)
        channels = self.config.convs[-1].out_channels
        device = next(self.parameters()).device
        new = nn.ModuleDict(
            {h.name: nn.Conv1d(channels, h.classes, h.kernel, h.stride, h.padding)
             for h in heads}
        ).to(device)
        for m in new.values():
            conv = cast(nn.Conv1d, m)
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(cast(torch.Tensor, conv.bias))
        self.heads = new
        self.pooled = nn.ModuleDict()
        self.config = config
        self._stages = _stages(config)

    def keep_heads(self, names: Sequence[str]) -> None:
        """Drop every head (pooled ones included) not in ``names``, keeping the others' trained
        weights."""
        known = self.config.head_names + self.config.pooled_head_names
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"no head named {missing[0]!r}")
        self.config = dataclasses.replace(
            self.config, heads=tuple(h for h in self.config.heads if h.name in names),
            pooled_heads=tuple(p for p in self.config.pooled_heads if p.name in names))
        self.heads = nn.ModuleDict({n: self.heads[n] for n in self.config.head_names})
        self.pooled = nn.ModuleDict({n: self.pooled[n] for n in self.config.pooled_head_names})
        self._stages = _stages(self.config)

    # -- layer addressing ---------------------------------------------------------------------
    @property
    def layer_names(self) -> tuple[str, ...]:
        """Public names in forward order: trunk stages, then each head."""
        trunk = tuple(s.name for s in self._stages if s.kind != "heads")
        return trunk + self.config.head_names

    def module_numbers(self) -> dict[int, str]:
        """The original Torch7 1-based module numbers of each addressable stage."""
        return {s.module_number: s.name for s in self._stages}

    def resolve_layers(self, specs: Iterable[str | int]) -> list[str]:
        """Turn names, head-stage names and module numbers into public layer names.

        The heads' stage (``conv8``) expands to every head. Raises :class:`LayerError` naming
        the valid choices.
        """
        numbers = self.module_numbers()
        out: list[str] = []
        for spec in specs:
            key = str(spec).strip()
            if key.isdigit():
                if int(key) not in numbers:
                    valid = ", ".join(f"{n}={name}" for n, name in sorted(numbers.items()))
                    raise LayerError(f"no layer with module number {key}; valid: {valid}")
                key = numbers[int(key)]
            if key == self.config.head_stage:
                names = list(self.config.head_names)
            elif key in self.layer_names:
                names = [key]
            else:
                valid = ", ".join(self.layer_names + (self.config.head_stage,))
                raise LayerError(f"unknown layer {key!r}; valid: {valid} (or module numbers "
                                 f"{', '.join(str(n) for n in sorted(numbers))})")
            out.extend(n for n in names if n not in out)
        return out

    def time_axis(self, layer: str) -> TimeAxis:
        """Which seconds the frames of ``layer`` cover (see :class:`TimeAxis`)."""
        return self.geometry(layer).seconds(self.config.sample_rate)

    def geometry(self, layer: str) -> Geometry:
        """Frame geometry of a public layer name (see :class:`Geometry`)."""
        name = self.resolve_layers([layer])[0]
        ops: list[tuple[int, int, int]] = []
        skip = 0
        for stage in self._stages:
            if stage.kind == "heads":
                h = next(h for h in self.config.heads if h.name == name)
                ops.append((h.kernel, h.stride, h.padding))
                skip = h.skip_last
                break
            ops.extend(stage.ops)
            if stage.name == name:
                break
        return geometry_of(ops, skip)

    def channels(self, layer: str) -> int:
        """Channel count of a public layer."""
        name = self.resolve_layers([layer])[0]
        for h in self.config.heads:
            if h.name == name:
                return h.classes
        channels = 1
        for stage in self._stages:
            if stage.kind == "conv":
                channels = cast(ConvBlock, self.trunk[stage.name]).conv.out_channels
            if stage.name == name:
                return channels
        raise LayerError(name)  # unreachable after resolve_layers

    # -- forward ------------------------------------------------------------------------------
    def features(self, waveform: torch.Tensor, layers: Iterable[str | int]) -> dict[str, torch.Tensor]:
        """Activations of the requested layers.

        Parameters
        ----------
        waveform
            ``(batch, samples)`` float audio in [-1, 1] at ``config.sample_rate``.
        layers
            Public names, the heads' stage name or original module numbers.

        Returns
        -------
        dict
            ``{name: (batch, channels, frames)}``; the pass stops after the last requested layer.
            A layer whose input is too short for its kernel raises :class:`LayerError`.
        """
        wanted = self.resolve_layers(layers)
        heads_wanted = [n for n in wanted if n in self.config.head_names]
        trunk_wanted = {n for n in wanted if n not in heads_wanted}
        out: dict[str, torch.Tensor] = {}
        x = self._input(waveform)
        stages = list(self.trunk.items())
        i = 0
        while i < len(stages) and (trunk_wanted or heads_wanted):
            name, module = stages[i]
            if self._fusable(stages, i, trunk_wanted, x):
                self._check_length(name, module, x)
                name, pool = stages[i + 1]
                x = cast(ConvBlock, module).forward_pooled(x, cast(int, pool.kernel_size))
                i += 1
            else:
                x = self._run_stage(name, module, x)
            if name in trunk_wanted:
                out[name] = x
                trunk_wanted.discard(name)
            i += 1
        for name in heads_wanted:
            out[name] = self._run_stage(name, self.heads[name], self._head_input(name, x))
        return {n: out[n] for n in wanted}

    def _head_input(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The last block's frames head ``name`` reads: all but its ``skip_last``."""
        skip = next(h.skip_last for h in self.config.heads if h.name == name)
        if skip and x.shape[-1] <= skip:
            raise LayerError(f"input too short for layer {name}: needs at least "
                             f"{self.geometry(name).min_samples()} samples")
        return x[..., : x.shape[-1] - skip] if skip else x

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.features(waveform, self.config.head_names)

    #: In training mode on CPU, compute each pooled conv layer whose own output is not requested
    #: with :meth:`ConvBlock.forward_pooled`, and convolutions with few output frames with
    #: :func:`conv_train` (same results and gradients, to rounding; several times faster on CPU).
    #: These paths were written and measured for CPU kernels only; on other devices (CUDA) the
    #: layers run as plain modules, through the framework's own kernels.
    fast_training: bool = True

    def _fast(self, x: torch.Tensor) -> bool:
        return bool(self.training and self.fast_training and x.device.type == "cpu")

    def _fusable(self, stages: list[tuple[str, nn.Module]], i: int, wanted: set[str],
                 x: torch.Tensor) -> bool:
        name, module = stages[i]
        pool = stages[i + 1][1] if i + 1 < len(stages) else None
        return bool(self._fast(x) and isinstance(module, ConvBlock)
                    and isinstance(pool, nn.MaxPool1d) and name not in wanted
                    and pool.kernel_size == pool.stride and pool.padding == 0)

    def _input(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(f"expected (batch, samples) waveforms, got shape {tuple(waveform.shape)}")
        return (waveform * self.config.input_scale).unsqueeze(1)

    def _run_stage(self, name: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self._check_length(name, module, x)
        if self._fast(x):
            if isinstance(module, ConvBlock):
                return module.forward_train(x)
            if isinstance(module, nn.Conv1d):
                return conv_train(module, x)
        return module(x)

    def _check_length(self, name: str, module: nn.Module, x: torch.Tensor) -> None:
        if isinstance(module, nn.MaxPool1d):
            k, pad = cast(int, module.kernel_size), 0  # built from an int
        else:
            conv = module.conv if isinstance(module, ConvBlock) else cast(nn.Conv1d, module)
            k, pad = conv.kernel_size[0], cast(tuple[int, ...], conv.padding)[0]
        if x.shape[-1] + 2 * pad < k:
            raise LayerError(
                f"input too short for layer {name}: needs at least "
                f"{self.geometry(name).min_samples()} samples "
                f"({self.geometry(name).min_samples() / self.config.sample_rate:.2f} s)"
            )

    def parameter_count(self) -> dict[str, int]:
        """Parameters of the trunk and of the heads (pooled ones included)."""
        trunk = sum(p.numel() for p in self.trunk.parameters())
        heads = sum(p.numel() for p in self.heads.parameters()) + \
            sum(p.numel() for p in self.pooled.parameters())
        return {"trunk": trunk, "heads": heads, "total": trunk + heads}


def pooled_stats(frames: torch.Tensor) -> torch.Tensor:
    """``(..., channels, frames)`` -> ``(..., 2 * channels)``: the mean, then the max over time."""
    return torch.cat([frames.mean(dim=-1), frames.amax(dim=-1)], dim=-1)


def min_tag_samples(model: SoundNet) -> int:
    """Input length to tile short clips to before tagging: ``tile_seconds``, or more if the heads
    need more (samples)."""
    need = max((model.geometry(h).min_samples() for h in model.config.head_names), default=1)
    return max(need, int(math.ceil(model.config.tile_seconds * model.config.sample_rate)))
