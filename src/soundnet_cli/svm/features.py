"""SoundNet features of a dataset's clips for the SVMs: :func:`extract_features` runs the network
(through :func:`~soundnet_cli.runtime.batch.iter_activations`) on the clips not yet in the feature
cache (:mod:`.cache`, keyed by network fingerprint, layer and protocol) and returns one
:class:`FeatureSet` per layer."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence, cast

import numpy as np

from ..datasets import Dataset
from ..errors import DatasetError, SvmError
from ..runtime.options import RunOptions
from .cache import FeatureCache, FeatureKey, default_cache_dir
from .model import pooled_stats, window_frames
from .protocol import PAPER_SECONDS, SvmProtocol

if TYPE_CHECKING:

    from ..model import SoundNet


@dataclass
class FeatureSet:
    """One layer's activations for the clips of a dataset that decoded.

    Attributes
    ----------
    key
        Network fingerprint, layer, input scale and length policy (the cache key).
    dataset
        The clips that have features (undecodable ones excluded), labels, folds.
    activations
        One ``(frames, channels)`` float32 array per clip of ``dataset``.
    frames_10s
        Frames of this layer for a 10 s input (the paper's ``T``; sets the step window).
    geometry
        ``hop``, ``receptive_field``, ``first_sample`` (samples) and ``sample_rate`` (Hz) of the
        layer, to place steps in time.
    failures
        ``(path, message)`` of clips that could not be decoded.
    cached
        How many clips came from the cache.
    """

    key: FeatureKey
    dataset: Dataset
    activations: list[np.ndarray]
    frames_10s: int
    geometry: dict[str, int]
    failures: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cached: int = 0

    @property
    def window(self) -> int:
        """Frames per step window: ``ceil(T/10)`` with ``T`` the frames of 10 s."""
        return window_frames(self.frames_10s)

    def inputs(self, protocol: str) -> np.ndarray:
        """Per-clip SVM inputs: ``(clips, T, channels)`` for ``paper`` (all clips are 10 s),
        ``(clips, 2 * channels)`` mean-and-max statistics for ``pooled``."""
        if protocol == "paper":
            lengths = {a.shape[0] for a in self.activations}
            if len(lengths) != 1:
                raise SvmError("paper protocol needs clips of equal length (extract them with "
                               "the paper protocol, which loops every clip to 10 s)")
            return np.stack(self.activations)
        return np.stack([pooled_stats(a) for a in self.activations])


def model_fingerprint(model: "SoundNet") -> str:
    """The network's weights fingerprint (:attr:`~soundnet_cli.model.SoundNet.fingerprint`)."""
    return model.fingerprint


def feature_key(model: "SoundNet", layer: str, protocol: SvmProtocol) -> FeatureKey:
    """The cache key of ``layer``'s features under ``protocol`` for ``model``."""
    from ..runtime.batch import required_samples

    name = model.resolve_layers([layer])[0]
    rate = model.config.sample_rate
    trunk_min = required_samples(model, [model.config.convs[-1].name])
    scale = protocol.input_scale if protocol.input_scale is not None else model.config.input_scale
    loop = int(round(PAPER_SECONDS * rate)) if protocol.name == "paper" else None
    return FeatureKey(model_fingerprint(model), name, float(scale), loop,
                      max(trunk_min, required_samples(model, [name])))


def extract_features(
    model: "SoundNet",
    dataset: Dataset,
    layers: Sequence[str | int],
    protocol: SvmProtocol,
    *,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: Callable[[int], None] | None = None,
    options: RunOptions | None = None,
) -> dict[str, FeatureSet]:
    """Activations of ``layers`` for every clip of ``dataset``, through the cache.

    Clips whose features are cached for every requested layer are read from disk; the rest go
    through :func:`~soundnet_cli.runtime.batch.iter_activations` (batched, decoded in ``workers``
    processes) in one pass for all layers and are cached. Undecodable clips are excluded and
    listed in :attr:`FeatureSet.failures` (never cached, so a rerun retries them).

    Parameters
    ----------
    model
        Eval-mode network on ``device``.
    layers
        Names or original module numbers.
    progress
        Called with the number of clips just finished (cached or computed).
    options
        Scheduling of the forward passes (:class:`~soundnet_cli.runtime.options.RunOptions`;
        the features do not depend on it).

    Returns
    -------
    dict
        ``{layer name: FeatureSet}``; raises :class:`DatasetError` if no clip decoded.
    """
    opts = options if options is not None else RunOptions()
    names = model.resolve_layers(layers)
    keys = {n: feature_key(model, n, protocol) for n in names}
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    caches = {n: FeatureCache(root, k, channels=model.channels(n), frames=_looped_frames(model, k))
              for n, k in keys.items()} if use_cache else {}
    acts: dict[str, list[np.ndarray | None]] = {
        n: [caches[n].get(p) if use_cache else None for p in dataset.paths] for n in names}
    todo = [i for i in range(len(dataset)) if any(acts[n][i] is None for n in names)]
    cached = len(dataset) - len(todo)
    if progress and cached:
        progress(cached)
    errors, notes = _compute(model, dataset, todo, keys, acts, caches, opts, progress=progress)
    keep = np.array([i for i in range(len(dataset)) if i not in errors], dtype=np.int64)
    if keep.size == 0:
        raise DatasetError(f"{dataset.root}: none of the {len(dataset)} clips could be decoded "
                           f"(first error: {next(iter(errors.values()))})")
    failures = [(dataset.paths[i], m) for i, m in sorted(errors.items())]
    kept = dataset.subset(keep)
    ten_seconds = int(round(PAPER_SECONDS * model.config.sample_rate))
    out = {}
    for n in names:
        geo = model.geometry(n)
        out[n] = FeatureSet(
            keys[n], kept, [cast(np.ndarray, acts[n][i]) for i in keep],  # all kept: computed
            geo.frames(ten_seconds),
            {"hop": geo.hop, "receptive_field": geo.receptive_field,
             "first_sample": geo.first_sample, "sample_rate": model.config.sample_rate},
            failures, notes, cached,
        )
    return out


def _looped_frames(model: "SoundNet", key: FeatureKey) -> int | None:
    """Frames every clip has under a looping policy (``None``: lengths vary)."""
    if key.loop_samples is None:
        return None
    return model.geometry(key.layer).frames(key.loop_samples)


def _compute(model: "SoundNet", dataset: Dataset, todo: list[int], keys: dict[str, FeatureKey],
             acts: dict[str, list[np.ndarray | None]], caches: dict[str, FeatureCache],
             opts: RunOptions, *,
             progress: Callable[[int], None] | None) -> tuple[dict[int, str], list[str]]:
    """Run the network on the clips ``todo``, filling ``acts`` and the caches in place.

    Layers with the same length policy share one forward pass. Returns ``({clip: error},
    warnings)``.
    """
    from ..runtime.batch import iter_activations

    errors: dict[int, str] = {}
    notes: list[str] = []
    groups: dict[tuple[int | None, int], list[str]] = {}
    for n, k in keys.items():
        groups.setdefault((k.loop_samples, k.min_samples), []).append(n)
    for g, ((loop, least), group) in enumerate(groups.items()):
        results = iter_activations(
            model, [dataset.paths[i] for i in todo], group, min_samples=least, length=loop,
            input_scale=keys[group[0]].input_scale, options=opts,
        )
        opts = opts.replace(decoder=None)  # a decoder serves (and is consumed by) one pass
        for i, r in zip(todo, results):
            if r.error is not None:
                errors[i] = r.error
            else:
                notes.extend(r.warnings)
                for n in group:
                    acts[n][i] = r.activations[n]  # type: ignore[index]
                    if n in caches:
                        caches[n].put(dataset.paths[i], r.activations[n])  # type: ignore[index]
            if progress and g == 0:  # progress counts clips, not passes
                progress(1)
    return errors, list(dict.fromkeys(notes))
