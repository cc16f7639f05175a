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
    "tag_files": "scoring",
    "head_scorers": "scoring",
    "score_clip": "scoring",
    "Scorer": "scoring",
    "SoftmaxHead": "scoring",
    "PooledHead": "scoring",
    "SvmScorer": "scoring",
    "TagResult": "scoring",
    "HeadScores": "scoring",
    "Label": "scoring",
    "result_to_json": "scoring",
    "DetectOptions": "events",
    "Event": "events",
    "HeadDetections": "events",
    "detect": "events",
    "MIN_AUDIO_SECONDS": "events",
    "TagRun": "outputs",
    "tag_to_files": "outputs",
    "write_combined": "outputs",
    "TagResults": "table",
    "ScoreFile": "scorefile",
    "read_scores": "scorefile",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
