"""The schema of tag results: the JSON document of one file and the long CSV table's rows.

``soundnet tag --json`` prints :func:`result_to_json`'s document; ``--csv``, the per-input and
combined CSV files, the Parquet file and :class:`~.table.TagResults` are its rows
(:func:`doc_csv_rows`, :data:`CSV_COLUMNS`, typed by :data:`NUMERIC_COLUMNS` and
:func:`arrow_schema`). The CSV is a view of the JSON document, so every table is rebuilt from
stored documents without the network. Documented for users in docs/tag.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from .events import NO_CONFIDENT_LABEL, HeadDetections
from .events import detect as run_detect

if TYPE_CHECKING:
    from .events import DetectOptions
    from .results import Label, TagResult

#: Version of the JSON/CSV tagging schema below; bumped on any incompatible change (2: labels
#: below ``min_conf`` dropped, "no confident label", events, provenance).
TAG_SCHEMA_VERSION = 2
#: Columns of the long-format CSV (one row per file, head, scope, step and rank); the last four
#: are provenance (empty on stdout unless given).
CSV_COLUMNS = ("path", "head", "scope", "step", "start", "end", "rank", "label", "index", "score",
               "mean_score", "note", "schema_version", "soundnet_cli", "network", "fingerprint",
               "settings_id")


def _labels_json(labels: Iterable[Label]) -> list[dict[str, Any]]:
    return [{"label": x.label, "index": x.index, "score": round(x.score, 6)} for x in labels]


def _detections(result: TagResult, top_k: int, detect: "DetectOptions | None"
                ) -> list[HeadDetections]:
    """Per head: kept clip labels, kept step labels and events (``detect=None``: the plain top-k
    of every head, no threshold and no events)."""
    if detect is not None:
        return run_detect(result, detect, top_k)
    return [HeadDetections(h.name, float("-inf"), h.top_k(top_k),
                           [h.top_k(top_k, i) for i in range(h.steps)]) for h in result.heads]


def result_to_json(result: TagResult, top_k: int = 5, segments: bool = False,
                   detect: "DetectOptions | None" = None,
                   provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """One file as a JSON-ready dict (schema version :data:`TAG_SCHEMA_VERSION`).

    With ``detect`` (:class:`~.events.DetectOptions`) labels below the threshold or
    outside the class filter are dropped, a head left with none says ``no_confident_label``, and
    ``events`` lists the merged detections; without it every head reports its plain top-k and
    ``events`` is null. ``provenance`` (see :func:`soundnet_cli.tagging.outputs.provenance`) is stored
    under that key when given.
    """
    found = _detections(result, top_k, detect)
    doc: dict[str, Any] = {
        "schema_version": TAG_SCHEMA_VERSION,
        "path": str(result.path),
        "ok": result.ok,
        "error": result.error,
        "duration": round(result.duration, 4),
        "analysed_duration": round(result.analysed_duration, 4),
        "tiled": result.tiled,
        "warnings": list(result.warnings),
        "no_confident_label": result.ok and not any(d.clip for d in found),
        "heads": [],
    }
    if provenance is not None:
        doc["provenance"] = provenance
    for head, det in zip(result.heads, found):
        entry: dict[str, Any] = {
            "name": head.name,
            "probabilities": head.probabilities,
            "classes": len(head.labels),
            "steps": head.steps,
            "hop": round(head.hop, 6),
            "window": round(head.window, 6),
            "min_conf": None if detect is None else round(det.threshold, 6),
            "no_confident_label": not det.clip,
            "top": _labels_json(det.clip),
            "events": None if detect is None else [e.to_dict() for e in det.events],
            "segments": None,
        }
        if segments:
            bounds = head.segments(result.analysed_duration)
            entry["segments"] = [
                {"step": i, "start": round(float(s), 4), "end": round(float(e), 4),
                 "top": _labels_json(det.steps[i])}
                for i, (s, e) in enumerate(bounds)
            ]
        doc["heads"].append(entry)
    return doc


def doc_csv_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Long-format rows (:data:`CSV_COLUMNS`) of a :func:`result_to_json` document.

    The CSV is a view of the JSON document, so the per-file CSV, the combined table and the
    Parquet file are rebuilt from stored documents without the network. Failed files give none.
    """
    if not doc.get("ok"):
        return
    prov = _csv_provenance(doc.get("provenance"))
    base = {"path": doc["path"], "schema_version": doc["schema_version"],
            **dict(zip(CSV_COLUMNS[-4:], prov))}

    def row(head: str, scope: str, step: Any, start: float, end: float, rank: Any = "",
            lab: dict[str, Any] | None = None, score: Any = None, mean: Any = "",
            note: str = "") -> dict[str, Any]:
        lab = lab or {}
        cells = {**base, "head": head, "scope": scope, "step": step, "start": start, "end": end,
                 "rank": rank, "label": lab.get("label", ""), "index": lab.get("index", ""),
                 "score": lab.get("score", "") if score is None else score, "mean_score": mean,
                 "note": note}
        return {k: cells[k] for k in CSV_COLUMNS}

    for head in doc["heads"]:
        name = head["name"]
        for rank, lab in enumerate(head["top"], 1):
            yield row(name, "clip", "", 0.0, doc["duration"], rank, lab)
        if not head["top"]:
            yield row(name, "clip", "", 0.0, doc["duration"], note=NO_CONFIDENT_LABEL)
        for ev in head.get("events") or []:
            yield row(name, "event", "", ev["start"], ev["end"], "", ev, ev["max_score"],
                      ev["mean_score"])
        for seg in head.get("segments") or []:
            for rank, lab in enumerate(seg["top"], 1):
                yield row(name, "step", seg["step"], seg["start"], seg["end"], rank, lab)
            if not seg["top"]:
                yield row(name, "step", seg["step"], seg["start"], seg["end"],
                          note=NO_CONFIDENT_LABEL)


def _csv_provenance(provenance: dict[str, Any] | None) -> tuple[str, ...]:
    if not provenance:
        return ("", "", "", "")
    net = provenance.get("network", {})
    return (str(provenance.get("soundnet_cli", "")), str(net.get("name", "")),
            str(net.get("fingerprint", "")), str(provenance.get("settings_id", "")))


def result_csv_rows(result: TagResult, top_k: int = 5, segments: bool = False,
                    detect: "DetectOptions | None" = None,
                    provenance: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Long-format rows (:data:`CSV_COLUMNS`) of a successful result; failed results give none.

    Clip rows have ``scope="clip"``, an empty ``step`` and ``start``/``end`` spanning the file;
    event rows (with ``detect``) have ``scope="event"``, the event's onset and offset, its max
    score in ``score`` and its mean in ``mean_score``; step rows (only with ``segments``) have
    ``scope="step"`` and the step's clipped bounds. A clip or step with no kept label gives one
    row with an empty label and ``note`` = ``no confident label``. ``detect`` and ``provenance``
    as in :func:`result_to_json`; the rows are :func:`doc_csv_rows` of its document.
    """
    yield from doc_csv_rows(result_to_json(result, top_k, segments, detect, provenance))


#: Column types of the long table in Arrow and pandas (the others are strings; empty cells of the
#: CSV are nulls).
NUMERIC_COLUMNS = {"step": "int32", "rank": "int32", "index": "int32", "schema_version": "int32",
                   "start": "float64", "end": "float64", "score": "float64",
                   "mean_score": "float64"}


def arrow_schema(provenance: dict[str, Any] | None = None) -> Any:
    """The Arrow schema of the long table (:data:`CSV_COLUMNS`, :data:`NUMERIC_COLUMNS`), with
    ``provenance`` as JSON in its ``soundnet_provenance`` metadata. Needs pyarrow."""
    import pyarrow as pa

    fields = [pa.field(col, getattr(pa, NUMERIC_COLUMNS.get(col, "string"))())
              for col in CSV_COLUMNS]
    return pa.schema(fields, metadata={"soundnet_provenance": json.dumps(provenance or {})})


def arrow_table(rows: Sequence[dict[str, Any]], schema: Any) -> Any:
    """Long-table rows (dicts of :data:`CSV_COLUMNS`, ``""`` for empty cells) as a
    ``pyarrow.Table`` of ``schema`` (:func:`arrow_schema`)."""
    import pyarrow as pa

    def cell(value: Any) -> Any:
        if value == "":
            return None
        if isinstance(value, str):  # Arrow strings are UTF-8: a non-UTF-8 name gets U+FFFD
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return value

    arrays = [pa.array([cell(r[f.name]) for r in rows], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
