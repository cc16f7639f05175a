"""Tagging: what is in a sound, per clip and per step, and the files that say so.

Pipeline: :func:`.scoring.tag_files` (files -> activations through :mod:`soundnet_cli.runtime`
-> per-step scores of every :class:`~.scoring.Scorer`, a :class:`~.scoring.TagResult` per file)
-> :mod:`.events` (``--min-conf``, ``--classes``, per-step labels merged into events with onset
and offset) -> :mod:`.outputs` (``soundnet tag --out DIR``: one record per input plus the
JSONL/CSV/Raven/Audacity/Parquet/PNG views, resumable, with provenance in every format).

Modules: :mod:`.scoring` (scorers: the network's softmax heads and a fitted SVM; result schemas
and their JSON/CSV rows), :mod:`.events` (thresholds, event detection), :mod:`.outputs` (result
files and tables). Plots live in :mod:`soundnet_cli.plot`, shared with ``fit-svm --plot``.
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "scoring": "tag_files head_scorers score_clip Scorer SoftmaxHead PooledHead SvmScorer TagResult HeadScores Label result_to_json",
    "events": "DetectOptions Event HeadDetections detect MIN_AUDIO_SECONDS",
    "outputs": "TagRun tag_to_files write_combined",
    "table": "TagResults",
    "scorefile": "ScoreFile read_scores",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
