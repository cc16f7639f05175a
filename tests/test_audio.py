"""Decoding, down-mixing, resampling and the errors a user can cause (soundnet_cli.audio)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundnet_cli.audio import (SAMPLE_RATE, SilentAudioWarning, audio_info, find_audio_files,
                                iter_audio_blocks, load_audio, prepare_waveform)
from soundnet_cli.errors import AudioError

from helpers import synth


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000, 96_000])
@pytest.mark.parametrize("channels", [1, 2])
def test_decodes_any_rate_and_channel_count_to_mono_22050(write_audio, rate, channels):
    path = write_audio(f"x_{rate}_{channels}.wav", 0.5, rate=rate, channels=channels)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.shape[0] - 0.5 * SAMPLE_RATE) <= 2
    # a 440 Hz tone of amplitude 0.5 (stereo: channels 0.5 and 0.25, averaged to 0.375)
    peak = 0.5 if channels == 1 else 0.375
    assert np.abs(wave).max() == pytest.approx(peak, rel=0.03)


def test_native_rate_is_passed_through_unchanged(write_audio):
    path = write_audio("a.wav", 0.25, subtype="FLOAT")
    assert np.array_equal(load_audio(path), synth(0.25)[:, 0])


def test_stereo_is_averaged_not_first_channel():
    data = np.stack([np.full(100, 0.5), np.full(100, -0.1)], axis=1).astype(np.float32)
    assert np.allclose(prepare_waveform(data, SAMPLE_RATE), 0.2)


def test_resampled_tone_keeps_its_frequency(write_audio):
    wave = load_audio(write_audio("t.wav", 1.0, rate=48_000, freq=1000.0))
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / wave.shape[0]
    assert peak_hz == pytest.approx(1000.0, abs=2.0)


def test_very_short_and_long_files(write_audio):
    short = load_audio(write_audio("short.wav", 0.1, rate=44_100))
    assert short.shape[0] == pytest.approx(2205, abs=2)
    assert load_audio(write_audio("long.flac", 60.0, kind="noise")).shape[0] == 60 * SAMPLE_RATE


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_named(write_audio):
    path = write_audio("locked.wav", 0.1)
    path.chmod(0)
    try:
        with pytest.raises(AudioError, match="locked.wav: permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioError, match="notes.wav: cannot decode"):
        load_audio(path)
    with pytest.raises(AudioError, match="notes.wav"):
        audio_info(path)


@pytest.mark.parametrize("suffix,keep", [(".wav", 30), (".flac", 200), (".ogg", 500)])
def test_corrupt_bytes(write_audio, suffix, keep):
    path = write_audio("c" + suffix, 1.0)
    data = bytearray(path.read_bytes())
    data[keep:] = np.random.default_rng(0).bytes(len(data) - keep)
    if suffix == ".wav":
        data = data[:keep]  # a WAV with random payload is valid PCM; a cut header is not
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=f"c{suffix}: cannot decode"):
        load_audio(path)


def test_a_corrupt_file_is_not_called_missing(tmp_path):
    """libsndfile says "does not exist" for some corrupt files; the message says what it is."""
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"ID3" + bytes(range(256)) * 20)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert "broken.mp3: cannot decode" in str(info.value)
    assert "does not exist" not in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 1), np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        load_audio(path)
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioError, match="zero.wav"):
        load_audio(zero_bytes)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = synth(0.2)
    x[10] = bad
    path = tmp_path / "nan.wav"
    sf.write(str(path), x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: audio holds NaN or infinite"):
        load_audio(path)


def test_silence_warns_and_still_decodes(write_audio):
    path = write_audio("quiet.wav", 0.5, rate=16_000, kind="silence")
    with pytest.warns(SilentAudioWarning, match="quiet.wav: audio is silent"):
        wave = load_audio(path)
    assert wave.shape[0] > 0 and not wave.any()


def test_sound_does_not_warn(write_audio):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(write_audio("loud.wav", 0.2))


def test_audio_info_reads_the_header(write_audio):
    info = audio_info(write_audio("s.wav", 0.5, rate=48_000, channels=2))
    assert (info.sample_rate, info.channels, info.frames) == (48_000, 2, 24_000)
    assert info.duration == pytest.approx(0.5)


def test_blocks_concatenate_to_the_whole_file(write_audio):
    path = write_audio("b.flac", 3.0, rate=44_100, kind="noise")
    whole = load_audio(path)
    blocks = list(iter_audio_blocks(path, block_seconds=0.7))
    assert len(blocks) > 3
    joined = np.concatenate(blocks)
    assert abs(joined.shape[0] - whole.shape[0]) <= 2
    n = min(joined.shape[0], whole.shape[0])
    assert np.abs(joined[:n] - whole[:n]).max() < 1e-3


def test_find_audio_files(tmp_path, write_audio):
    a = write_audio("d/a.wav", 0.1)
    b = write_audio("d/sub/b.flac", 0.1)
    (tmp_path / "d" / "readme.txt").write_text("x")
    named = tmp_path / "d" / "named.dat"
    named.write_text("x")
    files, missing = find_audio_files([tmp_path / "d"])
    assert files == [a]
    files, problems = find_audio_files([tmp_path / "d", a, named, tmp_path / "gone.wav"],
                                       recursive=True)
    assert files == [a, b, named]  # duplicates dropped; explicit files kept whatever the suffix
    assert problems == [(tmp_path / "gone.wav", f"{tmp_path / 'gone.wav'}: no such file or "
                         "directory")]


# --- containers FFmpeg decodes (PyAV), behind libsndfile -----------------------------------

#: suffix -> (audio codec, native rate, with a video track, bit rate)
FFMPEG_CASES = {
    ".m4a": ("aac", 22_050, False, None), ".aac": ("aac", 22_050, False, None),
    ".mp4": ("aac", 22_050, True, None), ".mov": ("aac", 44_100, True, None),
    ".mkv": ("aac", 16_000, False, None), ".webm": ("libopus", 48_000, False, None),
    ".wma": ("wmav2", 44_100, False, 96_000),
}


def _encoded(tmp_path: Path, suffix: str, seconds: float = 2.0, channels: int = 1) -> Path:
    from helpers.avworld import write_video

    codec, rate, video, bit_rate = FFMPEG_CASES[suffix]
    t = np.arange(int(seconds * rate)) / rate
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_video(tmp_path / f"clip{suffix}", [0], seconds, audio=audio, rate=rate,
                       channels=channels, video=video, acodec=codec, bit_rate=bit_rate)


@pytest.mark.parametrize("suffix", sorted(FFMPEG_CASES))
def test_ffmpeg_formats_decode(tmp_path, suffix):
    """libsndfile cannot open these; FFmpeg decodes their first audio track."""
    pytest.importorskip("av")
    path = _encoded(tmp_path, suffix, channels=2 if suffix in (".mov", ".wma") else 1)
    with pytest.raises(Exception):
        sf.info(str(path))  # the fallback is what reads it
    info = audio_info(path)
    assert info.sample_rate == FFMPEG_CASES[suffix][1]
    assert abs(info.duration - 2.0) < 0.15
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.shape[0] / SAMPLE_RATE - 2.0) < 0.15
    # A 440 Hz tone survives the codec: its spectrum peaks there.
    spectrum = np.abs(np.fft.rfft(wave[2048:2048 + 16384]))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / 16384 - 440) < 5
    streamed = np.concatenate(list(iter_audio_blocks(path, 0.3)))
    np.testing.assert_array_equal(streamed, wave)


def test_ffmpeg_suffixes_are_found_in_directories(tmp_path):
    from soundnet_cli.audio import find_audio_files

    for name in ("a.m4a", "b.aac", "c.mp4", "d.mov", "e.webm", "f.mkv", "g.wma", "h.wav",
                 "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    files, _ = find_audio_files([tmp_path])
    assert [p.name for p in files] == ["a.m4a", "b.aac", "c.mp4", "d.mov", "e.webm", "f.mkv",
                                       "g.wma", "h.wav"]


def test_ffmpeg_errors_name_the_file(tmp_path):
    pytest.importorskip("av")
    junk = tmp_path / "phone.m4a"
    junk.write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 8)
    with pytest.raises(AudioError, match="phone.m4a: cannot decode"):
        load_audio(junk)
    silent_video = tmp_path / "mute.mp4"
    from helpers.avworld import write_video

    write_video(silent_video, [0], 1.0, audio=None)
    with pytest.raises(AudioError, match="mute.mp4: cannot decode.*no audio track"):
        audio_info(silent_video)
