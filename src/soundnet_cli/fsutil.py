"""File-system helpers: atomic writes and output paths, the one place that decides them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Collection, Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    An interrupted or failing write leaves no partial file at ``path`` (the temporary file is
    removed). Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def mirrored_output(
    source: Path, roots: list[Path], out_dir: Path, suffix: str
) -> Path:
    """Where the output for ``source`` goes: its path relative to the input root it came from,
    under ``out_dir``, with ``suffix`` replacing the audio suffix (``a/b.wav`` -> ``out/a/b`` +
    suffix). Files given directly land in ``out_dir`` by name."""
    src = source.resolve()
    for root in roots:
        r = root.resolve()
        if r.is_dir() and (src == r or r in src.parents):
            rel = src.relative_to(r)
            return out_dir / rel.parent / (rel.stem + suffix)
    return out_dir / (source.stem + suffix)


def find_files(
    inputs: Iterable[str | os.PathLike], suffixes: Collection[str], *, recursive: bool = False
) -> tuple[list[Path], list[Path]]:
    """Expand files and directories into file paths.

    Files named explicitly are kept whatever their suffix; directories contribute files whose
    lower-cased suffix is in ``suffixes``, sorted, descending into sub-directories only with
    ``recursive``. Returns ``(files, missing)``, where ``missing`` lists inputs that do not exist.
    Duplicates are dropped, order kept.
    """
    files: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(q for q in p.glob(pattern)
                           if q.is_file() and q.suffix.lower() in suffixes)
        elif p.exists():
            found = [p]
        else:
            missing.append(p)
            continue
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                files.append(q)
    return files, missing
