"""The training core shared by ``soundnet train`` and ``soundnet distill``.

A :class:`Task` supplies data and a loss; :func:`fit` runs the epochs with everything around them:
optimiser and learning-rate schedule, per-epoch validation, a JSONL metrics log, atomic per-epoch
checkpoints with exact ``resume`` (model, optimiser, scheduler, RNG, epoch), seeds, progress
callbacks and DistributedDataParallel under ``torchrun``.

Run directory layout (``run_dir``)::

    state.pt           resumable state: torch.save of plain tensors/dicts (read weights_only)
    metrics.jsonl      one JSON object per epoch (train loss/accuracy, validation metrics, lr, time)
    last.safetensors   the network after the latest epoch (project checkpoint format)
    best.safetensors   the network with the best validation score so far (when validating)
    run.json           the command's options (written by the CLI, so ``--resume`` alone continues)
    split.csv          which clips trained and which validated (``soundnet train``; see
                       :mod:`.validation`)
    model.safetensors  the exported network (the CLI's default ``--out``)

:func:`check_run_dir` says, before any data is read, whether a directory can take the run:
a directory that holds one needs ``resume`` (continue) or ``overwrite`` (start again: the files
above are deleted, nothing else).

Randomness is explicit: the task derives every random choice from ``(seed, epoch, index)``, so a
run is reproducible on CPU and a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import torch
from torch import nn

from ..errors import SoundNetError
from ..files.fsutil import atomic_path
from ..files.jsonutil import loads as strict_json
from ..model import SoundNet
from ..weights.checkpoint import save_checkpoint

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"
#: Every file a run writes into its directory (what ``overwrite`` deletes).
RUN_FILES = (STATE_FILE, METRICS_FILE, "last.safetensors", "best.safetensors", "run.json",
             "model.safetensors", "split.csv")


@dataclass(frozen=True)
class LoopConfig:
    """Optimisation settings of a run (stored in its state so a resume uses the same).

    ``lr`` is the peak learning rate; ``schedule`` is ``cosine`` (linear warm-up for
    ``warmup_epochs``, then cosine decay to ``lr * min_lr_ratio``) or ``constant``.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"  # adamw | adam | sgd
    weight_decay: float = 1e-4
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"  # cosine | constant
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01
    grad_clip: float = 0.0
    seed: int = 0
    select_metric: str = "val_accuracy"  # higher is better; "" disables best.safetensors
    #: After each epoch, recompute BatchNorm statistics as exact averages over this many training
    #: batches (forward only, no gradients; "precise BN"). 0 keeps the running averages.
    precise_bn: int = 0
    #: Early stopping: end the run after this many epochs in a row without a better
    #: ``select_metric`` (0: run every epoch).
    patience: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def loop_options_hint(cls: type) -> type:
    """Class decorator for run configs holding a ``loop: LoopConfig``: a keyword that belongs to
    the loop (``epochs``, ``lr``, ...) given to the run config itself raises a ``TypeError``
    that says where it goes, instead of Python's bare "unexpected keyword argument"."""
    init = cls.__init__  # type: ignore[misc]
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)}
    own = {f.name for f in dataclasses.fields(cls)}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        misplaced = sorted(k for k in kwargs if k in loop_fields and k not in own)
        if misplaced:
            given = ", ".join(f"{k}={kwargs[k]!r}" for k in misplaced)
            raise TypeError(f"{cls.__name__} has no {', '.join(misplaced)}: "
                            f"{'they belong' if len(misplaced) > 1 else 'it belongs'} to its "
                            f"loop settings (a LoopConfig): {cls.__name__}(loop=dataclasses."
                            f"replace({cls.__name__}().loop, {given}))")
        init(self, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    cls.__init__ = __init__  # type: ignore[misc]
    return cls


class Task(Protocol):
    """What a kind of training supplies to :func:`fit`."""

    def batches(self, epoch: int, rank: int, world: int) -> Iterable[Any]:
        """This rank's training batches for ``epoch`` (a deterministic function of the epoch)."""

    def num_batches(self, world: int) -> int:
        """Batches per epoch on one rank (for progress and the schedule)."""

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean loss of one batch and extra per-batch metrics (summed per epoch as means)."""

    def validate(self, model: SoundNet, device: torch.device) -> dict[str, float]:
        """Validation metrics (empty when there is no validation data)."""


@dataclass
class EpochReport:
    """What a progress callback sees after each batch and each epoch."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    metrics: dict[str, float]
    samples_per_s: float
    done: bool = False


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from torchrun's environment (1 process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); no-op for 1 process."""
    info = dist_info()
    if info.world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return info


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def make_optimizer(model: nn.Module, cfg: LoopConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg``; no weight decay on biases and BatchNorm parameters."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:  # frozen layers (see .freeze) are not optimised
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # foreach: one multi-tensor kernel per update term instead of a Python loop over the
    # parameters; the same arithmetic (bit-identical here), twice as fast on CPU. (fused=True is
    # faster still but rounds differently.)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, foreach=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               foreach=True)
    raise SoundNetError(f"unknown optimizer {cfg.optimizer!r}: adamw, adam or sgd")


def make_scheduler(opt: torch.optim.Optimizer, cfg: LoopConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step learning-rate multiplier: warm-up then cosine, or constant."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if cfg.schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    if cfg.schedule not in ("cosine", "constant"):
        raise SoundNetError(f"unknown schedule {cfg.schedule!r}: cosine or constant")
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _rng_state() -> dict[str, Any]:
    import numpy as np

    np_state: Any = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2] if random.getstate()[2] is not None else None,
        "numpy_keys": torch.from_numpy(np_state[1].astype("int64")),
        "numpy_pos": int(np_state[2]),
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype("uint32"),
                         state["numpy_pos"], 0, 0.0))


def save_state(path: Path, model: SoundNet, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LambdaLR, epoch: int, cfg: LoopConfig,
               extra: Mapping[str, Any], best: float, stale: int = 0,
               stopped: bool = False) -> None:
    """Write the resumable state atomically (plain tensors and containers only). ``stale``:
    epochs since the best one; ``stopped``: early stopping ended the run after ``epoch``."""
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "model_config": model.config.to_json(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": _rng_state(),
        "loop_config": json.dumps(cfg.to_dict()),
        "extra": json.dumps(dict(extra), default=str),
        "best": best,
        "stale": stale,
        "stopped": stopped,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`; never unpickles arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise SoundNetError(f"{path}: cannot resume from this file: {e}") from e


def check_run_dir(run_dir: str | os.PathLike, cfg: LoopConfig, resume: bool = False,
                  overwrite: bool = False) -> dict[str, Any] | None:
    """Check that ``run_dir`` can take a run with ``cfg``, before any data is read.

    Returns the saved state when resuming. Raises :class:`SoundNetError` when ``resume`` finds
    no state or one written with another loop config, and when the directory holds a run and
    neither ``resume`` nor ``overwrite`` is given. ``overwrite`` deletes the run's files
    (:data:`RUN_FILES`) first, and nothing else.
    """
    run_dir = Path(run_dir)
    state_path = run_dir / STATE_FILE
    if resume and overwrite:
        raise SoundNetError("--resume continues the run in --run-dir and --overwrite starts it "
                            "again: give one of them")
    if overwrite:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        return None
    if resume:
        if not state_path.is_file():
            raise SoundNetError(f"--resume: no {STATE_FILE} in {run_dir} (no epoch of a run "
                                "finished there); start it without --resume")
        state = load_state(state_path)
        saved_cfg = strict_json(state["loop_config"])
        defaults = json.loads(json.dumps(LoopConfig().to_dict()))
        saved_cfg = {**{k: v for k, v in defaults.items() if k not in saved_cfg}, **saved_cfg}
        if saved_cfg != json.loads(json.dumps(cfg.to_dict())):
            raise SoundNetError(f"{state_path}: was written with other settings "
                                f"({_diff(saved_cfg, cfg.to_dict())}); resume with the same ones")
        return state
    if state_path.is_file():
        raise SoundNetError(f"{run_dir} already holds a run; pass --resume to continue it, "
                            "--overwrite to start it again, or choose another --run-dir")
    return None


def run_finished(state: Mapping[str, Any] | None, cfg: LoopConfig) -> bool:
    """Whether a saved state (:func:`check_run_dir`'s) is of a run with nothing left to do: every
    epoch done, or ended by early stopping."""
    if state is None:
        return False
    return bool(state.get("stopped")) or int(state["epoch"]) + 1 >= cfg.epochs


def train_mode(model: nn.Module) -> None:
    """``model.train()``, frozen layers' BatchNorm kept in inference mode (see :mod:`.freeze`)."""
    from .freeze import hold_frozen_statistics

    model.train()
    hold_frozen_statistics(model)


def fit(
    model: SoundNet,
    task: Task,
    cfg: LoopConfig,
    run_dir: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    provenance: Mapping[str, Any] | None = None,
    on_progress: Callable[[EpochReport], None] | None = None,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` on ``task`` for ``cfg.epochs`` epochs, checkpointing every epoch.

    With ``resume``, continues from ``run_dir/state.pt`` exactly (same weights, optimiser,
    schedule, RNG and epoch counter) and refuses a state from a different loop config.
    ``stop_after_epoch`` ends early after that epoch (used to test interruption). With
    ``cfg.patience``, the run ends after that many epochs without a better validation score
    (the returned metrics then say ``stopped_early: True``); a resumed run that had ended so
    does nothing.

    Returns the last epoch's metrics. Only rank 0 writes files under DDP.
    """
    run_dir = Path(run_dir)
    dist = init_distributed(device)
    seed_everything(cfg.seed)
    model.to(device)
    opt = make_optimizer(model, cfg)
    steps = task.num_batches(dist.world)
    sched = make_scheduler(opt, cfg, steps)
    start_epoch, best, stale, stopped = 0, -math.inf, 0, False
    state_path = run_dir / STATE_FILE
    state = check_run_dir(run_dir, cfg, resume)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
        stale, stopped = int(state.get("stale", 0)), bool(state.get("stopped", False))
    if stopped:
        start_epoch = cfg.epochs
    wrapped: nn.Module = model
    if dist.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    last: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        train = _train_epoch(wrapped, task, opt, sched, cfg, epoch, dist, device, on_progress)
        if cfg.precise_bn > 0:
            precise_batchnorm(model, task, epoch, dist, device, cfg.precise_bn)
        model.eval()
        val = task.validate(model, device) if dist.main else {}
        train_mode(model)
        seconds = time.perf_counter() - t0
        last = {"epoch": epoch + 1, **train, **val, "lr": opt.param_groups[0]["lr"],
                "seconds": round(seconds, 2)}
        score = val.get(cfg.select_metric) if cfg.select_metric else None
        improved = score is not None and score > best
        if score is not None and improved:
            best = float(score)
        stale = 0 if improved else stale + 1
        # every rank decides alike: the score is rank 0's, so under DDP (no validation elsewhere)
        # early stopping is decided from the broadcast flag
        stopped = _agree(bool(cfg.patience > 0 and score is not None and stale >= cfg.patience
                              and epoch + 1 < cfg.epochs), dist, device)
        if dist.main:
            meta = {**dict(provenance or {}), "epoch": epoch + 1, "metrics": last}
            save_checkpoint(model, run_dir / "last.safetensors", provenance=meta)
            if improved:
                save_checkpoint(model, run_dir / "best.safetensors", provenance=meta)
            save_state(state_path, model, opt, sched, epoch, cfg, provenance or {}, best, stale,
                       stopped)
            with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(last, allow_nan=False) + "\n")
        if stopped:
            last = {**last, "stopped_early": True}
        if on_progress:
            on_progress(EpochReport(epoch + 1, cfg.epochs, steps, steps, train["train_loss"],
                                    {**train, **val}, 0.0, done=True))
        if stopped or (stop_after_epoch is not None and epoch + 1 >= stop_after_epoch):
            break
    if dist.world > 1:
        torch.distributed.barrier()
    return last


def _agree(flag: bool, dist: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (itself for one process)."""
    if dist.world == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.broadcast(t, src=0)
    return bool(t.item())


def _train_epoch(model: nn.Module, task: Task, opt: torch.optim.Optimizer,
                 sched: torch.optim.lr_scheduler.LambdaLR, cfg: LoopConfig, epoch: int,
                 dist: DistInfo, device: torch.device,
                 on_progress: Callable[[EpochReport], None] | None) -> dict[str, float]:
    train_mode(model)
    total, count = 0.0, 0
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    n = task.num_batches(dist.world)
    seen = 0
    for i, batch in enumerate(task.batches(epoch, dist.rank, dist.world)):
        loss, extra = task.loss(model, batch, device)
        if not math.isfinite(float(loss.detach())):  # one NaN step would poison every weight
            raise SoundNetError(
                f"the training loss became {float(loss.detach())} at epoch {epoch + 1}, batch "
                f"{i + 1}; stopped before the weights were updated (nothing of this epoch was "
                "saved). Check the data for huge or corrupt samples, or lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        total += float(loss.detach())
        count += 1
        seen += int(extra.pop("batch_size", 0))
        for k, v in extra.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        if on_progress:
            rate = seen / max(1e-9, time.perf_counter() - t0)
            on_progress(EpochReport(epoch + 1, cfg.epochs, i + 1, n, total / count,
                                    {k: v / count for k, v in sums.items()}, rate))
    if count == 0:
        raise SoundNetError("an epoch had no training batches (dataset too small for the batch "
                            "size across processes?)")
    return {"train_loss": total / count, **{f"train_{k}": v / count for k, v in sums.items()}}


def precise_batchnorm(model: nn.Module, task: Task, epoch: int, dist: DistInfo,
                      device: torch.device, batches: int) -> None:
    """Replace every BatchNorm's running statistics by exact averages over the first
    ``batches`` training batches of ``epoch`` (forward passes in training mode, no gradients).

    Running averages with momentum lag behind weights that are still changing, which matters for
    short runs; training itself never reads them, so this changes only what evaluation and the
    saved checkpoints see.
    """
    from .freeze import is_frozen

    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and not is_frozen(m)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    train_mode(model)
    with torch.no_grad():
        for i, batch in enumerate(task.batches(epoch, dist.rank, dist.world)):
            if i >= batches:
                break
            task.loss(model, batch, device)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    b = json.loads(json.dumps(dict(b)))
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys) or "unknown"
