"""``soundnet merge OUT``: join the per-shard outputs of a many-shard run into the files one run
would have written, and say what is missing, unfinished or failed.

What a directory holds is read from its status files (:mod:`.status`,
``status.shard-I-of-N.jsonl``): their ``command`` (``tag`` or ``extract``), the number of shards
``N`` (all files must agree on it, and on the settings that change results: network, layers,
formats, ...). Then:

- ``extract``: the shards' manifests (``manifest.shard-I-of-N.csv``) become the run's manifest
  (``manifest.csv``, or the ``--manifest`` name the shards were given);
- ``tag``: the shards' tables (``tags.shard-I-of-N.jsonl``) become ``tags.jsonl``, ``tags.csv``,
  ``selections.txt`` and ``tags.parquet`` (those of the run's ``--format``), and ``run.json``.

The join is a streaming k-way merge: every per-shard table is sorted by input path, as one run's
tables are, so memory stays flat in the number of rows, and rows go through the same writers as
one run's (:func:`~soundnet_cli.files.manifest.write_manifest`,
:func:`~soundnet_cli.tagging.views.write_combined`): the merged files are byte-identical to those of a
single run over the same inputs.

A shard whose status file is missing is *missing*; one that started but did not finish is
*incomplete*. Without ``partial``, nothing is written then (partial tables are never left under
the names of complete ones); with it, the tables of what is there are written and ``run.json`` says
``"complete": false``. Inputs that failed are listed in ``OUT/rerun.txt`` (one path per line, for
``--files-from``); an input that a later run redid (its record or manifest rows now exist) counts
as done.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import OutputError
from ..files.fsutil import atomic_path, atomic_write_text, names_inside
from ..files.jsonutil import loads as strict_json
from .partition import Shard
from .status import STATUS_GLOB, StatusFile, shard_path

RERUN_FILE = "rerun.txt"
_NAME = re.compile(r"^status\.shard-(\d+)-of-(\d+)\.jsonl$")


@dataclass
class MergeReport:
    """What :func:`merge` found and wrote.

    ``missing`` and ``incomplete`` are shard indices (with a reason for incomplete ones);
    ``failed`` the inputs that failed and were not redone, ``(input, error)``; ``fixed`` how many
    failed inputs a later run redid. ``written`` maps each output name to its path.
    """

    out_dir: Path
    command: str
    count: int
    settings: dict[str, Any]
    inputs_total: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "skipped": 0, "failed": 0})
    missing: list[int] = field(default_factory=list)
    incomplete: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    fixed: int = 0
    rows: int = 0
    written: dict[str, Path] = field(default_factory=dict)
    rerun: Path | None = None
    #: Failed inputs left out of rerun.txt: their names hold a line break.
    unlisted: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every shard is there and finished."""
        return not self.missing and not self.incomplete

    @property
    def ok(self) -> bool:
        """Complete, and no input failed."""
        return self.complete and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "command": self.command, "shards": self.count,
                "complete": self.complete, "ok": self.ok, "inputs_total": self.inputs_total,
                "counts": self.counts, "missing": self.missing,
                "incomplete": [{"shard": i, "reason": r} for i, r in self.incomplete],
                "failed": [{"input": p, "error": e} for p, e in self.failed],
                "fixed": self.fixed, "rows": self.rows,
                "written": {k: str(v) for k, v in self.written.items()},
                "rerun": None if self.rerun is None else str(self.rerun),
                "unlisted": self.unlisted}


def find_status(out_dir: str | os.PathLike) -> dict[str, list[StatusFile]]:
    """The status files in ``out_dir``, by command. Raises :class:`OutputError` when there are
    none, or when those of one command disagree on the number of shards or the settings."""
    out = Path(out_dir)
    if not out.is_dir():
        raise OutputError(f"{out}: no such directory")
    found: dict[str, list[StatusFile]] = {}
    for path in sorted(out.glob(STATUS_GLOB)):
        if _NAME.match(path.name):
            status = StatusFile(path)
            found.setdefault(str(status.header.get("command")), []).append(status)
    if not found:
        raise OutputError(f"{out}: no shard status files (status.shard-I-of-N.jsonl), so nothing "
                          "to merge; they are written by tag --out and extract runs with --shard "
                          "(or under SLURM arrays / torchrun)")
    for command, files in found.items():
        _check_agree(out, command, files)
    return found


def _check_agree(out: Path, command: str, files: list[StatusFile]) -> None:
    counts = sorted({f.shard.count for f in files})
    if len(counts) > 1:
        by = {n: [f.path.name for f in files if f.shard.count == n][:2] for n in counts}
        raise OutputError(f"{out}: {command} status files of runs with {' and '.join(map(str, counts))} "
                          f"shards ({by}); keep those of one run (delete the others' "
                          "status.shard-*-of-N.jsonl and tables) and merge again")
    ids = {f.header.get("settings_id") for f in files}
    if len(ids) > 1:
        first = files[0]
        other = next(f for f in files if f.header.get("settings_id") != first.header.get("settings_id"))
        diff = sorted(k for k in set(first.header["settings"]) | set(other.header["settings"])
                      if first.header["settings"].get(k) != other.header["settings"].get(k))
        raise OutputError(f"{out}: shards were run with different networks or settings "
                          f"({first.path.name} and {other.path.name} differ in "
                          f"{', '.join(diff)}); outputs of different settings are never merged")
    totals = {int(f.header.get("inputs_total", -1)) for f in files}
    if len(totals) > 1:
        raise OutputError(f"{out}: shards were given different input lists ({sorted(totals)} "
                          "inputs); every shard of a run must get the same inputs")


def merge(out_dir: str | os.PathLike, *, partial: bool = False) -> list[MergeReport]:
    """Merge every sharded run in ``out_dir`` (one per command found); see the module docs."""
    reports = []
    for command, files in find_status(out_dir).items():
        if command == "extract":
            reports.append(_merge_extract(Path(out_dir), files, partial))
        elif command == "tag":
            reports.append(_merge_tag(Path(out_dir), files, partial))
        else:
            raise OutputError(f"{files[0].path}: unknown command {command!r} in a status file")
    return reports


def _survey(out: Path, files: list[StatusFile], table: Callable[[Shard], Path]
            ) -> tuple[MergeReport, list[StatusFile]]:
    """The report's shard part: missing and incomplete shards, counts, failures (not yet
    checked for later redos); returns it and the status files whose tables can be read."""
    first = files[0]
    count = first.shard.count
    report = MergeReport(out, str(first.header["command"]), count,
                         dict(first.header["settings"]),
                         inputs_total=int(first.header.get("inputs_total", 0)))
    present = {f.shard.index: f for f in files}
    report.missing = [i for i in range(count) if i not in present]
    usable = []
    for i in sorted(present):
        f = present[i]
        if f.finished is None:
            report.incomplete.append((i, f"started {f.header.get('started', '?')}, not "
                                      "finished (still running, or stopped)"))
        elif not table(f.shard).is_file():
            report.incomplete.append((i, f"finished, but {table(f.shard).name} is missing"))
            continue
        else:
            usable.append(f)
            continue
        if table(f.shard).is_file():
            usable.append(f)  # its outputs so far, for a partial merge
    for f in files:
        for entry in f.entries():
            outcome = entry.get("outcome")
            if outcome in ("ok", "skipped"):
                report.counts[outcome] += 1
            elif outcome == "failed":
                report.counts["failed"] += 1
                report.failed.append((str(entry["input"]), str(entry.get("error") or "failed")))
    return report, usable


def _write_rerun(report: MergeReport) -> None:
    """``rerun.txt``: the failed inputs, one per line. A name holding a line break cannot be a
    line of it (it would split into two wrong paths): it is left out and listed in
    ``report.unlisted`` instead."""
    path = report.out_dir / RERUN_FILE
    listable = [p for p, _ in report.failed if "\n" not in p and "\r" not in p]
    listed = set(listable)
    report.unlisted = [p for p, _ in report.failed if p not in listed]
    if listable:
        atomic_write_text(path, "".join(p + "\n" for p in listable))
        report.rerun = path
    elif path.exists():
        path.unlink()  # nothing left to redo: no stale list


# ---------------------------------------------------------------------------------------------
# extract


def _merge_extract(out: Path, files: list[StatusFile], partial: bool) -> MergeReport:
    from ..files.manifest import manifest_key, read_manifest, write_manifest

    target = out / files[0].header["settings"]["manifest"]  # relative to OUT, or absolute
    report, usable = _survey(out, files, lambda s: shard_path(target, s))
    if not (out / "extract.json").is_file():
        raise OutputError(f"{out}: extract.json (what made the features) is missing; the "
                          "shards' outputs cannot be checked")
    failed = {p for p, _ in report.failed}
    redone: list[dict[str, Any]] = []
    if failed and target.is_file():  # rows a later run (--files-from rerun.txt) wrote
        redone = sorted((r for r in read_manifest(target) if str(r["input"]) in failed),
                        key=manifest_key)
    redone_inputs = {str(r["input"]) for r in redone}
    report.fixed = len(redone_inputs)
    report.failed = [(p, e) for p, e in report.failed if p not in redone_inputs]
    if report.complete or partial:
        sources = [read_manifest(shard_path(target, f.shard)) for f in usable] + [iter(redone)]
        merged = heapq.merge(*sources, key=manifest_key)
        inside = (r for r in merged if _row_inside(out, str(r["output"])))  # no edited rows
        rows = _counted(_unique(inside, manifest_key), report)
        write_manifest(target, rows)
        report.written["manifest"] = target
    _write_rerun(report)
    return report


def _row_inside(out: Path, output: str) -> bool:
    """Whether a manifest row's output can be one of ``out``'s: an absolute path inside it (as
    given or resolved), or a relative one (relative to the shard's working directory, which is
    not known here) that does not climb with ``..``."""
    if os.path.isabs(output):
        return names_inside(out, output) or names_inside(out.resolve(), output)
    return ".." not in Path(output).parts


def _unique(rows: Iterable[dict[str, Any]], key: Any) -> Iterator[dict[str, Any]]:
    """Rows with a key equal to the previous one's dropped (a shard's row comes before a later
    run's for the same output)."""
    last = None
    for row in rows:
        k = key(row)
        if k != last:
            yield row
        last = k


def _counted(rows: Iterable[dict[str, Any]], report: MergeReport) -> Iterator[dict[str, Any]]:
    for row in rows:
        report.rows += 1
        yield row


# ---------------------------------------------------------------------------------------------
# tag


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one shard's table; :class:`OutputError` naming the file and line for
    anything but a JSON object with a ``path`` (truncated, garbled or edited tables)."""
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    doc = strict_json(line)
                except ValueError as e:
                    raise _bad_table(path, n, str(e)) from None
                if not isinstance(doc, dict) or not isinstance(doc.get("path"), str):
                    raise _bad_table(path, n, "not a record with a path")
                yield doc
    except (OSError, UnicodeDecodeError) as e:
        raise OutputError(f"{path}: cannot read this shard table: "
                          f"{getattr(e, 'strerror', None) or e}") from e


def _bad_table(path: Path, line: int, why: str) -> OutputError:
    return OutputError(f"{path}: line {line} is damaged ({why}); rerun that shard (it resumes "
                       "from its per-input records) and merge again")


def _merge_tag(out: Path, files: list[StatusFile], partial: bool) -> MergeReport:
    from ..tagging.layout import COMBINED_NAMES, RUN_FILE
    from ..tagging.outputs import TagRun
    from ..tagging.views import write_combined

    report, usable = _survey(out, files, lambda s: out / f"tags.{s.name}.jsonl")
    settings = report.settings
    provenance = {k: v for k, v in settings.items() if k not in ("formats", "out_dir", "roots")}
    run = TagRun(out, settings.get("formats", ()), roots=[Path(r) for r in settings.get("roots", ())],
                 provenance=provenance)
    failed = {p for p, _ in report.failed}

    def redo(doc: dict[str, Any]) -> dict[str, Any]:
        """A failed line replaced by the record a later run wrote, if there is one."""
        if doc.get("ok") is False:
            record = run.valid_record(Path(doc["path"]))
            if record is not None:
                return record
        return doc

    redone = {p for p in failed if run.valid_record(Path(p)) is not None}
    report.fixed = len(redone)
    report.failed = [(p, e) for p, e in report.failed if p not in redone]
    if report.complete or partial:
        for fmt in (f for f in run.formats if f in COMBINED_NAMES):
            tables = [_read_jsonl(out / f"tags.{f.shard.name}.jsonl") for f in usable]
            # "path" is spelled as input_key spells it: compared as it is
            docs = (redo(d) for d in heapq.merge(*tables, key=lambda d: str(d["path"])))
            report.rows = 0
            write_combined(fmt, out / COMBINED_NAMES[fmt], _counted(docs, report))
            report.written[fmt] = out / COMBINED_NAMES[fmt]
        doc = {"run_file_version": 1, **provenance, "formats": list(run.formats),
               "out_dir": str(out), "merged_from_shards": report.count,
               "complete": report.complete, "finished": report.complete,
               "tagged": report.counts["ok"] + report.fixed, "skipped": report.counts["skipped"],
               "failed": len(report.failed)}
        with atomic_path(out / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        report.written["run"] = out / RUN_FILE
        if "html" in run.formats:  # the review page reads the records written above
            from ..review.page import write_page

            report.written["html"] = write_page(out, provenance=provenance).path
    _write_rerun(report)
    return report
