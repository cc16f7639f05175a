"""Training only part of a network: ``--freeze-trunk`` and ``--train-layers``.

On a few dozen clips, fine-tuning all 28 M weights of SoundNet-8 mostly memorises them; training
only the new head (``--freeze-trunk``), or the head and the last trunk layers (``--train-layers
conv7`` or ``conv6,conv7``), keeps what the network learned from millions of videos.

A frozen layer's weights get no gradient and are not in the optimiser, and its BatchNorm keeps the
statistics it came with: it normalises with them in training as in inference (rather than with
each small batch's statistics, which would drift them away from what the weights expect), and
precise BN (``--precise-bn``) leaves them alone. See :func:`hold_frozen_statistics`, which the
training loop applies whenever it puts the network in training mode.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import SoundNetError
from ..model import SoundNet


def trunk_layers(model: SoundNet) -> tuple[str, ...]:
    """Names of the trunk layers with weights (``conv1`` ... ``conv7`` for SoundNet-8)."""
    return tuple(c.name for c in model.config.convs)


def freeze(model: SoundNet, train_layers: Sequence[str] | None) -> dict[str, int]:
    """Freeze every trunk layer not in ``train_layers`` (``None``: train everything; empty: train
    only the heads). Returns ``{"trainable": n, "frozen": n}`` parameter counts. Raises
    :class:`SoundNetError` naming the valid layers for an unknown name."""
    names = trunk_layers(model)
    if train_layers is not None:
        unknown = [n for n in train_layers if n not in names]
        if unknown:
            heads = ", ".join(model.config.head_names)
            raise SoundNetError(
                f"--train-layers {','.join(unknown)}: not a trunk layer; choose from "
                f"{', '.join(names)} (the head{'s' if len(model.config.head_names) > 1 else ''} "
                f"{heads} always train{'' if len(model.config.head_names) > 1 else 's'})")
    for name in names:
        train = train_layers is None or name in train_layers
        for p in model.trunk[name].parameters():
            p.requires_grad_(train)
    hold_frozen_statistics(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def is_frozen(norm: nn.Module) -> bool:
    """Whether a BatchNorm belongs to a frozen layer (its scale gets no gradient)."""
    weight = getattr(norm, "weight", None)
    return weight is not None and not weight.requires_grad


def hold_frozen_statistics(model: nn.Module) -> None:
    """Put every frozen BatchNorm of ``model`` in inference mode (the rest is left as it is):
    call after ``model.train()``."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and is_frozen(m):
            m.eval()
