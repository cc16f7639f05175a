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
    "teach": "TeachConfig TeachSummary teach import_precomputed",
    "student": "DistillConfig distill evaluate_targets",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
