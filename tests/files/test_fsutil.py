"""Atomic writes and output paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from soundnet_cli.files.fsutil import atomic_path, atomic_write_text, mirrored_output


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path: Path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_outputs_get_umask_permissions_not_0600(tmp_path: Path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_mirrored_output_keeps_tree_under_root(tmp_path: Path):
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    src = root / "a" / "x.wav"
    src.write_bytes(b"")
    assert mirrored_output(src, [root], tmp_path / "out", ".npy") == tmp_path / "out" / "a" / "x.npy"
    assert mirrored_output(src, [], tmp_path / "out", ".npy") == tmp_path / "out" / "x.npy"


def test_collision_candidates_are_the_inputs_named_like_ours(tmp_path):
    from soundnet_cli.files.fsutil import collision_candidates

    for name in ("x/a.wav", "y/a.flac", "y/b.wav", "z/real.wav", "x/a.conv5.npy"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    run = [tmp_path / n for n in ("x/a.wav", "y/a.flac", "y/b.wav", "z/real.wav", "gone/a.ogg",
                                  "x/a.conv5.npy")]
    own = [tmp_path / "x/a.wav"]
    # same stem (a missing one is no input), an output's own stem, an output's name
    assert collision_candidates(run, own) == [run[0], run[1]]
    assert collision_candidates(run, own, stems={"real"}) == [run[0], run[1], run[3]]
    assert collision_candidates(run, own, names={"a.conv5.npy"}) == [run[0], run[1], run[5]]
    extra = tmp_path / "w/new.wav"  # one of ours the run list does not name comes last
    assert collision_candidates(run[1:3], [extra]) == [extra]
