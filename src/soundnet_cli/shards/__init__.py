"""One run split over machines: which inputs a shard takes, what it did, and merging the shards.

- :mod:`.partition`: ``--shard I/N``, SLURM array and torchrun shards, the partition of the
  inputs (stable under reordering), ``--files-from`` (torch-free);
- :mod:`.status`: ``OUT/status.shard-I-of-N.jsonl``, what one shard was given and did;
- :mod:`.merge`: ``soundnet merge``, the shards' tables -> one run's, with the missing and failed
  inputs and a ``rerun.txt``.
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "partition": "Shard parse_shard resolve_shard select plan_shard read_files_from",
    "status": "ShardStatus StatusFile status_path",
    "merge": "MergeReport",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
