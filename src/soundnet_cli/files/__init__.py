"""Files on disk, written so that nothing is lost: atomic writes, folder locks, the strict JSON
reader, and the run records that say which network and settings made an output folder.

- :mod:`.fsutil`: atomic writes (``.part`` + rename), stale-part cleanup, folder locks, mirrored
  output paths, finding input files;
- :mod:`.jsonutil`: the one strict JSON reader for files read back (no NaN, no RecursionError);
- :mod:`.runrecord`: ``OUT/extract.json`` and ``OUT/tag.json``;
- :mod:`.npyio`: ``.npy`` outputs, whole or appended as a long file streams;
- :mod:`.manifest`: ``extract``'s manifest (CSV or JSON Lines), one row per output.

Torch-free.
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "atomic_path": "fsutil",
    "atomic_write_bytes": "fsutil",
    "atomic_write_text": "fsutil",
    "locked": "fsutil",
    "find_files": "fsutil",
    "loads": "jsonutil",
    "RunRecord": "runrecord",
    "save_array": "npyio",
    "NpyStreamWriter": "npyio",
    "NpySink": "npyio",
    "Manifest": "manifest",
    "ExtractRecord": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
