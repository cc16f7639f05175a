"""Training: the shared loop and the supervised task on top of it.

- :mod:`.loop`: the Task protocol and :func:`~.loop.fit` (optimiser, schedule, validation, metrics
  log, atomic checkpoints, exact resume, seeds, DDP), shared with :mod:`soundnet_cli.distill`.
- :mod:`.supervised`: ``soundnet train`` (a labelled dataset, crops, gain, between-class mixing).
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "loop": "LoopConfig Task EpochReport fit",
    "supervised": "TrainConfig AugmentConfig train_supervised",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
