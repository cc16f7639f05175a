"""``.ci/worktree.sh``: CI fails when the test suite leaves files in the work tree (issue #24)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / ".ci" / "worktree.sh"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_files_left_in_the_tree_fail_ci(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()

    def sh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=repo, capture_output=True, text=True)

    sh("git", "init", "-q")
    (repo / ".gitignore").write_text("/runs/\n__pycache__/\n")
    (repo / "a.py").write_text("x = 1\n")
    sh("git", "add", "-A")
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (repo / "mine.txt").write_text("a developer's own untracked file, there before the tests")
    before = tmp_path / "before.txt"
    assert sh("bash", str(SCRIPT), "snapshot", str(before)).returncode == 0
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"")  # bytecode: not counted
    clean = sh("bash", str(SCRIPT), "compare", str(before))
    assert clean.returncode == 0, clean.stdout
    (repo / "runs" / "distill").mkdir(parents=True)
    (repo / "runs" / "distill" / "run.json").write_text("{}")  # ignored by git, still caught
    (repo / "a.py").write_text("x = 2\n")
    dirty = sh("bash", str(SCRIPT), "compare", str(before))
    assert dirty.returncode == 1
    assert "runs/distill/run.json" in dirty.stdout and "a.py" in dirty.stdout
    assert "mine.txt" not in dirty.stdout
