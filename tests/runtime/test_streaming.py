"""Chunked streaming reproduces the whole-file computation at every layer, in bounded memory."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import make_tiny_model

from soundnet_cli import audio
from soundnet_cli.runtime import stream as streaming
from soundnet_cli.audio import SilentAudioWarning, iter_audio_blocks, load_audio
from soundnet_cli.runtime import Engine
from soundnet_cli.errors import AudioError, LayerError, MemoryBudgetError
from soundnet_cli.files import NpyStreamWriter
from soundnet_cli.runtime.stream import (
    collect_activations,
    is_long,
    prefetched,
    run_stream,
    stream_activations,
    stream_to_npy,
)

TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Thousands of tiny pushes: thread hand-offs would dominate on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference(model, wave: np.ndarray, layers) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model.features(torch.from_numpy(wave)[None], layers)
    return {n: t[0].T.numpy() for n, t in out.items()}


def gather(chunks) -> dict[str, np.ndarray]:
    """Concatenate a stream's pieces per layer, checking they arrive in order without gaps."""
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in chunks:
        done = sum(p.shape[0] for p in parts.get(chunk.layer, []))
        assert chunk.start == done, f"{chunk.layer}: piece starts at {chunk.start}, expected {done}"
        parts.setdefault(chunk.layer, []).append(chunk.data)
    return {n: np.concatenate(p) for n, p in parts.items()}


def assert_same(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], what: str = "") -> None:
    assert set(got) == set(ref), what
    for name, r in ref.items():
        assert got[name].shape == r.shape, f"{what} {name}: {got[name].shape} != {r.shape}"
        scale = max(float(np.abs(r).max()), 1e-6)
        err = float(np.abs(got[name] - r).max()) if r.size else 0.0
        assert err <= TOL * scale, f"{what} {name}: error {err:.3g}, scale {scale:.3g}"


def split(wave: np.ndarray, sizes) -> list[np.ndarray]:
    out, i = [], 0
    for size in sizes:
        if i >= wave.shape[0]:
            break
        out.append(wave[i:i + size])
        i += size
    if i < wave.shape[0]:
        out.append(wave[i:])
    return out


def noise(samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(samples)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Exactness


HEADS_RF = 209_374  # SoundNet-8 heads: the first length that yields a head frame


def check_chunked(model, samples: int, sizes) -> None:
    layers = [n for n in model.layer_names if model.geometry(n).min_samples() <= samples]
    wave = noise(samples, seed=samples % 7)
    got = gather(run_stream(Engine(model, layers), split(wave, sizes)))
    assert_same(got, reference(model, wave, layers), f"{samples} samples")


def irregular(samples: int, largest: int) -> np.ndarray:
    return np.random.default_rng(samples).integers(1, largest, size=2 * samples // largest + 2)


@pytest.mark.parametrize("chunk", [8_191, 8_193, 65_535, 65_537, "irregular"])
def test_chunked_equals_whole_at_every_layer(model, chunk) -> None:
    # Chunks straddle the pool5 hop (8192) and the heads' hop (65536); every chunk boundary
    # cuts through the smaller strides (2, 16, 32, 256, 512) somewhere.
    samples = 280_001
    sizes = irregular(samples, 20_000) if chunk == "irregular" else [chunk] * (samples // chunk + 1)
    check_chunked(model, samples, sizes)


@pytest.mark.parametrize("chunk", [17, 257, "irregular"])
def test_small_chunks_cut_through_the_early_strides(model, chunk) -> None:
    samples = 40_000  # enough for conv1 ... conv6
    sizes = irregular(samples, 600) if chunk == "irregular" else [chunk] * (samples // chunk + 1)
    check_chunked(model, samples, sizes)


@pytest.mark.parametrize("samples", [HEADS_RF - 1, HEADS_RF, HEADS_RF + 1])
def test_lengths_around_the_heads_receptive_field(model, samples: int) -> None:
    check_chunked(model, samples, irregular(samples, 30_000))


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5",
                                   "pool5", "conv6", "conv7", "objects", "scenes"])
def test_lengths_around_each_layers_receptive_field(model, layer: str) -> None:
    need = model.geometry(layer).min_samples()
    for samples in (need, need + 1, need + model.geometry(layer).hop):
        wave = noise(samples, seed=1)
        got = gather(run_stream(Engine(model, [layer]), split(wave, [5_000] * 100)))
        assert_same(got, reference(model, wave, [layer]), f"{layer}@{samples}")
    if need > 1:
        with pytest.raises(LayerError, match=layer):
            list(run_stream(Engine(model, [layer]), [noise(need - 1)]))


def test_stream_of_file_equals_load_audio_path(model, write_audio) -> None:
    # 44.1 kHz stereo: exercises streaming down-mix and streaming soxr resampling too.
    path = write_audio("long.flac", seconds=11.3, rate=44_100, kind="noise", channels=2)
    layers = model.layer_names
    got = gather(stream_activations(model, path, layers, chunk_seconds=0.7))
    assert_same(got, reference(model, load_audio(path), layers), "file")


def test_audio_blocks_are_bit_identical_to_load_audio(write_audio) -> None:
    for rate, channels in ((44_100, 1), (48_000, 2), (8_000, 1), (22_050, 2)):
        path = write_audio(f"b{rate}.wav", seconds=2.3, rate=rate, kind="noise",
                           channels=channels, subtype="FLOAT")
        whole = load_audio(path)
        for block_seconds in (0.05, 0.4, 10.0):
            joined = np.concatenate(list(iter_audio_blocks(path, block_seconds)))
            np.testing.assert_array_equal(joined, whole)


def test_collect_activations_assembles_whole_arrays(model, write_audio) -> None:
    path = write_audio("c.wav", seconds=12.0, rate=16_000, kind="tone")
    got = collect_activations(model, path, ["conv5", "conv8"], chunk_seconds=1.3)
    assert_same(got.activations, reference(model, load_audio(path), ["conv5", "conv8"]))
    assert got.samples == load_audio(path).shape[0]
    assert got.duration == pytest.approx(12.0, abs=1e-3)


def test_collect_refuses_results_over_the_budget(model, write_audio) -> None:
    path = write_audio("big.wav", seconds=3.0)
    with pytest.raises(MemoryBudgetError, match="big.wav.*stream_to_npy"):
        collect_activations(model, path, ["conv1"], max_bytes=10_000)


def test_stream_too_short_file_raises_before_work(model, write_audio) -> None:
    path = write_audio("short.wav", seconds=2.0)
    with pytest.raises(LayerError, match="objects"):
        next(stream_activations(model, path, ["objects"]))


def test_stream_warns_on_silence(model, write_audio) -> None:
    path = write_audio("quiet.wav", seconds=2.0, kind="silence")
    with pytest.warns(SilentAudioWarning, match="quiet.wav"):
        list(stream_activations(model, path, ["conv3"]))


def test_corrupt_file_is_an_audio_error(model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(AudioError, match="bad.wav"):
        list(stream_activations(model, bad, ["conv3"]))


# ---------------------------------------------------------------------------------------------
# Writing to disk


def test_npy_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.npy"
    rows = np.random.default_rng(0).standard_normal((1000, 6)).astype(np.float32)
    with NpyStreamWriter(path, channels=6) as w:
        for i in range(0, 1000, 333):
            w.append(rows[i:i + 333])
    np.testing.assert_array_equal(np.load(path), rows)
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), rows)
    assert list(tmp_path.iterdir()) == [path]


def test_npy_writer_empty_and_error(tmp_path: Path) -> None:
    with NpyStreamWriter(tmp_path / "empty.npy", channels=3):
        pass
    assert np.load(tmp_path / "empty.npy").shape == (0, 3)
    with pytest.raises(RuntimeError):
        with NpyStreamWriter(tmp_path / "fail.npy", channels=3) as w:
            w.append(np.zeros((4, 3), np.float32))
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npy"]
    with pytest.raises(ValueError):
        with NpyStreamWriter(tmp_path / "x.npy", channels=3) as w:
            w.append(np.zeros((4, 2), np.float32))


def test_stream_to_npy_writes_each_layer(model, write_audio, tmp_path: Path) -> None:
    path = write_audio("s.wav", seconds=10.0, rate=22_050, kind="noise")
    outs = {"pool5": tmp_path / "o" / "pool5.npy", "scenes": tmp_path / "o" / "scenes.npy"}
    shapes = stream_to_npy(model, path, outs, chunk_seconds=0.9)
    ref = reference(model, load_audio(path), list(outs))
    assert_same({n: np.load(p) for n, p in outs.items()}, ref)
    assert shapes == {n: ref[n].shape for n in outs}


def test_stream_to_npy_leaves_nothing_on_failure(model, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"OggS" + b"\x00" * 200)
    out = tmp_path / "out"
    with pytest.raises(AudioError):
        stream_to_npy(model, bad, {"conv5": out / "conv5.npy"})
    assert not out.exists() or list(out.iterdir()) == []


def test_stream_to_npy_wants_one_layer_per_path(model, write_audio, tmp_path: Path) -> None:
    path = write_audio("h.wav", seconds=10.0)
    with pytest.raises(LayerError, match="several"):
        stream_to_npy(model, path, {"conv8": tmp_path / "heads.npy"})


# ---------------------------------------------------------------------------------------------
# Bounded memory and policy


def write_long(path: Path, seconds: float, rate: int, block_seconds: float = 20.0) -> None:
    """Write a long noise file block by block, never holding it whole."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        left = int(seconds * rate)
        while left:
            n = min(left, int(block_seconds * rate))
            f.write((0.2 * rng.standard_normal(n)).astype(np.float32))
            left -= n


def test_long_file_streams_in_bounded_memory(model, tmp_path: Path, monkeypatch) -> None:
    # 10 minutes at 16 kHz: 42 MB of float32 once resampled to 22,050 Hz. Whole-file decoding is
    # made impossible, and the numpy memory the stream allocates is bounded by the chunk.
    path = tmp_path / "ten-minutes.wav"
    write_long(path, 600.0, 16_000)

    def refuse(*args, **kwargs):
        raise AssertionError("the streaming path decoded a whole file")

    monkeypatch.setattr(audio, "load_audio", refuse)
    monkeypatch.setattr(sf, "read", refuse)
    frames = 0
    tracemalloc.start()
    try:
        for chunk in stream_activations(model, path, ["conv5"], chunk_seconds=5.0):
            frames += chunk.data.shape[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    samples = streaming.expected_samples(audio.audio_info(path), 22_050)
    assert frames == model.geometry("conv5").frames(samples)
    whole = samples * 4
    assert peak < 4_000_000 < whole / 10, f"peak numpy memory {peak} bytes"


def test_is_long_policy(write_audio) -> None:
    path = write_audio("p.wav", seconds=3.0, rate=8_000)
    assert is_long(path, long_seconds=2.5)
    assert not is_long(path, long_seconds=3.0)
    assert not is_long(audio.audio_info(path))


def test_frame_times_are_receptive_field_centres(model) -> None:
    t = model.time_axis("conv5").centres(3, 10)
    g = model.geometry("conv5")
    assert t.shape == (3,)
    assert t[1] - t[0] == pytest.approx(g.hop / 22_050)
    assert t[0] == pytest.approx((g.first_sample + 10 * g.hop + g.receptive_field / 2) / 22_050)


def test_prefetch_keeps_order_and_reraises() -> None:
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise AudioError("x.wav: cannot decode: boom")

    got = []
    with pytest.raises(AudioError, match="boom"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_and_closes_its_source_when_abandoned() -> None:
    closed = []

    def source():
        try:
            for i in range(10**9):
                yield i
        finally:
            closed.append(True)

    stream = prefetched(source(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert closed == [True]


def test_load_audio_max_seconds_refuses_before_decoding(write_audio) -> None:
    path = write_audio("m.wav", seconds=3.0, rate=8_000)
    with pytest.raises(audio.AudioTooLong, match="m.wav") as caught:
        load_audio(path, max_seconds=2.0)
    assert caught.value.info.frames == 24_000
    assert isinstance(caught.value, AudioError)
    assert load_audio(path, max_seconds=3.0).shape == (int(3.0 * 22_050),)


def test_sibling_heads_stream_exactly() -> None:
    from soundnet_cli.model import HeadSpec

    heads = (HeadSpec("wide", ("a", "b", "c"), 8, 2, 0), HeadSpec("narrow", ("x", "y"), 4, 1, 2))
    model = make_tiny_model(heads=heads)
    wave = noise(300_000, seed=5)
    layers = ["conv7", "wide", "narrow"]
    got = gather(run_stream(Engine(model, layers), split(wave, [7_777] * 40)))
    assert_same(got, reference(model, wave, layers), "siblings")


def test_stages_that_wait_for_more_frames_stay_exact(model, monkeypatch) -> None:
    # The full network's heavy stages (conv6, conv7, heads) wait to emit several frames per call;
    # the tiny model's weights are too small to trigger it, so force it on every stage.
    monkeypatch.setattr(streaming, "FRAMES_PER_QUARTER_MIB", 10**6)
    monkeypatch.setattr(streaming, "MAX_WAIT_FRAMES", 5)
    engine = Engine(model, model.layer_names)
    waits = [streaming._StageStream(st, engine.device).min_frames for st in engine.stages]
    assert waits == [5 if st.weight_bytes else 1 for st in engine.stages]
    check_chunked(model, 280_001, irregular(280_001, 20_000))


def test_consumer_code_runs_outside_inference_mode(model) -> None:
    wave = noise(40_000)
    for _ in run_stream(Engine(model, ["conv3"]), split(wave, [10_000] * 4)):
        assert not torch.is_inference_mode_enabled()
    read_only = wave.copy()
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(run_stream(Engine(model, ["conv3"]), [read_only]))


def test_blocks_of_other_dtypes_are_accepted(model) -> None:
    wave = noise(40_000)
    ref = gather(run_stream(Engine(model, ["conv3"]), [wave]))
    got = gather(run_stream(Engine(model, ["conv3"]), [wave[:20_000].astype(np.float64),
                                                        wave[20_000:]]))
    assert_same(got, ref, "float64 block")


def test_collect_grows_when_the_header_underestimates(model, write_audio, monkeypatch) -> None:
    path = write_audio("g.wav", seconds=3.0, kind="noise")
    monkeypatch.setattr(streaming, "expected_samples", lambda info, rate: 20_000)
    got = collect_activations(model, path, ["pool2", "conv5"], chunk_seconds=0.5)
    assert_same(got.activations, reference(model, load_audio(path), ["pool2", "conv5"]))


def test_chunk_seconds_must_be_positive(model, write_audio) -> None:
    path = write_audio("z.wav", seconds=1.0)
    with pytest.raises(ValueError, match="chunk_seconds"):
        next(stream_activations(model, path, ["conv2"], chunk_seconds=0))
    with pytest.raises(ValueError, match="chunk_seconds"):
        collect_activations(model, path, ["conv2"], chunk_seconds=-1)


def test_long_files_report_progress_as_they_stream(tiny_model, write_audio, tmp_path):
    """A single long file used to show nothing until it ended: chunks report their seconds."""
    from soundnet_cli.extract import extract_files
    from soundnet_cli.runtime import RunOptions
    from soundnet_cli.tagging import tag_files

    path = write_audio("long.wav", 31.0)
    for run in ("tag", "extract"):
        seen: list[tuple[str, float]] = []
        opts = RunOptions(long_seconds=12.0, chunk_seconds=5.0,
                          on_audio=lambda p, s: seen.append((p.name, s)))
        if run == "tag":
            (result,) = tag_files(tiny_model, [path], options=opts)
            assert result.ok
        else:
            (outcome,) = extract_files(tiny_model, [path], ["conv5"], tmp_path / "out",
                                       options=opts)
            assert outcome.ok
        assert len(seen) >= 6 and {name for name, _ in seen} == {"long.wav"}
        assert abs(sum(s for _, s in seen) - 31.0) < 1e-3, run


def test_audio_progress_shows_a_long_file(tmp_path, write_audio):
    from soundnet_cli.cli.common import AudioProgress

    path = write_audio("long.wav", 90.0, rate=8_000)
    with AudioProgress("tagging", 1) as progress:
        progress.audio(path, 30.0)
        progress.audio(path, 30.0)
        (task,) = [t for t in progress.progress.tasks if t.visible]
        assert task.total == 90.0 and task.completed == 60.0
        assert task.fields["audio"] == "1:00 of 1:30 audio"
        progress.advance(90.0)
        assert not [t for t in progress.progress.tasks if t.visible]


# ---------------------------------------------------------------------------------------------
# Heads that skip the trunk's last frame (HeadSpec.skip_last: the authors' heads)


@pytest.fixture(scope="module")
def skipping_model():
    from dataclasses import replace

    from helpers import tiny_config

    heads = tuple(replace(h, skip_last=1) for h in tiny_config().heads)
    return make_tiny_model(heads=heads)


def test_skip_last_heads_never_read_the_last_frame(skipping_model) -> None:
    """Every head step equals the head conv over conv7 without its last frame, and the geometry
    counts exactly those steps: 10 s (8 conv7 frames) gives none, 10.98 s the first."""
    m = skipping_model
    for samples in (220_500, 242_141, 242_142, 16 * 22_050, 20 * 22_050):
        wave = noise(samples, seed=samples % 5)
        want = m.geometry("objects").frames(samples)
        conv7 = reference(m, wave, ["conv7"])["conv7"].T[None]  # (1, channels, frames)
        head = m.heads["objects"]
        expected = head(torch.from_numpy(conv7[..., :-1].copy())).detach()[0].T.numpy() \
            if conv7.shape[-1] - 1 >= head.kernel_size[0] else np.zeros((0, 7), np.float32)
        assert expected.shape[0] == want, samples
        if want == 0:
            with pytest.raises(LayerError, match="too short"):
                reference(m, wave, ["objects"])
            continue
        got = reference(m, wave, ["objects"])["objects"]
        assert_same({"objects": got}, {"objects": expected}, f"features@{samples}")
        with torch.inference_mode():
            engine = Engine(m, ["objects", "scenes"]).forward(torch.from_numpy(wave)[None])
        assert_same({"objects": engine["objects"][0].T.numpy()}, {"objects": expected},
                    f"engine@{samples}")
    assert m.geometry("objects").min_samples() == 242_142


@pytest.mark.parametrize("samples", [242_142, 262_144 + 5, 16 * 22_050, 20 * 22_050 + 3])
def test_skip_last_heads_stream_exactly(skipping_model, samples: int) -> None:
    """Streaming holds back the frame that may turn out to be the last: chunked == whole."""
    layers = ["conv7", "objects", "scenes"]
    wave = noise(samples, seed=3)
    for sizes in ([32_768] * 20, irregular(samples, 30_000)):
        got = gather(run_stream(Engine(skipping_model, layers), split(wave, sizes)))
        assert_same(got, reference(skipping_model, wave, layers), f"{samples}")
