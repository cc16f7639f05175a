"""``soundnet merge`` (shards/merge.py): sharded tag and extract runs merged into exactly what one
run writes; missing, incomplete and failed shards reported, with a rerun list that works."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundnet_cli.shards.merge import merge

HAS_PARQUET = importlib.util.find_spec("pyarrow") is not None


@pytest.fixture
def cli():
    from soundnet_cli.cli import app

    runner = CliRunner()

    def _run(*args: object, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return _run


@pytest.fixture
def data(write_audio, tmp_path) -> Path:
    """Seven clips in a small tree, one of them not audio at all (it fails in every run)."""
    for i, name in enumerate(["a/x1.wav", "a/x2.wav", "b/y1.wav", "b/c/z.wav", "top.wav",
                              "a/x3.flac"]):
        write_audio(f"data/{name}", 0.5 + 0.15 * i, seed=i, kind="noise")
    (tmp_path / "data" / "b" / "broken.wav").write_bytes(b"this is not audio")
    return tmp_path / "data"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _in(path: Path, monkeypatch) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(path)
    return path


EXTRACT = ("-l", "conv3", "-l", "pool5", "--pool", "mean", "-j", "0", "-r")


@pytest.mark.parametrize("manifest", ["manifest.csv", "manifest.jsonl"])
def test_merged_extract_equals_one_run(cli, data, tiny_checkpoint, tmp_path, monkeypatch,
                                       manifest):
    single = _in(tmp_path / "single", monkeypatch)
    r = cli("extract", data, "-w", tiny_checkpoint, "-o", "out", "-m", f"out/{manifest}",
            *EXTRACT)
    assert r.exit_code == 1 and "broken.wav" in r.output  # the broken file fails here too
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(3):
        r = cli("extract", data, "-w", tiny_checkpoint, "-o", "out", "-m", f"out/{manifest}",
                "--shard", f"{i}/3", *EXTRACT)
        assert r.exit_code == (1 if "broken.wav" in r.output else 0), r.output
    r = cli("merge", "out")
    assert r.exit_code == 1 and "1 failed" in r.output, r.output  # broken.wav
    one = (single / "out" / manifest).read_bytes()
    header = 1 if manifest.endswith(".csv") else 0
    assert (sharded / "out" / manifest).read_bytes() == one and one.count(b"\n") == header + 12
    want = {k: v for k, v in _files(single / "out").items() if k.endswith(".npy")}
    got = {k: v for k, v in _files(sharded / "out").items() if k.endswith(".npy")}
    assert got == want and len(want) == 12
    assert (sharded / "out" / "rerun.txt").read_text() == f"{data / 'b' / 'broken.wav'}\n"


def test_merged_tag_tables_equal_one_run(cli, data, tiny_checkpoint, tmp_path, monkeypatch):
    fmt = "jsonl,csv,raven,audacity" + (",parquet" if HAS_PARQUET else "")
    single = _in(tmp_path / "single", monkeypatch)
    r = cli("tag", data, "-r", "-w", tiny_checkpoint, "-o", "out", "-f", fmt, "-j", "0")
    assert r.exit_code == 1, r.output
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(2):
        cli("tag", data, "-r", "-w", tiny_checkpoint, "-o", "out", "-f", fmt, "-j", "0",
            "--shard", f"{i}/2")
    assert not (sharded / "out" / "tags.csv").exists()
    r = cli("merge", "out")
    assert r.exit_code == 1, r.output
    names = ["tags.jsonl", "tags.csv", "selections.txt"] + (["tags.parquet"] if HAS_PARQUET
                                                            else [])
    for name in names:
        assert (sharded / "out" / name).read_bytes() == (single / "out" / name).read_bytes(), name
    lines = (single / "out" / "tags.jsonl").read_text().splitlines()
    assert len(lines) == 7 and sum('"ok": false' in line for line in lines) == 1
    per_input = {k: v for k, v in _files(single / "out").items() if "/" in k}
    assert {k: _files(sharded / "out")[k] for k in per_input} == per_input
    run = json.loads((sharded / "out" / "run.json").read_text())
    assert run["merged_from_shards"] == 2 and run["complete"] is True and run["failed"] == 1


def test_merge_finds_a_missing_and_an_incomplete_shard(cli, data, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    for i in (0, 2, 3):
        cli("extract", data, "-w", tiny_checkpoint, "-o", out, "--shard", f"{i}/4", *EXTRACT)
    status = out / "status.shard-3-of-4.jsonl"
    lines = status.read_text().splitlines()
    status.write_text("\n".join(lines[:-1]) + "\n")  # as if killed before its end
    r = cli("merge", out)
    assert r.exit_code == 1
    assert "shard 1/4: missing" in r.output and "shard 3/4: incomplete" in r.output
    assert "--shard 1/4" in r.output and "--shard 3/4" in r.output
    assert not (out / "manifest.csv").exists()  # nothing under a complete run's name
    (report,) = merge(out)
    assert report.missing == [1] and [i for i, _ in report.incomplete] == [3]
    assert not report.complete and not report.ok
    r = cli("merge", out, "--partial")
    assert r.exit_code == 1 and "PARTIAL" in r.output
    assert (out / "manifest.csv").is_file()
    for i in (1, 3):  # the reruns complete the run
        cli("extract", data, "-w", tiny_checkpoint, "-o", out, "--shard", f"{i}/4", *EXTRACT)
    (report,) = merge(out)
    assert report.complete and [p for p, _ in report.failed] == [str(data / "b" / "broken.wav")]


def test_a_failed_input_is_listed_and_a_rerun_of_the_list_completes_the_merge(
        cli, data, tiny_checkpoint, tmp_path, monkeypatch, write_audio):
    single = _in(tmp_path / "single", monkeypatch)
    broken = data / "b" / "broken.wav"
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(3):
        cli("tag", data, "-r", "-w", tiny_checkpoint, "-o", "out", "-j", "0", "--shard",
            f"{i}/3")
    r = cli("merge", "out", "--json")
    assert r.exit_code == 1
    (report,) = json.loads(r.stdout)
    assert [f["input"] for f in report["failed"]] == [str(broken)]
    assert "broken.wav" in report["failed"][0]["error"] and report["complete"] is True
    rerun = sharded / "out" / "rerun.txt"
    assert rerun.read_text() == f"{broken}\n"
    write_audio("data/b/broken.wav", 0.9, seed=9, kind="noise")  # the user repairs the file
    r = cli("tag", data, "--files-from", rerun, "-w", tiny_checkpoint, "-o", "out", "-j", "0")
    assert r.exit_code == 0, r.output
    assert (sharded / "out" / "b" / "broken.tags.json").is_file()  # where the shard puts it
    r = cli("merge", "out")
    assert r.exit_code == 0, r.output
    assert "redone later" in r.output and not rerun.exists()
    monkeypatch.chdir(single)
    cli("tag", data, "-r", "-w", tiny_checkpoint, "-o", "out", "-j", "0")
    for name in ("tags.jsonl", "tags.csv"):
        assert (sharded / "out" / name).read_bytes() == (single / "out" / name).read_bytes()


def test_an_extract_rerun_of_the_list_completes_the_manifest(cli, data, tiny_checkpoint,
                                                             tmp_path, monkeypatch,
                                                             write_audio):
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(2):
        cli("extract", data, "-w", tiny_checkpoint, "-o", "out", "--shard", f"{i}/2", *EXTRACT)
    assert cli("merge", "out").exit_code == 1
    write_audio("data/b/broken.wav", 0.9, seed=9, kind="noise")
    r = cli("extract", data, "--files-from", "out/rerun.txt", "-w", tiny_checkpoint, "-o", "out",
            *EXTRACT)
    assert r.exit_code == 0, r.output
    assert cli("merge", "out").exit_code == 0
    single = _in(tmp_path / "single", monkeypatch)
    cli("extract", data, "-w", tiny_checkpoint, "-o", "out", *EXTRACT)
    assert (sharded / "out" / "manifest.csv").read_bytes() == \
        (single / "out" / "manifest.csv").read_bytes()


def test_merge_refuses_shards_that_disagree(cli, data, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    cli("extract", data, "-w", tiny_checkpoint, "-o", out, "-l", "conv3", "--shard", "0/2",
        "-j", "0")
    cli("extract", data, "-w", tiny_checkpoint, "-o", out, "-l", "conv4", "--shard", "1/2",
        "-j", "0")
    r = cli("merge", out)
    assert r.exit_code == 1 and "different networks or settings" in r.output
    assert "layers" in r.output
    cli("extract", data, "-w", tiny_checkpoint, "-o", out, "-l", "conv3", "--shard", "0/3",
        "-j", "0")
    r = cli("merge", out)
    assert r.exit_code == 1 and "2 and 3" in r.output


def test_merge_without_shards_says_so(cli, tmp_path):
    r = cli("merge", tmp_path)
    assert r.exit_code == 1 and "nothing to merge" in r.output
    r = cli("merge", tmp_path / "nope")
    assert r.exit_code == 1 and "no such directory" in r.output


def test_more_shards_than_inputs_merge_to_one_run(cli, write_audio, tiny_checkpoint, tmp_path,
                                                  monkeypatch):
    write_audio("few/a.wav", 0.6, kind="noise")
    write_audio("few/b.wav", 0.7, kind="noise")
    single = _in(tmp_path / "single", monkeypatch)
    cli("tag", tmp_path / "few", "-w", tiny_checkpoint, "-o", "out", "-j", "0")
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(7):
        r = cli("tag", tmp_path / "few", "-w", tiny_checkpoint, "-o", "out", "-j", "0",
                "--shard", f"{i}/7")
        assert r.exit_code == 0, r.output
    assert cli("merge", "out").exit_code == 0
    for name in ("tags.jsonl", "tags.csv"):
        assert (sharded / "out" / name).read_bytes() == (single / "out" / name).read_bytes()


def test_an_interrupted_shard_is_incomplete_and_its_rerun_resumes(cli, data, tiny_checkpoint,
                                                                  tmp_path, monkeypatch):
    import soundnet_cli.extract as extract

    real = extract.extract_files

    def interrupted(*args, **kwargs):
        for n, outcome in enumerate(real(*args, **kwargs)):
            if n == 1:
                raise KeyboardInterrupt
            yield outcome

    out = tmp_path / "out"
    monkeypatch.setattr(extract, "extract_files", interrupted)
    r = cli("extract", data, "-w", tiny_checkpoint, "-o", out, "--shard", "0/2", *EXTRACT)
    assert r.exit_code == 130
    status = [json.loads(line) for line in (out / "status.shard-0-of-2.jsonl").open()]
    assert "finished" not in status[-1]
    assert [s["outcome"] for s in status[1:]].count("ok") == 1  # what it did before Ctrl-C
    assert (out / "manifest.shard-0-of-2.csv").is_file()  # written on the way out
    monkeypatch.setattr(extract, "extract_files", real)
    cli("extract", data, "-w", tiny_checkpoint, "-o", out, "--shard", "1/2", *EXTRACT)
    monkeypatch.chdir(tmp_path / "data")  # merge finds everything from any directory
    (report,) = merge(out)
    assert [i for i, _ in report.incomplete] == [0] and not (out / "manifest.csv").exists()
    monkeypatch.chdir(tmp_path)
    r = cli("extract", data, "-w", tiny_checkpoint, "-o", out, "--shard", "0/2", *EXTRACT)
    assert "existing skipped" in r.output
    (report,) = merge(out)
    assert report.complete and report.counts["skipped"] >= 1


@pytest.mark.parametrize("command", ["tag", "extract"])
def test_same_stem_outputs_across_shards_are_those_of_one_run(cli, write_audio, tiny_checkpoint,
                                                               tmp_path, monkeypatch, command):
    for name in ("same/a.flac", "same/a.wav", "same/b.wav"):
        write_audio(name, 0.6, kind="noise", seed=len(name))
    args = [command, tmp_path / "same", "-w", tiny_checkpoint, "-o", "out", "-j", "0"]
    args += ["-l", "conv3"] if command == "extract" else []
    single = _in(tmp_path / "single", monkeypatch)
    one = cli(*args)
    assert one.exit_code == 0  # a.flac and a.wav keep their suffix in the output names
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(2):  # a.flac in shard 0, a.wav in shard 1
        cli(*args, "--shard", f"{i}/2")
    (report,) = merge(sharded / "out")
    assert report.complete and not report.failed
    names = ["tags.jsonl", "tags.csv"] if command == "tag" else ["manifest.csv"]
    for name in names:
        assert (sharded / "out" / name).read_bytes() == (single / "out" / name).read_bytes()


def test_merging_a_tag_run_does_not_import_torch(cli, data, tiny_checkpoint, tmp_path,
                                                 monkeypatch):
    """merge joins tables: loading torch (≈ 4 s and 190 MiB) would be its whole cost."""
    import subprocess
    import sys

    _in(tmp_path / "sharded", monkeypatch)
    for i in range(2):
        cli("tag", data, "-r", "-w", tiny_checkpoint, "-o", "out", "-f", "jsonl,csv,raven",
            "-j", "0", "--shard", f"{i}/2")
    code = ("import sys\nfrom soundnet_cli.shards.merge import merge\n"
            "merge('out')\nprint('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False" and (tmp_path / "sharded" / "out" / "tags.csv").is_file()


@pytest.mark.parametrize("command", ["tag", "extract"])
def test_listed_outputs_that_collide_across_shards_fail_as_in_one_run(
        cli, write_audio, tiny_checkpoint, tmp_path, monkeypatch, command):
    # Files given by a list without roots land in OUT by name: one/a.wav and two/a.flac collide.
    listed = [write_audio(n, 0.6, kind="noise", seed=len(n)) for n in
              ("one/a.wav", "two/a.flac", "one/b.wav", "two/c.wav")]
    listing = tmp_path / "all.txt"
    listing.write_text("".join(f"{p}\n" for p in listed))
    args = [command, "--files-from", listing, "-w", tiny_checkpoint, "-o", "out", "-j", "0"]
    args += ["-l", "conv3"] if command == "extract" else []
    single = _in(tmp_path / "single", monkeypatch)
    assert cli(*args).exit_code == 1
    sharded = _in(tmp_path / "sharded", monkeypatch)
    for i in range(2):  # one/a.wav in shard 0 (sorted: one/a, one/b, two/a, two/c), two/a.flac in 1
        cli(*args, "--shard", f"{i}/2")
    (report,) = merge(sharded / "out")
    failed = sorted(p for p, _ in report.failed)
    if command == "tag":  # the first listed wins, as in one run
        assert failed == [str(listed[1])]
        names = ["tags.jsonl", "tags.csv"]
    else:
        assert failed == [str(listed[0]), str(listed[1])]
        names = ["manifest.csv"]
    for name in names:
        assert (sharded / "out" / name).read_bytes() == (single / "out" / name).read_bytes()
