"""Peak memory of ``soundnet units`` on folders of 1 hour and 10 hours of audio.

Each folder holds N one-hour recordings (ESC-50 clips looped into one Ogg Vorbis file, the same
file hard-linked N times, so 10 hours cost 1 hour of disk): every one is longer than
``--long-seconds`` and so streamed in chunks, and the unit tables are ``units x top``. Memory
should not grow with the hours.

    SOUNDNET_HOME=/tmp/snhome OMP_NUM_THREADS=1 python benchmarks/units_memory.py \\
        --weights soundnet8 --hours 1 10

Prints a Markdown table (wall and CPU seconds, peak RSS of the command).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _bench import ESC50_AUDIO, load, run, soundnet, write_looped_ogg


def folder(root: Path, hours: int, hour_file: Path) -> Path:
    """``root/<hours>h/`` with ``hours`` hard links to the one-hour recording."""
    d = root / f"{hours}h"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for i in range(hours):
        os.link(hour_file, d / f"rec{i:02d}.ogg")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="soundnet8")
    ap.add_argument("--hours", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--units", default="top-variance:32")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "units_memory")
    args = ap.parse_args()

    hour = args.work / "hour.ogg"
    if not hour.exists():
        write_looped_ogg(sorted(ESC50_AUDIO.glob("*.ogg"))[:720], hour, 3600.0)
    print(f"load before: {load()}\n")
    print("| audio | recordings | wall | CPU | peak RSS |")
    print("|---|---|---|---|---|")
    for hours in args.hours:
        d = folder(args.work, hours, hour)
        out = args.work / f"out-{hours}h"
        shutil.rmtree(out, ignore_errors=True)
        t = run(soundnet("units", str(d), "--weights", args.weights, "--units", args.units,
                         "--out", str(out), "-q"))
        print(f"| {hours} h | {hours} | {t.wall:.0f} s | {t.cpu:.0f} s | {t.rss:.0f} MiB |",
              flush=True)
    print(f"\nload after: {load()}")


if __name__ == "__main__":
    main()
