"""The review page: one static HTML file per run to look at, listen to and filter what was found.

``soundnet tag ... --out DIR --format html`` and ``soundnet review DIR`` write:

- ``DIR/review.html``: the page, with its CSS, JavaScript and the run's data inlined (no server,
  no network access; opens from a ``file://`` URL);
- ``DIR/review/spec/<input>.png``: a spectrogram per input (made once, remade when the audio
  changes), shown as an ``<img>`` beside the page.

Audio plays from the input files themselves, through relative links (so the page keeps
working when ``DIR`` and the recordings move together), or from copies under ``DIR/review/audio``
with ``copy_audio`` (so ``DIR`` alone can be handed to someone else).

Every input is a row: its path and links to its files, its best labels per head, its events with
a play button each (the player jumps to the event's onset minus ``margin`` seconds and stops at
its offset plus ``margin``), the spectrogram with the events marked and, when the run wrote
``scores`` files, the score timeline of the head's best labels. Filters by head, class and
minimum score; sorting by path, best score, number of events or duration; pages of 25 to 100
rows, so a run of 10,000 inputs stays responsive (only one page is in the document at a time).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

import numpy as np

from ..errors import SoundNetError
from ..files.fsutil import atomic_write_text
from .rundir import InputRecord, RunDir, open_run

if TYPE_CHECKING:
    from .timeinfo import Placement

PAGE_NAME = "review.html"
ASSET_DIR = "review"
#: Seconds played before an event's onset and after its offset.
DEFAULT_MARGIN = 1.0
#: Score-timeline labels drawn per head, and the most points per label (longer timelines are
#: max-pooled to this many, so a 3-hour file does not bloat the page).
TIMELINE_LABELS, TIMELINE_POINTS = 3, 360


@dataclass
class PageReport:
    """What :func:`write_page` did: the page, how many inputs, and spectrogram problems."""

    path: Path
    inputs: int
    spectrograms: int = 0
    problems: list[str] = field(default_factory=list)


def write_page(out_dir: str | os.PathLike, *, margin: float = DEFAULT_MARGIN,
               spectrograms: bool = True, copy_audio: bool = False,
               provenance: dict[str, Any] | None = None,
               placement: "Placement | None" = None,
               progress: Callable[[int], None] | None = None) -> PageReport:
    """Write ``out_dir/review.html`` (and its spectrograms) for the run in ``out_dir``.

    Parameters
    ----------
    out_dir
        A ``soundnet tag --out`` folder (see :func:`~.rundir.open_run`).
    margin
        Seconds played around each event (changeable on the page).
    spectrograms
        Make the missing or outdated spectrogram pictures (decodes those inputs).
    copy_audio
        Copy each input's audio under ``review/audio`` and play the copies.
    placement
        Recording times and sites (:class:`~.timeinfo.Placement`): shown under each input's
        path, and each event's clock time beside it.
    progress
        Called with 1 after each input.

    Raises :class:`~soundnet_cli.errors.OutputError` when ``out_dir`` holds no run.
    """
    if margin < 0:
        raise SoundNetError(f"margin must be >= 0 seconds, got {margin:g}")
    run = open_run(out_dir)
    report = PageReport(run.out_dir / PAGE_NAME, len(run.inputs))
    if placement is not None and placement.cwd is None:  # relative inputs: where tag ran
        placement.cwd = run.cwd
    items = []
    for item in run.inputs:
        row = _item(run, item, spectrograms, copy_audio, report)
        if placement is not None:
            _place(row, placement)
        items.append(row)
        if progress is not None:
            progress(1)
    data = {"title": f"soundnet review: {run.out_dir.resolve().name}", "margin": margin,
            "meta": _meta(run, provenance), "footer": _footer(run, provenance),
            "heads": run.head_labels(), "items": items}
    atomic_write_text(report.path, render(data))
    return report


def render(data: dict[str, Any]) -> str:
    """The page's HTML with ``data`` inlined (safe inside ``<script>``: ``<`` is escaped)."""
    template = resources.files(__package__).joinpath("template.html").read_text("utf-8")
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    return (template.replace("__TITLE__", html.escape(str(data["title"])))
            .replace("__DATA__", payload))


def _url(path: Path, base: Path) -> str:
    """A relative URL from folder ``base`` to ``path`` (percent-encoded, ``/`` separated)."""
    rel = os.path.relpath(path.resolve(), base.resolve())
    # The name's own bytes: a file name that is not UTF-8 (surrogate escapes) is encoded as is.
    return quote(os.fsencode(PurePosixPath(*Path(rel).parts).as_posix()))


def _item(run: RunDir, item: InputRecord, spectrograms: bool, copy_audio: bool,
          report: PageReport) -> dict[str, Any]:
    """One row's data: ``p`` path, ``d`` duration, ``a`` audio URL, ``s`` spectrogram URL,
    ``f`` [name, URL] of its files, ``h`` per head: name, ``t`` clip labels, ``e`` events
    [label, start, end, max score], ``thr`` threshold, ``tl`` score timeline."""
    doc, base = item.doc, run.out_dir
    files = [["record", _url(item.record, base)]]
    for fmt in ("csv", "raven", "audacity", "png", "scores"):
        view = item.view(fmt)
        if view is not None:
            files.append([fmt, _url(view, base)])
    audio = _audio(run, item, copy_audio, report)
    spec = _spectrogram(run, item, spectrograms, report)
    timelines = _timelines(item)
    heads = []
    for head in doc.get("heads", []):
        heads.append({"n": head["name"],
                      "t": [[t["label"], round(t["score"], 4)] for t in head.get("top", [])],
                      "e": [[e["label"], e["start"], e["end"], round(e["max_score"], 4)]
                            for e in head.get("events") or []],
                      "thr": head.get("min_conf"), "tl": timelines.get(head["name"])})
    return {"p": item.path, "d": round(float(doc["duration"]), 3),
            "a": None if audio is None else _url(audio, base),
            "s": None if spec is None else _url(spec, base), "f": files, "h": heads}


def _place(row: dict[str, Any], placement: "Placement") -> None:
    """Add ``w`` (recording start and site columns, one line) and each event's clock time."""
    where = placement.row(row["p"])
    row["w"] = "  ·  ".join(f"{k} {v}" if k != "recording_start" else v
                            for k, v in where.items()
                            if v and k not in ("start_time", "end_time"))
    for head in row["h"]:
        for ev in head["e"]:
            ev.append(placement.row(row["p"], ev[1], ev[2]).get("start_time", ""))


def _audio(run: RunDir, item: InputRecord, copy: bool, report: PageReport) -> Path | None:
    if item.audio is None:
        report.problems.append(f"{item.path}: audio file not found; the page cannot play it")
        return None
    if not copy:
        return item.audio
    rel = item.stem.relative_to(run.out_dir)
    target = run.out_dir / ASSET_DIR / "audio" / rel.parent / (rel.name + item.audio.suffix)
    if not _fresh(target, item.audio):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.audio, target)
    return target


def _spectrogram(run: RunDir, item: InputRecord, make: bool, report: PageReport) -> Path | None:
    from ..errors import AudioError
    from .images import write_spectrogram

    rel = item.stem.relative_to(run.out_dir)
    target = run.out_dir / ASSET_DIR / "spec" / rel.parent / (rel.name + ".png")
    if item.audio is None or _fresh(target, item.audio):
        return target if target.is_file() else None
    if not make:
        return target if target.is_file() else None
    try:
        write_spectrogram(item.audio, target)
    except (AudioError, OSError) as e:
        report.problems.append(f"{item.path}: no spectrogram: {e}")
        return None
    report.spectrograms += 1
    return target


def _fresh(target: Path, source: Path) -> bool:
    try:
        return target.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def _timelines(item: InputRecord) -> dict[str, dict[str, Any]]:
    """Per head, from the input's scores file when there is one: step intervals ``iv`` and
    ``ser`` [label, per-step scores] of its best labels (by best event, then clip score)."""
    path = item.view("scores")
    if path is None:
        return {}
    from ..errors import OutputError
    from ..tagging.scorefile import read_scores

    try:
        scores = read_scores(path)
    except OutputError:
        return {}
    out = {}
    for head in item.doc.get("heads", []):
        timeline = scores.heads.get(head["name"])
        if timeline is None or not timeline.scores.shape[0]:
            continue
        events = sorted(head.get("events") or [], key=lambda e: -e["max_score"])
        wanted = [e["index"] for e in events]  # the best events' labels, then the clip's
        wanted += [int(j) for j in np.argsort(-timeline.clip_scores, kind="stable")]
        chosen = list(dict.fromkeys(wanted))[:TIMELINE_LABELS]
        iv, ser = _pool(timeline.intervals, timeline.scores[:, chosen])
        ser = np.round(ser.astype(np.float64), 4)
        out[head["name"]] = {"iv": np.round(iv, 3).tolist(),
                             "ser": [[timeline.labels[j], ser[:, k].tolist()]
                                     for k, j in enumerate(chosen)]}
    return out


def _pool(intervals: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most :data:`TIMELINE_POINTS` steps: consecutive steps max-pooled, intervals joined."""
    n = intervals.shape[0]
    if n <= TIMELINE_POINTS:
        return intervals, scores
    edges = np.linspace(0, n, TIMELINE_POINTS + 1).astype(int)
    iv = np.stack([intervals[edges[:-1], 0], intervals[edges[1:] - 1, 1]], axis=1)
    return iv, np.maximum.reduceat(scores, edges[:-1], axis=0)


def _meta(run: RunDir, provenance: dict[str, Any] | None) -> str:
    prov = provenance or run.inputs[0].doc.get("provenance", {})
    net = prov.get("network", {})
    events = sum(1 for item in run.inputs for _ in item.events())
    return (f"{len(run.inputs)} inputs, {events} events; network {net.get('name', '?')} "
            f"({str(net.get('fingerprint', ''))[:12]}); settings {prov.get('settings_id', '?')}")


def _footer(run: RunDir, provenance: dict[str, Any] | None) -> str:
    prov = provenance or run.inputs[0].doc.get("provenance", {})
    settings = prov.get("settings", {})
    return (f"made by soundnet-cli {prov.get('soundnet_cli', '?')} from {run.out_dir}; "
            f"min-conf {settings.get('min_conf')}, classes {settings.get('classes')}, "
            f"merge {settings.get('merge')}, min-gap {settings.get('min_gap')}")
