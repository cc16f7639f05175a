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
    "scoring": "tag_files head_scorers score_clip Scorer SoftmaxHead PooledHead SvmScorer",
    "results": "TagResult HeadScores Label",
    "schema": "result_to_json result_csv_rows CSV_COLUMNS TAG_SCHEMA_VERSION",
    "events": "DetectOptions Event HeadDetections detect MIN_AUDIO_SECONDS",
    "outputs": "TagRun tag_to_files provenance",
    "views": "write_combined",
    "folder": "DirTagging TaggedFiles",
    "table": "TagResults",
    "scorefile": "ScoreFile read_scores",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
