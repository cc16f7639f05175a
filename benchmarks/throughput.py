"""Inference throughput: where the time goes, and each figure next to a baseline from the same run.

Parts (``--part``, default all):

``forward``
    The network alone on batches of 5 s clips (conv5) and 10 s clips (every layer, heads
    included), reference ``SoundNet.features`` vs the fused :class:`Engine`, in GFLOP/s of useful
    arithmetic (the original layers' multiply-adds x2), next to a 4096x4096 fp32 matmul's rate
    measured in between. Repetitions interleave, medians are printed.
``stages``
    One process, one file at a time over ESC-50: decode (libsndfile), down-mix + resample (soxr),
    forward (1 thread, engine and reference), writing the .npy. Core-milliseconds per audio second,
    and the decode-plus-compute floor they imply for this machine's cores.
``pipeline``
    ``extract --layer conv5``-equivalent over ESC-50: the naive per-file loop (``load_audio`` + one
    ``features`` call + ``np.save``) vs :func:`iter_activations` (+ ``np.save``), alternating over
    slices of the file list so that both see the same machine load. Audio seconds per wall second
    (x real time) and the ratio.
``long``
    A long recording made of ESC-50's mono 44.1 kHz clips end to end (Ogg Vorbis at about the
    clips' bitrate, generated once under ``--tmp``, never in the repository): each job
    in a fresh process, so its peak RSS is its own: tag (heads, streamed through
    ``iter_activations``), extract conv5 (``stream_to_npy``), and the same extract over ESC-50
    short clips for the throughput comparison, alternating.

The network is the full-size SoundNet-8 with random weights (speed does not depend on them).
The machine is shared: only ratios within one run mean much. Example::

    PYTHONPATH=src python benchmarks/throughput.py --data ../shared/data/esc50 --part all
"""

from __future__ import annotations

import os

# As the soundnet CLI does (soundnet_cli/cli/__init__.py); set it in the environment to compare.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from soundnet_cli.audio import SAMPLE_RATE, load_audio, prepare_waveform
from soundnet_cli.runtime import DecodePool, decode_file
from soundnet_cli.runtime import Engine
from soundnet_cli.runtime import iter_activations, iter_dataset
from soundnet_cli.runtime import RunOptions
from soundnet_cli.model import SoundNet, make_config
from soundnet_cli.runtime import LONG_FILE_SECONDS, stream_to_npy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import LONG_RATE, write_looped_ogg  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Helpers


def full_model() -> SoundNet:
    """Full-size SoundNet-8, random weights (original init), eval mode, BN statistics perturbed."""
    torch.manual_seed(0)
    model = SoundNet(make_config("soundnet8"))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def useful_flops(model: SoundNet, layers: list[str], samples: int) -> float:
    """Multiply-adds x2 of the original layers up to the deepest requested one."""
    names = model.resolve_layers(layers)
    total, channels = 0.0, 1
    deepest = max(model.layer_names.index(n) for n in names)
    for name in model.layer_names[: deepest + 1]:
        if name in model.trunk and hasattr(model.trunk[name], "conv"):
            conv = model.trunk[name].conv
            total += 2 * conv.out_channels * channels * conv.kernel_size[0] * \
                model.geometry(name).frames(samples)
            channels = conv.out_channels
        elif name in model.heads and name in names:
            conv = model.heads[name]
            total += 2 * conv.out_channels * channels * conv.kernel_size[0] * \
                model.geometry(name).frames(samples)
    return total


def esc50_files(data: Path, limit: int | None) -> list[Path]:
    files = sorted((data / "audio").glob("*.ogg")) or sorted((data / "audio").glob("*.wav"))
    if not files:
        sys.exit(f"no audio under {data / 'audio'}")
    return files[:limit] if limit else files


def audio_seconds(files: list[Path]) -> float:
    return sum(sf.info(str(p)).duration for p in files)


def warm_cache(files: list[Path]) -> None:
    for p in files:
        p.read_bytes()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (decoding workers), user + system."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def matmul_rate(n: int = 4096) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    a @ b
    return 2 * n**3 / (time.perf_counter() - t) / 1e9


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


# ---------------------------------------------------------------------------------------------
# Parts


def part_forward(args: argparse.Namespace, report: dict) -> None:
    header("forward pass alone (GFLOP/s of the original layers' arithmetic)")
    model = full_model()
    cases = [("conv5", 110_250, bs) for bs in (1, 4, 16)] + \
            [("conv8", 220_500, bs) for bs in (1, 4, 16)]
    engines = {layer: Engine(model, [layer]) for layer in ("conv5", "conv8")}
    inputs = {(s, bs): 0.1 * torch.randn(bs, s) for _, s, bs in cases}
    before = torch.get_num_threads()
    report["forward"] = dict(gflop_per_audio_second=useful_flops(model, ["conv8"], 220_500) / 1e10,
                             by_threads={})
    print(f"SoundNet-8, all layers: {report['forward']['gflop_per_audio_second']:.4f} GFLOP per "
          f"audio second; conv5 and below: {useful_flops(model, ['conv5'], 220_500) / 1e10:.4f}")
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            times: dict[tuple, list[float]] = {}
            mm: list[float] = []
            with torch.inference_mode():
                for layer, s, bs in cases:  # warm-up
                    engines[layer].forward(inputs[(s, bs)], max_samples=args.micro)
                    model.features(inputs[(s, bs)], [layer])
                for _ in range(args.reps):
                    mm.append(matmul_rate())
                    for layer, s, bs in cases:
                        x = inputs[(s, bs)]
                        for kind, fn in (
                                ("reference", lambda x=x, layer=layer: model.features(x, [layer])),
                                ("engine", lambda x=x, layer=layer: engines[layer].forward(
                                    x, max_samples=args.micro))):
                            t = time.perf_counter()
                            fn()
                            times.setdefault((layer, s, bs, kind), []).append(
                                time.perf_counter() - t)
            rate = med(mm)
            print(f"\n{threads} thread(s): matmul 4096^2 fp32 {rate:.1f} GFLOP/s (median of "
                  f"{len(mm)}, max {max(mm):.1f})")
            print(f"{'layer':6} {'clip':>5} {'batch':>5} {'reference':>24} {'engine':>24} "
                  f"{'speed-up':>8}")
            rows = []
            for layer, s, bs in cases:
                fl = useful_flops(model, [layer], s) * bs
                tr = med(times[(layer, s, bs, "reference")])
                te = med(times[(layer, s, bs, "engine")])
                gr, ge = fl / tr / 1e9, fl / te / 1e9
                print(f"{layer:6} {s / SAMPLE_RATE:4.1f}s {bs:5d} {gr:8.1f} GF/s {gr / rate:5.0%} "
                      f"of mm {ge:8.1f} GF/s {ge / rate:5.0%} of mm {tr / te:7.2f}x")
                rows.append(dict(layer=layer, seconds=s / SAMPLE_RATE, batch=bs,
                                 reference_gflops=gr, engine_gflops=ge,
                                 engine_fraction_of_matmul=ge / rate))
            report["forward"]["by_threads"][threads] = dict(matmul_gflops=rate, rows=rows)
    finally:
        torch.set_num_threads(before)


def part_stages(args: argparse.Namespace, report: dict) -> None:
    header("where the time goes (one process, one file at a time)")
    files = esc50_files(args.data, args.stage_files)
    warm_cache(files)
    model = full_model()
    engine = Engine(model, ["conv5"])
    cost = {k: 0.0 for k in ("decode", "resample", "forward engine (1 thread)",
                             "forward reference (1 thread)", "write npy")}
    seconds = 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = Path(tempfile.mkdtemp(prefix="sn-stages-"))
    try:
        with torch.inference_mode():
            for p in files:
                t0 = time.perf_counter()
                data, rate = sf.read(str(p), dtype="float32", always_2d=True)
                t1 = time.perf_counter()
                wave = prepare_waveform(data, rate)
                t2 = time.perf_counter()
                x = torch.from_numpy(wave)[None]
                a = engine.forward(x)["conv5"][0].T.numpy()
                t3 = time.perf_counter()
                model.features(x, ["conv5"])
                t4 = time.perf_counter()
                np.save(out / (p.stem + ".npy"), a)
                t5 = time.perf_counter()
                seconds += wave.shape[0] / SAMPLE_RATE
                for k, dt in zip(cost, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    cost[k] += dt
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(out)
    print(f"{len(files)} files, {seconds:.0f} s of audio")
    for k, v in cost.items():
        print(f"  {k:30} {1e3 * v / seconds:7.3f} core-ms per audio s  ({seconds / v:7.0f}x real "
              f"time on one core)")
    cores = os.cpu_count() or 1
    per = {k: v / seconds for k, v in cost.items()}
    floor = cores / (per["decode"] + per["resample"] + per["forward engine (1 thread)"]
                     + per["write npy"])
    naive_floor = cores / (per["decode"] + per["resample"] + per["forward reference (1 thread)"]
                           + per["write npy"])
    print(f"  floor on {cores} cores, all stages busy: engine {floor:.0f}x real time, "
          f"reference layers {naive_floor:.0f}x")
    report["stages"] = dict(files=len(files), audio_seconds=seconds,
                            core_ms_per_audio_second={k: 1e3 * v for k, v in per.items()},
                            floor_x_realtime=floor, reference_floor_x_realtime=naive_floor)


def naive_extract(model: SoundNet, files: list[Path], out: Path, threads: int | None = None
                  ) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        with torch.inference_mode():
            for p in files:
                wave = load_audio(p)
                a = model.features(torch.from_numpy(wave)[None], ["conv5"])["conv5"][0].T.numpy()
                np.save(out / (p.stem + ".npy"), a)
    finally:
        torch.set_num_threads(before)


class _Decode(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], rate: int, long_seconds: float) -> None:
        self.paths, self.rate, self.long_seconds = paths, rate, long_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return decode_file(i, self.paths[i], self.rate, self.long_seconds)


class LoaderDecoder:
    """The pipeline's decoding before session 4: a torch ``DataLoader`` (prefetch 4 per worker),
    in :class:`DecodePool`'s interface so ``iter_activations`` takes it as ``decoder``."""

    def __init__(self, paths: list[Path], rate: int, workers: int, long_seconds: float) -> None:
        self.paths, self.rate, self.workers, self.long_seconds = paths, rate, workers, long_seconds

    def matches(self, paths, rate, long_seconds) -> bool:
        return (list(paths), rate, long_seconds) == (self.paths, self.rate, self.long_seconds)

    def take(self, paths):
        return iter_dataset(_Decode(self.paths, self.rate, self.long_seconds),
                            workers=self.workers, prefetch=4)

    def close(self) -> None:
        pass


def pipeline_extract(model: SoundNet, files: list[Path], out: Path, *, decoder: str = "loader",
                     nice: int = 0, **opts) -> int:
    """``iter_activations`` + ``np.save``; ``decoder`` "pool" decodes in a
    :class:`DecodePool` (what ``soundnet extract`` starts before torch loads) with decoding
    processes at niceness ``nice``, "loader" in a torch DataLoader (:class:`LoaderDecoder`)."""
    failed = 0
    rate = model.config.sample_rate
    if decoder == "pool":
        opts["decoder"] = DecodePool(files, rate, workers=opts["workers"],
                                     long_seconds=LONG_FILE_SECONDS, nice=nice)
    else:
        opts["decoder"] = LoaderDecoder(files, rate, opts["workers"], LONG_FILE_SECONDS)
    for r in iter_activations(model, files, ["conv5"], options=RunOptions(**opts)):
        if r.ok:
            np.save(out / (r.path.stem + ".npy"), r.activations["conv5"])
        else:
            failed += 1
    return failed


def part_pipeline(args: argparse.Namespace, report: dict) -> None:
    header("extract --layer conv5 over ESC-50: naive per-file loop vs iter_activations")
    files = esc50_files(args.data, args.files)
    warm_cache(files)
    model = full_model()
    configs = {f"workers={w} threads={t}" + (f" {d}" if len(args.decoders) > 1 else "")
               + (f" nice={n}" if d == "pool" and len(args.nice) > 1 else ""):
               dict(workers=w, threads=t, batch_size=args.batch_size, decoder=d, nice=n)
               for w in args.workers for t in args.threads for d in args.decoders
               for n in (args.nice if d == "pool" else [0])}
    slices = [files[i::args.slices] for i in range(args.slices)]
    naive_threads = {"naive": None, "naive 1 thread": 1}
    elapsed = {**{k: 0.0 for k in naive_threads}, **{k: 0.0 for k in configs}}
    cpu = dict.fromkeys(elapsed, 0.0)
    out = Path(tempfile.mkdtemp(prefix="sn-pipe-"))
    try:
        for i, part in enumerate(slices):
            order = [*naive_threads, *configs]
            if i % 2:
                order.reverse()
            for name in order:
                t, c = time.perf_counter(), cpu_seconds()
                if name in naive_threads:
                    naive_extract(model, part, out, naive_threads[name])
                else:
                    assert pipeline_extract(model, part, out, **configs[name]) == 0
                elapsed[name] += time.perf_counter() - t
                cpu[name] += cpu_seconds() - c
    finally:
        shutil.rmtree(out)
    seconds = audio_seconds(files)
    naive = seconds / elapsed["naive"]
    print(f"{len(files)} files, {seconds:.0f} s of audio, {args.slices} alternating slices, "
          f"{torch.get_num_threads()} torch threads")
    naive1 = seconds / elapsed["naive 1 thread"]
    best = max(naive, naive1)
    print("  (cost: CPU core-milliseconds, all processes, per audio second)")
    rows = {}
    for name in elapsed:
        rate, cost = seconds / elapsed[name], 1e3 * cpu[name] / seconds
        label = {"naive": f"naive loop ({torch.get_num_threads()} threads)",
                 "naive 1 thread": "naive loop (1 thread)"}.get(name, f"pipeline {name}")
        ratio = "" if name in naive_threads else \
            f"  {rate / naive:5.2f}x the naive loop, {rate / best:5.2f}x the faster naive variant"
        print(f"  {label:34} {rate:6.0f}x real time  cost {cost:5.2f}{ratio}")
        rows[name] = dict(x_realtime=rate, core_ms_per_audio_second=cost)
    report["pipeline"] = dict(files=len(files), audio_seconds=seconds, rows=rows,
                              batch_size=args.batch_size)


def make_long_file(path: Path, seconds: float, data: Path) -> None:
    """ESC-50's mono 44.1 kHz clips end to end (looped) as one Ogg Vorbis file at about the
    clips' own bitrate, written block by block: the same content and codec as the short clips."""
    write_looped_ogg(esc50_files(data, None), path, seconds)


def kbps(files: list[Path]) -> float:
    return sum(p.stat().st_size for p in files) * 8 / audio_seconds(files) / 1000


def child(job: str, args: argparse.Namespace) -> None:
    """One measured job in this fresh process; prints JSON with time and peak RSS."""
    model = full_model()
    torch.set_num_threads(args.long_threads)
    t = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="sn-long-", dir=args.tmp))
    try:
        if job == "tag":
            (r,) = iter_activations(model, [args.long_file], ["conv8"])
            assert r.ok and r.streamed, r.error
            seconds = r.duration
        elif job == "extract":
            shapes = stream_to_npy(model, args.long_file, {"conv5": out / "conv5.npy"})
            seconds = sf.info(str(args.long_file)).duration
            assert shapes["conv5"][0] > 0
        elif job == "short":
            files = esc50_files(args.data, args.files)
            assert pipeline_extract(model, files, out, workers=args.long_workers,
                                    threads=args.long_threads, batch_size=args.batch_size) == 0
            seconds = audio_seconds(files)
        else:
            raise SystemExit(f"unknown job {job}")
    finally:
        shutil.rmtree(out)
    wall = time.perf_counter() - t
    print(json.dumps(dict(job=job, seconds=seconds, wall=wall, peak_rss_mb=peak_rss_mb())))


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: that survives ``execve`` and
    would report the parent's peak at the fork. Decoding workers are separate processes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(job: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", job, "--data", str(args.data), "--tmp",
           str(args.tmp), "--long-minutes", str(args.long_minutes), "--batch-size",
           str(args.batch_size), "--long-threads", str(args.long_threads), "--long-workers",
           str(args.long_workers)]
    if args.files:
        cmd += ["--files", str(args.files)]
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if done.returncode:
        sys.exit(f"job {job} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_long(args: argparse.Namespace, report: dict) -> None:
    header(f"a {args.long_minutes:g}-minute recording vs short clips ({args.long_threads} torch "
           f"thread(s); short clips with {args.long_workers} decoding worker(s))")
    if not args.long_file.exists():
        print(f"generating {args.long_file} ...", flush=True)
        make_long_file(args.long_file, args.long_minutes * 60, args.data)
    print(f"long file {args.long_file}: {kbps([args.long_file]):.0f} kbit/s; ESC-50 clips: "
          f"{kbps(esc50_files(args.data, args.files)):.0f} kbit/s")
    runs: dict[str, list[dict]] = {}
    for rep in range(args.long_reps):
        for job in (("extract", "short", "tag") if rep % 2 == 0 else ("tag", "short", "extract")):
            runs.setdefault(job, []).append(run_child(job, args))
    rows = {}
    for job, rs in runs.items():
        rate = med([r["seconds"] / r["wall"] for r in rs])
        rss = max(r["peak_rss_mb"] for r in rs)
        rows[job] = dict(x_realtime=rate, peak_rss_mb=rss, audio_seconds=rs[0]["seconds"])
    short = rows["short"]["x_realtime"]
    names = {"tag": "tag (heads, streamed)", "extract": "extract conv5 (stream_to_npy)",
             "short": "extract conv5, ESC-50 clips*"}
    for job, row in rows.items():
        print(f"  {names[job]:32} {row['x_realtime']:6.0f}x real time  "
              f"{row['x_realtime'] / short:5.2f}x short-clip rate  peak RSS "
              f"{row['peak_rss_mb']:6.0f} MB  ({row['audio_seconds']:.0f} s of audio)")
    print("  * peak RSS of the main process only (its decoding workers are separate processes)")
    report["long"] = dict(minutes=args.long_minutes, rows=rows)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/esc50"))
    ap.add_argument("--part", choices=["forward", "stages", "pipeline", "long", "all"],
                    default="all")
    ap.add_argument("--files", type=int, default=None, help="ESC-50 files to use (default all)")
    ap.add_argument("--stage-files", type=int, default=200)
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch intra-op threads for the pipeline (the naive loop keeps torch's "
                    "default)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--decoders", nargs="+", choices=["loader", "pool"], default=["pool"],
                    help="pipeline decoding: DecodePool (the CLI's) and/or a torch DataLoader")
    ap.add_argument("--nice", type=int, nargs="+", default=[0],
                    help="niceness of DecodePool's processes (pipeline part)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--micro", type=int, default=1 << 18,
                    help="engine micro-batch samples for the early layers (forward part)")
    ap.add_argument("--long-minutes", type=float, default=180.0)
    ap.add_argument("--long-reps", type=int, default=2)
    ap.add_argument("--long-threads", type=int, default=1,
                    help="torch threads in every long-part job (long file and short clips alike)")
    ap.add_argument("--long-workers", type=int, default=1,
                    help="decoding processes for the short-clip job (a long file decodes in one "
                    "background thread)")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()) / "soundnet-bench")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    args.long_file = args.tmp / f"esc50-looped-{args.long_minutes:g}min.ogg"
    if args.child:
        child(args.child, args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; CUDA available: "
          f"{torch.cuda.is_available()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    report: dict = {}
    parts = ["forward", "stages", "pipeline", "long"] if args.part == "all" else [args.part]
    for part in parts:
        globals()[f"part_{part}"](args, report)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
