"""Benchmark: seconds per training epoch of `soundnet train`, this checkout against another one,
in the same run.

Both sides run the real command (`python -m soundnet_cli train`, a subprocess with the package
of the given `src/`) on the same ESC-50 clips with the same settings and seed: SoundNet-8 from
scratch, 5 s crops of the 3x-tiled clips, gain and between-class mixing on every example, AdamW,
batch 32, a validation fold. Each epoch's wall time comes from the run's own `metrics.jsonl`
(`seconds`: the training batches, example making and the validation pass; decoding happens once
before the first epoch and is not counted). The two sides alternate `--repeat` times and the
per-side figure is the median epoch over all its runs, so a noisy machine hurts both alike.

The first epoch's training loss of both sides is printed as a check that the arithmetic is the
same (the fused layers change only rounding).

Usage (the baseline is a git worktree of the commit before the change)::

    git worktree add /tmp/base-train 0957390
    python benchmarks/train_speed.py --baseline-src /tmp/base-train/src --clips 320 --epochs 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (ROOT / ".." / "shared" / "data" / "esc50", Path("/work/shared/data/esc50"))


def subset_csv(data: Path, clips: int, out: Path) -> Path:
    """A labels CSV (path,label,fold) with the first ``clips`` clips of folds 1-3 in file order,
    plus ``clips // 4`` clips of fold 4 as the validation fold."""
    with open(data / "meta" / "esc50.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r["fold"] in {"1", "2", "3"}][:clips]
    val = [r for r in rows if r["fold"] == "4"][: max(1, clips // 4)]
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "fold"])
        for r in train + val:
            w.writerow([str((data / "audio" / r["filename"]).resolve()), r["category"], r["fold"]])
    return out


def run(src: Path, labels: Path, run_dir: Path, args: argparse.Namespace) -> list[dict]:
    """One `soundnet train` run with the package in ``src``; its metrics, one dict per epoch."""
    cmd = [sys.executable, "-m", "soundnet_cli", "train", "--labels", str(labels),
           "--val-fold", "4", "--epochs", str(args.epochs), "--batch-size", "32",
           "--lr", "1e-3", "--weight-decay", "0.01", "--mix", "1.0", "--gain-db", "6",
           "--warmup", "1", "--seed", "0", "--run-dir", str(run_dir), "--device", "cpu",
           "--workers", "1", "-q"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=None, help="ESC-50 root (meta/esc50.csv, audio/)")
    p.add_argument("--baseline-src", type=Path, required=True,
                   help="src/ of the checkout to compare against (e.g. a git worktree)")
    p.add_argument("--clips", type=int, default=320, help="training clips (from folds 1-3)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2, help="alternate the two sides N times")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of both sides (default: torch's own choice)")
    args = p.parse_args()
    data = args.data or next((d for d in DATA_CANDIDATES if (d / "meta").is_dir()), None)
    if data is None:
        p.error("no ESC-50 directory; pass --data")
    sides = {"baseline": args.baseline_src.resolve(), "this": (ROOT / "src").resolve()}
    print(f"load average before: {os.getloadavg()[0]:.1f}; {args.clips} training clips, "
          f"{args.epochs} epochs, {args.repeat} alternations, cpus {os.cpu_count()}, threads "
          f"{args.threads or 'default'}", flush=True)
    epochs: dict[str, list[float]] = {k: [] for k in sides}
    losses: dict[str, list[float]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        labels = subset_csv(data, args.clips, Path(tmp) / "labels.csv")
        for i in range(args.repeat):
            for name, src in sides.items():
                metrics = run(src, labels, Path(tmp) / f"{name}-{i}", args)
                secs = [m["seconds"] for m in metrics]
                epochs[name] += secs
                losses[name].append(metrics[0]["train_loss"])
                print(f"run {i + 1} {name}: epochs {', '.join(f'{s:.1f}' for s in secs)} s; "
                      f"first-epoch train loss {metrics[0]['train_loss']:.5f}, last val accuracy "
                      f"{metrics[-1].get('val_accuracy', float('nan')):.4f}", flush=True)
    med = {k: statistics.median(v) for k, v in epochs.items()}
    print(f"median epoch: baseline {med['baseline']:.2f} s, this checkout {med['this']:.2f} s; "
          f"speed-up {med['baseline'] / med['this']:.2f}x "
          f"({args.clips} clips: {args.clips / med['this']:.1f} vs "
          f"{args.clips / med['baseline']:.1f} clips/s)")
    print(f"first-epoch train loss: baseline {losses['baseline'][0]:.5f}, this "
          f"{losses['this'][0]:.5f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
