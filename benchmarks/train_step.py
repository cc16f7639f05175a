"""Benchmark: one SoundNet-8 training step (32 clips x 5 s, AdamW), this checkout against another
one, alternating subprocesses, best of a few steps each.

    git worktree add /tmp/base-train 0957390
    OMP_NUM_THREADS=1 python benchmarks/train_step.py --baseline-src /tmp/base-train/src

Each side imports the package of its own ``src/`` in a fresh interpreter, builds the same random
network (seed 0, a 50-class head as the embedded network has) and times ``--steps`` forward +
backward + optimiser steps on the same random batch after one warm-up step.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEP = r'''
import sys, time, torch, torch.nn.functional as F
from soundnet_cli.model import SoundNet, make_config, classifier_head
torch.manual_seed(0)
m = SoundNet(make_config("soundnet8", [classifier_head("soundnet8", [str(i) for i in range(50)])]))
m.train()
x = torch.randn(32, 110250) * 0.1
y = torch.softmax(torch.randn(32, 50), 1)
opt = torch.optim.AdamW(m.parameters(), 1e-3)
def step():
    logits = m(x)["classes"]
    loss = -(y.unsqueeze(-1) * F.log_softmax(logits, 1)).sum(1).mean()
    opt.zero_grad(); loss.backward(); opt.step()
step()
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(min(times))
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline-src", type=Path, required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    sides = {"baseline": args.baseline_src.resolve(), "this": (ROOT / "src").resolve()}
    best = {k: float("inf") for k in sides}
    print(f"load average before: {os.getloadavg()[0]:.1f}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    for i in range(args.repeat):
        for name, src in sides.items():
            out = subprocess.run([sys.executable, "-c", STEP, str(args.steps)], check=True,
                                 capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(src)})
            seconds = float(out.stdout.split()[-1])
            best[name] = min(best[name], seconds)
            print(f"run {i + 1} {name}: best step {seconds:.3f} s", flush=True)
    print(f"best step: baseline {best['baseline']:.3f} s, this {best['this']:.3f} s; speed-up "
          f"{best['baseline'] / best['this']:.2f}x; load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
