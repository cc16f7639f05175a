"""From tags to findings: what to do with a finished ``soundnet tag --out DIR`` run.

- :func:`write_page` (``soundnet review DIR``, ``tag --format html``): one static review page;
- :func:`cut_clips` (``soundnet clips DIR``): short audio files of chosen detections, with a CSV
  for a person's verdicts;
- :func:`evaluate_run` (``soundnet evaluate DIR --truth ...``): scores against annotations,
  per-class thresholds for ``tag --min-conf @thresholds.csv``;
- :mod:`.timeinfo`: recording start times from file names, site metadata, detections per hour.

Every one reads the run through :func:`open_run` (records, files, audio).
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "page": "write_page",
    "clips": "choose cut_clips detections",
    "evaluate": "EvalOptions EvalReport evaluate_run write_report",
    "rundir": "InputRecord RunDir open_run",
    "timeinfo": "Placement start_from_name",
    "truth": "read_truth",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
