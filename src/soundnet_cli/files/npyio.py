"""The ``.npy`` files outputs are written as, the one place that writes them: whole arrays
(:func:`save_array`), arrays whose length is not known in advance, appended row by row
(:class:`NpyStreamWriter`), one file per layer of a streamed recording (:class:`NpySink`), and a
written file's shape read back (:func:`npy_shape`).

Every write goes to a temporary file beside the target that is renamed over it
(:func:`.fsutil.atomic_path`): an interrupted or failed write never leaves a partial ``.npy``.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np

from .fsutil import atomic_path


def save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save(path) would append ".npy" to tmp
            np.save(_Writes(f), array, allow_pickle=False)


class _Writes:
    """Only a file's ``write``: NumPy then writes in buffered pieces through Python, whose
    OSError carries the system's reason (``No space left on device``), instead of ``tofile``,
    whose error on a full disk says only how many bytes were written."""

    def __init__(self, f: Any) -> None:
        self.write = f.write


def npy_shape(path: Path) -> tuple[int, ...]:
    """The shape of a ``.npy`` file, reading only its header (memory-mapped, no data read)."""
    return tuple(int(n) for n in np.load(path, mmap_mode="r", allow_pickle=False).shape)


#: Bytes of the .npy header :class:`NpyStreamWriter` writes: fixed, so that the final shape can
#: be written over the provisional one in place (a multiple of 64, as the format recommends).
_NPY_HEADER_BYTES = 128


class NpyStreamWriter:
    """Append ``(frames, channels)`` rows to a ``.npy`` file whose length is not known in advance.

    The file is written under a temporary name beside ``path`` and renamed over it by
    :meth:`close` (:func:`.fsutil.atomic_path`), after its header has been rewritten with the
    final shape; an error or interruption leaves no file at ``path``. Use as a context manager::

        with NpyStreamWriter("out.npy", channels=256) as w:
            for rows in ...:
                w.append(rows)
    """

    def __init__(self, path: str | os.PathLike, channels: int, dtype: np.dtype | str = "<f4") -> None:
        self.path = Path(path)
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._file: BinaryIO | None = None

    def __enter__(self) -> "NpyStreamWriter":
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(open(tmp, "wb"))
        self._file.write(self._header(0))
        return self

    @property
    def _out(self) -> BinaryIO:
        assert self._file is not None, "NpyStreamWriter is used as a context manager"
        return self._file

    def append(self, rows: np.ndarray) -> None:
        """Append ``(n, channels)`` rows (converted to the writer's dtype)."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.ndim != 2 or rows.shape[1] != self.channels:
            raise ValueError(f"expected (n, {self.channels}) rows, got {rows.shape}")
        self._out.write(rows.data)
        self.rows += rows.shape[0]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._out.seek(0)
                self._out.write(self._header(self.rows))
                self._out.flush()
        finally:
            # Closes the file, then renames it into place (or removes it after an error).
            self._stack.__exit__(exc_type, exc, tb)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.channels)

    def _header(self, rows: int) -> bytes:
        text = "{'descr': %r, 'fortran_order': False, 'shape': (%d, %d), }" % (
            np.lib.format.dtype_to_descr(self.dtype), rows, self.channels)
        room = _NPY_HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
        text = text.ljust(room - 1) + "\n"
        assert len(text) == room, "npy header overflow"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + text.encode("latin1")


class NpySink:
    """Each layer of a streamed recording appended to its own ``.npy`` as its frames arrive
    (``{layer: path}``, ``{layer: channels}``): the sink a long file streams into
    (:func:`soundnet_cli.runtime.batch.stream_into`). A context manager: leaving it without an
    exception renames every file into place; after an error none of them is left behind.

    :meth:`add` takes pieces with ``layer`` and ``data`` (``(frames, channels)``, in order), such
    as :class:`soundnet_cli.runtime.stream.LayerChunk`.
    """

    def __init__(self, targets: Mapping[str, str | os.PathLike], channels: Mapping[str, int]
                 ) -> None:
        self.targets = {name: Path(p) for name, p in targets.items()}
        self.channels = {name: int(channels[name]) for name in self.targets}
        self.writers: dict[str, NpyStreamWriter] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "NpySink":
        with contextlib.ExitStack() as stack:  # a writer that cannot start closes the others
            self.writers = {n: stack.enter_context(NpyStreamWriter(p, self.channels[n]))
                            for n, p in self.targets.items()}
            self._stack = stack.pop_all()
        return self

    def add(self, chunk: Any) -> None:
        """Append ``chunk.data`` to ``chunk.layer``'s file."""
        self.writers[chunk.layer].append(chunk.data)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stack.__exit__(exc_type, exc, tb)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        """``{layer: (frames, channels)}`` written so far."""
        return {n: w.shape for n, w in self.writers.items()}
