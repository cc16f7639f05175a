"""Supervised training: mixing, learning, exact resume, CLI, and a two-process gloo run."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import RATE, ROOT, interrupt_epoch, make_dataset
from soundnet_cli.audio import tile
from soundnet_cli.cli import app
from soundnet_cli.datasets import load_dataset
from soundnet_cli.errors import DatasetError, SoundNetError
from soundnet_cli.provenance import clip_fingerprint, seen_mask
from soundnet_cli.training import LoopConfig
from soundnet_cli.training.augment import AugmentConfig, bc_mix, circular, crop
from soundnet_cli.training.supervised import SupervisedTask, TrainConfig, split, train_supervised
from soundnet_cli.weights import load_checkpoint


def tiny_cfg(epochs: int = 3, width: float = 1 / 16, mix: float = 0.5, **loop) -> TrainConfig:
    loop = {"lr": 3e-3, **loop}
    return TrainConfig(
        width=width, val_fold=3,
        augment=AugmentConfig(clip_seconds=3.6, gain_db=3.0, mix_prob=mix),
        loop=LoopConfig(epochs=epochs, batch_size=4, warmup_epochs=0.5, seed=1, **loop),
        workers=0,
    )


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "tones")


def test_bc_mix_and_soft_labels_are_distributions():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(RATE).astype(np.float32) * s for s in (0.1, 0.5, 1.0, 0.2)]
    task = SupervisedTask(waves, np.array([0, 1, 2, 2]), [], np.array([]), 3,
                          AugmentConfig(clip_seconds=0.5, mix_prob=1.0), 2, seed=0, sample_rate=RATE)
    for i in range(4):
        x, y = task.example(epoch=0, index=i)
        assert x.shape == (RATE // 2,) and x.dtype == np.float32 and np.isfinite(x).all()
        assert y.min() >= 0 and abs(y.sum() - 1) < 1e-6
        assert np.count_nonzero(y) == 2  # always mixed with another class at mix_prob 1
    mixed = bc_mix(waves[0][:100], waves[2][:100], 1.0)
    np.testing.assert_allclose(mixed, waves[0][:100], atol=1e-4)


def test_examples_are_a_function_of_seed_epoch_index():
    waves = [np.random.default_rng(i).standard_normal(RATE).astype(np.float32) for i in range(4)]
    make = lambda: SupervisedTask(waves, np.array([0, 1, 0, 1]), [], np.array([]), 2,  # noqa: E731
                                  AugmentConfig(clip_seconds=0.5), 2, seed=3, sample_rate=RATE)
    a, b = make(), make()
    np.testing.assert_array_equal(a.example(2, 1)[0], b.example(2, 1)[0])
    assert not np.array_equal(a.example(2, 1)[0], a.example(3, 1)[0])
    assert sorted(np.concatenate([a.order(0, r, 2) for r in range(2)]).tolist()) == [0, 1, 2, 3]


def test_split_errors(dataset_dir: Path):
    ds = load_dataset(dataset_dir)
    train, val = split(ds, 3, None)
    assert set(ds.folds[train].tolist()) == {1, 2} and set(ds.folds[val].tolist()) == {3}
    with pytest.raises(DatasetError, match="not in the dataset"):
        split(ds, 5, None)
    with pytest.raises(DatasetError, match="both"):
        split(ds, 3, [2, 3])


def test_training_learns_and_beats_chance(dataset_dir: Path, tmp_path: Path):
    ds = load_dataset(dataset_dir)
    model, last, errors = train_supervised(ds, tiny_cfg(epochs=8, width=1 / 8, mix=0.0, lr=1e-2),
                                           tmp_path / "run",
                                           device=torch.device("cpu"))
    assert errors == []
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 8
    import json

    first, final = json.loads(lines[0]), json.loads(lines[-1])
    assert final["train_loss"] < first["train_loss"]
    assert final["val_accuracy"] > 1 / 3 + 0.2  # held-out fold 3, chance is 1/3
    ckpt = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert ckpt.config.heads[0].labels == ("class 0", "class 1", "class 2")


def test_resume_matches_uninterrupted_run(dataset_dir: Path, tmp_path: Path):
    ds = load_dataset(dataset_dir)
    cpu = torch.device("cpu")
    full, _, _ = train_supervised(ds, tiny_cfg(epochs=2), tmp_path / "a", device=cpu)
    train_supervised(ds, tiny_cfg(epochs=2), tmp_path / "b", device=cpu, stop_after_epoch=1)
    resumed, _, _ = train_supervised(ds, tiny_cfg(epochs=2), tmp_path / "b", device=cpu,
                                     resume=True)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)


def test_resume_refuses_other_settings_and_existing_run(dataset_dir: Path, tmp_path: Path):
    ds = load_dataset(dataset_dir)
    cpu = torch.device("cpu")
    train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "r", device=cpu)
    with pytest.raises(SoundNetError, match="already holds a run"):
        train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "r", device=cpu)
    with pytest.raises(SoundNetError, match="other settings"):
        train_supervised(ds, tiny_cfg(epochs=2, lr=1e-2), tmp_path / "r", device=cpu, resume=True)
    with pytest.raises(SoundNetError, match="no state.pt"):
        train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "empty", device=cpu, resume=True)


def test_cli_train_writes_a_checkpoint_the_other_commands_load(dataset_dir: Path, tmp_path: Path):
    out = tmp_path / "model.safetensors"
    args = ["train", str(dataset_dir), "--width", "0.0625", "--epochs", "1", "--batch-size", "4",
            "--clip-seconds", "3.6", "--val-fold", "3", "--run-dir", str(tmp_path / "run"),
            "--out", str(out), "--workers", "0", "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["kind"] == "supervised"
    assert ckpt.config.heads[0].name == "classes" and len(ckpt.config.heads[0].labels) == 3
    assert ckpt.config.tile_seconds == 3.6  # tagging tiles short clips to the training length
    assert ckpt.provenance["train_clips"] == 12 and ckpt.provenance["val_clips"] == 6
    # what it was trained on: the 12 training clips' fingerprints, not the validation fold's
    record = ckpt.provenance["training_data"]
    ds = load_dataset(dataset_dir)
    assert ds.folds is not None
    assert record["dataset"] == "tones" and record["layout"] == "esc50"
    assert record["clips"] == 12 and record["fingerprint"] == "sha256-16"
    assert record["fingerprints"] == sorted(
        clip_fingerprint(p) for p, f in zip(ds.paths, ds.folds) if f != 3)
    assert str(dataset_dir) not in json.dumps(record)  # names, no paths
    seen = seen_mask(ckpt.provenance, ds)
    assert seen is not None and seen.tolist() == (ds.folds != 3).tolist()
    again = CliRunner().invoke(app, args)  # same run dir without --resume
    assert again.exit_code == 1
    bad_args = [a if a != str(tmp_path / "run") else str(tmp_path / "x") for a in args]
    bad = CliRunner().invoke(app, [a if a != "3" else "9" for a in bad_args])
    assert bad.exit_code == 1 and "not in the dataset" in bad.output


def test_errors_about_init_name_init(dataset_dir: Path, tmp_path: Path):
    result = CliRunner().invoke(app, ["train", str(dataset_dir), "--init", "no-such-net",
                                      "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 1
    assert "--init no-such-net: no such file" in result.output
    assert "--weights" not in result.output


def test_init_keeps_a_matching_head_and_replaces_another(dataset_dir: Path, tmp_path: Path):
    """Fine-tuning a checkpoint with the dataset's classes continues its head (warm restart);
    other classes, or --new-head, get a fresh head."""
    import dataclasses

    from soundnet_cli.training.supervised import build_network

    ds = load_dataset(dataset_dir)
    cpu = torch.device("cpu")
    first, _, _ = train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "a", device=cpu)
    init = str(tmp_path / "a" / "last.safetensors")
    trained = first.heads["classes"].weight.detach()
    classes = list(first.config.heads[0].labels)
    kept, info = build_network(dataclasses.replace(tiny_cfg(), init=init), classes)
    assert info["init_head_kept"] and kept.config.head_names == ("classes",)
    torch.testing.assert_close(kept.heads["classes"].weight.detach(), trained)
    for cfg, names in ((dataclasses.replace(tiny_cfg(), init=init, keep_head=False), classes),
                       (dataclasses.replace(tiny_cfg(), init=init), classes[::-1])):
        fresh, info = build_network(cfg, names)
        assert not info["init_head_kept"]
        assert fresh.heads["classes"].weight.abs().max() < trained.abs().max()
        assert fresh.config.heads[0].labels == tuple(names)
    # The trunk is the checkpoint's either way, and a second stage trains from it.
    key = next(k for k in first.state_dict() if not k.startswith("heads."))
    torch.testing.assert_close(fresh.state_dict()[key], first.state_dict()[key])
    _, last, _ = train_supervised(ds, dataclasses.replace(tiny_cfg(epochs=1), init=init),
                                  tmp_path / "b", device=cpu)
    assert load_checkpoint(tmp_path / "b" / "last.safetensors").provenance["init_head_kept"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run(dataset_dir: Path, tmp_path: Path):
    """torchrun with two CPU processes on loopback trains and writes one checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "soundnet_cli", "train", str(dataset_dir), "--width", "0.0625", "--epochs", "2",
           "--batch-size", "2", "--clip-seconds", "3.6", "--val-fold", "3",
           "--run-dir", str(tmp_path / "ddp"), "--workers", "0", "--device", "cpu", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # written once (rank 0), not once per process
    assert load_checkpoint(tmp_path / "ddp" / "model.safetensors").config.heads[0].classes == 3


# -- run directories: --overwrite, run.json, --resume alone ------------------------------------


def _cli_args(dataset_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["train", str(dataset_dir), "--width", "0.0625", "--epochs", "2", "--batch-size", "4",
            "--clip-seconds", "3.6", "--val-fold", "3", "--lr", "0.003", "--run-dir",
            str(run_dir), "--workers", "0", "--device", "cpu", "--quiet", *extra]


def test_a_bad_dataset_or_run_dir_fails_before_decoding(dataset_dir: Path, tmp_path: Path,
                                                         monkeypatch):
    from soundnet_cli.training import supervised

    ds = load_dataset(dataset_dir)
    cpu = torch.device("cpu")
    train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "r", device=cpu)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the dataset before checking it")

    monkeypatch.setattr(supervised, "decode_all", no_decoding)
    with pytest.raises(SoundNetError, match="already holds a run.*--overwrite"):
        train_supervised(ds, tiny_cfg(epochs=1), tmp_path / "r", device=cpu)
    with pytest.raises(SoundNetError, match="other settings"):
        train_supervised(ds, tiny_cfg(epochs=2), tmp_path / "r", device=cpu, resume=True)
    lonely = ds.subset(np.flatnonzero((ds.labels != 2) | (ds.folds == 3)))  # class 2: fold 3 only
    with pytest.raises(DatasetError, match="no training clips for class.*class 2"):
        train_supervised(lonely, tiny_cfg(epochs=1), tmp_path / "new", device=cpu)


def test_overwrite_starts_a_run_again(dataset_dir: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    args = _cli_args(dataset_dir, run_dir, "--epochs", "1")
    assert CliRunner().invoke(app, args).exit_code == 0
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    fresh = CliRunner().invoke(app, [*args, "--overwrite"])
    assert fresh.exit_code == 0, fresh.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # not appended


def test_resume_alone_continues_an_interrupted_run(dataset_dir: Path, tmp_path: Path,
                                                    monkeypatch):
    """After Ctrl-C the message says exactly what to type, and that alone continues the run."""
    run_dir = tmp_path / "run"
    interrupt_epoch(monkeypatch, at=2)
    stopped = CliRunner().invoke(app, _cli_args(dataset_dir, run_dir))
    monkeypatch.undo()
    assert stopped.exit_code == 130
    assert f"soundnet train --resume --run-dir {run_dir}" in stopped.output
    stored = json.loads((run_dir / "run.json").read_text())["options"]
    assert stored["lr"] == 0.003 and stored["dataset"] == str(dataset_dir.resolve())
    other = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir), "--lr", "0.5"])
    assert other.exit_code == 2 and "--lr 0.5 (the run has 0.003)" in other.output
    resumed = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir),
                                       "--device", "cpu", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert (run_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("length,samples,tile_n", [(100, 60, 3), (100, 100, 3), (40, 150, 3),
                                                   (7, 100, 1), (100, 30, 1)])
def test_crop_equals_cutting_the_tiled_clip(length, samples, tile_n):
    """The circular crop reads the same samples, at the same random start, as cutting the
    ``tile``-times tiled clip (extended to ``samples`` when shorter), for every start."""
    wave = np.arange(length, dtype=np.float32)
    tiled = tile(np.tile(wave, tile_n), samples)
    aug = AugmentConfig(tile=tile_n)
    for seed in range(20):
        start = int(np.random.default_rng(seed).integers(0, tiled.shape[0] - samples + 1))
        got = crop(wave, samples, aug, np.random.default_rng(seed))
        np.testing.assert_array_equal(got, tiled[start:start + samples])
    fixed = crop(wave, samples, dataclasses.replace(aug, random_crop=False),
                 np.random.default_rng(0))
    np.testing.assert_array_equal(fixed, tiled[:samples])
    for start in range(0, 3 * length):
        np.testing.assert_array_equal(circular(wave, start, samples),
                                      np.tile(wave, -(-(start + samples) // length) + 1)[start:start + samples])


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_optimizer_steps_equal_the_per_parameter_loop(name: str):
    """make_optimizer's multi-tensor (foreach) updates equal torch's per-parameter loop."""
    from soundnet_cli.training.loop import make_optimizer

    def run(foreach: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 3), torch.nn.BatchNorm1d(4))
        opt = make_optimizer(model, LoopConfig(optimizer=name, weight_decay=0.01))
        for group in opt.param_groups:
            group["foreach"] = foreach
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run(True), run(False), strict=True):
        assert torch.equal(a, b)


def test_batches_are_the_same_made_in_the_background_or_not(monkeypatch):
    from soundnet_cli.training import supervised

    g = np.random.default_rng(0)
    waves = [g.standard_normal(n).astype(np.float32) for n in (900, 1000, 1100, 700, 1000, 950)]
    task = SupervisedTask(waves, np.array([0, 1, 2, 0, 1, 2]), [], np.array([]), 3,
                          AugmentConfig(clip_seconds=0.02), 2, 0, 22050)
    runs = []
    for spare in (True, False):
        monkeypatch.setattr(supervised, "_spare_core", lambda spare=spare: spare)
        runs.append(list(task.batches(1, 0, 1)))
    assert len(runs[0]) == 3
    for (xa, ya), (xb, yb) in zip(*runs, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
