"""Labelled sound datasets, as fit-svm and train read them.

Three layouts, detected automatically by :func:`load_dataset` (or forced with ``layout``):

- ``esc50``: ``meta/esc50.csv`` (columns filename, fold, target, category, ...) and ``audio/``;
  file names come from the CSV, so both the official ``.wav`` release and an ``.ogg`` copy work.
  Class names are the ``category`` column (``dog``, ``chirping_birds``, ...), ordered by ``target``.
- ``folders``: ``DATASET/<class>/<audio files>``; no folds (k-fold is used downstream).
- ``csv``: a labels file with columns ``path,label[,fold]``; relative paths are resolved against
  the CSV's directory (or against ``DATASET`` when given). Paths that lead outside that directory
  (absolute, or through ``..``) are followed but listed in :attr:`Dataset.outside`, which the
  commands print as a warning.

Class names are spelled the readable way, underscores as spaces (:func:`readable_label`:
ESC-50's ``clock_tick`` is ``clock tick``), in every layout: that is how fit-svm reports them,
how saved SVMs and trained networks label their outputs, and so what ``soundnet tag`` prints.

Every dataset must have clips of at least two classes (one class "classifies" at 100 %). Clips
with byte-identical files are found by content (:func:`duplicate_clips`); cross-validation and
training refuse splits that put copies of one clip on both sides (:func:`check_leakage`): the
accuracy would measure memory, not generalisation.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .audio import AUDIO_SUFFIXES
from .errors import DatasetError

LAYOUTS = ("auto", "esc50", "folders", "csv")


@dataclass(frozen=True)
class Dataset:
    """Clips with integer labels and, when the dataset defines them, folds.

    Attributes
    ----------
    root
        Where the dataset lives (for messages and cache keys).
    paths
        One audio file per clip.
    labels
        ``(clips,)`` int64 index into ``classes``.
    classes
        Class names; ``labels`` index them.
    folds
        ``(clips,)`` int64 predefined fold of each clip, or ``None``.
    layout
        The layout that was read.
    missing
        Files the metadata lists that do not exist (reported, excluded).
    outside
        Listed files that lie outside the dataset's directory (labels CSV only; used, but
        worth a warning).
    """

    root: Path
    paths: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]
    folds: np.ndarray | None
    layout: str
    missing: tuple[Path, ...] = field(default=())
    outside: tuple[Path, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: Sequence[int] | np.ndarray) -> "Dataset":
        """The clips at ``index`` (same classes)."""
        index = np.asarray(index, dtype=np.int64)
        return Dataset(
            self.root, tuple(self.paths[i] for i in index), self.labels[index], self.classes,
            None if self.folds is None else self.folds[index], self.layout, self.missing,
            self.outside,
        )

    def select_folds(self, folds: Sequence[int]) -> "Dataset":
        """Clips whose predefined fold is in ``folds``."""
        if self.folds is None:
            raise DatasetError(f"{self.root}: this dataset has no predefined folds")
        absent = sorted(set(folds) - set(self.folds.tolist()))
        if absent:
            raise DatasetError(f"{self.root}: fold(s) {absent} not present "
                               f"(folds here: {sorted(set(self.folds.tolist()))})")
        return self.subset(np.flatnonzero(np.isin(self.folds, list(folds))))

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {c: counts.get(i, 0) for i, c in enumerate(self.classes)}

    def require_examples(self, minimum: int, purpose: str) -> None:
        """Raise :class:`DatasetError` naming every class with fewer than ``minimum`` clips
        (``purpose`` says what needs them, e.g. ``"5-fold cross-validation"``)."""
        short = [f"{c} ({n})" for c, n in self.class_counts().items() if n < minimum]
        if short:
            raise DatasetError(
                f"{self.root}: {purpose} needs at least {minimum} clips per class; too few in: "
                f"{', '.join(short[:10])}" + (f" and {len(short) - 10} more" if len(short) > 10
                                              else "")
            )


@dataclass(frozen=True)
class Split:
    """One cross-validation split: indices into a :class:`Dataset`.

    ``name`` is for reports (``"fold 3"`` for a predefined fold, ``"split 2/5"`` otherwise);
    ``test_fold`` is the predefined fold held out, or ``None``. After
    :func:`~soundnet_cli.provenance.exclude_seen`: ``excluded`` test clips were dropped because
    the network was trained on them, or (kept with ``allow_seen``) ``seen`` of the test clips are
    such clips and the fold's figure is contaminated.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    test_fold: int | None = None
    excluded: int = 0
    seen: int = 0

    @property
    def contaminated(self) -> bool:
        """Whether the test side holds clips the network was trained on."""
        return self.seen > 0


def cv_splits(
    dataset: Dataset, n_folds: int = 5, *, seed: int = 0, predefined: bool = True,
    test_folds: Sequence[int] | None = None,
) -> list[Split]:
    """Cross-validation splits of ``dataset``.

    With ``predefined`` and a dataset that has folds (ESC-50, a labels CSV with a fold column):
    leave one fold out, for every fold present, or only for ``test_folds`` (each still trained
    on all the other folds: e.g. the folds a network was not trained on). Otherwise stratified
    ``n_folds``-fold, shuffled with ``seed``. Raises :class:`DatasetError` naming the classes
    that have too few examples (fewer than ``n_folds`` clips, or all of a class's clips in one
    predefined fold, so that it would never be trained on when tested), and for ``test_folds``
    the dataset does not have.
    """
    splits = _cv_splits(dataset, n_folds, seed, predefined, test_folds)
    check_leakage(dataset, splits)
    return splits


def _cv_splits(dataset: Dataset, n_folds: int, seed: int, predefined: bool,
               test_folds: Sequence[int] | None) -> list[Split]:
    if test_folds is not None and (not predefined or dataset.folds is None):
        raise DatasetError(f"{dataset.root}: the dataset has no predefined folds to test on")
    if predefined and dataset.folds is not None:
        splits = _predefined_splits(dataset)
        if test_folds is None:
            return splits
        present = {s.test_fold for s in splits if s.test_fold is not None}
        unknown = sorted(set(test_folds) - present)
        if unknown:
            raise DatasetError(f"{dataset.root}: no fold {unknown[0]} (folds present: "
                               f"{', '.join(map(str, sorted(present)))})")
        return [s for s in splits if s.test_fold in set(test_folds)]
    if n_folds < 2:
        raise DatasetError(f"cross-validation needs at least 2 folds (got {n_folds})")
    dataset.require_examples(n_folds, f"{n_folds}-fold cross-validation")
    from sklearn.model_selection import StratifiedKFold

    kfold = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [Split(f"split {i + 1}/{n_folds}", train.astype(np.int64), test.astype(np.int64))
            for i, (train, test) in enumerate(kfold.split(np.zeros(len(dataset)),
                                                          dataset.labels))]


# ---------------------------------------------------------------------------------------------
# Duplicate content (leakage between training and test clips)

#: Bytes hashed first: files that differ there (nearly all) are never read whole.
_HEAD_BYTES = 1 << 16
#: ``(path, size, mtime_ns, whole) -> digest``, so repeated checks in one process read no file
#: twice (cross-validation checks its inner splits too).
_DIGESTS: dict[tuple[str, int, int, bool], str] = {}


def _digest(path: Path, whole: bool) -> str | None:
    try:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, whole)
        if key not in _DIGESTS:
            h = hashlib.sha256(str(st.st_size).encode())
            with open(path, "rb") as f:
                if whole:
                    while block := f.read(1 << 20):
                        h.update(block)
                else:
                    h.update(f.read(_HEAD_BYTES))
            _DIGESTS[key] = h.hexdigest()
        return _DIGESTS[key]
    except OSError:  # unreadable: decoding will report it
        return None


def duplicate_clips(dataset: Dataset) -> list[tuple[int, ...]]:
    """Groups of clip indices whose files hold byte-identical content (the same file listed
    twice, or copies of it), found by size and SHA-256."""
    quick: defaultdict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(dataset.paths):
        d = _digest(p, whole=False)
        if d is not None:
            quick[d].append(i)
    groups: list[tuple[int, ...]] = []
    for members in quick.values():
        if len(members) < 2:
            continue
        full: defaultdict[str, list[int]] = defaultdict(list)
        for i in members:
            d = _digest(dataset.paths[i], whole=True)
            if d is not None:
                full[d].append(i)
        groups += [tuple(g) for g in full.values() if len(g) > 1]
    return groups


def check_leakage(dataset: Dataset, splits: Sequence[Split]) -> None:
    """Raise :class:`DatasetError` if a split trains on a copy of one of its test clips."""
    groups = duplicate_clips(dataset)
    if not groups:
        return
    for split in splits:
        train, test = set(split.train.tolist()), set(split.test.tolist())
        for g in groups:
            a = next((i for i in g if i in train), None)
            b = next((i for i in g if i in test), None)
            if a is not None and b is not None:
                raise DatasetError(
                    f"{dataset.root}: {dataset.paths[a]} and {dataset.paths[b]} hold identical "
                    f"audio but one is trained on and the other tested in {split.name}: the "
                    f"accuracy would be inflated by leakage ({len(groups)} group(s) of "
                    "duplicates in all). Remove the copies, or keep each clip's copies in one "
                    "fold")


def _predefined_splits(dataset: Dataset) -> list[Split]:
    assert dataset.folds is not None
    present = sorted(set(dataset.folds.tolist()))
    if len(present) < 2:
        raise DatasetError(f"{dataset.root}: only fold {present} present; leave-one-fold-out "
                           "cross-validation needs at least 2 folds")
    lonely = []
    for i, name in enumerate(dataset.classes):
        folds_of_class = set(dataset.folds[dataset.labels == i].tolist())
        if len(folds_of_class) == 1:
            lonely.append(f"{name} (only in fold {folds_of_class.pop()})")
    if lonely:
        raise DatasetError(
            f"{dataset.root}: class(es) present in a single fold cannot be cross-validated "
            f"leaving one fold out: {', '.join(lonely[:10])}"
            + (f" and {len(lonely) - 10} more" if len(lonely) > 10 else "")
        )
    return [Split(f"fold {f}", np.flatnonzero(dataset.folds != f),
                  np.flatnonzero(dataset.folds == f), f) for f in present]


def detect_layout(root: Path) -> str:
    """Guess a dataset's layout from what is on disk."""
    if root.is_file() and root.suffix.lower() == ".csv":
        return "csv"
    if (root / "meta" / "esc50.csv").is_file():
        return "esc50"
    if root.is_dir() and any(p.is_dir() for p in root.iterdir()):
        return "folders"
    raise DatasetError(
        f"{root}: cannot tell the dataset layout: expected meta/esc50.csv + audio/ (ESC-50), "
        "one sub-directory of audio files per class, or --labels FILE.csv (path,label[,fold])"
    )


def load_dataset(
    root: str | os.PathLike | None,
    *,
    layout: str = "auto",
    labels_csv: str | os.PathLike | None = None,
) -> Dataset:
    """Read a dataset (see the module docstring). Raises :class:`DatasetError` naming the problem.

    Listed files that are missing are excluded and returned in ``Dataset.missing``; an empty
    result is an error.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if labels_csv is not None:
        layout = "csv"
    if root is None and labels_csv is None:
        raise DatasetError("give a dataset directory or --labels FILE.csv")
    base = Path(root) if root is not None else Path(labels_csv).parent  # type: ignore[arg-type]
    if labels_csv is None and not base.exists():
        raise DatasetError(f"{base}: no such dataset directory")
    if layout == "auto":
        layout = detect_layout(base)
    if layout == "esc50":
        ds = _load_esc50(base)
    elif layout == "folders":
        ds = _load_folders(base)
    else:
        csv_path = Path(labels_csv) if labels_csv is not None else base
        ds = _load_labels_csv(csv_path, Path(root) if root is not None else None)
    where = labels_csv if labels_csv is not None else base  # messages name the file read
    if len(ds) == 0:
        raise DatasetError(f"{where}: dataset is empty (no audio files found"
                           + (f"; {len(ds.missing)} listed files missing, e.g. {ds.missing[0]})"
                              if ds.missing else ")"))
    present = sorted(set(ds.labels.tolist()))
    if len(present) < 2:
        raise DatasetError(f"{where}: every clip is of class {ds.classes[present[0]]!r}; "
                           "classifying needs clips of at least two classes")
    return _readable(ds)


def _readable(ds: Dataset) -> Dataset:
    """``ds`` with :func:`readable_label` class names (an error if two names become one)."""
    names = tuple(readable_label(c) for c in ds.classes)
    if len(set(names)) < len(names):
        same = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"{ds.root}: class names that differ only in '_' versus ' ' "
                           f"({', '.join(repr(n) for n in same)}); rename one of each")
    return dataclasses.replace(ds, classes=names)


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = [h.strip() for h in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read CSV: {e}") from e
    absent = [c for c in required if c not in header]
    if absent:
        raise DatasetError(f"{path}: missing column(s) {', '.join(absent)} "
                           f"(found: {', '.join(header) or 'none'})")
    return [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in rows]


def _int(value: str, what: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError as e:
        raise DatasetError(f"{path}:{line}: {what} {value!r} is not an integer") from e


def _load_esc50(root: Path) -> Dataset:
    meta = root / "meta" / "esc50.csv"
    rows = _read_csv(meta, ("filename", "fold", "target", "category"))
    audio = root / "audio"
    names: dict[int, str] = {}
    paths, labels, folds, missing = [], [], [], []
    for line, r in enumerate(rows, start=2):
        target = _int(r["target"], "target", meta, line)
        if names.setdefault(target, r["category"]) != r["category"]:
            raise DatasetError(f"{meta}:{line}: target {target} is both {names[target]!r} "
                               f"and {r['category']!r}")
        p = audio / r["filename"]
        if not p.is_file():
            missing.append(p)
            continue
        paths.append(p)
        labels.append(target)
        folds.append(_int(r["fold"], "fold", meta, line))
    targets = sorted(names)
    remap = {t: i for i, t in enumerate(targets)}
    return Dataset(root, tuple(paths), np.array([remap[t] for t in labels], dtype=np.int64),
                   tuple(names[t] for t in targets), np.array(folds, dtype=np.int64), "esc50",
                   tuple(missing))


def _load_folders(root: Path) -> Dataset:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for i, c in enumerate(classes):
        files = sorted(q for q in (root / c).rglob("*")
                       if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES)
        paths.extend(files)
        labels.extend([i] * len(files))
    used = sorted(set(labels))
    empty = [c for i, c in enumerate(classes) if i not in used]
    if empty and used:
        raise DatasetError(f"{root}: class folder(s) without audio files: {', '.join(empty)}")
    return Dataset(root, tuple(paths), np.array(labels, dtype=np.int64), tuple(classes), None,
                   "folders")


def _load_labels_csv(csv_path: Path, root: Path | None) -> Dataset:
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: no such labels file")
    rows = _read_csv(csv_path, ("path", "label"))
    base = root if root is not None and root.is_dir() else csv_path.parent
    has_fold = bool(rows) and "fold" in rows[0]
    classes = sorted({r["label"] for r in rows if r["label"]})
    index = {c: i for i, c in enumerate(classes)}
    paths, labels, folds, missing, outside = [], [], [], [], []
    for line, r in enumerate(rows, start=2):
        if not r["label"] or not r["path"]:
            raise DatasetError(f"{csv_path}:{line}: empty path or label")
        p = Path(r["path"]).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            missing.append(p)
            continue
        if not _inside(p, base):
            outside.append(p)
        paths.append(p)
        labels.append(index[r["label"]])
        if has_fold:
            folds.append(_int(r["fold"], "fold", csv_path, line))
    return Dataset(base, tuple(paths), np.array(labels, dtype=np.int64), tuple(classes),
                   np.array(folds, dtype=np.int64) if has_fold else None, "csv", tuple(missing),
                   tuple(outside))


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies under ``root``, by its spelling (``..`` collapsed; a symbolic link
    placed in the dataset's folder is part of it) or by where it resolves to."""
    lexical = Path(os.path.normpath(path.absolute()))
    for p, r in ((lexical, Path(os.path.normpath(root.absolute()))),
                 (path.resolve(), root.resolve())):
        try:
            p.relative_to(r)
            return True
        except ValueError:
            pass
    return False


def readable_label(name: str) -> str:
    """``chirping_birds`` -> ``chirping birds`` (for display)."""
    return name.replace("_", " ")
