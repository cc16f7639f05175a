"""Accuracy of a trained network on ESC-50 folds, through the public tagging path.

    python benchmarks/esc50_eval.py --weights runs/esc50-sel/model.safetensors --folds 4

Tags every clip of the chosen folds with ``soundnet_cli.tag.tag_files`` (exactly what ``soundnet
tag`` computes: clip score = mean of the per-step softmax, short clips tiled to the network's
``tile_seconds``) and compares the top label with the clip's ESC-50 category. Prints top-1 and
top-5 accuracy, the worst classes and, with ``--json``, everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np

from soundnet_cli.datasets import load_dataset, readable_label
from soundnet_cli.tag import tag_files
from soundnet_cli.weights.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="checkpoint (default: the embedded network)")
    ap.add_argument("--data", default="../shared/data/esc50")
    ap.add_argument("--folds", default="4", help="comma-separated folds to evaluate")
    ap.add_argument("--head", default="classes")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    folds = [int(f) for f in args.folds.split(",")]
    ds = load_dataset(args.data).select_folds(folds)
    model = load_model(args.weights, "cpu")
    labels = model.config.heads[[h.name for h in model.config.heads].index(args.head)].labels
    index = {name: i for i, name in enumerate(labels)}
    truth = np.array([index[readable_label(ds.classes[y])] for y in ds.labels])
    t0 = time.perf_counter()
    ranks, failed = [], 0
    for i, result in enumerate(tag_files(model, ds.paths, workers=args.workers)):
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
    report = {"weights": args.weights or "embedded default", "folds": folds, "clips": len(ds),
              "failed": failed, "top1": top1, "top5": top5, "seconds": round(seconds, 1),
              "per_class_top1": per_class}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['weights']}: folds {folds}, {len(ds)} clips, top-1 {top1:.3f}, "
          f"top-5 {top5:.3f} ({seconds:.0f} s, {failed} failed)")
    print("most missed:", ", ".join(f"{c} ({n}/{len(ds) // len(labels)})"
                                    for c, n in wrong.most_common(8)))


if __name__ == "__main__":
    main()
