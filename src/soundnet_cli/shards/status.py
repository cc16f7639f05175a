"""Per-shard status files: what one shard of a many-shard run into one ``--out`` was given, what
it made of each input, and whether it finished (read by ``soundnet merge``).

``OUT/status.shard-I-of-N.jsonl`` (JSON Lines, written atomically):

- line 1, the header: ``command`` (``tag`` or ``extract``), ``shard`` (index, count, where it came
  from), ``settings`` (everything that must agree across shards: network, settings, formats,
  layers, ...) and their ``settings_id`` (16 hex digits of their SHA-256), ``inputs_total`` (inputs
  of the whole run, before sharding) and ``inputs_taken`` (this shard's);
- one line per input of the shard, sorted by path: ``{"input": ..., "outcome": ...}`` with
  outcome ``ok``, ``skipped`` (done by an earlier run), ``failed`` (with ``error``) or
  ``pending`` (not reached);
- last, only when the shard ran to its end: ``{"finished": true, "ok": n, "skipped": n,
  "failed": n}``.

A shard writes the file when it starts (every input ``pending``) and again when it stops: after
Ctrl-C, SIGTERM or a crash inside Python the outcomes so far without the ``finished`` line, so
the merge reports the shard as incomplete; after ``kill -9`` the start state stays, as incomplete.
No file is written by two shards: each has its own name.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import OutputError
from ..files.fsutil import atomic_path
from ..files.jsonutil import loads as strict_json
from .partition import Shard, input_key

STATUS_VERSION = 1
STATUS_GLOB = "status.shard-*-of-*.jsonl"
OUTCOMES = ("ok", "skipped", "failed", "pending")


def status_path(out_dir: str | os.PathLike, shard: Shard) -> Path:
    """``OUT/status.shard-I-of-N.jsonl``."""
    return Path(out_dir) / f"status.{shard.name}.jsonl"


def shard_path(path: str | os.PathLike, shard: Shard) -> Path:
    """A combined file's per-shard name: ``OUT/manifest.csv`` -> ``OUT/manifest.shard-0-of-4.csv``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{shard.name}{p.suffix}")


def settings_id(settings: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``settings`` as sorted JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


class ShardStatus:
    """The status file of one shard (see the module docs).

    Parameters
    ----------
    out_dir
        The run's output directory.
    shard
        Which shard this process is.
    command
        ``tag`` or ``extract``.
    settings
        What every shard of the run must agree on (JSON-serialisable).
    inputs
        This shard's inputs (already selected).
    total
        Inputs of the whole run before sharding.

    Use as a context manager: entering writes the file with every input pending (:meth:`start`);
    leaving writes the outcomes, with the ``finished`` line when the body ran to its end
    (:meth:`finish`), without it after an exception or :meth:`unfinished` (:meth:`stop`)::

        with ShardStatus(out, shard, "extract", settings, inputs, total) as status:
            for path, outcome, error in work():
                status.record(path, outcome, error)
    """

    def __init__(self, out_dir: str | os.PathLike, shard: Shard, command: str,
                 settings: Mapping[str, Any], inputs: Sequence[str | os.PathLike],
                 total: int) -> None:
        self.path = status_path(out_dir, shard)
        self.header = {"status_version": STATUS_VERSION, "command": command,
                       "shard": shard.to_dict(), "settings_id": settings_id(settings),
                       "settings": json.loads(json.dumps(settings, default=str)),
                       "inputs_total": int(total), "inputs_taken": len(inputs),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.outcomes: dict[str, dict[str, Any]] = {
            input_key(p): {"input": input_key(p), "outcome": "pending"} for p in inputs}
        self._complete = True

    def __enter__(self) -> "ShardStatus":
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self._complete:
            self.finish()
        else:
            self.stop()

    def unfinished(self) -> None:
        """End without the ``finished`` line though no exception stopped the body (an output
        the merge needs, such as the shard's manifest, could not be written)."""
        self._complete = False

    def record_failures(self, failures: Iterable[tuple[str | os.PathLike, str]]) -> None:
        """Record ``(path, message)`` failures found before the work (missing inputs, ...) as
        ``failed``; entries without a path (messages about the whole run) are not inputs."""
        for path, message in failures:
            if path:
                self.record(path, "failed", message)

    def start(self) -> Path:
        """Write the file with every input pending (the shard is running)."""
        self._write(finished=False)
        return self.path

    def record(self, path: str | os.PathLike, outcome: str, error: str | None = None) -> None:
        """The outcome of one input (``ok``, ``skipped`` or ``failed`` with ``error``). An input
        outside the shard's list (a problem found while listing it) is added."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        key = input_key(path)
        entry: dict[str, Any] = {"input": key, "outcome": outcome}
        if error is not None:
            entry["error"] = error
        previous = self.outcomes.get(key)
        if previous is not None and previous["outcome"] == "failed" and outcome != "failed":
            return  # one failed output of an input fails the input
        self.outcomes[key] = entry

    def counts(self) -> dict[str, int]:
        found = {o: 0 for o in OUTCOMES}
        for entry in self.outcomes.values():
            found[entry["outcome"]] += 1
        return found

    def finish(self) -> Path:
        """Write the outcomes and the ``finished`` line (the shard ran to its end)."""
        self._write(finished=True)
        return self.path

    def stop(self) -> Path:
        """Write the outcomes so far without the ``finished`` line (interrupted)."""
        self._write(finished=False)
        return self.path

    def _write(self, finished: bool) -> None:
        try:
            with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.write(json.dumps(self.header, sort_keys=True) + "\n")
                for key in sorted(self.outcomes):
                    f.write(json.dumps(self.outcomes[key], allow_nan=False) + "\n")
                if finished:
                    counts = self.counts()
                    f.write(json.dumps({"finished": True, "ok": counts["ok"],
                                        "skipped": counts["skipped"],
                                        "failed": counts["failed"] + counts["pending"]}) + "\n")
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write the shard's status: "
                              f"{e.strerror or e}") from e


class StatusFile:
    """A status file read back: its header, whether it finished, and its inputs (streamed).

    Raises :class:`OutputError` when the file is unreadable or malformed.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.header: dict[str, Any] = {}
        self.finished: dict[str, Any] | None = None
        try:
            with open(self.path, encoding="utf-8") as f:
                first = f.readline()
                self.header = strict_json(first)
                last = None
                for line in f:
                    if line.strip():
                        last = line
            tail = strict_json(last) if last else {}
        except (OSError, ValueError) as e:
            raise OutputError(f"{self.path}: cannot read this shard status file ({e}); delete "
                              "it and rerun that shard") from e
        if not isinstance(self.header, dict) or "shard" not in self.header:
            raise OutputError(f"{self.path}: not a shard status file (no header line)")
        if int(self.header.get("status_version", 0)) > STATUS_VERSION:
            raise OutputError(f"{self.path}: written by a newer soundnet-cli; upgrade to merge")
        if isinstance(tail, dict) and tail.get("finished") is True:
            self.finished = tail

    @property
    def shard(self) -> Shard:
        s = self.header["shard"]
        return Shard(int(s["index"]), int(s["count"]), str(s.get("source", "--shard")))

    def entries(self) -> Iterator[dict[str, Any]]:
        """The per-input lines, in path order."""
        with open(self.path, encoding="utf-8") as f:
            f.readline()
            for n, line in enumerate(f, 2):
                if not line.strip():
                    continue
                try:
                    doc = strict_json(line)
                except ValueError as e:
                    raise OutputError(f"{self.path}: line {n} is not a status line ({e}); "
                                      "delete the file and rerun that shard") from e
                if isinstance(doc, dict) and "input" in doc:
                    yield doc
