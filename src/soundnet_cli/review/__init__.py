"""From tags to findings: what to do with a finished ``soundnet tag --out DIR`` run.

- :func:`write_page` (``soundnet review DIR``, ``tag --format html``): one static review page;
- :func:`cut_clips` (``soundnet clips DIR``): short audio files of chosen detections, with a CSV
  for a person's verdicts;
- :func:`evaluate_run` (``soundnet evaluate DIR --truth ...``): scores against annotations,
  per-class thresholds for ``tag --min-conf @thresholds.csv``;
- :mod:`.timeinfo`: recording start times from file names, site metadata, detections per hour.

Every one reads the run through :func:`open_run` (records, files, audio).
"""

from .page import write_page
from .rundir import InputRecord, RunDir, open_run

__all__ = ["InputRecord", "RunDir", "open_run", "write_page"]
