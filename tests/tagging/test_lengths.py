"""Tags that do not depend on the clip's length, with the shipped network on real recordings.

A second of a real recording, looped to every whole length from 1 s to 40 s (shorter than the
heads' 10.98 s: looped again by ``tag`` itself), keeps the same clip-level top object, scene and
ESC-50 class; and no step of any length is far from the same audio in a 40-s context (the padding
garbage a step reading conv7's last frame gave: a distance of 2.0, an unrelated answer with
probability 1.0). docs/tag.md, "Short clips are looped, and no step reads the padding".

The recordings are ESC-50 clips from ``../shared/data/esc50`` (read where they are, never
copied); the test is skipped where that folder is absent.
"""

from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf

from soundnet_cli.audio import load_audio
from soundnet_cli.audio import loop_to
from soundnet_cli.tagging import tag_files
from soundnet_cli.weights.registry import default_weights_path, load_model
from helpers import ROOT

ESC50 = ROOT.parent / "shared" / "data" / "esc50" / "audio"
#: Recordings (ESC-50 class in the name's last field) and the second taken from each.
RECORDINGS = ("1-101296-B-19.ogg", "1-137296-A-16.ogg", "1-12653-A-15.ogg", "1-115521-A-19.ogg")
LENGTHS = range(1, 41)
#: A step this far (sum of absolute differences) from the same audio in a long context is garbage.
GARBAGE = 1.0

pytestmark = pytest.mark.skipif(not ESC50.is_dir(), reason=f"no ESC-50 recordings at {ESC50}")


@pytest.fixture(scope="module")
def model():
    if not default_weights_path().is_file():
        pytest.skip("no embedded network in this checkout")
    return load_model(None)


@pytest.mark.parametrize("name", RECORDINGS)
def test_top_labels_and_steps_do_not_depend_on_length(model, name, tmp_path):
    second = load_audio(ESC50 / name)[22_050:44_100]
    paths = []
    for seconds in LENGTHS:
        path = tmp_path / f"{seconds:02d}s.wav"
        sf.write(path, loop_to(second, seconds * 22_050), 22_050, subtype="FLOAT")
        paths.append(path)
    results = list(tag_files(model, paths))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    reference = results[-1]  # 40 s: 13 steps
    for head in reference.heads:
        want = head.top_k(1)[0].label
        tops = {seconds: r.head(head.name).top_k(1)[0].label
                for seconds, r in zip(LENGTHS, results)}
        assert set(tops.values()) == {want}, (head.name, {s: t for s, t in tops.items()
                                                          if t != want})
        clip = head.clip_scores
        for seconds, r in zip(LENGTHS, results):
            steps = r.head(head.name).scores
            distance = np.abs(steps - clip[None, :]).sum(axis=1).max()
            assert distance < GARBAGE, (head.name, seconds, float(distance))
