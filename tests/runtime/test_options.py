"""RunOptions: one frozen set of scheduling knobs, planned as the CLI plans them, accepted by
iter_activations, tag_files, extract_files and extract_features, whose outputs do not depend
on it; the scheduling keywords of before 0.2 are gone (one way to say each thing)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from soundnet_cli.datasets import Dataset
from soundnet_cli.extract import extract_files
from soundnet_cli.runtime import options as options_module
from soundnet_cli.runtime import options as workers_module
from soundnet_cli.runtime import iter_activations
from soundnet_cli.runtime import LONG_FILE_SECONDS, RunOptions
from soundnet_cli.svm import extract_features
from soundnet_cli.svm import SvmProtocol
from soundnet_cli.tagging import result_to_json, tag_files

pytestmark = pytest.mark.filterwarnings("ignore::soundnet_cli.audio.SilentAudioWarning")


@pytest.fixture
def clips(write_audio) -> list[Path]:
    """Clips of a few lengths and rates, one of them needing tiling for the heads."""
    return [write_audio(f"c{i}.wav", seconds=s, rate=r, kind="noise", seed=i)
            for i, (s, r) in enumerate([(1.0, 22_050), (2.5, 44_100), (1.0, 16_000),
                                        (0.4, 22_050), (2.5, 22_050)])]


@contextlib.contextmanager
def no_deprecation() -> Iterator[None]:
    """A DeprecationWarning inside fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


# -- the options object -------------------------------------------------------------------------

def test_defaults_are_frozen_and_validated() -> None:
    opts = RunOptions()
    assert (opts.device, opts.batch_size, opts.workers, opts.threads) == (None, 32, 0, None)
    assert opts.long_seconds == LONG_FILE_SECONDS == 60.0 and opts.chunk_seconds == 10.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.batch_size = 4  # type: ignore[misc]
    assert opts.replace(batch_size=4).batch_size == 4 and opts.batch_size == 32
    for bad in ({"batch_size": 0}, {"workers": -1}, {"threads": 0}, {"chunk_seconds": 0.0},
                {"max_queued_bytes": 0}):
        with pytest.raises(ValueError):
            RunOptions(**bad)


def test_plan_is_the_cli_plan(monkeypatch) -> None:
    """Workers as auto_workers plans them, threads the cores they leave; a GPU keeps torch's
    threads; OMP_NUM_THREADS wins; an explicit choice wins; a started decoder sets the workers."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(workers_module, "available_cores", lambda: 16)
    cpu = torch.device("cpu")
    assert (RunOptions.plan(cpu, 100).workers, RunOptions.plan(cpu, 100).threads) == (8, 8)
    assert (RunOptions.plan("cpu", 3).workers, RunOptions.plan("cpu", 3).threads) == (3, 13)
    assert (RunOptions.plan(cpu, 1).workers, RunOptions.plan(cpu, 1).threads) == (0, 16)
    assert RunOptions.plan(cpu, 100, workers=1, threads=2).threads == 2
    assert RunOptions.plan(cpu, 100, workers=1).threads == 15
    cuda = RunOptions.plan(torch.device("cuda", 0), 100)
    assert (cuda.workers, cuda.threads) == (8, None)
    planned = RunOptions.plan(cpu, 100, batch_size=3, long_seconds=None)
    assert planned.batch_size == 3 and planned.long_seconds is None and planned.device == cpu

    class Started:
        workers = 2

    assert RunOptions.plan(cpu, 100, workers=7, decoder=Started()).workers == 2  # type: ignore
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert RunOptions.plan(cpu, 100).threads is None


def test_thread_count_without_a_plan(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(workers_module, "available_cores", lambda: 4)
    assert RunOptions().thread_count(torch.device("cpu")) is None
    assert RunOptions(workers=3).thread_count(torch.device("cpu")) == 1
    assert RunOptions(workers=1, threads=2).thread_count(torch.device("cpu")) == 2
    assert RunOptions(workers=1).thread_count(torch.device("cuda")) is None


def test_options_module_is_torch_free() -> None:
    code = ("import sys, soundnet_cli.runtime.options as o; o.RunOptions.plan('cpu', 10); "
            "assert 'torch' not in sys.modules")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_one_copy_of_each_default() -> None:
    from soundnet_cli.runtime import batch, decode, stream

    assert not hasattr(stream, "DEFAULT_MAX_BYTES") and not hasattr(decode, "DEFAULT_MAX_BYTES")
    assert decode.LONG_FILE_SECONDS is stream.LONG_FILE_SECONDS is options_module.LONG_FILE_SECONDS
    assert batch.DEFAULT_MICRO_BATCH_SAMPLES == RunOptions().micro_batch_samples


def test_old_scheduling_keywords_are_refused(tiny_model, clips, tmp_path) -> None:
    with pytest.raises(TypeError):
        next(iter(iter_activations(tiny_model, clips, ["conv5"],
                                   batch_size=2)))  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        next(iter(tag_files(tiny_model, clips, workers=1)))  # type: ignore[call-arg]


# -- outputs do not depend on how the options arrive --------------------------------------------


def test_iter_activations_same_whatever_the_options(tiny_model, clips) -> None:
    with no_deprecation():
        new = list(iter_activations(tiny_model, clips, ["conv5", "pool5"]))
        planned = list(iter_activations(tiny_model, clips, ["conv5", "pool5"],
                                        options=RunOptions(batch_size=2, workers=2)))
        other = list(iter_activations(tiny_model, clips, ["conv5", "pool5"],
                                      options=RunOptions(device="cpu", batch_size=16)))
    for a, b, c in zip(new, other, planned, strict=True):
        assert a.path == b.path == c.path and a.ok and b.ok and c.ok
        for name in ("conv5", "pool5"):
            np.testing.assert_array_equal(a.activations[name], b.activations[name])
            np.testing.assert_array_equal(a.activations[name], c.activations[name])


def test_tag_files_same_whatever_the_options(tiny_model, clips) -> None:
    with no_deprecation():
        new = [result_to_json(r, 5, True) for r in tag_files(tiny_model, clips)]
        given = [result_to_json(r, 5, True)
                 for r in tag_files(tiny_model, clips, options=RunOptions())]
        spelled = [result_to_json(r, 5, True) for r in tag_files(
            tiny_model, clips, options=RunOptions(device="cpu", batch_size=8, workers=0,
                                                  long_seconds=LONG_FILE_SECONDS,
                                                  chunk_seconds=10.0))]
    assert new == given == spelled and all(r["ok"] for r in new)
    heads_new = [h.scores for r in tag_files(tiny_model, clips) for h in r.heads]
    heads_other = [h.scores for r in tag_files(
        tiny_model, clips, options=RunOptions(batch_size=3, workers=2)) for h in r.heads]
    for a, b in zip(heads_new, heads_other, strict=True):
        np.testing.assert_array_equal(a, b)


def test_extract_files_same_whatever_the_options(tiny_model, clips, tmp_path) -> None:
    new, other = tmp_path / "new", tmp_path / "other"
    with no_deprecation():
        assert all(o.ok for o in extract_files(tiny_model, clips, ["conv4", "pool5"], new))
        assert all(o.ok for o in extract_files(
            tiny_model, clips, ["conv4", "pool5"], other,
            options=RunOptions(device="cpu", batch_size=3, workers=2, chunk_seconds=2.0)))
    written = sorted(p.relative_to(new) for p in new.rglob("*.npy"))
    assert len(written) == 2 * len(clips)
    for rel in written:
        assert (new / rel).read_bytes() == (other / rel).read_bytes()


def test_extract_features_same_whatever_the_options(tiny_model, clips, tmp_path) -> None:
    ds = Dataset(tmp_path, tuple(clips), np.array([0, 1, 0, 1, 0]), ("a", "b"), None, "folders")
    for protocol in (SvmProtocol("pooled"), SvmProtocol("paper")):
        with no_deprecation():
            new = extract_features(tiny_model, ds, ["pool5", "conv4"], protocol,
                                   use_cache=False)
            other = extract_features(tiny_model, ds, ["pool5", "conv4"], protocol,
                                     use_cache=False,
                                     options=RunOptions(batch_size=2, workers=1))
        for name in ("pool5", "conv4"):
            assert new[name].key == other[name].key
            for a, b in zip(new[name].activations, other[name].activations, strict=True):
                np.testing.assert_array_equal(a, b)
