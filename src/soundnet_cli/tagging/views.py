"""Views of tag records: one input's CSV, Raven selection table and Audacity label track, and
the run's combined tables (``tags.jsonl``, ``tags.csv``, ``selections.txt``, ``tags.parquet``).

Every view is made from records (:func:`~.schema.result_to_json` documents) alone, never from
the network, so ``tag --out`` rebuilds a missing view from its record and ``soundnet merge``
writes the combined tables of a sharded run byte-identical to one run's.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import OutputError
from ..files.fsutil import atomic_path
from .events import NO_CONFIDENT_LABEL
from .schema import CSV_COLUMNS, arrow_schema, arrow_table, doc_csv_rows

#: Raven Pro's required selection-table columns, then ours (annotation columns to Raven).
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                 "Low Freq (Hz)", "High Freq (Hz)", "Head", "Label", "Max Score", "Mean Score",
                 "Steps", "Network", "Fingerprint", "Settings ID", "soundnet-cli")
#: Extra leading columns of the combined (multi-file) Raven table.
RAVEN_FILE_COLUMNS = ("Begin Path", "Begin File", "File Offset (s)")


def _label_text(doc: dict[str, Any], head: str, label: str, score: float | None) -> str:
    text = label if score is None else f"{label} {score:.2f}"
    return f"{head}: {text}" if len(doc["heads"]) > 1 else text


def _selections(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any] | None, float, float]]:
    """``(head, event or None, start, end)`` of one record: its events, or one whole-file
    selection saying :data:`NO_CONFIDENT_LABEL` for a head without any."""
    for head in doc["heads"]:
        events = head.get("events") or []
        for ev in events:
            yield head["name"], ev, ev["start"], ev["end"]
        if not events:
            yield head["name"], None, 0.0, doc["duration"]


def raven_rows(doc: dict[str, Any], first: int = 1) -> list[dict[str, Any]]:
    """Raven Pro selection-table rows (:data:`RAVEN_COLUMNS`) of one record, numbered from
    ``first``: one selection per event, in the spectrogram view, channel 1, over the full band
    SoundNet hears (0 Hz to the Nyquist frequency)."""
    prov = doc.get("provenance", {})
    net = prov.get("network", {})
    nyquist = net.get("sample_rate", 22_050) / 2
    rows = []
    for n, (head, ev, start, end) in enumerate(_selections(doc), first):
        rows.append({
            "Selection": n, "View": "Spectrogram 1", "Channel": 1,
            "Begin Time (s)": f"{start:.4f}", "End Time (s)": f"{end:.4f}",
            "Low Freq (Hz)": "0.0", "High Freq (Hz)": f"{nyquist:.1f}", "Head": head,
            "Label": NO_CONFIDENT_LABEL if ev is None else ev["label"],
            "Max Score": "" if ev is None else f"{ev['max_score']:.6f}",
            "Mean Score": "" if ev is None else f"{ev['mean_score']:.6f}",
            "Steps": "" if ev is None else ev["steps"], "Network": net.get("name", ""),
            "Fingerprint": net.get("fingerprint", ""), "Settings ID": prov.get("settings_id", ""),
            "soundnet-cli": prov.get("soundnet_cli", "")})
    return rows


def _tsv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), delimiter="\t", lineterminator="\n",
                            quoting=csv.QUOTE_NONE, escapechar="\\")
    writer.writeheader()
    writer.writerows({k: _tsv_cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _tsv_cell(value: Any) -> Any:
    return value.replace("\t", " ").replace("\n", " ") if isinstance(value, str) else value


def raven_table(doc: dict[str, Any]) -> str:
    """One input's Raven selection table (tab-separated, header row first)."""
    return _tsv(RAVEN_COLUMNS, raven_rows(doc))


def audacity_labels(doc: dict[str, Any]) -> str:
    """One input's Audacity label track: ``start<TAB>end<TAB>label`` lines, seconds with six
    decimals, the label being ``name score`` (``head: name score`` with several heads)."""
    lines = []
    for head, ev, start, end in _selections(doc):
        text = (NO_CONFIDENT_LABEL if ev is None
                else _label_text(doc, head, ev["label"], ev["max_score"]))
        lines.append(f"{start:.6f}\t{end:.6f}\t{_tsv_cell(text)}\n")
    return "".join(lines)


def csv_table(docs: Iterable[dict[str, Any]]) -> str:
    """The long CSV (:data:`~.schema.CSV_COLUMNS`, header first) of some records."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for doc in docs:
        writer.writerows(doc_csv_rows(doc))
    return buf.getvalue()


#: The per-input text views, by format: record -> file contents.
TEXT_VIEWS = {"csv": lambda doc: csv_table([doc]), "raven": raven_table,
               "audacity": audacity_labels}


#: Rows per row group of ``tags.parquet`` (the writer streams; a merge writes the same groups).
PARQUET_ROWS = 65_536


def _write_jsonl(path: Path, docs: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as f:
        for d in docs:
            f.write(json.dumps(d, allow_nan=False) + "\n")


def _write_csv(path: Path, docs: Iterable[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for doc in docs:
            if doc.get("ok"):
                writer.writerows(doc_csv_rows(doc))


def _write_raven(path: Path, docs: Iterable[dict[str, Any]]) -> None:
    """One Raven table for the whole run, as for a file sequence: ``Begin Time (s)`` counts from
    the start of the first file, ``File Offset (s)`` from the start of each selection's file."""
    offset, n = 0.0, 1
    columns = (*RAVEN_COLUMNS[:7], *RAVEN_FILE_COLUMNS, *RAVEN_COLUMNS[7:])
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), delimiter="\t", lineterminator="\n",
                                quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writeheader()
        for doc in docs:
            if not doc.get("ok"):
                continue
            for row in raven_rows(doc, n):
                begin, end = float(row["Begin Time (s)"]), float(row["End Time (s)"])
                row.update({"Begin Path": str(Path(doc["path"]).resolve()),
                            "Begin File": Path(doc["path"]).name,
                            "File Offset (s)": f"{begin:.4f}",
                            "Begin Time (s)": f"{offset + begin:.4f}",
                            "End Time (s)": f"{offset + end:.4f}"})
                writer.writerow({k: _tsv_cell(v) for k, v in row.items()})
                n += 1
            offset += float(doc["duration"])


def _write_parquet(path: Path, docs: Iterable[dict[str, Any]]) -> None:
    """The long table as Parquet, :data:`PARQUET_ROWS` rows per row group (memory bounded by
    one group); the run's provenance is in the schema metadata (``soundnet_provenance``, JSON)."""
    import itertools

    import pyarrow.parquet as pq

    it = iter(docs)
    first = next(it, None)
    schema = arrow_schema((first or {}).get("provenance", {}))

    def table(rows: list[dict[str, Any]]) -> Any:
        return arrow_table(rows, schema)

    rows = (r for d in itertools.chain([first] if first else [], it) if d.get("ok")
            for r in doc_csv_rows(d))
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            batch = list(itertools.islice(rows, PARQUET_ROWS))
            writer.write_table(table(batch))
            while True:
                batch = list(itertools.islice(rows, PARQUET_ROWS))
                if not batch:
                    break
                writer.write_table(table(batch))


_COMBINERS = {"jsonl": _write_jsonl, "csv": _write_csv, "raven": _write_raven,
              "parquet": _write_parquet}


def write_combined(fmt: str, path: Path, docs: Iterable[dict[str, Any]]) -> None:
    """Write the combined table ``fmt`` (a key of :data:`~.layout.COMBINED_NAMES`) of ``docs`` (records,
    and ``"ok": false`` lines for failed inputs) to ``path`` atomically, streaming.

    The one writer of combined tables: ``tag --out`` and ``soundnet merge`` both call it with
    the records in :func:`~soundnet_cli.shards.partition.input_key` order, so a merged table is
    byte-identical to one run's. Raises :class:`OutputError` when it cannot be written.
    """
    try:
        _COMBINERS[fmt](path, docs)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the combined table: {e.strerror or e}") from e
