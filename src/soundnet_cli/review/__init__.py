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
    "write_page": "page",
    "choose": "clips",
    "cut_clips": "clips",
    "detections": "clips",
    "EvalOptions": "evaluate",
    "EvalReport": "evaluate",
    "evaluate_run": "evaluate",
    "write_report": "evaluate",
    "InputRecord": "rundir",
    "RunDir": "rundir",
    "open_run": "rundir",
    "Placement": "timeinfo",
    "start_from_name": "timeinfo",
    "read_truth": "truth",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
