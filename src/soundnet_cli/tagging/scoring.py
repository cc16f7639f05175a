"""Tagging: per-step and clip-level label scores for audio files.

A *scorer* turns one layer's activations into per-step scores over its own labels. The network's
own heads (ImageNet objects, Places scenes, or a fine-tuned ``classes`` head) are scored by
:class:`SoftmaxHead`: a softmax over the labels at every time step. Other scorers (for example a
linear SVM over a trunk layer, whose scores are decision values, not probabilities) implement the
same :class:`Scorer` protocol and appear as further heads in every :class:`TagResult`.

Time steps
----------
Step ``i`` of a head whose input layer has hop ``h`` samples, receptive field ``r`` samples and
first sample ``f`` (negative where zero padding reaches before the start; see
:class:`~soundnet_cli.model.Geometry`) sees input samples ``[f + i*h, f + i*h + r)``. Segment start
and end seconds are that interval divided by the sample rate and clipped to
``[0, analysed_duration]``, where ``analysed_duration`` is the length actually fed to the network:
the file's duration, or the tiled length for clips shorter than the heads need. For SoundNet-8's
heads ``h`` = 65,536 samples (2.97 s) and ``r`` = 320,542 samples (14.5 s), so steps overlap.

Clip-level scores are the mean of the per-step scores (for probabilities: the average of the
per-step softmax distributions, itself a distribution).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import numpy as np

from ..errors import SoundNetError
from ..runtime.options import RunOptions
from .events import MIN_AUDIO_SECONDS
from .results import HeadScores, TagResult

if TYPE_CHECKING:
    from ..model import Geometry, SoundNet
    from ..runtime.batch import ClipResult

class Scorer(Protocol):
    """Anything that turns one layer's activations into a :class:`HeadScores`.

    Attributes
    ----------
    name
        The head name it reports.
    layer
        Public layer name whose activations it reads (a head or a trunk layer).
    min_samples
        Clips shorter than this many samples are tiled up to it before the network runs
        (0: only what the layer itself needs).

    Optional: ``input_scale`` (the scale of [-1, 1] audio the layer must be computed at, e.g. the
    one an SVM was fit at; absent or ``None``: the network's own) and ``check_model(model)``
    (raise if the scorer does not fit ``model``), both used by :func:`tag_files`.
    """

    @property
    def name(self) -> str: ...

    @property
    def layer(self) -> str: ...

    @property
    def min_samples(self) -> int: ...

    def score(self, activations: np.ndarray, geometry: Geometry, sample_rate: int) -> HeadScores:
        """``activations`` is ``(frames, channels)`` float32 of :attr:`layer`; ``geometry`` its
        frame geometry (samples)."""
        ...


#: What the note of a clip looped to the length tagging needs says (the CLI counts these notes
#: instead of showing one per clip).
LOOPED_NOTE = "; tiled (looped) to "


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float32 out, float64 inside)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class SoftmaxHead:
    """Scores one of the network's own heads: a softmax over its labels at every step.

    Clips shorter than ``min_samples`` (the model's ``tile_seconds``, 10 s for SoundNet-8, or more
    if the heads need more) are tiled first, as the original does.
    """

    name: str
    labels: tuple[str, ...]
    min_samples: int
    min_conf: float | None = None

    @property
    def layer(self) -> str:
        return self.name

    def score(self, activations: np.ndarray, geometry: Geometry, sample_rate: int) -> HeadScores:
        return HeadScores(self.name, self.labels, softmax(activations, axis=1), True,
                          **dataclasses.asdict(geometry.seconds(sample_rate)),
                          default_min_conf=self.min_conf)


@dataclass(frozen=True)
class PooledHead:
    """Scores one of the network's pooled heads (:class:`~soundnet_cli.model.PooledHeadSpec`): a
    softmax over its labels at every step, from its trunk layer's mean and max over the step.

    Clips shorter than ``min_samples`` (the network's shortest tagging input) are looped first,
    so the step sees what the convolutional heads' first step sees.
    """

    model: SoundNet = field(repr=False, compare=False)
    name: str
    labels: tuple[str, ...]
    layer: str
    min_samples: int
    min_conf: float | None = None

    def score(self, activations: np.ndarray, geometry: Geometry, sample_rate: int) -> HeadScores:
        import torch

        spec = next(p for p in self.model.config.pooled_heads if p.name == self.name)
        x = torch.from_numpy(np.ascontiguousarray(activations.T))[None]
        with torch.inference_mode():
            logits = self.model.pooled_logits(self.name, x)[0].T.numpy()
        axis = geometry.seconds(sample_rate).runs(min(spec.window, activations.shape[0]),
                                                  spec.stride)
        return HeadScores(self.name, self.labels, softmax(logits, axis=1), True,
                          **dataclasses.asdict(axis), default_min_conf=self.min_conf)


@dataclass(frozen=True)
class SvmScorer:
    """Scores a trunk layer with a linear SVM from ``soundnet fit-svm`` (decision values).

    Steps are the SVM's windows of ``svm.window`` frames (stride 1); the clip score is the SVM's
    own clip-level decision (mean over windows for the paper protocol, whole-clip statistics for
    the pooled one). Clips are tiled to the length the SVM was fit on (10 s for the paper protocol).
    """

    svm: Any
    name: str = "svm"

    @property
    def layer(self) -> str:
        return self.svm.layer

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.svm.classes)

    @property
    def min_samples(self) -> int:
        return int(self.svm.loop_samples or self.svm.min_samples)

    @property
    def input_scale(self) -> float:
        """The input scale the SVM's features were computed at."""
        return float(self.svm.input_scale)

    def check_model(self, model: SoundNet) -> None:
        """Raise :class:`~soundnet_cli.errors.SvmError` unless ``model`` is the network the SVM
        was fit on (same trunk weights)."""
        self.svm.check_network(model.fingerprint)

    def score(self, activations: np.ndarray, geometry: Geometry, sample_rate: int) -> HeadScores:
        steps, clip = self.svm.decision_steps(activations)
        frames = activations.shape[0] - steps.shape[0] + 1  # frames one step reads
        axis = geometry.seconds(sample_rate).runs(frames)
        return HeadScores(self.name, self.labels, np.asarray(steps, dtype=np.float32), False,
                          clip=np.asarray(clip, dtype=np.float32), **dataclasses.asdict(axis))


def head_scorers(model: SoundNet, heads: Sequence[str] | None = None
                 ) -> list[SoftmaxHead | PooledHead]:
    """A :class:`SoftmaxHead` for each of the model's heads, then a :class:`PooledHead` for each
    pooled head (or the named ones, in that order)."""
    pooled = {p.name: p for p in model.config.pooled_heads}
    if heads is None:
        names = [*model.config.head_names, *pooled]
    else:
        names = [n for h in heads
                 for n in ([h] if h in pooled else model.resolve_layers([h]))]
    by_name = {h.name: h for h in model.config.heads}
    from ..model import min_tag_samples

    tile_to = min_tag_samples(model)
    scorers: list[SoftmaxHead | PooledHead] = []
    for name in names:
        if name in pooled:
            spec = pooled[name]
            scorers.append(PooledHead(model, name, spec.labels, spec.layer, tile_to,
                                      spec.min_conf))
            continue
        if name not in by_name:
            from ..errors import LayerError

            raise LayerError(f"{name!r} is not a head; heads: {', '.join([*by_name, *pooled])}")
        scorers.append(SoftmaxHead(name, by_name[name].labels, tile_to, by_name[name].min_conf))
    return scorers


def tag_files(
    model: SoundNet,
    paths: Sequence[str | os.PathLike],
    *,
    scorers: Sequence[Scorer] | None = None,
    options: RunOptions | None = None,
) -> Iterator[TagResult]:
    """Score every file with every scorer, in input order.

    Parameters
    ----------
    model
        An eval-mode network on ``device``.
    paths
        Audio files (see :func:`~soundnet_cli.audio.find_audio_files` for directories).
    scorers
        Default: the model's heads (:func:`head_scorers`). Plug-in scorers are appended by
        passing ``[*head_scorers(model), my_scorer]``.
    options
        Scheduling: device, batch size, decoding processes, threads, streaming
        (:class:`~soundnet_cli.runtime.options.RunOptions`; results do not depend on it). Files
        longer than ``options.long_seconds`` are streamed, never decoded whole; only the heads'
        small activations are held (a 3-hour file: ~20 MB for SoundNet-8).

    Yields
    ------
    TagResult
        One per path; failures carry ``error`` and no heads, and do not stop the others.
    """
    from ..runtime.batch import iter_activations

    opts = options if options is not None else RunOptions()
    scorers, layers, tile_to, scale = prepare_scorers(model, scorers)
    for clip in iter_activations(model, paths, layers, min_samples=tile_to or None,
                                 input_scale=scale, options=opts):
        yield score_clip(model, clip, scorers, tile_to)


def score_clip(model: SoundNet, clip: ClipResult, scorers: Sequence[Scorer],
               tile_to: int) -> TagResult:
    """One file's (or array's) activations scored by ``scorers``: its :class:`TagResult`, with
    the tiling and too-little-audio notes; ``tile_to`` is the samples clips were tiled to."""
    if not clip.ok or clip.activations is None:
        return TagResult(clip.path, error=clip.error or f"{clip.path}: failed")
    rate = model.config.sample_rate
    analysed = clip.tiled_to or clip.duration
    notes = list(clip.warnings)
    if clip.tiled_to:
        notes.append(f"{clip.path}: {clip.duration:.2f} s is shorter than the "
                     f"{tile_to / rate:.2f} s tagging needs{LOOPED_NOTE}"
                     f"{clip.tiled_to:.2f} s")
    if clip.duration < MIN_AUDIO_SECONDS:
        notes.append(f"{clip.path}: only {clip.duration:.3f} s of audio decoded (truncated "
                     f"or very short, under {MIN_AUDIO_SECONDS:g} s); no label is reported "
                     "as confident")
    heads = [s.score(clip.activations[s.layer], model.geometry(s.layer), rate) for s in scorers]
    bad = next((h.name for h in heads if not np.isfinite(h.scores).all()
                or (h.clip is not None and not np.isfinite(h.clip).all())), None)
    if bad is not None:  # a scorer's overflow fails the file; NaN is never a score
        return TagResult(clip.path, error=f"{clip.path}: scores of {bad} are not finite")
    return TagResult(clip.path, heads, clip.duration, analysed, notes)


def prepare_scorers(model: SoundNet, scorers: Sequence[Scorer] | None
                    ) -> tuple[list[Scorer], list[str], int, float | None]:
    """``(scorers, layers, tile_to, input_scale)`` of a tagging run: the model's heads by
    default, each checked against ``model``; the layers they read; the samples clips are tiled
    to; the input scale they need (``None``: the network's own)."""
    chosen: list[Scorer] = list(head_scorers(model)) if scorers is None else list(scorers)
    for s in chosen:
        check = getattr(s, "check_model", None)
        if check is not None:
            check(model)
    layers = list(dict.fromkeys(s.layer for s in chosen))
    tile_to = max((s.min_samples for s in chosen), default=0)
    return chosen, layers, tile_to, _input_scale(model, chosen)


def _input_scale(model: SoundNet, scorers: Sequence[Scorer]) -> float | None:
    """The one input scale all scorers need (``None``: the network's own, the usual case)."""
    own = float(model.config.input_scale)
    scales = {float(getattr(s, "input_scale", None) or own) for s in scorers}
    if len(scales) > 1:
        raise SoundNetError(f"these scorers need the network at different input scales "
                            f"({', '.join(f'{x:g}' for x in sorted(scales))}); tag with each "
                            "group in its own call")
    scale = scales.pop() if scales else own
    return None if scale == own else scale
