"""Checking a :class:`~.source.SourceNetwork` against SoundNet-8/5's geometry.

Here, beside the readers, because the state-dict reader uses it to find the layer order of a file
and :mod:`..convert` checks every source with it before building a network: both import it, it
imports neither (no cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ...errors import WeightsError

if TYPE_CHECKING:  # annotations only: source.py imports this module
    from .source import ConvParams, SourceNetwork


def check_geometry(source: SourceNetwork, arch: str | None = None) -> str:
    """Check a source network against SoundNet-8/5 and return the architecture name.

    Kernel sizes, the channel chain, head count, and strides/paddings/pools where the source
    records them must all match; anything else raises :class:`WeightsError` naming the layer.
    """
    from ...model import ARCHITECTURES, ORIGINAL_HEAD_GEOMETRY, make_config

    by_depth = {7: "soundnet8", 4: "soundnet5"}
    guessed = by_depth.get(len(source.trunk))
    if arch is not None and arch not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {arch!r}: choose from {', '.join(ARCHITECTURES)}")
    arch = arch or guessed
    if arch is None or guessed != arch:
        raise WeightsError(f"{len(source.trunk)} trunk convolutions and {len(source.heads)} heads "
                           f"do not make {arch or 'a SoundNet'}: SoundNet-8 has 7 + 2, "
                           "SoundNet-5 has 4 + 2")
    if len(source.heads) != 2:
        raise WeightsError(f"{len(source.heads)} heads; the original networks have two "
                           "(objects, scenes)")
    preset = make_config(arch)
    channels = 1
    for conv, spec in zip(source.trunk, preset.convs):
        _check_conv(conv, spec.name, spec.kernel, spec.stride, spec.padding, channels, arch)
        if conv.pool is not None and conv.pool != spec.pool:
            raise WeightsError(f"{conv.name} ({spec.name}): max-pool {conv.pool or 'none'} after "
                               f"it, {arch} has {spec.pool or 'none'}")
        _check_bn(conv)
        channels = conv.out_channels
    k, s, p = ORIGINAL_HEAD_GEOMETRY[arch]
    for conv in source.heads:
        _check_conv(conv, preset.head_stage, k, s, p, channels, arch)
    return arch


def _check_conv(conv: ConvParams, public: str, kernel: int, stride: int, padding: int,
                channels: int, arch: str) -> None:
    out, cin, k = conv.weight.shape
    what = f"{conv.name} ({public} of {arch})"
    if k != kernel:
        raise WeightsError(f"{what}: kernel size {k}, expected {kernel}")
    if cin != channels:
        raise WeightsError(f"{what}: {cin} input channels, but the layer before it gives "
                           f"{channels}")
    if conv.stride is not None and conv.stride != stride:
        raise WeightsError(f"{what}: stride {conv.stride}, expected {stride}")
    if conv.padding is not None and conv.padding != padding:
        raise WeightsError(f"{what}: padding {conv.padding}, expected {padding}")


def _check_bn(conv: ConvParams) -> None:
    bn = conv.bn
    if bn is not None and bn.running_var is not None and np.any(bn.running_var < 0):
        raise WeightsError(f"{conv.name}: negative BatchNorm running variance")
