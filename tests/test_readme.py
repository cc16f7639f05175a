"""What README.md promises a new user about installing (issue #24, items 4 and 9)."""

from __future__ import annotations

from pathlib import Path


def test_readme_install_line_brings_the_formats_of_the_quick_start():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert 'pip install ".[plot,parquet]" && soundnet tag examples/' in readme


def test_readme_says_what_to_do_when_the_cpu_index_is_unreachable():
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "cannot be reached" in readme
    assert "skip `--index-url` and run a plain `pip install torch==2.13.0`" in readme
