"""The review page (``soundnet review``, ``tag --format html``): its data, and in a real browser."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.reviewrun import make_run, scores_with, tag_in_two_shards
from soundnet_cli.review.images import png_bytes, spectrogram_image
from soundnet_cli.review.page import render, write_page


def _data(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S)
    assert match
    return json.loads(match.group(1))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Three inputs: a dog at 2-5 s (0.9), rain at 1-3 s (0.6), and nothing confident."""
    return make_run(tmp_path, {
        "a_dog.wav": scores_with(8, {"dog": [(2, 5, 0.9)]}),
        "b_rain.wav": scores_with(6, {"rain": [(1, 3, 0.6)]}),
        "c_quiet.wav": scores_with(4, {}),
    })


def test_page_holds_each_input_its_events_files_and_audio(run_dir: Path) -> None:
    report = write_page(run_dir, margin=0.5)
    assert report.path == run_dir / "review.html" and report.inputs == 3
    assert report.spectrograms == 3 and not report.problems
    data = _data(report.path)
    assert [i["p"].rsplit("/", 1)[-1] for i in data["items"]] == ["a_dog.wav", "b_rain.wav",
                                                                  "c_quiet.wav"]
    dog = data["items"][0]
    assert dog["h"][0]["e"] == [["dog", 2.0, 5.0, 0.9]]
    assert (run_dir / dog["a"]).resolve() == (run_dir.parent / "rec" / "a_dog.wav").resolve()
    assert (run_dir / dog["s"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dict(dog["f"])["record"] == "a_dog.tags.json"
    timeline = dog["h"][0]["tl"]  # from the scores file: the event's label first, per step
    assert timeline["ser"][0][0] == "dog" and timeline["ser"][0][1][2:5] == [0.9, 0.9, 0.9]
    assert data["items"][2]["h"][0]["t"] == [] and data["margin"] == 0.5


def test_second_page_reuses_spectrograms_and_cli_prints_the_path(run_dir: Path, run) -> None:
    write_page(run_dir)
    result = run("review", run_dir, "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run_dir / "review.html")
    assert write_page(run_dir).spectrograms == 0


def test_review_of_a_folder_without_a_run_is_a_clear_error(tmp_path: Path, run) -> None:
    result = run("review", tmp_path)
    assert result.exit_code == 1
    assert "no tag records" in result.stderr and "Traceback" not in result.output


def test_page_data_cannot_close_its_script_tag() -> None:
    page = render({"title": "t", "margin": 1, "meta": "", "footer": "", "heads": {},
                   "items": [{"p": "</script><b>x</b>.wav", "d": 1, "a": None, "s": None,
                              "f": [], "h": []}]})
    assert page.count("</script>") == 2  # the data block's and the code's, nothing injected


def test_png_encoder_roundtrip_through_pillow() -> None:
    Image = pytest.importorskip("PIL.Image")
    db = np.full((10, 513), -80.0, np.float32)
    db[:, 40] = 0.0  # one loud low bin: a bright row near the bottom
    rgb = spectrogram_image(db, width=20, height=16)
    import io

    back = np.asarray(Image.open(io.BytesIO(png_bytes(rgb))).convert("RGB"))
    assert back.shape == (16, 20, 3) and (back == rgb).all()
    bright = back.sum(axis=2).mean(axis=1)
    assert bright.argmax() == 15 - (40 * 16) // 513


def test_tag_format_html_writes_the_page(tmp_path: Path, write_audio, tiny_checkpoint,
                                         run) -> None:
    write_audio("rec/x.wav", 6.0)
    result = run("tag", tmp_path / "rec", "--weights", tiny_checkpoint, "--out",
                 tmp_path / "out", "--format", "scores,html", "-j", "0", "-q")
    assert result.exit_code == 0, result.output
    data = _data(tmp_path / "out" / "review.html")
    assert len(data["items"]) == 1 and data["items"][0]["h"][0]["tl"]


def test_page_shows_recording_time_and_site(tmp_path: Path, run) -> None:
    out = make_run(tmp_path, {"north/20250714_050000.wav": scores_with(6, {"dog": [(2, 4, 0.9)]})})
    sites = tmp_path / "sites.csv"
    sites.write_text("folder,site\nnorth,Heide Nord\n")
    result = run("review", out, "--time-from-name", "audiomoth", "--tz", "+02:00", "--meta",
                 sites, "-q")
    assert result.exit_code == 0, result.output
    (item,) = _data(out / "review.html")["items"]
    assert item["w"] == "2025-07-14T05:00:00+02:00  ·  site Heide Nord"
    assert item["h"][0]["e"][0][4] == "2025-07-14T05:00:02+02:00"


def test_missing_audio_is_reported_not_fatal(run_dir: Path, run) -> None:
    (run_dir.parent / "rec" / "b_rain.wav").unlink()
    report = write_page(run_dir)
    assert report.inputs == 3 and len(report.problems) == 1
    assert "b_rain.wav: audio file not found" in report.problems[0]
    assert _data(report.path)["items"][1]["a"] is None
    result = run("review", run_dir)
    assert result.exit_code == 0 and "audio file not found" in result.stderr
    clips = run("clips", run_dir, "--out", run_dir.parent / "clips", "-q")
    assert clips.exit_code == 1 and "b_rain.wav: cannot cut" in clips.stderr  # the rest is cut
    assert (run_dir.parent / "clips" / "dog" / "0001_a_dog_2.0s.flac").is_file()


def test_merge_of_a_sharded_run_writes_the_page(tmp_path: Path, write_audio, tiny_checkpoint,
                                                run) -> None:
    for i in range(3):
        write_audio(f"rec/{i}.wav", 6.0, kind="noise", seed=i)
    res = tmp_path / "res"
    tag_in_two_shards(run, tmp_path / "rec", tiny_checkpoint, res, "--format", "jsonl,html")
    assert not (res / "review.html").exists()  # a shard alone does not write it
    assert run("merge", res).exit_code == 0
    assert len(_data(res / "review.html")["items"]) == 3


# ---------------------------------------------------------------------------------------------
# In a browser


def _console_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_in_a_browser_filters_sorts_and_plays(run_dir: Path, browser, tmp_path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = write_page(run_dir, margin=1.0).path
    browser.get(page.as_uri())
    assert _console_errors(browser) == []
    rows = lambda: browser.find_elements(By.CSS_SELECTOR, "#rows tr")  # noqa: E731
    assert len(rows()) == 3
    assert browser.find_element(By.ID, "count").text == "3 of 3 inputs"
    # the filter changes the rows shown
    box = browser.find_element(By.ID, "f-class")
    box.send_keys("rain")
    assert len(rows()) == 1 and "b_rain.wav" in rows()[0].text
    box.clear()
    browser.find_element(By.ID, "f-min").send_keys("\b0.8")
    assert [r.text.split("\n")[0].rsplit("/", 1)[-1] for r in rows()] == ["a_dog.wav"]
    browser.find_element(By.ID, "f-min").clear()
    browser.execute_script("document.getElementById('f-min').dispatchEvent(new Event('input'))")
    assert len(rows()) == 3
    # sorting by best score puts the dog (0.9) before the rain (0.6)
    Select(browser.find_element(By.ID, "f-sort")).select_by_value("score")
    assert "a_dog.wav" in rows()[0].text and "b_rain.wav" in rows()[1].text
    # an event's play button sets the audio element's time: onset 2 s minus the 1 s margin
    button = browser.find_element(By.CSS_SELECTOR, "button.play[data-start='2']")
    index = button.get_attribute("data-index")
    button.click()
    t = browser.execute_script(f"return document.getElementById('audio-{index}').currentTime")
    assert t == pytest.approx(1.0, abs=0.3)
    assert browser.execute_script(
        f"return document.getElementById('audio-{index}').error") is None
    browser.save_screenshot(str(tmp_path / "review.png"))
    assert _console_errors(browser) == []


def test_ten_thousand_inputs_render_one_page_at_a_time(tmp_path: Path, browser) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    items = [{"p": f"rec/{i:05d}.wav", "d": 60.0, "a": None, "s": None, "f": [],
              "h": [{"n": "classes", "t": [["dog", (i % 100) / 100]],
                     "e": [["dog", 1.0, 4.0, (i % 100) / 100]], "thr": 0.5, "tl": None}]}
             for i in range(10_000)]
    page = tmp_path / "big.html"
    page.write_text(render({"title": "big", "margin": 1, "meta": "", "footer": "",
                            "heads": {"classes": ["dog"]}, "items": items}), encoding="utf-8")
    start = time.perf_counter()
    browser.get(page.as_uri())
    loaded = time.perf_counter() - start
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rows tr")) == 50
    assert browser.find_element(By.ID, "pageinfo").text == "page 1 of 200"
    browser.find_element(By.ID, "f-min").send_keys("\b0.99")
    assert browser.find_element(By.ID, "count").text == "100 of 10000 inputs"
    print(f"10,000 inputs: page loaded in {loaded:.2f} s")
    assert loaded < 20 and _console_errors(browser) == []
