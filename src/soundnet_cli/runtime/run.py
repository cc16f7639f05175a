"""Starting a run over audio files, the same way for ``soundnet tag``, ``soundnet extract`` and
library callers: :func:`start_run`.

A run starts in this order: the inputs are listed (this shard's share of them, when the run is
split, :mod:`soundnet_cli.shards.partition`), the device is chosen (one GPU per torchrun rank),
decoding processes start on the files (:func:`early_decoder`: before torch is imported, so the
network finds work waiting once it is loaded, ~1.5 s later), the network is loaded and the run's
scheduling is planned (:meth:`.options.RunOptions.plan`). The result, a :class:`FileRun`, holds
all of it; nothing here prints, and what goes wrong is raised as a
:class:`~soundnet_cli.errors.SoundNetError` (the CLI picks the exit code).

Torch-free until :func:`start_run` loads the network (after decoding has started).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..shards.partition import Shard, describe, device_for_rank, input_key, plan_shard
from .options import (
    BATCH_SIZE,
    CHUNK_SECONDS,
    DECODE_NICE,
    LONG_FILE_SECONDS,
    RunOptions,
    auto_workers,
)

if TYPE_CHECKING:
    from ..model import SoundNet
    from .decode import DecodePool


@dataclass(frozen=True)
class RunInputs:
    """The inputs of one process of a run.

    Attributes
    ----------
    inputs
        What was searched: files and directories as given.
    roots
        The directories outputs mirror the tree below.
    files
        This process's audio files, in the order found (sorted per directory).
    problems
        ``(path, message)`` of this process's inputs that cannot be used (missing files, not
        regular files, directories that cannot be listed).
    total
        Inputs of the whole run, every shard's.
    everyone
        The whole run's inputs (for output-collision checks across shards; unchecked with a
        shard, else ``files``).
    shard
        Which shard of the run this process is (``None``: the whole run).
    """

    inputs: list[Path]
    roots: list[Path]
    files: list[Path]
    problems: list[tuple[Path, str]]
    total: int
    everyone: list[Path]
    shard: Shard | None

    def failures(self, files_from: str | None = None) -> list[tuple[str, str]]:
        """``(path, message)`` to report before any work: the problems, or when nothing at all
        was found, why (``path`` empty). ``files_from``: the list the inputs were read from."""
        failures = [(str(p), message) for p, message in self.problems]
        if self.everyone or self.problems:
            return failures
        if not self.inputs and files_from is not None:
            return [("", f"--files-from {files_from}: the list is empty")]
        return [("", "no audio files found in " + ", ".join(map(str, self.inputs)))]

    @property
    def note(self) -> str:
        """``shard 1/4: 250 of 1000 input(s)`` (what a shard takes of the run)."""
        return describe(self.shard, len(self.files) + len(self.problems), self.total)


@dataclass(frozen=True)
class FileRun(RunInputs):
    """A started run: its inputs (see :class:`RunInputs`), the loaded network and its scheduling.

    Attributes
    ----------
    network
        The eval-mode network on its device.
    options
        The run's scheduling; ``options.decoder`` holds the decoding processes already started
        (consumed by the first pass over the files).
    """

    network: "SoundNet" = field(repr=False)
    options: RunOptions

    @property
    def decoder(self) -> "DecodePool | None":
        """The decoding processes started before the network loaded (``None``: none)."""
        return self.options.decoder


def find_inputs(inputs: Sequence[str | os.PathLike], *,
                roots: Sequence[str | os.PathLike] | None = None, recursive: bool = False,
                shard: Shard | None = None) -> RunInputs:
    """This process's audio files among ``inputs`` (files and directories).

    Without a shard every input is checked (:func:`~soundnet_cli.audio.find_audio_files`), in the
    order given. With one, the run's list is partitioned first, by path strings alone
    (:func:`~soundnet_cli.shards.partition.plan_shard`): directories among ``roots`` are listed
    (every shard needs the listing) but only this shard's share is then checked file by file, so
    a shard's cost does not grow with other shards' files beyond the string work.

    ``roots`` (default: the directories among ``inputs``) are the directories outputs mirror the
    tree below; with a shard, only those are listed.
    """
    from ..audio import find_audio_files
    from ..files.fsutil import AUDIO_SUFFIXES, scan_dirs

    items = [Path(p) for p in inputs]
    dirs = [p for p in items if p.is_dir()] if roots is None else [Path(r) for r in roots]
    if shard is None:
        found, problems = find_audio_files(items, recursive=recursive)
        return RunInputs(items, dirs, found, problems, len(found) + len(problems), found,
                         None)
    listed: list[Path] = []
    listing: list[tuple[Path, str]] = []
    searched = set(dirs)
    for p in items:
        if p in searched:
            found, trouble = scan_dirs([p], AUDIO_SUFFIXES, recursive=recursive)
            listed += found
            listing += trouble
        else:
            listed.append(p)
    everyone, share, share_problems = plan_shard(listed, listing, shard)
    files, problems = find_audio_files(share, recursive=recursive)
    problems = sorted([*share_problems, *problems], key=lambda item: input_key(item[0]))
    return RunInputs(items, dirs, files, problems, len(everyone) + len(listing), everyone,
                     shard)


def start_run(inputs: Sequence[str | os.PathLike], *,
              roots: Sequence[str | os.PathLike] | None = None, recursive: bool = False,
              shard: Shard | None = None, weights: str | os.PathLike | None = None,
              device: str = "auto", network: "SoundNet | None" = None,
              workers: int | None = None, batch_size: int = BATCH_SIZE,
              long_seconds: float = LONG_FILE_SECONDS, chunk_seconds: float = CHUNK_SECONDS,
              todo: Callable[[RunInputs], list[Path]] | None = None,
              say: Callable[[str], None] | None = None,
              option: str = "start_run") -> FileRun:
    """Start a run over audio files: list the inputs, start decoding, load the network, plan.

    Parameters
    ----------
    inputs, roots, recursive, shard
        Which files (see :func:`find_inputs`).
    weights, device
        The network to load (:func:`~soundnet_cli.weights.registry.load_model`) and where it runs
        (``auto`` under torchrun: the rank's own GPU); ``network``: one already loaded instead.
    workers, batch_size, long_seconds, chunk_seconds
        Scheduling (:meth:`.options.RunOptions.plan`; ``workers=None`` plans them).
    todo
        Which of the files will need decoding (default: all), e.g. those without outputs yet:
        only they are decoded early.
    say
        Called with the line that says which share of the run a shard takes (with a shard).
    option
        How messages name ``weights`` (the CLI passes ``--weights``).

    Raises
    ------
    SoundNetError
        No such network, an unusable device (:class:`~soundnet_cli.errors.DeviceError`), a bad
        ``LOCAL_RANK``.
    """
    found = find_inputs(inputs, roots=roots, recursive=recursive, shard=shard)
    if shard is not None and say is not None:
        say(found.note)
    if network is None:
        device = device_for_rank(device)
        pending = found.files if todo is None else todo(found)
        decoder = early_decoder(weights, device, pending, workers, long_seconds)
        from ..weights.registry import load_model

        network = load_model(weights, device, option=option)
    else:
        decoder = None
    options = RunOptions.plan(next(network.parameters()).device, len(found.files),
                              workers=workers, decoder=decoder, batch_size=batch_size,
                              long_seconds=long_seconds, chunk_seconds=chunk_seconds)
    return FileRun(**vars(found), network=network, options=options)


def early_decoder(weights: str | os.PathLike | None, device: str, files: Sequence[Path],
                  requested: int | None, long_seconds: float | None,
                  max_bytes: int | None = None) -> "DecodePool | None":
    """Start decoding ``files`` now, before torch is imported (see :mod:`.decode`), or return
    ``None`` when there is nothing to gain (one file, ``--workers 0``) or the checkpoint's sample
    rate cannot be read without torch (the normal path then reports any problem).

    ``long_seconds`` and ``max_bytes`` (default :data:`.options.MAX_QUEUED_BYTES`) are those of
    the :class:`.options.RunOptions` the run will use; pass the pool to it as ``decoder``."""
    from ..errors import SoundNetError
    from ..weights.registry import read_header, resolve_weights
    from .decode import DecodePool

    if len(files) < 2:
        return None
    try:
        rate = int(read_header(resolve_weights(weights))["config"]["sample_rate"])
    except (SoundNetError, KeyError, TypeError, ValueError):
        return None
    workers = auto_workers(device, len(files), requested)
    if workers < 1:
        return None
    return DecodePool(list(files), rate, workers=workers, long_seconds=long_seconds,
                      nice=DECODE_NICE, **({} if max_bytes is None else {"max_bytes": max_bytes}))


__all__ = ["FileRun", "RunInputs", "early_decoder", "find_inputs", "start_run"]
