"""``soundnet train``: supervised training on a labelled dataset."""

from __future__ import annotations

import enum
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (
    DeviceOpt,
    EpochsOpt,
    HalfOpt,
    QuietOpt,
    RestartOpt,
    ResumeOpt,
    RunDirOpt,
    TrainBatchOpt,
    WidthOpt,
    doc,
    err,
    out,
    user_errors,
)
from .runs import resume_hint, save_settings, settle


class Arch(str, enum.Enum):
    soundnet8 = "soundnet8"
    soundnet5 = "soundnet5"


class Optim(str, enum.Enum):
    adamw = "adamw"
    adam = "adam"
    sgd = "sgd"


class Schedule(str, enum.Enum):
    cosine = "cosine"
    constant = "constant"


def train(
    ctx: typer.Context,
    dataset: Annotated[Optional[Path], typer.Argument(help="Dataset directory (ESC-50 layout or "
                                                      "one folder per class).")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="CSV with path,label[,fold] columns.")] = None,
    layout: Annotated[str, typer.Option(help="auto, esc50, folders or csv.")] = "auto",
    arch: Annotated[Arch, typer.Option(help="Architecture when training from scratch.")] = Arch.soundnet8,
    init: Annotated[Optional[str], typer.Option(help="Fine-tune from this checkpoint (path or "
                                               "name). Its head is kept when its classes are the "
                                               "dataset's (a warm restart), else replaced.")] = None,
    new_head: Annotated[bool, typer.Option("--new-head", help="With --init: always start a fresh "
                                          "head.")] = False,
    val_fold: Annotated[Optional[int], typer.Option(help="Fold held out for validation.")] = None,
    train_folds: Annotated[Optional[str], typer.Option(help="Comma-separated training folds "
                                                      "(default: all but --val-fold).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(
        "--val-fraction", metavar="SHARE", help="Share of each class held out for validation, "
        "drawn with --seed (default: 0.2 for a dataset without folds and at least 5 clips per "
        "class, else none; 0: train on all).")] = None,
    patience: Annotated[int, typer.Option(min=0, help="Stop after this many epochs without a "
                                          "better validation accuracy (0: run every epoch).")] = 0,
    freeze_trunk: Annotated[bool, typer.Option("--freeze-trunk", help="Train only the new head "
                                               "(for a few dozen clips; needs --init).")] = False,
    train_layers: Annotated[Optional[str], typer.Option(
        "--train-layers", metavar="LAYERS", help="Train only these trunk layers and the head, "
        "e.g. conv7 or conv6,conv7 (needs --init).")] = None,
    epochs: EpochsOpt = 100,
    batch_size: TrainBatchOpt = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    optimizer: Annotated[Optim, typer.Option(help="adamw, adam or sgd (Nesterov momentum 0.9).")] = Optim.adamw,
    weight_decay: Annotated[float, typer.Option(help="Weight decay of the optimiser.")] = 1e-4,
    schedule: Annotated[Schedule, typer.Option(help="cosine: linear warm-up, then cosine decay "
                                               "to 1% of --lr; constant: --lr throughout.")] = Schedule.cosine,
    warmup: Annotated[float, typer.Option(help="Warm-up epochs.")] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, shuffling and "
                                      "augmentation (a run is reproducible on CPU).")] = 0,
    clip_seconds: Annotated[float, typer.Option(help="Training example length (s).")] = 5.0,
    crop: Annotated[bool, typer.Option("--crop/--no-crop", help="Random crops of the tiled clip.")] = True,
    gain_db: Annotated[float, typer.Option(help="Random gain range +-dB (0: off).")] = 6.0,
    mix: Annotated[float, typer.Option(help="Probability of between-class mixing (0: off).")] = 1.0,
    stretch: Annotated[float, typer.Option(min=1.0, help="Random time-scale (speed and pitch) by "
                                           "a factor in [1/S, S], e.g. 1.25 (1: off).")] = 1.0,
    precise_bn: Annotated[int, typer.Option(min=0, help="After each epoch, recompute BatchNorm "
                                            "statistics over this many training batches (0: off).")] = 0,
    width: WidthOpt = 1.0,
    run_dir: RunDirOpt = Path("runs/train"),
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Final checkpoint "
                                                     "(default: RUN_DIR/model.safetensors).")] = None,
    half: HalfOpt = False,
    resume: ResumeOpt = False,
    overwrite: RestartOpt = False,
    allow_seen: Annotated[bool, typer.Option(
        "--allow-seen", help="Validate also on clips the --init network was trained on (its "
        "training-data record; excluded by default); the validation figures are then "
        "recorded as contaminated.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Decoding processes.")] = 2,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Train a network on labelled sound clips; each epoch is checkpointed and resumable.

    Run it under `torchrun --nproc-per-node N -m soundnet_cli train ...` for several GPUs or nodes.
    """
    params = {k: v for k, v in locals().items() if k != "ctx"}
    argv = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "train" else sys.argv[1:]
    with user_errors(lambda: resume_hint("train", Path(params["run_dir"]), argv)):
        params = settle(ctx, train, params)
        if params["resume"] and _started_without_val_fraction(Path(params["run_dir"])):
            params["val_fraction"] = 0.0  # such runs never validated a folder dataset
        _run(**params)


def _started_without_val_fraction(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` was started before ``--val-fraction`` existed (its
    ``run.json`` has no such option): it resumes as it started, without the automatic split."""
    import json

    from .runs import SETTINGS_FILE

    try:
        options = json.loads((run_dir / SETTINGS_FILE).read_text(encoding="utf-8"))["options"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(options, dict) and "val_fraction" not in options


# The installed path of the reference page, in the help text.
train.__doc__ = (f"{train.__doc__}\n\n    Reference (fine-tuning on your own sounds, validation, "
                 f"frozen layers): {doc('train.md')}\n")


def _run(dataset, labels, layout, arch, init, new_head, val_fold, train_folds, val_fraction,
         patience, freeze_trunk, train_layers, epochs, batch_size, lr,
         optimizer, weight_decay, schedule, warmup, seed, clip_seconds, crop, gain_db, mix, stretch,
         precise_bn, width,
         run_dir, out_path, half, resume, overwrite, allow_seen, workers, device,
         quiet) -> None:
    options = dict(locals())  # as given (or restored by --resume), for RUN_DIR/run.json
    from ..datasets import load_dataset
    from ..device import resolve_device
    from ..training.augment import AugmentConfig
    from ..training.loop import LoopConfig, check_run_dir, dist_info, run_finished
    from ..training.supervised import TrainConfig, export, train_supervised
    from ..training.validation import resolve_val_fraction
    from ..weights.checkpoint import load_checkpoint
    from .progress import TrainingProgress

    if dataset is None and labels is None:
        raise typer.BadParameter("give a DATASET directory or --labels FILE.csv (or --resume "
                                 "--run-dir of a run started with them)")
    try:
        folds = tuple(int(f) for f in train_folds.split(",")) if train_folds else None
    except ValueError:
        raise typer.BadParameter(
            f"--train-folds {train_folds!r}: comma-separated integers") from None
    layers = _train_layers(freeze_trunk, train_layers, init)
    dev = resolve_device(device)
    data = load_dataset(dataset, layout=layout, labels_csv=labels)
    info = dist_info()
    quiet = quiet or not info.main
    validating = val_fold is not None or resolve_val_fraction(data, val_fold, val_fraction) > 0
    cfg = TrainConfig(
        arch=arch.value, init=init, keep_head=not new_head, width=width, val_fold=val_fold, train_folds=folds,
        val_fraction=val_fraction, train_layers=layers,
        augment=AugmentConfig(clip_seconds, 3, crop, gain_db, mix, stretch),
        loop=LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer.value,
                        weight_decay=weight_decay, schedule=schedule.value, warmup_epochs=warmup,
                        seed=seed, select_metric="val_accuracy" if validating else "",
                        precise_bn=precise_bn, patience=patience),
        workers=workers,
    )
    command = "soundnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    state = check_run_dir(run_dir, cfg.loop, resume, overwrite)  # before any audio is decoded
    target = out_path or Path(run_dir) / "model.safetensors"
    if run_finished(state, cfg.loop) and target.is_file():
        assert state is not None
        out.print(f"{run_dir}: already finished (epoch {int(state['epoch']) + 1} of {epochs}"
                  + (", stopped early" if state.get("stopped") else "")
                  + f"); nothing to do. The network: {target}", highlight=False)
        return
    def on_start() -> None:
        # Everything is checked now: a run that fails before leaves no run.json behind.
        if info.main and not resume:
            save_settings("train", options)

    if data.missing and not quiet:
        err.print(f"[yellow]warning:[/] {len(data.missing)} listed file(s) missing, excluded")
    if data.outside and not quiet:
        err.print(f"[yellow]warning:[/] {len(data.outside)} listed file(s) lie outside the "
                  f"dataset directory, e.g. {data.outside[0]}; used as listed", highlight=False)
    with TrainingProgress(quiet, epochs) as progress:
        model, last, errors = train_supervised(
            data, cfg, run_dir, device=dev, resume=resume, provenance={"command": command},
            on_progress=progress.update, on_decoded=progress.decoded(len(data)),
            allow_seen=allow_seen, on_note=None if quiet else _note, on_start=on_start,
        )
    for e in errors:
        err.print(f"[yellow]skipped:[/] {e}", highlight=False)
    if info.main:
        # The run's own record (clip counts, layout, --init and its sha256, ...) plus the result.
        run_record = load_checkpoint(Path(run_dir) / "last.safetensors").provenance
        export(model, target, {**run_record, "kind": "supervised", "command": command,
                               "metrics": last, "train_config": cfg.to_dict(),
                               "dataset": str(data.root)}, half)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float))
        seen = run_record.get("val_seen") or {}
        if seen.get("contaminated"):
            summary += (f"; validation contaminated: {seen['kept']} clip(s) the --init network "
                        "was trained on")
        elif seen.get("excluded"):
            summary += (f"; {seen['excluded']} validation clip(s) the --init network was "
                        "trained on were excluded")
        out.print(f"wrote {target} ({summary})", highlight=False)
        if not quiet:
            _best_line(Path(run_dir), last, patience)
    if errors:  # trained without them: the model is written, but the run was not complete
        raise typer.Exit(1)


def _note(line: str) -> None:
    err.print(line, highlight=False, markup=False, soft_wrap=True)


def _train_layers(freeze_trunk: bool, train_layers: str | None,
                  init: str | None) -> tuple[str, ...] | None:
    """``--freeze-trunk`` / ``--train-layers`` as :attr:`TrainConfig.train_layers`."""
    if freeze_trunk and train_layers is not None:
        raise typer.BadParameter("--freeze-trunk trains only the head and --train-layers chooses "
                                 "trunk layers to train too: give one of them")
    if (freeze_trunk or train_layers is not None) and not init:
        raise typer.BadParameter("--freeze-trunk and --train-layers keep trained weights fixed: "
                                 "they need --init (a network to fine-tune)")
    if freeze_trunk:
        return ()
    if train_layers is None:
        return None
    return tuple(n.strip() for n in train_layers.split(",") if n.strip())


def _best_line(run_dir: Path, last: dict, patience: int) -> None:
    """On stderr: the best validation epoch and, after early stopping, why the run ended."""
    import json

    from ..training.loop import METRICS_FILE

    lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    epochs = [json.loads(line) for line in lines]
    scored = [e for e in epochs if "val_accuracy" in e]
    if last.get("stopped_early"):
        err.print(f"stopped early after epoch {last['epoch']}: no better val_accuracy for "
                  f"{patience} epochs", highlight=False)
    if scored:
        best = max(scored, key=lambda e: e["val_accuracy"])  # the first of equals, as saved
        err.print(f"best val_accuracy {best['val_accuracy']:.4f} at epoch {best['epoch']}: "
                  f"{run_dir / 'best.safetensors'}", highlight=False, soft_wrap=True)
