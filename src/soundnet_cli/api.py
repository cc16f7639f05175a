"""The Python face of the CLI: a network you load once and call on arrays or files.

::

    import soundnet_cli
    net = soundnet_cli.load()                        # the embedded network, on CUDA if there is one
    emb, t = net.embed(audio, sr=44_100)             # (frames, channels), (frames,) seconds
    tags = net.tag("dog.wav", min_conf=0.3)          # TagResults; tags.to_pandas()
    soundnet_cli.tag_files(["a.wav", "b.ogg"], out="tags/")   # what `soundnet tag --out` writes

Everything goes through the code the commands run: files through
:func:`~soundnet_cli.runtime.batch.iter_activations` (long files streamed), arrays through
:mod:`~soundnet_cli.runtime.arrays` (the same decoding finish, tiling and batcher), tags through
:mod:`~soundnet_cli.tagging.scoring` and :mod:`~soundnet_cli.tagging.events`. An array and a file
holding the same samples give identical embeddings and tags, and both equal ``soundnet extract``
and ``soundnet tag`` (``tests/test_api.py``). Errors are the CLI's: :class:`~.errors.SoundNetError`
subclasses with the messages the commands print. Reference: ``docs/api.md``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .errors import AudioError, UsageError
from .runtime.options import BATCH_SIZE, RunOptions
from .tagging.folder import DirTagging, TaggedFiles

if TYPE_CHECKING:
    import torch

    from .model import SoundNet
    from .tagging.events import DetectOptions
    from .tagging.scoring import Scorer
    from .tagging.table import TagResults

#: What ``embed`` returns when no layer is named (the layer the SoundNet paper's SVMs read).
DEFAULT_LAYER = "pool5"


def load(name_or_path: str | os.PathLike | None = None, device: "str | torch.device" = "auto",
         *, cache_dir: str | os.PathLike | None = None) -> "Network":
    """Load a network for inference, as ``--weights`` and ``--device`` do.

    Parameters
    ----------
    name_or_path
        ``None`` (the embedded default), a checkpoint path, or the name of a network in the cache
        (``soundnet8`` after ``soundnet weights download soundnet8``); see
        :func:`~soundnet_cli.weights.registry.resolve_weights`.
    device
        ``auto`` (CUDA, then MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or a
        ``torch.device``. An explicit device that is not there is a
        :class:`~soundnet_cli.errors.DeviceError`, never a silent fall-back.
    cache_dir
        The network cache (default ``$SOUNDNET_HOME``, else ``~/.cache/soundnet``).

    Raises
    ------
    WeightsError
        No such file or network, or a malformed checkpoint.
    """
    from .weights.registry import load_model

    return Network(load_model(name_or_path, device, cache_dir=cache_dir))


@dataclass
class Network:
    """A loaded SoundNet with ``embed`` and ``tag`` on arrays and files.

    Attributes
    ----------
    model
        The :class:`~soundnet_cli.model.SoundNet` (eval mode), on the device it runs on.
    options
        Scheduling (:class:`~soundnet_cli.runtime.options.RunOptions`: batch size, decoding
        processes, threads, long-file streaming); never changes results. Default: the CLI's plan
        for the model's device.
    """

    model: "SoundNet"
    options: RunOptions | None = field(default=None, repr=False)
    _engines: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _engine(self, layers: list[str]) -> Any:
        """The inference engine for ``layers``, built once per layer set: arrays reuse its
        folded weights (a Network is for inference; after changing ``model``'s weights, make a
        new Network)."""
        from .runtime.engine import Engine

        key = (tuple(layers), self.device)
        if key not in self._engines:
            self._engines[key] = Engine(self.model, list(layers), self.device)
        return self._engines[key]

    def __repr__(self) -> str:
        source = self.model.source or "in-memory"
        heads = ", ".join(f"{n}: {len(labels)}" for n, labels in self.labels.items())
        return (f"Network({source}, {self.model.config.arch}, heads {{{heads}}}, "
                f"device {self.device})")

    @property
    def device(self) -> "torch.device":
        """Where the network runs."""
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        """The network's input rate in Hz (22,050); arrays at other rates are resampled."""
        return int(self.model.config.sample_rate)

    @property
    def layers(self) -> tuple[str, ...]:
        """Public layer names ``embed`` accepts (``conv1`` ... ``pool5`` ..., and each head)."""
        return tuple(self.model.layer_names)

    @property
    def labels(self) -> dict[str, tuple[str, ...]]:
        """``{head: labels}``: what ``tag`` scores."""
        return {h.name: h.labels for h in self.model.config.heads}

    def _options(self, inputs: int) -> RunOptions:
        if self.options is not None:
            return self.options.replace(device=self.device)
        return RunOptions.plan(self.device, inputs)

    # -- embeddings

    def embed(self, audio: Any, sr: int | None = None, layer: str | int = DEFAULT_LAYER
              ) -> tuple[np.ndarray, np.ndarray]:
        """Activations of one layer for one waveform or file, as ``soundnet extract`` writes.

        Parameters
        ----------
        audio
            A NumPy array or torch tensor, ``(samples,)`` or ``(samples, channels)`` (channels
            are averaged), float in [-1, 1] at ``sr`` Hz; or the path of an audio file (its own
            rate; ``sr`` must then be ``None``).
        sr
            The array's sample rate in Hz; other rates than the network's are resampled (soxr
            HQ, as files are).
        layer
            A public layer name (:attr:`layers`) or original module number.

        Returns
        -------
        embeddings : numpy.ndarray
            ``(frames, channels)`` float32. SoundNet-8 ``pool5``: hop 8,192 samples (0.372 s),
            256 channels. Audio shorter than the layer needs is tiled (repeated) first.
        timestamps : numpy.ndarray
            ``(frames,)`` float64 seconds: the centre of each frame's receptive field
            (``SoundNet.time_axis(layer).centres``).

        Raises
        ------
        AudioError
            Unreadable, empty or non-finite audio, a bad ``sr``, or activations that overflow.
        LayerError
            An unknown layer (the message lists the valid ones).
        """
        (name,) = self.model.resolve_layers([layer])
        clip = self._activations(audio, sr, [name], None)
        if not clip.ok or clip.activations is None:
            raise AudioError(clip.error or f"{clip.path}: failed")
        emb = clip.activations[name]
        return emb, self.model.time_axis(name).centres(emb.shape[0])

    def _activations(self, audio: Any, sr: int | None, layers: list[str],
                     min_samples: int | None, input_scale: float | None = None) -> Any:
        """The :class:`~soundnet_cli.runtime.batch.ClipResult` of one array or file."""
        if _is_path(audio):
            if sr is not None:
                raise UsageError(f"sr={sr} given with the file {audio}: a file carries its own "
                                 "rate; pass sr only with arrays")
            from .runtime.batch import iter_activations

            (clip,) = iter_activations(self.model, [Path(audio)], layers,
                                       min_samples=min_samples, input_scale=input_scale,
                                       options=self._options(1))
            return clip
        from .runtime.arrays import waveform_activations, waveform_of

        if sr is None:
            raise UsageError("sr (the array's sample rate in Hz) is required with an array")
        wave, notes = waveform_of(audio, sr, self.sample_rate)
        return waveform_activations(self.model, wave, layers, min_samples=min_samples,
                                    input_scale=input_scale, options=self._options(1),
                                    notes=notes, engine=self._engine(layers))

    # -- tags

    def tag(self, audio_or_paths: Any, sr: int | None = None, *, min_conf: float | None = None,
            classes: str | Iterable[str] | None = None, top_k: int = 5, segments: bool = False,
            merge: bool = True, min_gap: float = 0.0,
            scorers: "Sequence[Scorer] | None" = None) -> "TagResults":
        """Label scores of every head, as ``soundnet tag`` reports them.

        Parameters
        ----------
        audio_or_paths
            One array or tensor (with ``sr``), one path, or a list of paths or of arrays (all at
            ``sr``). Paths are tagged as a batch (decoding processes, long files streamed).
        sr
            Sample rate of the arrays in Hz; ``None`` for paths.
        min_conf, classes, top_k, segments, merge, min_gap
            ``--min-conf`` (default 0.5 for probabilities), ``--classes`` (names, or the CLI's
            ``"a,b"`` / ``"@FILE"`` text), ``--top-k``, ``--segments``, ``--merge``,
            ``--min-gap``.
        scorers
            Default: the network's heads. An SVM or plug-in scorer
            (:class:`~soundnet_cli.tagging.scoring.Scorer`) as in ``soundnet tag --svm``.

        Returns
        -------
        TagResults
            One :class:`~soundnet_cli.tagging.scoring.TagResult` per input, in order;
            ``.to_pandas()`` / ``.to_arrow()`` / ``.rows()`` give the table of
            ``soundnet tag --csv``. Arrays are named ``<array>`` (``<array N>`` in a list).
            A file that cannot be decoded gives a result with ``error`` set (a batch goes on, as
            in the CLI; :meth:`TagResults.raise_failures` raises instead); a bad array raises
            :class:`AudioError` at once.

        Raises
        ------
        SoundNetError
            Unknown ``classes`` (the CLI's message), a bad ``min_gap``, ``sr`` with paths.
        """
        from .tagging.scoring import prepare_scorers, score_clip, tag_files
        from .tagging.table import TagResults

        chosen, layers, tile_to, scale = prepare_scorers(self.model, scorers)
        detect = detect_options(chosen, min_conf, classes, merge, min_gap)
        items, single = _inputs(audio_or_paths)
        if all(_is_path(x) for x in items):
            if sr is not None:
                raise UsageError(f"sr={sr} given with file paths: a file carries its own rate; "
                                 "pass sr only with arrays")
            results = list(tag_files(self.model, [Path(x) for x in items], scorers=chosen,
                                     options=self._options(len(items))))
        elif any(_is_path(x) for x in items):
            raise UsageError("tag either files or arrays in one call, not both")
        else:
            results = []
            for i, audio in enumerate(items):
                clip = self._named_array(audio, sr, layers, tile_to, scale,
                                         "<array>" if single else f"<array {i}>")
                results.append(score_clip(self.model, clip, chosen, tile_to))
        return TagResults(results, top_k=top_k, segments=segments, detect=detect)

    def _named_array(self, audio: Any, sr: int | None, layers: list[str], tile_to: int,
                     scale: float | None, name: str) -> Any:
        from .runtime.arrays import waveform_activations, waveform_of

        if sr is None:
            raise UsageError("sr (the arrays' sample rate in Hz) is required with arrays")
        wave, notes = waveform_of(audio, sr, self.sample_rate, name)
        return waveform_activations(self.model, wave, layers, min_samples=tile_to or None,
                                    input_scale=scale, options=self._options(1), name=name,
                                    notes=notes, engine=self._engine(layers))


def detect_options(scorers: Sequence["Scorer"], min_conf: float | None,
                   classes: str | Iterable[str] | None, merge: bool = True,
                   min_gap: float = 0.0) -> "DetectOptions":
    """:class:`~soundnet_cli.tagging.events.DetectOptions` as ``soundnet tag`` builds them:
    ``classes`` checked against the scorers' labels (the CLI's ``--classes`` text, or names)."""
    from .tagging.events import DetectOptions, parse_classes

    if classes is not None and not isinstance(classes, str):
        classes = ",".join(classes)
        if not classes:
            raise UsageError("classes: no class names given")
    known = {label for s in scorers for label in getattr(s, "labels", ())}
    return DetectOptions(min_conf=min_conf, classes=parse_classes(classes, known), merge=merge,
                         min_gap=min_gap)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _inputs(audio_or_paths: Any) -> tuple[list[Any], bool]:
    """``(items, single)``: a list of paths or arrays, and whether one input was given bare."""
    if _is_path(audio_or_paths) or hasattr(audio_or_paths, "shape"):
        return [audio_or_paths], True
    if isinstance(audio_or_paths, (list, tuple)):
        if not audio_or_paths:
            raise UsageError("nothing to tag: the list of inputs is empty")
        return list(audio_or_paths), False
    raise UsageError(f"cannot tag a {type(audio_or_paths).__name__}: give a path, an array, or "
                     "a list of either")


# ---------------------------------------------------------------------------------------------
# Files in, files out: `soundnet tag --out`


def tag_files(paths: Any, out: str | os.PathLike | None = None, *,
              weights: str | os.PathLike | None = None, device: str = "auto",
              formats: str | Sequence[str] = "jsonl,csv", top_k: int = 5,
              min_conf: float | None = None, classes: str | Iterable[str] | None = None,
              segments: bool = False, merge: bool = True, min_gap: float = 0.0,
              plot: bool = False, overwrite: bool = False, recursive: bool = False,
              svm: str | os.PathLike | None = None, batch_size: int = BATCH_SIZE,
              workers: int | None = None, network: Network | None = None) -> "TaggedFiles":
    """Tag files and directories into ``out``: what ``soundnet tag INPUTS --out OUT`` writes.

    Every keyword is the CLI option of that name, with the CLI's default (``formats`` is
    ``--format``, ``network`` a loaded :class:`Network` used instead of ``weights``/``device``).
    Inputs already done with the same network and settings are skipped, the combined tables
    and ``run.json`` are rebuilt (``docs/tag.md``, "Output files").

    Returns
    -------
    TaggedFiles
        Counts, failures (missing inputs and files that failed; the rest are still written) and
        the combined tables.

    Raises
    ------
    SoundNetError
        What makes the CLI stop before tagging: no weights, an unknown format or class, a
        format whose package is missing.
    """
    if out is None:
        raise UsageError("tag_files: give out=DIR (Network.tag returns results in memory)")
    return _tag_to_dir(paths, Path(out), weights=weights, device=device, formats=formats,
                       top_k=top_k, min_conf=min_conf, classes=classes, segments=segments,
                       merge=merge, min_gap=min_gap, plot=plot, overwrite=overwrite,
                       recursive=recursive, svm=svm, batch_size=batch_size, workers=workers,
                       network=network)


def _tag_to_dir(paths: Any, out: Path, *, weights: Any, device: str, formats: Any, top_k: int,
                min_conf: float | None, classes: Any, segments: bool, merge: bool,
                min_gap: float, plot: bool, overwrite: bool, recursive: bool, svm: Any,
                batch_size: int, workers: int | None, network: Network | None) -> TaggedFiles:
    """``soundnet tag --out`` without a shard (``cli/tag.py``), without progress."""
    from .runtime.run import start_run
    from .tagging.layout import parse_formats
    from .tagging.scoring import prepare_scorers

    inputs = [Path(p) for p in ([paths] if _is_path(paths) else paths)]
    if not inputs:
        raise UsageError("tag_files: no inputs given")
    spec = formats if isinstance(formats, str) else ",".join(formats)
    chosen = parse_formats(spec + (",png" if plot else ""))
    run = start_run(inputs, recursive=recursive, weights=weights, device=device,
                    network=None if network is None else network.model, workers=workers,
                    batch_size=batch_size, option="load_model")
    model = run.network
    scorers = _svm_scorers(svm, model) if svm is not None else None
    scorers = prepare_scorers(model, scorers)[0]
    detect = detect_options(scorers, min_conf, classes, merge, min_gap)
    settings = {"batch_size": batch_size, "workers": run.options.workers,
                "device": str(run.options.device), "recursive": recursive, "overwrite": overwrite}
    job = DirTagging(run, out, chosen, scorers, top_k=top_k, segments=segments, detect=detect,
                     settings=settings, failures=run.failures())
    job.start()
    for _ in job.tag(run.options):
        pass
    job.combine()
    return job.finish()


def _svm_scorers(path: str | os.PathLike, model: "SoundNet") -> list:
    from .svm.model import SvmModel
    from .tagging.scoring import SvmScorer

    return [SvmScorer(SvmModel.load(Path(path), expected_fingerprint=model.fingerprint))]


__all__ = ["DEFAULT_LAYER", "Network", "TaggedFiles", "detect_options", "load", "tag_files"]
