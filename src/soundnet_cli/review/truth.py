"""Annotations to evaluate a run against (``soundnet evaluate OUT --truth ANNOTATIONS``).

Readers, chosen by what the file holds:

- **Raven Pro selection tables** (tab-separated, a ``Begin Time (s)`` column): one per
  recording, named after it (``dawn.Table.1.selections.txt`` annotates ``dawn.*``), or one for
  many recordings with a ``Begin File`` or ``Begin Path`` column (then ``File Offset (s)``, if
  present, gives the time in the file). The label is in the first of ``Annotation``, ``Label``,
  ``Class``, ``Species``, ``Sound Type`` that the table has (or ``label_column``).
- **Audacity label tracks** (``start<TAB>end<TAB>label`` lines without header; lines starting
  with ``\\`` hold frequencies and are skipped), named after their recording like Raven's.
- **CSV** with a header: ``file,onset,offset,label`` (events; ``start``/``end``, ``path``,
  ``class`` are accepted too), or ``file,label`` (clip level: the label is somewhere in the
  file). A row with an empty label says the file was annotated and holds nothing.
- **A clips table with verdicts** (``soundnet clips`` output, ``verdict`` filled in): see
  :class:`Verdict`.

A folder is read file by file (``*.txt`` and ``*.csv``). Which run inputs a file annotates is
decided by :func:`match_inputs`: by path, else by file name, else by stem.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import SoundNetError

RAVEN_LABEL_COLUMNS = ("Annotation", "Label", "Class", "Species", "Sound Type", "label", "class")
YES = {"y", "yes", "1", "true", "t", "correct", "ok", "present", "+"}
NO = {"n", "no", "0", "false", "f", "wrong", "incorrect", "absent", "-"}


@dataclass(frozen=True)
class Annotation:
    """A labelled interval (``onset``/``offset`` seconds) or, with both ``None``, a clip-level
    label, of the recording named ``file``. An empty ``label`` marks a file annotated as empty."""

    file: str
    label: str
    onset: float | None = None
    offset: float | None = None

    @property
    def clip_level(self) -> bool:
        return self.onset is None


@dataclass(frozen=True)
class Verdict:
    """A reviewer's verdict on one detection clip: was ``label`` there at ``onset..offset``?"""

    source: str
    label: str
    onset: float
    offset: float
    score: float
    correct: bool


@dataclass
class Truth:
    """Everything read from ``--truth``: annotations or verdicts, and what was skipped."""

    annotations: list[Annotation] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def clip_level(self) -> bool:
        """Only clip-level labels (no intervals) were given."""
        return bool(self.annotations) and all(a.clip_level for a in self.annotations)

    @property
    def files(self) -> list[str]:
        return sorted({a.file for a in self.annotations})


def read_truth(path: str | os.PathLike, *, label_column: str | None = None) -> Truth:
    """Read annotations from a file or a folder of them (module docs). Raises
    :class:`SoundNetError` when nothing usable is found or a file is malformed."""
    root = Path(path)
    truth = Truth()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".txt", ".csv"))
    elif root.is_file():
        files = [root]
    else:
        raise SoundNetError(f"--truth {root}: no such file or folder")
    for f in files:
        _read_one(f, truth, label_column)
    if not truth.annotations and not truth.verdicts:
        raise SoundNetError(f"--truth {root}: no annotations found (Raven selection tables, "
                            "Audacity labels, file,onset,offset,label or file,label CSV, or a "
                            "clips.csv with verdicts)")
    if truth.annotations and truth.verdicts:
        raise SoundNetError(f"--truth {root}: holds both annotations and verdicts; evaluate "
                            "against one kind at a time")
    return truth


def _read_one(path: Path, truth: Truth, label_column: str | None) -> None:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise SoundNetError(f"{path}: cannot read it: {e}") from e
    lines = text.splitlines()
    first = lines[0] if lines else ""
    if "Begin Time (s)" in first:
        truth.annotations += _raven(path, lines, label_column)
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(lines))
        header = {c.strip().lower() for c in (rows[0].keys() if rows else _header(first))}
        if "verdict" in header:
            truth.verdicts += _verdicts(path, rows)
        else:
            truth.annotations += _csv(path, rows, header)
    elif _audacity_like(lines):
        truth.annotations += _audacity(path, lines)
    else:
        truth.skipped.append(f"{path}: not a Raven table, Audacity labels or annotation CSV")


def _header(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def recording_stem(path: Path) -> str:
    """The recording an annotation file is named after: its name up to the first dot
    (``dawn.Table.1.selections.txt`` -> ``dawn``)."""
    return path.name.split(".", 1)[0]


def _number(value: str, path: Path, n: int, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SoundNetError(f"{path}:{n}: {what} {value!r} is not a number") from None


def _raven(path: Path, lines: list[str], label_column: str | None) -> list[Annotation]:
    rows = list(csv.DictReader(lines, delimiter="\t"))
    columns = list(rows[0].keys()) if rows else _header(lines[0].replace("\t", ","))
    wanted = [label_column] if label_column else list(RAVEN_LABEL_COLUMNS)
    label = next((c for c in wanted if c in columns), None)
    if label is None:
        raise SoundNetError(f"{path}: a Raven table without a label column (looked for "
                            f"{', '.join(wanted)}); name it with --label-column")
    out = []
    for n, row in enumerate(rows, 2):
        if row.get("View", "Spectrogram 1").startswith("Waveform"):
            continue  # Raven writes each selection once per view; keep one
        file = row.get("Begin File") or row.get("Begin Path") or recording_stem(path)
        begin = _number(row["Begin Time (s)"], path, n, "Begin Time (s)")
        end = _number(row["End Time (s)"], path, n, "End Time (s)")
        if row.get("File Offset (s)") not in (None, ""):
            offset = _number(row["File Offset (s)"], path, n, "File Offset (s)")
            begin, end = offset, offset + (end - begin)
        out.append(Annotation(file, (row.get(label) or "").strip(), begin, end))
    if not out:
        out.append(Annotation(recording_stem(path), ""))  # annotated, and empty
    return out


def _audacity_like(lines: list[str]) -> bool:
    body = [ln for ln in lines if ln.strip() and not ln.startswith("\\")]
    if not body:
        return False
    try:
        float(body[0].split("\t")[0])
        float(body[0].split("\t")[1])
    except (ValueError, IndexError):
        return False
    return True


def _audacity(path: Path, lines: list[str]) -> list[Annotation]:
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("\\"):
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise SoundNetError(f"{path}:{n}: expected start<TAB>end<TAB>label")
        start = _number(parts[0], path, n, "start")
        end = _number(parts[1], path, n, "end")
        out.append(Annotation(recording_stem(path), parts[2].strip() if len(parts) > 2 else "",
                              start, end))
    return out


def _pick(row: dict, names: Iterable[str]) -> str | None:
    lower = {k.strip().lower(): v for k, v in row.items() if k is not None}
    return next((lower[n] for n in names if n in lower), None)


_FILE = ("file", "path", "filename", "source", "recording")
_LABEL = ("label", "class", "annotation", "species")


def _csv(path: Path, rows: list[dict], header: set[str]) -> list[Annotation]:
    if not header & set(_FILE) or not header & set(_LABEL):
        raise SoundNetError(f"{path}: an annotation CSV needs a header with file and label "
                            "columns (file,onset,offset,label or file,label)")
    timed = bool(header & {"onset", "start"}) and bool(header & {"offset", "end"})
    out = []
    for n, row in enumerate(rows, 2):
        file = (_pick(row, _FILE) or "").strip()
        if not file:
            raise SoundNetError(f"{path}:{n}: no file")
        label = (_pick(row, _LABEL) or "").strip()
        if timed and label:
            onset = _number(_pick(row, ("onset", "start")) or "", path, n, "onset")
            offset = _number(_pick(row, ("offset", "end")) or "", path, n, "offset")
            if offset < onset:
                raise SoundNetError(f"{path}:{n}: offset {offset:g} before onset {onset:g}")
            out.append(Annotation(file, label, onset, offset))
        else:
            out.append(Annotation(file, label))
    return out


def _verdicts(path: Path, rows: list[dict]) -> list[Verdict]:
    out = []
    for n, row in enumerate(rows, 2):
        said = (row.get("verdict") or "").strip().lower()
        if not said:
            continue  # not reviewed (yet)
        if said not in YES | NO:
            raise SoundNetError(f"{path}:{n}: verdict {said!r}: use yes/no (or 1/0, true/false)")
        out.append(Verdict(row["source"], row["class"],
                           _number(row["onset"], path, n, "onset"),
                           _number(row["offset"], path, n, "offset"),
                           _number(row["score"], path, n, "score"), said in YES))
    if not out:
        raise SoundNetError(f"{path}: no verdict filled in yet (yes/no in the verdict column)")
    return out


def match_inputs(names: Iterable[str], inputs: Iterable[str]) -> tuple[dict[str, str],
                                                                       list[str]]:
    """Map each annotated file name to a run input (path as given): same path, else same file
    name, else same stem (unique). Returns the map and the names matching no input (or several)."""
    paths = list(inputs)
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(Path(p).name, []).append(p)
        by_stem.setdefault(Path(p).name.split(".", 1)[0], []).append(p)
    exact = {str(Path(p)): p for p in paths}
    resolved = {str(Path(p).resolve()): p for p in paths}
    found, missing = {}, []
    for name in names:
        hit = exact.get(str(Path(name))) or resolved.get(str(Path(name).resolve()))
        if hit is None:
            for table, key in ((by_name, Path(name).name),
                               (by_stem, Path(name).name.split(".", 1)[0])):
                if len(table.get(key, [])) == 1:
                    hit = table[key][0]
                    break
        if hit is None:
            missing.append(name)
        else:
            found[name] = hit
    return found, missing
