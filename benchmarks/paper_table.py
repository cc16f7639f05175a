"""The SoundNet paper's ESC-50 / ESC-10 table, reproduced with `soundnet fit-svm --protocol paper`.

Runs the command exactly as a user would (``python -m soundnet_cli fit-svm ... --protocol paper
--json`` in a subprocess, this checkout's ``src`` first on the path) for ESC-50 (every fold the
copy has) and ESC-10 (the rows of ``meta/esc50.csv`` whose ``esc10`` column is true, given to
``fit-svm --layout csv --labels``), each at input scale 512 (the original evaluation scripts) and
at the network's default (256), and prints one Markdown table: accuracy per fold, mean ± std over
folds (population std, as fit-svm reports it), the paper's figure (74.2 % and 92.2 %, SoundNet-8
pool5) and the difference.

The ESC-10 labels CSV (``path,label,fold``, paths relative to ``--data``) and, unless
``--cache-dir`` is given, the feature cache are written under a temporary directory, never into
the repository. The runs share one cache: ESC-10's clips are ESC-50 clips, so its runs read the
features the ESC-50 run at the same scale computed.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/paper_table.py \\
        --data /work/shared/data/esc50 --weights /path/to/soundnet8.safetensors \\
        --json /tmp/paper_table.json

``--scales`` and ``--subsets`` pick a part; ``--from-json`` prints one table from the ``--json``
files of parts run separately. Without ``--weights`` the embedded network is used. Results are
recorded in benchmarks/RESULTS.md ("The paper's table").
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import env, soundnet  # noqa: E402

#: The paper's figures (Aytar, Vondrick, Torralba 2016, Table: SoundNet-8 pool5 + linear SVM).
PAPER = {"esc50": 0.742, "esc10": 0.922}
TITLES = {"esc50": "ESC-50", "esc10": "ESC-10"}


def write_esc10_labels(data: Path, out: Path) -> int:
    """Write ``out`` as a ``path,label,fold`` CSV of the ESC-10 rows of ``data/meta/esc50.csv``
    (paths ``audio/<filename>``, relative to ``data``); the number of rows written."""
    with open(data / "meta" / "esc50.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["esc10"].strip().lower() == "true"]
    if not rows:
        sys.exit(f"error: {data / 'meta' / 'esc50.csv'} has no ESC-10 row (esc10 column)")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "fold"])
        for r in rows:
            w.writerow([f"audio/{r['filename']}", r["category"], r["fold"]])
    return len(rows)


def command(subset: str, scale: float, args: argparse.Namespace, labels: Path,
            cache: Path) -> list[str]:
    """The ``soundnet fit-svm`` arguments of one run (without the interpreter)."""
    cmd = ["fit-svm", str(args.data), "--protocol", "paper", "--input-scale", f"{scale:g}",
           "--jobs", str(args.jobs), "--workers", str(args.workers),
           "--batch-size", str(args.batch_size), "--cache-dir", str(cache), "--json"]
    if args.weights:
        cmd += ["--weights", str(args.weights)]
    if subset == "esc10":
        cmd += ["--layout", "csv", "--labels", str(labels)]
    return cmd


def run_one(cmd: list[str]) -> tuple[dict, float]:
    """Run ``soundnet CMD``; its JSON report and wall seconds. stderr (progress) passes through."""
    print(f"$ soundnet {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(soundnet(*cmd), env=env(OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1")), stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: soundnet {' '.join(cmd)} exited {proc.returncode}")
    return json.loads(proc.stdout), wall


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(results: list[dict]) -> str:
    """The Markdown table: one row per (dataset, input scale)."""
    folds = sorted({f["test_fold"] for r in results for f in r["report"]["folds"]})
    head = (["dataset", "input scale"] + [f"fold {k}" for k in folds]
            + ["mean ± std", "paper (5 folds)", "difference", "minutes"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        rep = r["report"]
        by_fold = {f["test_fold"]: f for f in rep["folds"]}
        cells = [pct(by_fold[k]["accuracy"]) + ("" if by_fold[k]["converged"] else "*")
                 if k in by_fold else "–" for k in folds]
        acc = rep["accuracy"]
        paper = PAPER[r["subset"]]
        lines.append("| " + " | ".join(
            [TITLES[r["subset"]], f"{r['scale']:g}", *cells,
             f"{pct(acc['mean'])} ± {pct(acc['std'])}", pct(paper),
             f"{100 * (acc['mean'] - paper):+.1f}", f"{r['seconds'] / 60:.1f}"]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/esc50"))
    ap.add_argument("--weights", default=None, help="default: the embedded network")
    ap.add_argument("--scales", type=float, nargs="+", default=[512.0, 256.0])
    ap.add_argument("--subsets", nargs="+", choices=sorted(PAPER), default=["esc50", "esc10"])
    ap.add_argument("--jobs", type=int, default=1, help="folds fitted in parallel")
    ap.add_argument("--workers", type=int, default=2, help="decoding processes")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="feature cache (default: a fresh temporary directory)")
    ap.add_argument("--json", type=Path, default=None, help="also write every report here")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="FILE",
                    help="run nothing: print the table of earlier --json files (e.g. the scales "
                    "run as separate processes side by side), rows in the order given")
    args = ap.parse_args()
    if args.from_json:
        runs = [r for f in args.from_json for r in json.loads(f.read_text())["runs"]]
        print(table(runs))
        return

    tmp = Path(tempfile.mkdtemp(prefix="paper-table-"))
    labels = tmp / "esc10.csv"
    n10 = write_esc10_labels(args.data, labels)
    cache = args.cache_dir or tmp / "features"
    print(f"# {args.data}; ESC-10: {n10} clips ({labels}); cache {cache}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          file=sys.stderr, flush=True)
    started, load0 = time.perf_counter(), os.getloadavg()
    results = []
    for scale in args.scales:  # ESC-50 first at each scale: ESC-10 then reads its cached features
        for subset in sorted(args.subsets, key=lambda s: s != "esc50"):
            cmd = command(subset, scale, args, labels, cache)
            report, wall = run_one(cmd)
            results.append({"subset": subset, "scale": scale, "seconds": wall,
                            "command": "soundnet " + " ".join(cmd), "report": report})
            print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            if args.json:  # after every run, so that an interrupted benchmark keeps its rows
                args.json.write_text(json.dumps({
                    "total_seconds": time.perf_counter() - started, "load_start": load0,
                    "load_end": os.getloadavg(), "runs": results}, indent=1))
    total = time.perf_counter() - started
    print(table(results))
    print(f"\nTotal {total / 60:.1f} min; load average at start {load0[0]:.2f}, at end "
          f"{os.getloadavg()[0]:.2f} (1 min); {os.cpu_count()} cores. `*`: not converged.")


if __name__ == "__main__":
    main()
