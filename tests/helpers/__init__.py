"""Helpers shared by the tests (imported as ``from helpers import ...``; fixtures live in
``tests/conftest.py``): the tiny random network, generated audio, the repository's paths.

Sub-modules: :mod:`.avworld` (generated videos and colour teachers), :mod:`.reviewrun` (finished
tag runs to review), :mod:`.torch7_writer` (Torch7 files written from scratch), :mod:`.browser`
(a headless Chromium for page tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from soundnet_cli.distill.targets import (
    TargetsHeader,
    TeacherInfo,
    init_collection,
    write_clip,
)
from soundnet_cli.model import HeadSpec, SoundNet, make_config, original_heads
from soundnet_cli.svm import SvmModel

#: The repository (the folder holding src/, tests/, docs/, README.md).
ROOT = Path(__file__).resolve().parents[2]
#: The package's source folder, for subprocesses that must import this checkout.
SRC = ROOT / "src"

#: Sample rate and tone frequencies of :func:`make_dataset`'s classes.
RATE = 22_050
FREQS = (220.0, 1100.0, 4400.0)

#: Channel width of the tiny test networks (SoundNet-8 geometry, 1/16 of the channels).
TINY_WIDTH = 1 / 16


def tiny_config(arch: str = "soundnet8", heads=None):
    """SoundNet geometry with few channels and small heads, for fast tests."""
    if heads is None:
        k, s, p = (8, 2, 0) if arch == "soundnet8" else (16, 12, 4)
        heads = (
            HeadSpec("objects", tuple(f"obj{i}" for i in range(7)), k, s, p),
            HeadSpec("scenes", tuple(f"scene{i}" for i in range(5)), k, s, p),
        )
    return make_config(arch, heads, width=TINY_WIDTH)


def make_tiny_model(arch: str = "soundnet8", seed: int = 0, heads=None) -> SoundNet:
    """A deterministic random tiny network in eval mode with non-trivial BN statistics."""
    torch.manual_seed(seed)
    model = SoundNet(tiny_config(arch, heads))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    return model.eval()


def synth(seconds: float, rate: int = 22_050, kind: str = "tone", channels: int = 1,
          seed: int = 0, freq: float = 440.0) -> np.ndarray:
    """Generated audio ``(samples, channels)`` float32: tone, noise, clicks or silence."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    if kind == "tone":
        x = 0.5 * np.sin(2 * np.pi * freq * t)
    elif kind == "noise":
        x = 0.3 * rng.standard_normal(n)
    elif kind == "clicks":
        x = np.zeros(n)
        x[:: max(1, rate // 8)] = 0.9
    elif kind == "silence":
        x = np.zeros(n)
    else:
        raise ValueError(kind)
    x = np.repeat(x[:, None], channels, axis=1)
    if channels > 1:
        x[:, 1:] *= 0.5
    return x.astype(np.float32)


__all__ = ["FREQS", "RATE", "ROOT", "SRC", "TINY_WIDTH", "interrupt_epoch", "make_dataset",
           "make_tiny_model",
           "original_heads", "synth", "tiny_config", "tiny_svm", "tiny_targets"]


def tiny_svm(channels: int = 3) -> SvmModel:
    k, d = 2, 2 * channels
    return SvmModel(("a", "b"), "conv2", "pooled", "f" * 64, 256.0, None, 1000, 2, channels,
                    {"hop": 4, "receptive_field": 64, "first_sample": -32, "sample_rate": 22_050},
                    0.1, np.ones((k, d)), np.zeros(k), np.zeros(d), np.ones(d))


def tiny_targets(tmp_path: Path) -> Path:
    root = tmp_path / "t"
    header = TargetsHeader((TeacherInfo("colours", ("r", "g", "b")),), 1.0, 4.0)
    init_collection(root, header)
    entry = write_clip(root, header, "a.mp4", np.zeros(22_050 * 2, np.float32),
                       {"colours": np.full((2, 3), 1 / 3, np.float32)})
    (root / "index.jsonl").write_text(entry.to_json() + "\n")
    return root


def make_dataset(root: Path, per_class: int = 6, seconds: float = 1.5, folds: int = 3) -> Path:
    """Three tone classes with jitter and noise, ESC-50 layout with ``folds`` folds."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for c, f in enumerate(FREQS):
        for i in range(per_class):
            t = np.arange(int(seconds * RATE)) / RATE
            x = 0.3 * np.sin(2 * np.pi * f * (1 + 0.03 * rng.standard_normal()) * t)
            x += 0.02 * rng.standard_normal(t.size)
            name = f"{i % folds + 1}-{c}{i}-A-{c}.wav"
            sf.write(str(root / "audio" / name), x.astype(np.float32), RATE)
            rows.append(f"{name},{i % folds + 1},{c},class_{c},False,{c}{i},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def interrupt_epoch(monkeypatch, at: int = 2) -> None:
    """Make the training loop's ``at``-th epoch raise KeyboardInterrupt (Ctrl-C), as a person
    stopping a run would; undo with ``monkeypatch.undo()``."""
    from soundnet_cli.training import loop

    real, calls = loop._train_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", interrupted)
