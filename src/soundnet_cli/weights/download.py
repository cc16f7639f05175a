"""Fetching files into the cache: resumable, SHA-256 checked, trust on first use.

:func:`fetch` hands the bookkeeping to `pooch <https://www.fatiando.org/pooch>`_ (``retrieve``:
skip a file that is present with the right hash, download to a temporary file, compare the hash,
move into place, delete on mismatch) and plugs in :class:`ResumableDownloader`, which streams
with ``requests`` and keeps an interrupted transfer in ``<name>.partial`` so that the next run
asks the server only for the missing bytes (an HTTP ``Range`` request).

Checksums: a file with a published SHA-256 is checked against it. The original SoundNet release
publishes none, so the hash of the first complete download is recorded in
``<downloads>/sha256.json`` and every later fetch must match it (trust on first use): a changed
or corrupted upstream file is refused instead of silently replacing the one you had.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from ..errors import DownloadError
from ..files.fsutil import atomic_write_text
from ..files.jsonutil import loads as strict_json

#: ``progress(file name, bytes done, total bytes or None)``, called as a transfer advances.
ProgressFn = Callable[[str, int, "int | None"], None]
HASHES_FILE = "sha256.json"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web: its URL and, when published, its SHA-256 (hex)."""

    url: str
    sha256: str | None = None

    @property
    def name(self) -> str:
        """The local file name: the last part of the URL's path."""
        return Path(urlparse(self.url).path).name

    def at_mirror(self, mirror: str | None) -> str:
        """This file's URL, or ``<mirror>/<name>`` when a mirror is given."""
        return f"{mirror.rstrip('/')}/{self.name}" if mirror else self.url


# ---------------------------------------------------------------------------------------------
# Recorded hashes (trust on first use)


def load_hashes(directory: Path) -> dict[str, dict[str, str]]:
    """``{file name: {"sha256", "url", "recorded"}}`` from ``<directory>/sha256.json``."""
    path = directory / HASHES_FILE
    if not path.is_file():
        return {}
    try:
        data = strict_json(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DownloadError(f"{path}: unreadable checksum record ({e}); fix or delete it") from e
    return data if isinstance(data, dict) else {}


def record_hash(directory: Path, name: str, sha256: str, url: str) -> None:
    records = load_hashes(directory)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    records[name] = {"sha256": sha256, "url": url, "recorded": now}
    _write_hashes(directory, records)


def forget_hash(directory: Path, name: str) -> None:
    records = load_hashes(directory)
    if records.pop(name, None) is not None:
        _write_hashes(directory, records)


def _write_hashes(directory: Path, records: dict[str, dict[str, str]]) -> None:
    atomic_write_text(directory / HASHES_FILE, json.dumps(records, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# The downloader pooch calls


class ResumableDownloader:
    """A pooch downloader that resumes ``<directory>/<name>.partial`` with a Range request.

    Called by pooch as ``downloader(url, output_file, pooch)``; writes the complete file to
    ``output_file`` and leaves its SHA-256 in :attr:`sha256`. Raises :class:`DownloadError` for a
    transfer that ends early (the partial file is kept for the next run).

    A resume sends ``If-Range`` with the ETag (or Last-Modified date) the interrupted response
    carried, kept in ``<name>.partial.validator``: if the file changed upstream meanwhile the
    server sends it whole instead of splicing two versions together. A partial file without a
    validator is not resumed but started over.
    """

    def __init__(self, name: str, directory: Path, progress: ProgressFn | None = None,
                 timeout: float = 30.0) -> None:
        self.name = name
        self.partial = directory / f"{name}.partial"
        self.validator = directory / f"{name}.partial.validator"
        self.progress = progress
        self.timeout = timeout
        self.sha256: str | None = None

    def __call__(self, url: str, output_file: str, pooch: Any = None,
                 check_only: bool = False) -> None:
        import requests

        from .._version import __version__

        start = self.partial.stat().st_size if self.partial.exists() else 0
        validator = self.validator.read_text().strip() if self.validator.exists() else ""
        headers = {"User-Agent": f"soundnet-cli/{__version__}"}
        if start and validator:
            headers["Range"] = f"bytes={start}-"
            headers["If-Range"] = validator
        else:
            start = 0
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if start and r.status_code == 416:  # nothing left to send: the partial may be whole
                if _content_range_total(r.headers.get("Content-Range")) != start:
                    self.partial.unlink()
                    return self(url, output_file, pooch)
                digest = _file_hash(self.partial)
            else:
                r.raise_for_status()
                resumed = start and r.status_code == 206 and \
                    (r.headers.get("Content-Range") or "").startswith(f"bytes {start}-")
                if not resumed:
                    self._keep_validator(r.headers)
                digest = self._stream(r, start if resumed else 0)
        os.replace(self.partial, output_file)
        self.validator.unlink(missing_ok=True)
        self.sha256 = digest.hexdigest()

    def _keep_validator(self, headers: Any) -> None:
        """Remember what identifies this version of the file, for ``If-Range`` on a resume."""
        etag = headers.get("ETag") or ""
        value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        if value:
            self.validator.write_text(value)
        else:
            self.validator.unlink(missing_ok=True)

    def _stream(self, r: Any, start: int) -> "hashlib._Hash":
        length = r.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        digest = _file_hash(self.partial) if start else hashlib.sha256()
        done = start
        self._report(done, total)
        problem = ""
        with open(self.partial, "ab" if start else "wb") as f:
            try:
                for chunk in _chunks(r):
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    self._report(done, total)
            except _network_errors() as e:
                problem = f" ({type(e).__name__})"
        if problem or (total is not None and done != total):
            raise DownloadError(f"{self.name}: transfer ended after {done} of {total or '?'} "
                                f"bytes{problem}; kept them in {self.partial}, rerun to resume")
        return digest

    def _report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(self.name, done, total)


def _chunks(r: Any) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` (urllib3 2) hands over every byte received before a
    connection breaks, so a resumed download loses nothing; ``iter_content`` may drop the last,
    incomplete chunk, which a resume then fetches again."""
    read1 = getattr(r.raw, "read1", None)
    if read1 is None:
        yield from r.iter_content(_CHUNK)
        return
    while chunk := read1(_CHUNK, decode_content=True):
        yield chunk


def _network_errors() -> tuple[type[BaseException], ...]:
    import requests
    import urllib3

    return (urllib3.exceptions.HTTPError, requests.exceptions.RequestException)


def _content_range_total(value: str | None) -> int | None:
    """``bytes */1234`` or ``bytes 0-9/1234`` -> 1234."""
    if value and "/" in value:
        tail = value.rsplit("/", 1)[1].strip()
        return int(tail) if tail.isdigit() else None
    return None


def _file_hash(path: Path) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every download at INFO on stderr; our caller reports progress itself."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


# ---------------------------------------------------------------------------------------------
# The one call


def fetch(remote: RemoteFile, directory: str | os.PathLike, *, url: str | None = None,
          progress: ProgressFn | None = None, reset_hash: bool = False,
          timeout: float = 30.0) -> tuple[Path, str]:
    """Make sure ``directory/<remote.name>`` holds the file, checked; return ``(path, sha256)``.

    Parameters
    ----------
    url
        Where to fetch from instead of ``remote.url`` (a mirror); the checksum is the same.
    reset_hash
        Forget a recorded (trust-on-first-use) checksum and the local copy first, to accept a
        file that changed upstream on purpose.

    Raises
    ------
    DownloadError
        Unreachable host, HTTP error, interrupted transfer (resumable), or checksum mismatch.
    """
    import pooch
    import requests

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name, url = remote.name, url or remote.url
    if reset_hash:
        forget_hash(directory, name)
        for stale in (name, f"{name}.partial", f"{name}.partial.validator"):
            (directory / stale).unlink(missing_ok=True)
    recorded = load_hashes(directory).get(name, {}).get("sha256")
    expected = remote.sha256 or recorded
    downloader = ResumableDownloader(name, directory, progress, timeout)
    try:
        with _quiet_pooch():
            path = Path(pooch.retrieve(url, known_hash=f"sha256:{expected}" if expected else None,
                                       fname=name, path=directory, downloader=downloader))
    except DownloadError:
        raise
    except ValueError as e:  # pooch: the hash of what arrived is not the expected one
        raise DownloadError(
            f"{name}: checksum mismatch: expected sha256 {expected}, got "
            f"{downloader.sha256 or 'another'} from {url}. The file changed upstream or was "
            "corrupted on the way; nothing was kept. "
            + ("If you trust the new file, rerun with --reset-hash." if not remote.sha256 else "")
        ) from e
    except requests.exceptions.HTTPError as e:
        answer = (f"{e.response.status_code} {e.response.reason}" if e.response is not None
                  else str(e))
        raise DownloadError(f"{name}: {url} answered {answer}") from e
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError) as e:
        kept = downloader.partial.stat().st_size if downloader.partial.exists() else 0
        how = f"; kept {kept} bytes in {downloader.partial}, rerun to resume" if kept else ""
        raise DownloadError(f"{name}: cannot download {url} ({type(e).__name__}){how}") from e
    except requests.exceptions.RequestException as e:
        raise DownloadError(f"{name}: download of {url} failed: {e}") from e
    except OSError as e:
        raise DownloadError(f"{name}: cannot write into {directory}: {e}") from e
    digest = downloader.sha256 or _file_hash(path).hexdigest()
    if expected is None:
        record_hash(directory, name, digest, url)
    return path, digest
