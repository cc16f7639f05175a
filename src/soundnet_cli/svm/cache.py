"""An on-disk cache of per-clip layer activations, so refitting an SVM never reruns the network.

Layout under the cache root (default ``<weights_dir()>/features``)::

    <fingerprint>/<layer>-x<input scale>-<length policy>/
        key.json              the full :class:`FeatureKey`, for people and for checks
        <entry>.npy           one clip: (frames, channels) float32

``<entry>`` is a SHA-256 of the clip's resolved path, size and modification time, so an edited or
replaced file misses the cache instead of returning stale activations. Each entry is written to a
temporary file and renamed, so an interrupted run leaves only complete entries and a rerun resumes.
Entries are plain ``.npy`` arrays read with ``allow_pickle=False``: the cache never executes code.
An entry is used only if it is exactly what the network would compute: float32 ``(frames,
channels)`` with the layer's channel count, at least one frame (exactly the looped length's
frames under the paper protocol) and every value finite; anything else is a miss, recomputed and
overwritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..files.fsutil import atomic_path, atomic_write_text

#: Bumped when the meaning of a cached array changes; old entries are then ignored.
CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureKey:
    """Everything that decides a clip's activations besides the audio itself.

    Attributes
    ----------
    fingerprint
        :func:`~soundnet_cli.weights.checkpoint.weights_fingerprint` of the network.
    layer
        Public layer name.
    input_scale
        Factor applied to [-1, 1] audio before the first layer.
    loop_samples
        Clips are looped (tiled circularly) and cut to exactly this many samples (the paper's
        ESC-50 protocol: 10 s); ``None``: clips are used as they are.
    min_samples
        With ``loop_samples`` ``None``: shorter clips are tiled up to this many samples.
    """

    fingerprint: str
    layer: str
    input_scale: float
    loop_samples: int | None
    min_samples: int

    @property
    def policy(self) -> str:
        """Short name of the length policy, used in the directory name."""
        if self.loop_samples is not None:
            return f"loop{self.loop_samples}"
        return f"min{self.min_samples}"

    def directory(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.fingerprint / f"{self.layer}-x{self.input_scale:g}-{self.policy}"


def default_cache_dir() -> Path:
    """``<user cache>/features`` (see :func:`~soundnet_cli.weights.registry.weights_dir`)."""
    from ..weights.registry import weights_dir

    return weights_dir() / "features"


class FeatureCache:
    """Per-clip activations for one :class:`FeatureKey`.

    Parameters
    ----------
    root
        Cache root directory (created on first write).
    key
        Which network, layer, input scale and length policy the entries belong to.
    """

    def __init__(self, root: str | os.PathLike, key: FeatureKey, *,
                 channels: int | None = None, frames: int | None = None) -> None:
        self.key = key
        self.directory = key.directory(root)
        self.channels = channels  # expected channel count (None: not checked)
        self.frames = frames  # expected frame count (None: any, at least one)
        self._key_written = False

    def entry(self, path: str | os.PathLike) -> Path:
        """Cache file for audio file ``path`` (depends on its resolved path, size and mtime)."""
        p = Path(path).resolve()
        st = p.stat()
        ident = f"{CACHE_VERSION}\0{p}\0{st.st_size}\0{st.st_mtime_ns}"
        return self.directory / (hashlib.sha256(ident.encode()).hexdigest()[:40] + ".npy")

    def get(self, path: str | os.PathLike) -> np.ndarray | None:
        """The cached ``(frames, channels)`` activations of ``path``, or ``None``.

        A missing audio file, a missing entry, an unreadable entry and one that is not a finite
        float32 array of the expected shape all count as a miss (recomputed and overwritten).
        """
        from ..errors import WeightsError
        from ..weights.formats.safeload import read_array

        try:
            entry = self.entry(path)
            if not entry.is_file():
                return None
            with open(entry, "rb") as f:
                array = read_array(f, os.fstat(f.fileno()).st_size)
        except (OSError, ValueError, WeightsError):
            return None
        if array.ndim != 2 or array.dtype != np.float32 or array.shape[0] < 1:
            return None
        if self.channels is not None and array.shape[1] != self.channels:
            return None
        if self.frames is not None and array.shape[0] != self.frames:
            return None
        if not np.isfinite(array).all():
            return None
        return array

    def put(self, path: str | os.PathLike, activations: np.ndarray) -> None:
        """Store ``activations`` ``(frames, channels)`` for ``path`` atomically."""
        if not self._key_written:
            self.directory.mkdir(parents=True, exist_ok=True)
            key_file = self.directory / "key.json"
            if not key_file.is_file():
                atomic_write_text(key_file, json.dumps(
                    {"cache_version": CACHE_VERSION, **asdict(self.key)}, indent=2,
                    sort_keys=True))
            self._key_written = True
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(activations, dtype=np.float32), allow_pickle=False)
        with atomic_path(self.entry(path)) as tmp:
            tmp.write_bytes(buf.getvalue())
