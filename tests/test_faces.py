"""Every subpackage's ``__init__`` is its public face: each name it exports resolves, lazily (no
torch until a name is used), and nothing else is reached through it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

FACES = ["soundnet_cli", "soundnet_cli.model", "soundnet_cli.runtime", "soundnet_cli.weights", "soundnet_cli.svm",
         "soundnet_cli.training", "soundnet_cli.distill", "soundnet_cli.tagging",
         "soundnet_cli.shards", "soundnet_cli.files", "soundnet_cli.review",
         "soundnet_cli.units"]


@pytest.mark.parametrize("name", FACES)
def test_every_exported_name_resolves(name: str) -> None:
    face = importlib.import_module(name)
    missing = [n for n in face.__all__ if not hasattr(face, n)]
    assert not missing, f"{name} exports names it cannot give: {missing}"


@pytest.mark.parametrize("name", [f for f in FACES if f != "soundnet_cli.units"])
def test_no_exported_name_is_also_a_submodule(name: str) -> None:
    """A lazy face cannot give a function named like a submodule: once the submodule is
    imported, the package attribute is the module (``from soundnet_cli.shards import merge``
    would be the module ``shards.merge``). Such functions are imported from their module."""
    face = importlib.import_module(name)
    package = Path(face.__file__).parent
    submodules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir()
                                                          if (p / "__init__.py").exists()}
    assert not set(face.__all__) & submodules


def test_unknown_names_are_attribute_errors() -> None:
    import soundnet_cli.svm

    with pytest.raises(AttributeError, match="no attribute 'Protocol'"):
        soundnet_cli.svm.Protocol  # noqa: B018  (renamed SvmProtocol: no stdlib name clash)


def test_faces_import_no_torch() -> None:
    code = ("import sys\n"
            + "".join(f"import {n}\n" for n in FACES if n != "soundnet_cli.units")
            + "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
