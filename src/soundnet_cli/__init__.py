"""soundnet-cli: SoundNet (Aytar, Vondrick, Torralba, NIPS 2016) as a tool and a library.

The public API is re-exported here lazily (importing the package does not import torch)::

    import soundnet_cli
    net = soundnet_cli.load()                   # the embedded default network (docs/api.md)
    emb, t = net.embed(audio, sr=44_100)        # (frames, channels) pool5, (frames,) seconds
    tags = net.tag("clip.wav").to_pandas()      # the rows of `soundnet tag --csv`
    soundnet_cli.tag_files(["a.wav"], out="tags/")   # what `soundnet tag --out tags/` writes

``soundnet_cli.hear`` is the HEAR benchmark API; lower levels (``load_model``, ``load_audio``,
``iter_activations``, ...) stay importable from here too.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

from ._version import __version__


def _lazy_exports(package: str, exports: Mapping[str, str]
                  ) -> tuple[Callable[[str], Any], list[str]]:
    """A package's public face without importing torch or any other heavy module up front.

    ``exports`` maps a submodule (relative to ``package``) to the names it gives, separated by
    spaces. Returns the module ``__getattr__`` that imports a name's submodule on its first use,
    and ``__all__``.
    """
    where = {name: module for module, names in exports.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f".{where[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, list(where)


_EXPORTS = {
    "api": "load Network tag_files",
    "tagging.folder": "TaggedFiles",
    "tagging.table": "TagResults",
    "audio": "load_audio audio_info SAMPLE_RATE",
    "model": "SoundNet SoundNetConfig make_config",
    "weights.registry": "load_model resolve_weights list_networks download_network",
    "weights.convert": "import_network",
    "weights.checkpoint": "save_checkpoint load_checkpoint",
    "runtime.batch": "iter_activations",
    "runtime.options": "RunOptions",
    "runtime.run": "start_run",
    "extract": "extract_files",
    "runtime.stream": "stream_activations stream_to_npy",
    "datasets": "load_dataset cv_splits",
    "svm.protocol": "SvmProtocol",
    "svm.features": "extract_features",
    "svm.fit": "fit_svm cross_validate",
    "svm.model": "SvmModel",
    "device": "resolve_device",
    "errors": "SoundNetError",
}

__getattr__, _names = _lazy_exports(__name__, _EXPORTS)
__all__ = ["__version__", *_names]
