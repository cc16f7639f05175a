"""soundnet distill: step matching, the loss, padding/tiling, resume, and the proof that a student
learns to hear what a visual teacher sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers.avworld import CLASS_NAMES, class_sound
from helpers import TINY_WIDTH
from soundnet_cli.weights import load_checkpoint, load_model_file
from soundnet_cli.cli import app
from soundnet_cli.distill.student import (ORIGINAL_LOOP, DistillConfig, DistillTask, distill,
                                  distill_loss, evaluate_targets, is_validation, match_steps,
                                  open_targets, prepare, step_plan)
from soundnet_cli.errors import TargetsError
from soundnet_cli.model import ORIGINAL_HEAD_GEOMETRY, HeadSpec, SoundNet, make_config
from soundnet_cli.distill.targets import IndexWriter, TargetsHeader, TeacherInfo, init_collection, write_clip
from soundnet_cli.training.loop import DistInfo, precise_batchnorm

RATE = 22_050
CPU = torch.device("cpu")


def make_targets(root: Path, clips: dict[str, tuple[int, float]], step_seconds: float = 1.0,
                 teachers=(("colours", CLASS_NAMES),), seed: int = 0) -> TargetsHeader:
    """A collection written directly: ``{key: (steps, audio seconds)}``; the audio of step ``i``
    is the sound of class ``i % 4`` and the targets say so."""
    header = TargetsHeader(tuple(TeacherInfo(n, tuple(labels), {"kind": "test"})
                                 for n, labels in teachers),
                           step_seconds=step_seconds, max_seconds=20.0)
    init_collection(root, header)
    with IndexWriter(root) as index:
        for j, (key, (steps, seconds)) in enumerate(sorted(clips.items())):
            audio = np.concatenate([class_sound(i % 4, step_seconds, RATE, seed + 31 * j + i)
                                    for i in range(steps)])[: int(seconds * RATE)]
            probs = {}
            for n, labels in teachers:
                p = np.full((steps, len(labels)), 0.1 / (len(labels) - 1), np.float32)
                p[np.arange(steps), np.arange(steps) % len(labels)] = 0.9
                probs[n] = p
            index.add(write_clip(root, header, key, audio, probs))
    return header


def tiny_cfg(**kw) -> DistillConfig:
    loop = dataclasses.replace(ORIGINAL_LOOP, **kw.pop("loop", {}))
    base = dict(width=TINY_WIDTH, clip_seconds=3.0, head_geometry=(1, 1, 0), workers=0, loop=loop)
    return DistillConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# Steps and loss


def test_original_geometry_gives_one_output_per_5s_step():
    heads = [HeadSpec("objects", ("a", "b"), *ORIGINAL_HEAD_GEOMETRY["soundnet8"])]
    model = SoundNet(make_config("soundnet8", heads, width=TINY_WIDTH))
    assert step_plan(model, ["objects"], 20 * RATE, 4) == {
        "clip_steps": 4, "student_steps": 4, "matching": "one-to-one"}
    assert model(torch.zeros(1, 20 * RATE))["objects"].shape == (1, 2, 4)
    # 10 s clips with 5 s steps: conv8 gives one frame for two steps -> pooled (repeated)
    assert step_plan(model, ["objects"], 10 * RATE, 2)["matching"] == "average-pooled"
    with pytest.raises(TargetsError, match="too short"):
        step_plan(model, ["objects"], 5 * RATE, 1)
    five = SoundNet(make_config("soundnet5", [HeadSpec("objects", ("a", "b"),
                                                       *ORIGINAL_HEAD_GEOMETRY["soundnet5"])],
                                width=TINY_WIDTH))
    assert step_plan(five, ["objects"], 20 * RATE, 4)["matching"] == "one-to-one"


def test_match_steps():
    x = torch.arange(12.0).view(1, 2, 6)
    assert match_steps(x, 6) is x
    pooled = match_steps(x, 3)
    assert torch.equal(pooled, torch.tensor([[[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]]))
    assert match_steps(x[..., :1], 4).shape == (1, 2, 4)


def test_loss_is_the_kl_divergence_times_lambda():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4)
    t = torch.softmax(torch.randn(3, 4, 5), dim=-1)
    logp = torch.log_softmax(logits, dim=1).transpose(1, 2)
    kl = (t * (t.log() - logp)).sum(-1).mean()
    loss, m = distill_loss({"a": logits}, {"a": t}, kl_weight=250.0, reduction="distribution")
    assert torch.allclose(loss, 250 * kl) and abs(m["kl"] - float(kl)) < 1e-6
    # the original's DistKLDivCriterion: mean over batch x classes elements
    orig, _ = distill_loss({"a": logits}, {"a": t}, kl_weight=250.0)
    ref = torch.nn.functional.kl_div(logp, t, reduction="sum") / t.numel() * 250
    assert torch.allclose(orig, ref) and torch.allclose(orig, 250 * kl / 5)
    # two heads are averaged; a student equal to its teacher has zero loss and full agreement
    zero, m = distill_loss({"a": t.log().transpose(1, 2), "b": logits}, {"a": t, "b": t},
                           reduction="distribution")
    assert torch.allclose(zero, 250 * kl / 2, atol=1e-5)
    same, m = distill_loss({"a": t.log().transpose(1, 2)}, {"a": t})
    assert float(same) == pytest.approx(0.0, abs=1e-5) and m["agreement"] == 1.0


# ---------------------------------------------------------------------------------------------
# Data


def test_short_videos_are_padded_to_whole_steps_then_tiled(tmp_path: Path):
    header = make_targets(tmp_path / "t", {"long": (5, 5.0), "short": (2, 1.5)})
    _, refs = open_targets(tmp_path / "t")
    refs = {r.entry.key: r for r in refs}
    task = DistillTask(list(refs.values()), [], header, ["colours"], tiny_cfg(), 2, 0)
    assert (task.clip_steps, task.clip_samples) == (3, 3 * RATE)
    audio, y = task.clip(refs["short"])
    assert audio.shape == (3 * RATE,) and y["colours"].argmax(1).tolist() == [0, 1, 0]
    assert np.all(audio[int(1.5 * RATE) : 2 * RATE] == 0)  # padding to the end of step 2
    np.testing.assert_array_equal(audio[2 * RATE :], audio[:RATE])  # step 3 = step 1 again
    audio, y = task.clip(refs["long"], start_step=2)
    assert y["colours"].argmax(1).tolist() == [2, 3, 0]


def test_random_crops_are_a_function_of_seed_epoch_and_index(tmp_path: Path):
    header = make_targets(tmp_path / "t", {f"v{i}": (6, 6.0) for i in range(4)})
    _, refs = open_targets(tmp_path / "t")
    task = DistillTask(refs, [], header, ["colours"], tiny_cfg(crop="random"), 2, 7)
    first = [task.example(0, i)[1]["colours"].argmax(1)[0] for i in range(4)]
    again = [task.example(0, i)[1]["colours"].argmax(1)[0] for i in range(4)]
    assert first == again
    starts = {int(task.example(e, 0)[1]["colours"].argmax(1)[0]) for e in range(20)}
    assert len(starts) > 1 and starts <= {0, 1, 2, 3}  # windows start at steps 0..3
    fixed = DistillTask(refs, [], header, ["colours"], tiny_cfg(), 2, 7)
    assert {int(fixed.example(e, 0)[1]["colours"].argmax(1)[0]) for e in range(5)} == {0}


def test_validation_split_and_checks(tmp_path: Path):
    make_targets(tmp_path / "t", {f"v{i:02d}": (3, 3.0) for i in range(40)})
    keys = [f"v{i:02d}" for i in range(40)]
    assert [is_validation(k, 0.25) for k in keys] == [is_validation(k, 0.25) for k in keys]
    _, _, info = prepare(tmp_path / "t", tiny_cfg(val_fraction=0.25))
    assert info["val_clips"] == sum(is_validation(k, 0.25) for k in keys) > 0
    assert info["train_clips"] + info["val_clips"] == 40
    make_targets(tmp_path / "other", {"x": (3, 3.0)}, teachers=(("colours", ("a", "b", "c", "d")),))
    with pytest.raises(TargetsError, match="other labels"):
        prepare(tmp_path / "t", tiny_cfg(val_targets=str(tmp_path / "other")))
    with pytest.raises(TargetsError, match="whole number"):
        prepare(tmp_path / "t", tiny_cfg(clip_seconds=2.5))
    with pytest.raises(TargetsError, match="no teacher 'places'"):
        prepare(tmp_path / "t", tiny_cfg(teachers=("places",)))
    with pytest.raises(TargetsError, match="not a targets directory"):
        prepare(tmp_path / "nothing", tiny_cfg())


def test_one_head_per_teacher_with_its_labels(tmp_path: Path):
    make_targets(tmp_path / "t", {"v": (3, 3.0)},
                 teachers=(("objects", ("dog", "cat", "car")), ("scenes", ("beach", "forest"))))
    model, _, info = prepare(tmp_path / "t", tiny_cfg())
    assert model.config.head_names == ("objects", "scenes")
    assert model.config.heads[1].labels == ("beach", "forest")
    assert info["teachers"] == ["objects", "scenes"]
    model, _, _ = prepare(tmp_path / "t", tiny_cfg(teachers=("scenes",)))
    assert model.config.head_names == ("scenes",)


def test_ranks_get_disjoint_shares(tmp_path: Path):
    header = make_targets(tmp_path / "t", {f"v{i}": (3, 3.0) for i in range(9)})
    _, refs = open_targets(tmp_path / "t")
    task = DistillTask(refs, [], header, ["colours"], tiny_cfg(), 2, 0)
    a, b = task.order(3, 0, 2), task.order(3, 1, 2)
    assert len(a) == len(b) == 2 * task.num_batches(2) == 4
    assert not set(a) & set(b)
    assert task.num_batches(1) == 4


def test_worker_processes_give_the_same_batches(tmp_path: Path):
    header = make_targets(tmp_path / "t", {f"v{i}": (3, 3.0) for i in range(6)})
    _, refs = open_targets(tmp_path / "t")
    one = DistillTask(refs, [], header, ["colours"], tiny_cfg(crop="random"), 2, 0)
    many = DistillTask(refs, [], header, ["colours"], tiny_cfg(crop="random", workers=2), 2, 0)
    for (x, y), (u, v) in zip(one.batches(1, 0, 1), many.batches(1, 0, 1), strict=True):
        assert torch.equal(x, u) and torch.equal(y["colours"], v["colours"])


class _Batches:
    """A task whose batches are fixed tensors (for precise BN)."""

    def __init__(self, batches):
        self.data = batches

    def batches(self, epoch, rank, world):
        return iter(self.data)

    def loss(self, model, batch, device):
        return model(batch).sum(), {}


def test_precise_batchnorm_uses_exact_averages():
    torch.manual_seed(0)
    bn = torch.nn.Sequential(torch.nn.BatchNorm1d(2, momentum=0.1))
    batches = [torch.randn(8, 2) * (i + 1) + i for i in range(3)]
    precise_batchnorm(bn, _Batches(batches), 0, DistInfo(), CPU, batches=2)
    means = torch.stack([b.mean(0) for b in batches[:2]]).mean(0)
    variances = torch.stack([b.var(0) for b in batches[:2]]).mean(0)
    assert torch.allclose(bn[0].running_mean, means, atol=1e-6)
    assert torch.allclose(bn[0].running_var, variances, atol=1e-5)
    assert bn[0].momentum == 0.1


def test_resume_continues_exactly(tmp_path: Path):
    make_targets(tmp_path / "t", {f"v{i}": (3 + i % 2, 3.0 + i % 2) for i in range(6)})
    cfg = tiny_cfg(crop="random", loop=dict(epochs=2, batch_size=3, precise_bn=1))
    straight, last, _ = distill(tmp_path / "t", cfg, tmp_path / "a", device=CPU)
    distill(tmp_path / "t", cfg, tmp_path / "b", device=CPU, stop_after_epoch=1)
    resumed, last_b, _ = distill(tmp_path / "t", cfg, tmp_path / "b", device=CPU, resume=True)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert last["train_loss"] == last_b["train_loss"]
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(Exception, match="other settings"):
        distill(tmp_path / "t", tiny_cfg(loop=dict(epochs=3, batch_size=3, precise_bn=1)),
                tmp_path / "b", device=CPU, resume=True)


# ---------------------------------------------------------------------------------------------
# The proof: a student learns from a visual teacher to recognise sounds it never heard


def test_student_learns_to_hear_what_the_teacher_sees(tmp_path: Path):
    """Videos show a colour and sound like its class; a colour teacher labels the frames. After
    distillation from audio alone, the student agrees with the teacher on >= 90 % of held-out
    videos (other recordings, other noise)."""
    pytest.importorskip("av")
    from helpers.avworld import make_world, write_colour_teacher

    runner = CliRunner()
    make_world(tmp_path / "train", 8, seconds=3.0, seed=0, short_every=5)
    make_world(tmp_path / "held_out", 5, seconds=3.0, seed=1)
    spec = write_colour_teacher(tmp_path / "teacher")
    for split in ("train", "held_out"):
        r = runner.invoke(app, ["teach", str(tmp_path / split), "-t", str(spec), "-o",
                                str(tmp_path / f"targets_{split}"), "--frame-every", "1",
                                "--max-seconds", "3", "-j", "0", "-q"])
        assert r.exit_code == 0, r.output
    ckpt = tmp_path / "student.safetensors"
    r = runner.invoke(app, ["distill", str(tmp_path / "targets_train"), "--width",
                            str(TINY_WIDTH), "--clip-seconds", "3", "--head-geometry", "1,1,0",
                            "--epochs", "8", "-b", "16", "--run-dir", str(tmp_path / "run"),
                            "-o", str(ckpt), "-j", "0", "-q"])
    assert r.exit_code == 0, r.output
    model = load_model_file(ckpt)
    assert model.config.head_names == ("colours",)
    assert model.config.heads[0].labels == CLASS_NAMES
    prov = load_checkpoint(ckpt).provenance
    assert prov["kind"] == "distill"
    # the record names the targets and counts the clips, but fingerprints nothing: the
    # soundtracks are re-encoded from videos and could never match a dataset's audio files
    assert prov["training_data"]["dataset"] == "targets_train"
    assert prov["training_data"]["layout"] == "soundnet-targets"
    assert prov["training_data"]["clips"] == prov["train_clips"]
    assert prov["training_data"]["fingerprints"] == []
    result = evaluate_targets(model, tmp_path / "targets_held_out", clip_seconds=3.0)
    print(result)
    assert result["agreement"] >= 0.9, result
    # from audio alone, the tagged label name is the teacher's: one held-out blue video
    from soundnet_cli.distill import read_clip_audio

    wave = torch.from_numpy(read_clip_audio(tmp_path / "targets_held_out", "blue_000.mp4"))
    with torch.inference_mode():
        p = torch.softmax(model(wave[None])["colours"], dim=1).mean(-1)[0]
    assert model.config.heads[0].labels[int(p.argmax())] == "blue"


def test_cli_distill_usage_errors(tmp_path: Path):
    runner = CliRunner()
    r = runner.invoke(app, ["distill", str(tmp_path / "none"), "-q", "--run-dir",
                            str(tmp_path / "run")])
    assert r.exit_code == 1 and "none: not a targets directory" in r.output.replace("\n", "")
    assert not (tmp_path / "run").exists()  # a run that never started leaves no run.json
    make_targets(tmp_path / "t", {"v": (3, 3.0)})
    r = runner.invoke(app, ["distill", str(tmp_path / "t"), "--head-geometry", "1,1",
                            "--run-dir", str(tmp_path / "run")])
    assert r.exit_code == 2
