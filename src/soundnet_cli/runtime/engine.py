"""The inference-only forward pass, rearranged for speed, as a chain of "valid" stages.

:meth:`SoundNet.features` mirrors the original network op by op; this module computes the same
activations (to float rounding, ~1e-7 of the activation scale) with less work and less memory
traffic. Batch inference (:mod:`.batch`) and exact chunked streaming (:mod:`.stream`) both
run on it. The rearrangements, each exact in real arithmetic:

- BatchNorm (eval mode, running statistics) is folded into the preceding convolution, and the
  input scale (x256) into the first one: one pass over each activation instead of three.
- Max-pooling is taken before ReLU (``max(relu(a), relu(b)) == relu(max(a, b))``), so the ReLU runs
  on the 8x smaller pooled tensor and a pooled layer's conv output is never ReLU'd in full.
- The first convolution (one input channel, kernel 64, stride 2) is computed as a dense
  convolution on a space-to-depth view of the waveform: ``G`` consecutive output frames at once
  from ``stride*G``-sample blocks. oneDNN runs the thin original far below matrix-multiply speed;
  the reshaped one does 1.5x the arithmetic at that speed (``benchmarks/RESULTS.md``). Its pooling
  folds into the reshape.
- Heads with the same geometry run as one convolution (one weight matrix) and are split after.

Every stage is a *valid* op: it reads its input with the stage's zero padding already attached
and returns ``(n - kernel) // stride + 1`` frames for ``n`` input frames. Padding belongs to the
caller: whole-clip inference pads both ends (:meth:`Engine.forward`), streaming pads only the true
start and end of a file. A stage that fuses a conv with the pool after it has the composite
geometry (kernel ``k + (pool - 1) * s``, stride ``s * pool``), which yields exactly
``floor(conv frames / pool)`` frames, the pool's floor behaviour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LayerError
from ..model import ConvBlock, SoundNet

#: Output frames the first convolution computes per space-to-depth group (a multiple of the pool).
S2D_GROUP = 16
#: Stages reading frames finer than this many samples are "early": their activations are large
#: and their weights small, so :meth:`Engine.forward` can run them on slices of a batch.
EARLY_HOP = 256


@dataclass(frozen=True)
class Stage:
    """One valid op of the chain.

    Attributes
    ----------
    names
        Public layers this stage outputs (several for a heads stage, concatenated on channels).
    widths
        Channels of each output in ``names``.
    in_channels
        Channels of the stage's input (1 for the waveform).
    kernel, stride, padding
        Composite geometry on the stage's input frames; ``padding`` zeros go at each true end.
    fn
        ``(batch, in_channels, n)`` padded input -> ``(batch, sum(widths), frames)``.
    weight_bytes
        Size of the stage's weights: a call reads them all, however few frames it computes.
    in_hop
        Input samples per frame of the stage's input (1 for the waveform).
    head
        An output head: it reads the trunk's last output, not the previous stage's (heads of
        different geometries are sibling stages).
    skip_last
        Input frames at the true end the stage never reads (a head's ``skip_last``), dropped
        before the end padding.
    """

    names: tuple[str, ...]
    widths: tuple[int, ...]
    in_channels: int
    kernel: int
    stride: int
    padding: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    weight_bytes: int = 0
    in_hop: int = 1
    head: bool = False
    skip_last: int = 0

    def frames(self, n: int) -> int:
        """Output frames for ``n`` unpadded input frames (0 when too short)."""
        n += 2 * self.padding - self.skip_last
        return (n - self.kernel) // self.stride + 1 if n >= self.kernel else 0

    def split(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: (batch, channels, frames)}`` views of a stage output."""
        if len(self.names) == 1:
            return {self.names[0]: y}
        return dict(zip(self.names, torch.split(y, list(self.widths), dim=1)))


class Engine:
    """The stages that compute ``layers`` of ``model``, with weights folded for eval mode.

    Parameters
    ----------
    model
        Any :class:`SoundNet`. BatchNorm always uses its running statistics (eval semantics),
        whatever ``model.training`` says. Weights are copied: rebuild after changing the model.
    layers
        Names, the heads' stage name or module numbers; the chain stops at the deepest one.
    device
        Where the stages run (default: where the model's parameters are).
    space_to_depth
        Compute the first convolution as a space-to-depth dense convolution (default: on CPU,
        where oneDNN is slow on the one-channel original). Same numbers either way.
    """

    def __init__(self, model: SoundNet, layers: Sequence[str | int], device: torch.device | str |
                 None = None, *, space_to_depth: bool | None = None) -> None:
        self.layers = model.resolve_layers(layers)
        self.sample_rate = model.config.sample_rate
        self.device = torch.device(device) if device is not None else \
            next(model.parameters()).device
        if space_to_depth is None:
            space_to_depth = self.device.type == "cpu"
        with torch.no_grad():
            self.stages = _build(model, self.layers, self.device, model.config.input_scale,
                                 space_to_depth)
        self.geometry = {name: model.geometry(name) for name in self.layers}
        widths = {n: w for st in self.stages for n, w in zip(st.names, st.widths)}
        #: Channels of each requested layer.
        self.channels = {n: widths[n] for n in self.layers}

    def min_samples(self) -> int:
        """Shortest waveform (samples) that gives every requested layer at least one frame."""
        return max(self.geometry[n].min_samples() for n in self.layers)

    def forward(self, waveform: torch.Tensor, *, max_samples: int | None = None
                ) -> dict[str, torch.Tensor]:
        """Whole-clip activations, as :meth:`SoundNet.features` returns them.

        Parameters
        ----------
        waveform
            ``(batch, samples)`` float audio in [-1, 1] at the model's rate, on :attr:`device`.
        max_samples
            Run the high-rate first stages (input hop below :data:`EARLY_HOP`) on slices of the
            batch of at most this many samples (at least one clip), so their large outputs stay
            in cache; the later stages, whose weights dominate, see the whole batch. ``None``:
            the whole batch at once. Results do not depend on it.

        Returns
        -------
        dict
            ``{name: (batch, channels, frames)}`` in the order of :attr:`layers`. Raises
            :class:`LayerError` when the input is too short for a requested layer.
        """
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        batch, samples = waveform.shape
        self.check_length(samples)
        early = sum(1 for st in self.stages if st.in_hop < EARLY_HOP)
        per = batch if not max_samples else max(1, min(batch, max_samples // max(samples, 1)))
        out: dict[str, list[torch.Tensor]] = {}
        with torch.inference_mode():
            if per < batch and 0 < early < len(self.stages):
                pieces = [self._run(waveform[i:i + per].unsqueeze(1), self.stages[:early], out)
                          for i in range(0, batch, per)]
                self._run(torch.cat(pieces), self.stages[early:], out)
            else:
                self._run(waveform.unsqueeze(1), self.stages, out)
        return {n: out[n][0] if len(out[n]) == 1 else torch.cat(out[n]) for n in self.layers}

    def _run(self, x: torch.Tensor, stages: Sequence[Stage], out: dict[str, list[torch.Tensor]]
             ) -> torch.Tensor:
        wanted = set(self.layers)
        for stage in stages:
            p, skip = stage.padding, stage.skip_last
            inp = x[..., : x.shape[-1] - skip] if skip else x
            y = stage.fn(F.pad(inp, (p, p)) if p else inp)
            for name, part in stage.split(y).items():
                if name in wanted:
                    out.setdefault(name, []).append(part)
            if not stage.head:
                x = y
        return x

    def check_length(self, samples: int) -> None:
        """Raise :class:`LayerError` when ``samples`` gives a requested layer no frame."""
        for name in self.layers:
            if self.geometry[name].frames(samples) < 1:
                need = self.geometry[name].min_samples()
                raise LayerError(f"input too short for layer {name}: needs at least {need} "
                                 f"samples ({need / self.sample_rate:.2f} s)")


# ---------------------------------------------------------------------------------------------
# Building the chain


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           stride: int = 1) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, stride)`` whose result for a clip does not depend on the batch.

    On CPU, PyTorch runs float32 convolutions of two or more clips through oneDNN but sends one
    small clip (channels x frames under 20,480) to its native kernel, which rounds differently (by
    about 1e-6 of the activations). A clip alone in its batch (the only one of its length, or the
    last of a shard) would then get other features than in a batch: sharded and single runs would
    differ. Here a batch of one goes through oneDNN as well; every batch size gives the same
    numbers for a clip (``tests/runtime/test_engine.py``). Elsewhere (CUDA, oneDNN unavailable or
    disabled) this is ``F.conv1d``.
    """
    if (x.shape[0] == 1 and x.device.type == "cpu" and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return torch.mkldnn_convolution(x.contiguous(), weight, bias, [0], [stride], [1], 1)
    return F.conv1d(x, weight, bias, stride)


def _folded(block: ConvBlock, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with eval-mode BatchNorm (and an input scale) folded in."""
    conv, bn = block.conv, block.bn
    assert conv.bias is not None and bn.running_var is not None and bn.running_mean is not None
    gain = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.double() * gain[:, None, None] * scale
    bias = (conv.bias.double() - bn.running_mean.double()) * gain + bn.bias.double()
    return weight.float(), bias.float()


def _build(model: SoundNet, layers: list[str], device: torch.device, input_scale: float,
           s2d: bool) -> list[Stage]:
    heads = [n for n in layers if n in model.config.head_names]
    trunk = list(model.trunk.items())
    wanted = set(layers)
    last = len(trunk) - 1 if heads else max(i for i, (n, _) in enumerate(trunk) if n in wanted)
    stages: list[Stage] = []
    channels, first, i = 1, True, 0
    while i <= last:
        name, module = trunk[i]
        if isinstance(module, ConvBlock):
            pool = 0
            after = trunk[i + 1][1] if i + 1 <= last else None
            if isinstance(after, nn.MaxPool1d) and name not in wanted:
                pool, name = cast(int, after.kernel_size), trunk[i + 1][0]
            weight, bias = _folded(module, input_scale if first else 1.0)
            stages.append(_conv_stage(name, weight.to(device), bias.to(device), channels,
                                      module.conv, pool, s2d and channels == 1))
            channels, first = module.conv.out_channels, False
            i += 2 if pool else 1
        else:
            assert isinstance(module, nn.MaxPool1d)
            stages.append(_pool_stage(name, channels, cast(int, module.kernel_size)))
            i += 1
    for group in _head_groups(model, heads):
        stages.append(_heads_stage(model, group, channels, device))
    hop = 1
    for i, st in enumerate(stages):
        stages[i] = dataclasses.replace(st, in_hop=hop)
        if not st.head:
            hop *= st.stride
    return stages


def _conv_stage(name: str, weight: torch.Tensor, bias: torch.Tensor, in_channels: int,
                conv: nn.Conv1d, pool: int, s2d: bool) -> Stage:
    k, s, p = conv.kernel_size[0], conv.stride[0], cast(tuple[int, ...], conv.padding)[0]
    out = weight.shape[0]
    kernel, stride = (k + (pool - 1) * s, s * pool) if pool else (k, s)
    if s2d:
        fn = _space_to_depth(weight, bias, k, s, pool)
    else:
        def fn(x: torch.Tensor) -> torch.Tensor:
            y = conv1d(x, weight, bias, s)
            if pool:
                y = F.max_pool1d(y, pool)
            return torch.relu_(y)
    return Stage((name,), (out,), in_channels, kernel, stride, p, fn,
                 weight_bytes=weight.numel() * weight.element_size())


def _pool_stage(name: str, channels: int, pool: int) -> Stage:
    # The input is a ReLU output already, so max-pooling it needs no ReLU after.
    return Stage((name,), (channels,), channels, pool, pool, 0,
                 lambda x: F.max_pool1d(x, pool))


def _space_to_depth(weight: torch.Tensor, bias: torch.Tensor, k: int, s: int,
                    pool: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A one-channel conv (kernel ``k``, stride ``s``) [+ max-pool ``pool``] + ReLU as a dense
    conv over ``D = s*G``-sample blocks: output group ``g`` (frames ``G*g .. G*g+G-1``) reads
    blocks ``g .. g+taps-1``, i.e. samples ``D*g + s*r + [0, k)`` for frame ``G*g + r``."""
    out = weight.shape[0]
    group = S2D_GROUP if not pool else pool * -(-S2D_GROUP // pool)
    block = s * group
    taps = -(-(s * (group - 1) + k) // block)
    dense = weight.new_zeros(out, group, taps * block)
    for r in range(group):
        dense[:, r, s * r: s * r + k] = weight[:, 0, :]
    # (out*group, block, taps): input channel d of a block, tap t -> sample t*block + d.
    dense = dense.reshape(out * group, taps, block).transpose(1, 2).contiguous()
    dense_bias = bias.repeat_interleave(group)

    def fn(x: torch.Tensor) -> torch.Tensor:
        batch, n = x.shape[0], x.shape[-1]
        frames = (n - k) // s + 1
        groups = -(-frames // group)
        need = (groups - 1 + taps) * block
        x = x.reshape(batch, n)
        x = F.pad(x, (0, need - n)) if need > n else x[:, :need]
        blocks = x.reshape(batch, groups - 1 + taps, block).transpose(1, 2)
        y = conv1d(blocks, dense, dense_bias)  # (batch, out*group, groups)
        if pool:
            y = y.view(batch, out, group // pool, pool, groups).amax(dim=3)
            y = y.transpose(2, 3).reshape(batch, out, groups * (group // pool))[..., :frames // pool]
        else:
            y = y.view(batch, out, group, groups).transpose(2, 3).reshape(batch, out, -1)
            y = y[..., :frames]
        return torch.relu_(y)

    return fn


def _head_groups(model: SoundNet, heads: list[str]) -> list[list[str]]:
    groups: dict[tuple[int, int, int, int], list[str]] = {}
    skip = {h.name: h.skip_last for h in model.config.heads}
    for name in heads:
        conv = cast(nn.Conv1d, model.heads[name])
        key = (conv.kernel_size[0], conv.stride[0], cast(tuple[int, ...], conv.padding)[0],
               skip[name])
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _heads_stage(model: SoundNet, names: list[str], channels: int,
                 device: torch.device) -> Stage:
    convs = [cast(nn.Conv1d, model.heads[n]) for n in names]
    weight = torch.cat([c.weight.detach() for c in convs]).float().to(device)
    bias = torch.cat([cast(torch.Tensor, c.bias).detach() for c in convs]).float().to(device)
    k, s = convs[0].kernel_size[0], convs[0].stride[0]
    p = cast(tuple[int, ...], convs[0].padding)[0]
    skip = next(h.skip_last for h in model.config.heads if h.name == names[0])
    return Stage(tuple(names), tuple(c.out_channels for c in convs), channels, k, s, p,
                 lambda x: conv1d(x, weight, bias, s),
                 weight_bytes=weight.numel() * weight.element_size(), head=True, skip_last=skip)


def nonfinite_message(name: str, layer: str, peak: float) -> str:
    """Why a file failed whose ``layer`` activations came out NaN or infinite."""
    return (f"{name}: {layer} activations are not finite (NaN or infinite); the audio peaks at "
            f"{peak:.3g} (full scale is 1.0), too large for the network: normalise the file")
