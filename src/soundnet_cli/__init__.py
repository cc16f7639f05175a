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


def _lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` (a submodule,
    relative to ``package``) on first use of ``name``: a package's public face without
    importing torch or any other heavy module before a name is used."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

_EXPORTS = {
    "load": "api",
    "Network": "api",
    "tag_files": "api",
    "TaggedFiles": "api",
    "TagResults": "tagging.table",
    "load_audio": "audio",
    "audio_info": "audio",
    "SAMPLE_RATE": "audio",
    "SoundNet": "model",
    "SoundNetConfig": "model",
    "make_config": "model",
    "load_model": "weights.registry",
    "resolve_weights": "weights.registry",
    "list_networks": "weights.registry",
    "download_network": "weights.registry",
    "import_network": "weights.convert",
    "save_checkpoint": "weights.checkpoint",
    "load_checkpoint": "weights.checkpoint",
    "iter_activations": "runtime.batch",
    "RunOptions": "runtime.options",
    "extract_files": "extract",
    "stream_activations": "runtime.stream",
    "stream_to_npy": "runtime.stream",
    "load_dataset": "datasets",
    "cv_splits": "datasets",
    "SvmProtocol": "svm.protocol",
    "extract_features": "svm.features",
    "fit_svm": "svm.fit",
    "cross_validate": "svm.fit",
    "SvmModel": "svm.model",
    "resolve_device": "device",
    "SoundNetError": "errors",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__ = _lazy_exports(__name__, _EXPORTS)
