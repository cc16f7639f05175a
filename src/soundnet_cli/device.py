"""Resolve ``--device`` strings into :class:`torch.device` objects, the one place that does so."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import DeviceError

if TYPE_CHECKING:  # torch is imported lazily so that `soundnet --help` stays fast
    import torch

_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> "torch.device":
    """Turn ``auto|cpu|cuda[:N]|mps`` into a device, refusing devices that are not there.

    ``auto`` picks CUDA when available, then MPS, else CPU. An explicit ``cuda`` or ``mps`` with no
    such device is an error, never a silent CPU fall-back.
    """
    import torch

    spec = spec.strip().lower()
    if not _PATTERN.match(spec):
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec} asked for CUDA, but no CUDA device is available")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return torch.device("cuda", index)
    if spec == "mps" and not _mps_available():
        raise DeviceError("--device mps asked for Apple MPS, which is not available here")
    return torch.device(spec)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
