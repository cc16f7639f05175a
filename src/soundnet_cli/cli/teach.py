"""``soundnet teach``: label videos with visual teacher networks (stage 1 of distillation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    DeviceOpt,
    FilesFromOpt,
    QuietOpt,
    RecursiveOpt,
    ShardOpt,
    WorkersOpt,
    check_workers,
    choose_shard,
    err,
    make_progress,
    out,
    report_failures,
    user_errors,
    warn,
)


def teach(
    out_dir: Annotated[Path, typer.Option(
        "--out", "-o", help="Targets directory (created; rerunning resumes).",
        show_default=False)],
    videos: Annotated[Optional[list[Path]], typer.Argument(
        help="Video files and/or directories.", show_default=False)] = None,
    teacher: Annotated[Optional[list[str]], typer.Option(
        "--teacher", "-t", help="Teacher network, repeatable: efficientnet-lite0, "
        "torchvision:MODEL, or a TorchScript teacher spec .json; NAME=SPEC renames it.",
        show_default=False)] = None,
    precomputed: Annotated[Optional[Path], typer.Option(
        help="Import precomputed teacher probabilities (a spec .json) instead of running "
        "teachers.", show_default=False)] = None,
    list_file: Annotated[Optional[Path], typer.Option(
        "--list", help="Text file with one video path per line (relative to the file).",
        show_default=False)] = None,
    frame_every: Annotated[float, typer.Option(
        help="Seconds per time step: one frame and one target per step.")] = 5.0,
    max_seconds: Annotated[float, typer.Option(
        help="Use at most the first this many seconds of each video (0: all).")] = 20.0,
    min_partial_step: Annotated[float, typer.Option(
        help="Keep a final partial step holding at least this fraction of a step.")] = 0.5,
    recursive: RecursiveOpt = False,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-b", min=1, help="Frames per teacher forward pass.")] = 64,
    workers: WorkersOpt = 2,
    shard: ShardOpt = None,
    files_from: FilesFromOpt = None,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Label videos with visual teachers: targets for `soundnet distill`, resumable.

    Each video's soundtrack and one teacher probability vector per time step (one frame each) are stored for `soundnet distill`.

    Videos without audio or frames, undecodable files and videos shorter than one step are reported and skipped (exit code 1 at the end); finished videos are skipped on a rerun.
    """
    with user_errors():
        _run(**locals())


def _run(out_dir, videos, teacher, precomputed, list_file, frame_every, max_seconds,
         min_partial_step, recursive, batch_size, workers, shard, files_from, device,
         quiet) -> None:
    from ..distill.teach import TeachConfig, import_precomputed
    from ..distill.teach import teach as run_teach

    if bool(teacher) == bool(precomputed):
        raise typer.BadParameter("give --teacher (one or more) or --precomputed SPEC.json")
    if precomputed and (videos or list_file):
        raise typer.BadParameter("--precomputed reads its own rows list; give no VIDEOS/--list")
    if precomputed and files_from:
        raise typer.BadParameter("--precomputed reads its own rows list; give no --files-from")
    part = choose_shard(shard)
    check_workers(workers, quiet)
    cfg = TeachConfig(step_seconds=frame_every, max_seconds=max_seconds,
                      min_partial_step=min_partial_step, batch_frames=batch_size,
                      workers=workers,
                      shard=(part.index, part.count) if part is not None else None)
    progress = make_progress(quiet)
    problems: list[tuple[Path, str]] = []

    def on_video(o) -> None:
        progress.advance(task)
        for w in o.warnings:
            warn(w, quiet)

    if precomputed:
        with progress:
            task = progress.add_task("importing", total=None, audio="", rate="")
            summary = import_precomputed(precomputed, out_dir, cfg, on_video=on_video)
    else:
        teachers = _teachers(teacher)
        paths, roots, problems = _inputs(videos or [], list_file, recursive, files_from)
        from ..device import resolve_device
        from ..shards.partition import describe, device_for_rank

        if part is not None and not quiet:
            err.print(describe(part, len(paths[part.index::part.count]), len(paths)),
                      highlight=False, soft_wrap=True)
        dev = resolve_device(device_for_rank(device))
        with progress:
            task = progress.add_task("teaching", total=len(paths), audio="", rate="")
            summary = run_teach(paths, teachers, out_dir, cfg, roots=roots, device=dev,
                                on_video=on_video)
    failures = [(str(p), message) for p, message in problems] + summary.failures
    out.print(f"{out_dir}: {summary.done} video(s) labelled, {summary.exists} already done, "
              f"{len(failures)} skipped", highlight=False)
    raise typer.Exit(report_failures(failures, quiet))


def _inputs(videos: list[Path], list_file: Path | None, recursive: bool,
            files_from: str | None = None
            ) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """Video paths, the directories their clip keys are relative to, and the inputs that were
    missing or unusable (``(path, message)``)."""
    from ..distill.video import find_video_files
    from ..errors import VideoError

    items: list[Path] = list(videos)
    roots = [v for v in videos if v.is_dir()]
    if list_file is not None:
        try:
            lines = list_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise VideoError(f"{list_file}: cannot read: {e}") from e
        base = list_file.parent
        items += [p if p.is_absolute() else base / p
                  for p in (Path(line.strip()).expanduser() for line in lines if line.strip())]
        roots.append(base)
    if files_from is not None:
        from ..shards.partition import read_files_from

        items += read_files_from(files_from)
    if not items:
        raise typer.BadParameter("give VIDEOS (files or directories), --list FILE or "
                                 "--files-from LIST")
    files, problems = find_video_files(items, recursive=recursive)
    if not files:
        raise VideoError("no video files found" + (f" ({problems[0][1]})" if problems else ""))
    return files, roots, problems


def _teachers(specs: list[str]):
    from ..distill.teachers import check_teachers, load_teacher

    teachers = [load_teacher(s) for s in specs]
    check_teachers(teachers)
    return teachers
