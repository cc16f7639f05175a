"""Stage 1 of student–teacher training (``soundnet teach``): label videos with visual teachers.

For every video: decode the soundtrack (mono 22,050 Hz) and one frame per time step
(:mod:`soundnet_cli.distill.video`), run every teacher on the frames, and write the clip's audio and the
teachers' per-step probabilities into a targets collection (:mod:`soundnet_cli.distill.targets`).

Videos are decoded in worker processes; frames of several videos are batched through each teacher
(``batch_frames`` per forward pass). Finished clips are skipped on a rerun, so an interrupted run
resumes; a video that cannot be used (no audio track, no frames, undecodable, shorter than one
step) is reported and skipped. ``shard=(i, n)`` processes every n-th video of the path-sorted list
from the i-th (:func:`soundnet_cli.shards.partition.select`), writing
its own index file, so several processes (or machines sharing a file system) can split a
collection.

:func:`import_precomputed` builds the same collection from probabilities computed elsewhere, in
the original authors' layout: a list with one line per time step naming the audio file of that
step's video, and per teacher a matrix with one probability row per line (``.npy``, or raw
little-endian float32 like the original's ``prob`` files).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, cast

import numpy as np
import torch

from ..audio import SAMPLE_RATE
from ..errors import SoundNetError, TargetsError
from ..files.jsonutil import loads as strict_json
from .targets import (
    INDEX_FILE,
    IndexWriter,
    TargetsHeader,
    TeacherInfo,
    clip_paths,
    init_collection,
    key_for,
    read_clip_entry,
    read_index,
    write_clip,
)
from .teachers import Teacher, check_name, check_teachers, read_labels
from .video import DecodedVideo, FrameSampling, iter_videos


@dataclass(frozen=True)
class TeachConfig:
    """How videos are cut into steps and processed (``step_seconds``: ``--frame-every``)."""

    step_seconds: float = 5.0
    max_seconds: float = 20.0
    min_partial_step: float = 0.5
    batch_frames: int = 64
    workers: int = 2
    shard: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.step_seconds <= 0:
            raise TargetsError("--frame-every must be positive")
        if self.max_seconds and self.max_seconds < self.step_seconds:
            raise TargetsError("--max-seconds must be at least one step (or 0 for whole videos)")
        if not 0 < self.min_partial_step <= 1:
            raise TargetsError("--min-partial-step must be in (0, 1]")
        if self.shard is not None:
            i, n = self.shard
            if n < 1 or not 0 <= i < n:
                raise TargetsError(f"--shard {i}/{n}: need 0 <= I < N")

    def sampling(self, max_short_side: int = 0) -> FrameSampling:
        return FrameSampling(self.step_seconds, self.max_seconds, self.min_partial_step,
                             SAMPLE_RATE, max_short_side)

    @property
    def index_name(self) -> str:
        return INDEX_FILE if self.shard is None else f"index.{self.shard[0]}-of-{self.shard[1]}.jsonl"


@dataclass
class VideoOutcome:
    """What happened to one input: ``status`` is ``done``, ``exists`` (finished earlier) or
    ``failed`` (``error`` says why)."""

    path: Path
    key: str
    status: str
    steps: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class TeachSummary:
    done: int = 0
    exists: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def count(self, outcome: VideoOutcome) -> None:
        if outcome.status == "done":
            self.done += 1
        elif outcome.status == "exists":
            self.exists += 1
        else:
            self.failures.append((str(outcome.path), outcome.error or "failed"))


def teach(
    paths: Sequence[Path],
    teachers: Sequence[Teacher],
    out_dir: str | os.PathLike,
    cfg: TeachConfig = TeachConfig(),
    *,
    roots: Sequence[str | os.PathLike] = (),
    device: torch.device | str = "cpu",
    on_video: Callable[[VideoOutcome], None] | None = None,
) -> TeachSummary:
    """Label ``paths`` with ``teachers`` into the collection ``out_dir``.

    ``roots`` are the input directories keys are made relative to (see
    :func:`targets.key_for`). Returns counts and ``(path, message)`` failures; never raises for
    a single bad video.
    """
    if not teachers:
        raise TargetsError("give at least one teacher")
    check_teachers(teachers)
    header = TargetsHeader(
        teachers=tuple(TeacherInfo(t.name, tuple(t.labels), t.describe()) for t in teachers),
        step_seconds=cfg.step_seconds, max_seconds=cfg.max_seconds,
        min_partial_step=cfg.min_partial_step, origin="teach")
    init_collection(out_dir, header)
    roots = [Path(r) for r in roots]
    for t in teachers:
        t.to(device)
    summary = TeachSummary()
    report = _reporter(summary, on_video)
    todo = _pending(paths, [Path(r) for r in roots], out_dir, cfg, report)
    short = [t.input_short_side for t in teachers]
    sampling = cfg.sampling(max(short) if all(short) else 0)
    with IndexWriter(out_dir, cfg.index_name) as index:
        batch: list[tuple[str, DecodedVideo]] = []
        for video in iter_videos([p for _, p in todo], sampling, workers=cfg.workers):
            key = todo[video.index][0]
            if video.error is not None:
                report(VideoOutcome(video.path, key, "failed", error=video.error))
                continue
            batch.append((key, video))
            if sum(v.steps for _, v in batch) >= cfg.batch_frames:
                _flush(batch, teachers, header, out_dir, index, report)
                batch = []
        _flush(batch, teachers, header, out_dir, index, report)
    return summary


def _reporter(summary: TeachSummary,
              on_video: Callable[[VideoOutcome], None] | None) -> Callable[[VideoOutcome], None]:
    def report(outcome: VideoOutcome) -> None:
        summary.count(outcome)
        if on_video:
            on_video(outcome)

    return report


def _pending(paths: Sequence[Path], roots: Sequence[Path], out_dir: str | os.PathLike,
             cfg: TeachConfig, report: Callable[[VideoOutcome], None]) -> list[tuple[str, Path]]:
    """The ``(key, path)`` pairs still to do; finished ones are reported (and indexed if an
    interrupted run wrote the clip but not its index line)."""
    from ..shards.partition import Shard, select

    chosen = list(paths)
    if cfg.shard is not None:  # the partition every command shares (shards/partition.py)
        chosen = select(chosen, Shard(*cfg.shard))
    indexed = {e.key for e in read_index(out_dir)}
    seen: dict[str, Path] = {}
    todo: list[tuple[str, Path]] = []
    with IndexWriter(out_dir, cfg.index_name) as index:
        for path in chosen:
            key = key_for(path, roots)
            if key in seen:
                report(VideoOutcome(path, key, "failed", error=f"{path}: same clip key {key!r} as "
                                    f"{seen[key]}; give the files different names"))
                continue
            seen[key] = path
            target, _ = clip_paths(out_dir, key)
            if target.is_file():
                if key not in indexed:
                    index.add(read_clip_entry(out_dir, key))
                report(VideoOutcome(path, key, "exists"))
                continue
            todo.append((key, path))
    return todo


def _flush(batch: list[tuple[str, DecodedVideo]], teachers: Sequence[Teacher],
           header: TargetsHeader, out_dir: str | os.PathLike, index: IndexWriter,
           report: Callable[[VideoOutcome], None]) -> None:
    """Run every teacher on the frames of ``batch`` (one pass per teacher) and write the clips."""
    if not batch:
        return
    probs = {t.name: t.predict_many([cast(np.ndarray, v.frames) for _, v in batch])
             for t in teachers}  # batches hold decoded videos only
    for i, (key, v) in enumerate(batch):
        try:
            entry = write_clip(out_dir, header, key, cast(np.ndarray, v.audio),
                               {n: probs[n][i] for n in probs},
                               source=str(v.path.resolve()), frame_times=v.frame_times,
                               duration=v.duration)
        except SoundNetError as e:
            report(VideoOutcome(v.path, key, "failed", error=str(e)))
            continue
        except OSError as e:
            report(VideoOutcome(v.path, key, "failed", error=f"{v.path}: cannot write: {e}"))
            continue
        index.add(entry)
        report(VideoOutcome(v.path, key, "done", entry.steps, warnings=list(v.warnings)))


# ---------------------------------------------------------------------------------------------
# Precomputed probabilities


@dataclass(frozen=True)
class PrecomputedTeacher:
    name: str
    labels: tuple[str, ...]
    probs: Path


@dataclass(frozen=True)
class PrecomputedSpec:
    """A spec JSON for :func:`import_precomputed`::

        {"step_seconds": 5,
         "rows": "frames.txt",
         "root": "audio/",                       (optional; default: the spec's directory)
         "teachers": [{"name": "objects", "labels": "categories_imagenet.txt",
                       "probs": "imagenet_prob.npy"},
                      {"name": "scenes", "labels": "categories_places2.txt",
                       "probs": "places_prob"}]}

    ``rows``: one line per time step, naming the audio file of that step's video (relative to
    ``root``); a video's steps are consecutive lines. ``probs``: ``(rows, classes)`` as ``.npy``,
    or raw little-endian float32 (any other suffix), one softmax row per line of ``rows``.
    """

    path: Path
    step_seconds: float
    rows: Path
    root: Path
    teachers: tuple[PrecomputedTeacher, ...]

    @classmethod
    def read(cls, path: str | os.PathLike) -> "PrecomputedSpec":
        path = Path(path)
        try:
            d = strict_json(path.read_text(encoding="utf-8"))
            base = path.parent
            rel = lambda v: (Path(v).expanduser() if Path(v).expanduser().is_absolute()  # noqa: E731
                             else base / v)
            teachers = tuple(PrecomputedTeacher(t["name"], read_labels(rel(t["labels"])),
                                                rel(t["probs"])) for t in d["teachers"])
            return cls(path, float(d["step_seconds"]), rel(d["rows"]), rel(d.get("root", ".")),
                       teachers)
        except SoundNetError:
            raise
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                ValueError) as e:
            raise TargetsError(f"{path}: bad precomputed-targets spec: {e}") from e


def _open_matrix(path: Path, rows: int, classes: int) -> np.ndarray:
    """A ``(rows, classes)`` read-only memory map of a ``.npy`` or raw float32 file."""
    if not path.is_file():
        raise TargetsError(f"{path}: no such probabilities file")
    try:
        if path.suffix.lower() == ".npy":
            m = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            size = path.stat().st_size
            if size != rows * classes * 4:
                raise TargetsError(f"{path}: {size} bytes, expected {rows} rows x {classes} "
                                   f"classes x 4 bytes (raw float32)")
            m = np.memmap(path, dtype="<f4", mode="r", shape=(rows, classes))
    except (OSError, ValueError) as e:
        raise TargetsError(f"{path}: cannot read probabilities: {e}") from e
    if m.shape != (rows, classes):
        raise TargetsError(f"{path}: shape {m.shape}, expected ({rows}, {classes}): one row per "
                           "line of the rows file, one column per label")
    return m


def _videos_of_rows(rows_file: Path) -> list[tuple[str, int, int]]:
    """``(audio path, first row, row count)`` per run of identical consecutive lines."""
    try:
        lines = [line.strip() for line in rows_file.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise TargetsError(f"{rows_file}: cannot read rows list: {e}") from e
    if lines and not lines[-1]:
        lines.pop()
    runs: list[tuple[str, int, int]] = []
    for i, name in enumerate(lines):
        if not name:
            raise TargetsError(f"{rows_file}:{i + 1}: empty line")
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((name, i, 1))
    return runs


def import_precomputed(
    spec_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: TeachConfig = TeachConfig(),
    *,
    on_video: Callable[[VideoOutcome], None] | None = None,
) -> TeachSummary:
    """Build a targets collection from precomputed probabilities (see :class:`PrecomputedSpec`).

    Audio files are decoded like any input (libsndfile: wav, flac, ogg, mp3, ...); the first
    ``cfg.max_seconds`` are kept with their rows. Rows that are not probability distributions
    (sum 1 +- 0.001, as the original code checks) fail their video, which is skipped.
    """
    from ..runtime.batch import iter_decoded

    spec = PrecomputedSpec.read(spec_path)
    cfg = dataclasses.replace(cfg, step_seconds=spec.step_seconds)
    runs = _videos_of_rows(spec.rows)
    total = sum(n for _, _, n in runs)
    mats = {t.name: _open_matrix(t.probs, total, len(t.labels)) for t in spec.teachers}
    header = TargetsHeader(
        teachers=tuple(TeacherInfo(t.name, t.labels, {"kind": "precomputed", "probs": t.probs.name})
                       for t in spec.teachers),
        step_seconds=spec.step_seconds, max_seconds=cfg.max_seconds,
        min_partial_step=cfg.min_partial_step, origin="precomputed")
    for t in spec.teachers:
        check_name(t.name)
    init_collection(out_dir, header)
    summary = TeachSummary()
    report = _reporter(summary, on_video)
    audio_paths = [_resolve(spec.root, name) for name, _, _ in runs]
    todo = _pending(audio_paths, [spec.root], out_dir, cfg, report)
    where = {p: i for i, p in enumerate(audio_paths)}
    max_steps = cfg.sampling().max_steps
    step_samples = cfg.sampling().step_samples
    with IndexWriter(out_dir, cfg.index_name) as index:
        for clip in iter_decoded([p for _, p in todo], SAMPLE_RATE, workers=cfg.workers):
            key, path = todo[clip.index]
            if clip.waveform is None:
                report(VideoOutcome(path, key, "failed", error=clip.error))
                continue
            _, first, count = runs[where[path]]
            steps = count if max_steps is None else min(count, max_steps)
            probs = {n: np.asarray(m[first : first + steps]) for n, m in mats.items()}
            audio = clip.waveform[: steps * step_samples]
            try:
                entry = write_clip(out_dir, header, key, audio, probs,
                                   source=str(path.resolve()),
                                   duration=audio.shape[0] / SAMPLE_RATE)
            except SoundNetError as e:
                report(VideoOutcome(path, key, "failed", error=str(e)))
                continue
            except OSError as e:
                report(VideoOutcome(path, key, "failed", error=f"{path}: cannot write: {e}"))
                continue
            index.add(entry)
            report(VideoOutcome(path, key, "done", steps, warnings=list(clip.warnings)))
    return summary


def _resolve(root: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else root / p
