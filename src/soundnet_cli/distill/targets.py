"""The on-disk format of teacher targets: what ``soundnet teach`` writes and ``distill`` reads.

A targets collection is a directory::

    TARGETS/
      targets.json          collection header (JSON): format, version, sample rate, step seconds,
                            the teachers with their label lists and sources, how it was made
      index.jsonl           one JSON object per finished video (``index.I-of-N.jsonl`` per shard);
                            all ``index*.jsonl`` files together are the collection
      clips/<key>.flac      the video's soundtrack: mono, 22,050 Hz, 16-bit FLAC, the first
                            ``steps * step_seconds`` seconds (shorter when the video is)
      clips/<key>.safetensors  the targets: tensor ``probs.<teacher>`` float32 ``(steps, classes)``
                            per teacher (softmax rows, each sums to 1), ``frame_times`` float32
                            ``(steps,)``; metadata ``format``, ``format_version`` and ``clip``
                            (JSON: key, source video, steps, samples, duration, teachers)

``<key>`` is the video's path relative to the input directory it was found in (``a/b.mp4``), or
its file name. An index line is ``{"key", "steps", "samples", "duration", "source"}``.

Both files of a clip are written atomically, the FLAC first; a clip counts as done when its
``.safetensors`` exists, so an interrupted ``teach`` resumes where it stopped. Nothing here is
pickled: safetensors, FLAC, JSON and JSON lines only. Training needs neither PyAV nor a teacher.

Reading validates everything before it is used: the header's values and teacher names
(:meth:`TargetsHeader.from_dict`), every index line against the header (a step count the
collection's ``max_seconds`` cannot hold is refused, not allocated) and every clip's
probabilities (shape, finite, rows summing to 1; :func:`check_probs`). Each problem is a
:class:`~soundnet_cli.errors.TargetsError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import TargetsError
from ..files.fsutil import atomic_path, atomic_write_text
from ..files.jsonutil import loads as strict_json

FORMAT = "soundnet-targets"
FORMAT_VERSION = 1
HEADER_FILE = "targets.json"
CLIPS_DIR = "clips"
INDEX_FILE = "index.jsonl"
#: Tolerance on the sum of a probability row (the original code checks the same 0.001).
SUM_TOLERANCE = 1e-3
#: A teacher name: it becomes a head name and a tensor key, so a plain word.
_TEACHER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
#: Bounds on header values (generous; they stop absurd allocations, not unusual settings).
MAX_STEP_SECONDS, MAX_VIDEO_SECONDS, MAX_LABELS = 3600.0, 7 * 24 * 3600.0, 1 << 17


@dataclass(frozen=True)
class TeacherInfo:
    """A teacher as the collection records it: its name, label list and where it came from."""

    name: str
    labels: tuple[str, ...]
    source: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": list(self.labels), "source": self.source}


@dataclass(frozen=True)
class TargetsHeader:
    """The contents of ``targets.json``."""

    teachers: tuple[TeacherInfo, ...]
    step_seconds: float
    max_seconds: float
    sample_rate: int = SAMPLE_RATE
    origin: str = "teach"  # teach | precomputed
    frame_rule: str = "nearest frame to the middle of each step"
    min_partial_step: float = 0.5

    @property
    def step_samples(self) -> int:
        return int(round(self.step_seconds * self.sample_rate))

    @property
    def teacher_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.teachers)

    def teacher(self, name: str) -> TeacherInfo:
        for t in self.teachers:
            if t.name == name:
                return t
        raise TargetsError(f"no teacher {name!r} in these targets (teachers: "
                           f"{', '.join(self.teacher_names)})")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["teachers"] = [t.to_dict() for t in self.teachers]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    def __post_init__(self) -> None:
        def number(name: str, value: Any, low: float, high: float, *, closed: bool = False) -> None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and (low <= value if closed else low < value) \
                and value <= high
            if not ok:
                raise TargetsError(f"{name} is {value!r}; expected a number in "
                                   f"{'[' if closed else '('}{low:g}, {high:g}]")

        number("step_seconds", self.step_seconds, 0.0, MAX_STEP_SECONDS)
        number("max_seconds", self.max_seconds, 0.0, MAX_VIDEO_SECONDS)
        number("min_partial_step", self.min_partial_step, 0.0, 1.0, closed=True)
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) \
                or not 1000 <= self.sample_rate <= 768_000:
            raise TargetsError(f"sample_rate is {self.sample_rate!r}; expected an integer Hz")
        if self.step_samples < 1:
            raise TargetsError(f"step_seconds {self.step_seconds:g} is under one sample")
        if not self.teachers:
            raise TargetsError("no teachers")
        for t in self.teachers:
            if not isinstance(t.name, str) or not _TEACHER_NAME.fullmatch(t.name):
                raise TargetsError(f"teacher name {t.name!r} is not a plain name (letters, "
                                   "digits, '_', '.', '+', '-')")
            if not 1 <= len(t.labels) <= MAX_LABELS or \
                    not all(isinstance(x, str) for x in t.labels):
                raise TargetsError(f"teacher {t.name!r}: labels must be a list of 1 to "
                                   f"{MAX_LABELS} strings")
        if len(set(self.teacher_names)) != len(self.teachers):
            raise TargetsError("a teacher is listed twice")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "targets.json") -> "TargetsHeader":
        if not isinstance(d, Mapping):
            raise TargetsError(f"{where}: not a soundnet targets header (a JSON "
                               f"{type(d).__name__}, not an object)")
        if d.get("format") != FORMAT:
            raise TargetsError(f"{where}: not a soundnet targets header")
        version = d.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise TargetsError(f"{where}: bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise TargetsError(f"{where}: targets format {d['format_version']} is newer than "
                               f"this soundnet-cli understands ({FORMAT_VERSION})")
        try:
            teachers = tuple(TeacherInfo(t["name"], tuple(_strings(t["labels"])),
                                         dict(t.get("source") or {}))
                             for t in d["teachers"])
            return cls(teachers=teachers, step_seconds=d["step_seconds"],
                       max_seconds=d["max_seconds"], sample_rate=d["sample_rate"],
                       origin=str(d.get("origin", "teach")),
                       frame_rule=str(d.get("frame_rule", "")),
                       min_partial_step=d.get("min_partial_step", 0.5))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TargetsError(f"{where}: malformed targets header: {e}") from e
        except TargetsError as e:
            raise TargetsError(f"{where}: malformed targets header: {e}") from None

    def check_entry(self, entry: "Entry", where: str) -> "Entry":
        """``entry`` if it fits this collection (a step count ``max_seconds`` can hold, audio
        of at most those steps); otherwise :class:`TargetsError`."""
        most = int(math.ceil(self.max_seconds / self.step_seconds)) + 1
        if not 1 <= entry.steps <= most:
            raise TargetsError(f"{where}: clip {entry.key!r} claims {entry.steps} steps; this "
                               f"collection holds at most {most}")
        if not 1 <= entry.samples <= (entry.steps + 1) * self.step_samples:
            raise TargetsError(f"{where}: clip {entry.key!r} claims {entry.samples} samples "
                               f"for {entry.steps} steps")
        if not math.isfinite(entry.duration) or entry.duration < 0:
            raise TargetsError(f"{where}: clip {entry.key!r} has duration {entry.duration!r}")
        return entry

    def mismatch(self, other: "TargetsHeader") -> str | None:
        """Why ``other`` cannot add to a collection with this header (``None``: it can)."""
        a, b = self.to_dict(), other.to_dict()
        for key in ("step_seconds", "max_seconds", "sample_rate", "min_partial_step", "origin"):
            if a[key] != b[key]:
                return f"{key} {a[key]!r} here, {b[key]!r} requested"
        if self.teacher_names != other.teacher_names:
            return (f"teachers {list(self.teacher_names)} here, {list(other.teacher_names)} "
                    "requested")
        for t, u in zip(self.teachers, other.teachers, strict=True):
            if t.labels != u.labels:
                return f"teacher {t.name!r} has other labels"
            if t.source != u.source:
                return f"teacher {t.name!r} is another network ({t.source} vs {u.source})"
        return None


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise TypeError("labels must be a list of strings")
    return value


@dataclass(frozen=True)
class Entry:
    """One finished video (a line of the index)."""

    key: str
    steps: int
    samples: int
    duration: float
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Paths


def check_key(key: str) -> str:
    """A clip key is a relative POSIX path without ``..``; raises :class:`TargetsError`."""
    p = PurePosixPath(key)
    if not key or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts) \
            or "\\" in key or key != str(p):
        raise TargetsError(f"invalid clip key {key!r}: a relative path without '..'")
    return key


def clip_paths(root: str | os.PathLike, key: str) -> tuple[Path, Path]:
    """``(targets .safetensors, audio .flac)`` paths of clip ``key`` in collection ``root``."""
    base = Path(root) / CLIPS_DIR / check_key(key)
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".flac")


def key_for(source: Path, roots: Sequence[Path]) -> str:
    """The clip key of a video: its path relative to the input directory it came from."""
    src = source.resolve()
    for root in roots:
        r = root.resolve()
        if r.is_dir() and r in src.parents:
            return src.relative_to(r).as_posix()
    return source.name


# ---------------------------------------------------------------------------------------------
# Writing


def init_collection(root: str | os.PathLike, header: TargetsHeader) -> TargetsHeader:
    """Create ``root/targets.json``, or check that the existing one matches ``header``."""
    root = Path(root)
    path = root / HEADER_FILE
    if path.exists():
        existing = read_header(root)
        why = existing.mismatch(header)
        if why:
            raise TargetsError(f"{root} already holds targets made differently ({why}); "
                               "use the same settings to add to it, or another --out")
        return existing
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(header.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return header


def check_probs(probs: np.ndarray, teacher: TeacherInfo, where: str) -> np.ndarray:
    """Validate ``(steps, classes)`` probability rows; returns them as float32."""
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != len(teacher.labels):
        raise TargetsError(f"{where}: {teacher.name} targets have shape {p.shape}, expected "
                           f"(steps, {len(teacher.labels)})")
    if not np.isfinite(p).all() or (p < -1e-6).any() or (p > 1 + 1e-6).any():
        raise TargetsError(f"{where}: {teacher.name} targets are not probabilities "
                           "(values outside [0, 1])")
    sums = p.sum(axis=1, dtype=np.float64)
    if np.abs(sums - 1.0).max(initial=0.0) > SUM_TOLERANCE:
        raise TargetsError(f"{where}: {teacher.name} target rows do not sum to 1 "
                           f"(e.g. {sums[np.argmax(np.abs(sums - 1))]:.4f}); "
                           "were logits stored instead of probabilities?")
    return np.clip(p, 0.0, 1.0)


def write_clip(root: str | os.PathLike, header: TargetsHeader, key: str, audio: np.ndarray,
               probs: Mapping[str, np.ndarray], *, source: str = "",
               frame_times: np.ndarray | None = None, duration: float | None = None) -> Entry:
    """Write one clip (audio FLAC, then targets safetensors), both atomically.

    ``audio`` is ``(samples,)`` float32 at the collection rate; ``probs`` maps every teacher of
    ``header`` to ``(steps, classes)`` probabilities (the same ``steps`` for all).
    """
    import soundfile as sf
    from safetensors.numpy import save_file

    target_path, audio_path = clip_paths(root, key)
    where = source or key
    arrays: dict[str, np.ndarray] = {}
    steps = None
    for t in header.teachers:
        if t.name not in probs:
            raise TargetsError(f"{where}: no targets for teacher {t.name!r}")
        p = check_probs(probs[t.name], t, where)
        if steps is not None and p.shape[0] != steps:
            raise TargetsError(f"{where}: teachers disagree on the number of steps")
        steps = p.shape[0]
        arrays[f"probs.{t.name}"] = np.ascontiguousarray(p)
    assert steps is not None
    if frame_times is not None:
        arrays["frame_times"] = np.asarray(frame_times, dtype=np.float32)
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if audio.ndim != 1 or audio.size == 0:
        raise TargetsError(f"{where}: audio must be a non-empty (samples,) array")
    with atomic_path(audio_path) as tmp:
        sf.write(str(tmp), audio, header.sample_rate, format="FLAC", subtype="PCM_16")
    entry = Entry(key, int(steps), int(audio.shape[0]),
                  float(duration if duration is not None else audio.shape[0] / header.sample_rate),
                  source)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "clip": json.dumps({**dataclasses.asdict(entry), "teachers": list(header.teacher_names)},
                               ensure_ascii=False)}
    with atomic_path(target_path) as tmp:
        save_file(arrays, str(tmp), metadata=meta)
    return entry


class IndexWriter:
    """Appends finished clips to an index file, one JSON line each, flushed per line."""

    def __init__(self, root: str | os.PathLike, name: str = INDEX_FILE) -> None:
        self.path = Path(root) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ends_cleanly = True
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                ends_cleanly = f.read(1) == b"\n"
        self._f = open(self.path, "a", encoding="utf-8")
        if not ends_cleanly:  # an interrupted append left half a line: start a new one
            self._f.write("\n")

    def add(self, entry: Entry) -> None:
        self._f.write(entry.to_json() + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Reading


def read_header(root: str | os.PathLike) -> TargetsHeader:
    path = Path(root) / HEADER_FILE
    if not path.is_file():
        raise TargetsError(f"{root}: not a targets directory (no {HEADER_FILE}; make one with "
                           "`soundnet teach`)")
    try:
        data = strict_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TargetsError(f"{path}: cannot read: {e}") from e
    return TargetsHeader.from_dict(data, str(path))


def read_index(root: str | os.PathLike) -> list[Entry]:
    """Every clip listed in ``root/index*.jsonl`` (a key listed twice counts once, last wins),
    in key order, each checked against the collection's header
    (:meth:`TargetsHeader.check_entry`). Half-written lines (an interrupted append) are ignored;
    rerunning ``teach`` lists their clips again."""
    header = read_header(root)
    entries: dict[str, Entry] = {}
    for path in sorted(Path(root).glob("index*.jsonl")):
        for n, entry in _read_index_file(path):
            entries[entry.key] = header.check_entry(entry, f"{path}:{n}")
    return [entries[k] for k in sorted(entries)]


def _read_index_file(path: Path) -> Iterator[tuple[int, Entry]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise TargetsError(f"{path}: cannot read the index: {e}") from e
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = strict_json(line)
        except json.JSONDecodeError:
            continue  # the half line of an interrupted append
        try:
            yield n, Entry(check_key(d["key"]), _whole(d["steps"]), _whole(d["samples"]),
                           float(d["duration"]), str(d.get("source", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TargetsError(f"{path}:{n}: malformed index line: {e}") from e
        except TargetsError as e:
            raise TargetsError(f"{path}:{n}: {e}") from None


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def read_clip_entry(root: str | os.PathLike, key: str) -> Entry:
    """The index entry of a written clip, from its safetensors header (to repair an index)."""
    from safetensors import safe_open

    path, _ = clip_paths(root, key)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
        d = strict_json(meta["clip"])
        return Entry(d["key"], int(d["steps"]), int(d["samples"]), float(d["duration"]),
                     str(d.get("source", "")))
    except Exception as e:
        raise TargetsError(f"{path}: not a readable clip targets file: {e}") from e


def read_clip_probs(root: str | os.PathLike, key: str, teachers: Iterable[str], *,
                    header: TargetsHeader | None = None,
                    steps: int | None = None) -> dict[str, np.ndarray]:
    """``{teacher: (steps, classes) float32}`` of clip ``key``; with ``header`` every array is
    checked (:func:`check_probs`: classes, finite, rows summing to 1), with ``steps`` its rows."""
    from safetensors.numpy import load_file

    path, _ = clip_paths(root, key)
    try:
        arrays = load_file(str(path))
    except Exception as e:
        raise TargetsError(f"{path}: cannot read clip targets: {e}") from e
    out = {}
    for name in teachers:
        if f"probs.{name}" not in arrays:
            raise TargetsError(f"{path}: no targets for teacher {name!r}")
        p = arrays[f"probs.{name}"]
        if header is not None:
            p = check_probs(p, header.teacher(name), str(path))
        if steps is not None and p.shape[0] != steps:
            raise TargetsError(f"{path}: {name} targets have {p.shape[0]} steps, the index "
                               f"says {steps}")
        out[name] = p.astype(np.float32, copy=False)
    return out


def read_clip_audio(root: str | os.PathLike, key: str, start: int = 0,
                    frames: int = -1) -> np.ndarray:
    """``(samples,)`` float32 of clip ``key``'s audio from sample ``start`` (``frames``: -1 all)."""
    import soundfile as sf

    _, path = clip_paths(root, key)
    try:
        data, _ = sf.read(os.fsencode(path), start=start, frames=frames, dtype="float32",
                          always_2d=False)
    except Exception as e:
        raise TargetsError(f"{path}: cannot read clip audio: {e}") from e
    return np.asarray(data, dtype=np.float32).reshape(-1)
