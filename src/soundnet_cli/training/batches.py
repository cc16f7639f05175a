"""Which examples a rank trains on in an epoch, and in which batches (every task's rule).

The order is one permutation drawn from ``(seed, epoch)``, the same on every rank; each rank takes
its own equal share, so ranks never see the same example in an epoch, and a resumed run draws
the same batches as an uninterrupted one. Torch-free.
"""

from __future__ import annotations

import numpy as np


def batch_count(examples: int, batch_size: int, world: int) -> int:
    """Batches per epoch on one rank: the whole batches of its share of ``examples``, or one
    short batch when the share is smaller than a batch (0 for none)."""
    share = examples // world
    full = share // batch_size
    return full if full > 0 else int(share > 0)


def rank_order(seed: int, epoch: int, examples: int, rank: int, world: int) -> np.ndarray:
    """This rank's example indices for ``epoch``: its share of the permutation of
    ``range(examples)`` drawn from ``(seed, epoch)``."""
    perm = np.random.default_rng([seed, epoch, 0]).permutation(examples)
    share = examples // world
    return perm[rank * share : (rank + 1) * share]


def epoch_batches(seed: int, epoch: int, examples: int, batch_size: int, rank: int,
                  world: int) -> list[np.ndarray]:
    """This rank's batches for ``epoch``: :func:`batch_count` runs of ``batch_size`` indices
    from :func:`rank_order` (the rest of the share waits for another epoch's order)."""
    order = rank_order(seed, epoch, examples, rank, world)
    return [order[b * batch_size : (b + 1) * batch_size]
            for b in range(batch_count(examples, batch_size, world))]
