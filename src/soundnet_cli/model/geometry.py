"""Where a network's frames sit on its input: layer addresses, frame arithmetic, the time axis.

Everything here follows from the config alone (:class:`~.config.SoundNetConfig`), so it is
torch-free: :class:`Layers` turns public names, the heads' stage name and the original Torch7
module numbers into layers, and gives each layer's :class:`Geometry` (samples) and
:class:`TimeAxis` (seconds). Frame ``i`` of a layer with hop ``h`` starts at input sample
``first_sample + i * h`` and spans ``receptive_field`` samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np

from ..errors import LayerError
from .config import SoundNetConfig


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

    def runs(self, frames: int, stride: int = 1) -> "TimeAxis":
        """The axis of runs of ``frames`` consecutive frames taken every ``stride`` frames (the
        steps of a pooled head or an SVM window): run ``i`` covers frames ``i*stride ..
        i*stride + frames - 1``."""
        return TimeAxis(self.hop * stride, self.window + (frames - 1) * self.hop, self.offset)

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
class Stage:
    """A step of the forward pass: its public name and how it transforms frames."""

    name: str
    kind: str  # "conv" | "pool" | "heads"
    ops: tuple[tuple[int, int, int], ...]
    module_number: int


def stages(config: SoundNetConfig) -> list[Stage]:
    """The forward pass's addressable steps in order: each block, its pool, the heads."""
    out: list[Stage] = []
    number = 0
    for c in config.convs:
        number += 3  # conv, BN, ReLU are three modules in the original
        out.append(Stage(c.name, "conv", ((c.kernel, c.stride, c.padding),), number))
        if c.pool:
            number += 1
            out.append(Stage(c.pool_name or f"pool_{c.name}", "pool", ((c.pool, c.pool, 0),),
                              number))
    if config.heads:
        h = config.heads[0]
        out.append(Stage(config.head_stage, "heads", ((h.kernel, h.stride, h.padding),),
                          number + 1))
    return out


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


class Layers:
    """A network's addressable layers, from its config: public names, module numbers, frame
    geometry and time axes (what :class:`~.network.SoundNet` answers for its own config)."""

    def __init__(self, config: SoundNetConfig) -> None:
        self.config = config
        self.stages = stages(config)

    @property
    def names(self) -> tuple[str, ...]:
        """Public names in forward order: trunk stages, then each head."""
        trunk = tuple(s.name for s in self.stages if s.kind != "heads")
        return trunk + self.config.head_names

    def module_numbers(self) -> dict[int, str]:
        """The original Torch7 1-based module numbers of each addressable stage."""
        return {s.module_number: s.name for s in self.stages}

    def resolve(self, specs: Iterable[str | int]) -> list[str]:
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
            elif key in self.names:
                names = [key]
            else:
                valid = ", ".join(self.names + (self.config.head_stage,))
                raise LayerError(f"unknown layer {key!r}; valid: {valid} (or module numbers "
                                 f"{', '.join(str(n) for n in sorted(numbers))})")
            out.extend(n for n in names if n not in out)
        return out

    def geometry(self, layer: str) -> Geometry:
        """Frame geometry of a public layer name (see :class:`Geometry`)."""
        name = self.resolve([layer])[0]
        ops: list[tuple[int, int, int]] = []
        skip = 0
        for stage in self.stages:
            if stage.kind == "heads":
                h = next(h for h in self.config.heads if h.name == name)
                ops.append((h.kernel, h.stride, h.padding))
                skip = h.skip_last
                break
            ops.extend(stage.ops)
            if stage.name == name:
                break
        return geometry_of(ops, skip)

    def time_axis(self, layer: str) -> TimeAxis:
        """Which seconds the frames of ``layer`` cover (see :class:`TimeAxis`)."""
        return self.geometry(layer).seconds(self.config.sample_rate)


class _Configured(Protocol):
    @property
    def config(self) -> SoundNetConfig: ...


def min_tag_samples(model: _Configured) -> int:
    """Input length to tile short clips to before tagging: ``tile_seconds``, or more if the heads
    need more (samples). ``model``: a network, or anything with its ``config``."""
    config = model.config
    layers = Layers(config)
    need = max((layers.geometry(h).min_samples() for h in config.head_names), default=1)
    return max(need, int(math.ceil(config.tile_seconds * config.sample_rate)))
