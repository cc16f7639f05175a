"""Results as files (``soundnet tag --out DIR``): one record per input, views, resume, tables.

Layout
------
The folder's files and their names are :mod:`.layout`'s. The record ``b.tags.json`` is the
file's result (the ``--json`` document of :func:`~.schema.result_to_json` with its provenance and
the input's size and time) and the other text files are views of it (:mod:`.views`). It is written last, atomically like every file here, so
its presence marks the input as done.

Resume
------
An input is skipped when its record exists, was made with the same ``settings_id`` (a hash of
the network's fingerprint, the heads or SVM, the schema version and every option that changes a
result: top-k, segments, thresholds, class filter, merging) and the input's size and
modification time are unchanged, and every per-input file of the requested formats exists (text
views missing beside a valid record are rebuilt from it without decoding). Otherwise (the input
changed, or its files are missing) the input is computed again and its files replaced. The
combined tables are rebuilt from the records of all the run's inputs at the end, so they are
complete after a resumed run too.

One folder, one set of settings
-------------------------------
``DIR/tag.json`` (:data:`RECORD_NAME`, a :class:`~soundnet_cli.files.runrecord.RunRecord`) records what
made the folder's results: the ``settings_id`` and the values it hashes. :meth:`TagRun.claim`
checks it under the folder's lock before anything is written; a run with another network or
other settings is refused (:class:`~soundnet_cli.errors.OutputError` naming every difference),
also with ``overwrite``, and also when it runs at the same time as the first (the lock decides
which one claims the folder). So a folder never holds results, views or tables of two settings,
whatever formats each run asked for. A folder made before ``tag.json`` existed is judged by its
``run.json``. Runs with the same settings (a resumed run, the shards of one run, a concurrent
second run) share the folder; the combined tables are written under the lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..errors import OutputError
from ..files.fsutil import atomic_write_text, collision_candidates, outside_message
from ..files.jsonutil import loads as strict_json
from .events import DetectOptions
from .layout import (
    COMBINED_NAMES,
    RECORD_NAME,
    RECORD_SUFFIX,
    RESULT_VIEWS,
    RUN_FILE,
    record_path,
    view_paths,
)
from .results import TagResult
from .schema import TAG_SCHEMA_VERSION, result_to_json
from .views import TEXT_VIEWS, write_combined

if TYPE_CHECKING:
    from ..model import SoundNet
    from ..runtime.options import RunOptions
    from ..shards.partition import Shard
    from .scoring import Scorer


def provenance(model: "SoundNet", scorers: Sequence["Scorer"], *, top_k: int, segments: bool,
               detect: DetectOptions) -> dict[str, Any]:
    """What made a result: version, network, heads, options, and their ``settings_id``.

    ``settings_id`` (16 hex digits) hashes everything that can change a result, and nothing
    that cannot (batch size, workers, device, output formats).
    """
    from .._version import __version__

    network = {"name": Path(model.source).stem if model.source else "in-memory",
               "source": str(model.source), "fingerprint": model.fingerprint,
               "arch": model.config.arch, "sample_rate": model.config.sample_rate}
    heads = [_scorer_info(s) for s in scorers]
    settings = {"top_k": top_k, "segments": segments, **detect.to_dict()}
    key = json.dumps({"schema_version": TAG_SCHEMA_VERSION, "fingerprint": model.fingerprint,
                      "heads": heads, "settings": settings}, sort_keys=True)
    return {"soundnet_cli": __version__, "schema_version": TAG_SCHEMA_VERSION,
            "network": network, "heads": heads, "settings": settings,
            "settings_id": hashlib.sha256(key.encode()).hexdigest()[:16]}


def _scorer_info(scorer: "Scorer") -> dict[str, Any]:
    labels = tuple(getattr(scorer, "labels", ()))
    info: dict[str, Any] = {"name": scorer.name, "layer": scorer.layer,
                            "kind": type(scorer).__name__, "classes": len(labels),
                            "labels_sha256": hashlib.sha256("\n".join(labels).encode())
                            .hexdigest()[:16]}
    svm = getattr(scorer, "svm", None)
    if svm is not None:
        h = hashlib.sha256()
        for name in ("coef", "intercept", "mean", "scale"):
            h.update(memoryview(__import__("numpy").ascontiguousarray(getattr(svm, name))))
        info.update(protocol=svm.protocol, input_scale=float(svm.input_scale),
                    svm_sha256=h.hexdigest())
    return info


# ---------------------------------------------------------------------------------------------
# A run into one directory


@dataclass
class TagOutcome:
    """One input of :meth:`TagRun`: written, skipped (done before) or failed."""

    path: Path
    result: TagResult | None = None
    doc: dict[str, Any] | None = None
    skipped: bool = False
    error: str | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class TagRun:
    """Writes one run's per-input files and its combined tables into ``out_dir``.

    Parameters
    ----------
    out_dir
        Output directory (created).
    formats
        From :func:`~.layout.parse_formats`.
    roots
        Input directories: outputs mirror the tree below them.
    provenance
        From :func:`provenance`; its ``settings_id`` decides what counts as done.
    top_k, segments, detect
        What each record holds (see :func:`~.schema.result_to_json`).
    overwrite
        Recompute every input, done or not.
    shard
        This run is one shard of many into ``out_dir``: :meth:`combine` writes only the shard's
        table (``tags.shard-I-of-N.jsonl``) and ``soundnet merge`` the combined ones.
    """

    def __init__(self, out_dir: str | os.PathLike, formats: Sequence[str], *,
                 roots: Sequence[str | os.PathLike] = (), provenance: dict[str, Any],
                 top_k: int = 5, segments: bool = False, detect: DetectOptions | None = None,
                 overwrite: bool = False, shard: "Shard | None" = None) -> None:
        self.out_dir = Path(out_dir)
        self.formats = tuple(formats)
        self.roots = [Path(r) for r in roots]
        self.provenance = provenance
        self.top_k, self.segments = top_k, segments
        self.detect = detect or DetectOptions()
        self.overwrite = overwrite
        self.shard = shard
        #: Every input of the run, when this is one shard of it (see :meth:`collisions`).
        self.run_inputs: list[Path] | None = None
        #: The path the written results give an input (the CLI names standard input's
        #: temporary copy ``stdin``); output file names still follow the input's own path.
        self.shown: Callable[[Path], Path] = lambda path: path
        self.failed: dict[Path, str] = {}
        self._claimed = False

    # -- the folder
    def claim(self) -> None:
        """Claim ``out_dir`` for this run's settings (see "One folder, one set of settings" in
        the module docs); raises :class:`OutputError` when it holds results of other settings or
        cannot be written. Called by :func:`tag_to_files`; calling it again does nothing."""
        from ..files.runrecord import RunRecord

        if self._claimed:
            return
        prov = self.provenance
        made_by = {"settings_id": prov["settings_id"],
                   "schema_version": prov.get("schema_version"),
                   "fingerprint": prov.get("network", {}).get("fingerprint"),
                   "heads": [f"{h.get('name')}:{h.get('kind')}:{h.get('labels_sha256')}"
                             f"{':' + str(h['svm_sha256'])[:16] if 'svm_sha256' in h else ''}"
                             for h in prov.get("heads", [])],
                   **prov.get("settings", {})}
        record = RunRecord(self.out_dir, RECORD_NAME)
        if record.made_by("tags") is None:
            self._check_older_run()
        record.claim({"tags": made_by}, info={"tags": {
            "network": prov.get("network", {}).get("name"), "soundnet_cli":
            prov.get("soundnet_cli")}})
        self._claimed = True

    def _check_older_run(self) -> None:
        """A folder without ``tag.json`` (made by an older soundnet-cli): its ``run.json`` must
        name this run's settings, if it names any."""
        path = self.out_dir / RUN_FILE
        try:
            doc = strict_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no run.json (a new folder) or an unreadable one: nothing to go by
        theirs = doc.get("settings_id") if isinstance(doc, dict) else None
        if theirs is not None and theirs != self.provenance["settings_id"]:
            raise OutputError(
                f"{self.out_dir}: holds results of other settings (settings_id {theirs} in "
                f"{path}, this run's is {self.provenance['settings_id']}). Results of different "
                "networks or settings are never mixed in one folder: choose another output "
                "folder (or delete this one)")

    # -- paths
    def record_path(self, source: Path) -> Path:
        return record_path(source, self.roots, self.out_dir)

    def view_paths(self, source: Path) -> dict[str, Path]:
        return view_paths(source, self.roots, self.out_dir, self.formats)

    def collisions(self, files: Sequence[Path]) -> dict[Path, str]:
        """Inputs whose record path is an earlier input's (``a.wav`` and ``a.flac`` side by
        side): each maps to the error that reports it. "Earlier" is in :attr:`run_inputs` (every
        input of the whole run, when ``files`` is one shard of it) if set, so a shard fails
        exactly the inputs one run would and no record is written by two shards."""
        owner: dict[Path, Path] = {}
        clashes = {}
        mine = set(files)
        everyone: Sequence[Path] = files
        if self.run_inputs is not None:  # only inputs named like ours can clash: no stat for
            stems = {self.record_path(p).name[:-len(RECORD_SUFFIX)] for p in files}  # the rest
            everyone = collision_candidates(self.run_inputs, files, stems=stems)
        for path in everyone:
            away = outside_message(self.out_dir, self.record_path(path)) if path in mine else None
            if away is not None:
                clashes[path] = f"{path}: not tagged: {away}"
                continue
            out = self.record_path(path).resolve()
            if out in owner:
                clashes[path] = (f"{path}: its results {self.record_path(path)} would also be "
                                 f"those of {owner[out]}; rename one of them")
            else:
                owner[out] = path
        return {p: m for p, m in clashes.items() if p in mine}

    # -- resume
    def done(self, source: Path) -> dict[str, Any] | None:
        """The input's record when it is done with these settings (rebuilding missing text
        views from it), else ``None``."""
        if self.overwrite:
            return None
        doc = self._read_record(source)
        if doc is None:
            return None
        views = self.view_paths(source)
        if any(f in views and not views[f].exists() for f in RESULT_VIEWS):
            return None
        for fmt, path in views.items():
            if fmt not in RESULT_VIEWS and not path.exists():
                atomic_write_text(path, TEXT_VIEWS[fmt](doc))
        return doc

    def valid_record(self, source: Path) -> dict[str, Any] | None:
        """The record of ``source`` when it is a successful one made with this run's settings
        from the file as it is now (else ``None``); views are not checked."""
        return self._read_record(source)

    def _read_record(self, source: Path) -> dict[str, Any] | None:
        try:
            doc = strict_json(self.record_path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        same = (isinstance(doc, dict) and doc.get("ok") is True
                and isinstance(doc.get("provenance"), dict)
                and doc["provenance"].get("settings_id") == self.provenance["settings_id"]
                and doc.get("input") == _input_stamp(source))
        shown = self.shown(source)  # "stdin" for standard input, else the source itself
        if not same or not (_same_file(doc.get("path"), source)
                            or (shown != source and doc.get("path") == str(shown))):
            return None
        doc["path"] = str(shown)  # as this run spells it (the tables' order and paths)
        return doc

    # -- writing
    def write(self, result: TagResult) -> TagOutcome:
        """Write every file of one successful result: views first, the record last."""
        outcome = TagOutcome(result.path, result)
        if not result.ok:
            outcome.error = result.error or f"{result.path}: failed"
            self.failed[result.path] = outcome.error
            return outcome
        source, decoded = result.path, result  # the plot decodes the input again
        result = dataclasses.replace(result, path=self.shown(source))
        doc = result_to_json(result, self.top_k, self.segments, self.detect, self.provenance)
        doc["input"] = _input_stamp(source)
        outcome.doc = doc
        try:
            for fmt, path in self.view_paths(source).items():
                if fmt == "png":
                    from ..plot import save_tag_plot

                    save_tag_plot(decoded, path, detect=self.detect, top_k=self.top_k,
                                  provenance=self.provenance)
                elif fmt == "scores":
                    from .scorefile import write_scores

                    write_scores(path, result, self.provenance)
                else:
                    atomic_write_text(path, TEXT_VIEWS[fmt](doc))
                outcome.files.append(path)
            record = self.record_path(source)
            atomic_write_text(record, json.dumps(doc, allow_nan=False) + "\n")
            outcome.files.append(record)
        except (OSError, ValueError) as e:
            outcome.error = f"{result.path}: cannot write its results: {_reason(e)}"
            self.failed[result.path] = outcome.error
        return outcome

    def write_settings(self, inputs: Sequence[str | os.PathLike], options: dict[str, Any],
                       **status: Any) -> Path:
        """``run.json``: the provenance, the formats, the inputs and any other options."""
        doc = {"run_file_version": 1, **self.provenance, "formats": list(self.formats),
               "out_dir": str(self.out_dir), "cwd": os.getcwd(),
               "inputs": [str(p) for p in inputs],
               "options": options, **status}
        path = self.out_dir / RUN_FILE
        try:
            atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
        except OSError as e:
            raise OutputError(f"{path}: cannot write the run's settings: {_reason(e)}") from e
        return path

    def combine(self, files: Sequence[Path]) -> dict[str, Path]:
        """Rebuild the combined tables from the records of ``files``, sorted by
        :func:`~soundnet_cli.shards.partition.input_key`; failed inputs of this run appear in
        ``tags.jsonl`` as ``"ok": false`` lines. A sharded run (``shard``) writes only its
        part, ``tags.shard-I-of-N.jsonl``, for ``soundnet merge``. Written under the folder's
        lock, so concurrent runs into one folder write their tables one after the other."""
        from ..files.fsutil import locked

        try:
            with locked(self.out_dir):
                return self._combine(files)
        except OSError as e:  # the lock itself (the tables' own errors are OutputErrors)
            raise OutputError(f"{self.out_dir}: cannot write the combined tables: "
                              f"{_reason(e)}") from e

    def _combine(self, files: Sequence[Path]) -> dict[str, Path]:
        from ..shards.partition import select

        ordered = select(files, None)
        if self.shard is not None:
            path = self.shard_table()
            write_combined("jsonl", path, self._combined_docs(ordered))
            return {"jsonl": path}
        written = {}
        for fmt in (f for f in self.formats if f in COMBINED_NAMES):
            path = self.out_dir / COMBINED_NAMES[fmt]
            write_combined(fmt, path, self._combined_docs(ordered))
            written[fmt] = path
        if "html" in self.formats:
            from ..review.page import write_page

            written["html"] = write_page(self.out_dir, provenance=self.provenance).path
        return written

    def shard_table(self) -> Path:
        """``OUT/tags.shard-I-of-N.jsonl``: this shard's records (and failed lines), sorted."""
        assert self.shard is not None
        return self.out_dir / f"tags.{self.shard.name}.jsonl"

    def _combined_docs(self, files: Sequence[Path]) -> Iterator[dict[str, Any]]:
        for path in files:
            doc = self._read_record(path)
            if doc is not None:
                yield doc
            elif path in self.failed:
                yield {"schema_version": TAG_SCHEMA_VERSION, "path": str(path), "ok": False,
                       "error": self.failed[path], "heads": [],
                       "provenance": self.provenance}


def _same_file(recorded: Any, source: Path) -> bool:
    """Whether a record's ``path`` names ``source`` (a hand-edited one does not count as done,
    so it is recomputed and never carried into the tables)."""
    if not isinstance(recorded, str):
        return False
    return recorded == str(source) or Path(recorded).resolve() == source.resolve()


def _input_stamp(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _reason(e: BaseException) -> str:
    return str(getattr(e, "strerror", None) or e)


def tag_to_files(model: "SoundNet", paths: Sequence[str | os.PathLike], run: TagRun, *,
                 scorers: Sequence["Scorer"] | None = None,
                 options: "RunOptions | None" = None) -> Iterator[TagOutcome]:
    """Tag ``paths`` into ``run``'s directory: done inputs are skipped without decoding, the
    others computed and written; yields one :class:`TagOutcome` per input (skipped ones first,
    then collisions, then the computed ones in input order). ``options`` (scheduling) go to
    :func:`~.scoring.tag_files`. Call ``run.combine(paths)`` afterwards for the tables.
    """
    from .scoring import tag_files

    files = [Path(p) for p in paths]
    run.claim()
    clashes = run.collisions(files)
    todo = []
    for path in files:
        if path in clashes:
            continue
        doc = run.done(path)
        if doc is None:
            todo.append(path)
        else:
            yield TagOutcome(path, doc=doc, skipped=True)
    for path, message in clashes.items():
        run.failed[path] = message
        yield TagOutcome(path, error=message)
    if not todo:
        if options is not None and options.decoder is not None:
            options.decoder.close()
        return
    # A decoder started on other files than ``todo`` is closed by tag_files, which then decodes.
    for result in tag_files(model, todo, scorers=scorers, options=options):
        yield run.write(result)
