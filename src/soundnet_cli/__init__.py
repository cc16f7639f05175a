"""soundnet-cli: SoundNet (Aytar, Vondrick, Torralba, NIPS 2016) as a tool and a library.

The public API is re-exported here lazily (importing the package does not import torch)::

    from soundnet_cli import load_model, load_audio
    model = load_model()                 # the embedded default network
    wave = load_audio("clip.wav")        # (samples,) float32 at 22,050 Hz
"""

from __future__ import annotations

from typing import Any

from ._moved import install as _install_moved
from ._version import __version__

_install_moved()  # old module paths of the 0.2.0 restructure, for one release

_EXPORTS = {
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
    "tag_files": "tagging.scoring",
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
