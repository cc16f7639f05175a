"""Student–teacher training, both stages, where docs/distill.md's reader looks for them.

- Stage 1, ``soundnet teach``: :mod:`.video` (frames and audio from videos), :mod:`.teachers`
  (visual networks that label frames), :mod:`.teach` (running them), :mod:`.targets` (the
  resumable, streamable targets collection they write).
- Stage 2, ``soundnet distill``: :mod:`.student` (the sound network learns the teachers'
  per-step distributions, on :mod:`soundnet_cli.training.loop`).

Until 0.2.0 :mod:`.student` was the module ``soundnet_cli.distill``; its names still resolve here
for one release, with a DeprecationWarning.
"""

from __future__ import annotations

from typing import Any

_SUBMODULES = {"student", "teach", "teachers", "targets", "video"}


def __getattr__(name: str) -> Any:
    # Deprecated: the names of the old soundnet_cli.distill module (moved to .student in 0.2.0).
    if not name.startswith("__") and name not in _SUBMODULES:
        import warnings

        from . import student

        if hasattr(student, name):
            warnings.warn(f"soundnet_cli.distill.{name} moved to soundnet_cli.distill.student."
                          f"{name}; import it from there", DeprecationWarning, stacklevel=2)
            return getattr(student, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
