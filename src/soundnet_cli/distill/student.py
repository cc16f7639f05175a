"""Stage 2 of student–teacher training (``soundnet distill``): the sound network learns to predict
what visual teachers saw, from the audio alone.

The student is SoundNet with one head per teacher (the head's name and labels are the teacher's),
trained on a targets collection (:mod:`soundnet_cli.distill.targets`) with the original settings:

- **Clips**: ``clip_seconds`` = 20 s, i.e. ``clip_steps`` = 4 teacher steps of 5 s. A clip is
  the first 20 s of the video (``crop="random"``: a random step-aligned window of longer stored
  videos). A video with fewer steps is zero-padded to whole steps, then tiled (repeated) to the
  clip length, its targets tiled the same way: a 3-step video gives steps 0, 1, 2, 0.
- **Steps**: head output frame ``i`` is paired with teacher step ``i``. With the original head
  (SoundNet-8 conv8: kernel 8, stride 2, no padding, hop 65,536 samples) a 20 s clip yields
  exactly 4 output frames, one per 5 s step, as in the original code (SoundNet-5's heads give one
  frame per 5 s too). The hop (~2.97 s) is not 5 s: frames do not sit on step boundaries, the
  original simply pairs them in order. When a clip/head combination gives ``T`` frames for ``S``
  steps with ``T != S``, the logits are average-pooled over time onto the ``S`` steps
  (``adaptive_avg_pool1d``) — see :func:`match_steps`; :func:`step_plan` reports which applies.
- **Loss**: KL(teacher || student) for every head and step, averaged, times ``kl_weight``
  (lambda = 250). ``kl_reduction="elementwise"`` (default) is the original's
  ``DistKLDivCriterion`` averaging: each KL is also divided by the number of classes (the
  original's per-element mean over batch x classes); ``"distribution"`` averages plain KLs.
- **Optimiser**: Adam, lr 1e-3, beta1 0.9, batch 64, seed 0, constant rate, no weight decay.

The training loop, checkpoints, exact resume, seeds, metrics log and DDP are the shared core's
(:func:`soundnet_cli.training.loop.fit`); randomness (shuffling, random crops) is a pure function of
``(seed, epoch, index)``. Validation (held-out clips, first window) reports ``val_kl`` (mean KL in
nats per distribution), ``val_step_agreement`` (student and teacher top-1 agree, per step) and
``val_agreement`` (per clip: top-1 of the step-averaged distributions), averaged over teachers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import TargetsError
from ..model import ORIGINAL_HEAD_GEOMETRY, ORIGINAL_HEAD_SKIP_LAST, HeadSpec, SoundNet, make_config
from ..provenance import RECORD_KEY, training_record
from ..runtime.batch import iter_dataset
from ..training.batches import batch_count, epoch_batches
from ..training.loop import (
    EpochReport,
    LoopConfig,
    check_run_dir,
    fit,
    loop_options_hint,
    seed_everything,
)
from ..weights.checkpoint import load_checkpoint
from .targets import Entry, TargetsHeader, read_clip_audio, read_clip_probs, read_header, read_index

#: The original student–teacher optimisation settings (Adam 1e-3, beta1 0.9, batch 64, seed 0).
ORIGINAL_LOOP = LoopConfig(epochs=10, batch_size=64, lr=1e-3, optimizer="adam", weight_decay=0.0,
                           betas=(0.9, 0.999), schedule="constant", warmup_epochs=0.0,
                           grad_clip=0.0, seed=0, select_metric="val_agreement", precise_bn=16)


@loop_options_hint
@dataclass(frozen=True)
class DistillConfig:
    """A whole distillation run (defaults: the original's settings)."""

    arch: str = "soundnet8"
    init: str | None = None
    width: float = 1.0
    teachers: tuple[str, ...] | None = None  # None: every teacher of the targets
    clip_seconds: float = 20.0
    crop: str = "first"  # first | random
    kl_weight: float = 250.0
    kl_reduction: str = "elementwise"  # elementwise (original) | distribution
    head_geometry: tuple[int, int, int] | None = None  # (kernel, stride, padding); None: original
    val_fraction: float = 0.0
    val_targets: str | None = None
    loop: LoopConfig = ORIGINAL_LOOP
    workers: int = 2

    def __post_init__(self) -> None:
        if self.crop not in ("first", "random"):
            raise TargetsError(f"crop must be first or random, not {self.crop!r}")
        if self.kl_reduction not in ("elementwise", "distribution"):
            raise TargetsError(f"kl_reduction must be elementwise or distribution, "
                               f"not {self.kl_reduction!r}")
        if not 0 <= self.val_fraction < 1:
            raise TargetsError("--val-fraction must be in [0, 1)")
        if self.kl_weight <= 0:
            raise TargetsError("--kl-weight must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Steps and loss


def match_steps(logits: torch.Tensor, steps: int) -> torch.Tensor:
    """Head logits ``(batch, classes, T)`` onto ``steps`` teacher steps ``(batch, classes, steps)``.

    Identity when ``T == steps`` (output frame ``i`` <-> step ``i``, the original's rule); else
    adaptive average pooling over time (each step gets the mean of the frames over its share of
    the clip; frames are repeated when ``T < steps``).
    """
    if logits.shape[-1] == steps:
        return logits
    return F.adaptive_avg_pool1d(logits, steps)


def distill_loss(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
                 kl_weight: float = 250.0,
                 reduction: str = "elementwise") -> tuple[torch.Tensor, dict[str, float]]:
    """The student–teacher loss and batch metrics.

    Parameters
    ----------
    outputs
        ``{teacher: logits (batch, classes, T)}`` from the student's heads.
    targets
        ``{teacher: probabilities (batch, steps, classes)}``.

    Returns
    -------
    loss, metrics
        ``kl_weight`` x mean over teachers of the mean KL(teacher || student) per step (divided
        by the class count with ``reduction="elementwise"``, as the original); metrics ``kl``
        (plain mean KL in nats) and ``agreement`` (per-step top-1 agreement), averaged over
        teachers.
    """
    terms, kls, agree = [], [], []
    for name, t in targets.items():
        logp = F.log_softmax(match_steps(outputs[name].float(), t.shape[1]), dim=1).transpose(1, 2)
        kl = (torch.special.xlogy(t, t) - t * logp).sum(-1)  # (batch, steps)
        terms.append(kl.mean() / (t.shape[-1] if reduction == "elementwise" else 1))
        kls.append(float(kl.detach().mean()))
        agree.append(float((logp.detach().argmax(-1) == t.argmax(-1)).float().mean()))
    loss = kl_weight * torch.stack(terms).mean()
    return loss, {"kl": float(np.mean(kls)), "agreement": float(np.mean(agree))}


def step_plan(model: SoundNet, heads: Sequence[str], clip_samples: int,
              clip_steps: int) -> dict[str, Any]:
    """How the student's frames meet the teacher's steps for one clip length.

    Returns ``{"clip_steps", "student_steps", "matching"}`` (``one-to-one`` or
    ``average-pooled``); raises :class:`TargetsError` when the clip is too short for the heads.
    """
    frames = {model.geometry(h).frames(clip_samples) for h in heads}
    t = frames.pop()
    if t == 0:
        need = max(model.geometry(h).min_samples() for h in heads) / model.config.sample_rate
        raise TargetsError(f"clips of {clip_samples / model.config.sample_rate:g} s are too short "
                           f"for the student's heads (at least {need:.2f} s)")
    return {"clip_steps": clip_steps, "student_steps": t,
            "matching": "one-to-one" if t == clip_steps else "average-pooled"}


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ClipRef:
    """One clip of one collection."""

    root: str
    entry: Entry


def is_validation(key: str, fraction: float) -> bool:
    """Deterministic split by a hash of the clip key (stable as a collection grows)."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


class DistillTask:
    """Training and validation data for :func:`training.fit` (a :class:`training.Task`)."""

    def __init__(self, train: Sequence[ClipRef], val: Sequence[ClipRef], header: TargetsHeader,
                 teachers: Sequence[str], cfg: DistillConfig, batch_size: int, seed: int) -> None:
        self.train, self.val = list(train), list(val)
        self.header, self.teachers, self.cfg = header, tuple(teachers), cfg
        self.batch_size, self.seed = batch_size, seed
        self.step_samples = header.step_samples
        steps = cfg.clip_seconds / header.step_seconds
        if steps < 1 or abs(steps - round(steps)) > 1e-6:
            raise TargetsError(f"--clip-seconds {cfg.clip_seconds:g} must be a whole number of "
                               f"the targets' {header.step_seconds:g} s steps")
        self.clip_steps = int(round(steps))
        self.clip_samples = self.clip_steps * self.step_samples

    # -- examples -------------------------------------------------------------------------------
    def clip(self, ref: ClipRef, start_step: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Audio ``(clip_samples,)`` and targets ``{teacher: (clip_steps, classes)}`` of a clip
        starting at ``start_step`` (padding and tiling as the module docstring says)."""
        e, n = ref.entry, self.clip_steps
        probs = read_clip_probs(ref.root, e.key, self.teachers, header=self.header,
                                steps=e.steps)
        if e.steps >= n:
            rows = np.arange(start_step, start_step + n)
            audio = _fit_length(read_clip_audio(ref.root, e.key, start_step * self.step_samples,
                                                self.clip_samples), self.clip_samples)
        else:
            rows = np.resize(np.arange(e.steps), n)  # 0, 1, 2, 0, ...
            audio = _fit_length(read_clip_audio(ref.root, e.key), e.steps * self.step_samples)
            audio = np.resize(audio, self.clip_samples)
        return audio, {name: p[rows] for name, p in probs.items()}

    def example(self, epoch: int, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Training clip ``index`` in ``epoch`` (its random window depends on both only)."""
        ref = self.train[index]
        start = 0
        spare = ref.entry.steps - self.clip_steps
        if self.cfg.crop == "random" and spare > 0:
            start = int(np.random.default_rng([self.seed, epoch, 1, index]).integers(0, spare + 1))
        return self.clip(ref, start)

    # -- training -------------------------------------------------------------------------------
    def num_batches(self, world: int) -> int:
        return batch_count(len(self.train), self.batch_size, world)

    def order(self, epoch: int, rank: int, world: int) -> np.ndarray:
        """This rank's clip indices for ``epoch``, those of its batches in order (see
        :mod:`soundnet_cli.training.batches`)."""
        chunks = epoch_batches(self.seed, epoch, len(self.train), self.batch_size, rank, world)
        return np.concatenate(chunks) if chunks else np.array([], dtype=np.int64)

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[Any]:
        """Batches ``(x (batch, clip_samples), {teacher: (batch, clip_steps, classes)})``, each
        read and stacked whole in one of ``cfg.workers`` loading processes (with more than one
        batch; :func:`~soundnet_cli.runtime.batch.iter_dataset`), in order. A clip that cannot
        be read raises :class:`TargetsError` here, with its message."""
        chunks = epoch_batches(self.seed, epoch, len(self.train), self.batch_size, rank, world)
        workers = self.cfg.workers if len(chunks) > 1 else 0
        for batch in iter_dataset(_Batches(self, epoch, chunks), workers=workers, prefetch=2):
            if isinstance(batch, _Failed):  # raised here, not as a worker's traceback
                raise TargetsError(batch.message)
            yield batch

    def loss(self, model: torch.nn.Module, batch: Any,
             device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        x, ys = batch
        x = x.to(device, non_blocking=True)
        ys = {k: v.to(device, non_blocking=True) for k, v in ys.items()}
        loss, metrics = distill_loss(model(x), ys, self.cfg.kl_weight, self.cfg.kl_reduction)
        return loss, {**metrics, "batch_size": x.shape[0]}

    # -- validation -----------------------------------------------------------------------------
    def validate(self, model: SoundNet, device: torch.device) -> dict[str, float]:
        if not self.val:
            return {}
        return {f"val_{k}": v for k, v in evaluate_clips(model, self, self.val, device).items()}


class _Batches(torch.utils.data.Dataset):
    """Batch ``b`` of an epoch: the examples of ``chunks[b]`` stacked (``default_collate``), or
    the first clip's failure as a value (a loading process hands it back, see :class:`_Failed`)."""

    def __init__(self, task: DistillTask, epoch: int, chunks: Sequence[np.ndarray]) -> None:
        self.task, self.epoch, self.chunks = task, epoch, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, b: int) -> Any:
        try:
            items = [self.task.example(self.epoch, int(i)) for i in self.chunks[b]]
        except TargetsError as e:
            return _Failed(str(e))
        return torch.utils.data.default_collate(items)


@dataclass(frozen=True)
class _Failed:
    """A clip that could not be read, carried out of a loading process."""

    message: str


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` samples."""
    if x.shape[0] >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.shape[0], dtype=np.float32)])


def evaluate_clips(model: SoundNet, task: DistillTask, refs: Sequence[ClipRef],
                   device: torch.device, batch_size: int = 32) -> dict[str, float]:
    """Agreement of ``model`` with the teachers on ``refs`` (first window of each clip).

    Returns ``kl`` (mean KL per step, nats), ``step_agreement``, ``agreement`` (per clip: top-1
    of the step-averaged student and teacher distributions), averaged over teachers, plus
    ``agreement_<teacher>`` for each teacher when there are several.
    """
    sums: dict[str, float] = {}
    count = 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(refs), batch_size):
            clips = [task.clip(r) for r in refs[s : s + batch_size]]
            x = torch.from_numpy(np.stack([a for a, _ in clips])).to(device)
            out = model(x)
            for name in task.teachers:
                t = torch.from_numpy(np.stack([y[name] for _, y in clips])).to(device)
                p = F.softmax(match_steps(out[name].float(), t.shape[1]), dim=1).transpose(1, 2)
                kl = (torch.special.xlogy(t, t) - t * torch.log(p.clamp_min(1e-12))).sum(-1)
                per = {
                    "kl": kl.mean(1),
                    "step_agreement": (p.argmax(-1) == t.argmax(-1)).float().mean(1),
                    "agreement": (p.mean(1).argmax(-1) == t.mean(1).argmax(-1)).float(),
                }
                for k, v in per.items():
                    sums[f"{k}/{name}"] = sums.get(f"{k}/{name}", 0.0) + float(v.sum())
            count += len(clips)
    model.train(was_training)
    result: dict[str, float] = {}
    for k in ("kl", "step_agreement", "agreement"):
        result[k] = float(np.mean([sums[f"{k}/{n}"] / count for n in task.teachers]))
    if len(task.teachers) > 1:
        for n in task.teachers:
            result[f"agreement_{n}"] = sums[f"agreement/{n}"] / count
    return result


# ---------------------------------------------------------------------------------------------
# Runs


def open_targets(path: str | os.PathLike) -> tuple[TargetsHeader, list[ClipRef]]:
    """The header and clips of a targets collection (raises :class:`TargetsError`)."""
    header = read_header(path)
    refs = [ClipRef(str(path), e) for e in read_index(path)]
    if not refs:
        raise TargetsError(f"{path}: the targets collection holds no clips")
    return header, refs


def select_teachers(header: TargetsHeader, wanted: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(wanted) if wanted else header.teacher_names
    for n in names:
        header.teacher(n)
    return names


def build_student(cfg: DistillConfig, header: TargetsHeader,
                  teachers: Sequence[str]) -> tuple[SoundNet, dict[str, Any]]:
    """A fresh student (``cfg.arch``, ``cfg.width``) or ``cfg.init``'s trunk, with one head per
    teacher: the teacher's name and labels, the original head geometry unless overridden."""
    seed_everything(cfg.loop.seed)
    info: dict[str, Any] = {}
    arch = cfg.arch
    base = None
    if cfg.init:
        from ..weights.registry import resolve_weights

        ckpt = load_checkpoint(resolve_weights(cfg.init, option="--init"))
        base, arch = ckpt.build(), ckpt.config.arch
        info = {"init": str(cfg.init), "init_sha256": ckpt.sha256,
                "init_provenance": ckpt.provenance}
    k, s, p = cfg.head_geometry or ORIGINAL_HEAD_GEOMETRY[arch]
    # 20-s examples: like the authors' heads, steps never read the trunk's last frame.
    skip = 0 if cfg.head_geometry else ORIGINAL_HEAD_SKIP_LAST[arch]
    heads = [HeadSpec(n, header.teacher(n).labels, k, s, p, skip) for n in teachers]
    if base is not None:
        base.replace_heads(heads)
        return base.train(), info
    return SoundNet(make_config(arch, heads, width=cfg.width)).train(), info


def prepare(targets: str | os.PathLike,
            cfg: DistillConfig) -> tuple[SoundNet, DistillTask, dict[str, Any]]:
    """The student, the task and a description of the data (clip counts, step matching)."""
    header, refs = open_targets(targets)
    teachers = select_teachers(header, cfg.teachers)
    if cfg.val_targets:
        vheader, val = open_targets(cfg.val_targets)
        for n in teachers:
            if vheader.teacher(n).labels != header.teacher(n).labels:
                raise TargetsError(f"{cfg.val_targets}: teacher {n!r} has other labels than in "
                                   f"{targets}")
        if vheader.step_seconds != header.step_seconds:
            raise TargetsError(f"{cfg.val_targets}: steps of {vheader.step_seconds:g} s, the "
                               f"training targets use {header.step_seconds:g} s")
        train = refs
    else:
        val = [r for r in refs if is_validation(r.entry.key, cfg.val_fraction)]
        train = [r for r in refs if not is_validation(r.entry.key, cfg.val_fraction)]
    if not train:
        raise TargetsError(f"{targets}: no training clips left after the validation split")
    model, init_info = build_student(cfg, header, teachers)
    task = DistillTask(train, val, header, teachers, cfg, cfg.loop.batch_size, cfg.loop.seed)
    plan = step_plan(model, teachers, task.clip_samples, task.clip_steps)
    # The soundtracks come from videos, re-encoded by teach: no fingerprint of theirs can match
    # an audio dataset's files, so the record holds only what --init's network was trained on.
    record = training_record([], dataset=Path(targets).name, layout="soundnet-targets",
                             clips=len(train),
                             init_provenance=init_info.pop("init_provenance", None))
    info = {"targets": str(targets), "teachers": list(teachers), "train_clips": len(train),
            "val_clips": len(val), "step_seconds": header.step_seconds, **plan, **init_info,
            RECORD_KEY: record}
    return model, task, info


def distill(
    targets: str | os.PathLike,
    cfg: DistillConfig,
    run_dir: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    overwrite: bool = False,
    provenance: Mapping[str, Any] | None = None,
    on_progress: Callable[[EpochReport], None] | None = None,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
    stop_after_epoch: int | None = None,
) -> tuple[SoundNet, dict[str, Any], dict[str, Any]]:
    """Train a student on the targets collection ``targets``.

    Returns the network (after the last epoch), the last epoch's metrics and the run description
    (``on_plan`` sees it before training starts). ``run_dir`` is checked first
    (:func:`.training.loop.check_run_dir`: ``resume`` continues, ``overwrite`` starts again).
    """
    check_run_dir(run_dir, cfg.loop, resume, overwrite)
    model, task, info = prepare(targets, cfg)
    if on_plan:
        on_plan(info)
    prov = {"kind": "distill", "distill_config": cfg.to_dict(), **info,
            "teacher_sources": {n: task.header.teacher(n).source for n in task.teachers},
            **dict(provenance or {})}
    last = fit(model, task, cfg.loop, run_dir, device=device, resume=resume, provenance=prov,
               on_progress=on_progress, stop_after_epoch=stop_after_epoch)
    return model, last, info


def evaluate_targets(model: SoundNet, targets: str | os.PathLike, *, clip_seconds: float = 20.0,
                     device: torch.device | str = "cpu", batch_size: int = 32) -> dict[str, float]:
    """Agreement of a trained student with the teachers of a targets collection it may never
    have seen (every clip, first window; see :func:`evaluate_clips`). The student's heads must
    be named after those teachers."""
    header, refs = open_targets(targets)
    teachers = [h for h in model.config.head_names if h in header.teacher_names]
    if not teachers:
        raise TargetsError(f"{targets}: none of the network's heads "
                           f"({', '.join(model.config.head_names)}) is a teacher here")
    cfg = DistillConfig(clip_seconds=clip_seconds)
    task = DistillTask([], refs, header, teachers, cfg, batch_size, 0)
    return evaluate_clips(model, task, refs, torch.device(device), batch_size)
