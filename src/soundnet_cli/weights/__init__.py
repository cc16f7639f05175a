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
"""

from __future__ import annotations

from .. import _lazy_exports

_EXPORTS = {
    "registry": "load_model resolve_weights list_networks download_network read_header embedded_weights_dir",
    "checkpoint": "save_checkpoint load_checkpoint load_model_file weights_fingerprint file_sha256",
    "convert": "import_network ImportResult",
    "export": "export_network ExportResult",
}

__getattr__, __all__ = _lazy_exports(__name__, _EXPORTS)
