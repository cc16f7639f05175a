"""glibc malloc tuning: applied on Linux/glibc, never over the user's own settings."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from soundnet_cli.runtime import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def clean_env(monkeypatch) -> None:
    for name in (*allocator.USER_SETTINGS, "SOUNDNET_NO_MALLOC_TUNING"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_tunes_glibc_malloc(monkeypatch) -> None:
    clean_env(monkeypatch)
    assert allocator.tune_malloc() is True
    assert allocator.tune_malloc() is True  # idempotent


@pytest.mark.parametrize("name", ["GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD",
                                  "SOUNDNET_NO_MALLOC_TUNING"])
def test_user_settings_win(monkeypatch, name) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv(name, "1")
    assert allocator.tune_malloc() is False


def test_the_command_runs_with_it() -> None:
    """``soundnet --version`` goes through ``main()``, which tunes malloc before anything else."""
    env = {k: v for k, v in os.environ.items()
           if k not in (*allocator.USER_SETTINGS, "SOUNDNET_NO_MALLOC_TUNING")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = ("import sys; from unittest import mock; import soundnet_cli.runtime.allocator as a; "
            "calls = []; real = a.tune_malloc; "
            "a.tune_malloc = lambda *x: calls.append(real(*x)) or calls[-1]; "
            "from soundnet_cli.cli import main; sys.argv = ['soundnet', '--version']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nprint(calls)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith(str([GLIBC]))
