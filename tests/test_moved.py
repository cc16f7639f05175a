"""Old import paths (before the 0.2.0 restructure) still work for one release, with a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from soundnet_cli._moved import MOVED

# A few old paths spelled out, so the table cannot silently lose them.
EXPECTED = {
    "soundnet_cli.train": "soundnet_cli.training.supervised",
    "soundnet_cli.targets": "soundnet_cli.distill.targets",
    "soundnet_cli.linear": "soundnet_cli.svm.solver",
    "soundnet_cli.svm_model": "soundnet_cli.svm.model",
    "soundnet_cli.inference": "soundnet_cli.runtime.batch",
    "soundnet_cli.streaming": "soundnet_cli.runtime.stream",
    "soundnet_cli.decoding": "soundnet_cli.runtime.decode",
    "soundnet_cli.device": "soundnet_cli.runtime.device",
    "soundnet_cli.checkpoint": "soundnet_cli.weights.checkpoint",
    "soundnet_cli.importers": "soundnet_cli.weights.convert",
    "soundnet_cli.sources": "soundnet_cli.weights.formats.source",
    "soundnet_cli.tag": "soundnet_cli.tagging.scoring",
    "soundnet_cli.tagfiles": "soundnet_cli.tagging.outputs",
    "soundnet_cli.detect": "soundnet_cli.tagging.events",
}


def test_the_table_keeps_the_documented_paths() -> None:
    assert EXPECTED.items() <= MOVED.items()


# old modules that became packages: (package, a name of the old module, its new module).
MOVED_NAMES = [
    ("soundnet_cli.training", "LoopConfig", "soundnet_cli.training.loop"),
    ("soundnet_cli.training", "fit", "soundnet_cli.training.loop"),
    ("soundnet_cli.distill", "DistillConfig", "soundnet_cli.distill.student"),
    ("soundnet_cli.distill", "distill", "soundnet_cli.distill.student"),
    ("soundnet_cli.svm", "Protocol", "soundnet_cli.svm.protocol"),
    ("soundnet_cli.svm", "extract_features", "soundnet_cli.svm.features"),
    ("soundnet_cli.svm", "fit_svm", "soundnet_cli.svm.fit"),
    ("soundnet_cli.svm", "SvmModel", "soundnet_cli.svm.model"),
    ("soundnet_cli.weights", "load_model", "soundnet_cli.weights.registry"),
    ("soundnet_cli.weights", "resolve_weights", "soundnet_cli.weights.registry"),
]


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_module_path_warns_and_is_the_new_module(old: str, new: str) -> None:
    # A fresh interpreter: the warning comes at the first import only. No file is left at the old
    # path (git follows the move as a rename); soundnet_cli._moved resolves it.
    code = (f"import warnings, importlib; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    importlib.import_module({old!r})\nexcept DeprecationWarning as e:\n"
            f"    print('warned:', e)\nelse:\n    raise SystemExit('no warning')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "warned:" in out.stdout and new in out.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize("package,name,new", MOVED_NAMES)
def test_old_names_of_a_module_turned_package_warn(package: str, name: str, new: str) -> None:
    with pytest.warns(DeprecationWarning, match=new):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(new), name)


def test_a_submodule_is_not_taken_for_an_old_name() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from soundnet_cli.distill import teach
        from soundnet_cli.training import supervised
    assert teach.__name__ == "soundnet_cli.distill.teach"
    assert supervised.__name__ == "soundnet_cli.training.supervised"


def test_old_tag_path_keeps_working_for_user_code() -> None:
    """``from soundnet_cli.tag import tag_files`` (the 0.1 spelling in user scripts) still works."""
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    from soundnet_cli.tag import tag_files\nexcept DeprecationWarning as e:\n"
            "    print('warned', e)\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "from soundnet_cli.tag import tag_files\n"
            "import soundnet_cli.tagging.scoring as s\n"
            "print(tag_files is s.tag_files)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "warned soundnet_cli.tag moved to soundnet_cli.tagging.scoring" in out.stdout
    assert out.stdout.strip().endswith("True")
