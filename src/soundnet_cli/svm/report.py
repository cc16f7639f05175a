"""Cross-validation results: per-fold accuracy, out-of-fold predictions, confusions, JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FoldResult:
    """One fold: sizes, accuracy on its test clips, the C used, fit time (s), and predictions.

    ``test_index`` ``(n_test,)`` indexes the feature set's clips; ``predicted`` ``(n_test,)``
    holds class indices. ``c_scores`` maps each candidate C to its inner-CV accuracy (pooled).
    ``excluded``: test clips of the fold left out because the network was trained on them;
    ``seen``: such clips kept in the test (``--allow-seen``), which makes ``accuracy``
    contaminated.
    """

    name: str
    test_fold: int | None
    n_train: int
    n_test: int
    accuracy: float
    C: float
    seconds: float
    test_index: np.ndarray
    predicted: np.ndarray
    converged: bool = True
    c_scores: dict[float, float] = field(default_factory=dict)
    excluded: int = 0
    seen: int = 0

    @property
    def contaminated(self) -> bool:
        return self.seen > 0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "test_fold": self.test_fold, "train_clips": self.n_train,
            "test_clips": self.n_test, "accuracy": self.accuracy, "C": self.C,
            "seconds": round(self.seconds, 3), "converged": self.converged,
            "excluded_seen": self.excluded, "seen_test_clips": self.seen,
            "contaminated": self.contaminated,
        }
        if self.c_scores:
            d["inner_cv"] = {f"{c:g}": s for c, s in self.c_scores.items()}
        return d


@dataclass
class SkippedFold:
    """A fold with no test clip left: all ``excluded`` were clips the network was trained on."""

    name: str
    test_fold: int | None
    excluded: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "test_fold": self.test_fold, "excluded_seen": self.excluded,
                "reason": "every test clip was in the network's training data"}


@dataclass
class CVReport:
    """All folds of one cross-validation.

    ``labels`` ``(clips,)`` are the true class indices of the feature set's clips; every clip is
    tested in at most one fold (clips the network was trained on may be excluded from all).
    ``skipped`` lists the folds left with no test clip.
    """

    classes: tuple[str, ...]
    labels: np.ndarray
    folds: list[FoldResult]
    skipped: list[SkippedFold] = field(default_factory=list)

    @property
    def contaminated(self) -> bool:
        """Whether any fold (and so the mean) was tested on clips the network was trained on."""
        return any(f.contaminated for f in self.folds)

    @property
    def excluded(self) -> int:
        """Test clips excluded in all folds (skipped ones included) as seen in training."""
        return sum(f.excluded for f in self.folds) + sum(f.excluded for f in self.skipped)

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([f.accuracy for f in self.folds])

    @property
    def mean(self) -> float:
        """Mean of the per-fold accuracies (as the paper reports)."""
        return float(self.accuracies.mean())

    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0) of the per-fold accuracies."""
        return float(self.accuracies.std())

    def predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """``(true, predicted)`` class indices of every tested clip, fold by fold."""
        idx = np.concatenate([f.test_index for f in self.folds])
        return self.labels[idx], np.concatenate([f.predicted for f in self.folds])

    def confusion(self) -> np.ndarray:
        """``(classes, classes)`` counts: row = true class, column = predicted."""
        k = len(self.classes)
        true, pred = self.predictions()
        return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)

    def per_class(self) -> dict[str, float]:
        """Accuracy (recall) of each class over all its tested clips."""
        m = self.confusion()
        totals = m.sum(axis=1)
        return {c: float(m[i, i] / totals[i]) if totals[i] else float("nan")
                for i, c in enumerate(self.classes)}

    def confused_pairs(self, top: int = 10) -> list[tuple[str, str, int]]:
        """The ``top`` most frequent (true class, predicted class, count) mistakes."""
        m = self.confusion().copy()
        np.fill_diagonal(m, 0)
        order = np.argsort(-m, axis=None, kind="stable")[:top]
        pairs = [np.unravel_index(i, m.shape) for i in order]
        return [(self.classes[t], self.classes[p], int(m[t, p])) for t, p in pairs if m[t, p] > 0]

    def to_dict(self, top_pairs: int = 10) -> dict[str, Any]:
        return {
            "accuracy": {"mean": self.mean, "std": self.std, "folds": len(self.folds),
                         "contaminated": self.contaminated},
            "folds": [f.to_dict() for f in self.folds],
            "skipped_folds": [f.to_dict() for f in self.skipped],
            "excluded_seen": self.excluded,
            # a class whose every clip was excluded has no accuracy (null, not NaN, in JSON)
            "per_class": {c: (None if a != a else a) for c, a in self.per_class().items()},
            "confused_pairs": [{"true": t, "predicted": p, "count": n}
                               for t, p, n in self.confused_pairs(top_pairs)],
        }
