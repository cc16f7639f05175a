"""iter_activations: batching by equal length, input order, failures, tiling, long-file routing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_tiny_model

from soundnet_cli.runtime import decode as decoding
from soundnet_cli.audio import load_audio, tile
from soundnet_cli.runtime import Engine
from soundnet_cli.runtime import iter_activations
from soundnet_cli.runtime import RunOptions

TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


def reference(model, path: Path, layers, min_samples: int = 0) -> dict[str, np.ndarray]:
    wave = tile(load_audio(path), max(min_samples, 1))
    with torch.no_grad():
        out = model.features(torch.from_numpy(wave)[None], layers)
    return {n: t[0].T.numpy() for n, t in out.items()}


def assert_same(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], what: str) -> None:
    assert list(got) == list(ref), what
    for name, r in ref.items():
        assert got[name].shape == r.shape, f"{what} {name}"
        scale = max(float(np.abs(r).max()), 1e-6)
        assert float(np.abs(got[name] - r).max()) <= TOL * scale, f"{what} {name}"


@pytest.fixture
def mixed(write_audio) -> list[Path]:
    """Clips of three lengths, interleaved, at several native rates."""
    paths = []
    for i in range(9):
        seconds = (1.0, 1.5, 1.0 + 1 / 22_050)[i % 3]
        rate = (22_050, 44_100, 16_000)[i % 3]
        paths.append(write_audio(f"c{i}.wav", seconds=seconds, rate=rate, kind="noise", seed=i))
    return paths


@pytest.mark.parametrize("batch_size,micro", [(1, 1 << 18), (4, 1 << 18), (16, 10_000),
                                              (16, None)])
def test_results_match_per_file_forward_in_input_order(model, mixed, batch_size, micro) -> None:
    layers = ["pool1", "conv4", "conv5"]
    results = list(iter_activations(model, mixed, layers, options=RunOptions(batch_size=batch_size, micro_batch_samples=micro)))
    assert [r.index for r in results] == list(range(len(mixed)))
    assert [r.path for r in results] == mixed
    for r in results:
        assert r.ok and not r.streamed
        assert_same(r.activations, reference(model, r.path, layers), r.path.name)
        assert r.duration == pytest.approx(load_audio(r.path).shape[0] / 22_050)


def test_equal_lengths_share_a_forward_pass(model, mixed, monkeypatch) -> None:
    sizes: list[int] = []
    forward = Engine.forward

    def spy(self, batch, **kwargs):
        sizes.append(batch.shape[0])
        return forward(self, batch, **kwargs)

    monkeypatch.setattr(Engine, "forward", spy)
    list(iter_activations(model, mixed, ["conv3"], options=RunOptions(batch_size=3)))
    # Three lengths, three clips each, interleaved: the look-ahead groups them.
    assert sorted(sizes) == [3, 3, 3]


def test_micro_batches_run_the_early_stages_on_slices(model, monkeypatch) -> None:
    engine = Engine(model, ["pool1", "conv8"])
    x = 0.3 * torch.randn(5, 215_000, generator=torch.Generator().manual_seed(0))
    seen: list[int] = []
    first = engine.stages[0]
    fn = first.fn
    object.__setattr__(first, "fn", lambda t: seen.append(t.shape[0]) or fn(t))
    sliced = engine.forward(x, max_samples=2 * 215_000)
    assert seen == [2, 2, 1]
    whole = engine.forward(x)
    for name in whole:
        torch.testing.assert_close(sliced[name], whole[name], rtol=1e-5, atol=1e-5)


def test_bad_file_is_reported_and_the_rest_go_on(model, mixed, tmp_path: Path) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    paths = mixed[:2] + [bad, tmp_path / "missing.wav"] + mixed[2:4]
    results = list(iter_activations(model, paths, ["conv2"], options=RunOptions(batch_size=4)))
    assert [r.ok for r in results] == [True, True, False, False, True, True]
    assert "broken.wav" in results[2].error and results[2].activations is None
    assert "missing.wav" in results[3].error


def test_short_clips_are_tiled(model, write_audio) -> None:
    path = write_audio("short.wav", seconds=2.0)
    need = 10 * 22_050
    (r,) = iter_activations(model, [path], ["objects"], min_samples=need)
    assert r.tiled_to == pytest.approx(5 * 44_100 / 22_050)
    assert r.duration == pytest.approx(2.0)
    assert_same(r.activations, reference(model, path, ["objects"], need), "tiled")


def test_worker_processes_give_the_same_results(model, mixed) -> None:
    a = list(iter_activations(model, mixed, ["conv4"], options=RunOptions(workers=2, batch_size=2)))
    b = list(iter_activations(model, mixed, ["conv4"], options=RunOptions(workers=0, batch_size=1)))
    assert [r.path for r in a] == mixed
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.activations["conv4"], y.activations["conv4"], atol=1e-6)


def test_long_files_are_streamed_not_decoded_whole(model, mixed, write_audio, monkeypatch) -> None:
    long = write_audio("long.wav", seconds=12.0, rate=44_100, kind="noise")
    expected = reference(model, long, ["conv5", "conv8"])
    decode = decoding.load_audio

    def guarded(path, *args, **kwargs):
        wave = decode(path, *args, **kwargs)  # must raise AudioTooLong for the long file
        assert Path(path) != long, "a long file was decoded whole"
        return wave

    monkeypatch.setattr(decoding, "load_audio", guarded)
    paths = [mixed[0], long, mixed[1]]
    results = list(iter_activations(model, paths, ["conv5", "conv8"], options=RunOptions(long_seconds=11.0, chunk_seconds=1.7)))
    assert [r.path for r in results] == paths
    assert [r.streamed for r in results] == [False, True, False]
    assert_same(results[1].activations, expected, "streamed")
    assert results[1].duration == pytest.approx(12.0, abs=1e-3)


def test_streamed_result_over_budget_fails_alone(model, mixed, write_audio) -> None:
    long = write_audio("long.wav", seconds=4.0)
    results = list(iter_activations(model, [long, mixed[0]], ["conv1"], options=RunOptions(long_seconds=3.0, max_result_bytes=1_000)))
    assert not results[0].ok and "stream_to_npy" in results[0].error and results[0].streamed
    assert results[1].ok


def test_files_that_need_tiling_are_never_streamed(model, write_audio) -> None:
    path = write_audio("s.wav", seconds=4.0)
    (r,) = iter_activations(model, [path], ["objects"], min_samples=10 * 22_050, options=RunOptions(long_seconds=1.0))
    assert r.ok and not r.streamed and r.tiled_to > 0


def test_threads_setting_is_restored(model, mixed) -> None:
    before = torch.get_num_threads()
    list(iter_activations(model, mixed[:2], ["conv2"], options=RunOptions(threads=1)))
    assert torch.get_num_threads() == before


def test_workers_leave_their_cores_to_decoding(model, mixed, monkeypatch) -> None:
    """The CLI's plan (runtime.options.plan_threads), for library callers too."""
    from soundnet_cli.runtime import options as workers

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(workers, "available_cores", lambda: 3)
    before = torch.get_num_threads()
    during = [torch.get_num_threads() for _ in iter_activations(model, mixed[:3], ["conv2"], options=RunOptions(workers=1))]
    assert during == [2] * 3
    assert torch.get_num_threads() == before
