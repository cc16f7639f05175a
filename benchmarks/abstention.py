"""How often does `soundnet tag` name a sound it cannot know? Chooses `--min-conf`'s default.

    python benchmarks/abstention.py --data ../shared/data/esc50 --json abstention.json
    python benchmarks/abstention.py --heldout-weights runs/cv/fold1/last.safetensors \
        --heldout-fold 1

Makes sounds outside the embedded network's 50 ESC-50 classes (speech from espeak-ng in several
languages and voices, music-like synthetic tones, chords and melodies, white/pink/brown noise,
silence, very short and truncated files), tags them through the public path
(``soundnet_cli.tagging.scoring.tag_files`` + ``soundnet_cli.tagging.events``, exactly what `soundnet tag` prints),
and reports for each threshold P the fraction that still gets a label (clip-level best score
>= P), per kind, with and without the too-little-audio rule (files under 0.5 s get no label).

In vocabulary: the embedded network was trained on ESC-50 folds 1-4, the only folds this project
has, so there are no held-out in-vocabulary clips for it. ``--data`` reports its figures on those
SEEN (training) clips, an optimistic bound, labelled as such. ``--heldout-weights`` with
``--heldout-fold`` adds a network trained on the other folds (e.g. one cross-validation fold of
a recipe), whose clips of that fold it has never seen: the honest in-vocabulary figure, for a
sibling of the shipped network rather than the shipped network itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from soundnet_cli.datasets import load_dataset, readable_label
from soundnet_cli.runtime.options import RunOptions
from soundnet_cli.tagging.events import MIN_AUDIO_SECONDS
from soundnet_cli.tagging.scoring import tag_files
from soundnet_cli.weights.registry import load_model

RATE = 22_050
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please remember to bring the report to the meeting tomorrow morning.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "Numbers one two three four five six seven eight nine ten.",
)
VOICES = ("en", "en-us", "en+f3", "en+m3", "de", "fr", "es", "it")


def speech(workdir: Path) -> list[tuple[str, Path]]:
    """espeak-ng sentences in several voices and speeds (22,050 Hz wav)."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed (apt-get install -y espeak-ng)")
    out = []
    for v, voice in enumerate(VOICES):
        for s, text in enumerate(SENTENCES):
            path = workdir / f"speech-{voice.replace('+', '_')}-{s}.wav"
            speed = (140, 175, 210)[(v + s) % 3]
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                           check=True, capture_output=True)
            out.append(("speech", path))
    return out


def _write(workdir: Path, name: str, x: np.ndarray) -> Path:
    path = workdir / f"{name}.wav"
    peak = float(np.abs(x).max()) if x.size else 0.0
    sf.write(str(path), (x * (0.5 / peak) if peak > 0 else x).astype(np.float32), RATE)
    return path


def _note(freq: float, seconds: float, harmonics: int, decay: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * freq * k * t) / k ** 1.5 for k in range(1, harmonics + 1))
    attack = np.minimum(1.0, t / 0.01)
    return tone * attack * np.exp(-decay * t)


def music(workdir: Path) -> list[tuple[str, Path]]:
    """Tones, chords, arpeggios and melodies with harmonics and envelopes."""
    rng = np.random.default_rng(0)
    out = []
    for i, f in enumerate((220.0, 440.0, 880.0)):
        out.append(("music", _write(workdir, f"tone-{i}", _note(f, 6.0, 1, 0.0))))
    chords = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 11), (0, 5, 9))
    for i, chord in enumerate(chords):
        x = sum(_note(261.63 * 2 ** (n / 12), 6.0, 6, 0.3) for n in chord)
        out.append(("music", _write(workdir, f"chord-{i}", x)))
    for i in range(5):
        scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
        notes = rng.choice(scale, size=16) + 12 * rng.integers(-1, 1, size=16)
        dur = float(rng.choice([0.25, 0.375, 0.5]))
        x = np.concatenate([_note(261.63 * 2 ** (n / 12), dur, 4 + i, 4.0) for n in notes])
        out.append(("music", _write(workdir, f"melody-{i}", x)))
    t = np.arange(int(6.0 * RATE)) / RATE
    square = np.sign(np.sin(2 * np.pi * 330 * t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    out.append(("music", _write(workdir, "square-tremolo", square)))
    return out


def _colored(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def noise(workdir: Path) -> list[tuple[str, Path]]:
    """White, pink and brown noise, each at three levels (levels scale before normalising is
    undone, so they differ only by seed here; the level matters for silence instead)."""
    rng = np.random.default_rng(1)
    out = []
    for name, exponent in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        for k in range(3):
            out.append(("noise", _write(workdir, f"{name}-{k}", _colored(6 * RATE, exponent,
                                                                          rng))))
    return out


def silence(workdir: Path) -> list[tuple[str, Path]]:
    """Digital silence and noise far below any sound (-80 and -60 dBFS)."""
    rng = np.random.default_rng(2)
    out = []
    for seconds in (1.0, 6.0):
        path = workdir / f"silence-{seconds:g}s.wav"
        sf.write(str(path), np.zeros(int(seconds * RATE), np.float32), RATE)
        out.append(("silence", path))
    for db in (-80, -60):
        path = workdir / f"hiss{db}.wav"
        sf.write(str(path), (10 ** (db / 20) * rng.standard_normal(6 * RATE)).astype(np.float32),
                 RATE)
        out.append(("silence", path))
    return out


def short_and_truncated(workdir: Path, sources: list[Path]) -> list[tuple[str, Path]]:
    """Clips of 0.03-0.45 s cut from other test sounds, and wav files cut mid-way (the bytes
    of a download that stopped): the header promises more than the file holds."""
    out = []
    for i, seconds in enumerate((0.03, 0.06, 0.1, 0.2, 0.3, 0.45)):
        x, _ = sf.read(str(sources[i % len(sources)]), dtype="float32")
        path = workdir / f"short-{seconds:g}s-{i}.wav"
        sf.write(str(path), x[: int(seconds * RATE)], RATE)
        out.append(("short", path))
    for i, keep in enumerate((0.01, 0.05, 0.3)):
        data = sources[(i + 3) % len(sources)].read_bytes()
        path = workdir / f"truncated-{keep:g}-{i}.wav"
        path.write_bytes(data[: max(64, int(len(data) * keep))])
        out.append(("truncated", path))
    return out


def oov_table(model: object, sounds: list[tuple[str, Path]], workers: int) -> dict:
    """Per kind and threshold: the fraction labelled (clip best score >= P), raw and with the
    too-little-audio rule; and the fraction of labelled steps."""
    best, steps, short, kinds, failed = [], [], [], [], []
    for (kind, path), result in zip(sounds, tag_files(model, [p for _, p in sounds],
                                                       options=RunOptions(workers=workers))):
        if not result.ok:
            failed.append(f"{path.name}: {result.error}")
            continue
        head = result.heads[0]
        kinds.append(kind)
        best.append(float(head.clip_scores.max()))
        steps.append(head.scores.max(axis=1))
        short.append(result.duration < MIN_AUDIO_SECONDS)
    best_a, short_a, kinds_a = np.array(best), np.array(short), np.array(kinds)
    table: dict = {"failed": failed, "kinds": {}}
    for kind in [*dict.fromkeys(kinds), "all"]:
        sel = np.ones(len(kinds_a), bool) if kind == "all" else kinds_a == kind
        step_scores = np.concatenate([s for s, m in zip(steps, sel) if m])
        table["kinds"][kind] = {
            "files": int(sel.sum()),
            "labelled_raw": {f"{p:g}": float((best_a[sel] >= p).mean()) for p in THRESHOLDS},
            "labelled": {f"{p:g}": float(((best_a[sel] >= p) & ~short_a[sel]).mean())
                         for p in THRESHOLDS},
            "steps_labelled": {f"{p:g}": float((step_scores >= p).mean()) for p in THRESHOLDS},
            "median_best_score": float(np.median(best_a[sel])),
        }
    return table


def invocab_table(model: object, data: str, folds: list[int], workers: int) -> dict:
    """On ESC-50 clips: per threshold, the fraction labelled and the top-1 accuracy of those."""
    ds = load_dataset(data).select_folds(folds)
    labels = model.config.heads[0].labels  # type: ignore[attr-defined]
    index = {name: i for i, name in enumerate(labels)}
    truth = np.array([index[readable_label(ds.classes[y])] for y in ds.labels])
    best, right = [], []
    for i, result in enumerate(tag_files(model, ds.paths, options=RunOptions(workers=workers))):
        scores = result.heads[0].clip_scores
        best.append(float(scores.max()))
        right.append(int(scores.argmax()) == truth[i])
    best_a, right_a = np.array(best), np.array(right)
    out = {"folds": folds, "clips": len(ds), "top1": float(right_a.mean()), "thresholds": {}}
    for p in THRESHOLDS:
        kept = best_a >= p
        out["thresholds"][f"{p:g}"] = {
            "labelled": float(kept.mean()),
            "accuracy_of_labelled": float(right_a[kept].mean()) if kept.any() else None,
            "correct_and_labelled": float((right_a & kept).mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="network (default: the embedded one)")
    ap.add_argument("--data", default=None, help="ESC-50 root: adds the seen-clip figures")
    ap.add_argument("--folds", default="1,2,3,4", help="ESC-50 folds the network was trained on")
    ap.add_argument("--heldout-weights", default=None,
                    help="a network that never saw --heldout-fold (needs --data)")
    ap.add_argument("--heldout-fold", type=int, default=None)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", default=None, help="write everything here")
    args = ap.parse_args()

    t0 = time.perf_counter()
    model = load_model(args.weights, "cpu")
    report: dict = {"weights": args.weights or "embedded default",
                    "fingerprint": model.fingerprint, "min_audio_seconds": MIN_AUDIO_SECONDS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sounds = speech(work) + music(work) + noise(work) + silence(work)
        sounds += short_and_truncated(work, [p for k, p in sounds if k in ("speech", "music")])
        report["out_of_vocabulary"] = oov_table(model, sounds, args.workers)
    if args.data:
        folds = [int(f) for f in args.folds.split(",")]
        report["seen_in_vocabulary"] = invocab_table(model, args.data, folds, args.workers)
    if args.heldout_weights and args.data and args.heldout_fold:
        other = load_model(args.heldout_weights, "cpu")
        report["heldout"] = {"weights": args.heldout_weights, "fingerprint": other.fingerprint,
                             "out_of_vocabulary": None,
                             **invocab_table(other, args.data, [args.heldout_fold],
                                             args.workers)}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            sounds = speech(work) + music(work) + noise(work) + silence(work)
            sounds += short_and_truncated(work, [p for k, p in sounds
                                                 if k in ("speech", "music")])
            report["heldout"]["out_of_vocabulary"] = oov_table(other, sounds, args.workers)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    _print(report)


def _print(report: dict) -> None:
    heads = " ".join(f"{p:>5g}" for p in THRESHOLDS)
    print(f"fraction labelled at --min-conf P (clip best score >= P; files < "
          f"{report['min_audio_seconds']} s never labelled)\n{'P':<22}{heads}")
    for kind, row in report["out_of_vocabulary"]["kinds"].items():
        cells = " ".join(f"{v:5.2f}" for v in row["labelled"].values())
        print(f"{kind + ' (' + str(row['files']) + ')':<22}{cells}")
    for key in ("seen_in_vocabulary", "heldout"):
        if key in report:
            t = report[key]["thresholds"]
            print(f"{key} {report[key]['folds']}: top-1 {report[key]['top1']:.3f}")
            print(f"{'  labelled':<22}" + " ".join(f"{v['labelled']:5.2f}" for v in t.values()))
            print(f"{'  accuracy of those':<22}" + " ".join(
                f"{v['accuracy_of_labelled'] or 0:5.2f}" for v in t.values()))


if __name__ == "__main__":
    main()
