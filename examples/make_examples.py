"""Regenerate the example sounds in this folder (synthetic, public domain).

``python examples/make_examples.py`` writes 5-second 22,050 Hz mono WAV files made from simple
physical recipes, so the quick start has something to tag without downloading data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22_050
SECONDS = 5.0


def clock_tick(rng: np.random.Generator) -> np.ndarray:
    """Two alternating damped resonances ("tick", "tock") once a second."""
    t = np.arange(int(0.05 * RATE)) / RATE
    out = np.zeros(int(SECONDS * RATE))
    for k, start in enumerate(np.arange(0.2, SECONDS, 0.5)):
        f = 3200 if k % 2 == 0 else 2400
        burst = np.sin(2 * np.pi * f * t) * np.exp(-t * 160) * 0.6
        i = int(start * RATE)
        out[i : i + burst.size] += burst[: out.size - i]
    return out + 0.002 * rng.standard_normal(out.size)


def rain(rng: np.random.Generator) -> np.ndarray:
    """Broadband noise with many small random drops."""
    n = int(SECONDS * RATE)
    out = 0.05 * np.convolve(rng.standard_normal(n), np.ones(3) / 3, mode="same")
    t = np.arange(int(0.01 * RATE)) / RATE
    for start in rng.uniform(0, SECONDS - 0.02, 400):
        i = int(start * RATE)
        f = rng.uniform(2000, 7000)
        out[i : i + t.size] += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * f * t) * np.exp(-t * 600)
    return out


def siren(rng: np.random.Generator) -> np.ndarray:
    """A two-tone wailing siren with harmonics."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    f = 750 + 350 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f) / RATE
    return 0.3 * (np.sin(phase) + 0.3 * np.sin(2 * phase)) + 0.005 * rng.standard_normal(t.size)


def main() -> None:
    here = Path(__file__).parent
    rng = np.random.default_rng(0)
    for name, make in (("clock_tick", clock_tick), ("rain", rain), ("siren", siren)):
        x = make(rng)
        x = 0.9 * x / np.abs(x).max()
        sf.write(str(here / f"{name}.wav"), x.astype(np.float32), RATE, subtype="PCM_16")


if __name__ == "__main__":
    main()
