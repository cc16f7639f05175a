"""Sharding: which part of an input list one process of a many-process run takes (torch-free).

One meaning everywhere (``tag``, ``extract``, ``fit-svm``'s feature pass, ``teach``): the inputs
are sorted by :func:`input_key` (the path as given, as a string: it depends neither on file
sizes, nor on which outputs exist, nor on the machine) and shard ``I`` of ``N`` takes every
``N``-th of them from the ``I``-th (``sorted_inputs[I::N]``, 0-based). Any shard can therefore be
rerun alone and picks the same files, and the ``N`` shards together cover every input exactly once.

Where the shard comes from (:func:`resolve_shard`): an explicit ``--shard I/N`` wins; otherwise the
environment of the engine that started the process (:func:`shard_from_env`):

- a SLURM job array: ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``, minus
  ``SLURM_ARRAY_TASK_MIN`` (so ``--array=1-8`` gives shards 0..7 of 8); an array with a step
  other than 1 (``--array=0-15:2``) or with gaps (``--array=1,4,7``) is refused;
- torchrun / ``torch.distributed``: ``RANK`` and ``WORLD_SIZE`` (``LOCAL_RANK`` picks the CUDA
  device, :func:`device_for_rank`);
- both (a SLURM array of torchrun jobs): shard ``array_index * WORLD_SIZE + RANK`` of
  ``array_count * WORLD_SIZE``.

A total of one shard from the environment (``WORLD_SIZE=1``, ``--array=0-0``) is an ordinary,
unsharded run. Malformed values raise :class:`~soundnet_cli.errors.UsageError` naming the variable.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Callable, Iterable, Mapping, Sequence, TypeVar

from ..errors import UsageError

T = TypeVar("T")

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
              "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP")
TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based). ``source`` says where it came from (``--shard``,
    ``SLURM_ARRAY_TASK_ID=3 ...``), for messages and run records; it is not part of equality."""

    index: int
    count: int
    source: str = field(default="--shard", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or isinstance(self.count, bool) \
                or not isinstance(self.index, int) or not isinstance(self.count, int):
            raise UsageError(f"shard {self.index!r}/{self.count!r}: need whole numbers")
        if self.count < 1:
            raise UsageError(f"shard {self.index}/{self.count}: need 0 <= I < N, with N >= 1")
        if not 0 <= self.index < self.count:
            raise UsageError(f"shard {self.index}/{self.count}: need 0 <= I < N (I counts from "
                             f"0: the last of {self.count} shards is "
                             f"{self.count - 1}/{self.count})")

    @property
    def label(self) -> str:
        """``3/8``, as ``--shard`` takes it."""
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """``shard-3-of-8``: the part of per-shard file names (``tags.shard-3-of-8.jsonl``)."""
        return f"shard-{self.index}-of-{self.count}"

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count, "source": self.source}

    def __str__(self) -> str:
        return f"shard {self.label}" + ("" if self.source == "--shard" else f" ({self.source})")


def parse_shard(text: str, source: str = "--shard") -> Shard:
    """``"I/N"`` (0-based ``I``) as a :class:`Shard`; :class:`UsageError` for anything else
    (``"4/4"``, ``"a/b"``, ``"0/0"``, ``"3"``)."""
    parts = str(text).strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise UsageError(f"{source} {text!r}: expected I/N with 0 <= I < N, e.g. 0/4 for the "
                         "first of four shards") from None
    try:
        return Shard(index, count, source)
    except UsageError as e:
        raise UsageError(f"{source} {text!r}: {str(e).split(': ', 1)[1]}") from None


def _int_var(environ: Mapping[str, str], name: str) -> int:
    value = environ[name].strip()
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment variable {name}={environ[name]!r} is not a whole number; "
                         "unset it or pass --shard I/N") from None


def _slurm(environ: Mapping[str, str]) -> tuple[int, int] | None:
    if "SLURM_ARRAY_TASK_ID" not in environ:
        return None
    if "SLURM_ARRAY_TASK_COUNT" not in environ:
        raise UsageError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (a SLURM "
                         "older than 17.11?); pass --shard I/N explicitly")
    task, count = _int_var(environ, "SLURM_ARRAY_TASK_ID"), _int_var(environ,
                                                                     "SLURM_ARRAY_TASK_COUNT")
    low = _int_var(environ, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in environ else 0
    step = _int_var(environ, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in environ else 1
    if step != 1:
        raise UsageError(f"SLURM_ARRAY_TASK_STEP={step}: only job arrays with step 1 are "
                         "supported (e.g. --array=0-15, not --array=0-15:2); pass --shard I/N "
                         "to choose the shard yourself")
    if "SLURM_ARRAY_TASK_MAX" in environ:
        high = _int_var(environ, "SLURM_ARRAY_TASK_MAX")
        if high - low + 1 != count:
            raise UsageError(f"SLURM job array {low}-{high} has {count} task(s), not "
                             f"{high - low + 1}: only contiguous arrays (--array=A-B) are "
                             "supported; pass --shard I/N to choose the shard yourself")
    if count < 1 or not 0 <= task - low < count:
        raise UsageError(f"SLURM_ARRAY_TASK_ID={task} is outside the array (SLURM_ARRAY_TASK_MIN="
                         f"{low}, SLURM_ARRAY_TASK_COUNT={count})")
    return task - low, count


def _torch(environ: Mapping[str, str]) -> tuple[int, int] | None:
    has_rank, has_world = "RANK" in environ, "WORLD_SIZE" in environ
    if not has_rank and not has_world:
        return None
    if has_rank != has_world:
        missing = "WORLD_SIZE" if has_rank else "RANK"
        raise UsageError(f"{'RANK' if has_rank else 'WORLD_SIZE'} is set but {missing} is not; "
                         "torchrun sets both (unset the other, or pass --shard I/N)")
    rank, world = _int_var(environ, "RANK"), _int_var(environ, "WORLD_SIZE")
    if world < 1 or not 0 <= rank < world:
        raise UsageError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world


def shard_from_env(environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard that the environment's engine assigns (see the module docs), or ``None``
    when no engine variable is set or they describe a single shard."""
    environ = os.environ if environ is None else environ
    slurm, dist = _slurm(environ), _torch(environ)
    if slurm is None and dist is None:
        return None
    a, a_count = slurm or (0, 1)
    r, world = dist or (0, 1)
    count = a_count * world
    if count == 1:
        return None
    parts = []
    if slurm is not None:
        parts.append(f"SLURM_ARRAY_TASK_ID={environ['SLURM_ARRAY_TASK_ID']} of "
                     f"SLURM_ARRAY_TASK_COUNT={a_count}")
    if dist is not None:
        parts.append(f"RANK={r} of WORLD_SIZE={world}")
    return Shard(a * world + r, count, ", ".join(parts))


def resolve_shard(explicit: Shard | None, environ: Mapping[str, str] | None = None
                  ) -> Shard | None:
    """``explicit`` (``--shard``) when given, whatever the environment says; else
    :func:`shard_from_env`."""
    return explicit if explicit is not None else shard_from_env(environ)


def device_for_rank(device: str, environ: Mapping[str, str] | None = None) -> str:
    """``cuda:LOCAL_RANK`` for ``--device auto`` under torchrun when CUDA is present (one device
    per local rank); ``device`` unchanged otherwise. Imports torch only when ``LOCAL_RANK`` is set
    and ``device`` is ``auto``."""
    environ = os.environ if environ is None else environ
    if device.strip().lower() != "auto" or "LOCAL_RANK" not in environ:
        return device
    local = _int_var(environ, "LOCAL_RANK")
    import torch

    if not torch.cuda.is_available():
        return device
    count = torch.cuda.device_count()
    if not 0 <= local < count:
        raise UsageError(f"LOCAL_RANK={local}, but only {count} CUDA device(s) are visible; "
                         "start at most that many processes per node (--nproc-per-node)")
    return f"cuda:{local}"


def input_key(path: str | os.PathLike) -> str:
    """The sort key of an input: its path as given, as a string (``Path`` spelling, so ``./a``
    and ``a`` agree). The same key orders the rows of every combined table and manifest."""
    return str(path) if isinstance(path, PurePath) else str(Path(path))  # a Path: no 2nd parse


def select(paths: Iterable[T], shard: Shard | None,
           key: Callable[[T], str] = input_key) -> list[T]:  # type: ignore[assignment]
    """Shard ``shard``'s share of ``paths``: ``sorted(paths, key=key)[index::count]``; all of
    them, sorted, for ``None``. Deterministic: the same list gives the same share anywhere."""
    ordered = sorted(paths, key=key)
    return ordered if shard is None else ordered[shard.index::shard.count]


def select_inputs(files: Sequence[Path], problems: Sequence[tuple[Path, str]],
                  shard: Shard | None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Shard a discovered input list *and* its problems (missing files, unreadable folders)
    together, so each problem is reported by exactly one shard. Both come back sorted
    (:func:`plan_shard` on inputs already checked)."""
    _, share, share_problems = plan_shard(files, problems, shard)
    return share, share_problems


def plan_shard(items: Sequence[Path], problems: Sequence[tuple[Path, str]],
               shard: Shard | None) -> tuple[list[Path], list[Path], list[tuple[Path, str]]]:
    """Partition a run's inputs *before* looking at them: ``(run_inputs, share, share_problems)``.

    ``items``: every input of the run as given (listed paths, files found in directories);
    ``problems``: ``(path, message)`` found while listing directories. Nothing here touches the
    file system: duplicates are dropped by their absolute, normalised spelling
    (:func:`os.path.abspath`, first one kept), then items and problems together are sorted by
    :func:`input_key` and shard ``shard`` takes its :func:`select` share. ``run_inputs`` are the
    unique items in the order given (for output-collision checks across shards), ``share`` this
    shard's items, which the caller then checks (stat, resolve) alone, ``share_problems`` the
    listing problems this shard reports. Every shard computes the same partition; ``None``:
    everything, sorted.
    """
    seen: set[str] = set()
    unique: list[Path] = []
    for p in items:
        spelled = os.path.abspath(p)
        if spelled not in seen:
            seen.add(spelled)
            unique.append(p)
    entries: list[tuple[Path, str | None]] = [(p, None) for p in unique]
    entries += [(p, m) for p, m in problems]
    mine = select(entries, shard, key=lambda item: input_key(item[0]))
    return (unique, [p for p, m in mine if m is None],
            [(p, m) for p, m in mine if m is not None])


def read_files_from(source: str | os.PathLike, stdin: IO[str] | None = None) -> list[Path]:
    """The paths listed in ``source``, one per line (``-``: standard input).

    Blank lines are skipped and surrounding white space removed; relative paths are relative to
    the current directory (as on a command line), ``~`` is expanded. A missing or unreadable list
    raises :class:`UsageError`.
    """
    name = str(source)
    # Names are decoded as the OS decodes file names (UTF-8, other bytes as surrogate escapes),
    # so a list `find` wrote holding a name that is not UTF-8 names that very file.
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            raw = getattr(stream, "buffer", None)
            text = os.fsdecode(raw.read()) if raw is not None else stream.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--files-from -: cannot read standard input: {e}") from e
    else:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            raise UsageError(f"--files-from {name}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"--files-from {name}: is a directory, not a list of paths") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--files-from {name}: cannot read: "
                             f"{getattr(e, 'strerror', None) or e}") from None
    if "\x00" in text:  # no path holds a NUL byte: a binary file, not a list
        raise UsageError(f"--files-from {name}: cannot read: it holds NUL bytes, so it is not a "
                         "list of paths (one per line)")
    return [Path(line.strip()).expanduser() for line in text.splitlines() if line.strip()]


def describe(shard: Shard | None, taken: int, total: int) -> str:
    """``shard 1/4 (RANK=1 of WORLD_SIZE=4): 250 of 1000 inputs`` (or ``1000 inputs``)."""
    if shard is None:
        return f"{total} input(s)"
    return f"{shard}: {taken} of {total} input(s)"
