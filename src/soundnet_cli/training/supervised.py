"""Supervised training on a labelled dataset (``soundnet train``).

From scratch (``arch``) or fine-tuned from any checkpoint (``init``, its heads replaced by one head
of the dataset's classes). Waveforms are decoded once into memory (:func:`decode_all`, in the
runtime's decoding processes); every training example is then made on the fly, deterministically
from ``(seed, epoch, index)``: cropped, gain-changed and mixed between classes as
:mod:`.augment` says.

The loss is the cross-entropy against the (soft) target at every output step, averaged.
Validation reads whole clips (tiled up to ``clip_seconds`` when shorter): clip probabilities are the
mean of the per-step softmax, as ``soundnet tag`` computes them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import tile
from ..datasets import Dataset, Split, check_leakage, readable_label
from ..errors import DatasetError, SoundNetError
from ..model import SoundNet, classifier_head, make_config
from ..provenance import RECORD_KEY, dataset_record, exclude_seen, seen_mask
from ..runtime.batch import iter_decoded
from ..runtime.engine import Engine
from ..runtime.options import MICRO_BATCH_SAMPLES, available_cores
from ..runtime.stream import prefetched
from ..weights.checkpoint import load_checkpoint, save_checkpoint
from .augment import AugmentConfig, bc_mix, crop, stretched_crop
from .batches import batch_count, epoch_batches, rank_order
from .freeze import freeze
from .loop import (
    METRICS_FILE,
    EpochReport,
    LoopConfig,
    check_run_dir,
    dist_info,
    fit,
    loop_options_hint,
    run_finished,
)
from .validation import resolve_val_fraction, stratified_split, write_split


@loop_options_hint
@dataclass(frozen=True)
class TrainConfig:
    """A whole supervised run: network, data split, augmentation and optimisation."""

    arch: str = "soundnet8"
    init: str | None = None
    width: float = 1.0
    val_fold: int | None = None
    train_folds: tuple[int, ...] | None = None
    #: Stratified share of each class held out for validation (:mod:`.validation`); ``None``:
    #: automatic (0.2 for a dataset without folds and at least 5 clips per class, else none).
    val_fraction: float | None = None
    #: Trunk layers to train (``None``: all; ``()``: none, only the head: ``--freeze-trunk``).
    train_layers: tuple[str, ...] | None = None
    readable_labels: bool = True
    keep_head: bool = True  # with ``init``: keep its head when its classes equal the dataset's
    augment: AugmentConfig = AugmentConfig()
    loop: LoopConfig = LoopConfig()
    workers: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SupervisedTask:
    """Training and validation data for :func:`training.fit` (a :class:`training.Task`)."""

    def __init__(self, train_waves: Sequence[np.ndarray], train_labels: np.ndarray,
                 val_waves: Sequence[np.ndarray], val_labels: np.ndarray, classes: int,
                 aug: AugmentConfig, batch_size: int, seed: int, sample_rate: int,
                 head: str = "classes") -> None:
        self.train_waves, self.train_labels = list(train_waves), np.asarray(train_labels)
        self.val_waves, self.val_labels = list(val_waves), np.asarray(val_labels)
        self.classes, self.aug, self.batch_size, self.seed = classes, aug, batch_size, seed
        self.samples = int(round(aug.clip_seconds * sample_rate))
        self.head = head
        self.by_class = [np.flatnonzero(self.train_labels == c) for c in range(classes)]

    # -- training -------------------------------------------------------------------------------
    def num_batches(self, world: int) -> int:
        return batch_count(len(self.train_waves), self.batch_size, world)

    def order(self, epoch: int, rank: int, world: int) -> np.ndarray:
        """This rank's example indices for ``epoch`` (see :func:`.batches.rank_order`)."""
        return rank_order(self.seed, epoch, len(self.train_waves), rank, world)

    def example(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """One augmented example ``(samples,)`` and its target distribution ``(classes,)``."""
        rng = np.random.default_rng([self.seed, epoch, 1, index])
        label = int(self.train_labels[index])
        x = self._augmented(index, rng)
        y = np.zeros(self.classes, dtype=np.float32)
        y[label] = 1.0
        others = [c for c in range(self.classes) if c != label and len(self.by_class[c])]
        if self.aug.mix_prob > 0 and others and rng.random() < self.aug.mix_prob:
            partner_class = others[int(rng.integers(len(others)))]
            partner = int(rng.choice(self.by_class[partner_class]))
            r = float(rng.random())
            x = bc_mix(x, self._augmented(partner, rng), r)
            y *= r
            y[partner_class] += 1.0 - r
        return x, y

    def _augmented(self, index: int, rng: np.random.Generator) -> np.ndarray:
        if self.aug.stretch > 1.0:
            x = stretched_crop(self.train_waves[index], self.samples, self.aug, rng)
        else:
            x = crop(self.train_waves[index], self.samples, self.aug, rng)
        if self.aug.gain_db > 0:
            x = x * np.float32(10 ** (rng.uniform(-self.aug.gain_db, self.aug.gain_db) / 20))
        return x.astype(np.float32, copy=False)

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches ``(batch, samples)`` float32 waveforms and ``(batch, classes)`` targets. When
        torch's threads leave a core free, each is made in a background thread while the caller
        trains on the one before (:func:`~soundnet_cli.runtime.stream.prefetched`); the same
        batches either way (examples are functions of ``(seed, epoch, index)``, whatever the
        order they are made in). With every core running torch, the extra thread only stalls
        its parallel regions."""
        chunks = epoch_batches(self.seed, epoch, len(self.train_waves), self.batch_size, rank,
                               world)
        made = (self.batch(epoch, chunk) for chunk in chunks)
        yield from prefetched(made, depth=1) if _spare_core() else made

    def batch(self, epoch: int, indices: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples of ``indices`` (see :meth:`example`) stacked into tensors."""
        xs, ys = zip(*(self.example(epoch, int(i)) for i in indices))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = (t.to(device, non_blocking=True) for t in batch)
        logits = model(x)[self.head]  # (batch, classes, steps)
        logp = F.log_softmax(logits, dim=1)
        loss = -(y.unsqueeze(-1) * logp).sum(dim=1).mean()
        correct = (logits.mean(-1).argmax(1) == y.argmax(1)).float().mean()
        return loss, {"accuracy": float(correct), "batch_size": x.shape[0]}

    # -- validation -----------------------------------------------------------------------------
    def validate(self, model: SoundNet, device: torch.device) -> dict[str, float]:
        if not self.val_waves:
            return {}
        probs = predict_clips(model, self.val_waves, self.samples, device, head=self.head)
        labels = torch.from_numpy(self.val_labels)
        nll = -torch.log(probs[torch.arange(len(labels)), labels].clamp_min(1e-12)).mean()
        acc = (probs.argmax(1) == labels).float().mean()
        return {"val_loss": float(nll), "val_accuracy": float(acc)}


def _spare_core() -> bool:
    """Whether torch's intra-op threads leave one of this process's CPUs free."""
    return torch.get_num_threads() < available_cores()


def predict_clips(model: SoundNet, waves: Sequence[np.ndarray], min_samples: int,
                  device: torch.device, head: str = "classes", batch_size: int = 32) -> torch.Tensor:
    """Clip-level class probabilities ``(clips, classes)``: mean of per-step softmax, each clip
    tiled up to ``min_samples`` (and at least what the head needs) when shorter."""
    need = max(min_samples, model.geometry(head).min_samples())
    out: list[torch.Tensor | None] = [None] * len(waves)
    groups: dict[int, list[int]] = {}
    tiled = [tile(w, need) for w in waves]
    for i, w in enumerate(tiled):
        groups.setdefault(w.shape[0], []).append(i)
    engine = Engine(model, [head], device)  # eval-mode BatchNorm, the fast inference pass
    with torch.inference_mode():
        for members in groups.values():
            for s in range(0, len(members), batch_size):
                part = members[s : s + batch_size]
                x = torch.from_numpy(np.stack([tiled[i] for i in part])).to(device)
                # the first layers on a few clips at a time, their outputs kept in cache (as
                # tag does; the results do not depend on it)
                logits = engine.forward(x, max_samples=MICRO_BATCH_SAMPLES)[head]
                p = F.softmax(logits.float(), dim=1).mean(-1).cpu()
                for j, i in enumerate(part):
                    out[i] = p[j]
    return torch.stack(out)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Runs


def decode_all(paths: Sequence[Path], sample_rate: int, workers: int = 2,
               on_clip: Callable[[int], None] | None = None) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode every file (``workers`` processes); failures give ``None`` and a message.

    A clip peaking far above full scale (:data:`~soundnet_cli.audio.LOUD_PEAK`) fails too: mixed
    into batches, its huge values would overflow the loss and ruin the whole run.
    """
    from ..audio import LOUD_PEAK, loudness_warning

    waves: list[np.ndarray | None] = [None] * len(paths)
    errors: list[str] = []
    for clip in iter_decoded(paths, sample_rate, workers=workers):
        if clip.waveform is not None and float(np.abs(clip.waveform).max()) > LOUD_PEAK:
            errors.append(f"{loudness_warning(str(clip.path), float(np.abs(clip.waveform).max()))}"
                          "; excluded from training")
            clip.waveform = None
        elif clip.waveform is None:
            errors.append(clip.error or f"{clip.path}: failed")
        waves[clip.index] = clip.waveform
        if on_clip:
            on_clip(clip.index)
    return waves, errors


def split(dataset: Dataset, val_fold: int | None,
          train_folds: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation clips from the fold options."""
    if (val_fold is not None or train_folds) and dataset.folds is None:
        raise DatasetError(f"{dataset.root}: --val-fold/--train-folds need a dataset with folds "
                           "(ESC-50 layout, or a labels CSV with a fold column)")
    if dataset.folds is None:
        return np.arange(len(dataset)), np.array([], dtype=np.int64)
    present = sorted(set(dataset.folds.tolist()))
    if val_fold is not None and val_fold not in present:
        raise DatasetError(f"--val-fold {val_fold} is not in the dataset (folds: {present})")
    chosen = list(train_folds) if train_folds else [f for f in present if f != val_fold]
    absent = sorted(set(chosen) - set(present))
    if absent:
        raise DatasetError(f"--train-folds {absent} not in the dataset (folds: {present})")
    if val_fold is not None and val_fold in chosen:
        raise DatasetError(f"fold {val_fold} is both a training and the validation fold")
    train = np.flatnonzero(np.isin(dataset.folds, chosen))
    val = np.flatnonzero(dataset.folds == val_fold) if val_fold is not None else np.array([], dtype=np.int64)
    if val.size:  # a copy of a validation clip among the training clips inflates val_accuracy
        check_leakage(dataset, [Split(f"validation fold {val_fold}", train, val)])
    return train, val


def check_labels(dataset: Dataset, train_idx: np.ndarray) -> None:
    """Raise :class:`DatasetError` naming the classes without a single training clip (their
    head outputs would never be trained) and single-class datasets."""
    if len(dataset.classes) < 2:
        raise DatasetError(f"{dataset.root}: only one class ({', '.join(dataset.classes)}); "
                           "training a classifier needs at least two")
    present = set(dataset.labels[train_idx].tolist())
    absent = [c for i, c in enumerate(dataset.classes) if i not in present]
    if absent:
        raise DatasetError(
            f"{dataset.root}: no training clips for class(es) {', '.join(absent[:10])}"
            + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
            + " in the training folds; add clips or choose other --train-folds")


def build_network(cfg: TrainConfig, classes: Sequence[str]) -> tuple[SoundNet, dict[str, Any]]:
    """A fresh network (``cfg.arch``) or ``cfg.init``'s trunk, with a head for ``classes``.

    The network's ``tile_seconds`` becomes the training example length: tagging tiles shorter
    clips up to the length the head was trained on (not the original heads' 10 s).
    """
    info: dict[str, Any] = {}
    if cfg.init:
        from ..weights.registry import resolve_weights

        ckpt = load_checkpoint(resolve_weights(cfg.init, option="--init"))
        model = ckpt.build()
        want = classifier_head(ckpt.config.arch, classes)
        kept = [h for h in model.config.heads if h == want]
        if kept and cfg.keep_head:
            # Same classes, same geometry: continue training the head (a warm restart), keep
            # only it.
            model.keep_heads([want.name])
        else:
            model.replace_heads([want])
        info = {"init": str(cfg.init), "init_sha256": ckpt.sha256,
                "init_head_kept": bool(kept and cfg.keep_head),
                "init_heads": {**{h.name: h.classes for h in ckpt.config.heads},
                               **{p.name: p.classes for p in ckpt.config.pooled_heads}}}
    else:
        model = SoundNet(make_config(cfg.arch, [classifier_head(cfg.arch, classes)],
                                     width=cfg.width))
    model.config = dataclasses.replace(model.config, tile_seconds=cfg.augment.clip_seconds)
    return model.train(), info


def head_note(info: Mapping[str, Any], classes: int) -> str:
    """One line on what became of the ``--init`` network's heads (``""`` without ``--init``):
    ``head 'classes' (50 classes) replaced by a new 5-class head``."""
    heads = dict(info.get("init_heads") or {})
    if not info.get("init"):
        return ""
    if info.get("init_head_kept"):
        return f"head 'classes' ({classes} classes) kept from {info['init']}: same classes"
    old = ", ".join(f"'{n}' ({c} classes)" for n, c in heads.items())
    return (f"head{'s' if len(heads) > 1 else ''} {old} replaced by a new {classes}-class head"
            + ("" if list(heads) == ["classes"] else " 'classes'"))


def validation_split(dataset: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and validation indices from ``cfg`` (``--val-fold``, ``--train-folds``,
    ``--val-fraction``), and a line saying what validates the run."""
    train_idx, val_idx = split(dataset, cfg.val_fold, cfg.train_folds)
    fraction = resolve_val_fraction(dataset, cfg.val_fold, cfg.val_fraction)
    if cfg.val_fold is not None:
        return train_idx, val_idx, f"validation: fold {cfg.val_fold} ({len(val_idx)} clips)"
    if fraction > 0:
        train_idx, val_idx = stratified_split(dataset, train_idx, fraction, cfg.loop.seed)
        how = ("--val-fraction" if cfg.val_fraction is not None
               else "the default for a dataset without folds; --val-fraction 0 trains on all")
        return train_idx, val_idx, (
            f"validation: {len(val_idx)} of {len(train_idx) + len(val_idx)} clips, "
            f"{fraction:.0%} of each class drawn with seed {cfg.loop.seed} ({how})")
    if dataset.folds is None:
        why = ("--val-fraction 0" if cfg.val_fraction is not None else
               "fewer than 5 clips in some class; --val-fraction sets a share anyway")
        return train_idx, val_idx, f"validation: none ({why}); no best.safetensors"
    return train_idx, val_idx, ("validation: none (--val-fold F holds out a fold); "
                                "no best.safetensors")


def train_supervised(
    dataset: Dataset,
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    overwrite: bool = False,
    provenance: Mapping[str, Any] | None = None,
    on_progress: Callable[[EpochReport], None] | None = None,
    on_decoded: Callable[[int], None] | None = None,
    stop_after_epoch: int | None = None,
    allow_seen: bool = False,
    on_note: Callable[[str], None] | None = None,
    on_start: Callable[[], None] | None = None,
) -> tuple[SoundNet, dict[str, Any], list[str]]:
    """Train on ``dataset``; returns the network (last epoch), its final metrics and the
    messages of clips that could not be decoded (excluded).

    The folds, labels and ``run_dir`` (:func:`.loop.check_run_dir`: ``resume`` continues the run
    there, ``overwrite`` starts it again) are checked before any audio is decoded, so a bad
    dataset or run directory fails in seconds.

    Validation clips the ``--init`` network was trained on are left out of validation (or, with
    ``allow_seen``, kept and the validation figures recorded as contaminated): see
    :func:`unseen_validation`; the provenance's ``val_seen`` says which happened.

    ``on_note`` receives one-line messages on what the run does (the validation clips, a
    replaced head, frozen layers); ``on_start`` is called once everything that can be checked
    without decoding audio has been (the CLI writes ``run.json`` then). Resuming a finished run (every epoch done, or ended by
    ``cfg.loop.patience``) decodes nothing and returns its last network and metrics.
    """
    note = on_note or (lambda _: None)
    # Everything that can be checked without audio is checked before decoding it all.
    train_idx, val_idx, val_line = validation_split(dataset, cfg)
    if len(train_idx) == 0:
        raise DatasetError(f"{dataset.root}: no training clips")
    check_labels(dataset, train_idx)
    init_provenance = _init_provenance(cfg)
    val_idx, val_seen = unseen_validation(dataset, train_idx, val_idx, init_provenance, cfg.val_fold,
                                          allow_seen)
    if cfg.loop.patience and len(val_idx) == 0:
        raise DatasetError("--patience stops when validation stops improving, and this run has "
                           "no validation clips: give --val-fold or --val-fraction")
    state = check_run_dir(run_dir, cfg.loop, resume, overwrite)
    if run_finished(state, cfg.loop):
        done, last = finished_run(run_dir)
        return done, last, []
    classes = [readable_label(c) if cfg.readable_labels else c for c in dataset.classes]
    torch.manual_seed(cfg.loop.seed)  # the initial weights are part of the reproducible run
    model, init_info = build_network(cfg, classes)
    frozen = freeze(model, cfg.train_layers)
    note(val_line)
    if init_info:
        note(head_note(init_info, len(classes)))
    if cfg.train_layers is not None:
        trained = ", ".join(["the head", *cfg.train_layers])
        note(f"training {trained}: {frozen['trainable']:,} of "
             f"{frozen['trainable'] + frozen['frozen']:,} parameters (the rest frozen)")
    if on_start:
        on_start()
    if dist_info().main:
        write_split(run_dir, dataset, classes, train_idx, val_idx)
    rate = model.config.sample_rate
    waves, errors = decode_all(dataset.paths, rate, cfg.workers, on_decoded)
    keep = lambda idx: [int(i) for i in idx if waves[i] is not None]  # noqa: E731
    tr, va = keep(train_idx), keep(val_idx)
    task = SupervisedTask([_present(waves[i]) for i in tr], dataset.labels[tr],
                          [_present(waves[i]) for i in va], dataset.labels[va], len(classes),
                          cfg.augment, cfg.loop.batch_size, cfg.loop.seed, rate)
    if task.num_batches(1) == 0:
        raise DatasetError("no decodable training clips")
    prov = {
        "kind": "supervised",
        "dataset": str(dataset.root),
        "layout": dataset.layout,
        "train_clips": len(tr),
        "val_clips": len(va),
        # what the weights were trained on (this run's training clips + --init's record)
        RECORD_KEY: dataset_record(dataset, tr, init_provenance=init_provenance),
        "val_seen": val_seen,
        "trainable_parameters": frozen["trainable"],
        "train_config": cfg.to_dict(),
        **init_info,
        **dict(provenance or {}),
    }
    last = fit(model, task, cfg.loop, run_dir, device=device, resume=resume, provenance=prov,
               on_progress=on_progress, stop_after_epoch=stop_after_epoch)
    return model, last, errors


def finished_run(run_dir: str | os.PathLike) -> tuple[SoundNet, dict[str, Any]]:
    """The network of a finished run's last epoch (``RUN_DIR/last.safetensors``) and that
    epoch's metrics (the last line of ``metrics.jsonl``)."""
    import json

    run_dir = Path(run_dir)
    model = load_checkpoint(run_dir / "last.safetensors").build()
    lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    return model, json.loads(lines[-1]) if lines else {}


def _present(wave: np.ndarray | None) -> np.ndarray:
    assert wave is not None  # callers keep only decoded clips
    return wave


def unseen_validation(dataset: Dataset, train_idx: np.ndarray, val_idx: np.ndarray,
                      init_provenance: Mapping[str, Any] | None, val_fold: int | None,
                      allow_seen: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """The validation clips without those the ``--init`` network was trained on (its
    training-data record, :mod:`soundnet_cli.provenance`), and what was done:
    ``{"excluded": n, "kept": n, "contaminated": bool}``. With ``allow_seen`` they are kept and
    the validation figures are contaminated. Raises :class:`DatasetError` with advice when every
    validation clip was seen."""
    # The trunk's record: a head with a record of its own (a pooled head) is never kept here.
    mask = seen_mask(init_provenance, dataset) if init_provenance and len(val_idx) else None
    fold = Split(f"fold {val_fold}", train_idx, val_idx, val_fold)
    try:
        (checked,) = exclude_seen([fold], mask, allow_seen=allow_seen)
    except DatasetError:
        raise DatasetError(
            f"the --init network was trained on every validation clip ({len(val_idx)}"
            + (f", fold {val_fold}" if val_fold is not None else "") + "), so validation "
            "would measure memory: train from scratch (no --init), --init a network that was not "
            "trained on this fold, or choose another --val-fold; --allow-seen validates on them "
            "anyway (recorded as contaminated)") from None
    return checked.test, {"excluded": checked.excluded, "kept": checked.seen,
                          "contaminated": checked.contaminated}


def _init_provenance(cfg: TrainConfig) -> dict[str, Any] | None:
    """The ``--init`` checkpoint's provenance (header only), or ``None`` without ``--init``."""
    if not cfg.init:
        return None
    from ..weights.registry import read_header, resolve_weights

    return read_header(resolve_weights(cfg.init, option="--init")).get("provenance") or {}


def export(model: SoundNet, path: str | os.PathLike, provenance: Mapping[str, Any],
           half: bool = False) -> Path:
    """Write the trained network in the project format (what tag/extract/fit-svm load)."""
    if not isinstance(model, SoundNet):
        raise SoundNetError("export expects the unwrapped SoundNet")
    return save_checkpoint(model, path, provenance=provenance, half=half)
