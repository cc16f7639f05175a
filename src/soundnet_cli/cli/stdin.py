"""Audio from standard input for ``tag`` and ``extract``: ``cat clip.ogg | soundnet tag -``.

The input ``-`` (or ``/dev/stdin``) is copied, in blocks, to a file in a fresh temporary
directory, named after ``--stdin-name`` (default ``stdin``), and removed when the command ends.
Every decoder then reads it as it reads any file: libsndfile or PyAV recognise the format from its
bytes, hour-long pipes stream in bounded memory, and decoding processes can open it. The outputs
call it by its name: ``stdin`` in tables, JSON and CSV, ``OUT/stdin.tags.json`` or
``OUT/stdin.pool5.npy`` with ``--out``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, BinaryIO, Iterator, Optional

import typer

#: How an input names standard input.
STDIN_SPELLINGS = ("-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
DEFAULT_NAME = "stdin"

StdinNameOpt = Annotated[Optional[str], typer.Option(
    "--stdin-name", metavar="NAME", show_default=False,
    help="The name of the audio read from standard input (input '-') in the outputs; a suffix "
    "such as .m4a also tells the decoder the format [default: stdin].")]


def is_stdin(path: Path | str) -> bool:
    """Whether an input names standard input."""
    return str(path) in STDIN_SPELLINGS


class StdinNames:
    """The spooled file of standard input and the name the outputs give it."""

    def __init__(self, spooled: Path | None = None, name: str = DEFAULT_NAME) -> None:
        self.spooled, self.name = spooled, name

    def __bool__(self) -> bool:
        return self.spooled is not None

    def path(self, path: Path) -> Path:
        """``path``, or the name when it is the spooled file."""
        return Path(self.name) if self.spooled is not None and path == self.spooled else path

    def text(self, text: str) -> str:
        """``text`` with the spooled file's path replaced by the name."""
        return text.replace(str(self.spooled), self.name) if self.spooled is not None else text


#: No standard input among the inputs.
NO_STDIN = StdinNames()


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise typer.BadParameter(f"{name!r}: a file name without '/' (e.g. stdin or call.m4a)",
                                 param_hint="--stdin-name")
    return name


@contextmanager
def spooled_stdin(inputs: list[Path] | None, name: str | None,
                  stream: BinaryIO | None = None) -> Iterator[tuple[list[Path] | None, StdinNames]]:
    """``(inputs, names)`` with ``-``/``/dev/stdin`` replaced by a temporary copy of standard
    input (``stream``, default ``sys.stdin``'s bytes), removed on exit. Usage errors: standard
    input named twice, a terminal on standard input, ``--stdin-name`` without ``-``."""
    wanted = [p for p in inputs or [] if is_stdin(p)]
    if not wanted:
        if name is not None:
            raise typer.BadParameter("names the audio of standard input: give '-' as an input too",
                                     param_hint="--stdin-name")
        yield inputs, NO_STDIN
        return
    if len(wanted) > 1:
        raise typer.BadParameter("standard input can be read once: give '-' only once",
                                 param_hint="INPUTS")
    label = _check_name(name if name is not None else DEFAULT_NAME)
    source = stream if stream is not None else sys.stdin.buffer
    if _is_terminal(source):
        raise typer.BadParameter("'-' reads audio from standard input, which is a terminal: "
                                 "pipe a file in (cat clip.ogg | soundnet tag -)",
                                 param_hint="INPUTS")
    with tempfile.TemporaryDirectory(prefix="soundnet-stdin-") as tmp:
        spooled = Path(tmp) / label
        with open(spooled, "wb") as f:
            shutil.copyfileobj(source, f, 1 << 20)
        yield [spooled if is_stdin(p) else p for p in inputs or []], StdinNames(spooled, label)


def _is_terminal(stream: BinaryIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):  # a test runner's in-memory stream
        return False
