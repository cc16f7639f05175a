"""What every command shares: option types, consoles, progress, error reporting, exit codes
(worker and thread planning lives in :mod:`soundnet_cli.runtime.options`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, NoReturn, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape

#: Results go to stdout; progress and diagnostics to stderr (so `--json | jq` works).
out = Console(soft_wrap=True)
err = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Exit statuses after Ctrl-C (SIGINT) and SIGTERM, as a shell reports a process they killed.
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, systemd, Slurm), handled exactly like Ctrl-C: every
    ``finally`` runs (manifest written, decoding processes stopped, temporary files removed)."""


def handle_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread. A second SIGTERM during the
    clean-up kills at once (the default action); what that leaves behind, the next run removes."""
    import signal

    def _terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated()

    signal.signal(signal.SIGTERM, _terminate)

WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="Checkpoint path or name of an imported network "
                 "(default: the embedded network).", show_default=False),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", "-d", help="auto, cpu, cuda, cuda:N or mps.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")]
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into sub-directories of DIR inputs.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Files per forward pass.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-j", min=0, show_default="auto",
    help="Decoding processes (0: decode in the main process; default: half the cores, at least 2, "
    "at most 8).")]
InputsArg = Annotated[
    # readable=False: an unreadable file is that file's failure (reported, the rest go on),
    # not a usage error that stops the whole batch.
    list[Path], typer.Argument(help="Audio files and/or directories.", show_default=False,
                               readable=False)
]

#: Positional inputs of the commands that also take --files-from (then they may be omitted).
OptionalInputsArg = Annotated[
    Optional[list[Path]], typer.Argument(
        help="Audio files and/or directories (or none, with --files-from).", show_default=False,
        readable=False)
]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N", show_default=False,
    help="Process only shard I of N (0-based): every N-th input of the sorted input list from "
    "the I-th, so N processes or machines share one run and any shard can be rerun alone. "
    "Without it, SLURM job arrays (SLURM_ARRAY_TASK_ID/COUNT) and torchrun (RANK/WORLD_SIZE) "
    "choose the shard; --shard wins over both.")]
FilesFromOpt = Annotated[Optional[str], typer.Option(
    "--files-from", metavar="LIST", show_default=False,
    help="Inputs from LIST, one path per line ('-': standard input; relative paths are "
    "relative to the current directory), after any FILES given. With it, DIRS are not "
    "searched: they are the roots that outputs mirror the tree below (a listed file under "
    "DIR gets the output it gets when DIR is searched), so `DIR --files-from OUT/rerun.txt` "
    "redoes just those files.")]

# Options of the training commands (train, distill); each command gives its own default.
EpochsOpt = Annotated[int, typer.Option(min=1, help="Passes over the training clips.")]
TrainBatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1,
                                            help="Clips per optimisation step.")]
WidthOpt = Annotated[float, typer.Option(hidden=True, help="Channel width multiplier.")]
RunDirOpt = Annotated[Path, typer.Option(help="Where state, metrics and per-epoch checkpoints go.")]
HalfOpt = Annotated[bool, typer.Option(help="Store the final checkpoint in float16.")]
ResumeOpt = Annotated[bool, typer.Option(
    help="Continue the run in --run-dir exactly, with the options stored in RUN_DIR/run.json "
    "(other options may only change the device, workers and output file).")]
RestartOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Start the run in --run-dir again, deleting the files an earlier "
    "run wrote there.")]


def gather_inputs(inputs: Optional[list[Path]], files_from: Optional[str]
                  ) -> tuple[list[Path], list[Path]]:
    """``(inputs to search, roots)``: the positional inputs and their directories, or, with
    ``--files-from``, the positional files followed by the listed paths, the positional
    directories being only the roots that outputs mirror. A usage error when there is no input."""
    from ..shards.partition import read_files_from

    items = list(inputs or [])
    roots = [p for p in items if p.is_dir()]
    if files_from is not None:
        items = [p for p in items if not p.is_dir()] + read_files_from(files_from)
    elif not items:
        raise typer.BadParameter("give FILES/DIRS or --files-from LIST", param_hint="INPUTS")
    return items, roots


def choose_shard(option: Optional[str]) -> Any:
    """The run's :class:`~soundnet_cli.shards.partition.Shard`: ``--shard`` when given, else the
    SLURM or torchrun environment, else ``None`` (raises ``UsageError`` for bad values)."""
    from ..shards.partition import parse_shard, resolve_shard

    return resolve_shard(parse_shard(option) if option is not None else None)


def notes(quiet: bool) -> Callable[[str], None] | None:
    """A function printing a line to stderr as it is (``None`` with ``quiet``)."""
    if quiet:
        return None
    return lambda text: err.print(text, highlight=False, soft_wrap=True)


def doc(name: str = "") -> str:
    """Path of the reference page ``docs/<name>`` as installed (for help texts).

    Wheels carry ``docs/`` inside the package (``soundnet_cli/docs``); a source checkout or an
    editable install reads the repository's ``docs/``. Cheap: no import, one ``stat``.
    """
    package = Path(__file__).resolve().parents[1]
    folder = package / "docs"
    if not folder.is_dir():
        folder = package.parents[1] / "docs"
    return str(folder / name) if name else str(folder)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``message`` to stderr (unwrapped, so paths stay whole) and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True,
              soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(interrupted: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn the library's exceptions into a message and an exit code (2 for bad options).

    ``interrupted`` gives the message printed after Ctrl-C (what to type to continue).
    """
    from ..errors import DeviceError, LayerError, SoundNetError, UsageError

    try:
        yield
    except (LayerError, DeviceError, UsageError) as e:
        fail(str(e), EXIT_USAGE)
    except SoundNetError as e:
        fail(str(e), EXIT_FAILED)
    except OSError as e:
        # The environment stopped the work (a read-only or full file system, a folder removed
        # under the run) somewhere no closer handler names it: still one line, never a traceback.
        where = f"{e.filename}: " if e.filename else ""
        fail(f"{where}{e.strerror or e}", EXIT_FAILED)
    except KeyboardInterrupt as e:
        message = interrupted() if interrupted else \
            "interrupted; finished outputs are kept, a rerun resumes"
        if isinstance(e, Terminated):
            message = f"terminated (SIGTERM); {message}"
        err.print(message, highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED) \
            from None


def make_progress(quiet: bool, fields: Sequence[str] = ("audio", "rate")):
    """A Rich progress display on stderr (disabled with ``quiet``): description, bar, done/total,
    then a text column per task field in ``fields``, elapsed and remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        *(TextColumn(f"{{task.fields[{name}]}}") for name in fields),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, disable=quiet, transient=False,
    )


def report_failures(failures: list[tuple[str, str]], quiet: bool = False) -> int:
    """List failed inputs on stderr; return the exit code for the run."""
    if not failures:
        return EXIT_OK
    err.print(f"[bold red]{len(failures)} input(s) failed:[/]")
    for _, message in failures:
        err.print(f"  {message}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_FAILED


def check_workers(workers: int | None, quiet: bool) -> None:
    """One warning when ``--workers`` asks for more processes than there are CPUs."""
    from ..runtime import options

    cpus = options.available_cores()
    if workers is not None and workers > cpus:
        warn(f"--workers {workers}: more decoding processes than this machine's {cpus} CPUs; "
             f"they share them (--workers {cpus} decodes as fast with less memory)", quiet)


def warn(message: str, quiet: bool) -> None:
    if not quiet:
        err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


class RunWarnings:
    """Per-input warnings of a run, on stderr: every one, except that of the messages containing
    ``routine`` (tagging's note that a short clip was looped, one per 5-s clip) only the first
    ``shown`` appear, and :meth:`summary` says how many more there were (each input's record
    keeps its own note)."""

    def __init__(self, quiet: bool, routine: str, shown: int = 3) -> None:
        self.quiet, self.routine, self.shown, self.looped = quiet, routine, shown, 0

    def __call__(self, message: str) -> None:
        if self.routine in message:
            self.looped += 1
            if self.looped > self.shown:
                return
        warn(message, self.quiet)

    def summary(self) -> None:
        if self.looped > self.shown:
            warn(f"{self.looped - self.shown} more input(s) were shorter than tagging needs and "
                 f"were looped likewise ({self.looped} in all; each record notes it)", self.quiet)


class AudioProgress:
    """Progress for multi-file work on stderr: files done, audio hours, rate (x real time), ETA,
    and, inside a long (streamed) file, the seconds of its audio done so far.

    Use as a context manager; call :meth:`advance` with each finished file's duration in seconds
    and pass :meth:`audio` as ``RunOptions.on_audio``. The files bar is shown for more than one
    file; a long file's bar whenever one streams (so one 3-hour file shows how far it got).
    Nothing is shown with ``quiet``, and nothing at all is printed until a bar is.
    """

    def __init__(self, description: str, total_files: int, quiet: bool = False) -> None:
        import time

        self._clock = time.perf_counter
        self._start = self._clock()
        self.audio_seconds = 0.0
        self.quiet = quiet
        self.progress = make_progress(quiet)
        self.task = self.progress.add_task(description, total=total_files, audio="", rate="",
                                           visible=total_files > 1)
        self._started = False
        self._file: tuple[Path, Any] | None = None  # the long file being streamed, its bar

    def _show(self) -> None:
        if not self._started and not self.quiet:
            self.progress.start()
            self._started = True

    def __enter__(self) -> "AudioProgress":
        if self.progress.tasks[0].visible:
            self._show()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.progress.stop()

    def audio(self, path: Path, seconds: float) -> None:
        """``seconds`` more of the long file ``path`` done (``RunOptions.on_audio``)."""
        if self.quiet:
            return
        if self._file is None or self._file[0] != path:
            self._end_file()
            total = _header_seconds(path)
            task = self.progress.add_task(f"  {path.name}", total=total, audio="", rate="")
            self._file = (path, task)
            self._show()
        task = self._file[1]
        self.progress.advance(task, seconds)
        done = self.progress.tasks[task].completed
        total = self.progress.tasks[task].total
        self.progress.update(task, audio=f"{_clock_time(done)} of {_clock_time(total)} audio"
                             if total else f"{_clock_time(done)} audio")

    def _end_file(self) -> None:
        if self._file is not None:
            self.progress.remove_task(self._file[1])
            self._file = None

    def advance(self, seconds: float) -> None:
        """One more file done, of ``seconds`` seconds of audio."""
        self._end_file()
        self.audio_seconds += max(0.0, seconds)
        elapsed = max(self._clock() - self._start, 1e-9)
        a = self.audio_seconds
        audio = f"{a / 3600:.2f} h audio" if a >= 360 else f"{a / 60:.1f} min audio"
        self.progress.update(self.task, advance=1, audio=audio,
                             rate=f"{a / elapsed:.0f}x real time")


def _header_seconds(path: Path) -> float | None:
    """A file's duration from its header, for a progress bar (``None`` if unreadable)."""
    from ..audio import audio_info
    from ..errors import SoundNetError

    try:
        return audio_info(path).duration or None
    except SoundNetError:
        return None


def _clock_time(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03`` for a number of seconds."""
    s = int(seconds or 0)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
