"""Regenerate docs/tag-example.png: the shipped examples played one after another, tagged.

    python docs/make_tag_picture.py

Four examples (examples/make_examples.py, synthetic) are joined into one 20 s recording and
tagged with the embedded network exactly as `soundnet tag joined.wav --out DIR --plot` does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from soundnet_cli.tagging import DetectOptions
from soundnet_cli.plot import save_tag_plot
from soundnet_cli.tagging import head_scorers, provenance, tag_files
from soundnet_cli.weights import load_model

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def main() -> None:
    parts = [sf.read(str(EXAMPLES / f"{n}.wav"), dtype="float32")[0]
             for n in ("car_horn", "crickets", "siren", "rain")]
    model = load_model(None, "cpu")
    detect = DetectOptions()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "horn-crickets-siren-rain.wav"
        sf.write(str(path), np.concatenate(parts), 22_050)
        (result,) = tag_files(model, [path])
        prov = provenance(model, head_scorers(model), top_k=5, segments=False, detect=detect)
        save_tag_plot(result, HERE / "tag-example.png", detect=detect, provenance=prov,
                      dpi=110)


if __name__ == "__main__":
    main()
