"""Accuracy of a trained network on ESC-50 folds, through the public tagging path.

    python benchmarks/esc50_eval.py --weights runs/esc50-sel/model.safetensors --folds 4

Tags every clip of the chosen folds with ``soundnet_cli.tagging.scoring.tag_files`` (exactly what ``soundnet
tag`` computes: clip score = mean of the per-step softmax, short clips tiled to the network's
``tile_seconds``) and compares the top label with the clip's ESC-50 category. Prints top-1 and
top-5 accuracy, the worst classes and, with ``--json``, everything as JSON.

Clips the network was trained on (its checkpoint's training-data record,
``soundnet_cli.provenance``) are excluded from the evaluation and counted per fold; when none is
left the script exits 1 with advice. ``--allow-seen`` keeps them and marks every figure
"contaminated". A network without a record (imported original weights) is not checked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

import numpy as np

from soundnet_cli.datasets import Split, load_dataset, readable_label
from soundnet_cli.errors import DatasetError
from soundnet_cli.provenance import exclude_seen, seen_mask
from soundnet_cli.runtime import RunOptions
from soundnet_cli.tagging import tag_files
from soundnet_cli.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="checkpoint (default: the embedded network)")
    ap.add_argument("--data", default="../shared/data/esc50")
    ap.add_argument("--folds", default="4", help="comma-separated folds to evaluate")
    ap.add_argument("--head", default="classes")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--allow-seen", action="store_true",
                    help="keep clips the network was trained on (figures marked contaminated)")
    args = ap.parse_args()

    folds = [int(f) for f in args.folds.split(",")]
    full = load_dataset(args.data)
    ds = full.select_folds(folds)
    model = load_model(args.weights, "cpu")
    assert ds.folds is not None
    splits = [Split(f"fold {f}", np.array([], np.int64), np.flatnonzero(ds.folds == f), f)
              for f in folds]
    try:
        splits = exclude_seen(splits, seen_mask(model.provenance, ds),
                              allow_seen=args.allow_seen, dataset=full)
    except DatasetError as e:
        sys.exit(f"error: {e}\n(this script's flags: --weights CHECKPOINT --folds N)")
    per_fold = {s.test_fold: {"clips": int(s.test.size), "excluded_seen": s.excluded,
                              "seen_kept": s.seen, "contaminated": s.contaminated}
                for s in splits}
    contaminated = any(s.contaminated for s in splits)
    excluded = sum(s.excluded for s in splits)
    if excluded:
        print(f"excluded {excluded} clip(s) the network was trained on ("
              + ", ".join(f"fold {f}: {v['excluded_seen']}" for f, v in per_fold.items())
              + "); --allow-seen keeps them", file=sys.stderr)
    ds = ds.subset(np.sort(np.concatenate([s.test for s in splits])))
    labels = model.config.heads[[h.name for h in model.config.heads].index(args.head)].labels
    index = {name: i for i, name in enumerate(labels)}
    truth = np.array([index[readable_label(ds.classes[y])] for y in ds.labels])
    t0 = time.perf_counter()
    ranks, failed = [], 0
    for i, result in enumerate(tag_files(model, ds.paths, options=RunOptions(workers=args.workers))):
        if not result.ok:
            failed += 1
            ranks.append(len(labels))
            continue
        scores = result.head(args.head).clip_scores
        ranks.append(int((scores > scores[truth[i]]).sum()))
    seconds = time.perf_counter() - t0
    ranks_a = np.array(ranks)
    top1, top5 = float((ranks_a == 0).mean()), float((ranks_a < 5).mean())
    wrong = Counter(labels[t] for t, r in zip(truth, ranks_a) if r != 0)
    per_class = {labels[c]: float((ranks_a[truth == c] == 0).mean()) for c in np.unique(truth)}
    assert ds.folds is not None
    for f, v in per_fold.items():
        v["top1"] = float((ranks_a[ds.folds == f] == 0).mean()) if v["clips"] else None
    report = {"weights": args.weights or "embedded default", "folds": folds, "clips": len(ds),
              "failed": failed, "top1": top1, "top5": top5, "seconds": round(seconds, 1),
              "contaminated": contaminated, "excluded_seen": excluded, "per_fold": per_fold,
              "per_class_top1": per_class}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    dirty = " CONTAMINATED (the network was trained on these clips)" if contaminated else ""
    print(f"{report['weights']}: folds {folds}, {len(ds)} clips"
          + (f" ({excluded} seen in training excluded)" if excluded else "")
          + f", top-1 {top1:.3f}, top-5 {top5:.3f}{dirty} ({seconds:.0f} s, {failed} failed)")
    if len(folds) > 1:
        print("per fold top-1: " + ", ".join(
            f"fold {f} " + (f"{v['top1']:.3f}" + (" contaminated" if v["contaminated"] else "")
                            if v["top1"] is not None else f"not tested ({v['excluded_seen']} "
                            "excluded)") for f, v in per_fold.items()))
    tested = Counter(labels[t] for t in truth)
    print("most missed:", ", ".join(f"{c} ({n}/{tested[c]})" for c, n in wrong.most_common(8)))


if __name__ == "__main__":
    main()
