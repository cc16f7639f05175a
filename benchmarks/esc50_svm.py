"""ESC-50 linear-SVM benchmark: `fit-svm` for layers conv4 ... conv7 under both protocols.

Runs the library behind `soundnet fit-svm` on an ESC-50 copy (leave one predefined fold out, over
whatever folds are present) and prints a Markdown table of accuracy (mean ± std over folds) and
run time per (layer, protocol). It also times the feature cache: a cold extraction pass (the
baseline) against the same request served from the cache, and prints the ratio.

Network: ``weights/soundnet8.safetensors`` (the embedded network) when the repository has it, else a randomly
initialised full-size SoundNet-8 (seed 0, the original init), which the table then measures:
random features, not trained ones. ``--weights PATH`` picks any checkpoint.

    PYTHONPATH=src python benchmarks/esc50_svm.py --data ../shared/data/esc50 \
        --json benchmarks/esc50_svm.json

Results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.weights import load_model_file, weights_fingerprint  # noqa: E402
from soundnet_cli.datasets import cv_splits, load_dataset  # noqa: E402
from soundnet_cli.errors import DatasetError  # noqa: E402
from soundnet_cli.provenance import exclude_seen, seen_mask  # noqa: E402
from soundnet_cli.runtime import RunOptions  # noqa: E402
from soundnet_cli.model import SoundNet, make_config  # noqa: E402
from soundnet_cli import SvmProtocol, cross_validate, extract_features  # noqa: E402

LAYERS = ("conv4", "conv5", "pool5", "conv6", "conv7")


def network(weights: str | None) -> tuple[SoundNet, str]:
    default = REPO / "weights" / "soundnet8.safetensors"
    path = Path(weights) if weights else default if default.is_file() else None
    if path is not None:
        return load_model_file(path), str(path)
    model = SoundNet(make_config())
    model.reset_parameters(torch.Generator().manual_seed(0))
    model.eval()
    model.fingerprint = weights_fingerprint(model)  # type: ignore[attr-defined]
    return model, "random init SoundNet-8 (seed 0)"


def paper_gigabytes(features, train_clips: int, solver: str) -> float:
    """Memory the paper protocol's training windows need: float64 twice over for liblinear (its
    own copy), float32 once for the Newton solver (which works on the array in place)."""
    t, c = features.activations[0].shape
    w = features.window
    per_value = 16 if solver == "liblinear" else 4
    return train_clips * (t - w + 1) * w * c * per_value / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "esc50"))
    ap.add_argument("--weights", default=None)
    ap.add_argument("--layers", nargs="+", default=list(LAYERS))
    ap.add_argument("--protocols", nargs="+", default=["pooled", "paper"])
    ap.add_argument("--paper-scale-512", nargs="*", default=["pool5"],
                    help="layers also run with the paper protocol at input scale 512")
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temporary directory")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-gb", type=float, default=8.0,
                    help="skip paper-protocol fits whose training matrix would exceed this")
    ap.add_argument("--solver", default="newton", choices=["newton", "liblinear"])
    ap.add_argument("--max-iter", type=int, default=None,
                    help="solver iteration limit (default: the solver's)")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--test-folds", type=int, nargs="+", default=None,
                    help="hold out only these folds (e.g. the folds --weights was not trained on)")
    ap.add_argument("--allow-seen", action="store_true",
                    help="keep test clips the network was trained on (figures marked "
                    "contaminated); by default they are excluded, as fit-svm does")
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    ds = load_dataset(args.data)
    model, source = network(args.weights)
    try:  # as fit-svm: a network that has seen every test clip stops here
        exclude_seen(cv_splits(ds, test_folds=args.test_folds), seen_mask(model.provenance, ds),
                     allow_seen=args.allow_seen, dataset=ds)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="esc50svm-"))
    print(f"# {ds.root}: {len(ds)} clips, {len(ds.classes)} classes, folds "
          f"{sorted(set(ds.folds.tolist()))}; network: {source} ({model.fingerprint[:12]}); "
          f"cache {cache}", flush=True)
    results: dict = {"dataset": str(ds.root), "clips": len(ds), "network": source,
                     "fingerprint": model.fingerprint, "machine": platform.platform(),
                     "torch_threads": torch.get_num_threads(), "jobs": args.jobs,
                     "test_folds": args.test_folds, "solver": args.solver,
                     "max_iter": args.max_iter,
                     "load_average_at_start": os.getloadavg(), "runs": []}
    runs = [(p, None, args.layers) for p in args.protocols]
    if "paper" in args.protocols and args.paper_scale_512:
        runs.append(("paper", 512.0, args.paper_scale_512))
    for proto_name, scale, layers in runs:
        proto = SvmProtocol(proto_name, input_scale=scale, solver=args.solver,
                         max_iter=args.max_iter)
        started = time.perf_counter()
        feats = extract_features(model, ds, layers, proto, cache_dir=cache,
                                 options=RunOptions(batch_size=args.batch_size,
                                                            workers=args.workers))
        cold = time.perf_counter() - started
        started = time.perf_counter()
        extract_features(model, ds, layers, proto, cache_dir=cache)
        warm = time.perf_counter() - started
        first = feats[layers[0]]
        print(f"## {proto_name} x{scale or 'net'}: features for {layers}: "
              f"{cold:.1f} s ({first.cached} clips were cached), from cache {warm:.2f} s "
              f"(x{cold / warm:.0f}); {len(first.failures)} failed", flush=True)
        results["runs"].append({"kind": "features", "protocol": proto_name, "input_scale": scale,
                                "layers": layers, "seconds": cold, "cached_clips": first.cached,
                                "cache_seconds": warm, "failed": len(first.failures)})
        for layer in layers:
            fs = feats[layer]
            splits = exclude_seen(cv_splits(fs.dataset, test_folds=args.test_folds),
                                  seen_mask(model.provenance, fs.dataset),
                                  allow_seen=args.allow_seen, dataset=fs.dataset)
            row = {"kind": "cv", "layer": layer, "protocol": proto_name, "input_scale":
                   fs.key.input_scale, "frames": fs.activations[0].shape[0],
                   "window": fs.window, "dims": None}
            jobs = args.jobs
            if proto_name == "paper":
                gb = paper_gigabytes(fs, max(s.train.size for s in splits), args.solver)
                row["dims"] = fs.window * fs.activations[0].shape[1]
                jobs = max(1, min(jobs, int(args.max_gb // gb)))  # parallel fits multiply memory
                if gb > args.max_gb:
                    row["skipped"] = f"training windows need ~{gb:.0f} GB > --max-gb {args.max_gb}"
                    print(f"{layer:6s} {proto_name:6s} skipped: {row['skipped']}", flush=True)
                    results["runs"].append(row)
                    continue
            else:
                row["dims"] = 2 * fs.activations[0].shape[1]
            started = time.perf_counter()
            rep = cross_validate(fs, proto, splits, jobs=jobs)
            row.update(seconds=time.perf_counter() - started, mean=rep.mean, std=rep.std,
                       folds=[f.accuracy for f in rep.folds], C=[f.C for f in rep.folds],
                       converged=all(f.converged for f in rep.folds), jobs=jobs,
                       contaminated=rep.contaminated, excluded_seen=rep.excluded,
                       folds_contaminated=[f.contaminated for f in rep.folds],
                       folds_excluded_seen=[f.excluded for f in rep.folds],
                       skipped_folds=[k.name for k in rep.skipped])
            dirty = " contaminated" if rep.contaminated else ""
            print(f"{layer:6s} {proto_name:6s} x{fs.key.input_scale:g}: "
                  f"{rep.mean:.1%} ± {rep.std:.1%}{dirty} "
                  f"folds {[f'{a:.3f}' + (' contaminated' if c else '') for a, c in zip(row['folds'], row['folds_contaminated'])]} "
                  f"C {row['C']} in {row['seconds']:.1f} s ({jobs} job(s))"
                  f"{'' if row['converged'] else ' NOT CONVERGED'}", flush=True)
            results["runs"].append(row)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
    print()
    print("| layer | protocol | input scale | frames (T) / window | dims | accuracy (mean ± std) "
          "| CV time |")
    print("|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        if r["kind"] != "cv":
            continue
        acc = r.get("skipped") or (f"{r['mean']:.1%} ± {r['std']:.1%}"
                                   + (" contaminated" if r.get("contaminated") else ""))
        t = f"{r['seconds']:.0f} s" if "seconds" in r else "—"
        print(f"| {r['layer']} | {r['protocol']} | {r['input_scale']:g} | {r['frames']} / "
              f"{r['window']} | {r['dims']} | {acc} | {t} |")
    results["load_average_at_end"] = os.getloadavg()
    print(f"load average (1/5/15 min) at start {results['load_average_at_start']}, "
          f"at end {results['load_average_at_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
