"""Old module paths of the 0.2.0 restructure, kept importable for one release.

``import soundnet_cli.train`` (or any old path in :data:`MOVED`) gives the module at its new path,
the same module object, so every name, private ones included, resolves and patching either path
patches both; the first import warns with a DeprecationWarning. No file stays at an old path, so
git follows each move as a rename. Deleting this module (and its line in ``__init__``) ends the
grace period.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Sequence

# old module -> new module
MOVED = {
    "soundnet_cli.train": "soundnet_cli.training.supervised",
    "soundnet_cli.teach": "soundnet_cli.distill.teach",
    "soundnet_cli.teachers": "soundnet_cli.distill.teachers",
    "soundnet_cli.targets": "soundnet_cli.distill.targets",
    "soundnet_cli.video": "soundnet_cli.distill.video",
    "soundnet_cli.feature_cache": "soundnet_cli.svm.cache",
    "soundnet_cli.linear": "soundnet_cli.svm.solver",
    "soundnet_cli.svm_model": "soundnet_cli.svm.model",
    "soundnet_cli.svm_report": "soundnet_cli.svm.report",
    "soundnet_cli.inference": "soundnet_cli.runtime.batch",
    "soundnet_cli.engine": "soundnet_cli.runtime.engine",
    "soundnet_cli.streaming": "soundnet_cli.runtime.stream",
    "soundnet_cli.decoding": "soundnet_cli.runtime.decode",
    "soundnet_cli.device": "soundnet_cli.runtime.device",
    "soundnet_cli.allocator": "soundnet_cli.runtime.allocator",
    "soundnet_cli.checkpoint": "soundnet_cli.weights.checkpoint",
    "soundnet_cli.download": "soundnet_cli.weights.download",
    "soundnet_cli.importers": "soundnet_cli.weights.convert",
    "soundnet_cli.sources": "soundnet_cli.weights.formats.source",
    "soundnet_cli.torch7": "soundnet_cli.weights.formats.torch7",
    "soundnet_cli.safeload": "soundnet_cli.weights.formats.safeload",
    # 0.2.0, second step: the tag-related modules as one subpackage
    "soundnet_cli.tag": "soundnet_cli.tagging.scoring",
    "soundnet_cli.tagfiles": "soundnet_cli.tagging.outputs",
    "soundnet_cli.detect": "soundnet_cli.tagging.events",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there",
                      DeprecationWarning, stacklevel=2)
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set the alias's spec; restore the real one


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths (consulted after the regular finders, which no longer find them)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return None if new is None else importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
