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

from typing import Any

from ._moved import install as _install_moved
from ._version import __version__

_install_moved()  # old module paths of the 0.2.0 restructure, for one release

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
    "Protocol": "svm.protocol",
    "extract_features": "svm.features",
    "fit_svm": "svm.fit",
    "cross_validate": "svm.fit",
    "SvmModel": "svm.model",
    "resolve_device": "runtime.device",
    "SoundNetError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'soundnet_cli' has no attribute {name!r}")
