"""Atomic writes and output paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from soundnet_cli.fsutil import atomic_path, atomic_write_text, mirrored_output


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
