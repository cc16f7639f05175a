"""Which clips ``soundnet train`` validates on: a predefined fold, or a stratified random share.

A dataset with folds (ESC-50, a labels CSV with a ``fold`` column) validates on ``--val-fold``.
One without folds (one folder per class) gets a stratified, seeded share of each class,
``--val-fraction``: by default :data:`AUTO_FRACTION` when every class has at least
:data:`AUTO_MIN_PER_CLASS` clips (each class then keeps at least four training clips and gives
at least one validation clip), none otherwise. ``--val-fraction 0`` trains on everything.

The split is written next to the run as ``RUN_DIR/split.csv`` (``path,label,fold``: fold 1 the
training clips, fold 2 the validation clips), so ``soundnet fit-svm --labels RUN_DIR/split.csv
--test-fold 2`` measures an SVM on exactly the same split.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from ..datasets import Dataset, duplicate_clips
from ..errors import DatasetError
from ..files.fsutil import atomic_write_text

#: ``--val-fraction`` when not given, for a dataset without folds that is large enough.
AUTO_FRACTION = 0.2
#: Fewest clips in every class for the automatic validation share.
AUTO_MIN_PER_CLASS = 5
SPLIT_FILE = "split.csv"


def resolve_val_fraction(dataset: Dataset, val_fold: int | None,
                         val_fraction: float | None) -> float:
    """The validation share to use: ``val_fraction`` as given (checked), or, when ``None``,
    :data:`AUTO_FRACTION` for a dataset without folds whose every class has at least
    :data:`AUTO_MIN_PER_CLASS` clips, else 0. Raises :class:`DatasetError` for a share outside
    [0, 1) or one given together with ``val_fold``."""
    if val_fraction is not None:
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetError(f"--val-fraction {val_fraction}: must be at least 0 and below 1")
        if val_fraction > 0 and val_fold is not None:
            raise DatasetError("--val-fold and --val-fraction both choose the validation clips: "
                               "give one of them")
        return float(val_fraction)
    if val_fold is not None or dataset.folds is not None or len(dataset) == 0:
        return 0.0
    smallest = min(dataset.class_counts().values())
    return AUTO_FRACTION if smallest >= AUTO_MIN_PER_CLASS else 0.0


def stratified_split(dataset: Dataset, candidates: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``candidates`` (indices into ``dataset``) into training and validation indices.

    Each class gives ``round(fraction * n)`` of its ``n`` clips to validation, at least one and
    at most ``n - 1`` (a class with one clip trains on it), drawn with a generator seeded by
    ``seed``: the same dataset and seed give the same split. Byte-identical copies of a clip are
    kept on one side (training), so validation never scores a clip the network trained on.
    Returns two sorted int64 arrays.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    if fraction <= 0:
        return np.sort(candidates), np.array([], dtype=np.int64)
    rng = np.random.default_rng([seed, 7357])  # a stream of its own: not the training examples'
    val: list[int] = []
    for c in range(len(dataset.classes)):
        members = candidates[dataset.labels[candidates] == c]
        n = len(members)
        if n < 2:
            continue
        k = min(n - 1, max(1, int(round(fraction * n))))
        val.extend(rng.permutation(members)[:k].tolist())
    val_set = set(val)
    chosen = set(candidates.tolist())
    for group in duplicate_clips(dataset):
        inside = [i for i in group if i in chosen]
        if any(i in val_set for i in inside) and not all(i in val_set for i in inside):
            val_set.difference_update(inside)
    train = np.array(sorted(chosen - val_set), dtype=np.int64)
    return train, np.array(sorted(val_set), dtype=np.int64)


def write_split(run_dir: str | os.PathLike, dataset: Dataset, classes: list[str] | tuple[str, ...],
                train: np.ndarray, val: np.ndarray) -> Path:
    """Write ``RUN_DIR/split.csv`` (``path,label,fold``; fold 1 training, 2 validation)
    atomically. Paths are relative to the dataset's directory when inside it (``soundnet fit-svm
    DATASET --labels RUN_DIR/split.csv`` resolves them there), else absolute."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "fold"])
    for fold, indices in ((1, train), (2, val)):
        for i in indices:
            writer.writerow([_relative(Path(dataset.paths[int(i)]), Path(dataset.root)),
                             classes[int(dataset.labels[int(i)])], fold])
    path = Path(run_dir) / SPLIT_FILE
    atomic_write_text(path, buf.getvalue())
    return path


def _relative(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return str(path.absolute())
