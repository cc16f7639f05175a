"""Tag results as a table: :class:`TagResults`, what :meth:`soundnet_cli.Network.tag` returns.

The table is the long CSV of ``soundnet tag --csv`` (:data:`~.schema.CSV_COLUMNS`, one row per
input, head, scope, step and rank), built by the same function
(:func:`~.schema.result_csv_rows`), so ``to_pandas()`` and ``to_arrow()`` hold the rows and
values ``soundnet tag --csv`` prints for the same input and options. Empty CSV cells are nulls
(``NaN``/``<NA>`` in pandas, null in Arrow); numeric columns are typed as in ``tags.parquet``
(:data:`~.schema.NUMERIC_COLUMNS`). pandas and pyarrow are optional: each method imports its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from ..errors import SoundNetError
from .events import DetectOptions
from .results import TagResult
from .schema import (
    CSV_COLUMNS,
    NUMERIC_COLUMNS,
    arrow_schema,
    arrow_table,
    result_csv_rows,
    result_to_json,
)


@dataclass
class TagResults(Sequence[TagResult]):
    """The :class:`~.results.TagResult` of every input, in input order, with the options that
    decide which labels are reported.

    A sequence: ``results[0].head("objects").top_k(3)``, ``len(results)``, iteration. Inputs
    that failed are kept, with ``error`` set (see :attr:`failures`).

    Attributes
    ----------
    results
        One per input.
    top_k, segments, detect
        As ``soundnet tag --top-k``, ``--segments``, ``--min-conf``/``--classes``/``--merge``/
        ``--min-gap``.
    provenance
        Filled into the table's provenance columns when given (``soundnet tag --out`` does).
    """

    results: list[TagResult]
    top_k: int = 5
    segments: bool = False
    detect: DetectOptions = field(default_factory=DetectOptions)
    provenance: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: Any) -> Any:
        return self.results[i]

    def __iter__(self) -> Iterator[TagResult]:
        return iter(self.results)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(path, error)`` of every input that failed."""
        return [(str(r.path), r.error or "failed") for r in self.results if not r.ok]

    def raise_failures(self) -> "TagResults":
        """Raise :class:`~soundnet_cli.errors.SoundNetError` with the first failure's message
        when any input failed (the others are named by count); else return ``self``."""
        failed = self.failures
        if failed:
            more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
            raise SoundNetError(failed[0][1] + more)
        return self

    def to_json(self) -> list[dict[str, Any]]:
        """One ``soundnet tag --json`` document per input (failed inputs included)."""
        return [result_to_json(r, self.top_k, self.segments, self.detect, self.provenance)
                for r in self.results]

    def rows(self) -> list[dict[str, Any]]:
        """The long table as dicts of :data:`~.schema.CSV_COLUMNS` (``""`` for empty cells),
        exactly the rows of ``soundnet tag --csv``."""
        return [row for r in self.results
                for row in result_csv_rows(r, self.top_k, self.segments, self.detect,
                                           self.provenance)]

    def to_arrow(self) -> Any:
        """The long table as a ``pyarrow.Table`` (the schema of ``tags.parquet``, provenance in
        its metadata). Needs pyarrow (``pip install 'soundnet-cli[parquet]'``)."""
        _need("pyarrow", "parquet")
        return arrow_table(self.rows(), arrow_schema(self.provenance))

    def to_pandas(self) -> Any:
        """The long table as a ``pandas.DataFrame``: columns :data:`~.schema.CSV_COLUMNS`,
        nullable ``Int32`` for ``step``/``rank``/``index``/``schema_version``, ``float64`` for
        ``start``/``end``/``score``/``mean_score`` (``NaN`` where the CSV cell is empty), strings
        elsewhere. Needs pandas."""
        _need("pandas", "pandas")
        import pandas as pd


        rows = self.rows()
        data: dict[str, Any] = {}
        for col in CSV_COLUMNS:
            values = [r[col] for r in rows]
            kind = NUMERIC_COLUMNS.get(col)
            if kind == "int32":
                data[col] = pd.array([None if v == "" else int(v) for v in values],
                                     dtype="Int32")
            elif kind == "float64":
                data[col] = pd.array([float("nan") if v == "" else float(v) for v in values],
                                     dtype="float64")
            else:
                data[col] = pd.array([str(v) for v in values], dtype=object)
        frame = pd.DataFrame(data, columns=list(CSV_COLUMNS))
        frame.attrs["soundnet_provenance"] = json.loads(json.dumps(self.provenance or {}))
        return frame


def _need(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SoundNetError(f"this needs {module}: pip install {module} (or "
                            f"'soundnet-cli[{extra}]')")
