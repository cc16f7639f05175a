"""When and where: recording start times from file names, site metadata, detections per hour/day.

Recorders name their files by the time recording started:

=================  ===============================  ========================================
``--time-from-name``  example                      read as
=================  ===============================  ========================================
``audiomoth``      ``20250714_085526.WAV``          ``YYYYMMDD_HHMMSS`` (older firmware: 8 hex
                   (``5F0D6A2E.WAV``)               digits, seconds since 1970 in UTC)
``song-meter``     ``SITE_20250714_085526.wav``     ``PREFIX_YYYYMMDD_HHMMSS`` (Wildlife
                                                    Acoustics SM2/SM3/SM4/Mini, any suffix)
``auto``           any of those, or                 the first 8-digit date and 6-digit time
                   ``rec-2025-07-14 08.55.26.flac`` in the name, separators allowed
PATTERN            ``%Y%m%d-%H%M``                  a ``strftime`` pattern searched in the name
=================  ===============================  ========================================

The clock time is in ``--tz`` (an IANA zone such as ``Europe/Berlin``, or ``+02:00``; default
UTC: AudioMoths record in UTC unless set otherwise). Every event then gets ISO 8601 start and end
times with the zone's offset (daylight saving included), e.g. ``2025-07-14T08:55:28+02:00``.

``--meta sites.csv``: a CSV whose first column names a file or a folder (path as given to
``tag``, absolute path, file name, file stem or folder name) and whose other columns (site,
latitude, longitude, ...) are added to every row of that input; a file's own row wins over its
folder's, a nearer folder over a farther one.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Iterable

from ..errors import SoundNetError, UsageError

PRESETS = ("auto", "audiomoth", "song-meter")
_AUDIOMOTH = re.compile(r"^(\d{8})_(\d{6})(?!\d)")
_AUDIOMOTH_HEX = re.compile(r"^([0-9A-Fa-f]{8})$")
_SONG_METER = re.compile(r"^(.+?)_(\d{8})_(\d{6})(?!\d)")
_ANY = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})[T _-]?(\d{2})[:._-]?(\d{2})[:._-]?(\d{2})"
                  r"(?!\d)")
_DIRECTIVES = {"Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}",
               "M": r"\d{2}", "S": r"\d{2}", "j": r"\d{3}", "b": r"[A-Za-z]{3}", "%": "%"}
#: Columns this module adds (time, then the metadata file's own).
TIME_COLUMNS = ("recording_start", "start_time", "end_time")


def parse_tz(spec: str | None) -> tzinfo:
    """``--tz``: ``None``/``UTC``/``Z``, ``+HH:MM``/``-HHMM``, or an IANA zone name."""
    if spec is None or spec.strip().upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    text = spec.strip()
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(delta if m.group(1) == "+" else -delta)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz {spec}: not a time zone (an IANA name such as Europe/Berlin, "
                         "UTC, or +02:00)") from None


def check_spec(spec: str) -> str:
    """``--time-from-name`` value, checked: a preset or a pattern with ``%`` directives."""
    if spec in PRESETS:
        return spec
    if "%" not in spec:
        raise UsageError(f"--time-from-name {spec}: choose {', '.join(PRESETS)} or give a "
                         "strftime pattern such as %Y%m%d_%H%M%S")
    _pattern_regex(spec)
    return spec


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts, i = [], 0
    while i < len(pattern):
        if pattern[i] == "%" and i + 1 < len(pattern):
            code = pattern[i + 1]
            if code not in _DIRECTIVES:
                raise UsageError(f"--time-from-name {pattern}: %{code} is not supported "
                                 f"(use %{', %'.join(k for k in _DIRECTIVES if k != '%')})")
            parts.append(_DIRECTIVES[code])
            i += 2
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


def start_from_name(path: str | os.PathLike, spec: str, tz: tzinfo) -> datetime | None:
    """The recording's start in ``tz`` read from its file name by ``spec`` (module docs), or
    ``None`` when the name does not hold one."""
    name = Path(path).name
    stem = Path(name).stem
    if spec in ("audiomoth", "auto"):
        m = _AUDIOMOTH.match(stem)
        if m:
            return _local(m.group(1) + m.group(2), "%Y%m%d%H%M%S", tz)
        m = _AUDIOMOTH_HEX.match(stem)
        if m and spec == "audiomoth":
            return datetime.fromtimestamp(int(m.group(1), 16), timezone.utc).astimezone(tz)
    if spec in ("song-meter", "auto"):
        m = _SONG_METER.match(stem)
        if m:
            return _local(m.group(2) + m.group(3), "%Y%m%d%H%M%S", tz)
    if spec == "auto":
        m = _ANY.search(stem)
        return _local("".join(m.groups()), "%Y%m%d%H%M%S", tz) if m else None
    if spec in PRESETS:
        return None
    m = _pattern_regex(spec).search(name)
    return _local(m.group(0), spec, tz) if m else None


def _local(text: str, fmt: str, tz: tzinfo) -> datetime | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=tz)
    except ValueError:  # 20251399_...: digits, but not a date
        return None


def iso(t: datetime) -> str:
    """ISO 8601 with the offset, milliseconds only when there are any."""
    return t.isoformat(timespec="milliseconds" if t.microsecond else "seconds")


# ---------------------------------------------------------------------------------------------
# Site metadata


@dataclass(frozen=True)
class SiteTable:
    """``--meta``: rows keyed by file or folder (first column), and the other columns."""

    columns: tuple[str, ...]
    rows: dict[str, dict[str, str]]

    def lookup(self, path: str, cwd: Path | None = None) -> dict[str, str]:
        """The row of input ``path``: its own (path, absolute path, name, stem), else its
        nearest folder's (path, absolute path or name); empty values when none."""
        p = Path(path)
        absolute = (cwd or Path.cwd()) / p if not p.is_absolute() else p
        keys = [str(p), str(absolute), p.name, p.name.split(".", 1)[0]]
        for folder, abs_folder in zip(p.parents, absolute.parents):
            if str(folder) != ".":
                keys += [str(folder), folder.name]
            keys.append(str(abs_folder))
        for key in keys:
            if key in self.rows:
                return self.rows[key]
        return {c: "" for c in self.columns}


def read_meta(path: str | os.PathLike) -> SiteTable:
    """Read ``--meta``. Raises :class:`SoundNetError` for an unreadable or malformed file."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            body = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SoundNetError(f"--meta {path}: cannot read it: {e}") from e
    if len(header) < 2:
        raise SoundNetError(f"--meta {path}: needs a header with a file or folder column first, "
                            "then the columns to add (site, latitude, ...)")
    columns = tuple(c.strip() for c in header[1:])
    clash = sorted(set(columns) & {*TIME_COLUMNS, "source", "head", "class", "onset", "offset",
                                   "score", "mean_score", "verdict", "clip"})
    if clash:
        raise SoundNetError(f"--meta {path}: column(s) {', '.join(clash)} clash with the "
                            "table's own; rename them")
    rows = {}
    for n, row in enumerate(body, 2):
        if not row or not row[0].strip():
            continue
        if len(row) != len(header):
            raise SoundNetError(f"--meta {path}:{n}: {len(row)} values for {len(header)} columns")
        key = row[0].strip().rstrip("/\\")
        rows[key] = dict(zip(columns, (v.strip() for v in row[1:])))
    return SiteTable(columns, rows)


# ---------------------------------------------------------------------------------------------
# Both together


@dataclass
class Placement:
    """Adds time and site columns to rows about inputs (``None`` options add nothing).

    ``cwd`` is where ``tag`` ran (relative input paths are relative to it); ``unknown`` collects
    the inputs whose name held no time."""

    spec: str | None = None
    tz: tzinfo = timezone.utc
    sites: SiteTable | None = None
    cwd: Path | None = None
    unknown: list[str] = field(default_factory=list)
    _starts: dict[str, datetime | None] = field(default_factory=dict)

    @classmethod
    def from_options(cls, time_from_name: str | None, tz: str | None,
                     meta: str | os.PathLike | None, cwd: Path | None = None) -> "Placement":
        if tz is not None and time_from_name is None:
            raise UsageError("--tz needs --time-from-name")
        return cls(None if time_from_name is None else check_spec(time_from_name),
                   parse_tz(tz), None if meta is None else read_meta(meta), cwd)

    @property
    def columns(self) -> list[str]:
        return ([*TIME_COLUMNS] if self.spec else []) + list(self.sites.columns if self.sites
                                                             else ())

    def start(self, source: str) -> datetime | None:
        if self.spec is None:
            return None
        if source not in self._starts:
            self._starts[source] = start_from_name(source, self.spec, self.tz)
            if self._starts[source] is None:
                self.unknown.append(source)
        return self._starts[source]

    def row(self, source: str, onset: float | None = None,
            offset: float | None = None) -> dict[str, Any]:
        """The added columns for an input (and, with ``onset``/``offset`` seconds, an event)."""
        out: dict[str, Any] = {}
        if self.spec is not None:
            t0 = self.start(source)
            out["recording_start"] = "" if t0 is None else iso(t0)
            out["start_time"] = "" if t0 is None or onset is None else iso(
                t0 + timedelta(seconds=onset))
            out["end_time"] = "" if t0 is None or offset is None else iso(
                t0 + timedelta(seconds=offset))
        if self.sites is not None:
            out.update(self.sites.lookup(source, self.cwd))
        return out


def activity(rows: Iterable[dict[str, Any]], period: str,
             group: str | None = None) -> list[dict[str, Any]]:
    """Detections per ``period`` (``hour`` or ``day``) and class (and ``group`` column, e.g.
    site) from detection rows with ``start_time``; rows without a time are left out. Sorted by
    group, period, class; ``hour`` rows also carry ``hour_of_day``."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in rows:
        if not r.get("start_time"):
            continue
        t = datetime.fromisoformat(r["start_time"])
        key = t.replace(minute=0, second=0, microsecond=0) if period == "hour" else t.date()
        label = key.isoformat(timespec="minutes") if isinstance(key, datetime) else key.isoformat()
        k = (str(r.get(group, "")) if group else "", label, r["class"])
        counts[k] = counts.get(k, 0) + 1
    out = []
    for (g, label, cls), n in sorted(counts.items()):
        row: dict[str, Any] = {group: g} if group else {}
        row.update({period: label, "class": cls, "detections": n})
        if period == "hour":
            row["hour_of_day"] = int(label[11:13])
        out.append(row)
    return out
