"""What a network was trained on, and which clips of a dataset it has already seen.

A checkpoint made by ``soundnet train`` carries a *training-data record* in its provenance, under
the key :data:`RECORD_KEY` (``"training_data"``)::

    {"dataset": "esc50",            # the dataset folder's name (never a path of this machine)
     "layout": "esc50",             # esc50 | folders | csv
     "clips": 1600,                 # training clips of this run (validation clips are not)
     "fingerprint": "sha256-16",    # how a clip's fingerprint is made (below)
     "fingerprints": ["03a1...", ...],  # sorted, one per clip the weights were trained on
     "inherited_clips": 0,          # fingerprints that came from the --init network only
     "init": {"dataset": ..., "clips": ...} | null}

``fingerprints`` is the union of this run's training clips and the ``--init`` network's own
record, so a fine-tuned network still "remembers" what its starting point saw.

A record may also belong to one head only, under ``provenance["heads"][NAME]["training_data"]``
(:data:`HEADS_KEY`): a head trained on a frozen trunk (the embedded network's ``esc50`` head on
ESC-50 folds 1-4) has seen those clips, while the trunk, whose features ``fit-svm`` and
``extract`` use, has not. :meth:`TrainingData.from_provenance` reads the trunk's record (the
top-level one), adding a head's record when asked for that head (``head="esc50"``) or for every
head (``head=ANY_HEAD``). A network fine-tuned from it inherits the trunk's record only: train
and distill replace such heads.

The fingerprint of a clip is the first 16 hex digits (64 bits) of the SHA-256 of the file's
bytes (:func:`clip_fingerprint`). It depends on nothing but the bytes, so it survives copying or
moving the dataset to another folder, renaming files, and another layout or labels CSV over the
same files. It does **not** catch a re-encoded, resampled, trimmed or re-tagged copy of a
recording (other bytes), nor the same sound in another file. 64 bits make an accidental collision
between two different clips negligible for any dataset size this tool handles (about 1e-13 for
50,000 clips). In the JSON header each clip costs 20 bytes (16 digits, quotes, comma, space):
32 kB for ESC-50's 2,000 clips.

:func:`seen_mask` compares a dataset's clips with a record; :func:`exclude_seen` drops the seen
clips from the test side of cross-validation splits (they may still train an SVM), or keeps them
and counts them as contaminated. A network without a record (imported original weights, a
checkpoint made before records existed, a ``distill`` student) has seen nothing as far as this
module can tell, and no clip is flagged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import DatasetError, WeightsError

#: Where a checkpoint's provenance keeps its training-data record.
RECORD_KEY = "training_data"
#: Where a checkpoint's provenance keeps per-head records (``{head: {RECORD_KEY: ...}}``).
HEADS_KEY = "heads"
#: ``head=`` value of :meth:`TrainingData.from_provenance` that merges every head's record.
ANY_HEAD = "*"
#: The fingerprint scheme this module computes (and the only one it can compare).
FINGERPRINT_SCHEME = "sha256-16"
#: Hex digits of the SHA-256 kept per clip (64 bits).
HEX_DIGITS = 16
#: Why seen clips are excluded (for reports).
SEEN_REASON = "the network was trained on them (its checkpoint's training-data record)"


def clip_fingerprint(path: str | os.PathLike) -> str:
    """The clip's fingerprint: the first :data:`HEX_DIGITS` hex digits of the SHA-256 of its
    bytes. Computed once per file and process (memoised on path, size and modification time)."""
    st = os.stat(path)
    return _fingerprint(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1 << 17)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:HEX_DIGITS]


def clip_fingerprints(paths: Iterable[str | os.PathLike]) -> list[str]:
    """:func:`clip_fingerprint` of every path, in order."""
    return [clip_fingerprint(p) for p in paths]


@dataclass(frozen=True)
class TrainingData:
    """A network's training-data record (see the module docstring).

    Attributes
    ----------
    dataset
        Name of the training dataset (its folder's name).
    layout
        Layout it was read in.
    clips
        Training clips of the run that made the checkpoint.
    fingerprints
        Every clip the weights were trained on (this run and its ``--init`` chain); empty when
        the record holds no fingerprints (then nothing can be detected).
    inherited_clips
        How many of ``fingerprints`` only the ``--init`` network was trained on.
    init
        ``{"dataset", "clips"}`` of the ``--init`` network's record, or ``None``.
    """

    dataset: str
    layout: str
    clips: int
    fingerprints: frozenset[str]
    inherited_clips: int = 0
    init: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "layout": self.layout, "clips": self.clips,
                "fingerprint": FINGERPRINT_SCHEME, "fingerprints": sorted(self.fingerprints),
                "inherited_clips": self.inherited_clips, "init": self.init}

    def summary(self) -> dict[str, Any]:
        """The record without its fingerprints (for reports)."""
        return {"dataset": self.dataset, "layout": self.layout, "clips": self.clips,
                "fingerprinted_clips": len(self.fingerprints),
                "inherited_clips": self.inherited_clips, "init": self.init}

    @classmethod
    def from_provenance(cls, provenance: Mapping[str, Any] | None,
                        head: str | None = None) -> "TrainingData | None":
        """The trunk's record in a checkpoint's provenance, merged with head ``head``'s record
        (every head's for :data:`ANY_HEAD`), or ``None`` when there is none.

        Raises :class:`WeightsError` for a malformed record or an unknown fingerprint scheme
        (a record that cannot be checked must not pass as "seen nothing").
        """
        provenance = provenance or {}
        records = [cls._parse(provenance.get(RECORD_KEY))]
        if head is not None:
            heads = provenance.get(HEADS_KEY) or {}
            if not isinstance(heads, Mapping):
                raise WeightsError("malformed per-head provenance in the checkpoint")
            names = list(heads) if head == ANY_HEAD else [head]
            for name in names:
                entry = heads.get(name) or {}
                if not isinstance(entry, Mapping):
                    raise WeightsError(f"malformed provenance of head {name!r} in the checkpoint")
                records.append(cls._parse(entry.get(RECORD_KEY)))
        found = [r for r in records if r is not None]
        if not found:
            return None
        merged = found[0]
        for r in found[1:]:
            merged = replace(merged, fingerprints=merged.fingerprints | r.fingerprints,
                             clips=merged.clips + r.clips,
                             inherited_clips=merged.inherited_clips + r.inherited_clips)
        return merged

    @classmethod
    def _parse(cls, raw: Any) -> "TrainingData | None":
        if raw is None:
            return None
        try:
            prints = raw.get("fingerprints") or []
            if prints and raw.get("fingerprint") != FINGERPRINT_SCHEME:
                raise WeightsError(f"training-data record uses fingerprint scheme "
                                   f"{raw.get('fingerprint')!r}; this soundnet-cli computes "
                                   f"{FINGERPRINT_SCHEME!r} (upgrade soundnet-cli)")
            if not all(isinstance(p, str) and len(p) == HEX_DIGITS for p in prints):
                raise WeightsError("training-data record holds malformed fingerprints")
            return cls(str(raw.get("dataset", "")), str(raw.get("layout", "")),
                       int(raw.get("clips", len(prints))), frozenset(prints),
                       int(raw.get("inherited_clips", 0)), raw.get("init"))
        except (AttributeError, TypeError, ValueError) as e:
            raise WeightsError(f"malformed training-data record in the checkpoint: {e}") from e

    def seen(self, fingerprints: Sequence[str]) -> np.ndarray:
        """``(len(fingerprints),)`` bool: which of these fingerprints the network was trained on."""
        return np.array([f in self.fingerprints for f in fingerprints], dtype=bool)


def training_record(fingerprints: Iterable[str], *, dataset: str, layout: str, clips: int,
                    init_provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The training-data record (as provenance JSON) of a run on ``clips`` training clips with
    these fingerprints (fewer, or none, when some clips cannot be fingerprinted: a ``distill``
    student's soundtracks come from videos).

    ``init_provenance`` is the ``--init`` checkpoint's provenance: its record's fingerprints are
    carried over (the weights have seen those clips too).
    """
    own = set(fingerprints)
    # What the --init network's trunk was trained on. Heads with records of their own (the
    # embedded network's esc50 head) are dropped by train and distill, so theirs do not pass on.
    parent = TrainingData.from_provenance(init_provenance)
    inherited = parent.fingerprints - own if parent else frozenset()
    record = TrainingData(dataset, layout, clips, frozenset(own | inherited), len(inherited),
                          {"dataset": parent.dataset, "clips": parent.clips} if parent else None)
    return record.to_dict()


def dataset_record(dataset: Any, index: Sequence[int] | np.ndarray, *,
                   init_provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`training_record` of the clips ``index`` of a :class:`~soundnet_cli.datasets.Dataset`
    (named after its folder, or its labels CSV; no paths are recorded)."""
    root = Path(dataset.root)
    name = root.stem if root.is_file() else root.name
    prints = clip_fingerprints(dataset.paths[int(i)] for i in index)
    return training_record(prints, dataset=name, layout=dataset.layout, clips=len(prints),
                           init_provenance=init_provenance)


def seen_mask(provenance: Mapping[str, Any] | None, dataset: Any,
              head: str | None = None) -> np.ndarray | None:
    """``(clips,)`` bool: the clips of ``dataset`` that the network with this provenance was
    trained on (its trunk; and head ``head``, or every head for :data:`ANY_HEAD`); ``None`` when
    there is no record with fingerprints (nothing known)."""
    record = TrainingData.from_provenance(provenance, head)
    if record is None or not record.fingerprints:
        return None
    return record.seen(clip_fingerprints(dataset.paths))


@dataclass(frozen=True)
class SeenCheck:
    """How the seen clips of one evaluation were handled, for reports.

    ``record`` is ``None`` for a network without a training-data record (nothing checked);
    ``seen`` counts the dataset's clips the network was trained on; ``allowed`` says they were
    kept in the test folds (contaminated figures) rather than excluded.
    """

    record: TrainingData | None
    seen: int = 0
    allowed: bool = False

    @property
    def policy(self) -> str:
        if self.record is None or not self.record.fingerprints:
            return "unchecked"
        if not self.seen:
            return "none seen"
        return "kept (contaminated)" if self.allowed else "excluded from test folds"

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record.summary() if self.record else None,
                "seen_clips": self.seen, "policy": self.policy,
                "reason": SEEN_REASON if self.seen else None}


def exclude_seen(splits: Sequence[Any], seen: np.ndarray | None, *, allow_seen: bool = False,
                 dataset: Any = None) -> list[Any]:
    """Apply the seen-clip policy to cross-validation splits (:class:`~soundnet_cli.datasets.
    Split`): drop seen clips from each test side (their count goes to ``Split.excluded``), or with
    ``allow_seen`` keep them and count them in ``Split.seen`` (the fold is contaminated). The
    training side is never changed. ``seen`` ``None`` (no record) returns the splits unchanged.

    Raises :class:`DatasetError` with advice (naming ``dataset``'s root and folds when given)
    when no test clip is left in any split.
    """
    if seen is None:
        return list(splits)
    out = []
    for s in splits:
        hit = seen[s.test]
        if allow_seen:
            out.append(replace(s, seen=int(hit.sum())))
        else:
            out.append(replace(s, test=s.test[~hit], excluded=int(hit.sum())))
    if not allow_seen and splits and all(s.test.size == 0 for s in out):
        raise DatasetError(all_seen_advice(out, dataset))
    return out


def all_seen_advice(splits: Sequence[Any], dataset: Any = None) -> str:
    """The message for an evaluation where the network has seen every test clip of ``splits``
    (after :func:`exclude_seen`); ``dataset`` (optional) names the data and its folds."""
    excluded = sum(s.excluded for s in splits)
    tested = [s.test_fold for s in splits if s.test_fold is not None]
    present = sorted(set(dataset.folds.tolist())) if dataset is not None and \
        dataset.folds is not None else tested
    data = str(dataset.root) if dataset is not None else "DATA"
    msg = (f"the network was trained on every test clip ({excluded} of {excluded}"
           + (f" in fold(s) {', '.join(map(str, tested))}" if tested else "")
           + "), so an accuracy on them would measure memory, not generalisation. ")
    if len(present) >= 2:
        test = tested[-1] if tested else present[-1]
        train = ",".join(str(f) for f in present if f != test)
        run = f"runs/without-fold{test}"
        msg += (f"Use a network trained without these clips, e.g. `soundnet train {data} "
                f"--train-folds {train} --run-dir {run}`, then evaluate it with `--weights "
                f"{run}/model.safetensors --test-fold {test}`; or hold out a fold this network "
                "has not seen (--test-fold)")
    else:
        msg += ("Use a network trained without these clips (e.g. `soundnet train --labels` a "
                "CSV that leaves them out), or evaluate on clips it has not seen")
    return msg + ". --allow-seen measures them anyway, reported as contaminated."
