"""Helpers shared by the scale benchmarks (scale.py, shard.py, merge.py): timing a command in a
subprocess (wall seconds and the CPU seconds of it and its children), the machine's load, the
command line of this checkout's ``soundnet``. Not a benchmark itself."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ESC50_AUDIO = Path("/work/shared/data/esc50/audio")
TIME = "/usr/bin/time"  # GNU time: user, system and peak RSS of one command


@dataclass(frozen=True)
class Timing:
    """One finished command: ``wall`` seconds, ``cpu`` seconds (user + system of the process and
    every child it waited for), ``rss`` peak resident set of the largest of them, MiB."""

    wall: float
    cpu: float
    rss: float


def soundnet(*args: str) -> list[str]:
    """``python -m soundnet_cli ARGS`` with this interpreter (run with :func:`env` so that this
    checkout's ``src`` is imported)."""
    return [sys.executable, "-m", "soundnet_cli", *args]


def env(**extra: str) -> dict[str, str]:
    """The environment for a measured command: this checkout's ``src`` first on the path."""
    return {**os.environ, "PYTHONPATH": str(SRC), **extra}


def run(cmd: list[str], *, extra_env: dict[str, str] | None = None, stdout: int | None = None,
        check: bool = True) -> Timing:
    """Run ``cmd`` to completion; its wall time, CPU time and peak RSS.

    The command runs under ``/usr/bin/time``, which reports the peak RSS of the command itself
    (the largest of it and the children it waited for): measured from this process, a forked
    child's ``ru_maxrss`` would start at this process's own size.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as rec:
        start = time.perf_counter()
        proc = subprocess.Popen([TIME, "-q", "-f", "%U %S %M", "-o", rec.name, *cmd],
                                env=env(**(extra_env or {})),
                                stdout=subprocess.DEVNULL if stdout is None else stdout)
        proc.wait()
        wall = time.perf_counter() - start
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
        user, system, rss_kib = rec.read().split()[-3:]
    return Timing(wall, float(user) + float(system), float(rss_kib) / 1024)


def load() -> str:
    """The 1, 5 and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def self_rss_mib() -> float:
    """Peak RSS of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: ESC-50's own rate: a looped file of its clips uses them as stored.
LONG_RATE = 44_100


def write_looped_ogg(clips: list[Path], path: Path, seconds: float) -> Path:
    """``clips`` (mono, :data:`LONG_RATE`) end to end, looped, as one Ogg Vorbis file of
    ``seconds`` at about the clips' own bitrate, written block by block and renamed into place:
    the same content and codec as the short clips, as one long recording."""
    import soundfile as sf

    mono = [c for c in clips
            if (lambda i: (i.samplerate, i.channels) == (LONG_RATE, 1))(sf.info(str(c)))]
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part.ogg")
    left = int(seconds * LONG_RATE)
    with sf.SoundFile(str(part), "w", samplerate=LONG_RATE, channels=1, format="OGG",
                      subtype="VORBIS", compression_level=0.05) as f:
        while left:
            for clip in mono:
                x = sf.read(str(clip), dtype="float32")[0][:left]
                for i in range(0, x.shape[0], LONG_RATE):  # libsndfile's Vorbis encoder
                    f.write(x[i:i + LONG_RATE])           # crashes on very large writes
                left -= x.shape[0]
                if not left:
                    break
    part.replace(path)
    return path
