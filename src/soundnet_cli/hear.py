"""The HEAR API (Turian et al., HEAR 2021): SoundNet in the benchmarks that compare audio
embeddings (``hear-eval-kit``, and MAEB wrappers of the same shape).

::

    from soundnet_cli import hear
    model = hear.load_model()                          # or load_model("soundnet8"), a path
    scene = hear.get_scene_embeddings(audio, model)    # audio (n_sounds, n_samples) at 22,050 Hz
    emb, ts = hear.get_timestamp_embeddings(audio, model)

What the embeddings are (SoundNet-8; ``docs/api.md``, "HEAR and MAEB"):

- **Timestamp embeddings**: the frames of ``conv5`` (after ReLU), 256 channels, one every 2,048
  samples (92.9 ms). Each frame's timestamp is the centre of its receptive field (11,294 samples,
  0.51 s) in milliseconds; frames whose centre falls before the start or after the end of the
  audio (zero padding) are left out, so timestamps run from 57.3 ms in steps of 92.88 ms.
- **Scene embeddings**: the mean and the max over time of every ``conv5`` frame, concatenated
  (512 values): ``soundnet extract --layer conv5 --pool meanmax``, the layer that scored best
  on ESC-50 with a linear SVM for the authors' SoundNet-8 (70.0 % on fold 4, against 67.5 % for
  conv4 and 69.5 % for pool5; ``docs/api.md``).

Both are computed by the CLI's engine (:class:`~soundnet_cli.runtime.engine.Engine`): a sound's
timestamp embeddings are the frames ``Network.embed(sound, 22050, "conv5")`` returns, and its
scene embedding is what ``soundnet extract --layer conv5 --pool meanmax`` writes for a file of it
(tested). Audio shorter than ``conv5`` needs (about 0.05 s) is zero-padded at the end. Other
layers: ``load_model(path, timestamp_layer=..., scene_layer=..., scene_pool=...)``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import AudioError, SoundNetError
from .model import SoundNet

#: Defaults: the layer of the timestamp embeddings, and the layer and pooling of the scene ones.
TIMESTAMP_LAYER = "conv5"
SCENE_LAYER = "conv5"
SCENE_POOL = "meanmax"


class HearModel(nn.Module):
    """A SoundNet with the attributes HEAR asks for.

    Attributes
    ----------
    sample_rate
        22,050 Hz: the rate ``get_*_embeddings`` expect their audio at.
    timestamp_embedding_size, scene_embedding_size
        Channels of :attr:`timestamp_layer`; channels of :attr:`scene_layer` (twice that for
        ``meanmax`` pooling).
    network
        The :class:`~soundnet_cli.model.SoundNet` (a submodule: ``model.to(device)`` moves it).
    """

    def __init__(self, network: SoundNet, *, timestamp_layer: str = TIMESTAMP_LAYER,
                 scene_layer: str = SCENE_LAYER, scene_pool: str = SCENE_POOL) -> None:
        super().__init__()
        from .extract import POOLS

        if scene_pool not in POOLS or scene_pool == "none":
            raise SoundNetError(f"scene_pool {scene_pool!r}: choose mean, max or meanmax")
        self.network = network.eval()
        (self.timestamp_layer,) = network.resolve_layers([timestamp_layer])
        (self.scene_layer,) = network.resolve_layers([scene_layer])
        self.scene_pool = scene_pool
        self.sample_rate = int(network.config.sample_rate)
        self.timestamp_embedding_size = int(network.channels(self.timestamp_layer))
        width = int(network.channels(self.scene_layer))
        self.scene_embedding_size = 2 * width if scene_pool == "meanmax" else width
        self._engines: dict[tuple[str, torch.device], Any] = {}

    def activations(self, audio: torch.Tensor, layer: str) -> torch.Tensor:
        """``(n_sounds, channels, frames)`` activations of ``layer`` for ``(n_sounds,
        n_samples)`` audio (float32 in [-1, 1] at :attr:`sample_rate`), on the network's device;
        audio shorter than the layer needs is zero-padded at the end."""
        from .runtime.engine import Engine

        if audio.dim() != 2:
            raise AudioError(f"HEAR audio must be (n_sounds, n_samples), got shape "
                             f"{tuple(audio.shape)}")
        if audio.shape[1] == 0:
            raise AudioError("HEAR audio is empty (no samples)")
        device = next(self.network.parameters()).device
        key = (layer, device)
        if key not in self._engines:  # folding BatchNorm once per layer and device
            self._engines[key] = Engine(self.network, [layer], device)
        engine = self._engines[key]
        x = audio.detach().to(device=device, dtype=torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise AudioError("HEAR audio holds NaN or infinite samples")
        need = engine.min_samples()
        if x.shape[1] < need:
            x = torch.nn.functional.pad(x, (0, need - x.shape[1]))
        return engine.forward(x)[layer]

    def frame_centres(self, layer: str, frames: int) -> np.ndarray:
        """``(frames,)`` float64 seconds: the centre of each frame's receptive field."""
        return self.network.time_axis(layer).centres(frames)


def load_model(model_file_path: str | os.PathLike = "", *,
               timestamp_layer: str = TIMESTAMP_LAYER, scene_layer: str = SCENE_LAYER,
               scene_pool: str = SCENE_POOL) -> HearModel:
    """HEAR's ``load_model``: ``""`` loads the embedded network; otherwise a checkpoint path or
    the name of a cached network (``soundnet8``). Loaded on the CPU (HEAR moves it).

    Raises :class:`~soundnet_cli.errors.WeightsError` when there is no such network."""
    from .weights.registry import load_model as load_network

    network = load_network(str(model_file_path) if model_file_path else None, "cpu")
    return HearModel(network, timestamp_layer=timestamp_layer, scene_layer=scene_layer,
                     scene_pool=scene_pool)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR's ``get_timestamp_embeddings``.

    Parameters
    ----------
    audio
        ``(n_sounds, n_samples)`` float32 in [-1, 1] at ``model.sample_rate`` (22,050 Hz).
    model
        From :func:`load_model`.

    Returns
    -------
    embeddings : torch.Tensor
        ``(n_sounds, n_timestamps, model.timestamp_embedding_size)`` float32, on ``audio``'s
        device.
    timestamps : torch.Tensor
        ``(n_sounds, n_timestamps)`` float32 milliseconds: the centre of each frame's receptive
        field; only frames centred inside the audio (``0 <= t <= n_samples / 22.05``), or, for
        a sound shorter than a hop, the one frame nearest its middle (its time clipped to it).
    """
    acts = model.activations(audio, model.timestamp_layer)
    centres = model.frame_centres(model.timestamp_layer, acts.shape[-1])
    n = audio.shape[1] / model.sample_rate  # seconds
    keep = np.flatnonzero((centres >= 0) & (centres <= n))
    if not keep.size:  # a sound shorter than one hop: the frame nearest its middle, clipped
        keep = np.array([int(np.argmin(np.abs(centres - n / 2)))])
        centres = np.clip(centres, 0, n)
    index = torch.as_tensor(keep, dtype=torch.long, device=acts.device)
    emb = acts.index_select(2, index).transpose(1, 2)
    ms = torch.as_tensor(centres[keep] * 1000.0, dtype=torch.float32)
    stamps = ms.expand(audio.shape[0], -1)
    return emb.clone().to(audio.device), stamps.clone().to(audio.device)


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """HEAR's ``get_scene_embeddings``: ``(n_sounds, model.scene_embedding_size)`` float32 on
    ``audio``'s device, the ``model.scene_pool`` pooling over time of every frame of
    ``model.scene_layer`` (``audio`` as :func:`get_timestamp_embeddings`)."""
    from .extract import pool_frames

    acts = model.activations(audio, model.scene_layer).transpose(1, 2).cpu().numpy()
    pooled = np.concatenate([pool_frames(a, model.scene_pool) for a in acts])
    return torch.from_numpy(pooled).to(audio.device)
