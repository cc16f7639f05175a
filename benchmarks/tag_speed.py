"""`soundnet tag` speed with the embedded network, against a baseline network in the same run.

Runs the real command (``soundnet tag FILES --json -q``, a fresh process each time, start-up
included) over the first ``--files`` ESC-50 clips, alternating the embedded network and the
baseline ``--baseline`` (e.g. the retired from-scratch ESC-50 network,
``git show 7a1fadf:assets/soundnet8-esc50.safetensors > /tmp/old.safetensors``) ``--reps``
times, and prints the median wall time, times real time (audio seconds per wall second) and the
ratio. The machine is shared: only the ratio within one run means much.

    PYTHONPATH=src python benchmarks/tag_speed.py --data ../shared/data/esc50 \\
        --baseline /tmp/old.safetensors --files 400 --reps 3

Results are recorded in benchmarks/RESULTS.md ("Tagging speed with the authors' network").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf


def run(files: list[str], weights: str | None) -> float:
    cmd = [sys.executable, "-m", "soundnet_cli", "tag", *files, "--json", "-q", "--device", "cpu"]
    if weights:
        cmd += ["--weights", weights]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--baseline", required=True, help="the baseline network's checkpoint")
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    files = sorted(str(p) for p in (args.data / "audio").iterdir())[: args.files]
    audio = sum(sf.info(f).duration for f in files)
    times: dict[str, list[float]] = {"embedded": [], "baseline": []}
    start: dict[str, list[float]] = {"embedded": [], "baseline": []}
    for _ in range(args.reps):
        for name, weights in (("baseline", args.baseline), ("embedded", None)):
            start[name].append(run(files[:1], weights))  # start-up: one clip
            times[name].append(run(files, weights))
    print(f"{len(files)} files, {audio:.0f} s of audio, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        up = statistics.median(start[k])
        print(f"{k:>9}: median {med[k]:.2f} s ({', '.join(f'{x:.2f}' for x in v)}), "
              f"{audio / med[k]:.0f}x real time; after a start-up of {up:.2f} s (one clip): "
              f"{med[k] - up:.2f} s, {audio / (med[k] - up):.0f}x real time")
    print(f"embedded / baseline time: {med['embedded'] / med['baseline']:.2f}")


if __name__ == "__main__":
    main()
