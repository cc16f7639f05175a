"""Do SoundNet's deep units detect sound classes nobody labelled? (the paper's section 5, measured)

For each unit of a layer, take its top ``--top`` segments over ESC-50 clips (one per clip:
``soundnet units``' scan and bounded top table, :func:`soundnet_cli.units.gather`) and count the
units whose top segments come ``--need`` or more times from one ESC-50 class. Compared for:

- conv7 of the given network (default: the authors' SoundNet-8, ``--weights soundnet8``),
- conv7 of a randomly initialised SoundNet-8 (the original init, seeded: ``--seed``),
- conv1 of the given network,

and, as a chance level for each, the same count with the clips' classes shuffled (mean over
``--shuffles`` permutations). Units that never exceed zero on these clips ("dead") are not
counted, and are listed. Only frames whose receptive field lies inside the clip count (as in ``soundnet units``).

    SOUNDNET_HOME=/tmp/snhome OMP_NUM_THREADS=1 PYTHONPATH=src \\
        python benchmarks/unit_purity.py --weights soundnet8 --folds 1 2 3 4

Scans are kept under ``--work`` (default: a folder in the system temp dir), so a rerun only
recounts. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from soundnet_cli.runtime import RunOptions
from soundnet_cli.units import UnitTops, gather
from soundnet_cli.weights import load_model


def esc50_clips(root: Path, folds: list[int], per_class: int | None) -> tuple[list[Path], list[str]]:
    """Clips of ``folds`` (sorted by name) and their classes, optionally the first ``per_class``
    clips of each class."""
    rows = sorted(csv.DictReader(open(root / "meta" / "esc50.csv")), key=lambda r: r["filename"])
    taken: Counter[str] = Counter()
    paths, classes = [], []
    for r in rows:
        if int(r["fold"]) not in folds or not (root / "audio" / r["filename"]).exists():
            continue
        if per_class is not None and taken[r["category"]] >= per_class:
            continue
        taken[r["category"]] += 1
        paths.append(root / "audio" / r["filename"])
        classes.append(r["category"])
    return paths, classes


def majority(tops: UnitTops, label_of: dict[str, str]) -> tuple[np.ndarray, list[str]]:
    """Per unit: how many of its top segments share the most common class (0 for a unit that
    never exceeds zero on these clips), and that class."""
    counts, classes = [], []
    for u in range(tops.values.shape[1]):
        labels = [label_of[tops.paths[f]] for f in tops.files[:, u] if f >= 0]
        if not tops.values[0, u] > 0 or not labels:
            counts.append(0)
            classes.append("")
            continue
        label, count = Counter(labels).most_common(1)[0]
        counts.append(count)
        classes.append(label)
    return np.array(counts), classes


def shuffled_level(tops: UnitTops, label_of: dict[str, str], need: int, shuffles: int,
                   seed: int) -> float:
    """Mean count of units with ``need`` or more of one class when the clips' classes are
    permuted (the same top segments, labels shuffled): the chance level."""
    rng = np.random.default_rng(seed)
    paths = list(label_of)
    labels = [label_of[p] for p in paths]
    counts = []
    for _ in range(shuffles):
        perm = rng.permutation(len(labels))
        shuffled = {p: labels[i] for p, i in zip(paths, perm)}
        counts.append(int((majority(tops, shuffled)[0] >= need).sum()))
    return float(np.mean(counts))


def random_soundnet8(like: torch.nn.Module, seed: int) -> torch.nn.Module:
    """SoundNet-8 of ``like``'s configuration with the original init (seeded), eval mode."""
    from soundnet_cli.model import SoundNet

    model = SoundNet(like.config)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/esc50"))
    ap.add_argument("--weights", default="soundnet8")
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--per-class", type=int, default=None, help="a subset: clips per class")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--need", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shuffles", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "unit_purity")
    args = ap.parse_args()

    paths, classes = esc50_clips(args.data, args.folds, args.per_class)
    label_of = {str(p): c for p, c in zip(paths, classes)}
    trained = load_model(args.weights, "cpu")
    runs = [("trained", trained, "conv7"), ("random init", random_soundnet8(trained, args.seed),
                                              "conv7"), ("trained", trained, "conv1")]
    options = RunOptions(device="cpu", workers=args.workers, threads=1)
    print(f"{len(paths)} ESC-50 clips (folds {args.folds}, {len(set(classes))} classes); "
          f"top {args.top} per unit, one per clip; pure: >= {args.need} of one class\n")
    lower = args.need - 2
    print(f"| network | layer | units | >= {args.need} of {args.top} from one class | same, "
          f"classes shuffled (mean of {args.shuffles}) | >= {lower} of {args.top} | same, "
          "shuffled | dead units | classes of the purest units | scan |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, model, layer in runs:
        tag = f"{name.replace(' ', '-')}-{layer}"
        t0 = time.perf_counter()
        tops, run = gather(model, paths, layer, args.work / tag, top=args.top,
                           roots=[args.data / "audio"], options=options)
        seconds = time.perf_counter() - t0
        if run.failures:
            raise SystemExit(f"{len(run.failures)} clip(s) failed: {run.failures[0]}")
        counts, about = majority(tops, label_of)
        dead = int((tops.values[0] <= 0).sum())
        pure = Counter(c for n, c in zip(counts, about) if n >= args.need)
        common = ", ".join(f"{c} {n}" for c, n in pure.most_common(5))
        net = args.weights if name == "trained" else f"seed {args.seed}"
        print(f"| {name} ({net}) | {layer} | {tops.values.shape[1]} "
              f"| **{int((counts >= args.need).sum())}** "
              f"| {shuffled_level(tops, label_of, args.need, args.shuffles, args.seed):.1f} "
              f"| {int((counts >= lower).sum())} "
              f"| {shuffled_level(tops, label_of, lower, args.shuffles, args.seed):.1f} "
              f"| {dead} | {common} | {seconds:.0f} s ({run.scanned} scanned, "
              f"{run.reused} reused) |", flush=True)

if __name__ == "__main__":
    main()
