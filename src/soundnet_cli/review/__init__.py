"""From tags to findings: what to do with a finished ``soundnet tag --out DIR`` run.

- :func:`write_page` (``soundnet review DIR``, ``tag --format html``): one static review page;
- :func:`cut_clips` (``soundnet clips DIR``): short audio files of chosen detections, with a CSV
  for a person's verdicts;
- :func:`evaluate_run` (``soundnet evaluate DIR --truth ...``): scores against annotations,
  per-class thresholds for ``tag --min-conf @thresholds.csv``;
- :mod:`.timeinfo`: recording start times from file names, site metadata, detections per hour.

Every one reads the run through :func:`open_run` (records, files, audio).
"""

from .clips import choose, cut_clips, detections
from .evaluate import EvalOptions, EvalReport, evaluate_run, write_report
from .page import write_page
from .rundir import InputRecord, RunDir, open_run
from .timeinfo import Placement, start_from_name
from .truth import read_truth

__all__ = ["EvalOptions", "EvalReport", "InputRecord", "Placement", "RunDir", "choose",
           "cut_clips", "detections", "evaluate_run", "open_run", "read_truth",
           "start_from_name", "write_page", "write_report"]
