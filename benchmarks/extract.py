"""Benchmark: `soundnet extract --layer conv5` against a naive per-file loop, in the same run.

The naive loop is what one writes without the pipeline: for each file decode + resample
(`load_audio`), one forward pass under `torch.inference_mode()`, `np.save`. It runs twice: with
torch's default thread count (what a user gets) and with one thread (on a busy machine the
default's OpenMP threads spin-wait on each other; the pipeline avoids that by giving torch only
the cores its decoding workers leave, so this second baseline shows what batching and overlapped
decoding add on their own). The pipeline is the
real command (`python -m soundnet_cli extract ... --layer conv5 -q`, a subprocess, so its
interpreter start-up, torch import and model load count against it), which starts its decoding
processes before torch loads and batches forward passes. ``--baseline-src`` also times the
command of another checkout (e.g. a ``git worktree`` of an earlier commit) in the same runs. Both use the full-size SoundNet-8 (random init:
throughput does not depend on the weights) and write one float32 `.npy` per file.

Throughput is seconds of audio per wall-clock second. Usage::

    PYTHONPATH=src python benchmarks/extract.py                 # all files
    PYTHONPATH=src python benchmarks/extract.py --limit 200     # a subset while developing
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from soundnet_cli.audio import find_audio_files, load_audio  # noqa: E402
from soundnet_cli.weights import save_checkpoint  # noqa: E402
from soundnet_cli.model import SoundNet, make_config  # noqa: E402

DATA_CANDIDATES = (ROOT / ".." / "shared" / "data" / "esc50" / "audio",
                   Path("/work/shared/data/esc50/audio"))


def naive(model: SoundNet, files: list[Path], out: Path, layer: str,
          threads: int) -> tuple[float, float]:
    """Decode, resample, one forward per file, save. Returns (wall seconds, audio seconds)."""
    torch.set_num_threads(threads)
    audio = 0.0
    start = time.perf_counter()
    for path in files:
        wave = load_audio(path)
        audio += wave.shape[0] / model.config.sample_rate
        with torch.inference_mode():
            act = model.features(torch.from_numpy(wave)[None], [layer])[layer]
        np.save(out / f"{path.stem}.{layer}.npy", act[0].T.contiguous().numpy())
    return time.perf_counter() - start, audio


def pipeline(checkpoint: Path, files_dir: Path, out: Path, layer: str, args: argparse.Namespace,
             file_list: list[Path], src: Path = ROOT / "src") -> float:
    """The real `soundnet extract` command (the package under ``src``); returns wall seconds."""
    inputs = [str(files_dir)] if args.limit is None else [str(p) for p in file_list]
    cmd = [sys.executable, "-m", "soundnet_cli", "extract", *inputs, "--out", str(out),
           "--layer", layer, "--weights", str(checkpoint), "--device", "cpu", "-q",
           "--batch-size", str(args.batch_size)]
    if args.workers is not None:  # else the command's own plan (auto)
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=None, help="directory of audio files")
    p.add_argument("--limit", type=int, default=None, help="only the first N files")
    p.add_argument("--layer", default="conv5")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: the command's auto plan)")
    p.add_argument("--repeat", type=int, default=1, help="alternate naive/pipeline N times")
    p.add_argument("--baseline-src", type=Path, default=None,
                   help="also time the command of another checkout's src/ (e.g. a git worktree "
                   "of an earlier commit), in the same runs")
    args = p.parse_args()
    data = args.data or next((d for d in DATA_CANDIDATES if d.is_dir()), None)
    if data is None or not data.is_dir():
        p.error("no data directory; pass --data")
    files, _ = find_audio_files([data])
    files = files[: args.limit] if args.limit else files

    torch.manual_seed(0)
    model = SoundNet(make_config("soundnet8")).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = save_checkpoint(model, tmp / "soundnet8-random.safetensors")
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(f"{len(files)} files from {data}, layer {args.layer}, torch threads "
              f"{torch.get_num_threads()}, cpus {os.cpu_count()}, batch {args.batch_size}, "
              f"workers {args.workers if args.workers is not None else 'auto'}", flush=True)
        default_threads = torch.get_num_threads()
        rows = []
        base: list[float] = []
        for i in range(args.repeat):
            for d in ("naive", "naive1", "pipe", "base"):
                shutil.rmtree(tmp / d, ignore_errors=True)
                (tmp / d).mkdir()
            naive_wall, audio = naive(model, files, tmp / "naive", args.layer, default_threads)
            naive1_wall, _ = naive(model, files, tmp / "naive1", args.layer, 1)
            pipe_wall = pipeline(checkpoint, data, tmp / "pipe", args.layer, args, files)
            written = len(list((tmp / "pipe").rglob("*.npy")))
            assert written == len(files), f"pipeline wrote {written} of {len(files)} files"
            rows.append((naive_wall, naive1_wall, pipe_wall))
            if args.baseline_src is not None:
                base_wall = pipeline(checkpoint, data, tmp / "base", args.layer, args, files,
                                     src=args.baseline_src.resolve())
                base.append(base_wall)
                print(f"run {i + 1}: extract from {args.baseline_src}: {base_wall:.1f} s = "
                      f"{audio / base_wall:.1f} x real time; ratio to it "
                      f"{base_wall / pipe_wall:.2f}, naive/it {naive_wall / base_wall:.2f}",
                      flush=True)
            print(f"run {i + 1}: audio {audio:.0f} s | naive ({default_threads} threads) "
                  f"{naive_wall:.1f} s = {audio / naive_wall:.1f} x real time | naive (1 thread) "
                  f"{naive1_wall:.1f} s = {audio / naive1_wall:.1f} x | extract {pipe_wall:.1f} s "
                  f"= {audio / pipe_wall:.1f} x | ratio {naive_wall / pipe_wall:.2f} "
                  f"(vs 1-thread naive {naive1_wall / pipe_wall:.2f})", flush=True)
        best = [min(r[j] for r in rows) for j in range(3)]
        print(f"best of {len(rows)}: naive {audio / best[0]:.1f} x real time, naive 1-thread "
              f"{audio / best[1]:.1f} x, extract {audio / best[2]:.1f} x; ratio extract/naive "
              f"{best[0] / best[2]:.2f}, extract/naive-1-thread {best[1] / best[2]:.2f}")
        if base:
            print(f"best of {len(base)}: extract from {args.baseline_src} "
                  f"{audio / min(base):.1f} x; ratio to this checkout's "
                  f"{min(base) / best[2]:.2f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
