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
    "Shard": "partition",
    "parse_shard": "partition",
    "resolve_shard": "partition",
    "select": "partition",
    "plan_shard": "partition",
    "read_files_from": "partition",
    "ShardStatus": "status",
    "StatusFile": "status",
    "status_path": "status",
    "MergeReport": "merge",
    "merge": "merge",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
