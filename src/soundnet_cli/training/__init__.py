"""Training: the shared loop and the supervised task on top of it.

- :mod:`.loop`: the Task protocol and :func:`~.loop.fit` (optimiser, schedule, validation, metrics
  log, atomic checkpoints, exact resume, seeds, DDP), shared with :mod:`soundnet_cli.distill`.
- :mod:`.supervised`: ``soundnet train`` (a labelled dataset, crops, gain, between-class mixing).

Until 0.2.0 this was the module ``soundnet_cli.training`` (now :mod:`.loop`); its names still
resolve here for one release, with a DeprecationWarning.
"""

from __future__ import annotations

from typing import Any

_SUBMODULES = {"loop", "supervised"}


def __getattr__(name: str) -> Any:
    # Deprecated: the names of the old soundnet_cli.training module (moved to .loop in 0.2.0).
    if not name.startswith("__") and name not in _SUBMODULES:
        import warnings

        from . import loop

        if hasattr(loop, name):
            warnings.warn(f"soundnet_cli.training.{name} moved to soundnet_cli.training.loop."
                          f"{name}; import it from there", DeprecationWarning, stacklevel=2)
            return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
