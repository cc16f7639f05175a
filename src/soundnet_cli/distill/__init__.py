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
    "teach": "TeachConfig TeachSummary import_precomputed",
    "student": "DistillConfig distill evaluate_targets",
    "targets": "read_header read_index read_clip_probs read_clip_audio",
    "teachers": "Teacher ImageTeacher",
    "video": "find_video_files",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
