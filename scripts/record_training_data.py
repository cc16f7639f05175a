"""Add a training-data record to a checkpoint made before `soundnet train` wrote one.

    PYTHONPATH=src python scripts/record_training_data.py runs/esc50/model.safetensors \
        ../shared/data/esc50 --folds 1,2,3,4 --strip /work/shared/=../shared/ --strip /work/runs/=runs/

Fingerprints the clips of DATASET (all of them, or those of ``--folds``) exactly as `soundnet
train` does (:func:`soundnet_cli.provenance.dataset_record`) and writes them into the checkpoint's
provenance under ``training_data``. Every tensor stays byte-identical, which the script verifies
(raw bytes of every tensor, dtype and shape, and the network fingerprint) before replacing the file.
``--strip OLD=NEW`` rewrites path prefixes in every string of the provenance, so that no absolute
path of the machine it was trained on is left; the script refuses to finish while one is
(any string starting with ``/`` or containing ``/work/``).

Use it only for a network whose training clips you know: the record is what `fit-svm` and
`benchmarks/esc50_eval.py` trust to exclude seen clips.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.datasets import load_dataset  # noqa: E402
from soundnet_cli.files import atomic_path  # noqa: E402
from soundnet_cli.provenance import RECORD_KEY, dataset_record  # noqa: E402
from soundnet_cli.weights.checkpoint import (  # noqa: E402
    file_sha256,
    load_checkpoint,
    rewrite_provenance,
)


def tensor_bytes(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    """``{name: (dtype, shape, raw bytes)}`` straight from a safetensors file."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    header.pop("__metadata__", None)
    base = 8 + size
    return {k: (v["dtype"], tuple(v["shape"]), data[base + v["data_offsets"][0]:
                                                    base + v["data_offsets"][1]])
            for k, v in header.items()}


def strip_paths(value: Any, rules: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in rules:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: strip_paths(v, rules) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_paths(v, rules) for v in value]
    return value


def absolute_paths(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.startswith("/") or "/work/" in value else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in absolute_paths(v)]
    if isinstance(value, list):
        return [s for v in value for s in absolute_paths(v)]
    return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--folds", default=None, help="comma-separated training folds (default: all)")
    ap.add_argument("--strip", action="append", default=[], metavar="OLD=NEW",
                    help="replace this path prefix in the provenance's strings (repeatable)")
    ap.add_argument("--note", default="", help="say how the record was made")
    ap.add_argument("--out", type=Path, default=None, help="default: replace CHECKPOINT")
    args = ap.parse_args()

    before = load_checkpoint(args.checkpoint)
    size_before = args.checkpoint.stat().st_size
    ds = load_dataset(args.dataset)
    if args.folds:
        ds = ds.select_folds([int(f) for f in args.folds.split(",")])
    record = dataset_record(ds, range(len(ds)))
    if args.note:
        record["note"] = args.note
    rules = [tuple(r.split("=", 1)) for r in args.strip]
    provenance = strip_paths({**before.provenance, RECORD_KEY: record}, rules)  # type: ignore[arg-type]
    left = absolute_paths(provenance)
    if left:
        sys.exit(f"absolute paths left in the provenance (add --strip): {left[:5]}")
    with tempfile.TemporaryDirectory() as tmp:
        staged = rewrite_provenance(args.checkpoint, provenance, Path(tmp) / "staged.safetensors")
        after = load_checkpoint(staged)
        assert tensor_bytes(staged) == tensor_bytes(args.checkpoint), "tensor bytes differ"
        assert after.state_dict.keys() == before.state_dict.keys()
        for k, v in before.state_dict.items():
            w = after.state_dict[k]
            assert v.dtype == w.dtype and v.shape == w.shape and bool((v == w).all()), k
        assert after.build().fingerprint == before.build().fingerprint, "fingerprint changed"
        target = args.out or args.checkpoint
        with atomic_path(target) as tmp_target:
            Path(tmp_target).write_bytes(staged.read_bytes())
    print(json.dumps({"file": str(target), "bytes": target.stat().st_size,
                      "sha256": file_sha256(target), "fingerprint": after.build().fingerprint,
                      "tensors": len(after.state_dict), "training_clips": record["clips"],
                      "bytes_before": size_before,
                      "bytes_added": target.stat().st_size - size_before}, indent=2))


if __name__ == "__main__":
    main()
