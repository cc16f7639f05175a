"""The per-file overheads that decide shard sizes, measured on this machine with the real commands.

Parts (``--part``, default all), every command a fresh ``python -m soundnet_cli`` subprocess of
this checkout, the embedded network (the default of ``soundnet tag``), ``--device cpu``:

``startup``
    What every shard pays once: ``python -c pass``; ``soundnet tag --help`` (interpreter + the
    torch-free CLI); ``soundnet tag`` and ``soundnet extract --layer conv5`` on one generated 1 s
    file (adds ``import torch``, the network load, one forward pass and the writes);
    ``--baseline-src`` adds the same tag job with another checkout's ``src``. Medians of
    ``--reps`` alternating repetitions; wall and CPU seconds (user + system of the command and
    its decoding processes).
``perfile``
    ``tag --out`` (formats jsonl,csv) and ``extract --layer conv5`` on the first ``--small`` and
    ``--large`` ESC-50 clips (5 s each), alternating: the marginal cost of one more clip is the
    slope between the two sizes, the fixed cost the intercept, in wall and in CPU seconds (CPU
    seconds are what a cluster charges per core and what is left when the machine is shared).
``long``
    ``tag --segments --out`` and ``extract --layer conv5`` on one ``--long-minutes`` recording
    (ESC-50's mono 44.1 kHz clips end to end as Ogg Vorbis, as ``benchmarks/throughput.py``
    makes it; generated under ``--tmp``, never in the repository): audio seconds per wall second
    with and without the start-up of the ``startup`` part.
``scan``
    Listing a directory tree of ``--scan-files`` empty ``.wav`` files (1,000 folders) with the
    commands' own discovery (:func:`soundnet_cli.audio.find_audio_files`, which also resolves
    every path to drop duplicates) next to a bare ``os.scandir`` of the same folders, in a fresh
    process each time; and what every shard does with ``--files-from`` and the same paths in a
    list file: read it, check every listed path (``find_audio_files`` on the list: a ``stat``
    and a ``resolve`` each) and take its share (``select_inputs``).

``shardlist``
    The same listing inside the real commands: ``extract`` and ``tag --out`` with
    ``--files-from LIST --shard 0/(N/100)`` on lists of 1,000 and ``--scan-files`` of those empty
    files, and ``extract DIR -r --shard 0/(N/100)`` on trees of as many (each shard takes 100,
    which fail at once): the extra CPU time per path is what every shard pays for the other
    shards' inputs. ``--baseline-src`` runs the same jobs with another checkout, interleaved.

Merge cost is ``benchmarks/merge.py``; two shards against one run is ``benchmarks/shard.py``.
Example (from the repository root; wrap in ``flock /tmp/bench.lock`` on a shared machine)::

    PYTHONPATH=src python benchmarks/scale.py --data /work/shared/data/esc50/audio --json s.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ESC50_AUDIO, Timing, cores, env, load, median, run, soundnet, write_looped_ogg  # noqa: E402

RATE = 22_050


def tiny_file(tmp: Path) -> Path:
    """One second of quiet noise, 22,050 Hz mono WAV."""
    path = tmp / "tiny.wav"
    rng = np.random.default_rng(0)
    sf.write(str(path), (0.1 * rng.standard_normal(RATE)).astype(np.float32), RATE)
    return path


def clips(data: Path, n: int) -> list[Path]:
    files = sorted(data.glob("*.ogg")) or sorted(data.glob("*.wav"))
    if len(files) < n:
        sys.exit(f"need {n} clips under {data}, found {len(files)}")
    return files[:n]


def tag_cmd(inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return soundnet("tag", *map(str, inputs), "--out", str(out), "--format", "jsonl,csv",
                    "--device", "cpu", "-q", *extra)


def extract_cmd(inputs: list[Path], out: Path) -> list[str]:
    return soundnet("extract", *map(str, inputs), "--out", str(out), "--layer", "conv5",
                    "--device", "cpu", "-q")


def fresh(tmp: Path, name: str) -> Path:
    """An empty output directory (outputs are removed so that no run resumes another)."""
    out = tmp / name
    shutil.rmtree(out, ignore_errors=True)
    return out


def alternate(jobs: dict[str, object], reps: int) -> dict[str, list[Timing]]:
    """Run each job ``reps`` times, interleaved, so that all see the same machine load.

    ``jobs`` maps a name to a function of no arguments returning a :class:`Timing`."""
    out: dict[str, list[Timing]] = {k: [] for k in jobs}
    for _ in range(reps):
        for name, job in jobs.items():
            out[name].append(job())  # type: ignore[operator]
    return out


def summary(ts: list[Timing]) -> dict[str, float]:
    return dict(wall=median([t.wall for t in ts]), cpu=median([t.cpu for t in ts]),
                rss=max(t.rss for t in ts))


def part_startup(args: argparse.Namespace, report: dict) -> None:
    tiny = tiny_file(args.tmp)
    jobs = {
        "python -c pass": lambda: run([sys.executable, "-c", "pass"]),
        "soundnet tag --help": lambda: run(soundnet("tag", "--help")),
        "tag, one 1 s file": lambda: run(tag_cmd([tiny], fresh(args.tmp, "st-tag"))),
        "extract conv5, one 1 s file": lambda: run(extract_cmd([tiny], fresh(args.tmp, "st-ex"))),
    }
    if args.baseline_src:
        base = {"PYTHONPATH": str(args.baseline_src)}
        jobs["tag, one 1 s file, --baseline-src"] = lambda: run(
            tag_cmd([tiny], fresh(args.tmp, "st-tag-b")), extra_env=base)
    rows = {k: summary(v) for k, v in alternate(jobs, args.reps).items()}
    print(f"\nstart-up (median of {args.reps}; load {load()})")
    for name, r in rows.items():
        print(f"  {name:30s} wall {r['wall']:6.2f} s   cpu {r['cpu']:6.2f} s   "
              f"peak RSS {r['rss']:5.0f} MiB")
    report["startup"] = rows


def part_perfile(args: argparse.Namespace, report: dict) -> None:
    files = clips(args.data, args.large)
    audio = sum(sf.info(str(p)).duration for p in files)
    small, large = files[:args.small], files
    jobs = {}
    for cmd in ("tag", "extract"):
        make = tag_cmd if cmd == "tag" else extract_cmd
        for name, inputs in ((f"{cmd} {args.small}", small), (f"{cmd} {args.large}", large)):
            jobs[name] = (lambda m=make, i=inputs, n=name:
                          run(m(i, fresh(args.tmp, "pf-" + n.replace(" ", "-")))))
    rows = {k: summary(v) for k, v in alternate(jobs, args.reps).items()}
    print(f"\nper file, ESC-50 clips of 5 s (median of {args.reps}; load {load()})")
    n = args.large - args.small
    report["perfile"] = {"audio_seconds_large": audio, "rows": rows}
    for cmd in ("tag", "extract"):
        a, b = rows[f"{cmd} {args.small}"], rows[f"{cmd} {args.large}"]
        wall, cpu = (b["wall"] - a["wall"]) / n, (b["cpu"] - a["cpu"]) / n
        fixed_wall, fixed_cpu = a["wall"] - args.small * wall, a["cpu"] - args.small * cpu
        print(f"  {cmd:8s} {args.small} files {a['wall']:6.2f} s, {args.large} files "
              f"{b['wall']:6.2f} s ({audio / b['wall']:.0f}x real time, cpu {b['cpu']:.2f} s)")
        print(f"  {'':8s} marginal per clip: {wall * 1e3:6.1f} ms wall, {cpu * 1e3:6.1f} ms cpu"
              f"   fixed: {fixed_wall:5.2f} s wall, {fixed_cpu:5.2f} s cpu"
              f"   -> {3600 / cpu:,.0f} clips per CPU-core hour")
        report["perfile"][cmd] = dict(marginal_wall=wall, marginal_cpu=cpu,
                                      fixed_wall=fixed_wall, fixed_cpu=fixed_cpu,
                                      clips_per_core_hour=3600 / cpu)


def long_file(args: argparse.Namespace) -> Path:
    """ESC-50's mono 44.1 kHz clips end to end, Ogg Vorbis (cached under ``--tmp``)."""
    path = args.tmp / f"esc50-looped-{args.long_minutes:g}min.ogg"
    if path.exists():
        return path
    return write_looped_ogg(sorted(args.data.glob("*.ogg")), path, args.long_minutes * 60)


def part_long(args: argparse.Namespace, report: dict) -> None:
    path = long_file(args)
    seconds = sf.info(str(path)).duration
    jobs = {
        "tag --segments": lambda: run(tag_cmd([path], fresh(args.tmp, "lg-tag"), "--segments")),
        "extract conv5": lambda: run(extract_cmd([path], fresh(args.tmp, "lg-ex"))),
    }
    rows = {k: summary(v) for k, v in alternate(jobs, args.reps).items()}
    start = report.get("startup", {})
    base = {"tag --segments": start.get("tag, one 1 s file", {}).get("wall", 0.0),
            "extract conv5": start.get("extract conv5, one 1 s file", {}).get("wall", 0.0)}
    print(f"\none {seconds / 60:.0f}-minute recording (median of {args.reps}; load {load()})")
    for name, r in rows.items():
        steady = seconds / (r["wall"] - base[name]) if base[name] else float("nan")
        r.update(x_real_time=seconds / r["wall"], x_real_time_without_startup=steady,
                 audio_seconds_per_cpu_second=seconds / r["cpu"])
        print(f"  {name:16s} wall {r['wall']:6.2f} s: {seconds / r['wall']:5.0f}x real time "
              f"({steady:.0f}x without start-up), {seconds / r['cpu']:.0f} audio s per CPU s, "
              f"peak RSS {r['rss']:.0f} MiB")
    report["long"] = dict(seconds=seconds, rows=rows)


SCAN_CHILD = """
import os, sys, time
from pathlib import Path
from soundnet_cli.audio import find_audio_files
from soundnet_cli.shards.partition import Shard, read_files_from, select_inputs
t = time.perf_counter()
names = [e.path for d in os.scandir(sys.argv[1]) if d.is_dir() for e in os.scandir(d.path)]
walk = time.perf_counter() - t
t = time.perf_counter()
files, problems = find_audio_files([sys.argv[1]], recursive=True)
scan = time.perf_counter() - t
Path(sys.argv[2]).write_text("".join(f"{p}\\n" for p in files))
t = time.perf_counter()
listed = read_files_from(sys.argv[2])
read = time.perf_counter() - t
t = time.perf_counter()
found, problems = find_audio_files(listed)
check = time.perf_counter() - t
t = time.perf_counter()
mine, _ = select_inputs(found, problems, Shard(0, 100))
select = time.perf_counter() - t
print(len(files), walk, scan, read, check, select)
"""


def scan_tree(root: Path, n: int) -> None:
    """``n`` empty ``.wav`` files in 1,000 folders under ``root`` (made once)."""
    done = root / ".complete"
    if done.exists():
        return
    per = -(-n // 1000)
    for i in range(n):
        d = root / f"d{i // per:03d}"
        if i % per == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:07d}.wav").touch()
    done.touch()


def part_scan(args: argparse.Namespace, report: dict) -> None:
    root = args.tmp / f"scan-{args.scan_files}"
    scan_tree(root, args.scan_files)
    listing = args.tmp / "scan-list.txt"
    keys = ("scandir", "find_audio_files", "read_files_from", "check_listed", "select")
    got: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(args.reps):
        out = subprocess.run([sys.executable, "-c", SCAN_CHILD, str(root), str(listing)],
                             check=True, capture_output=True, text=True, env=env())
        count, *values = out.stdout.split()
        for k, v in zip(keys, values):
            got[k].append(float(v))
    m = {k: median(v) for k, v in got.items()}
    n = int(count)
    print(f"\nlisting {n:,} paths in 1,000 folders (median of {args.reps}; load {load()})")
    print(f"  os.scandir of the folders alone:                    {m['scandir']:6.2f} s")
    print(f"  find_audio_files(DIR, recursive) (stat, resolve, sort): {m['find_audio_files']:6.2f} s"
          f" ({m['find_audio_files'] / n * 1e6:.0f} us per path)")
    print(f"  --files-from: read_files_from(LIST):                {m['read_files_from']:6.2f} s")
    print(f"  --files-from: find_audio_files(listed paths):       {m['check_listed']:6.2f} s"
          f" ({m['check_listed'] / n * 1e6:.0f} us per path)")
    print(f"  select_inputs (shard 0/100 of them):                {m['select']:6.2f} s")
    report["scan"] = dict(paths=n, **m)


def part_shardlist(args: argparse.Namespace, report: dict) -> None:
    """The whole list's cost inside the real command: ``extract --files-from LIST --shard`` and
    ``tag --out --files-from LIST --shard`` over lists of 1,000 and ``--scan-files`` empty
    ``.wav`` files, and ``extract DIR --recursive --shard`` over the same tree and a 1,000-file
    one, the shard count chosen so that each shard takes 100 of them (which fail to decode at
    once: the run exits 1). The difference per extra path is what every shard of a big run pays
    for the other shards' inputs. With ``--baseline-src`` the same jobs with that ``src`` too,
    interleaved, so both checkouts see the same load."""
    root = args.tmp / f"scan-{args.scan_files}"
    scan_tree(root, args.scan_files)
    small = args.tmp / "scan-1000"
    scan_tree(small, 1000)
    paths = sorted(str(p) for p in root.glob("d*/*.wav"))
    sizes = (1000, len(paths))
    lists = {}
    for n in sizes:
        lists[n] = args.tmp / f"list-{n}.txt"
        lists[n].write_text("".join(p + "\n" for p in paths[:n]))
    command = {
        "extract --files-from": lambda n, out: ("extract", str(root), "--files-from",
                                                str(lists[n]), "--layer", "conv5", "--out", out),
        "tag --out --files-from": lambda n, out: ("tag", str(root), "--files-from",
                                                  str(lists[n]), "--format", "jsonl,csv",
                                                  "--out", out),
        "extract DIR -r": lambda n, out: ("extract", str(root if n > 1000 else small), "-r",
                                          "--layer", "conv5", "--out", out),
    }
    srcs = {"this checkout": None}
    if args.baseline_src:
        srcs["baseline"] = {"PYTHONPATH": str(args.baseline_src)}
    jobs = {}
    for name, make in command.items():
        for who, extra in srcs.items():
            for n in sizes:
                def job(make=make, n=n, extra=extra) -> Timing:
                    cmd = make(n, str(fresh(args.tmp, "sl-out")))
                    return run(soundnet(*cmd, "--shard", f"0/{n // 100}", "--device", "cpu",
                                        "-q"), extra_env=extra, check=False,
                               stdout=subprocess.DEVNULL)
                jobs[(name, who, n)] = job
    rows = {k: summary(v) for k, v in alternate(jobs, args.reps).items()}  # type: ignore[arg-type]
    print(f"\nthe whole input list in one shard, --shard 0/(N/100): 100 inputs taken of N "
          f"(median of {args.reps}; load {load()})")
    out = {}
    for name in command:
        for who in srcs:
            a, b = rows[(name, who, sizes[0])], rows[(name, who, sizes[1])]
            per_wall = (b["wall"] - a["wall"]) / (sizes[1] - sizes[0])
            per_cpu = (b["cpu"] - a["cpu"]) / (sizes[1] - sizes[0])
            print(f"  {name:24s} {who:14s} N={sizes[0]:,}: {a['wall']:6.2f} s wall "
                  f"{a['cpu']:6.2f} s cpu; N={sizes[1]:,}: {b['wall']:6.2f} s wall "
                  f"{b['cpu']:6.2f} s cpu -> {per_cpu * 1e6:4.0f} us cpu "
                  f"({per_wall * 1e6:4.0f} us wall) per path")
            out[f"{name} | {who}"] = {"rows": {str(sizes[0]): a, str(sizes[1]): b},
                                      "per_path_cpu": per_cpu, "per_path_wall": per_wall}
        if len(srcs) > 1:
            new, old = out[f"{name} | this checkout"], out[f"{name} | baseline"]
            print(f"  {name:24s} baseline / this checkout, per path (cpu): "
                  f"{old['per_path_cpu'] / max(new['per_path_cpu'], 1e-9):.1f}x")
    report["shardlist"] = out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["startup", "perfile", "long", "scan", "shardlist", "all"],
                    default="all")
    ap.add_argument("--data", type=Path, default=ESC50_AUDIO, help="ESC-50's audio/ folder")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()) / "soundnet-scale")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--large", type=int, default=200)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--scan-files", type=int, default=100_000)
    ap.add_argument("--baseline-src", type=Path, default=None,
                    help="startup, shardlist: also time the jobs with this src/ (another "
                         "checkout, e.g. a git worktree of an earlier commit)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cores()} cores usable, load {load()}; network: embedded (soundnet tag's "
          f"default), --device cpu; python {sys.version.split()[0]}")
    report: dict = {"cores": cores(), "load_start": load()}
    parts = (["startup", "perfile", "long", "scan", "shardlist"] if args.part == "all"
             else [args.part])
    for part in parts:
        globals()[f"part_{part}"](args, report)
    report["load_end"] = load()
    print(f"\nload at the end: {load()}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
