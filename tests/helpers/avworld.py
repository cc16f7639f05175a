"""A small audio-visual world for the teach/distill tests, written with PyAV.

Each class has a colour (what the frames show) and a sound (what the soundtrack carries); a tiny
deterministic teacher recognises the colour, so a student that learns from it must learn to hear
the sound. Everything is generated: videos of a few seconds, 64x64 frames at a few frames/s.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

#: RGB colour and sound of each class.
COLOURS = ((220, 30, 30), (30, 200, 40), (30, 50, 220), (230, 220, 30))
CLASS_NAMES = ("red", "green", "blue", "yellow")


def class_sound(cls: int, seconds: float, rate: int, seed: int) -> np.ndarray:
    """A recognisable but varied sound for ``cls``: ``(samples,)`` float32.

    0: low tone (~250 Hz), 1: high tone (~2.5 kHz), 2: white noise bursts, 3: a click train —
    each with random pitch/level/phase jitter and a little background noise.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    if cls == 0:
        x = np.sin(2 * np.pi * 250 * rng.uniform(0.9, 1.1) * t + rng.uniform(0, 6.3))
    elif cls == 1:
        x = np.sin(2 * np.pi * 2500 * rng.uniform(0.9, 1.1) * t + rng.uniform(0, 6.3))
    elif cls == 2:
        gate = (np.sin(2 * np.pi * rng.uniform(1.5, 2.5) * t + rng.uniform(0, 6.3)) > 0)
        x = rng.standard_normal(n) * 0.6 * gate
    else:
        x = np.zeros(n)
        period = int(rate / rng.uniform(7, 10))
        x[int(rng.integers(period))::period] = 1.0
    x = x * rng.uniform(0.2, 0.5) + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def write_video(path: Path, step_classes: Sequence[int] | None, seconds: float, *,
                step_seconds: float = 1.0, audio: np.ndarray | None = None, rate: int = 22_050,
                channels: int = 1, fps: int = 4, size: int = 64, seed: int = 0,
                video: bool = True, acodec: str = "aac", vcodec: str = "mpeg4",
                bit_rate: int | None = None) -> Path:
    """Write a video whose frames show ``COLOURS[step_classes[i]]`` during step ``i``.

    ``audio`` ``(samples,)`` at ``rate`` is the soundtrack (``None``: no audio track); with
    ``video=False`` the file has no video track (an audio file: m4a, aac, wma, ...). The
    container follows the suffix; ``bit_rate`` is for encoders that need one (wmav2).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream(vcodec, rate=fps)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
        a_s = None
        if audio is not None:
            a_s = out.add_stream(acodec, rate=rate)
            a_s.layout = "mono" if channels == 1 else "stereo"
            if bit_rate is not None:
                a_s.bit_rate = bit_rate
        if vs is not None:
            for i in range(int(round(seconds * fps))):
                t = i / fps
                cls = step_classes[min(int(t // step_seconds), len(step_classes) - 1)]
                img = np.empty((size, size, 3), np.uint8)
                img[:] = COLOURS[cls]
                img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for p in vs.encode(frame):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        if a_s is not None:
            data = np.repeat(audio[None, :], channels, axis=0).astype(np.float32)
            if channels > 1:
                data[1] *= 0.5
            block = 1024
            for s in range(0, data.shape[1], block):
                chunk = np.ascontiguousarray(data[:, s : s + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp",
                                                   layout="mono" if channels == 1 else "stereo")
                frame.sample_rate = rate
                frame.pts = s
                frame.time_base = Fraction(1, rate)
                for p in a_s.encode(frame):
                    out.mux(p)
            for p in a_s.encode():
                out.mux(p)
    return path


def make_world(root: Path, n_per_class: int, *, seconds: float = 4.0, step_seconds: float = 1.0,
               seed: int = 0, rate: int = 22_050, short_every: int = 0) -> list[tuple[Path, int]]:
    """``n_per_class`` videos of every class under ``root``; returns ``(path, class)`` pairs.

    Every ``short_every``-th video (0: none) is 2.5 steps long, to exercise padding and tiling.
    """
    items = []
    k = 0
    for cls in range(len(COLOURS)):
        for j in range(n_per_class):
            k += 1
            secs = 2.5 * step_seconds if short_every and k % short_every == 0 else seconds
            s = seed * 100_003 + cls * 1009 + j
            audio = class_sound(cls, secs, rate, s)
            p = write_video(root / f"{CLASS_NAMES[cls]}_{j:03d}.mp4", [cls], secs,
                            step_seconds=step_seconds, audio=audio, rate=rate, seed=s)
            items.append((p, cls))
    return items


def colour_teacher_script():
    """A tiny deterministic TorchScript teacher: softmax of ``-5 * |mean RGB - colour|^2``.

    Inputs are ``(n, 3, h, w)`` in [0, 1] (mean 0, std 1 normalisation); outputs logits over
    :data:`CLASS_NAMES`.
    """
    import torch

    class ColourTeacher(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("centres", torch.tensor(COLOURS, dtype=torch.float32) / 255.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(2, 3))  # (n, 3)
            d = ((m[:, None, :] - self.centres[None, :, :]) ** 2).sum(-1)
            return -5.0 * d

    return torch.jit.script(ColourTeacher())


def write_colour_teacher(root: Path, name: str = "colours") -> Path:
    """Save the colour teacher as TorchScript + labels + teacher spec JSON; returns the JSON."""

    root.mkdir(parents=True, exist_ok=True)
    colour_teacher_script().save(str(root / "colours.pt"))
    (root / "colours.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    spec = {"kind": "torchscript", "name": name, "model": "colours.pt", "labels": "colours.txt",
            "resize": 32, "crop": 32, "mean": [0, 0, 0], "std": [1, 1, 1], "output": "logits"}
    path = root / "colours.json"
    path.write_text(json.dumps(spec))
    return path


#: Audio rate of :func:`movie`'s soundtracks.
RATE = 22_050


def movie(tmp_path: Path, name: str, classes, seconds: float, **kw) -> Path:
    kw.setdefault("audio", class_sound(0, seconds, kw.get("rate", RATE), 1))
    return write_video(tmp_path / "videos" / name, classes, seconds, **kw)
