"""Results as files (``soundnet tag --out DIR``): one record per input, views, resume, tables.

Layout
------
Every input gives, at its path relative to the directory it was found in (the same helper as
``extract``: :func:`~soundnet_cli.files.fsutil.mirrored_output`), with its audio suffix replaced:

=============  =========================  ==================================================
format         per input                  combined, in ``DIR`` (merged from the records)
=============  =========================  ==================================================
(always)       ``a/b.tags.json``          ``run.json`` (the run's full settings)
``jsonl``      (the record)               ``tags.jsonl``: one record per line
``csv``        ``a/b.tags.csv``           ``tags.csv``: the long table of every file
``raven``      ``a/b.selections.txt``     ``selections.txt``: one table, ``Begin Path`` column
``audacity``   ``a/b.labels.txt``         (none: a label track belongs to one audio file)
``parquet``    (none)                     ``tags.parquet`` (needs pyarrow)
``png``        ``a/b.tags.png``           (none; needs matplotlib)
``scores``     ``a/b.scores.npz``         (none: every step's score of every label, for
                                          ``soundnet evaluate`` and the review page)
``html``       (none)                     ``review.html`` and ``review/`` (the review page,
                                          :mod:`soundnet_cli.review.page`)
=============  =========================  ==================================================

The record ``b.tags.json`` is the file's result (the ``--json`` document of
:func:`~soundnet_cli.tag.result_to_json` with its provenance and the input's size and time) and
the other text files are views of it. It is written last, atomically like every file here, so
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

import csv
import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from ..errors import OutputError, SoundNetError
from ..files.fsutil import (
    atomic_path,
    atomic_write_text,
    collision_candidates,
    mirrored_output,
    outside_message,
)
from ..files.jsonutil import loads as strict_json
from .events import NO_CONFIDENT_LABEL, DetectOptions
from .scoring import CSV_COLUMNS, TAG_SCHEMA_VERSION, TagResult, doc_csv_rows, result_to_json

if TYPE_CHECKING:
    from ..model import SoundNet
    from ..runtime.options import RunOptions
    from ..shards.partition import Shard
    from .scoring import Scorer

#: Formats ``--format`` accepts; ``all`` means every one whose package is installed.
FORMATS = ("jsonl", "csv", "raven", "audacity", "parquet", "png", "scores", "html")
RECORD_SUFFIX = ".tags.json"
VIEW_SUFFIXES = {"csv": ".tags.csv", "raven": ".selections.txt", "audacity": ".labels.txt",
                 "png": ".tags.png", "scores": ".scores.npz"}
#: Per-input files made from the result itself, not from its record: missing, they are recomputed.
RESULT_VIEWS = ("png", "scores")
COMBINED_NAMES = {"jsonl": "tags.jsonl", "csv": "tags.csv", "raven": "selections.txt",
                  "parquet": "tags.parquet"}
RUN_FILE = "run.json"
#: The folder's record of what made its results (see "One folder, one set of settings").
RECORD_NAME = "tag.json"
#: Raven Pro's required selection-table columns, then ours (annotation columns to Raven).
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)",
                 "Low Freq (Hz)", "High Freq (Hz)", "Head", "Label", "Max Score", "Mean Score",
                 "Steps", "Network", "Fingerprint", "Settings ID", "soundnet-cli")
#: Extra leading columns of the combined (multi-file) Raven table.
RAVEN_FILE_COLUMNS = ("Begin Path", "Begin File", "File Offset (s)")
_PACKAGES = {"parquet": "pyarrow", "png": "matplotlib"}


def parse_formats(spec: str) -> tuple[str, ...]:
    """``--format`` value (comma-separated, or ``all``) as a tuple in :data:`FORMATS` order.

    ``all`` leaves out formats whose package is missing; naming such a format explicitly raises
    :class:`SoundNetError` saying what to install.
    """
    import importlib.util

    names = {n.strip().lower() for n in spec.split(",") if n.strip()}
    if not names:
        raise SoundNetError("--format: no format given; choose from " + ", ".join(FORMATS))
    if "all" in names:
        return tuple(f for f in FORMATS
                     if f not in _PACKAGES or importlib.util.find_spec(_PACKAGES[f]) is not None)
    unknown = sorted(names - set(FORMATS))
    if unknown:
        raise SoundNetError(f"--format: unknown {', '.join(unknown)}; choose from "
                            f"{', '.join(FORMATS)} or all")
    for name in names & set(_PACKAGES):
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            extra = "plot" if name == "png" else name
            raise SoundNetError(f"--format {name} needs {_PACKAGES[name]}: "
                                f"pip install 'soundnet-cli[{extra}]'")
    return tuple(f for f in FORMATS if f in names)


def formats_left_out(spec: str) -> dict[str, str]:
    """The formats ``--format all`` (``spec``) leaves out because their package is missing:
    ``{format: what to install}`` (empty when ``spec`` does not say ``all``)."""
    import importlib.util

    if "all" not in {n.strip().lower() for n in spec.split(",")}:
        return {}
    return {f: f"pip install 'soundnet-cli[{'plot' if f == 'png' else f}]'"
            for f, package in _PACKAGES.items() if importlib.util.find_spec(package) is None}


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
# Views of one record


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
    """The long CSV (:data:`CSV_COLUMNS`, header first) of some records."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for doc in docs:
        writer.writerows(doc_csv_rows(doc))
    return buf.getvalue()


_TEXT_VIEWS = {"csv": lambda doc: csv_table([doc]), "raven": raven_table,
               "audacity": audacity_labels}


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
        From :func:`parse_formats`.
    roots
        Input directories: outputs mirror the tree below them.
    provenance
        From :func:`provenance`; its ``settings_id`` decides what counts as done.
    top_k, segments, detect
        What each record holds (see :func:`~soundnet_cli.tag.result_to_json`).
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
        return {f: mirrored_output(source, self.roots, self.out_dir, VIEW_SUFFIXES[f])
                for f in self.formats if f in VIEW_SUFFIXES}

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
                atomic_write_text(path, _TEXT_VIEWS[fmt](doc))
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
                    atomic_write_text(path, _TEXT_VIEWS[fmt](doc))
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


def record_path(source: Path, roots: Sequence[Path], out_dir: Path) -> Path:
    """Where the record of ``source`` goes (see the module docs)."""
    return mirrored_output(source, list(roots), out_dir, RECORD_SUFFIX)


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


_COMBINERS = {"jsonl": _write_jsonl, "csv": _write_csv, "raven": _write_raven,
              "parquet": _write_parquet}


def write_combined(fmt: str, path: Path, docs: Iterable[dict[str, Any]]) -> None:
    """Write the combined table ``fmt`` (a key of :data:`COMBINED_NAMES`) of ``docs`` (records,
    and ``"ok": false`` lines for failed inputs) to ``path`` atomically, streaming.

    The one writer of combined tables: ``tag --out`` and ``soundnet merge`` both call it with
    the records in :func:`~soundnet_cli.shards.partition.input_key` order, so a merged table is
    byte-identical to one run's. Raises :class:`OutputError` when it cannot be written.
    """
    try:
        _COMBINERS[fmt](path, docs)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the combined table: {_reason(e)}") from e


def tag_to_files(model: "SoundNet", paths: Sequence[str | os.PathLike], run: TagRun, *,
                 scorers: Sequence["Scorer"] | None = None,
                 options: "RunOptions | None" = None) -> Iterator[TagOutcome]:
    """Tag ``paths`` into ``run``'s directory: done inputs are skipped without decoding, the
    others computed and written; yields one :class:`TagOutcome` per input (skipped ones first,
    then collisions, then the computed ones in input order). ``options`` (scheduling) go to
    :func:`~soundnet_cli.tag.tag_files`. Call ``run.combine(paths)`` afterwards for the tables.
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
