"""The embedded network's ``esc50`` head: recipes by 4-fold cross-validation, then the shipped fit.

The head is a pooled head (``soundnet_cli.model.PooledHeadSpec``) on the authors' frozen trunk:
at every step, the mean and max of pool5 over the step's 32 frames (the window of one objects /
scenes step), then an MLP. Features come from the trunk exactly as tagging computes them:

- test (what ``soundnet tag`` sees for a 5-s clip): the clip looped to the shortest tagging
  input (10.98 s, one step);
- training: the clip looped to 20 s from its start and from its middle (4 steps each, at
  different phases of the clip: 8 examples per clip).

Every recipe is scored by leave-one-fold-out over the folds present (ESC-50 folds 1-4 here;
fold 5 is withheld from this project), on the clips of the held-out fold, with the head trained
on the other three: the mean ± std over folds is the estimate of accuracy on unseen clips. The
recipe is chosen by that mean, never by one fold or one epoch; the shipped head is then trained
with it on all folds (``--final``), its training clips recorded in its provenance.

    PYTHONPATH=src python benchmarks/esc50_head.py --data ../shared/data/esc50 \\
        --weights SOUNDNET8.safetensors --cache /tmp/esc50-head --recipes all
    PYTHONPATH=src python benchmarks/esc50_head.py --data ../shared/data/esc50 \\
        --weights SOUNDNET8.safetensors --cache /tmp/esc50-head --final mlp512 \\
        --out /tmp/esc50-head/esc50.safetensors

Results are recorded in benchmarks/RESULTS.md ("The esc50 head").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from soundnet_cli.audio import load_audio  # noqa: E402
from soundnet_cli.datasets import load_dataset  # noqa: E402
from soundnet_cli.model import PooledHeadSpec, min_tag_samples, pooled_stats  # noqa: E402
from soundnet_cli.audio import loop_to  # noqa: E402
from soundnet_cli.runtime import Engine  # noqa: E402
from soundnet_cli.weights import load_model_file  # noqa: E402

LAYER, WINDOW, STRIDE = "pool5", 32, 8
TRAIN_SECONDS = 20.0


@dataclass(frozen=True)
class Recipe:
    """How a head is trained on the standardised statistics."""

    hidden: int = 512
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.5
    mixup: float = 0.4  # Beta(a, a) mixing of examples and targets; 0: none
    seed: int = 0


RECIPES = {
    "linear": Recipe(hidden=0, dropout=0.5),
    "mlp512": Recipe(),
    "mlp1024": Recipe(hidden=1024),
    "mlp512-nomix": Recipe(mixup=0.0),
    "mlp512-60ep": Recipe(epochs=60),
    "mlp512-mix1": Recipe(mixup=1.0),
    "mlp512-120ep": Recipe(epochs=120),
}


def features(data: Path, weights: Path, cache: Path) -> dict[str, np.ndarray]:
    """pool5 of every clip (train loops and the tagging input), cached in ``cache``."""
    file = cache / "pool5.npz"
    if file.is_file():
        with np.load(file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    model = load_model_file(weights)
    ds = load_dataset(data)
    engine = Engine(model, [LAYER], "cpu")
    test_len, train_len = min_tag_samples(model), int(TRAIN_SECONDS * model.config.sample_rate)
    train, test = [], []
    t0 = time.perf_counter()
    for i, path in enumerate(ds.paths):
        x = load_audio(path)
        loops = np.stack([loop_to(x, train_len), loop_to(np.roll(x, -(len(x) // 2)), train_len)])
        with torch.inference_mode():
            train.append(engine.forward(torch.from_numpy(loops))[LAYER].numpy())
            test.append(engine.forward(torch.from_numpy(loop_to(x, test_len))[None])[LAYER][0]
                        .numpy())
        if i % 200 == 0:
            print(f"features {i}/{len(ds.paths)} {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    out = {"train": np.stack(train).astype(np.float32), "test": np.stack(test).astype(np.float32),
           "label": np.asarray(ds.labels), "fold": np.asarray(ds.folds),
           "classes": np.asarray(ds.classes), "path": np.asarray([str(p) for p in ds.paths])}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, **out)
    return out


def stats(frames: np.ndarray, start: int) -> np.ndarray:
    """Mean and max of ``(..., channels, frames)`` over frames ``start .. start+WINDOW``: the
    network's own :func:`~soundnet_cli.model.pooled_stats`, so training sees what tagging does."""
    window = torch.from_numpy(np.ascontiguousarray(frames[..., start:start + WINDOW]))
    return pooled_stats(window).numpy()


def examples(train: np.ndarray) -> np.ndarray:
    """``(clips, loops, channels, frames)`` -> ``(clips * windows, 2 * channels)``, clip-major.

    The windows are the head's steps plus a last one cut short by the end of the loop (20 s:
    pool5 frames 0-31, 8-39, 16-47 and 24-53): like the one step of a clip looped to 10.98 s,
    which ends at the end of its input, it sees the end's padding."""
    frames = train.shape[-1]
    starts = range(0, frames - WINDOW + STRIDE, STRIDE) if frames > WINDOW else range(1)
    parts = [stats(train, start) for start in starts]  # each (clips, loops, 2C)
    return np.stack(parts, 2).reshape(train.shape[0] * train.shape[1] * len(parts), -1)


def fit(x: np.ndarray, y: np.ndarray, classes: int, r: Recipe) -> torch.nn.Sequential:
    """Train the head; the standardisation is folded into its first layer."""
    mean, scale = x.mean(0), x.std(0) + 1e-3
    xt, yt = torch.from_numpy((x - mean) / scale), torch.from_numpy(y)
    torch.manual_seed(r.seed)
    g = torch.Generator().manual_seed(r.seed)
    layers: list[torch.nn.Module] = [torch.nn.Dropout(r.dropout)]
    if r.hidden:
        layers += [torch.nn.Linear(x.shape[1], r.hidden), torch.nn.ReLU(),
                   torch.nn.Dropout(r.dropout), torch.nn.Linear(r.hidden, classes)]
    else:
        layers += [torch.nn.Linear(x.shape[1], classes)]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    batch = 128
    per_epoch = len(xt) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, r.lr, total_steps=r.epochs * per_epoch)
    beta = torch.distributions.Beta(r.mixup, r.mixup) if r.mixup else None
    net.train()
    for _ in range(r.epochs):
        order = torch.randperm(len(xt), generator=g)
        for b in range(per_epoch):
            i = order[b * batch:(b + 1) * batch]
            xb, yb = xt[i], torch.nn.functional.one_hot(yt[i], classes).float()
            if beta is not None:
                lam = beta.sample((len(i), 1))
                j = torch.randperm(len(i), generator=g)
                xb, yb = lam * xb + (1 - lam) * xb[j], lam * yb + (1 - lam) * yb[j]
            loss = -(torch.log_softmax(net(xb), 1) * yb).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # fold (x - mean) / scale into the first layer
        first = linears[0]
        w = first.weight / torch.from_numpy(scale)
        first.bias -= w @ torch.from_numpy(mean)
        first.weight.copy_(w)
    head = [linears[0]] + ([torch.nn.ReLU(), linears[1]] if r.hidden else [])
    return torch.nn.Sequential(*head).eval()


def cross_validate(f: dict[str, np.ndarray], r: Recipe) -> tuple[list[float], np.ndarray]:
    """Per-fold accuracy, and every clip's probabilities from the head that did not see it."""
    classes = len(f["classes"])
    accs, probs = [], np.zeros((len(f["label"]), classes), np.float32)
    for fold in sorted(set(f["fold"].tolist())):
        tr, te = f["fold"] != fold, f["fold"] == fold
        x = examples(f["train"][tr])
        y = np.repeat(f["label"][tr], x.shape[0] // int(tr.sum()))
        head = fit(x, y, classes, r)
        with torch.no_grad():
            probs[te] = torch.softmax(head(torch.from_numpy(stats(f["test"][te], 0))), 1).numpy()
        accs.append(float((probs[te].argmax(1) == f["label"][te]).mean()))
    return accs, probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--weights", type=Path, required=True,
                    help="the authors' SoundNet-8 (soundnet weights import of sound8.npy)")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--recipes", default="all", help="comma-separated names, or all")
    ap.add_argument("--final", help="recipe to train the shipped head with, on every fold")
    ap.add_argument("--out", type=Path, help="with --final: the head's tensors and spec")
    ap.add_argument("--heldout", action="store_true",
                    help="save each recipe's held-out probabilities (CACHE/heldout-NAME.npz, for "
                    "benchmarks/abstention.py --heldout-scores)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    f = features(args.data, args.weights, args.cache)
    if args.final:
        r = RECIPES[args.final]
        x = examples(f["train"])
        y = np.repeat(f["label"], x.shape[0] // len(f["label"]))
        head = fit(x, y, len(f["classes"]), r)
        spec = PooledHeadSpec("esc50", tuple(str(c) for c in f["classes"]), LAYER, WINDOW,
                              STRIDE, r.hidden)
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in head.state_dict().items()}
        meta = {"spec": json.dumps(spec.__dict__, default=list), "recipe": json.dumps(
            {"name": args.final, **r.__dict__}), "clips": json.dumps(f["path"].tolist())}
        save_file(tensors, str(args.out), metadata=meta)
        print(f"wrote {args.out} ({args.final}, {len(f['label'])} clips)")
        return
    names = list(RECIPES) if args.recipes == "all" else args.recipes.split(",")
    for name in names:
        t0 = time.perf_counter()
        accs, probs = cross_validate(f, RECIPES[name])
        if args.heldout:
            np.savez(args.cache / f"heldout-{name}.npz", probs=probs, label=f["label"],
                     fold=f["fold"])
        print(json.dumps({"recipe": name, **RECIPES[name].__dict__,
                          "folds": [round(100 * a, 1) for a in accs],
                          "mean": round(100 * float(np.mean(accs)), 1),
                          "std": round(100 * float(np.std(accs)), 1),
                          "seconds": round(time.perf_counter() - t0)}), flush=True)


if __name__ == "__main__":
    main()
