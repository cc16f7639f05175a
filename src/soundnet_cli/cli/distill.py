"""``soundnet distill``: train a sound network on teacher targets (stage 2 of distillation)."""

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
    err,
    out,
    user_errors,
)
from .runs import resume_hint, save_settings, settle
from .train import Arch, Optim, Schedule


class Crop(str, enum.Enum):
    first = "first"
    random = "random"


class Reduction(str, enum.Enum):
    elementwise = "elementwise"
    distribution = "distribution"


def distill(
    ctx: typer.Context,
    targets: Annotated[Optional[Path], typer.Argument(
        help="Targets directory made by `soundnet teach` (not needed with --resume).",
        show_default=False)] = None,
    teacher: Annotated[Optional[list[str]], typer.Option(
        "--teacher", "-t", help="Learn only from these teachers (repeatable; default: all).",
        show_default=False)] = None,
    arch: Annotated[Arch, typer.Option(help="Student architecture from scratch.")] = Arch.soundnet8,
    init: Annotated[Optional[str], typer.Option(
        help="Start from this checkpoint's trunk (path or name); heads are replaced.",
        show_default=False)] = None,
    clip_seconds: Annotated[float, typer.Option(
        help="Training clip length: a whole number of teacher steps.")] = 20.0,
    crop: Annotated[Crop, typer.Option(
        help="first: each video's first clip (original); random: a random step-aligned clip "
        "of longer videos.")] = Crop.first,
    kl_weight: Annotated[float, typer.Option("--lambda", "--kl-weight",
                                             help="Loss weight lambda.")] = 250.0,
    kl_reduction: Annotated[Reduction, typer.Option(
        help="elementwise: KL also divided by the class count (original DistKLDivCriterion); "
        "distribution: plain mean KL.")] = Reduction.elementwise,
    head_geometry: Annotated[Optional[str], typer.Option(
        help="Student heads' conv KERNEL,STRIDE,PADDING (default: the original's).",
        show_default=False)] = None,
    val_fraction: Annotated[float, typer.Option(
        help="Hold out this fraction of clips (by key hash) for validation.")] = 0.0,
    val_targets: Annotated[Optional[Path], typer.Option(
        help="Validate on another targets directory instead.", show_default=False)] = None,
    epochs: EpochsOpt = 10,
    batch_size: TrainBatchOpt = 64,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    optimizer: Annotated[Optim, typer.Option(help="adam (the original), adamw or sgd.")] = Optim.adam,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 0.0,
    schedule: Annotated[Schedule, typer.Option(help="constant (the original) or cosine.")] = Schedule.constant,
    warmup: Annotated[float, typer.Option(help="Warm-up epochs (cosine schedule).")] = 0.0,
    grad_clip: Annotated[float, typer.Option(help="Gradient norm clip (0: off).")] = 0.0,
    precise_bn: Annotated[int, typer.Option(
        min=0, help="Batches to recompute BatchNorm statistics after each epoch (0: running "
        "averages only).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, shuffling and crops.")] = 0,
    width: WidthOpt = 1.0,
    run_dir: RunDirOpt = Path("runs/distill"),
    out_path: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Final checkpoint (default: RUN_DIR/model.safetensors).",
        show_default=False)] = None,
    half: HalfOpt = False,
    resume: ResumeOpt = False,
    overwrite: RestartOpt = False,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0,
                                         help="Data loading processes.")] = 2,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Train a sound network to predict what the teachers saw, from the audio alone.

    The result is a normal checkpoint with one head per teacher (its labels are the teacher's):
    `soundnet tag`, `extract` and `fit-svm` read it. Each epoch is checkpointed and resumable;
    run it under `torchrun --nproc-per-node N -m soundnet_cli distill ...` for several GPUs.
    """
    params = {k: v for k, v in locals().items() if k != "ctx"}
    argv = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "distill" else sys.argv[1:]
    with user_errors(lambda: resume_hint("distill", Path(params["run_dir"]), argv)):
        params = settle(ctx, distill, params)
        _run(**params)


def _run(targets, teacher, arch, init, clip_seconds, crop, kl_weight, kl_reduction,
         head_geometry, val_fraction, val_targets, epochs, batch_size, lr, optimizer,
         weight_decay, schedule, warmup, grad_clip, precise_bn, seed, width, run_dir, out_path,
         half, resume, overwrite, workers, device, quiet) -> None:
    options = dict(locals())  # as given (or restored by --resume), for RUN_DIR/run.json
    from ..device import resolve_device
    from ..distill.student import DistillConfig
    from ..distill.student import distill as run_distill
    from ..training.loop import LoopConfig, check_run_dir, dist_info
    from ..training.supervised import export
    from .progress import TrainingProgress

    info = dist_info()
    quiet = quiet or not info.main
    has_val = val_fraction > 0 or val_targets is not None
    cfg = DistillConfig(
        arch=arch.value, init=init, width=width, teachers=tuple(teacher) if teacher else None,
        clip_seconds=clip_seconds, crop=crop.value, kl_weight=kl_weight,
        kl_reduction=kl_reduction.value, head_geometry=_geometry(head_geometry),
        val_fraction=val_fraction, val_targets=str(val_targets) if val_targets else None,
        loop=LoopConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer.value,
                        weight_decay=weight_decay, betas=(0.9, 0.999), schedule=schedule.value,
                        warmup_epochs=warmup, grad_clip=grad_clip, seed=seed,
                        select_metric="val_agreement" if has_val else "", precise_bn=precise_bn),
        workers=workers,
    )
    if targets is None:
        raise typer.BadParameter("give the TARGETS directory (or --resume --run-dir of a run "
                                 "started with one)")
    dev = resolve_device(device)
    command = "soundnet " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    check_run_dir(run_dir, cfg.loop, resume, overwrite)

    def on_plan(plan: dict) -> None:
        # The targets are read and checked now: a run that fails before leaves no run.json.
        if info.main and not resume:
            save_settings("distill", options)
        if not quiet:
            err.print(f"{plan['train_clips']} training clip(s), {plan['val_clips']} validation; "
                      f"teachers: {', '.join(plan['teachers'])}; each {clip_seconds:g} s clip: "
                      f"{plan['student_steps']} student step(s) for {plan['clip_steps']} teacher "
                      f"step(s) ({plan['matching']})", highlight=False)

    with TrainingProgress(quiet, epochs, metric="agreement", short="agree") as progress:
        model, last, plan = run_distill(targets, cfg, run_dir, device=dev, resume=resume,
                                        provenance={"command": command},
                                        on_progress=progress.update, on_plan=on_plan)
    if info.main:
        target = out_path or Path(run_dir) / "model.safetensors"
        export(model, target, {"kind": "distill", "command": command, "metrics": last,
                               "distill_config": cfg.to_dict(), **plan}, half)
        summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if isinstance(v, float))
        out.print(f"wrote {target} ({summary})", highlight=False)


def _geometry(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    try:
        k, s, p = (int(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"--head-geometry {text!r}: expected KERNEL,STRIDE,PADDING") from None
    if k < 1 or s < 1 or p < 0:
        raise typer.BadParameter("--head-geometry: kernel and stride >= 1, padding >= 0")
    return k, s, p
