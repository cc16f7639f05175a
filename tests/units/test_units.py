"""soundnet units: per-unit peaks, top segments, resume, CLI, explain, and the gallery in a browser."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from helpers import make_tiny_model, synth
from soundnet_cli.cli import app
from soundnet_cli.errors import OutputError, SoundNetError
from soundnet_cli.runtime import RunOptions
from soundnet_cli.units import (
    RecordingPeaks,
    UnitTops,
    explain,
    find_units,
    parse_units,
    scan_files,
    select_peaks,
)
from soundnet_cli.units import Peaks
from soundnet_cli.units.scan import valid_range
from soundnet_cli.weights import save_checkpoint

runner = CliRunner()


# ---------------------------------------------------------------------------------------------
# Peaks and the top table


def test_select_peaks_keeps_peaks_apart() -> None:
    x = np.array([[1.0], [5.0], [4.9], [0.0], [3.0], [0.5]], np.float32)
    v, f = select_peaks(x, np.arange(6)[:, None], 3, min_gap=2)
    assert f[:, 0].tolist() == [1, 4, -1] or f[:, 0].tolist()[:2] == [1, 4]
    assert v[0, 0] == 5.0 and v[1, 0] == 3.0
    # frame 2 (4.9) lies within the gap of frame 1, so it is never chosen
    assert 2 not in f[:, 0].tolist()


def test_recording_peaks_in_chunks_equal_whole() -> None:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((50, 6)).astype(np.float32)
    for n in (1, 3):
        whole = RecordingPeaks(6, n, 4, None, 0)
        whole.add(0, rows)
        parts = RecordingPeaks(6, n, 4, None, 0)
        for a in range(0, 50, 7):
            parts.add(a, rows[a:a + 7])
        np.testing.assert_array_equal(whole.values[0], parts.values[0])
        np.testing.assert_array_equal(whole.frames[0], parts.frames[0])
        np.testing.assert_allclose(whole.total, parts.total)
        assert parts.count == 50
    np.testing.assert_array_equal(whole.values[0], rows.max(axis=0))
    np.testing.assert_array_equal(whole.frames[0], rows.argmax(axis=0))


def test_recording_peaks_count_only_valid_frames() -> None:
    rows = np.zeros((10, 2), np.float32)
    rows[8] = 9.0  # a frame centred on padding or repeated audio
    rows[0] = 8.0
    rows[3] = 1.0
    whole = RecordingPeaks(2, 1, 1, valid=(1, 5), samples=100)
    whole.add(0, rows)
    assert whole.frames[0].tolist() == [3, 3] and whole.count == 4
    parts = RecordingPeaks(2, 2, 1, valid=(1, 5), samples=100)
    for a in range(0, 10, 3):
        parts.add(a, rows[a:a + 3])
    assert parts.frames[0].tolist() == [3, 3] and parts.count == 4


def test_valid_range_keeps_frames_inside_the_recording() -> None:
    model = make_tiny_model()
    g = model.geometry("conv7")

    def frames_inside(samples: int) -> np.ndarray:
        starts = g.first_sample + np.arange(g.frames(samples)) * g.hop
        return np.flatnonzero((starts >= 0) & (starts + g.receptive_field <= samples))

    for samples in (5 * 22_050, 7 * 22_050, 3600 * 22_050):
        inside = frames_inside(samples)
        assert valid_range(model, "conv7", samples, g.frames(samples)) == \
            (inside[0], inside[-1] + 1)
    # shorter than the receptive field: the frames centred inside count
    samples = 3 * 22_050
    assert not frames_inside(samples).size
    first, end = valid_range(model, "conv7", samples, g.frames(samples))
    centres = g.first_sample + np.arange(first, end) * g.hop + g.receptive_field / 2
    assert end > first and (centres >= 0).all() and (centres < samples).all()
    # shorter than a hop: the one frame nearest the middle
    a, b = valid_range(model, "conv7", 5000, g.frames(5000))
    assert b == a + 1


def test_unit_tops_match_brute_force_and_break_ties_by_key() -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((30, 5)).astype(np.float32)
    values[:, 4] = 0.0  # a dead unit: every recording ties
    tops = UnitTops(5, 4)
    for i in reversed(range(30)):  # arrival order differs from the key order
        tops.add(f"f{i}", Peaks(values[i:i + 1], np.zeros((1, 5), np.int64), np.zeros(5),
                                np.zeros(5), 1, 10), key=i)
    assert tops.values.shape == (4, 5)
    for u in range(4):
        best = np.argsort(-values[:, u], kind="stable")[:4]
        assert [tops.paths[f] for f in tops.files[:, u]] == [f"f{i}" for i in best]
    assert [tops.paths[f] for f in tops.files[:, 4]] == ["f0", "f1", "f2", "f3"]


def test_parse_units() -> None:
    var = np.array([0.1, 5.0, 0.2, 3.0])
    assert parse_units("all", 4) == [0, 1, 2, 3]
    assert parse_units("0-1, 3", 4) == [0, 1, 3]
    assert parse_units("top-variance:2", 4, var) == [1, 3]
    assert parse_units("top-variance 2", 4, var) == [1, 3]
    for bad in ("0-9", "x", "3-1", "top-variance:0"):
        with pytest.raises(SoundNetError):
            parse_units(bad, 4, var)


# ---------------------------------------------------------------------------------------------
# Scanning recordings


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    d = tmp_path / "rec"
    (d / "sub").mkdir(parents=True)
    specs = [("a.wav", 6, "tone", 440.0), ("sub/b.wav", 3, "noise", 0.0),
             ("sub/c.flac", 12, "clicks", 0.0), ("d.wav", 8, "tone", 2500.0)]
    for i, (name, seconds, kind, freq) in enumerate(specs):
        sf.write(str(d / name), synth(seconds, kind=kind, seed=i, freq=freq or 440.0), 22_050)
    return d


def _brute_force(model, files: list[Path], layer: str, top: int) -> dict[int, list[tuple]]:
    """Every unit's top (file, frame) from whole activations (no tiling: long files), frames
    whose receptive field lies inside the recording only."""
    from soundnet_cli.audio import load_audio

    g = model.geometry(layer)
    peaks = []
    for f in files:
        x = load_audio(f)
        with torch.no_grad():
            a = model.features(torch.from_numpy(x)[None], [layer])[layer][0].numpy()
        starts = g.first_sample + np.arange(a.shape[1]) * g.hop
        inside = np.flatnonzero((starts >= 0) & (starts + g.receptive_field <= x.size))
        a = a[:, inside]  # (channels, frames inside the recording)
        peaks.append((a.max(axis=1), inside[a.argmax(axis=1)]))
    out = {}
    for u in range(model.channels(layer)):
        order = sorted(range(len(files)), key=lambda i: (-peaks[i][0][u], i))[:top]
        out[u] = [(str(files[i]), int(peaks[i][1][u]), float(peaks[i][0][u])) for i in order]
    return out


def test_find_units_equals_brute_force_and_resumes(collection: Path, tmp_path: Path) -> None:
    model = make_tiny_model()
    files = sorted(p for p in collection.rglob("*") if p.is_file() and p.name != "b.wav")
    out = tmp_path / "out"
    run = find_units(model, files, "conv5", out, top=2, roots=[collection], gallery=False)
    assert run.scanned == len(files) and not run.failures
    expected = _brute_force(model, files, "conv5", 2)
    g = model.geometry("conv5")
    for e in run.entries:
        for seg, (file, frame, value) in zip(e.segments, expected[e.unit]):
            assert seg.file == file
            assert seg.activation == pytest.approx(value, rel=1e-4, abs=1e-5)
            centre = (g.first_sample + frame * g.hop + g.receptive_field / 2) / 22_050
            assert seg.peak == pytest.approx(min(max(centre, 0), 12), abs=1e-3)
    rows = list(csv.DictReader(open(out / "units.csv")))
    assert list(rows[0]) == ["unit", "rank", "file", "start", "end", "activation"]
    assert len(rows) == model.channels("conv5") * 2
    # a rerun reuses every scan and writes the same tables
    before = (out / "units.csv").read_text()
    again = find_units(model, files, "conv5", out, top=2, roots=[collection], gallery=False)
    assert again.scanned == 0 and again.reused == len(files)
    assert (out / "units.csv").read_text() == before
    # another network into the same folder is refused before anything is computed
    with pytest.raises(OutputError):
        find_units(make_tiny_model(seed=3), files, "conv5", out, top=2, roots=[collection])


def test_per_recording_and_segment_seconds(collection: Path, tmp_path: Path) -> None:
    model = make_tiny_model()
    files = [collection / "sub" / "c.flac", collection / "d.wav"]  # 12 s and 8 s
    run = find_units(model, files, "conv7", tmp_path / "o", top=4, per_recording=2,
                     segment_seconds=3.0, roots=[collection], hints=False, gallery=False)
    gap = 4.13  # conv7's receptive field: two peaks of one recording are at least this apart
    for e in run.entries:
        assert len(e.segments) <= 4
        for f in files:
            peaks = sorted(s.peak for s in e.segments if s.file == str(f))
            assert len(peaks) <= 2
            assert all(b - a >= gap - 1e-3 for a, b in zip(peaks, peaks[1:]))
        for s in e.segments:
            assert s.end - s.start == pytest.approx(3.0, abs=1e-3) and s.start >= 0
    doc = json.loads((tmp_path / "o" / "units.json").read_text())
    assert doc["per_recording"] == 2 and "hint" not in doc["units"][0]
    assert next((tmp_path / "o" / "scan").rglob("*.p2.npz"))


def test_streamed_scan_equals_batched(collection: Path, tmp_path: Path) -> None:
    model = make_tiny_model()
    long = collection / "sub" / "c.flac"
    batched = next(scan_files(model, [long], "conv7", tmp_path / "a"))
    streamed = next(scan_files(model, [long], "conv7", tmp_path / "b",
                               options=RunOptions(long_seconds=5.0, chunk_seconds=2.0)))
    assert batched.peaks is not None and streamed.peaks is not None
    np.testing.assert_array_equal(batched.peaks.frames, streamed.peaks.frames)
    np.testing.assert_allclose(batched.peaks.values, streamed.peaks.values, rtol=1e-4, atol=1e-6)
    assert batched.peaks.count == streamed.peaks.count


def test_short_clips_only_count_frames_of_real_audio(tmp_path: Path) -> None:
    model = make_tiny_model()
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), synth(0.1, kind="noise"), 22_050)  # shorter than conv7 needs: tiled
    got = next(scan_files(model, [tiny], "conv7", tmp_path / "o"))
    assert got.ok and got.peaks is not None and got.peaks.count == 1
    three = tmp_path / "three.wav"
    sf.write(str(three), synth(3.0, kind="noise"), 22_050)
    exp = explain(model, three, "conv7", 3)  # tiled to 10 s for the heads, as tag does
    assert exp.activations.shape[0] < model.geometry("conv7").frames(10 * 22_050)
    assert (exp.times >= 0).all() and (exp.times < 3.0).all()
    # no head step is centred in 3 s (the heads' first is at 4.75 s): the nearest one counts
    assert all(len(h.times) == 1 for h in exp.heads)


# ---------------------------------------------------------------------------------------------
# The command


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(make_tiny_model(), path, provenance={"made_by": "tests"})
    return path


def test_cli_units_writes_tables_gallery_and_fails_bad_files(collection: Path, tmp_path: Path,
                                                            checkpoint: Path) -> None:
    (collection / "sub" / "broken.wav").write_bytes(b"RIFF not really audio")
    out = tmp_path / "u"
    r = runner.invoke(app, ["units", str(collection), "--weights", str(checkpoint), "--top", "3",
                            "--units", "top-variance:5", "-o", str(out), "-q", "-j", "0"])
    assert r.exit_code == 1, r.output  # broken.wav failed, the rest were done
    assert "broken.wav" in r.output
    doc = json.loads((out / "units.json").read_text())
    assert len(doc["units"]) == 5 and doc["layer"] == "conv7" and doc["recordings"] == 4
    for u in doc["units"]:
        assert 1 <= len(u["segments"]) <= 3
        assert len({s["file"] for s in u["segments"]}) == len(u["segments"])  # one per recording
        for s in u["segments"]:
            assert 0 <= s["start"] < s["end"]
            assert (out / s["audio"]).exists() if u["active"] else "audio" not in s
        if u["active"]:
            assert set(u["hint"]["labels"]) == {"objects", "scenes"}
    page = (out / "index.html").read_text()
    live = [u for u in doc["units"] if u["active"]]
    assert page.count('class="card"') == len(live) and "data:image/png;base64," in page
    assert r.stdout.count("unit ") == len(live)


def test_cli_units_bad_options(collection: Path, tmp_path: Path, checkpoint: Path) -> None:
    base = ["units", "--weights", str(checkpoint), "-o", str(tmp_path / "u"), "-q"]
    r = runner.invoke(app, [*base, str(collection), "--units", "0-5000"])
    assert r.exit_code == 2 and "outside" in r.output
    r = runner.invoke(app, [*base, str(collection), "--layer", "conv99"])
    assert r.exit_code == 2 and "unknown layer" in r.output
    r = runner.invoke(app, [*base, str(collection), "--explain", str(collection / "a.wav")])
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_cli_units_shards_then_gathers(collection: Path, tmp_path: Path,
                                      checkpoint: Path) -> None:
    out = tmp_path / "u"
    base = ["units", str(collection), "--weights", str(checkpoint), "-o", str(out), "-j", "0"]
    for i in range(2):
        r = runner.invoke(app, [*base, "--shard", f"{i}/2"])
        assert r.exit_code == 0, r.output
        assert not (out / "units.json").exists()
    r = runner.invoke(app, [*base, "--no-gallery"])
    assert r.exit_code == 0, r.output
    assert "0 recording(s) scanned, 4 reused" in r.output
    assert (out / "units.json").exists() and not (out / "index.html").exists()


def test_cli_units_never_scans_its_own_output(collection: Path, checkpoint: Path) -> None:
    out = collection / "units"  # inside the searched folder: its audio/ must not be scanned
    base = ["units", str(collection), "--weights", str(checkpoint), "-o", str(out), "-j", "0",
            "--top", "2"]
    assert runner.invoke(app, base).exit_code == 0
    assert list((out / "audio").glob("*.flac"))
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    assert "0 recording(s) scanned, 4 reused" in r.output


def test_cli_explain_table_and_png(collection: Path, tmp_path: Path, checkpoint: Path) -> None:
    clip = collection / "sub" / "c.flac"
    r = runner.invoke(app, ["units", "--explain", str(clip), "--weights", str(checkpoint),
                            "--top", "4", "-o", str(tmp_path / "x")])
    assert r.exit_code == 0, r.output
    png = tmp_path / "x" / "c.units.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    exp = explain(make_tiny_model(), clip, "conv7", 4)
    assert len(exp.top) == 4 and exp.activations.shape[1] == 64
    peaks = exp.activations.max(axis=0)
    assert peaks[exp.top[0]] == peaks.max()
    assert f"{exp.top[0]}" in r.stdout
    r = runner.invoke(app, ["units", "--explain", str(tmp_path / "missing.wav"), "--weights",
                            str(checkpoint), "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "missing.wav" in r.output and "Traceback" not in r.output


def test_hints_use_head_steps_inside_the_window() -> None:
    from soundnet_cli.audio import tile
    from soundnet_cli.tagging.scoring import softmax
    from soundnet_cli.units.describe import head_probabilities, interior_samples

    model = make_tiny_model()
    wave = synth(4.0, kind="noise")[:, 0]
    need = interior_samples(model, "objects")
    g = model.geometry("objects")
    probs = head_probabilities(model, wave)
    x = tile(wave, max(need, 10 * 22_050))
    with torch.no_grad():
        logits = model.features(torch.from_numpy(x)[None], ["objects"])["objects"][0].numpy()
    a, b = valid_range(model, "objects", x.size, logits.shape[1])
    starts = g.first_sample + np.arange(a, b) * g.hop
    assert b > a and (starts >= 0).all() and (starts + g.receptive_field <= x.size).all()
    np.testing.assert_allclose(probs["objects"], softmax(logits[:, a:b], axis=0).mean(axis=1),
                               rtol=1e-5)
    assert probs["objects"].sum() == pytest.approx(1.0, abs=1e-5)


def test_gallery_labels_are_shortened() -> None:
    from soundnet_cli.units.gallery import _short

    assert _short("n01440764 tench, Tinca tinca") == "tench"
    assert _short("/a/apartment_building/outdoor") == "apartment building, outdoor"
    assert _short("dog") == "dog"


# ---------------------------------------------------------------------------------------------
# The gallery in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    """Headless Chromium through the system chromedriver (never a downloaded one)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    if CHROMIUM is None or not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600",
                "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_gallery_in_browser(browser, collection: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    out = tmp_path / "gallery"
    run = find_units(make_tiny_model(), sorted(collection.rglob("*.wav")), "conv7", out,
                     units="0-5", top=3, roots=[collection])
    browser.get((out / "index.html").resolve().as_uri())
    live = [e for e in run.entries if e.active]
    assert live and len(live) < len(run.entries)  # the tiny network has units that never fire
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert len(cards) == len(live)
    assert [c.get_attribute("id") for c in cards] == [f"unit-{e.unit}" for e in live]
    never = browser.find_element(By.ID, "never-active").text
    assert f"{len(run.entries) - len(live)} unit(s) never exceeded zero" in never
    images = browser.find_elements(By.CSS_SELECTOR, ".card .thumb")
    assert images and all(browser.execute_script(
        "const s = getComputedStyle(arguments[0]); return s.backgroundImage.startsWith("
        "'url(\"data:image/png') && arguments[0].clientWidth === 192", i) for i in images)
    # each distinct thumbnail is inlined once
    page = (out / "index.html").read_text()
    assert page.count("data:image/png") == len({u for e in live for u in e.thumbs.values()})
    audio = browser.find_elements(By.CSS_SELECTOR, ".card audio")
    assert len(audio) == len(images)
    state = browser.execute_script(
        "const a = arguments[0]; a.preload = 'auto'; a.load();"
        "return new Promise(r => { a.onloadedmetadata = () => r(a.duration);"
        " a.onerror = () => r(-1); setTimeout(() => r(-2), 5000); });", audio[0])
    assert state > 0  # the audio file beside the page loads from file://
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    shot = tmp_path / "gallery.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
