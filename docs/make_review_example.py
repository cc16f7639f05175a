"""Make the survey that docs/review.md walks through (synthetic; no download).

    python /path/to/soundnet-cli/docs/make_review_example.py     # in an empty folder

writes, in the current folder:

- ``survey/north/20250714_050000.wav`` ... ``survey/south/20250714_073000.wav``: six 60-second
  "recordings" named as an AudioMoth names them (start time, here in Europe/Berlin time), quiet
  noise with the shipped example sounds (``examples/``: siren, car horn, crickets, rain, clock
  tick, and a piano chord the network has no class for) placed at known times;
- ``survey-truth.csv``: where each sound was put (``file,onset,offset,label``), the right
  answers ``soundnet evaluate`` compares a run with;
- ``sites.csv``: the two sites' names and coordinates, keyed by folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 22_050
SECONDS = 60
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LABELS = {"siren": "siren", "car_horn": "car horn", "crickets": "crickets", "rain": "rain",
          "clock_tick": "clock tick", "chord": None}  # the chord: no class, not annotated
#: (folder, start time HHMMSS, [(sound, onset seconds), ...])
SURVEY = [
    ("north", "050000", [("crickets", 5), ("crickets", 30), ("chord", 45)]),
    ("north", "060000", [("siren", 10), ("car_horn", 25), ("rain", 40)]),
    ("north", "070000", [("clock_tick", 15), ("siren", 35)]),
    ("south", "053000", [("rain", 0), ("rain", 5), ("crickets", 50)]),
    ("south", "063000", [("car_horn", 8), ("chord", 20), ("siren", 40)]),
    ("south", "073000", [("clock_tick", 30)]),
]


def main() -> None:
    rng = np.random.default_rng(0)
    sounds = {name: sf.read(str(EXAMPLES / f"{name}.wav"), dtype="float32")[0]
              for name in LABELS}
    truth = []
    for folder, clock, placed in SURVEY:
        audio = (0.003 * rng.standard_normal(SECONDS * RATE)).astype(np.float32)
        path = Path("survey") / folder / f"20250714_{clock}.wav"
        for name, onset in placed:
            clip = sounds[name]
            start = onset * RATE
            audio[start:start + clip.shape[0]] += clip
            if LABELS[name]:
                truth.append((path.as_posix(), onset, onset + clip.shape[0] / RATE, LABELS[name]))
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.clip(audio, -1, 1), RATE)
    with open("survey-truth.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "onset", "offset", "label"])
        writer.writerows(truth)
    Path("sites.csv").write_text("folder,site,latitude,longitude\n"
                                 "north,Heide Nord,52.9411,10.0502\n"
                                 "south,Heide Sued,52.8807,10.0931\n")
    print(f"survey/: {len(SURVEY)} recordings of {SECONDS} s; survey-truth.csv: {len(truth)} "
          "annotations; sites.csv")


if __name__ == "__main__":
    main()
