"""Where networks come from: the checkpoint format, the registry, downloads and conversion.

- :mod:`.registry`: names and paths -> checkpoints (the embedded network, the user cache, the
  authors' networks), :func:`~.registry.load_model`; torch-free until a network is loaded.
- :mod:`.checkpoint`: the project's format (safetensors + JSON config + provenance + format
  version + migrations; never pickle) and the weights fingerprint.
- :mod:`.download`: resumable, SHA-256-checked downloads.
- :mod:`.convert`: other projects' files -> checked, built, saved networks.
- :mod:`.formats`: the readers of those files (Torch7, the TF port's ``.npy``, state dicts) and
  the never-execute loaders they use.

The embedded network itself is data, not code: ``soundnet_cli/assets`` (``weights/`` in the
repository).

Until 0.2.0 :mod:`.registry` was the module ``soundnet_cli.weights``; its names still resolve
here for one release, with a DeprecationWarning.
"""

from __future__ import annotations

from typing import Any

_SUBMODULES = {"registry", "checkpoint", "download", "convert", "formats"}


def __getattr__(name: str) -> Any:
    # Deprecated: the names of the old soundnet_cli.weights module (moved to .registry in 0.2.0).
    if not name.startswith("__") and name not in _SUBMODULES:
        import warnings

        from . import registry

        if hasattr(registry, name):
            warnings.warn(f"soundnet_cli.weights.{name} moved to soundnet_cli.weights.registry."
                          f"{name}; import it from there", DeprecationWarning, stacklevel=2)
            return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
