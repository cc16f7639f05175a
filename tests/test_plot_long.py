"""The PNG of an hour-long recording: a few labels, an overview, readable axes (soundnet_cli.plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundnet_cli.tagging import DetectOptions
from soundnet_cli.tagging import HeadScores, TagResult

pytest.importorskip("matplotlib")

HOP, RATE = 1.49, 22_050


def hour_result(seconds: float = 3600.0, labels: int = 50, busy: int = 45) -> TagResult:
    """Every step dominated by one of ``busy`` labels in turn: that many labels have events."""
    steps = int(seconds / HOP)
    scores = np.full((steps, labels), 0.1 / (labels - 1), np.float32)
    winner = (np.arange(steps) // 20) % busy
    scores[np.arange(steps), winner] = 0.9
    head = HeadScores("classes", tuple(f"label {i}" for i in range(labels)), scores, True,
                      HOP, 8.6, -2.5)
    return TagResult(Path("hour.wav"), [head], duration=seconds, analysed_duration=seconds)


def silence_blocks(seconds: float):
    for _ in range(int(seconds // 60)):
        yield np.zeros(60 * RATE, np.float32)


def test_an_hour_shows_a_few_labels_an_overview_and_clock_time(tmp_path: Path):
    from soundnet_cli.plot import MAX_PLOTTED_LABELS, OVERVIEW_BINS, save_figure, tag_figure

    result = hour_result()
    fig = tag_figure(result, detect_options=DetectOptions(min_conf=0.5), top_k=5,
                     audio=silence_blocks(3600))
    spectrogram, lanes, timeline = fig.axes[:3]
    legend = [t.get_text() for t in timeline.get_legend().get_texts()]
    assert len(legend) == MAX_PLOTTED_LABELS  # not 45
    assert lanes.get_ylim()[0] == MAX_PLOTTED_LABELS + 1  # five lanes and one "other labels"
    assert any("40 other labels" in t.get_text() for t in lanes.texts)
    # the per-step lines are an overview: at most OVERVIEW_BINS values each
    for artist in timeline.patches:
        assert len(artist.get_data().values) <= OVERVIEW_BINS
    fig.canvas.draw()
    ticks = [t.get_text() for t in timeline.get_xticklabels() if t.get_text()]
    assert ticks and all(":" in t for t in ticks) and "1:00:00" in ticks
    assert timeline.get_xlabel() == "time (h:mm:ss)"
    width, height = fig.get_size_inches()
    assert width >= 10 and height < 8
    save_figure(fig, tmp_path / "hour.png")
    assert (tmp_path / "hour.png").stat().st_size > 10_000


def test_a_short_file_keeps_seconds_and_every_step():
    from soundnet_cli.plot import tag_figure

    result = hour_result(seconds=60.0, busy=3)
    fig = tag_figure(result, detect_options=DetectOptions(min_conf=0.5),
                     audio=silence_blocks(60))
    timeline = fig.axes[2]
    assert timeline.get_xlabel() == "time (s)"
    assert max(len(a.get_data().values) for a in timeline.patches) == result.heads[0].steps
