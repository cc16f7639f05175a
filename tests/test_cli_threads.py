"""The CLI makes OpenMP threads wait passively unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = "import os, soundnet_cli.cli; print(os.environ['OMP_WAIT_POLICY'])"


def run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()


def test_passive_by_default_and_user_setting_wins() -> None:
    assert run(None) == "PASSIVE"
    assert run("ACTIVE") == "ACTIVE"
