"""A finished ``soundnet tag --out DIR`` folder, read back: its records, files and audio.

Every command that works on a run's results (``review``, ``clips``, ``evaluate``) reads the
run through :func:`open_run`. The records (``*.tags.json``) are the truth: they are found by
walking ``DIR`` (so a sharded run works before or after ``soundnet merge``), and only those
made with the run's ``settings_id`` (from ``run.json`` or the shards' status files) are used,
so records left by an earlier run with other settings never mix in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import OutputError
from ..tagging.layout import RECORD_SUFFIX, RUN_FILE, VIEW_SUFFIXES


@dataclass(frozen=True)
class InputRecord:
    """One tagged input of a run.

    Attributes
    ----------
    doc
        The record (the ``--json`` document with provenance).
    record
        Path of its ``.tags.json``.
    audio
        The input audio file as found now (absolute), or ``None`` when it is not there.
    """

    doc: dict[str, Any]
    record: Path
    audio: Path | None

    @property
    def path(self) -> str:
        """The input path as given to ``tag``."""
        return str(self.doc["path"])

    @property
    def stem(self) -> Path:
        """The record path without ``.tags.json``: other per-input files add their suffix."""
        return self.record.with_name(self.record.name[: -len(RECORD_SUFFIX)])

    def view(self, fmt: str) -> Path | None:
        """The per-input file of format ``fmt`` (``csv``, ``scores``, ...) if it exists."""
        suffix = VIEW_SUFFIXES.get(fmt)
        path = None if suffix is None else self.stem.with_name(self.stem.name + suffix)
        return path if path is not None and path.is_file() else None

    def events(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(head, event)`` of every event, in head order."""
        for head in self.doc.get("heads", []):
            for ev in head.get("events") or []:
                yield head["name"], ev


@dataclass
class RunDir:
    """A run folder: its settings (``run.json``, may be empty) and its successful records."""

    out_dir: Path
    settings: dict[str, Any]
    inputs: list[InputRecord] = field(default_factory=list)
    stale: int = 0

    @property
    def settings_id(self) -> str | None:
        return self.settings.get("settings_id")

    @property
    def cwd(self) -> Path:
        """The directory ``tag`` ran in (its relative input paths are relative to it); the
        current directory when ``run.json`` does not say."""
        return Path(str(self.settings.get("cwd") or os.getcwd()))

    def head_labels(self) -> dict[str, list[str]]:
        """Labels each head reported anywhere in the run (clip labels or events), sorted."""
        seen: dict[str, set[str]] = {}
        for item in self.inputs:
            for head in item.doc.get("heads", []):
                names = seen.setdefault(head["name"], set())
                names.update(t["label"] for t in head.get("top", []))
                names.update(e["label"] for e in head.get("events") or [])
        return {h: sorted(v) for h, v in seen.items()}


def open_run(out_dir: str | os.PathLike) -> RunDir:
    """Read the run in ``out_dir`` (see the module docs). Raises :class:`OutputError` when it
    is not a run folder or holds no successful record."""
    from ..shards.partition import input_key

    out = Path(out_dir)
    if not out.is_dir():
        raise OutputError(f"{out}: no such directory")
    settings = _settings(out)
    run = RunDir(out, settings)
    cwd = run.cwd
    wanted = settings.get("settings_id")
    for path in sorted(out.rglob("*" + RECORD_SUFFIX)):
        doc = _read_json(path)
        if not isinstance(doc, dict) or doc.get("ok") is not True:
            continue
        if wanted is not None and doc.get("provenance", {}).get("settings_id") != wanted:
            run.stale += 1
            continue
        run.inputs.append(InputRecord(doc, path, find_audio(str(doc["path"]), cwd)))
    if not run.inputs:
        raise OutputError(f"{out}: no tag records (*{RECORD_SUFFIX}) of a finished run; make "
                          f"them with `soundnet tag INPUTS --out {out}`")
    run.inputs.sort(key=lambda r: input_key(r.path))
    return run


def _settings(out: Path) -> dict[str, Any]:
    """``run.json``, else the header of a shard's status file, else ``{}``."""
    doc = _read_json(out / RUN_FILE)
    if isinstance(doc, dict):
        return doc
    for status in sorted(out.glob("status.shard-*-of-*.jsonl")):
        try:
            with open(status, encoding="utf-8") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            continue
        if isinstance(header, dict) and header.get("command") == "tag":
            return dict(header.get("settings", {}))  # the tag provenance, settings_id included
    return {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def find_audio(path: str, cwd: Path) -> Path | None:
    """The audio file ``path`` (as given to ``tag``, relative to the directory ``tag`` ran in,
    ``cwd``) as an absolute path, trying the current directory too; ``None`` if neither has it."""
    p = Path(path)
    for candidate in ([p] if p.is_absolute() else [cwd / p, Path.cwd() / p]):
        if candidate.is_file():
            return candidate.resolve()
    return None
