"""Load (issue #22): many short files and long files through ``tag --out`` and ``extract``, with
the default workers; wall time, peak memory of the whole process tree, outputs counted against
inputs; then a concurrent second run into the same ``--out``, and a ``kill -9`` halfway followed
by a rerun.

Every command is a fresh ``python -m soundnet_cli`` of this checkout. The network is the tiny
random one of the tests (SoundNet-8 geometry, 1/16 of the channels; written to ``--tmp``) unless
``--weights`` names another: what is measured is the pipeline (listing, decoding processes,
writes, records, manifests and tables), not the network. Inputs are generated WAV files (22,050
Hz mono tones) under ``--tmp``, never in the repository.

Scenarios, for each input set (``short``: ``--short`` files of ``--short-seconds``; ``long``:
``--long`` files of ``--long-seconds``) and each command:

``once``
    One run into an empty folder.
``concurrent``
    Two runs started together into one empty folder, same settings; for ``tag`` also a third
    run with another ``--min-conf``, started once the first has claimed the folder (``tag.json``)
    while both run, which must be refused (one folder, one set of settings).
``kill``
    A run killed with SIGKILL once half its outputs exist, then the same command again.

For each: exit codes, wall seconds, peak memory of the process tree (the sum of the
proportional set sizes, PSS, of the command and every descendant, sampled every 0.2 s: shared
library pages are counted once in total, not once per decoding process), and what is on disk
afterwards: outputs (``.tags.json`` records or ``.npy`` files), rows of ``tags.jsonl`` or
``manifest.csv``, temporary ``.part`` files left, each against the number of inputs.

Example (from the repository root; wrap in ``flock /tmp/bench.lock`` on a shared machine)::

    PYTHONPATH=src python benchmarks/load.py --short 2000 --long 200 --tmp /tmp/load
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import env, soundnet  # noqa: E402

RATE = 22_050


# ---------------------------------------------------------------------------------------------
# Inputs and network


def write_inputs(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` mono WAV tones of ``seconds`` in ``folder`` (100 per sub-folder), reused when
    present."""
    paths = []
    n = int(round(seconds * RATE))
    t = np.arange(n) / RATE
    for i in range(count):
        path = folder / f"{i // 100:03d}" / f"{i:05d}.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tone = 0.3 * np.sin(2 * np.pi * (150 + 7 * (i % 300)) * t)
            sf.write(str(path), tone.astype(np.float32), RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def tiny_checkpoint(path: Path) -> Path:
    """The tests' tiny random network (tests/conftest.py) as a checkpoint."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_tiny_model
    from soundnet_cli.weights import save_checkpoint

    if not path.is_file():
        save_checkpoint(make_tiny_model(), path, provenance={"made_by": "benchmarks/load.py"})
    return path


# ---------------------------------------------------------------------------------------------
# Measuring a process tree


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    """Samples the summed PSS of a process and its descendants every ``every`` seconds."""

    def __init__(self, pids: list[int], every: float = 0.2) -> None:
        self.pids, self.every, self.peak_kib = pids, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = {p for root in self.pids for p in _descendants(root)}
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in tree))
            self._stop.wait(self.every)

    def stop(self) -> float:
        """Stop sampling; the peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


# ---------------------------------------------------------------------------------------------
# Commands and what they leave


def command(kind: str, inputs: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    if kind == "tag":
        return soundnet("tag", str(inputs), "-r", "--out", str(out), "--weights", str(weights),
                        "-q", *extra)
    return soundnet("extract", str(inputs), "-r", "--out", str(out), "--weights", str(weights),
                    "--layer", "conv5", "-q", *extra)


def outputs(kind: str, out: Path) -> list[Path]:
    return list(out.rglob("*.tags.json" if kind == "tag" else "*.npy"))


def survey(kind: str, out: Path, n_inputs: int) -> dict[str, int]:
    """What is on disk: outputs, rows of the combined table or manifest, distinct inputs in it,
    temporary files, records of more than one setting."""
    found = outputs(kind, out)
    rows: list[str] = []
    if kind == "tag" and (out / "tags.jsonl").is_file():
        rows = [json.loads(line)["path"] for line in
                (out / "tags.jsonl").read_text().splitlines()]
    elif kind == "extract" and (out / "manifest.csv").is_file():
        with open(out / "manifest.csv", newline="") as f:
            rows = [r["input"] for r in csv.DictReader(f)]
    settings = {json.loads(p.read_text())["provenance"]["settings_id"] for p in found} \
        if kind == "tag" else set()
    return {"inputs": n_inputs, "outputs": len(found), "rows": len(rows),
            "distinct_rows": len(set(rows)), "parts": len(list(out.rglob("*.part"))),
            "settings": len(settings)}


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env(OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen], began: float, memory: TreeMemory
           ) -> tuple[list[int], float, float, list[str]]:
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - began
    errors = [p.stderr.read().strip().splitlines()[-1:] for p in procs]
    return codes, wall, memory.stop(), [e[0] if e else "" for e in errors]


def once(kind: str, inputs: Path, out: Path, weights: Path, n: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    procs = [start(command(kind, inputs, out, weights))]
    codes, wall, peak, errors = finish(procs, began, TreeMemory([p.pid for p in procs]))
    return {"codes": codes, "wall": wall, "peak_mib": peak, **survey(kind, out, n)}


def concurrent(kind: str, inputs: Path, out: Path, weights: Path, n: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    procs = [start(command(kind, inputs, out, weights)) for _ in range(2)]
    memory = TreeMemory([p.pid for p in procs])
    if kind == "tag":  # once the folder is claimed, while both still run
        while not (out / "tag.json").is_file() and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        procs.append(start(command(kind, inputs, out, weights, "--min-conf", "0.9")))
        memory.pids.append(procs[-1].pid)
    codes, wall, peak, errors = finish(procs, began, memory)
    return {"codes": codes, "wall": wall, "peak_mib": peak, **survey(kind, out, n),
            "refused": errors[2] if kind == "tag" else ""}


def kill_then_rerun(kind: str, inputs: Path, out: Path, weights: Path, n: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    proc = start(command(kind, inputs, out, weights))
    while proc.poll() is None and len(outputs(kind, out)) < n // 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = len(outputs(kind, out))
    time.sleep(1.0)  # decoders notice their parent is gone (PR_SET_PDEATHSIG: at once)
    began = time.perf_counter()
    procs = [start(command(kind, inputs, out, weights))]
    codes, wall, peak, errors = finish(procs, began, TreeMemory([p.pid for p in procs]))
    return {"killed_at": at_kill, "codes": codes, "wall": wall, "peak_mib": peak,
            **survey(kind, out, n)}


SCENARIOS = {"once": once, "concurrent": concurrent, "kill": kill_then_rerun}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", type=int, default=2000)
    ap.add_argument("--short-seconds", type=float, default=0.5)
    ap.add_argument("--long", type=int, default=200)
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--sets", nargs="+", default=["short", "long"])
    ap.add_argument("--commands", nargs="+", default=["tag", "extract"])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--weights", type=Path, help="default: the tests' tiny random network")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/soundnet-load"))
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    weights = args.weights or tiny_checkpoint(args.tmp / "tiny.safetensors")
    sizes = {"short": (args.short, args.short_seconds), "long": (args.long, args.long_seconds)}
    print("set | command | scenario | exit codes | wall s | peak tree PSS MiB | outputs/inputs"
          " | table rows (distinct) | .part left | settings | note", flush=True)
    for name in args.sets:
        count, seconds = sizes[name]
        folder = args.tmp / f"{name}-{count}x{seconds:g}s"
        write_inputs(folder, count, seconds)
        for kind in args.commands:
            for scenario in args.scenarios:
                r = SCENARIOS[scenario](kind, folder, args.tmp / "out", weights, count)
                note = (f"killed at {r['killed_at']} outputs" if "killed_at" in r
                        else r.get("refused", ""))
                print(f"{name} {count}x{seconds:g}s | {kind} | {scenario} | {r['codes']} | "
                      f"{r['wall']:.1f} | {r['peak_mib']:.0f} | {r['outputs']}/{r['inputs']} | "
                      f"{r['rows']} ({r['distinct_rows']}) | {r['parts']} | "
                      f"{r['settings'] or '-'} | {note}", flush=True)


if __name__ == "__main__":
    main()
