"""Cross-validate a `soundnet train` recipe on ESC-50's development folds: train on three folds,
validate on the fourth, every rotation, and report the mean and standard deviation of the
held-out accuracy at the **last** epoch (never the best epoch: picking it would use the test fold).

Each rotation is a plain `soundnet train` run in `RUNS/NAME/foldK` (per-epoch checkpoints), so an
interrupted cross-validation continues where it stopped when the same command is run again
(`--resume` is added for rotations that have a state file). Everything after `--` is passed to
`soundnet train` unchanged: that is the recipe.

Usage::

    python benchmarks/esc50_cv.py --name stretch --parallel 2 --threads 1 -- \\
        --epochs 120 --warmup 2 --lr 1e-3 --weight-decay 0.01 --mix 1.0 --gain-db 6 --stretch 1.25
    python benchmarks/esc50_cv.py --name stretch --summary      # the figures so far, no training
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (ROOT / ".." / "shared" / "data" / "esc50", Path("/work/shared/data/esc50"))


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def command(data: Path, fold: int, folds: list[int], run_dir: Path, recipe: list[str]) -> list[str]:
    train = ",".join(str(f) for f in folds if f != fold)
    cmd = [sys.executable, "-m", "soundnet_cli", "train", str(data), "--val-fold", str(fold),
           "--train-folds", train, "--run-dir", str(run_dir), "--device", "cpu", "-q", *recipe]
    if (run_dir / "state.pt").is_file():
        cmd.append("--resume")
    return cmd


def summary(root: Path, folds: list[int]) -> dict:
    rows = {}
    for fold in folds:
        m = metrics(root / f"fold{fold}")
        if m:
            rows[fold] = {"epochs_done": m[-1]["epoch"], "val_accuracy": m[-1]["val_accuracy"],
                          "best_epoch_accuracy_not_used": max(x["val_accuracy"] for x in m),
                          "mean_epoch_seconds": round(statistics.mean(x["seconds"] for x in m), 1)}
    accs = [r["val_accuracy"] for r in rows.values()]
    out = {"folds": rows, "complete_folds": len(rows)}
    if accs:
        out["mean"] = statistics.mean(accs)
        out["std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return out


def main() -> None:
    argv = sys.argv[1:]
    recipe = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="the recipe's name (its runs' folder)")
    p.add_argument("--data", type=Path, default=None, help="ESC-50 root")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "cv", help="where runs go")
    p.add_argument("--folds", default="1,2,3,4")
    p.add_argument("--parallel", type=int, default=1, help="rotations trained at once")
    p.add_argument("--threads", type=int, default=None, help="torch threads per rotation")
    p.add_argument("--summary", action="store_true", help="only print the figures so far")
    args = p.parse_args(argv)
    data = args.data or next((d for d in DATA_CANDIDATES if (d / "meta").is_dir()), None)
    if data is None:
        p.error("no ESC-50 directory; pass --data")
    folds = [int(f) for f in args.folds.split(",")]
    root = args.runs / args.name
    if not args.summary:
        root.mkdir(parents=True, exist_ok=True)
        (root / "recipe.json").write_text(json.dumps({"recipe": recipe, "folds": folds}) + "\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        epochs = int(recipe[recipe.index("--epochs") + 1]) if "--epochs" in recipe else 100
        pending = [f for f in folds
                   if not (metrics(root / f"fold{f}") and
                           metrics(root / f"fold{f}")[-1]["epoch"] >= epochs)]
        running: list[tuple[int, subprocess.Popen]] = []
        while pending or running:
            while pending and len(running) < args.parallel:
                fold = pending.pop(0)
                cmd = command(data, fold, folds, root / f"fold{fold}", recipe)
                print(f"fold {fold}: {' '.join(cmd[1:])}", flush=True)
                with open(root / f"fold{fold}.log", "a", encoding="utf-8") as log:
                    running.append((fold, subprocess.Popen(cmd, env=env, stdout=log,
                                                           stderr=subprocess.STDOUT)))
            time.sleep(5)
            for fold, proc in list(running):
                if proc.poll() is not None:
                    running.remove((fold, proc))
                    print(f"fold {fold}: exit {proc.returncode}", flush=True)
    result = {"recipe": recipe, **summary(root, folds)}
    (root / "cv.json").write_text(json.dumps(result, indent=2) + "\n") if root.is_dir() else None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
