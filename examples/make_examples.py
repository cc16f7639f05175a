"""Regenerate the example sounds in this folder (synthetic, public domain).

``python examples/make_examples.py`` writes 5-second 22,050 Hz mono WAV files made from simple
physical recipes, so the quick start has something to tag without downloading data. Each recipe
imitates one of the embedded network's 50 ESC-50 classes (siren, clock tick, rain, car horn,
crickets, crackling fire), except ``chord``: a sustained piano-like chord, music, which is outside
the network's vocabulary and shows what it does with such a sound. They are synthetic, not
recordings: what the network says about them is a demonstration, not a measure of accuracy
(that is in assets/README.md). Needs numpy, scipy and soundfile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

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
    """Band-passed hiss (400 Hz-9 kHz) with thousands of small drop impulses a second."""
    n = int(SECONDS * RATE)
    hiss = signal.lfilter(*signal.butter(2, [400 / (RATE / 2), 9000 / (RATE / 2)], "band"),
                          rng.standard_normal(n))
    drops = np.zeros(n)
    at = rng.integers(0, n, 6000)
    drops[at] = rng.uniform(-1, 1, at.size) * rng.exponential(1, at.size)
    drops = signal.lfilter(*signal.butter(2, [1500 / (RATE / 2), 8000 / (RATE / 2)], "band"), drops)
    return 0.6 * hiss + 0.4 * drops / np.std(drops) * np.std(hiss)


def car_horn(rng: np.random.Generator) -> np.ndarray:
    """Two detuned sawtooth tones (415 and 495 Hz) sounded twice, low-passed at 3 kHz."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    horn = np.zeros(t.size)
    for start, stop in ((0.5, 2.2), (3.0, 3.6)):
        on = (t >= start) & (t < stop)
        horn[on] = signal.sawtooth(2 * np.pi * 415 * t[on]) + signal.sawtooth(2 * np.pi * 495 * t[on])
    horn = signal.lfilter(*signal.butter(2, 3000 / (RATE / 2)), horn)
    return horn + 0.003 * rng.standard_normal(t.size)


def crickets(rng: np.random.Generator) -> np.ndarray:
    """Chirps of four 15 ms pulses of a 4.5 kHz carrier, three chirps a second."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    out = np.zeros(t.size)
    for chirp in np.arange(0, SECONDS, 0.33):
        for k in range(4):
            on = (t >= chirp + 0.03 * k) & (t < chirp + 0.03 * k + 0.015)
            out[on] += np.sin(2 * np.pi * 4500 * t[on]) * np.hanning(on.sum())
    return out + 0.01 * rng.standard_normal(t.size)


def crackling_fire(rng: np.random.Generator) -> np.ndarray:
    """A low rumble (integrated noise, high-passed at 300 Hz) under sparse, heavy-tailed
    crackles (high-passed at 2 kHz)."""
    n = int(SECONDS * RATE)
    rumble = signal.lfilter(*signal.butter(1, 300 / (RATE / 2), "high"),
                            np.cumsum(rng.standard_normal(n)))
    cracks = np.zeros(n)
    at = rng.integers(0, n, 300)
    cracks[at] = rng.uniform(-1, 1, at.size) * rng.pareto(2, at.size)
    cracks = signal.lfilter(*signal.butter(2, 2000 / (RATE / 2), "high"), cracks)
    return 0.3 * rumble / np.std(rumble) + cracks / np.std(cracks)


def chord(rng: np.random.Generator) -> np.ndarray:
    """Music, outside the network's vocabulary: a C major chord (C4 E4 G4 C5) of decaying
    piano-like partials, struck twice."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    out = np.zeros(t.size)
    for start in (0.2, 2.6):
        tt = t - start
        on = tt >= 0
        for f0 in (261.63, 329.63, 392.0, 523.25):
            for h in range(1, 7):
                out[on] += np.sin(2 * np.pi * f0 * h * tt[on]) * np.exp(-tt[on] * (1.2 + 0.6 * h)) / h
    return out + 0.001 * rng.standard_normal(t.size)


def siren(rng: np.random.Generator) -> np.ndarray:
    """A two-tone wailing siren with harmonics."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    f = 750 + 350 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f) / RATE
    return 0.3 * (np.sin(phase) + 0.3 * np.sin(2 * phase)) + 0.005 * rng.standard_normal(t.size)


def main() -> None:
    here = Path(__file__).parent
    rng = np.random.default_rng(0)
    recipes = (("clock_tick", clock_tick), ("rain", rain), ("siren", siren), ("car_horn", car_horn),
               ("crickets", crickets), ("crackling_fire", crackling_fire), ("chord", chord))
    for name, make in recipes:
        x = make(rng)
        x = 0.9 * x / np.abs(x).max()
        sf.write(str(here / f"{name}.wav"), x.astype(np.float32), RATE, subtype="PCM_16")


if __name__ == "__main__":
    main()
