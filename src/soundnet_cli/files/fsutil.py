"""File-system helpers: atomic writes, output paths, input discovery and file locks, the one
place that decides them.

Temporary files of an atomic write are named ``.<name>.pid<PID>.<random>.part`` beside the
target (a name over 200 bytes is cut and a hash of it added: :func:`part_prefix`). A process killed outright (SIGKILL, power loss) cannot remove its own; the next write of
the same target removes those whose process is gone (:func:`remove_stale_parts`), so interrupted
runs never accumulate them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Collection, Iterable, Iterator, Sequence

_PART = re.compile(r"\.pid(\d+)\.[^.]+\.part$")

#: Suffixes treated as audio when a directory is expanded (lower case): libsndfile's formats,
#: then containers FFmpeg decodes (phone recordings, videos: their first audio track).
AUDIO_SUFFIXES = frozenset(
    {
        ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
        ".au", ".snd", ".caf", ".w64", ".rf64", ".sd2", ".voc", ".wve", ".mat", ".htk",
        ".pvf", ".xi", ".sds", ".avr", ".nist", ".sph", ".ircam", ".sf", ".paf", ".mpc",
        ".m4a", ".m4b", ".aac", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".mka", ".wma",
        ".3gp", ".amr",
    }
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    An interrupted or failing write leaves no partial file at ``path`` (the temporary file is
    removed). Parent directories are created; temporary files left beside ``path`` by processes
    that no longer exist are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{part_prefix(path)}{os.getpid()}.", suffix=".part",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: Longest file-name part (in bytes) kept whole in a temporary name: with the ``.pid<PID>.``,
#: random and ``.part`` parts added, the name stays within the usual 255-byte limit.
_PART_NAME_BYTES = 200


def part_prefix(path: str | os.PathLike) -> str:
    """The start of the temporary names of atomic writes of ``path``: ``.<name>.pid``. A name
    too long to fit a temporary name (over 200 bytes) is cut and a hash of the whole name
    added, so every target still has its own prefix."""
    name = Path(path).name
    raw = os.fsencode(name)
    if len(raw) > _PART_NAME_BYTES:
        digest = hashlib.sha256(raw).hexdigest()[:16]
        name = raw[:_PART_NAME_BYTES - 17].decode("utf-8", "ignore") + "~" + digest
    return f".{name}.pid"


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of interrupted atomic writes of ``path`` whose writing process
    no longer exists (a live writer's, e.g. a concurrent run's, are kept); returns them."""
    path = Path(path)
    removed: list[Path] = []
    prefix = part_prefix(path)
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        m = _PART.search(name[len(prefix) - 5:])  # from the ".pid" on
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            (path.parent / name).unlink()
            removed.append(path.parent / name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def locked(directory: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``directory`` (created if needed) for the
    ``with`` block: read-modify-write of a file in it shared by concurrent runs (the extract
    manifest). No lock file is left behind. Where the file system does not support locks, the
    block runs unlocked."""
    import fcntl

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically. File names in it that are not UTF-8 (held
    as surrogate escapes, as Python reads them from the OS) are written as the OS's bytes."""
    atomic_write_bytes(path, text.encode("utf-8", errors="surrogateescape"))


def mirrored_output(
    source: Path, roots: list[Path], out_dir: Path, suffix: str
) -> Path:
    """Where the output for ``source`` goes: its path relative to the input root it came from,
    under ``out_dir``, with ``suffix`` replacing the audio suffix (``a/b.wav`` -> ``out/a/b`` +
    suffix). Files given directly land in ``out_dir`` by name.

    When the folder holds another audio file with the same name but another suffix (``x.mp3``
    and ``x.m4a``, as phones export), the suffix is kept: ``out/x.mp3`` + suffix and
    ``out/x.m4a`` + suffix, so neither loses its results (see :func:`same_stem_names`)."""
    src = source.resolve()
    for root in roots:
        r = root.resolve()
        if r.is_dir() and (src == r or r in src.parents):
            rel = src.relative_to(r)
            keep = rel.name in same_stem_names(src.parent)
            return out_dir / rel.parent / ((rel.name if keep else rel.stem) + suffix)
    keep = source.name in same_stem_names(source.parent)
    return out_dir / ((source.name if keep else source.stem) + suffix)


def same_stem_names(directory: Path) -> frozenset[str]:
    """Names of the audio files in ``directory`` that share their stem with another audio file
    there (``x.mp3``, ``x.m4a``). Listed once per directory and state (cached on the folder's
    modification time, so a file added later is seen); empty for a folder that cannot be read."""
    try:
        mtime = directory.stat().st_mtime_ns
    except OSError:
        return frozenset()
    return _same_stems(str(directory), mtime)


@functools.lru_cache(maxsize=1024)
def _same_stems(directory: str, mtime_ns: int) -> frozenset[str]:
    by_stem: dict[str, list[str]] = {}
    try:
        with os.scandir(directory) as it:
            for entry in it:
                suffix = os.path.splitext(entry.name)[1]
                if suffix.lower() in AUDIO_SUFFIXES and not entry.name.startswith("."):
                    by_stem.setdefault(entry.name[: -len(suffix)], []).append(entry.name)
    except OSError:
        return frozenset()
    return frozenset(n for names in by_stem.values() if len(names) > 1 for n in names)


def names_inside(out_dir: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether the path string ``path`` names something inside ``out_dir`` (``..`` resolved,
    links not followed: string work only, for checking rows read back from a file)."""
    root = os.path.abspath(out_dir)
    return os.path.abspath(path).startswith(root.rstrip(os.sep) + os.sep)


def outside_message(out_dir: Path, output: Path) -> str | None:
    """Why ``output`` (a path below ``out_dir``) would be written outside ``out_dir``: a directory
    on its way is a symbolic link leading elsewhere. ``None`` when it stays inside. Outputs are
    only written inside the output folder, so a link planted in it cannot redirect them."""
    root = out_dir.resolve()
    real = output.parent.resolve()
    if real == root or root in real.parents:
        return None
    link = next((p for p in (output.parent, *output.parent.parents) if p.is_symlink()),
                output.parent)
    return (f"{output}: would be written outside {out_dir}, since {link} is a link to "
            f"{link.resolve()}; outputs are only written inside the output folder: remove the "
            "link (or choose another output folder)")


def find_files(
    inputs: Iterable[str | os.PathLike], suffixes: Collection[str], *, recursive: bool = False
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files and directories into file paths.

    Files named explicitly are kept whatever their suffix; directories contribute regular files
    whose lower-cased suffix is in ``suffixes``, sorted, descending into sub-directories only
    with ``recursive``. Returns ``(files, problems)``: ``problems`` lists ``(path, message)`` for
    inputs that do not exist, are not regular files (a FIFO or device would block or never
    end), and directories that cannot be listed (nothing in them is silently skipped).
    Duplicates are dropped, order kept.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        try:
            mode = p.stat().st_mode
        except FileNotFoundError:
            problems.append((p, f"{p}: no such file or directory"))
            continue
        except OSError as e:
            problems.append((p, f"{p}: cannot access: {e.strerror or e}"))
            continue
        if stat.S_ISDIR(mode):
            found = _list_dir(p, suffixes, recursive, problems)
        elif stat.S_ISREG(mode):
            found = [p]
        else:
            problems.append((p, f"{p}: not a regular file ({file_kind(mode)}); skipped"))
            continue
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                files.append(q)
    return files, problems


def scan_dirs(dirs: Iterable[Path], suffixes: Collection[str], *, recursive: bool = False
              ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files :func:`find_files` finds in directories ``dirs``, listed but not checked one by
    one (no ``stat`` or ``resolve`` per file beyond what the listing gives): what every shard of
    a sharded run over directories needs, before it checks only its own share. Returns
    ``(files, problems)``, files sorted per directory; problems are directories that cannot be
    listed."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for d in dirs:
        files += _list_dir(d, suffixes, recursive, problems)
    return files, problems


def collision_candidates(run_inputs: Sequence[Path], own: Sequence[Path],
                         stems: Collection[str] = (), names: Collection[str] = ()
                         ) -> list[Path]:
    """The inputs of a whole run whose outputs could be those of ``own`` (one shard's inputs,
    already checked): ``own`` itself, and the other inputs that are regular files and whose
    file-name stem is one of ``own``'s or in ``stems`` (the stems of ``own``'s outputs, which
    differ from the input's for a link resolved under a root), or whose name is in ``names`` (an
    output that would overwrite an input). In ``run_inputs`` order (then any of ``own`` not in it).

    Outputs are mirrored paths ending in ``stem + suffix``, so two inputs can only share one when
    their stems agree; the filter is pure string work, and only the few candidates are looked at
    (``is_file``), so a shard makes no system call for the rest of a large list. Not seen: an
    alias (symbolic link) whose name differs from its target's, or output folders made of links.
    """
    mine = {str(p) for p in own}  # strings: a Path caches its str, hashing parses it again
    stems = {p.stem for p in own} | set(stems)
    wanted = set(names)
    chosen = [q for q in run_inputs
              if str(q) in mine or ((q.stem in stems or q.name in wanted) and q.is_file())]
    listed = {str(q) for q in chosen}
    return chosen + [p for p in own if str(p) not in listed]


def _list_dir(root: Path, suffixes: Collection[str], recursive: bool,
              problems: list[tuple[Path, str]]) -> list[Path]:
    """Regular files under ``root`` with a wanted suffix, sorted by path; directories that cannot
    be read are added to ``problems``. Symbolic links to directories are not followed."""
    found: list[Path] = []
    pending = [root]
    while pending:
        d = pending.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as e:
            problems.append((d, f"{d}: cannot list this directory ({e.strerror or e}); "
                             "its files were not processed"))
            continue
        for entry in entries:
            q = d / entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(q)
                elif entry.is_file() and q.suffix.lower() in suffixes:
                    found.append(q)
            except OSError:
                continue
    return sorted(found)


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a socket"``, ... for a non-regular file's ``st_mode``."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"
