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
    "fsutil": "atomic_path atomic_write_bytes atomic_write_text locked find_files",
    "jsonutil": "loads",
    "runrecord": "RunRecord",
    "npyio": "save_array NpyStreamWriter NpySink",
    "manifest": "Manifest ExtractRecord read_manifest write_manifest",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
