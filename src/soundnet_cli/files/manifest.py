"""The manifest of an ``extract`` output folder: one row per output file (CSV or JSON Lines,
chosen by suffix), columns :data:`MANIFEST_COLUMNS`, sorted by input path then output
(:func:`manifest_key`).

Reruns merge into it (:class:`Manifest`), so after a resumed run it lists every output. A shard
of a many-shard run writes its own (``manifest.shard-I-of-N.csv``); ``soundnet merge`` joins them
with the same writer (:func:`write_manifest`), into the file one run would have written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import OutputError
from .fsutil import atomic_path, locked, names_inside
from .jsonutil import loads as strict_json

#: Manifest columns, in order. JSON Lines rows carry the same keys plus ``shape``.
MANIFEST_COLUMNS = (
    "input", "output", "layer", "pool", "frames", "channels", "hop_seconds", "window_seconds",
    "offset_seconds", "duration_seconds", "tiled_to_seconds",
)
MANIFEST_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass
class ExtractRecord:
    """One output file: a manifest row (seconds are at the model's sample rate).

    ``tiled_to_seconds`` is 0.0 when the clip was long enough, the tiled length when it was
    repeated to reach what the requested layers need, and ``None`` when unknown (an output
    skipped on a rerun that the manifest did not list). ``skipped``: it existed already.
    """

    input: str
    output: str
    layer: str
    pool: str
    frames: int
    channels: int
    hop_seconds: float
    window_seconds: float
    offset_seconds: float
    duration_seconds: float | None
    tiled_to_seconds: float | None
    skipped: bool = False

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in MANIFEST_COLUMNS}



class Manifest:
    """The manifest file: one row per output, merged across runs, written atomically.

    ``path``'s suffix picks the format: ``.csv`` (header row :data:`MANIFEST_COLUMNS`) or
    ``.jsonl``/``.ndjson`` (one JSON object per line, the same keys plus ``shape``).

    Several runs may share one manifest (two ``extract`` runs into one ``--out``): :meth:`write`
    holds a lock (``<manifest>.lock``), reads the file again and merges this run's rows into what
    is there, so no run's rows are lost, whatever the order the runs finish in. The lock is an
    advisory ``flock`` on the manifest's directory.
    """

    def __init__(self, path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        #: Rows read back whose output is not inside this folder are dropped (hand-edited).
        self.out_dir = out_dir
        self.format = manifest_format(self.path)
        self.rows: dict[str, dict[str, Any]] = {}
        self._mine: dict[str, dict[str, Any]] = {}  # rows this run added or replaced
        if self.path.exists():
            self.rows.update(self._load())

    def _load(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogateescape")
            if self.format == "csv":
                found = list(csv.DictReader(io.StringIO(text)))
            else:
                found = [strict_json(line) for line in text.splitlines() if line.strip()]
            for row in found:
                if self.out_dir is None or names_inside(self.out_dir, str(row["output"])):
                    rows[str(row["output"])] = row
        except (OSError, ValueError, KeyError, TypeError, csv.Error) as e:
            raise OutputError(f"{self.path}: cannot read the existing manifest ({e}); "
                              "move it away or pass another --manifest") from e
        return rows

    def update(self, records: Sequence[ExtractRecord]) -> None:
        """Add or replace rows; a skipped output keeps the row an earlier run wrote for it."""
        for r in records:
            if r.skipped and r.output in self.rows:
                continue
            self.rows[r.output] = self._mine[r.output] = r.row()

    def write(self) -> None:
        """Merge this run's rows into the manifest on disk and rewrite it atomically, under the
        manifest's lock (see the class docs)."""
        try:
            with locked(self.path.parent):
                if self.path.exists():
                    self.rows = {**self._load(), **self._mine}
                self._write()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write the manifest: {e.strerror or e}") from e

    def _write(self) -> None:
        write_manifest(self.path, sorted(self.rows.values(), key=manifest_key))


def manifest_key(row: Mapping[str, Any]) -> tuple[str, str]:
    """The order of manifest rows: by input, then output. An ``input`` is written as
    :func:`~soundnet_cli.shards.partition.input_key` spells it, so this is the order shards split
    inputs in (compared as strings: no path parsing per row). A merge of per-shard manifests
    keeps it."""
    return str(row["input"]), str(row["output"])


def write_manifest(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write manifest ``rows`` (in the order given: :func:`manifest_key` for a whole manifest)
    to ``path`` atomically, streaming; the format follows the suffix (:func:`manifest_format`).

    The one writer of manifests: ``extract`` and ``soundnet merge`` both use it, so a merged
    manifest is byte-identical to one run's. Values read back from a CSV manifest (strings) are
    written unchanged."""
    path = Path(path)
    fmt = manifest_format(path)
    # surrogateescape: a file name that is not UTF-8 is written with the bytes the OS spells it
    # with (as `find` prints it), and read back so (read_manifest, Manifest).
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as f:
        if fmt == "csv":
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows([row.get(k) for k in MANIFEST_COLUMNS] for row in rows)  # None: ""
        else:
            for row in rows:
                doc = {k: row.get(k) for k in MANIFEST_COLUMNS}
                doc["shape"] = [doc["frames"], doc["channels"]]
                f.write(json.dumps(doc) + "\n")


def read_manifest(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The rows of a manifest file, streamed (CSV values as strings, JSON Lines as parsed)."""
    path = Path(path)
    fmt = manifest_format(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        if fmt == "csv":
            yield from csv.DictReader(f)
        else:
            for line in f:
                if line.strip():
                    yield strict_json(line)


def manifest_format(path: Path) -> str:
    """``csv`` or ``jsonl`` from a manifest path's suffix; :class:`OutputError` otherwise."""
    fmt = MANIFEST_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"manifest {path}: unknown format; use a .csv or .jsonl file name")
    return fmt
