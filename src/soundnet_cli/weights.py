"""Finding networks: the embedded default, names in the local cache, and paths.

``--weights`` accepts a checkpoint path, or the name of a network in the cache directory
(``$SOUNDNET_HOME``, else ``~/.cache/soundnet``) such as ``soundnet8`` after ``soundnet weights
import``; no value means the embedded default that ships inside the package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import WeightsError

if TYPE_CHECKING:
    import torch

    from .model import SoundNet

#: File name of the embedded default network inside the package's ``weights`` directory.
DEFAULT_WEIGHTS_FILE = "soundnet8-esc50.safetensors"
CHECKPOINT_SUFFIX = ".safetensors"


def weights_dir(override: str | os.PathLike | None = None) -> Path:
    """The user cache for downloaded/imported networks: ``override``, ``$SOUNDNET_HOME`` or
    ``$XDG_CACHE_HOME/soundnet`` (``~/.cache/soundnet``)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("SOUNDNET_HOME"):
        return Path(os.environ["SOUNDNET_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "soundnet"


def embedded_weights_dir() -> Path:
    """The ``weights/`` directory: inside the installed package, or at the repository root when
    running from a source checkout (editable installs do not copy it)."""
    from importlib import resources

    try:
        packaged = Path(str(resources.files("soundnet_cli") / "weights"))
        if packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - unusual importers
        pass
    return Path(__file__).resolve().parents[2] / "weights"


def default_weights_path() -> Path:
    """Path of the embedded default network (may not exist in a bare source checkout)."""
    return embedded_weights_dir() / DEFAULT_WEIGHTS_FILE


def resolve_weights(spec: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """Turn a ``--weights`` value into a checkpoint path.

    ``None`` or ``"default"``: the embedded network; an existing path: itself; otherwise a name
    looked up as ``<cache>/<name>.safetensors``. Raises :class:`WeightsError` saying what to do.
    """
    if spec is None or str(spec) == "default":
        path = default_weights_path()
        if not path.is_file():
            raise WeightsError(
                "no embedded default network in this installation "
                f"(expected {path}); pass --weights PATH or --weights NAME of an imported network"
            )
        return path
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(f"--weights {spec}: is a directory, not a checkpoint file")
    name = str(spec)
    cached = weights_dir(cache_dir) / f"{name}{CHECKPOINT_SUFFIX}"
    if cached.is_file():
        return cached
    raise WeightsError(
        f"--weights {spec}: no such file, and no network named {name!r} in {cached.parent} "
        "(see `soundnet weights list`)"
    )


def load_model(
    spec: str | os.PathLike | None = None,
    device: "str | torch.device" = "cpu",
    *,
    cache_dir: str | os.PathLike | None = None,
) -> "SoundNet":
    """Load a network for inference: resolve ``spec`` (see :func:`resolve_weights`), build it in
    eval mode and move it to ``device`` (a :class:`torch.device` or a ``--device`` string)."""
    import torch

    from .checkpoint import load_model_file
    from .device import resolve_device

    model = load_model_file(resolve_weights(spec, cache_dir))
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev)
