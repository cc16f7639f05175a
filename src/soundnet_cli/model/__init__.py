"""SoundNet as data: the config, the geometry of its frames, and the network.

- :mod:`.config`: :class:`SoundNetConfig` (frozen, carried by every checkpoint), its layer specs
  (:class:`ConvSpec`, :class:`HeadSpec`, :class:`PooledHeadSpec`), their validation, and the
  presets (:func:`make_config`, :func:`original_heads`, :func:`classifier_head`).
- :mod:`.geometry`: layers by name or module number (:class:`Layers`), where their frames sit
  (:class:`Geometry`, samples) and which seconds they cover (:class:`TimeAxis`, the one time
  axis of the package); :func:`min_tag_samples`.
- :mod:`.network`: :class:`SoundNet`, the ``nn.Module`` (:class:`ConvBlock` trunk, heads, pooled
  heads over :func:`pooled_stats`).
- :mod:`.kernels`: CPU kernels the network uses in training mode, imported only then.

Names are exported lazily: ``config`` and ``geometry`` (and this ``__init__``) are torch-free, so
``from soundnet_cli.model import TimeAxis`` does not import torch; ``SoundNet`` does.
"""

# ruff: noqa: F401 (the names imported under TYPE_CHECKING are the exports below)
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _lazy_exports

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from .config import (
        ARCHITECTURES,
        CLASSIFIER_HEAD_GEOMETRY,
        ORIGINAL_HEAD_GEOMETRY,
        ORIGINAL_HEAD_SKIP_LAST,
        ConvSpec,
        HeadSpec,
        PooledHeadSpec,
        SoundNetConfig,
        classifier_head,
        make_config,
        original_heads,
        placeholder_labels,
    )
    from .geometry import Geometry, Layers, TimeAxis, geometry_of, min_tag_samples
    from .network import ConvBlock, SoundNet, pooled_stats

_EXPORTS = {
    "config": "SoundNetConfig ConvSpec HeadSpec PooledHeadSpec make_config original_heads "
              "classifier_head placeholder_labels ARCHITECTURES ORIGINAL_HEAD_GEOMETRY "
              "ORIGINAL_HEAD_SKIP_LAST CLASSIFIER_HEAD_GEOMETRY",
    "geometry": "Geometry TimeAxis Layers geometry_of min_tag_samples",
    "network": "SoundNet ConvBlock pooled_stats",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
