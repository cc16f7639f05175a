"""Does a head step depend on where the clip ends? The padding-made last frame, measured.

For each of ``--clips`` ESC-50 recordings (a fixed random choice) and each length L, the clip is
looped to L and to 60 s; every step of the L-s input covers the same samples as the same step of
the 60-s one, so their objects/scenes distributions differ only by what the end of the input
does to them. Printed: the worst step's sum of absolute differences (2.0: a different answer),
with the heads reading every conv7 frame (as the original code and this tool before
``skip_last``) and with the last frame skipped (``HeadSpec.skip_last``, the shipped network).

    PYTHONPATH=src python benchmarks/edge_steps.py --data ../shared/data/esc50 \\
        --weights weights/soundnet8.safetensors

Results are recorded in docs/tag.md and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.audio import load_audio  # noqa: E402
from soundnet_cli.datasets import load_dataset  # noqa: E402
from soundnet_cli.audio import loop_to  # noqa: E402
from soundnet_cli.weights import load_model_file  # noqa: E402

LENGTHS = (10, 10.5, 11, 12, 13, 14, 15, 16, 17, 18, 20, 24, 30, 40)
REFERENCE = 60.0


def steps(model, wave: np.ndarray, skip: int) -> dict[str, np.ndarray] | None:
    """``{head: (classes, steps)}`` softmax of the objects/scenes heads reading conv7 without its
    last ``skip`` frames (None when no step fits)."""
    with torch.inference_mode():
        conv7 = model.features(torch.from_numpy(np.ascontiguousarray(wave))[None], ["conv7"])
        x = conv7["conv7"][..., : conv7["conv7"].shape[-1] - skip]
        if x.shape[-1] < model.heads["objects"].kernel_size[0]:
            return None
        return {h: torch.softmax(model.heads[h](x)[0], 0).numpy() for h in ("objects", "scenes")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model_file(args.weights)
    ds = load_dataset(args.data)
    rate = model.config.sample_rate
    chosen = np.random.default_rng(args.seed).choice(len(ds.paths), args.clips, replace=False)
    worst: dict[tuple[float, int], float] = {}
    for i in chosen:
        x = load_audio(ds.paths[int(i)])
        ref = steps(model, loop_to(x, int(REFERENCE * rate)), 0)
        assert ref is not None
        for length in LENGTHS:
            for skip in (0, 1):
                got = steps(model, loop_to(x, int(length * rate)), skip)
                if got is None:
                    continue
                d = max(float(np.abs(got[h] - ref[h][:, :got[h].shape[1]]).sum(0).max())
                        for h in got)
                worst[length, skip] = max(worst.get((length, skip), 0.0), d)
    print("| length (s) | " + " | ".join(f"{x:g}" for x in LENGTHS) + " |")
    print("|---|" + "---|" * len(LENGTHS))
    for skip, name in ((0, "every frame read"), (1, "last frame skipped")):
        cells = [f"{worst[x, skip]:.2f}" if (x, skip) in worst else "—" for x in LENGTHS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
