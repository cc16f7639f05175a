"""A ``tag --out`` run folder whose scores are chosen by the test, for review/clips/evaluate.

The tiny random network scores every label about equally, so tests that need known detections
build the run from hand-made :class:`TagResult` objects through the real writer
(:class:`~soundnet_cli.tagging.outputs.TagRun`): one head ``classes`` over :data:`LABELS` whose
steps are exactly one second long (step ``i`` stands for ``[i, i + 1)`` s), and audio files of the
right length beside them. Right answers are then known by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf

from helpers import synth
from soundnet_cli.tagging import DetectOptions, HeadScores, TagResult, TagRun

LABELS = ("dog", "rain", "bird")
RATE = 22_050
PROVENANCE = {"soundnet_cli": "test", "schema_version": 2, "settings_id": "0123456789abcdef",
              "network": {"name": "handmade", "fingerprint": "f" * 16, "sample_rate": RATE},
              "heads": [{"name": "classes"}], "settings": {"min_conf": 0.5}}


def scores_with(seconds: int, spans: Mapping[str, Sequence[tuple[int, int, float]]],
                floor: float = 0.05) -> np.ndarray:
    """``(seconds, len(LABELS))`` float32: ``floor`` everywhere, and ``score`` for the label in
    steps ``start..end-1`` of each ``(start, end, score)`` span."""
    s = np.full((seconds, len(LABELS)), floor, np.float32)
    for label, items in spans.items():
        for start, end, score in items:
            s[start:end, LABELS.index(label)] = score
    return s


def make_run(root: Path, files: Mapping[str, np.ndarray], *, formats: Sequence[str] = (
        "jsonl", "csv", "scores"), min_conf: float = 0.5, kind: str = "noise") -> Path:
    """Write audio ``root/rec/NAME`` (as long as its score rows, in seconds) and the run
    ``root/out`` from ``files`` (name -> per-step scores); returns the run folder."""
    rec, out = root / "rec", root / "out"
    rec.mkdir(parents=True, exist_ok=True)
    detect = DetectOptions(min_conf=min_conf)
    run = TagRun(out, formats, roots=[rec], provenance=PROVENANCE, top_k=3, detect=detect)
    paths = []
    for n, (name, scores) in enumerate(files.items()):
        path = rec / name
        path.parent.mkdir(parents=True, exist_ok=True)
        seconds = scores.shape[0]
        sf.write(str(path), synth(seconds, RATE, kind, seed=n), RATE)
        head = HeadScores("classes", LABELS, scores, True, hop=1.0, window=1.0, offset=0.0)
        assert not run.write(TagResult(path, [head], float(seconds), float(seconds))).error
        paths.append(path)
    run.combine(paths)
    run.write_settings([rec], {})
    return out


def tag_in_two_shards(run, inputs: Path, checkpoint: Path, out: Path, *options: object) -> None:
    """``soundnet tag INPUTS --out OUT OPTIONS`` as shards 0/2 and 1/2 (``run``: the CLI
    fixture), each of which must succeed."""
    for shard in ("0/2", "1/2"):
        done = run("tag", inputs, "-w", checkpoint, "--out", out, "--shard", shard, *options,
                   "-j", "0", "-q")
        assert done.exit_code == 0, done.output
