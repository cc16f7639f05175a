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
liblinear on large problems), or with liblinear itself (``SvmProtocol(solver="liblinear")``).

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

from .. import _lazy_exports

_EXPORTS = {
    "protocol": "SvmProtocol PROTOCOLS SOLVERS",
    "features": "FeatureSet extract_features",
    "cache": "FeatureCache default_cache_dir",
    "fit": "fit_svm cross_validate",
    "model": "SvmModel",
    "report": "CVReport FoldResult",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
