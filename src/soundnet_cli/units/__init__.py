"""What the units of a layer hear: each unit's top segments over a collection, and which units
fire in one recording (the paper's visualisations, ``soundnet units``).

- :func:`find_units`: scan recordings, keep every unit's top segments, write ``units.json``,
  ``units.csv`` and the gallery ``index.html``;
- :func:`explain` / :func:`explain_figure`: one recording's most active units over time;
- :class:`UnitTops`, :class:`RecordingPeaks`, :func:`scan_files`: the pieces, for other uses
  (``benchmarks/unit_purity.py``).
"""

from .explain import Explanation, explain, explain_figure
from .peaks import Peaks, RecordingPeaks, select_peaks
from .report import UnitEntry
from .run import UnitsRun, find_units, gather
from .scan import ScanOutcome, scan_files
from .top import Segment, UnitTops, parse_units

__all__ = [
    "Explanation", "Peaks", "RecordingPeaks", "ScanOutcome", "Segment", "UnitEntry", "UnitTops",
    "UnitsRun", "explain", "explain_figure", "find_units", "gather", "parse_units",
    "scan_files", "select_peaks",
]
