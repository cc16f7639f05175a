"""Files -> activations: the only place that knows processes, threads, batching and devices.

- :mod:`.options`: :class:`~.options.RunOptions`, everything that never changes results (device,
  batch size, workers, threads, chunking, the streaming threshold, memory bounds), one set of
  defaults, and :meth:`~.options.RunOptions.plan`, the scheduling the CLI uses (how many decoding
  processes and torch threads).
- :mod:`.run`: :func:`~.run.start_run`, the start of a run over files (inputs, shard, device,
  decoding started early, the network, the plan) for the commands and library callers.
- :mod:`.decode`: decoding files in background processes (:class:`~.decode.DecodePool`).
- :mod:`.batch`: :func:`~.batch.iter_activations`, the batched, in-order pipeline over files.
- :mod:`.stream`: exact chunked inference for long recordings, and the streaming ``.npy`` writer.
- :mod:`.engine`: the fused inference forward pass both run on (devices are resolved by
  :func:`soundnet_cli.device.resolve_device`).
- :mod:`.allocator`: glibc malloc settings.

Torch-free modules: :mod:`.options`, :mod:`.decode` and :mod:`.run` (and this ``__init__``)
import neither torch nor anything that does, so a command can plan and start decoding before torch
loads (:mod:`.run` imports torch when it loads the network); keep them so. Every other module here
imports torch.
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "options": "RunOptions BATCH_SIZE LONG_FILE_SECONDS CHUNK_SECONDS",
    "run": "start_run FileRun",
    "batch": "iter_activations iter_dataset ClipResult",
    "stream": "stream_activations stream_to_npy",
    "arrays": "waveform_activations",
    "engine": "Engine",
    "decode": "DecodePool decode_file",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
