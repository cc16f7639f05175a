"""Tagging: what is in a sound, per clip and per step, and the files that say so.

Pipeline: :func:`.scoring.tag_files` (files -> activations through :mod:`soundnet_cli.runtime`
-> per-step scores of every :class:`~.scoring.Scorer`, a :class:`~.results.TagResult` per file)
-> :mod:`.events` (``--min-conf``, ``--classes``, per-step labels merged into events with onset
and offset) -> :mod:`.schema` (the JSON document and CSV rows of a result) -> :mod:`.outputs`
(``soundnet tag --out DIR``: one record per input plus the JSONL/CSV/Raven/Audacity/Parquet/PNG
views, resumable, with provenance in every format).

Modules: :mod:`.results` (the records: :class:`~.results.Label`, :class:`~.results.HeadScores`,
:class:`~.results.TagResult`), :mod:`.scoring` (scorers: the network's softmax and pooled heads
and a fitted SVM), :mod:`.events` (thresholds, event detection), :mod:`.schema` (JSON/CSV/Arrow
schema of a result), :mod:`.layout` (the ``--out`` folder's formats and file names),
:mod:`.outputs` (records, resume, the run), :mod:`.views` (CSV/Raven/Audacity views and the
combined tables), :mod:`.scorefile` (every step's score, ``.scores.npz``), :mod:`.table`
(:class:`~.table.TagResults`). Plots live in :mod:`soundnet_cli.plot`, shared with
``fit-svm --plot``.
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
    "TagResult": "results",
    "HeadScores": "results",
    "Label": "results",
    "result_to_json": "schema",
    "result_csv_rows": "schema",
    "CSV_COLUMNS": "schema",
    "TAG_SCHEMA_VERSION": "schema",
    "DetectOptions": "events",
    "Event": "events",
    "HeadDetections": "events",
    "detect": "events",
    "MIN_AUDIO_SECONDS": "events",
    "TagRun": "outputs",
    "tag_to_files": "outputs",
    "write_combined": "views",
    "TagResults": "table",
    "ScoreFile": "scorefile",
    "read_scores": "scorefile",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
