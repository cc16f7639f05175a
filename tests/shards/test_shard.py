"""shards/partition.py: the partition every command shares, shards from SLURM and torchrun
environments, --files-from, and the CLI options on tag, extract, fit-svm and teach."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundnet_cli.errors import UsageError
from soundnet_cli.shards.partition import (
    Shard,
    device_for_rank,
    parse_shard,
    read_files_from,
    resolve_shard,
    select,
    select_inputs,
    shard_from_env,
)

SPLITS = (1, 2, 3, 7)


def _lists() -> list[list[Path]]:
    rng = random.Random(15)
    nested = [Path(f"d{rng.randrange(4)}/s{rng.randrange(3)}/f{i:03d}.wav") for i in range(40)]
    return [[], [Path("only.wav")], [Path("b.wav"), Path("a.wav")],
            [Path(f"x{i}.flac") for i in range(5)], nested,
            [Path("/abs/z.wav"), Path("rel/y.ogg"), Path("./x.mp3"), Path("a b/ü.wav")]]


# ---------------------------------------------------------------------------------------------
# The partition


@pytest.mark.parametrize("count", SPLITS)
@pytest.mark.parametrize("paths", _lists(), ids=lambda p: f"{len(p)}-inputs")
def test_every_split_covers_each_input_exactly_once(paths, count):
    shares = [select(paths, Shard(i, count)) for i in range(count)]
    taken = [p for share in shares for p in share]
    assert sorted(taken) == sorted(paths)  # each input once: no loss, no duplicate
    assert len(taken) == len(set(taken)) == len(paths)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1  # round robin: balanced counts
    if len(paths) < count:
        assert sum(1 for s in shares if not s) == count - len(paths)  # empty shards are fine


@pytest.mark.parametrize("count", SPLITS)
def test_a_share_does_not_depend_on_input_order(count):
    paths = _lists()[4]
    shuffled = paths[:]
    random.Random(1).shuffle(shuffled)
    for i in range(count):
        assert select(paths, Shard(i, count)) == select(shuffled, Shard(i, count))


def test_the_partition_is_round_robin_over_the_sorted_paths():
    paths = [Path(n) for n in ("c.wav", "a.wav", "e.wav", "b.wav", "d.wav")]
    assert select(paths, Shard(0, 2)) == [Path("a.wav"), Path("c.wav"), Path("e.wav")]
    assert select(paths, Shard(1, 2)) == [Path("b.wav"), Path("d.wav")]
    assert select(paths, None) == sorted(paths)
    assert select([Path("./a.wav"), Path("b.wav")], Shard(0, 2)) == [Path("a.wav")]


def test_problems_are_sharded_with_the_files():
    files = [Path("a.wav"), Path("c.wav")]
    problems = [(Path("b.wav"), "b.wav: no such file or directory")]
    mine0, bad0 = select_inputs(files, problems, Shard(0, 2))
    mine1, bad1 = select_inputs(files, problems, Shard(1, 2))
    assert (mine0, bad0) == ([Path("a.wav"), Path("c.wav")], [])
    assert (mine1, bad1) == ([], problems)


@pytest.mark.parametrize("text,index,count", [("0/1", 0, 1), ("3/4", 3, 4), (" 6/7 ", 6, 7)])
def test_parse_shard(text, index, count):
    assert parse_shard(text) == Shard(index, count)
    assert parse_shard(text).name == f"shard-{index}-of-{count}"


@pytest.mark.parametrize("text,needle", [("4/4", "0 <= I < N"), ("a/b", "expected I/N"),
                                         ("0/0", "0 <= I < N"), ("3", "expected I/N"),
                                         ("-1/2", "0 <= I < N"), ("1/2/3", "expected I/N"),
                                         ("", "expected I/N")])
def test_parse_shard_refuses_bad_values_clearly(text, needle):
    with pytest.raises(UsageError, match=needle) as e:
        parse_shard(text)
    assert f"--shard {text!r}" in str(e.value)


# ---------------------------------------------------------------------------------------------
# Engines' environments


def _slurm(task: int, count: int, low: int = 0, **extra: str) -> dict[str, str]:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
           "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(low + count - 1),
           "SLURM_ARRAY_TASK_STEP": "1"}
    env.update(extra)
    return env


@pytest.mark.parametrize("count", [2, 3, 7])
@pytest.mark.parametrize("low", [0, 1])
def test_slurm_arrays_give_the_partition_of_shard(count, low):
    paths = _lists()[4]
    for i in range(count):
        shard = shard_from_env(_slurm(low + i, count, low))
        assert shard == Shard(i, count) and "SLURM_ARRAY_TASK_ID" in shard.source
        assert select(paths, shard) == select(paths, parse_shard(f"{i}/{count}"))


@pytest.mark.parametrize("world", [2, 3, 7])
def test_torchrun_ranks_give_the_partition_of_shard(world):
    paths = _lists()[4]
    for rank in range(world):
        env = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank % 2)}
        shard = shard_from_env(env)
        assert shard == Shard(rank, world) and "RANK" in shard.source
        assert select(paths, shard) == select(paths, parse_shard(f"{rank}/{world}"))


def test_a_slurm_array_of_torchrun_jobs_composes_into_one_partition():
    paths = _lists()[4]
    shards = [shard_from_env({**_slurm(1 + a, 3, 1), "RANK": str(r), "WORLD_SIZE": "2"})
              for a in range(3) for r in range(2)]
    assert [s.index for s in shards] == list(range(6)) and {s.count for s in shards} == {6}
    taken = [p for s in shards for p in select(paths, s)]
    assert sorted(taken) == sorted(paths) and len(taken) == len(paths)


def test_no_engine_or_a_single_task_is_an_unsharded_run():
    assert shard_from_env({}) is None
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None
    assert shard_from_env(_slurm(5, 1, 5)) is None
    assert shard_from_env({"SLURM_JOB_ID": "12", "LOCAL_RANK": "0"}) is None


def test_an_explicit_shard_wins_over_the_environment():
    env = {**_slurm(2, 4), "RANK": "1", "WORLD_SIZE": "2"}
    assert resolve_shard(Shard(0, 3), env) == Shard(0, 3)
    assert resolve_shard(None, env) == Shard(5, 8)
    assert resolve_shard(None, {}) is None


@pytest.mark.parametrize("env,needle", [
    (_slurm(0, 8, SLURM_ARRAY_TASK_STEP="2"), "SLURM_ARRAY_TASK_STEP=2"),
    ({**_slurm(0, 3), "SLURM_ARRAY_TASK_MAX": "6"}, "contiguous"),
    (_slurm(9, 4), "outside the array"),
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"}, "SLURM_ARRAY_TASK_ID='x'"),
    ({"SLURM_ARRAY_TASK_ID": "1"}, "SLURM_ARRAY_TASK_COUNT is not"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2",
      "SLURM_ARRAY_TASK_MIN": "one"}, "SLURM_ARRAY_TASK_MIN='one'"),
    ({"RANK": "2"}, "WORLD_SIZE is not"),
    ({"WORLD_SIZE": "2"}, "RANK is not"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK < WORLD_SIZE"),
    ({"RANK": "0", "WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
])
def test_malformed_environments_name_the_variable(env, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")):
        shard_from_env(env)


def test_local_rank_chooses_the_cuda_device_only_for_auto(monkeypatch):
    import torch

    assert device_for_rank("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    assert device_for_rank("auto", {}) == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_for_rank("auto", {"LOCAL_RANK": "1"}) == "auto"  # no CUDA: auto as ever
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_for_rank("auto", {"LOCAL_RANK": "1"}) == "cuda:1"
    with pytest.raises(UsageError, match="LOCAL_RANK=2"):
        device_for_rank("auto", {"LOCAL_RANK": "2"})
    with pytest.raises(UsageError, match="LOCAL_RANK='x'"):
        device_for_rank("auto", {"LOCAL_RANK": "x"})


# ---------------------------------------------------------------------------------------------
# --files-from


def test_read_files_from_a_file_and_stdin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("a.wav\n\n  sub/b.flac  \n/abs/c.ogg\n", encoding="utf-8")
    expected = [Path("a.wav"), Path("sub/b.flac"), Path("/abs/c.ogg")]
    assert read_files_from(listing) == expected
    assert read_files_from("-", io.StringIO(listing.read_text())) == expected
    assert read_files_from("-", io.StringIO("")) == []


def test_read_files_from_refuses_a_missing_or_unreadable_list(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_files_from(tmp_path / "missing.txt")
    with pytest.raises(UsageError, match="is a directory"):
        read_files_from(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UsageError, match="cannot read"):
        read_files_from(tmp_path / "bin.txt")


# ---------------------------------------------------------------------------------------------
# The commands


@pytest.fixture
def cli():
    from soundnet_cli.cli import app

    runner = CliRunner()

    def _run(*args: object, input: str | None = None, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env,
                             catch_exceptions=False)

    return _run


@pytest.fixture
def clips(write_audio) -> list[Path]:
    return [write_audio(f"clips/c{i}.wav", 0.6 + 0.1 * i, seed=i, kind="noise")
            for i in range(5)]


def _manifest_inputs(path: Path) -> list[str]:
    import csv

    with open(path, newline="") as f:
        return sorted({row["input"] for row in csv.DictReader(f)})


def test_extract_shard_takes_its_share_and_says_so(cli, clips, tiny_checkpoint, tmp_path):
    out = tmp_path / "feats"
    r = cli("extract", clips[0].parent, "-w", tiny_checkpoint, "-l", "conv3", "-o", out,
            "-j", "0", "--shard", "1/2")
    assert r.exit_code == 0, r.output
    assert "shard 1/2: 2 of 5 input(s)" in r.output
    manifest = out / "manifest.shard-1-of-2.csv"
    assert _manifest_inputs(manifest) == [str(clips[1]), str(clips[3])]
    assert not (out / "manifest.csv").exists()
    status = [json.loads(line) for line in (out / "status.shard-1-of-2.jsonl").open()]
    assert status[0]["shard"]["index"] == 1 and status[0]["inputs_total"] == 5
    assert [s["outcome"] for s in status[1:-1]] == ["ok", "ok"]
    assert status[-1] == {"finished": True, "ok": 2, "skipped": 0, "failed": 0}


@pytest.mark.parametrize("env", [
    {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"},
    {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},
])
def test_extract_takes_the_shard_from_the_environment(cli, clips, tiny_checkpoint, tmp_path,
                                                      env):
    out = tmp_path / "feats"
    r = cli("extract", clips[0].parent, "-w", tiny_checkpoint, "-l", "conv3", "-o", out,
            "-j", "0", "-d", "cpu", env=env)
    assert r.exit_code == 0, r.output
    assert _manifest_inputs(out / "manifest.shard-1-of-2.csv") == [str(clips[1]), str(clips[3])]
    status = json.loads((out / "status.shard-1-of-2.jsonl").open().readline())
    assert "RANK" in status["shard"]["source"] or "SLURM" in status["shard"]["source"]
    # --shard wins over the environment
    r = cli("extract", clips[0].parent, "-w", tiny_checkpoint, "-l", "conv3", "-o", out,
            "-j", "0", "-d", "cpu", "--shard", "0/3", env=env)
    assert r.exit_code == 0, r.output
    assert _manifest_inputs(out / "manifest.shard-0-of-3.csv") == [str(clips[0]), str(clips[3])]


def test_extract_files_from_a_list_and_stdin(cli, clips, tiny_checkpoint, tmp_path,
                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clips[2].relative_to(tmp_path)}\n\n{clips[4]}\n")
    r = cli("extract", "--files-from", listing, "-w", tiny_checkpoint, "-l", "conv3",
            "-o", "a", "-j", "0")
    assert r.exit_code == 0, r.output
    assert _manifest_inputs(tmp_path / "a" / "manifest.csv") == sorted(
        [str(clips[2].relative_to(tmp_path)), str(clips[4])])
    # '-' reads standard input, and adds to the positional inputs
    r = cli("extract", clips[0], "--files-from", "-", "-w", tiny_checkpoint, "-l", "conv3",
            "-o", "b", "-j", "0", input=f"{clips[1]}\n")
    assert r.exit_code == 0, r.output
    assert _manifest_inputs(tmp_path / "b" / "manifest.csv") == [str(clips[0]), str(clips[1])]


def test_usage_errors_of_the_shard_options(cli, clips, tiny_checkpoint, tmp_path):
    for args in (["--shard", "2/2"], ["--shard", "x"], ["--files-from", tmp_path / "none.txt"]):
        r = cli("extract", clips[0], "-w", tiny_checkpoint, "-o", tmp_path / "o", *args)
        assert r.exit_code == 2, r.output
    r = cli("extract", "-w", tiny_checkpoint, "-o", tmp_path / "o")
    assert r.exit_code == 2 and "--files-from" in r.output
    r = cli("tag", clips[0], "-w", tiny_checkpoint, env={"RANK": "1"})
    assert r.exit_code == 2 and "WORLD_SIZE" in r.output


def test_tag_shard_and_files_from(cli, clips, tiny_checkpoint, tmp_path):
    out = tmp_path / "res"
    r = cli("tag", "--files-from", "-", "-w", tiny_checkpoint, "-o", out, "-j", "0",
            "--shard", "0/2", input="".join(f"{c}\n" for c in clips))
    assert r.exit_code == 0, r.output
    assert "shard 0/2: 3 of 5 input(s)" in r.output
    table = [json.loads(line) for line in (out / "tags.shard-0-of-2.jsonl").open()]
    assert [d["path"] for d in table] == [str(clips[i]) for i in (0, 2, 4)]
    assert not (out / "tags.csv").exists() and not (out / "run.json").exists()
    status = [json.loads(line) for line in (out / "status.shard-0-of-2.jsonl").open()]
    assert status[0]["command"] == "tag" and status[-1]["finished"] is True


def test_fit_svm_shard_caches_its_clips_and_fits_nothing(cli, write_audio, tiny_checkpoint,
                                                         tmp_path):
    for c in range(2):
        for i in range(3):
            write_audio(f"ds/class{c}/x{i}.wav", 0.5, seed=10 * c + i, kind="noise")
    cache = tmp_path / "cache"
    args = ["fit-svm", tmp_path / "ds", "-w", tiny_checkpoint, "--cache-dir", cache,
            "-j", "1", "-k", "2", "--workers", "0", "--c-grid", "0.01"]
    for i in range(3):
        r = cli(*args, "--shard", f"{i}/3")
        assert r.exit_code == 0, r.output
        assert f"shard {i}/3: 2 of 6 input(s)" in r.output and "no SVM fitted" in r.output
    r = cli(*args, "--no-cache", "--shard", "0/3")
    assert r.exit_code == 2
    r = cli(*args)
    assert r.exit_code == 0, r.output
    assert "6 of 6 clips' features read from the cache" in r.output


def test_teach_shard_uses_the_shared_partition(cli, tmp_path):
    r = cli("teach", tmp_path, "-o", tmp_path / "t", "-t", "x.json", "--shard", "3/3")
    assert r.exit_code == 2 and "0 <= I < N" in r.output


def test_with_files_from_directories_are_roots_not_searched(cli, write_audio, tiny_checkpoint,
                                                            tmp_path):
    wanted = write_audio("data/sub/x.wav", 0.7, kind="noise")
    write_audio("data/sub/other.wav", 0.7, kind="noise")
    out = tmp_path / "o"
    r = cli("extract", tmp_path / "data", "--files-from", "-", "-w", tiny_checkpoint,
            "-l", "conv3", "-o", out, "-j", "0", input=f"{wanted}\n")
    assert r.exit_code == 0, r.output
    assert (out / "sub" / "x.conv3.npy").is_file()  # the tree mirrored as if data/ was searched
    assert not (out / "sub" / "other.conv3.npy").exists()
    r = cli("extract", "--files-from", "-", "-w", tiny_checkpoint, "-o", out, input="\n")
    assert r.exit_code == 1 and "the list is empty" in r.output


@pytest.mark.parametrize("command", ["tag", "extract"])
@pytest.mark.parametrize("listed", [True, False], ids=["files-from", "directory"])
def test_a_shard_looks_at_no_other_shards_input(cli, write_audio, tiny_checkpoint, tmp_path,
                                                 monkeypatch, command, listed):
    """Partition by the path strings first: no stat, lstat or resolve of another shard's file
    (a list of a million paths would cost every shard minutes), missing ones reported by their
    owner only."""
    import os

    clips = [write_audio(f"data/c{i}.wav", 0.6, seed=i, kind="noise") for i in range(6)]
    missing = [tmp_path / "data" / f"gone{i}.wav" for i in range(4)]
    listing = tmp_path / "all.txt"
    listing.write_text("".join(f"{p}\n" for p in [*clips, *missing]))
    ordered = sorted([*clips, *missing], key=str) if listed else clips
    others = {str(p) for p in ordered[1::2]}
    looked: list[str] = []
    real_stat, real_lstat = os.stat, os.lstat

    def stat(path, *a, **kw):
        looked.append(os.fspath(path) if not isinstance(path, int) else "")
        return real_stat(path, *a, **kw)

    def lstat(path, *a, **kw):
        looked.append(os.fspath(path))
        return real_lstat(path, *a, **kw)

    args = [command, tmp_path / "data", "-w", tiny_checkpoint, "-o", tmp_path / "out", "-j", "0"]
    args += ["--files-from", listing] if listed else []
    args += ["-l", "conv3"] if command == "extract" else []
    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", lstat)
    r = cli(*args, "--shard", "0/2")
    monkeypatch.undo()
    assert not others & set(looked), sorted(others & set(looked))
    total = 10 if listed else 6
    assert f"shard 0/2: {total // 2} of {total} input(s)" in r.output
    gone = {str(p) for p in missing}
    reported = {p for p in gone if p in r.output}
    assert reported == (gone - others if listed else set())
    if listed:
        r1 = cli(*args, "--shard", "1/2")
        assert {p for p in gone if p in r1.output} == gone & others


def test_plan_shard_partitions_strings_and_drops_spelled_duplicates(tmp_path, monkeypatch):
    from soundnet_cli.shards import plan_shard

    monkeypatch.chdir(tmp_path)
    items = [Path("b.wav"), Path("a.wav"), tmp_path / "b.wav", Path("./a.wav"), Path("c.wav")]
    problems = [(Path("d"), "d: cannot list this directory")]
    everyone, share0, bad0 = plan_shard(items, problems, Shard(0, 2))
    assert everyone == [Path("b.wav"), Path("a.wav"), Path("c.wav")]  # first spelling kept
    _, share1, bad1 = plan_shard(items, problems, Shard(1, 2))
    assert (share0, bad0) == ([Path("a.wav"), Path("c.wav")], [])  # nothing here exists
    assert (share1, bad1) == ([Path("b.wav")], problems)
