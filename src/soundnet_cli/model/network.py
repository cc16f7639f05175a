"""The network: one ``nn.Module`` built from a :class:`~.config.SoundNetConfig`, layers by name.

Layers are addressed by public name (``conv1`` ... ``conv7``, ``pool1``, ``pool2``, ``pool5``, and
each head by its own name, e.g. ``objects``/``scenes`` or ``classes``), by the name of the heads'
stage (``conv8`` for SoundNet-8, ``conv5`` for SoundNet-5: every head) or by the original Torch7
code's 1-based module number (``18`` = pool5, ``24`` = conv7, ``25`` = the heads); the addresses
and each layer's frame geometry come from the config (:class:`~.geometry.Layers`).

Activations are ``(batch, channels, frames)``; frame ``i`` of a layer with hop ``h`` starts at
input sample ``first_sample + i * h`` and spans ``receptive_field`` samples (see
:class:`~.geometry.Geometry`). In training mode on CPU some layers run on the kernels of
:mod:`.kernels`, imported then and only then.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Iterable, Sequence, cast

import torch
from torch import nn

from ..errors import LayerError
from .config import ConvSpec, HeadSpec, PooledHeadSpec, SoundNetConfig
from .geometry import Geometry, Layers, TimeAxis


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
        frames (see :func:`.kernels.conv_train`)."""
        from .kernels import conv_train

        return self.relu(self.bn(conv_train(self.conv, x)))

    def forward_pooled(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        """``max_pool(relu(bn(conv(x))), pool)`` with the same gradients and BatchNorm updates,
        computed with less memory traffic (see :func:`.kernels.fused_conv_bn_relu_pool`); for
        training, where BatchNorm normalises with batch statistics. ``(batch, in, samples)`` ->
        ``(batch, out, frames // pool)``."""
        from .kernels import fused_conv_bn_relu_pool

        return fused_conv_bn_relu_pool(self.conv, self.bn, x, pool)


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
        self._addresses = Layers(config)
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

    # -- layer addressing ---------------------------------------------------------------------
    @property
    def _layers(self) -> Layers:
        """The addresses and geometry of :attr:`config` (rebuilt when the config is replaced)."""
        if self._addresses.config is not self.config:
            self._addresses = Layers(self.config)
        return self._addresses

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Public names in forward order: trunk stages, then each head."""
        return self._layers.names

    def module_numbers(self) -> dict[int, str]:
        """The original Torch7 1-based module numbers of each addressable stage."""
        return self._layers.module_numbers()

    def resolve_layers(self, specs: Iterable[str | int]) -> list[str]:
        """Turn names, head-stage names and module numbers into public layer names (see
        :meth:`.geometry.Layers.resolve`; raises :class:`LayerError` naming the valid ones)."""
        return self._layers.resolve(specs)

    def time_axis(self, layer: str) -> TimeAxis:
        """Which seconds the frames of ``layer`` cover (see :class:`~.geometry.TimeAxis`)."""
        return self._layers.time_axis(layer)

    def geometry(self, layer: str) -> Geometry:
        """Frame geometry of a public layer name (see :class:`~.geometry.Geometry`)."""
        return self._layers.geometry(layer)

    def channels(self, layer: str) -> int:
        """Channel count of a public layer."""
        name = self.resolve_layers([layer])[0]
        for h in self.config.heads:
            if h.name == name:
                return h.classes
        channels = 1
        for stage in self._layers.stages:
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
    #: :func:`.kernels.conv_train` (same results and gradients, to rounding; several times faster on CPU).
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
                from .kernels import conv_train

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

