"""Waveforms already in memory -> activations, the way :func:`.batch.iter_activations` computes
a decoded file.

A file and an array holding the same samples give the same activations, bit for bit: the array is
validated, down-mixed and resampled by the function that finishes decoding a file
(:func:`~soundnet_cli.audio.prepare_waveform`), then tiled and run through the same batcher
(:class:`.batch._Batcher`), or, when longer than ``options.long_seconds``, streamed in
``options.chunk_seconds`` blocks as a long file is (:func:`.stream.run_stream`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..audio import prepare_waveform
from ..errors import AudioError, MemoryBudgetError
from ..model import SoundNet
from .batch import ClipResult, _Batcher, thread_limit
from .decode import DecodedClip
from .engine import Engine
from .options import RunOptions
from .stream import estimated_bytes, run_stream

#: What an array is called in messages and result paths.
ARRAY_NAME = "<array>"
#: More channels than this, and than samples, is taken for a transposed array, not audio.
MAX_CHANNELS = 64


def as_samples(audio: Any, name: str = ARRAY_NAME) -> np.ndarray:
    """``audio`` (a NumPy array, a torch tensor or anything ``np.asarray`` takes) as float32
    ``(samples,)`` or ``(samples, channels)``. Raises :class:`AudioError` for other shapes,
    and for more channels than samples (beyond :data:`MAX_CHANNELS`): a ``(channels, samples)``
    array or a batch, which averaging would silently ruin."""
    if hasattr(audio, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        audio = audio.detach().cpu().numpy()
    try:
        data = np.asarray(audio, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise AudioError(f"{name}: not an array of samples ({type(audio).__name__}): {e}") from e
    if data.ndim not in (1, 2):
        raise AudioError(f"{name}: expected (samples,) or (samples, channels) audio, got shape "
                         f"{data.shape}")
    if data.ndim == 2 and data.shape[1] > max(data.shape[0], MAX_CHANNELS):
        raise AudioError(f"{name}: shape {data.shape} reads as {data.shape[1]} channels of "
                         f"{data.shape[0]} samples; pass (samples, channels) (transpose a "
                         "(channels, samples) array), or a list of arrays for several sounds")
    return data


def waveform_of(audio: Any, sample_rate: int, model_rate: int, name: str = ARRAY_NAME
                ) -> tuple[np.ndarray, list[str]]:
    """``audio`` at ``sample_rate`` Hz as the network's input: ``((samples,) float32 at
    model_rate, warnings)``, exactly as a file of these samples decodes. Raises
    :class:`AudioError` on empty or non-finite audio or a bad rate."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioError(f"{name}: sample rate must be an integer number of Hz, got "
                         f"{sample_rate!r}")
    data = as_samples(audio, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wave = prepare_waveform(data, int(sample_rate), model_rate, name=name)
    return wave, [str(w.message) for w in caught]


def waveform_activations(model: SoundNet, waveform: np.ndarray, layers: Sequence[str | int], *,
                         min_samples: int | None = None, input_scale: float | None = None,
                         options: RunOptions | None = None, name: str = ARRAY_NAME,
                         notes: Sequence[str] = (), engine: Engine | None = None) -> ClipResult:
    """Activations of ``layers`` for one waveform, as :func:`.batch.iter_activations` gives them
    for a file that decodes to it.

    Parameters
    ----------
    model
        The network (BatchNorm uses its running statistics).
    waveform
        ``(samples,)`` float32 in [-1, 1] at the model's rate (:func:`waveform_of`).
    layers
        Layer names or module numbers.
    min_samples
        Tile shorter waveforms up to this many samples (default: what the layers need).
    input_scale
        Scale [-1, 1] audio by this instead of the model's own (an SVM's scale; see
        :func:`.batch.iter_activations`); disables streaming, as for files.
    options
        Scheduling (device, threads, micro-batch, streaming threshold and chunk, memory bound);
        never changes the activations.
    name
        The result's ``path`` and the name in messages.
    notes
        Warnings to carry into the result (those of :func:`waveform_of`).
    engine
        A prebuilt :class:`.engine.Engine` for exactly these layers on ``options.device``
        (building one folds every weight: about as long as a 10 s forward pass of SoundNet-8).

    Returns
    -------
    ClipResult
        ``activations`` ``{layer: (frames, channels)}`` float32; a waveform that overflows the
        network gives ``error`` (as a file would), never a raise.
    """
    opts = options if options is not None else RunOptions()
    if engine is None:
        engine = Engine(model, model.resolve_layers(layers), opts.device)
    need = max(min_samples or 0, engine.min_samples())
    rate = engine.sample_rate
    gain = 1.0 if input_scale is None else float(input_scale) / model.config.input_scale
    long = (opts.long_seconds is not None and gain == 1.0
            and waveform.shape[0] > max(opts.long_seconds * rate, need))
    if gain != 1.0:
        waveform = (waveform * np.float32(gain)).astype(np.float32)
    with thread_limit(opts.thread_count(engine.device)):
        if long:
            return _streamed(model, engine, waveform, opts, name, list(notes))
        batcher = _Batcher(engine, need, 1, opts.micro_batch_samples)
        batcher.add(DecodedClip(0, Path(name), waveform, warnings=list(notes)))
        (result,) = batcher.flush()
    return result


def _streamed(model: SoundNet, engine: Engine, waveform: np.ndarray, opts: RunOptions,
              name: str, notes: list[str]) -> ClipResult:
    """A long waveform in ``opts.chunk_seconds`` blocks, within ``opts.max_result_bytes``."""
    need = estimated_bytes(model, engine.layers, waveform.shape[0])
    if opts.max_result_bytes is not None and need > opts.max_result_bytes:
        raise MemoryBudgetError(
            f"{name}: holding layer(s) {', '.join(engine.layers)} of this "
            f"{waveform.shape[0] / engine.sample_rate:.0f} s waveform in memory needs "
            f"{need / 2**30:.2f} GiB (limit {opts.max_result_bytes / 2**30:.2f} GiB)")
    engine.check_length(waveform.shape[0])
    pieces: dict[str, list[np.ndarray]] = {n: [] for n in engine.layers}
    try:
        with warnings.catch_warnings():  # silence and loudness are in ``notes`` already
            warnings.simplefilter("ignore")
            for chunk in run_stream(engine, _blocks(waveform, opts.chunk_seconds,
                                                    engine.sample_rate), name=name):
                pieces[chunk.layer].append(chunk.data)
    except AudioError as e:  # overflow: the file's error, as in a batch
        return ClipResult(0, Path(name), None, error=str(e), streamed=True)
    arrays = {n: np.concatenate(p) if p else np.zeros((0, engine.channels[n]), np.float32)
              for n, p in pieces.items()}
    return ClipResult(0, Path(name), arrays, duration=waveform.shape[0] / engine.sample_rate,
                      warnings=notes, streamed=True)


def _blocks(waveform: np.ndarray, seconds: float, rate: int) -> Iterator[np.ndarray]:
    step = max(1, int(round(seconds * rate)))
    for start in range(0, waveform.shape[0], step):
        yield waveform[start:start + step]
