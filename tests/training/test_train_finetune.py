"""Fine-tuning on a folder of your own sounds: the validation split, best.safetensors, early
stopping, the replaced head, frozen layers, and resuming a finished run."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from helpers import interrupt_epoch
from soundnet_cli.cli import app
from soundnet_cli.datasets import load_dataset
from soundnet_cli.training.validation import resolve_val_fraction, stratified_split
from soundnet_cli.weights import load_checkpoint

RATE = 22_050
FREQS = (220.0, 1100.0, 4400.0)


def make_folders(root: Path, per_class: int, seconds: float = 1.5, freqs=FREQS,
                 seed: int = 0) -> Path:
    """Tone classes (three by default), one folder each (no folds)."""
    rng = np.random.default_rng(seed)
    for c, f in enumerate(freqs):
        (root / f"tone_{c}").mkdir(parents=True)
        for i in range(per_class):
            t = np.arange(int(seconds * RATE)) / RATE
            x = 0.3 * np.sin(2 * np.pi * f * (1 + 0.03 * rng.standard_normal()) * t)
            x += 0.02 * rng.standard_normal(t.size)
            sf.write(str(root / f"tone_{c}" / f"{i}.wav"), x.astype(np.float32), RATE)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return make_folders(tmp_path_factory.mktemp("ft") / "sounds", per_class=6)


def train_args(dataset: Path, run_dir: Path, *extra: str) -> list[str]:
    return ["train", str(dataset), "--width", "0.0625", "--epochs", "2", "--batch-size", "4",
            "--clip-seconds", "3.6", "--lr", "0.003", "--run-dir", str(run_dir),
            "--workers", "0", "--device", "cpu", *extra]


def split_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "split.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_folder_dataset_validates_on_a_stratified_share_by_default(folders: Path, tmp_path: Path):
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "validation: 3 of 18 clips, 20% of each class drawn with seed 0" in result.output
    assert "the default for a dataset without folds" in result.output
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_accuracy" in m for m in metrics)  # validated every epoch
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert "best val_accuracy" in result.output
    rows = split_rows(tmp_path / "run")
    val = [r for r in rows if r["fold"] == "2"]
    assert sorted(r["label"] for r in val) == ["tone 0", "tone 1", "tone 2"]  # one per class
    assert len(rows) == 18 and not Path(rows[0]["path"]).is_absolute()
    ckpt = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert ckpt.provenance["train_clips"] == 15 and ckpt.provenance["val_clips"] == 3
    # fit-svm reads the same split
    ds = load_dataset(folders, labels_csv=tmp_path / "run" / "split.csv")
    assert ds.folds is not None and int((ds.folds == 2).sum()) == 3 and not ds.outside


def test_the_split_is_seeded_and_stratified(folders: Path):
    ds = load_dataset(folders)
    everything = np.arange(len(ds))
    train, val = stratified_split(ds, everything, 0.5, seed=3)
    again, val_again = stratified_split(ds, everything, 0.5, seed=3)
    assert val.tolist() == val_again.tolist() and train.tolist() == again.tolist()
    assert np.bincount(ds.labels[val]).tolist() == [3, 3, 3]
    assert sorted(train.tolist() + val.tolist()) == everything.tolist()
    others = {tuple(stratified_split(ds, everything, 0.5, seed=s)[1].tolist()) for s in range(5)}
    assert len(others) > 1


def test_copies_of_a_clip_stay_on_one_side(tmp_path: Path):
    root = make_folders(tmp_path / "d", per_class=6)
    for i in range(1, 6):  # tone_0: six copies of one clip
        shutil.copy(root / "tone_0" / "0.wav", root / "tone_0" / f"{i}.wav")
    ds = load_dataset(root)
    train, val = stratified_split(ds, np.arange(len(ds)), 0.5, seed=0)
    assert not (set(ds.labels[val].tolist()) & {0})  # no copy validated, all trained
    assert set(ds.labels[train].tolist()) == {0, 1, 2}


def test_small_or_folded_datasets_get_no_automatic_share(tmp_path: Path, folders: Path):
    small = load_dataset(make_folders(tmp_path / "small", per_class=4))
    assert resolve_val_fraction(small, None, None) == 0.0
    assert resolve_val_fraction(small, None, 0.25) == 0.25
    assert resolve_val_fraction(load_dataset(folders), None, None) == 0.2
    result = CliRunner().invoke(app, train_args(tmp_path / "small", tmp_path / "run",
                                                "--epochs", "1"))
    assert result.exit_code == 0, result.output
    assert "validation: none (fewer than 5 clips in some class" in result.output
    assert not (tmp_path / "run" / "best.safetensors").exists()
    bad = CliRunner().invoke(app, train_args(folders, tmp_path / "r2", "--val-fraction", "1.5"))
    assert bad.exit_code == 1 and "--val-fraction 1.5: must be at least 0 and below 1" in bad.output


def test_patience_stops_early_and_resume_then_has_nothing_to_do(folders: Path, tmp_path: Path,
                                                                monkeypatch):
    run_dir = tmp_path / "run"
    # lr 0: validation never improves after the first epoch
    args = train_args(folders, run_dir, "--epochs", "6", "--lr", "0", "--patience", "2")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stopped early after epoch 3: no better val_accuracy for 2 epochs" in result.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    from soundnet_cli.training import supervised

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the dataset of a finished run")

    monkeypatch.setattr(supervised, "decode_all", no_decoding)
    again = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir)])
    assert again.exit_code == 0, again.output
    assert "already finished (epoch 3 of 6, stopped early); nothing to do" in again.output
    assert "wrote" not in again.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_of_a_finished_run_does_nothing(folders: Path, tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "run"
    assert CliRunner().invoke(app, train_args(folders, run_dir, "--epochs", "1")).exit_code == 0
    from soundnet_cli.training import supervised

    monkeypatch.setattr(supervised, "decode_all", lambda *a, **k: pytest.fail("decoded"))
    again = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir)])
    assert again.exit_code == 0, again.output
    assert "already finished (epoch 1 of 1); nothing to do" in again.output
    # the exported network gone: written again from the last epoch, still without decoding
    (run_dir / "model.safetensors").unlink()
    third = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir)])
    assert third.exit_code == 0, third.output
    assert "wrote" in third.output and (run_dir / "model.safetensors").is_file()


def test_patience_needs_validation(tmp_path: Path, folders: Path):
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run", "--val-fraction", "0",
                                                "--patience", "2"))
    assert result.exit_code == 1 and "no validation clips" in result.output


def test_the_replaced_head_is_reported_in_one_line(folders: Path, tmp_path: Path,
                                                   tiny_checkpoint: Path):
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "a", "--epochs", "1",
                                                "--init", str(tiny_checkpoint)))
    assert result.exit_code == 0, result.output
    assert ("heads 'objects' (7 classes), 'scenes' (5 classes) replaced by a new 3-class head "
            "'classes'") in result.output
    five = make_folders(tmp_path / "five", per_class=5, freqs=(150, 300, 600, 1200, 2400), seed=1)
    again = CliRunner().invoke(app, train_args(five, tmp_path / "b", "--epochs", "1",
                                               "--init", str(tmp_path / "a" / "model.safetensors")))
    assert again.exit_code == 0, again.output
    assert "head 'classes' (3 classes) replaced by a new 5-class head\n" in again.output


def _trunk(state: dict[str, torch.Tensor], layer: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(f"trunk.{layer}.")}


def test_freeze_trunk_trains_only_the_head(folders: Path, tmp_path: Path, tiny_checkpoint: Path):
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run", "--init",
                                                str(tiny_checkpoint), "--freeze-trunk"))
    assert result.exit_code == 0, result.output
    assert "training the head: " in result.output and "(the rest frozen)" in result.output
    before = load_checkpoint(tiny_checkpoint).build().state_dict()
    after = load_checkpoint(tmp_path / "run" / "model.safetensors").build().state_dict()
    for k, v in after.items():
        if k.startswith("trunk."):  # weights and BatchNorm statistics as they came
            torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    head = sum(v.numel() for k, v in after.items() if k.startswith("heads.classes"))
    prov = load_checkpoint(tmp_path / "run" / "model.safetensors").provenance
    assert prov["trainable_parameters"] == head


def test_train_layers_trains_those_and_the_head(folders: Path, tmp_path: Path,
                                                tiny_checkpoint: Path):
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run", "--init",
                                                str(tiny_checkpoint), "--train-layers", "conv7",
                                                "--precise-bn", "2"))
    assert result.exit_code == 0, result.output
    before = load_checkpoint(tiny_checkpoint).build().state_dict()
    after = load_checkpoint(tmp_path / "run" / "model.safetensors").build().state_dict()
    for k, v in _trunk(after, "conv6").items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    changed = [k for k, v in _trunk(after, "conv7").items() if not torch.equal(v, before[k])]
    assert "trunk.conv7.conv.weight" in changed and "trunk.conv7.bn.running_mean" in changed


@pytest.mark.parametrize("extra,message", [
    (["--freeze-trunk"], "need --init"),
    (["--init", "TINY", "--train-layers", "conv9"], "--train-layers conv9: not a trunk layer; "
                                                    "choose from conv1, conv2"),
    (["--init", "TINY", "--freeze-trunk", "--train-layers", "conv7"], "give one of them"),
])
def test_freezing_errors(folders: Path, tmp_path: Path, tiny_checkpoint: Path, extra, message):
    extra = [str(tiny_checkpoint) if a == "TINY" else a for a in extra]
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run", *extra))
    assert result.exit_code in (1, 2) and message in " ".join(result.output.split()), result.output


def test_a_run_that_fails_to_start_leaves_no_run_json(folders: Path, tmp_path: Path):
    """Options are stored in RUN_DIR/run.json only once every check passed (a failed start left
    ``runs/train/run.json`` behind, and the test suite left ``runs/distill`` in the checkout)."""
    result = CliRunner().invoke(app, train_args(folders, tmp_path / "run", "--init", "no-such-net"))
    assert result.exit_code == 1 and "--init no-such-net" in result.output
    assert not (tmp_path / "run" / "run.json").exists()
    targets = CliRunner().invoke(app, ["distill", str(tmp_path / "none"), "-q", "--run-dir",
                                       str(tmp_path / "d")])
    assert targets.exit_code == 1 and not (tmp_path / "d" / "run.json").exists()


def test_a_run_started_before_val_fraction_resumes_as_it_started(folders: Path, tmp_path: Path,
                                                                monkeypatch):
    """A folder-dataset run from an older version had no validation; resumed now, it must not
    get the automatic split (its state was written with other loop settings)."""
    run_dir = tmp_path / "run"
    interrupt_epoch(monkeypatch, at=2)
    stopped = CliRunner().invoke(app, train_args(folders, run_dir, "--val-fraction", "0"))
    monkeypatch.undo()
    assert stopped.exit_code == 130
    settings = json.loads((run_dir / "run.json").read_text())
    for key in ("val_fraction", "patience", "freeze_trunk", "train_layers"):
        del settings["options"][key]  # as an older version wrote it
    (run_dir / "run.json").write_text(json.dumps(settings))
    resumed = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
