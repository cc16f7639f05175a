"""Decoding processes that start before torch: order, selection, bounds, crashing decoders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from soundnet_cli.runtime import decode as decoding
from soundnet_cli.runtime import DecodePool, decode_file

RATE = 22_050


@pytest.fixture
def files(write_audio, tmp_path: Path) -> list[Path]:
    """Seven short files at assorted rates and lengths, one corrupt, one silent."""
    paths = [write_audio(f"c{i}.wav", 0.3 + 0.1 * i, rate=(22_050, 44_100, 16_000)[i % 3],
                         kind="noise", seed=i) for i in range(5)]
    bad = tmp_path / "c5-bad.wav"
    bad.write_bytes(b"not audio at all")
    paths.append(bad)
    paths.append(write_audio("c6.wav", 0.5, kind="silence"))
    return paths


def same(a, b) -> None:
    assert (a.index, a.path, a.error, a.long, a.warnings) == (b.index, b.path, b.error, b.long,
                                                              b.warnings)
    if a.waveform is None:
        assert b.waveform is None
    else:
        np.testing.assert_array_equal(a.waveform, b.waveform)


@pytest.mark.parametrize("workers", [1, 2, 3, 9])
def test_pool_yields_what_decode_file_gives_in_order(files, workers) -> None:
    want = [decode_file(i, p, RATE) for i, p in enumerate(files)]
    with DecodePool(files, RATE, workers=workers) as pool:
        got = list(pool)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        same(a, b)
    assert got[5].error and "c5-bad.wav" in got[5].error
    assert got[6].warnings  # silence is flagged, not an error


def test_take_a_subsequence_renumbers_and_skips_the_rest(files) -> None:
    chosen = [files[1], files[4], files[5]]
    pool = DecodePool(files, RATE, workers=2)
    assert pool.matches(chosen, RATE, None)
    assert not pool.matches(chosen, 16_000, None)
    assert not pool.matches(chosen, RATE, 60.0)
    assert not pool.matches([files[4], files[1]], RATE, None)  # not in the pool's order
    got = list(pool.take(chosen))
    assert [c.index for c in got] == [0, 1, 2]
    assert [c.path for c in got] == chosen
    for c, p in zip(got, chosen):
        same(c, decode_file(c.index, p, RATE))
    assert not pool.matches(chosen, RATE, None)  # consumed
    with pytest.raises(RuntimeError):
        pool.take(chosen)


def test_long_files_are_flagged_not_decoded(files, write_audio) -> None:
    long = write_audio("long.wav", 3.0)
    with DecodePool([files[0], long], RATE, workers=2, long_seconds=2.0) as pool:
        short_clip, long_clip = list(pool)
    assert long_clip.long and long_clip.waveform is None and long_clip.error is None
    assert short_clip.waveform is not None and not short_clip.long


def test_queued_audio_is_bounded(write_audio) -> None:
    """Workers stop decoding ahead once their share of ``max_bytes`` is queued."""
    paths = [write_audio(f"b{i}.wav", 1.0, seed=i) for i in range(12)]
    clip_bytes = RATE * 4
    pool = DecodePool(paths, RATE, workers=2, max_bytes=2 * clip_bytes)  # one clip per worker
    time.sleep(1.5)
    held = [h.value for h in pool._held]
    assert all(0 < h <= clip_bytes for h in held), held
    assert len(list(pool)) == 12  # and reading frees the budget


def test_empty_list_and_bad_arguments(files) -> None:
    assert list(DecodePool([], RATE, workers=2)) == []
    with pytest.raises(ValueError):
        DecodePool(files, RATE, workers=0)
    with pytest.raises(ValueError):
        DecodePool(files, RATE, workers=1).take([Path("elsewhere.wav")])


def _crashing_decoder(crash_names: set[str], once_dir: Path | None = None):
    real = decoding.decode_file

    def fake(index, path, sample_rate, long_seconds=None):
        name = Path(path).name
        if name in crash_names:
            if once_dir is None:
                os.kill(os.getpid(), signal.SIGKILL)
            marker = once_dir / name
            if not marker.exists():  # crash the first time only
                marker.write_text("crashed")
                os.kill(os.getpid(), signal.SIGKILL)
        return real(index, path, sample_rate, long_seconds)

    return fake


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork context")
@pytest.mark.parametrize("workers", [1, 2])
def test_a_decoder_that_kills_its_process_fails_only_that_file(files, monkeypatch,
                                                              workers) -> None:
    monkeypatch.setattr(decoding, "decode_file", _crashing_decoder({files[2].name}))
    with DecodePool(files, RATE, workers=workers) as pool:
        got = list(pool)
    assert len(got) == len(files)
    assert got[2].waveform is None and "decoding process died (signal" in got[2].error
    monkeypatch.undo()
    for i in (0, 1, 3, 4, 6):
        same(got[i], decode_file(i, files[i], RATE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork context")
def test_a_process_that_dies_once_is_retried(files, monkeypatch, tmp_path) -> None:
    """A worker killed from outside (not by the file) loses nothing: the file is retried."""
    once = tmp_path / "once"
    once.mkdir()
    monkeypatch.setattr(decoding, "decode_file", _crashing_decoder({files[3].name}, once))
    with DecodePool(files, RATE, workers=2) as pool:
        got = list(pool)
    monkeypatch.undo()
    assert (once / files[3].name).exists()
    for i, clip in enumerate(got):
        same(clip, decode_file(i, files[i], RATE))


def test_the_module_does_not_import_torch() -> None:
    """It must be usable before torch loads: that is its point."""
    code = ("import sys, soundnet_cli.runtime.decode, soundnet_cli.extract, soundnet_cli.cli; "
            "print('torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork context")
def test_processes_that_die_before_any_file_raise_a_clear_error(files, monkeypatch) -> None:
    from soundnet_cli.errors import DecodingError

    monkeypatch.setattr(decoding, "_worker", lambda *a: os._exit(3))
    with pytest.raises(DecodingError, match="keep dying.*exit status 3"):
        list(DecodePool(files, RATE, workers=2))


def _dies_mid_message(start, step, paths, sample_rate, long_seconds, out, *rest) -> None:
    """A worker killed half-way through sending a result: a frame header promising a megabyte,
    a few bytes of it, then death (what SIGKILL does to a feeder thread mid-write)."""
    import struct

    os.write(out._writer.fileno(), struct.pack("!i", 1 << 20) + b"partial")
    os._exit(9)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork context")
def test_a_worker_dying_mid_message_does_not_hang_the_reader(files, monkeypatch) -> None:
    """The reader must see the death (end of file on the pipe), not wait forever for the rest
    of the message: the parent keeps no copy of a worker's write end."""
    import threading

    from soundnet_cli.errors import DecodingError

    monkeypatch.setattr(decoding, "_worker", _dies_mid_message)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            with DecodePool(files, RATE, workers=2) as pool:
                list(pool)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the reader blocked on a half-sent message"
    assert isinstance(outcome[0], DecodingError) and "keep dying" in str(outcome[0])
