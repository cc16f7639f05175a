"""Shared fixtures: a tiny random network, its checkpoint, generated audio, the CLI, a
headless browser. Helper functions live in ``tests/helpers`` (``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import soundfile as sf

from helpers import make_tiny_model, synth
from helpers.browser import browser  # noqa: F401  (the fixture)
from soundnet_cli.model import SoundNet
from soundnet_cli.weights import save_checkpoint


@pytest.fixture
def tiny_model() -> SoundNet:
    return make_tiny_model()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_model: SoundNet) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path, provenance={"made_by": "tests"})
    return path


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., Path]:
    """``write_audio(name, seconds, rate=22050, kind="tone", channels=1, subtype=None)`` -> path."""

    def _write(name: str, seconds: float = 1.0, rate: int = 22_050, kind: str = "tone",
               channels: int = 1, subtype: str | None = None, **kw) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), synth(seconds, rate, kind, channels, **kw), rate, subtype=subtype)
        return path

    return _write


def pytest_collection_modifyitems(config, items):
    """``slow`` tests run only with ``SOUNDNET_SLOW=1`` (the full fault campaign, see
    docs/reliability.md); CI runs the rest."""
    import os

    if os.environ.get("SOUNDNET_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: set SOUNDNET_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run():
    """Invoke the ``soundnet`` CLI in-process: ``run("tag", path, "--json")``."""
    from typer.testing import CliRunner

    from soundnet_cli.cli import app

    runner = CliRunner()

    def _run(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return _run
