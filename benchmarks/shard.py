"""Two shards as two processes on this machine, then ``soundnet merge``, against one run with the
same cores: total wall time, and whether the merged outputs are byte-identical to one run's.

For each command (``tag --out --format jsonl,csv,raven,audacity,parquet``, i.e. ``all`` minus
png, and ``extract --layer conv5``) over the first ``--files`` ESC-50 clips (a ``--files-from``
list of absolute paths; enough clips that each process's start-up, about 5 s, is amortised):

- **one run**: one process with every core (the command's own plan: decoding processes and
  threads for all cores);
- **two shards**: ``--shard 0/2`` and ``--shard 1/2`` started together, each pinned to half the
  cores (``taskset``-style affinity, as a cluster scheduler gives a task its CPUs; each then
  plans its decoding processes and threads for its share), then ``soundnet merge OUT``. Their
  time is from the start of the shards to the end of the merge.

Runs alternate (one, two, one, two, ...) so both see the same machine load; medians are printed
with the ratio two / one (target: within 10 %, i.e. at most 1.10). Each run writes a fresh
``OUT`` (named the same, under a different parent, so the manifests' paths agree). Then every
file of the one-run ``OUT`` is compared byte for byte with the merged one (per-shard files,
which one run does not write, are listed apart); for ``.npy`` files that differ the largest
difference relative to the array's largest value is printed. The network is the embedded one
(the default), ``--device cpu``. Example (from the repository root)::

    flock /tmp/bench.lock env PYTHONPATH=src python benchmarks/shard.py --files 400 --reps 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ESC50_AUDIO, cores, env, load, median, soundnet  # noqa: E402

COMMANDS = {
    "tag": ["tag", "--format", "jsonl,csv,raven,audacity,parquet"],
    "extract": ["extract", "--layer", "conv5"],
}
SHARD_ONLY = ("status.shard-", "manifest.shard-", "tags.shard-")


#: Options every measured command gets (``--batch-size N`` when given).
EXTRA: list[str] = []


def command(name: str, listing: Path, *extra: str) -> list[str]:
    return soundnet(*COMMANDS[name], "--files-from", str(listing), "--out", "out",
                    "--device", "cpu", "-q", *EXTRA, *extra)


def start(cmd: list[str], cwd: Path, cpus: set[int] | None) -> subprocess.Popen:
    """Start ``cmd`` in ``cwd``, on ``cpus`` only when given (before it execs)."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    return subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL,
                            preexec_fn=pin)


def finish(procs: list[subprocess.Popen], what: str) -> None:
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{what}: {' '.join(map(str, p.args))} exited {p.returncode}")


def one_run(name: str, listing: Path, parent: Path) -> float:
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    t = time.perf_counter()
    finish([start(command(name, listing), parent, None)], "one run")
    return time.perf_counter() - t


def two_shards(name: str, listing: Path, parent: Path) -> dict[str, float]:
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    cpus = sorted(os.sched_getaffinity(0))
    halves = [set(cpus[: len(cpus) // 2]), set(cpus[len(cpus) // 2:])]
    t = time.perf_counter()
    procs = [start(command(name, listing, "--shard", f"{i}/2"), parent, halves[i])
             for i in range(2)]
    finish(procs, "shard")
    shards = time.perf_counter() - t
    m = time.perf_counter()
    finish([start(soundnet("merge", "out"), parent, None)], "merge")
    end = time.perf_counter()
    return {"total": end - t, "shards": shards, "merge": end - m}


def compare(one: Path, two: Path) -> dict[str, object]:
    """Byte comparison of every file one run wrote with the merged run's file of that name."""
    mine = {p.relative_to(one) for p in one.rglob("*") if p.is_file()}
    theirs = {p.relative_to(two) for p in two.rglob("*") if p.is_file()}
    shard_only = sorted(str(p) for p in theirs - mine if p.name.startswith(SHARD_ONLY))
    missing = sorted(str(p) for p in mine - theirs)
    extra = sorted(str(p) for p in theirs - mine if not p.name.startswith(SHARD_ONLY))
    differ = {}
    for rel in sorted(mine & theirs):
        a, b = (one / rel).read_bytes(), (two / rel).read_bytes()
        if a != b:
            differ[str(rel)] = describe(one / rel, two / rel)
    return {"files": len(mine), "identical": len(mine & theirs) - len(differ),
            "differ": differ, "missing": missing, "extra": extra, "shard_only": len(shard_only)}


def describe(a: Path, b: Path) -> str:
    if a.suffix == ".npy":
        x, y = np.load(a), np.load(b)
        if x.shape != y.shape:
            return f"shapes {x.shape} vs {y.shape}"
        scale = float(np.abs(x).max()) or 1.0
        return f"max |diff| {float(np.abs(x - y).max()) / scale:.1e} of the array's max"
    if a.name == "run.json":
        x, y = json.loads(a.read_text()), json.loads(b.read_text())
        return "keys differ: " + ", ".join(k for k in sorted(set(x) | set(y))
                                           if x.get(k) != y.get(k))
    la, lb = a.read_text(errors="replace").splitlines(), b.read_text(errors="replace").splitlines()
    n = sum(1 for u, v in zip(la, lb) if u != v) + abs(len(la) - len(lb))
    return f"{n} of {len(la)} lines differ"


def bench(name: str, listing: Path, tmp: Path, reps: int) -> dict[str, object]:
    ones, twos = [], []
    for _ in range(reps):
        ones.append(one_run(name, listing, tmp / f"{name}-one"))
        twos.append(two_shards(name, listing, tmp / f"{name}-two"))
        print(f"  {name}: one run {ones[-1]:6.2f} s | two shards {twos[-1]['shards']:6.2f} s "
              f"+ merge {twos[-1]['merge']:5.2f} s = {twos[-1]['total']:6.2f} s "
              f"(load {load()})", flush=True)
    one, two = median(ones), median([t["total"] for t in twos])
    same = compare(tmp / f"{name}-one" / "out", tmp / f"{name}-two" / "out")
    return {"one": ones, "two": twos, "one_median": one, "two_median": two,
            "ratio": two / one, "compare": same}


def report(name: str, r: dict, files: int) -> None:
    c = r["compare"]
    print(f"{name}: one run {r['one_median']:.2f} s, two shards + merge {r['two_median']:.2f} s:"
          f" ratio {r['ratio']:.3f} ({'within' if r['ratio'] <= 1.10 else 'over'} 10 %)")
    print(f"  outputs: {c['identical']} of {c['files']} files byte-identical to one run's;"
          f" {c['shard_only']} per-shard files besides")
    for rel, why in c["differ"].items():
        print(f"  differs: {rel}: {why}")
    for rel in c["missing"]:
        print(f"  missing after merge: {rel}")
    for rel in c["extra"]:
        print(f"  only after merge: {rel}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ESC50_AUDIO, help="ESC-50's audio/ folder")
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()) / "soundnet-shard")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="passed to every command (default: the commands' own, 8)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.batch_size is not None:
        EXTRA.extend(["--batch-size", str(args.batch_size)])
    if cores() < 2:
        sys.exit("needs at least 2 cores (one per shard)")
    files = sorted(args.data.glob("*.ogg"))[: args.files]
    if len(files) < args.files:
        sys.exit(f"need {args.files} clips under {args.data}, found {len(files)}")
    args.tmp.mkdir(parents=True, exist_ok=True)
    listing = args.tmp / "inputs.txt"
    listing.write_text("".join(f"{p.resolve()}\n" for p in files))
    print(f"{len(files)} ESC-50 clips (5 s), {cores()} cores, load {load()}; embedded network,"
          f" --device cpu {' '.join(EXTRA)}; two shards pinned to {cores() // 2} core(s) each")
    results = {name: bench(name, listing, args.tmp, args.reps) for name in args.commands}
    print()
    for name, r in results.items():
        report(name, r, len(files))
    print(f"load at the end: {load()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
