"""Linear SVMs on SoundNet features: the paper's ESC-50 protocol and a pooled default.

Two protocols (see ``docs/fit-svm.md``):

``paper``
    Exactly the original ESC-50 evaluation: each clip is looped (tiled circularly) and cut to
    exactly 10 s; with ``T`` frames at the layer, every run of ``w = ceil(T/10)`` consecutive
    frames (stride 1) is one instance of ``w * channels`` values (frame-major) with the clip's
    label; ``LinearSVC(C=0.01, loss="squared_hinge")``'s objective on unscaled features; at
    test time a clip's window decision values are averaged and the arg-max taken.
``pooled``
    Clips as they are; one instance per clip: the per-channel mean and max over time
    (``2 * channels`` values), standardised with the training clips' statistics; the same
    objective with C chosen by inner cross-validation on the training clips only.

Both protocols minimise ``LinearSVC``'s one-vs-rest squared-hinge objective; by default with the
batched Newton solver of :mod:`.solver` (the same unique minimiser, found many times faster than
liblinear on large problems), or with liblinear itself (``Protocol(solver="liblinear")``).

Pipeline: :func:`extract_features` (network -> cached per-clip activations, a
:class:`FeatureSet`) -> :func:`cross_validate` (a :class:`~.report.CVReport`) and
:func:`fit_svm` (an :class:`SvmModel`, saved as plain arrays + JSON). Tagging with a fitted model
is :class:`soundnet_cli.tagging.scoring.SvmScorer` in :func:`soundnet_cli.tagging.scoring.tag_files` (``soundnet tag
--svm``): streamed like any other head, in the tag schema.

Modules: :mod:`.protocol` (the two protocols, :class:`~.protocol.Protocol`), :mod:`.features`
(network -> per-clip activations, through :mod:`.cache`), :mod:`.fit` (fitting and
cross-validation), :mod:`.solver` (the Newton solver), :mod:`.model` (a fitted SVM, its file format
and scoring), :mod:`.report` (cross-validation reports).
"""

from __future__ import annotations

from typing import Any

# Deprecated: names of the old soundnet_cli.svm module (0.1), now in these submodules.
_OLD_NAMES = {
    **dict.fromkeys(("PROTOCOLS", "PAPER_SECONDS", "PAPER_C", "DEFAULT_C_GRID", "SOLVERS",
                     "SOLVER_MAX_ITER", "Protocol"), "protocol"),
    **dict.fromkeys(("FeatureSet", "model_fingerprint", "feature_key", "extract_features"),
                    "features"),
    **dict.fromkeys(("inner_splits", "fit_svm", "cross_validate"), "fit"),
    **dict.fromkeys(("FeatureCache", "FeatureKey", "default_cache_dir"), "cache"),
    **dict.fromkeys(("SvmModel", "paper_clip_scores", "pooled_scores", "pooled_stats",
                     "window_frames"), "model"),
    **dict.fromkeys(("CVReport", "FoldResult"), "report"),
}


def __getattr__(name: str) -> Any:
    if name in _OLD_NAMES:
        import importlib
        import warnings

        new = f"{__name__}.{_OLD_NAMES[name]}"
        warnings.warn(f"{__name__}.{name} moved to {new}.{name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
