"""``soundnet tag --out DIR`` as one job on a started run: claim the folder, write ``run.json``,
tag the files (skipping those done), write the combined tables, finish ``run.json``; the same
steps for the command and for :func:`soundnet_cli.tag_files`, so both write the same bytes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ..errors import OutputError
from ..runtime.options import RunOptions

if TYPE_CHECKING:
    from ..runtime.run import FileRun
    from ..shards.status import ShardStatus
    from .events import DetectOptions
    from .outputs import TagOutcome
    from .scoring import Scorer


@dataclass
class TaggedFiles:
    """What :func:`soundnet_cli.tag_files` did: counts, failures, and where the tables are.

    ``failures`` holds ``(path, message)`` of every input that failed or was missing (the CLI
    lists the same on stderr and exits 1); ``tables`` maps formats to the combined tables.
    """

    out: Path
    tagged: int
    skipped: int
    failures: list[tuple[str, str]]
    tables: dict[str, Path]

    @property
    def ok(self) -> bool:
        return not self.failures


class DirTagging:
    """``soundnet tag --out``'s steps on a started run (:func:`~soundnet_cli.runtime.run.start_run`), for
    :func:`soundnet_cli.tag_files` and the command alike: :meth:`start` claims ``out`` and writes ``run.json``
    (a shard: nothing), :meth:`tag` tags the files (skipping those done), :meth:`combine` writes
    the combined tables (a shard: its own table), :meth:`finish` completes ``run.json``.

    ``failures`` (``(path, message)``: inputs that failed before the work) gets every failure
    added, tables and ``run.json`` that cannot be written (:class:`~soundnet_cli.errors.OutputError`)
    included, so one full disk still lists every failed input. ``shown`` gives the path results
    show for an input (the CLI's standard input: its name).
    """

    def __init__(self, run: "FileRun", out: str | os.PathLike, formats: Sequence[str],
                 scorers: Sequence["Scorer"], *, top_k: int, segments: bool,
                 detect: "DetectOptions", settings: dict[str, Any],
                 failures: list[tuple[str, str]],
                 shown: Callable[[Path], Path] | None = None) -> None:
        from .outputs import TagRun, provenance

        self.run, self.out, self.formats = run, Path(out), tuple(formats)
        self.scorers, self.settings, self.failures = list(scorers), settings, failures
        self.provenance = provenance(run.network, scorers, top_k=top_k, segments=segments,
                                     detect=detect)
        self.book = TagRun(self.out, self.formats, roots=run.roots, provenance=self.provenance,
                           top_k=top_k, segments=segments, detect=detect,
                           overwrite=settings["overwrite"], shard=run.shard)
        if shown is not None:
            self.book.shown = shown
        if run.shard is not None:
            self.book.run_inputs = run.everyone
        self.tagged = self.skipped = 0
        self.tables: dict[str, Path] = {}

    def start(self) -> None:
        """Claim ``out`` (:class:`~soundnet_cli.errors.OutputError` when it holds results of other settings)
        and, without a shard, write ``run.json`` as unfinished."""
        self.book.claim()
        if self.run.shard is None:
            self._noted(lambda: self.book.write_settings(self.run.inputs, self.settings,
                                                         finished=False))

    def shard_status(self) -> "ShardStatus":
        """The status file of this shard of the run (enter it to write it)."""
        from ..shards.status import ShardStatus

        assert self.run.shard is not None
        shared = {**self.provenance, "formats": list(self.formats),
                  "roots": [str(r.resolve()) for r in self.run.roots]}
        inputs = [*self.run.files, *(Path(p) for p, _ in self.failures if p)]
        return ShardStatus(self.out, self.run.shard, "tag", shared, inputs, self.run.total)

    def tag(self, options: RunOptions) -> Iterator["TagOutcome"]:
        """Tag the run's files (done ones skipped), counting and collecting failures."""
        from .outputs import tag_to_files

        for outcome in tag_to_files(self.run.network, self.run.files, self.book,
                                    scorers=self.scorers, options=options):
            self.skipped += outcome.skipped
            if not outcome.ok:
                self.failures.append((str(outcome.path), outcome.error or "failed"))
            if outcome.result is not None:
                self.tagged += outcome.ok
            yield outcome

    def combine(self) -> dict[str, Path]:
        """Write the combined tables (a shard: its own table); ``{format: path}``."""
        self.tables = self._noted(lambda: self.book.combine(self.run.files)) or {}
        return self.tables

    def finish(self) -> TaggedFiles:
        """Complete ``run.json`` (without a shard) and say what was done."""
        if self.run.shard is None:
            self._noted(lambda: self.book.write_settings(
                self.run.inputs, self.settings, finished=True, tagged=self.tagged,
                skipped=self.skipped, failed=len(self.failures)))
        return TaggedFiles(self.out, self.tagged, self.skipped, self.failures, self.tables)

    def _noted(self, action: Callable[[], Any]) -> Any:
        """``action()``, or ``None`` with its :class:`OutputError` added to the failures."""
        try:
            return action()
        except OutputError as e:
            self.failures.append(("", str(e)))
            return None
