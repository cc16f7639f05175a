"""Training: the shared loop and the supervised task on top of it.

- :mod:`.loop`: the Task protocol and :func:`~.loop.fit` (optimiser, schedule, validation, metrics
  log, atomic checkpoints, exact resume, seeds, DDP), shared with :mod:`soundnet_cli.distill`.
- :mod:`.supervised`: ``soundnet train`` (a labelled dataset); :mod:`.augment`: how it makes
  examples (crops, gain, time-scale, between-class mixing).
- :mod:`.batches`: which examples each rank trains on in an epoch, in which batches (every task's
  rule); :mod:`.validation`: ``--val-fraction`` splits; :mod:`.freeze`: ``--train-layers``.
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "loop": "LoopConfig Task EpochReport fit",
    "supervised": "TrainConfig train_supervised",
    "augment": "AugmentConfig",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
