"""How often does `soundnet tag` name a sound it cannot know? Chooses each head's `--min-conf`.

    PYTHONPATH=src python benchmarks/abstention.py --data ../shared/data/esc50 \
        --heldout-scores /tmp/esc50-head/heldout.npz --json abstention.json

Makes sounds that are no environmental recording (speech from espeak-ng in several languages and
voices, music-like synthetic tones, chords and melodies, white/pink/brown noise, silence, very
short and truncated files), tags them through the public path
(``soundnet_cli.tagging.scoring.tag_files``, exactly what `soundnet tag` computes), and reports
for every head and each threshold P the fraction that still gets a label (clip-level best score
>= P), per kind, with the too-little-audio rule (files under 0.5 s get no label).

Real recordings: ``--data`` tags ESC-50 clips and reports, per head, the fraction labelled at each
P; for the ``esc50`` head also the accuracy of those labels. The embedded esc50 head was trained
on folds 1-4 (the only folds here), so those are SEEN clips, an optimistic bound, labelled as
such. ``--heldout-scores`` (written by ``benchmarks/esc50_head.py --heldout``) adds the honest
in-vocabulary figure: each clip scored by the cross-validation head that never saw its fold,
through the same features as tagging.
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
from soundnet_cli.runtime import RunOptions
from soundnet_cli.tagging import MIN_AUDIO_SECONDS
from soundnet_cli.tagging import tag_files
from soundnet_cli.weights import load_model

RATE = 22_050
THRESHOLDS = (0.0, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
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
    """Per head, kind and threshold: the fraction labelled (clip best score >= P, files under
    0.5 s never), and the median best score."""
    best: dict[str, list[float]] = {}
    short, kinds, failed = [], [], []
    for (kind, path), result in zip(sounds, tag_files(model, [p for _, p in sounds],
                                                       options=RunOptions(workers=workers))):
        if not result.ok:
            failed.append(f"{path.name}: {result.error}")
            continue
        kinds.append(kind)
        short.append(result.duration < MIN_AUDIO_SECONDS)
        for head in result.heads:
            best.setdefault(head.name, []).append(float(head.clip_scores.max()))
    short_a, kinds_a = np.array(short), np.array(kinds)
    table: dict = {"failed": failed, "heads": {}}
    for name, values in best.items():
        best_a = np.array(values)
        rows = table["heads"][name] = {}
        for kind in [*dict.fromkeys(kinds), "all"]:
            sel = np.ones(len(kinds_a), bool) if kind == "all" else kinds_a == kind
            rows[kind] = {
                "files": int(sel.sum()),
                "labelled": {f"{p:g}": float(((best_a[sel] >= p) & ~short_a[sel]).mean())
                             for p in THRESHOLDS},
                "median_best_score": float(np.median(best_a[sel])),
            }
    return table


def _threshold_rows(best: np.ndarray, right: np.ndarray | None) -> dict:
    rows = {}
    for p in THRESHOLDS:
        kept = best >= p
        row = {"labelled": float(kept.mean())}
        if right is not None:
            row["accuracy_of_labelled"] = float(right[kept].mean()) if kept.any() else None
            row["correct_and_labelled"] = float((right & kept).mean())
        rows[f"{p:g}"] = row
    return rows


def invocab_table(model: object, data: str, folds: list[int], workers: int) -> dict:
    """On ESC-50 clips, per head and threshold: the fraction labelled; for a head whose labels
    are ESC-50's, the top-1 accuracy too (of all clips, and of those labelled)."""
    ds = load_dataset(data).select_folds(folds)
    best: dict[str, list[float]] = {}
    right: dict[str, list[bool]] = {}
    for i, result in enumerate(tag_files(model, ds.paths, options=RunOptions(workers=workers))):
        truth = readable_label(ds.classes[ds.labels[i]])
        for head in result.heads:
            scores = head.clip_scores
            best.setdefault(head.name, []).append(float(scores.max()))
            if truth in head.labels:
                right.setdefault(head.name, []).append(head.labels[int(scores.argmax())] == truth)
    out: dict = {"folds": folds, "clips": len(ds), "heads": {}}
    for name, values in best.items():
        hit = np.array(right[name]) if len(right.get(name, [])) == len(values) else None
        out["heads"][name] = {"top1": float(hit.mean()) if hit is not None else None,
                              "thresholds": _threshold_rows(np.array(values), hit)}
    return out


def heldout_table(path: str) -> dict:
    """The esc50 head's cross-validation scores (esc50_head.py --heldout): each clip scored by
    the head that never saw its fold."""
    with np.load(path, allow_pickle=False) as z:
        probs, label, fold = z["probs"], z["label"], z["fold"]
    hit = probs.argmax(1) == label
    return {"folds": sorted(set(fold.tolist())), "clips": int(len(label)), "heads": {"esc50": {
        "top1": float(hit.mean()), "thresholds": _threshold_rows(probs.max(1), hit)}}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="network (default: the embedded one)")
    ap.add_argument("--data", default=None, help="ESC-50 root: adds the seen-clip figures")
    ap.add_argument("--folds", default="1,2,3,4", help="ESC-50 folds the network was trained on")
    ap.add_argument("--heldout-scores", default=None,
                    help="esc50_head.py --heldout output: the esc50 head on unseen folds")
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
        report["esc50_clips"] = invocab_table(model, args.data, folds, args.workers)
    if args.heldout_scores:
        report["heldout"] = heldout_table(args.heldout_scores)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    _print(report)


def _print(report: dict) -> None:
    cols = " ".join(f"{p:>5g}" for p in THRESHOLDS)
    print(f"fraction labelled at --min-conf P (clip best score >= P; files under "
          f"{report['min_audio_seconds']} s never labelled)")
    for head, kinds in report["out_of_vocabulary"]["heads"].items():
        print(f"\n{head}\n{'P':<24}{cols}")
        for kind, row in kinds.items():
            cells = " ".join(f"{v:5.2f}" for v in row["labelled"].values())
            print(f"{kind + ' (' + str(row['files']) + ')':<24}{cells}")
        for key, what in (("esc50_clips", "ESC-50 clips (seen by esc50)"),
                          ("heldout", "ESC-50, unseen folds")):
            row = report.get(key, {}).get("heads", {}).get(head)
            if row is None:
                continue
            t = row["thresholds"]
            top1 = f", top-1 {row['top1']:.3f}" if row["top1"] is not None else ""
            print(f"{what}{top1}")
            print(f"{'  labelled':<24}" + " ".join(f"{v['labelled']:5.2f}" for v in t.values()))
            if row["top1"] is not None:
                print(f"{'  accuracy of those':<24}" + " ".join(
                    f"{v['accuracy_of_labelled'] or 0:5.2f}" for v in t.values()))


if __name__ == "__main__":
    main()
