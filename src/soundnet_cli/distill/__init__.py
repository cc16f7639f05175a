"""Student–teacher training, both stages, where docs/distill.md's reader looks for them.

- Stage 1, ``soundnet teach``: :mod:`.video` (frames and audio from videos), :mod:`.teachers`
  (visual networks that label frames), :mod:`.teach` (running them), :mod:`.targets` (the
  resumable, streamable targets collection they write).
- Stage 2, ``soundnet distill``: :mod:`.student` (the sound network learns the teachers'
  per-step distributions, on :mod:`soundnet_cli.training.loop`).
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "TeachConfig": "teach",
    "TeachSummary": "teach",
    "teach": "teach",
    "import_precomputed": "teach",
    "DistillConfig": "student",
    "distill": "student",
    "evaluate_targets": "student",
}

__all__ = list(_EXPORTS)
__getattr__ = _lazy_exports(__name__, _EXPORTS)
