"""Fitting and cross-validating linear SVMs on a :class:`~.features.FeatureSet` (see
:mod:`soundnet_cli.svm` for the protocols): :func:`fit_svm` on all clips, :func:`cross_validate`
over the dataset's folds (or stratified k-fold), with C chosen by inner cross-validation for the
pooled protocol.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..datasets import Dataset, Split, cv_splits
from ..errors import DatasetError
from .features import FeatureSet
from .model import SvmModel, paper_clip_scores, pooled_scores
from .protocol import SvmProtocol
from .report import CVReport, FoldResult, SkippedFold

if TYPE_CHECKING:

    pass

#: Test clips scored per chunk in the paper protocol (bounds the memory of window matrices).
_SCORE_CHUNK = 64


@dataclass
class _Fit:
    """A fitted linear classifier as arrays (``classes`` rows, see :class:`SvmModel`)."""

    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    C: float
    converged: bool
    c_scores: dict[float, float] = field(default_factory=dict)


def _linear_svc(X: np.ndarray, y: np.ndarray, n_classes: int, C: float, protocol: SvmProtocol, *,
                dual: bool | str, seed: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Fit one-vs-rest squared-hinge SVMs with ``protocol``'s solver; coefficients
    ``(n_classes, dims)`` and intercepts for all ``n_classes``, and whether it converged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    present = np.unique(y)
    if present.size != n_classes:
        raise DatasetError(f"training data lacks class index(es) "
                           f"{sorted(set(range(n_classes)) - set(present.tolist()))}")
    if protocol.solver == "newton":
        from .solver import fit_squared_hinge

        fit = fit_squared_hinge(X, y, n_classes, C, tol=protocol.tol,
                                max_iter=protocol.iterations)
        return fit.coef, fit.intercept, fit.converged
    clf = LinearSVC(C=C, loss="squared_hinge", dual=dual, tol=protocol.tol,
                    max_iter=protocol.iterations, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    coef, intercept = clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64)
    if n_classes == 2:  # liblinear keeps one row for two classes; expand to one per class
        coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept, converged


def _paper_instances(inputs: np.ndarray, labels: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``(clips, T, C)`` -> every window of ``w`` frames: ``(clips * (T-w+1), w*C)`` and labels."""
    windows = np.lib.stride_tricks.sliding_window_view(inputs, w, axis=1)  # (n, T-w+1, C, w)
    n, steps = windows.shape[:2]
    X = np.ascontiguousarray(windows.transpose(0, 1, 3, 2)).reshape(n * steps, -1)
    return X, np.repeat(labels, steps)


def _fit_arrays(inputs: np.ndarray, labels: np.ndarray, n_classes: int, protocol: SvmProtocol,
                window: int, inner: list[Split] | None, seed: int) -> _Fit:
    if protocol.name == "paper":
        X, y = _paper_instances(inputs, labels, window)
        coef, intercept, ok = _linear_svc(X, y, n_classes, protocol.C, protocol, dual=True,
                                          seed=seed)
        d = X.shape[1]
        return _Fit(coef, intercept, np.zeros(d), np.ones(d), protocol.C, ok)
    c_scores: dict[float, float] = {}
    if len(protocol.c_grid) > 1:
        assert inner is not None
        for c in protocol.c_grid:
            accs = []
            for s in inner:
                f = _fit_pooled(inputs[s.train], labels[s.train], n_classes, c, protocol, seed)
                pred = pooled_scores(inputs[s.test], f.coef, f.intercept, f.mean, f.scale).argmax(1)
                accs.append(float(np.mean(pred == labels[s.test])))
            c_scores[c] = float(np.mean(accs))
        best = max(protocol.c_grid, key=lambda c: (c_scores[c], -c))  # ties: the smaller C
    else:
        best = protocol.c_grid[0]
    fit = _fit_pooled(inputs, labels, n_classes, best, protocol, seed)
    fit.c_scores = c_scores
    return fit


def _fit_pooled(X: np.ndarray, y: np.ndarray, n_classes: int, C: float, protocol: SvmProtocol,
                seed: int) -> _Fit:
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0  # constant features (dead channels) stay 0 after centring
    Z = (X - mean) / scale
    coef, intercept, ok = _linear_svc(Z, y, n_classes, C, protocol, dual="auto", seed=seed)
    return _Fit(coef, intercept, mean, scale, C, ok)


def inner_splits(dataset: Dataset, seed: int = 0) -> list[Split]:
    """Splits of a training set for choosing C: leave one predefined fold out when the training
    folds allow it, else stratified k-fold with k = min(3, smallest class)."""
    if dataset.folds is not None:
        try:
            return cv_splits(dataset, seed=seed, predefined=True)
        except DatasetError:
            pass
    smallest = min(dataset.class_counts().values())
    if smallest < 2:
        raise DatasetError(
            f"{dataset.root}: too few training clips per class to choose C by inner "
            "cross-validation (a class has 1); give a single value with --c-grid"
        )
    return cv_splits(dataset, min(3, smallest), seed=seed, predefined=False)


def fit_svm(
    features: FeatureSet,
    protocol: SvmProtocol,
    *,
    index: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    info: dict[str, Any] | None = None,
) -> SvmModel:
    """Fit one SVM on the clips at ``index`` of ``features`` (default: all of them).

    The pooled protocol chooses C by inner cross-validation on those clips only
    (:func:`inner_splits`); the paper protocol uses ``protocol.C``.
    """
    idx = np.arange(len(features.dataset)) if index is None else np.asarray(index, np.int64)
    sub = features.dataset.subset(idx)
    inputs = features.inputs(protocol.name)[idx]
    inner = inner_splits(sub, seed) if protocol.name == "pooled" and len(protocol.c_grid) > 1 \
        else None
    fit = _fit_arrays(inputs, sub.labels, len(sub.classes), protocol, features.window, inner,
                      seed)
    return _to_model(features, protocol, fit, {**(info or {}), "clips": int(len(idx))})


def _to_model(features: FeatureSet, protocol: SvmProtocol, fit: _Fit,
              info: dict[str, Any]) -> SvmModel:
    key = features.key
    return SvmModel(
        classes=features.dataset.classes, layer=key.layer, protocol=protocol.name,
        fingerprint=key.fingerprint, input_scale=key.input_scale,
        loop_samples=key.loop_samples, min_samples=key.min_samples, window=features.window,
        channels=int(features.activations[0].shape[1]), geometry=dict(features.geometry),
        C=fit.C, coef=fit.coef, intercept=fit.intercept, mean=fit.mean, scale=fit.scale,
        info={**info, "protocol": protocol.to_dict(), "converged": fit.converged,
              **({"c_scores": {f"{c:g}": s for c, s in fit.c_scores.items()}}
                 if fit.c_scores else {})},
    )


# ---------------------------------------------------------------------------------------------
# Cross-validation


def _run_fold(inputs: np.ndarray, labels: np.ndarray, n_classes: int, split: Split,
              inner: list[Split] | None, protocol: SvmProtocol, window: int,
              seed: int) -> FoldResult:
    start = time.perf_counter()
    fit = _fit_arrays(inputs[split.train], labels[split.train], n_classes, protocol, window,
                      inner, seed)
    test = inputs[split.test]
    if protocol.name == "paper":
        scores = np.concatenate([
            paper_clip_scores(test[i:i + _SCORE_CHUNK], fit.coef, fit.intercept, window)
            for i in range(0, len(test), _SCORE_CHUNK)
        ])
    else:
        scores = pooled_scores(test, fit.coef, fit.intercept, fit.mean, fit.scale)
    predicted = scores.argmax(axis=1)
    return FoldResult(
        name=split.name, test_fold=split.test_fold, n_train=int(split.train.size),
        n_test=int(split.test.size),
        accuracy=float(np.mean(predicted == labels[split.test])), C=fit.C,
        seconds=time.perf_counter() - start, test_index=split.test, predicted=predicted,
        converged=fit.converged, c_scores=fit.c_scores, excluded=split.excluded,
        seen=split.seen,
    )


def cross_validate(
    features: FeatureSet,
    protocol: SvmProtocol,
    splits: Sequence[Split] | None = None,
    *,
    n_folds: int = 5,
    seed: int = 0,
    jobs: int = 1,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> CVReport:
    """Cross-validated accuracy of ``protocol`` on ``features``.

    Parameters
    ----------
    splits
        Default: :func:`~soundnet_cli.datasets.cv_splits` of the feature set's dataset (leave
        one predefined fold out, else stratified ``n_folds``-fold with ``seed``).
    jobs
        Folds fitted in parallel (joblib processes; 0 or 1: in this process, -1: all cores).
    on_fold
        Progress: called with each :class:`FoldResult` as soon as it is done, in split order.

    Splits whose test side is empty (every test clip excluded by
    :func:`~soundnet_cli.provenance.exclude_seen`) are not fitted; the report lists them in
    ``skipped``.

    Returns
    -------
    CVReport
        Per-fold accuracy, out-of-fold predictions for every tested clip, confusions.
    """
    from joblib import Parallel, delayed

    ds = features.dataset
    splits = list(splits) if splits is not None else cv_splits(ds, n_folds, seed=seed)
    skipped = [SkippedFold(s.name, s.test_fold, s.excluded) for s in splits if s.test.size == 0]
    splits = [s for s in splits if s.test.size > 0]
    if not splits:
        raise DatasetError("no fold has a test clip left to cross-validate")
    inputs = features.inputs(protocol.name)
    inner = [inner_splits(ds.subset(s.train), seed)
             if protocol.name == "pooled" and len(protocol.c_grid) > 1 else None for s in splits]
    jobs = min(max(jobs, 1), len(splits)) if jobs >= 0 else jobs  # 0 means 1; -1 all cores
    # A generator: each fold is handed out (and reported) as it finishes, not all at the end.
    results = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_run_fold)(inputs, ds.labels, len(ds.classes), s, inn, protocol, features.window,
                           seed)
        for s, inn in zip(splits, inner)
    )
    folds = []
    for fold in results:
        folds.append(fold)
        if on_fold is not None:
            on_fold(fold)
    return CVReport(classes=ds.classes, labels=ds.labels, folds=folds, skipped=skipped)
