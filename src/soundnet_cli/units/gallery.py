"""The gallery: one static HTML page, a card per unit, opened straight from disk.

The page is self-contained: styles inline, spectrogram thumbnails as ``data:`` URIs (each
distinct one once, as a CSS class), no script,
no network access; only the segments' audio files sit beside it (``audio/``, linked by relative
paths, so the folder can be moved or zipped whole and ``file://`` works). Cards come in the order
given (:func:`~.report.sort_entries`: the most consistent hint first).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

from ..files.fsutil import atomic_write_text
from .report import UnitEntry

PAGE_NAME = "index.html"

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h1{font-size:1.3em;margin:0 0 .2em} .meta{color:#555;margin:0 0 1em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.7em 1em;margin:0 0 1em}
.card h2{font-size:1.05em;margin:0 0 .3em} .hint{margin:.1em 0;color:#333}
.hint b{color:#000} .bar{display:inline-block;height:.6em;background:#c45;margin-left:.4em}
.segs{display:flex;flex-wrap:wrap;gap:.6em;margin-top:.5em}
.seg{width:196px;font-size:11px;color:#444}
.thumb{width:192px;height:72px;border:1px solid #ccc;background-size:100% 100%}
.seg audio{width:196px;height:28px} .file{overflow-wrap:anywhere}
"""


def write_gallery(out_dir: Path, entries: Sequence[UnitEntry], settings: dict[str, Any]) -> Path:
    """Write ``out_dir/index.html`` atomically for ``entries`` (in that order); returns its path.

    Units that never exceeded zero get no card, only a mention in one line (their "top"
    segments are arbitrary). Each distinct thumbnail is inlined once, as a CSS class, however
    many cards show it. ``settings`` feeds the header (``layer``, ``network``, ``recordings``,
    ``top``, ...)."""
    path = out_dir / PAGE_NAME
    live = [e for e in entries if e.active]
    dead = sorted(e.unit for e in entries if not e.active)
    thumbs: dict[str, str] = {}  # data URI -> CSS class
    for e in live:
        for uri in e.thumbs.values():
            thumbs.setdefault(uri, f"t{len(thumbs)}")
    styles = "".join(f".{c}{{background-image:url({uri})}}\n" for uri, c in thumbs.items())
    base = _common_folder([s.file for e in live for s in e.segments])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<link rel="icon" href="data:,">',
             f"<title>SoundNet units: {_e(settings.get('layer', ''))}</title>",
             f"<style>{_STYLE}\n{styles}</style></head><body>",
             f"<h1>What the units of {_e(settings.get('layer', ''))} hear</h1>",
             f'<p class="meta">{_e(_summary(settings, len(live)))}</p>']
    if base:
        parts.append(f'<p class="meta">Files are shown relative to {_e(base)}.</p>')
    if dead:
        parts.append(f'<p class="meta" id="never-active">{len(dead)} unit(s) never exceeded zero '
                     f"on these recordings (no card): {_e(_ranges(dead))}.</p>")
    parts += [_card(e, base, thumbs) for e in live]
    parts.append("</body></html>\n")
    atomic_write_text(path, "\n".join(parts))
    return path


def _ranges(units: list[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``0-2, 5, 7-8``."""
    out: list[str] = []
    for u in units:
        if out and out[-1].split("-")[-1] == str(u - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{u}"
        else:
            out.append(str(u))
    return ", ".join(out)


def _summary(settings: dict[str, Any], n: int) -> str:
    return (f"{n} unit(s) of network {settings.get('network', '?')}; top {settings.get('top')} "
            f"segment(s) per unit over {settings.get('recordings', '?')} recording(s), at most "
            f"{settings.get('per_recording')} per recording; segment: "
            f"{settings.get('segment', '')}. Cards are sorted by how consistent the heads' hint "
            "is (the share of a unit's segments whose top label agrees).")


def _card(entry: UnitEntry, base: str, thumbs: dict[str, str]) -> str:
    head = f'<div class="card" id="unit-{entry.unit}"><h2>unit {entry.unit}'
    if entry.hint is not None:
        h = entry.hint
        head += (f" · {h.agree}/{h.segments} segments agree: {_e(_short(h.label))}"
                 f" <span class=\"bar\" style=\"width:{round(60 * h.consistency)}px\"></span>")
    head += "</h2>"
    lines = [head]
    if entry.hint is not None:
        for name, labels in entry.hint.labels.items():
            text = ", ".join(f"{_e(_short(lab))} ({p:.2f})" for lab, p in labels)
            lines.append(f'<p class="hint"><b>{_e(name)}</b>: {text}</p>')
    lines.append('<div class="segs">')
    for s in entry.segments:
        cell = [f'<div class="seg">#{s.rank} · {s.activation:.3g}']
        if s.rank in entry.thumbs:
            cell.append(f'<div class="thumb {thumbs[entry.thumbs[s.rank]]}" role="img" '
                        f'aria-label="spectrogram of unit {entry.unit} segment {s.rank}"></div>')
        if s.rank in entry.audio:
            cell.append(f'<audio controls preload="none" src="{_e(entry.audio[s.rank])}">'
                        "</audio>")
        cell.append(f'<div class="file" title="{_e(s.file)}">{_e(_shown(s.file, base))} '
                    f"{s.start:.2f}–{s.end:.2f} s</div></div>")
        lines.append("".join(cell))
    lines.append("</div></div>")
    return "\n".join(lines)


def _common_folder(files: list[str]) -> str:
    """The folder all ``files`` share ("" when none)."""
    try:
        common = os.path.commonpath([os.path.abspath(f) for f in files]) if files else ""
    except ValueError:  # different drives
        return ""
    return common if not os.path.isfile(common) else os.path.dirname(common)


def _shown(file: str, base: str) -> str:
    """A file's name as shown on a card: relative to the folder every segment shares (the full
    path is the element's title)."""
    return os.path.relpath(os.path.abspath(file), base) if base else file


def _short(label: str) -> str:
    """ImageNet labels carry a WordNet id and synonyms: ``n01440764 tench, Tinca tinca`` ->
    ``tench``; Places labels a path: ``/a/abbey`` -> ``abbey``."""
    text = label.split(" ", 1)[1] if label[:1] == "n" and label[1:9].isdigit() else label
    text = text.split(",")[0].strip()
    if text.startswith("/") and text[2:3] == "/":
        text = text[3:]
    return text.replace("/", ", ").replace("_", " ")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
