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


def test_auto_workers_plan(monkeypatch) -> None:
    """Half the cores decode (at least 2, at most 8, never more than the files); one file
    decodes in the main process; a GPU leaves one core to the main process; a choice wins."""
    import torch

    from soundnet_cli.runtime import options as common

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    for cores, files, device, want in [(2, 100, cpu, 2), (4, 100, cpu, 2), (16, 100, cpu, 8),
                                       (64, 100, cpu, 8), (16, 3, cpu, 3), (2, 1, cpu, 0),
                                       (2, 0, cpu, 0), (16, 100, cuda, 8), (4, 100, cuda, 3),
                                       (1, 100, cuda, 1)]:
        monkeypatch.setattr(common, "available_cores", lambda c=cores: c)
        assert common.auto_workers(device, files) == want, (cores, files, device)
    assert common.auto_workers(cpu, 100, requested=0) == 0
    assert common.auto_workers(cpu, 1, requested=3) == 3


def test_threads_are_the_cores_the_workers_leave(monkeypatch) -> None:
    import torch

    from soundnet_cli.runtime import options as common

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(common, "available_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        common.configure_threads(torch.device("cpu"), 3)
        assert torch.get_num_threads() == 1
        common.configure_threads(torch.device("cpu"), 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
