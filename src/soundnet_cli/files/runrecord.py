"""What made the outputs in a folder: a small JSON record beside them, checked on every rerun.

Skipping outputs that exist is what makes a long run resumable, but a file only counts as done
when the network and settings that would make it now are the ones that made it then. An output
folder therefore carries a record (``extract.json`` for ``soundnet extract``) with one entry per
kind of output (a layer, for extract): ``made_by`` holds what determines the values (network
fingerprint, sample rate, ...; compared on reruns) and ``info`` what only describes them (the
network's name, the soundnet-cli version; not compared).

:meth:`RunRecord.claim` is called before the first output of a run is written: it refuses a kind
recorded with other ``made_by`` values (:class:`~soundnet_cli.errors.OutputError` naming each
difference) and records the new kinds, rewriting the file atomically. So a record never lags
behind the outputs it describes, even after a kill.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import OutputError
from .fsutil import atomic_write_text
from .jsonutil import loads as strict_json

#: Version of the record file's layout.
RECORD_FORMAT = 1


class RunRecord:
    """The record ``out_dir/name`` (it need not exist yet)."""

    def __init__(self, out_dir: str | os.PathLike, name: str) -> None:
        self.path = Path(out_dir) / name
        self.entries: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            doc = strict_json(self.path.read_text(encoding="utf-8"))
            entries = doc["outputs"]
            if not isinstance(entries, dict):
                raise TypeError("'outputs' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OutputError(f"{self.path}: cannot read this record of what made the outputs "
                              f"({e}); move it away (and the outputs with it) or choose another "
                              "output folder") from e
        if int(doc.get("format", 0)) > RECORD_FORMAT:
            raise OutputError(f"{self.path}: written by a newer soundnet-cli (record format "
                              f"{doc.get('format')}); upgrade, or choose another output folder")
        return {str(k): dict(v) for k, v in entries.items()}

    def made_by(self, kind: str) -> dict[str, Any] | None:
        """What made the recorded outputs of ``kind`` (``None``: nothing recorded)."""
        entry = self.entries.get(kind)
        return None if entry is None else dict(entry.get("made_by", {}))

    def differences(self, kind: str, made_by: Mapping[str, Any]) -> list[str]:
        """``key: recorded -> requested`` for every value that differs (empty: they agree)."""
        recorded = self.made_by(kind) or {}
        wanted = json.loads(json.dumps(dict(made_by)))  # the JSON round trip the file went through
        keys = sorted(set(recorded) | set(wanted))
        return [f"{k}: {_short(recorded.get(k))} -> {_short(wanted.get(k))}"
                for k in keys if recorded.get(k) != wanted.get(k)]

    def claim(self, kinds: Mapping[str, Mapping[str, Any]],
              info: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Check ``kinds`` (``{kind: made_by}``) against the record and add the new ones.

        Raises :class:`OutputError` when a kind was recorded with other values; nothing is
        written then. ``info`` adds descriptive fields per kind (not compared).
        """
        from .fsutil import locked

        # Under the folder's lock and read again: concurrent runs (the shards of one run) see
        # each other's claims, so two networks can never both claim one folder.
        try:
            with locked(self.path.parent):
                self.entries = self._load()
                self._claim(kinds, info)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write: {e.strerror or e}") from e

    def _claim(self, kinds: Mapping[str, Mapping[str, Any]],
               info: Mapping[str, Mapping[str, Any]] | None) -> None:
        conflicts = []
        for kind, made_by in kinds.items():
            if kind in self.entries:
                diff = self.differences(kind, made_by)
                if diff:
                    conflicts.append(f"{kind} ({'; '.join(diff)})")
        if conflicts:
            raise OutputError(
                f"{self.path.parent}: its outputs were made differently from what this run would "
                f"make: {', '.join(conflicts)}. Outputs of different networks or settings are "
                "never mixed in one folder: choose another output folder (or delete this one)")
        new = {k: v for k, v in kinds.items() if k not in self.entries}
        if not new:
            return
        for kind, made_by in new.items():
            self.entries[kind] = {"made_by": json.loads(json.dumps(dict(made_by))),
                                  "info": dict((info or {}).get(kind, {}))}
        doc = {"format": RECORD_FORMAT, "outputs": self.entries}
        atomic_write_text(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _short(value: Any) -> str:
    """A value for a message: fingerprints cut to 12 characters, absent values as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"
    return repr(value) if isinstance(value, str) else str(value)
