"""The cost of ``soundnet merge``: wall time and peak memory against the number of rows.

For each command (``extract``: manifest rows; ``tag``: result rows of ``tags.jsonl`` and
``tags.csv``) and each size in ``--rows``, an ``OUT`` is made that looks exactly like ``--shards``
finished shards of one run over that many inputs, then ``soundnet merge OUT`` runs as a
subprocess: its wall time, and its peak RSS (``ru_maxrss`` of the child from ``wait4``).

How ``OUT`` is made: one real shard (``--shard 0/SHARDS``) of the real command runs on a few
ESC-50 clips, which gives the real status header (network, settings), ``extract.json`` and one
real row (a manifest row, or a tag record); the inputs are then renamed
``/data/site-NNN/rec-NNNNNNN.wav`` and every shard's files are written with the real writers
(:class:`soundnet_cli.shards.status.ShardStatus`, :func:`soundnet_cli.files.manifest.write_manifest`,
:func:`soundnet_cli.tagging.views.write_combined`), each row a copy of the real one under its
own input name, split as ``--shard I/N`` splits them. No audio or feature file exists for the
generated names: the merge reads only status files and tables. Example::

    flock /tmp/bench.lock env PYTHONPATH=src python benchmarks/merge.py --rows 10000 100000 300000
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ESC50_AUDIO, load, run, self_rss_mib, soundnet  # noqa: E402

from soundnet_cli.files import read_manifest, write_manifest  # noqa: E402
from soundnet_cli.shards import Shard, select  # noqa: E402
from soundnet_cli.shards.status import ShardStatus, StatusFile, shard_path, status_path  # noqa: E402
from soundnet_cli.tagging import write_combined  # noqa: E402

TEMPLATE_CLIPS = 4


def template(command: str, shards: int, tmp: Path) -> Path:
    """A real ``--shard 0/SHARDS`` run of ``command`` on a few clips, in ``tmp/<command>-tpl``."""
    out = tmp / f"{command}-tpl"
    shutil.rmtree(out, ignore_errors=True)
    clips = [str(p) for p in sorted(ESC50_AUDIO.glob("*.ogg"))[:TEMPLATE_CLIPS]]
    args = (["extract", "--layer", "conv5"] if command == "extract"
            else ["tag", "--format", "jsonl,csv"])
    run(soundnet(*args, *clips, "--out", str(out), "--shard", f"0/{shards}", "--device", "cpu",
                 "-q"))
    return out


def names(rows: int) -> list[str]:
    """``rows`` input paths, 1,000 per site folder."""
    return [f"/data/site-{i // 1000:03d}/rec-{i:07d}.wav" for i in range(rows)]


def generate(command: str, tpl: Path, out: Path, rows: int, shards: int) -> None:
    """``out`` as ``shards`` finished shards over ``rows`` generated inputs would leave it."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    header = StatusFile(status_path(tpl, Shard(0, shards))).header
    settings = dict(header["settings"])
    inputs = names(rows)
    if command == "extract":
        shutil.copy(tpl / "extract.json", out / "extract.json")
        manifest = out / settings["manifest"]  # relative to OUT (or absolute)
        row = next(read_manifest(shard_path(tpl / settings["manifest"], Shard(0, shards))))
    else:
        settings["out_dir"] = str(out)
        row = json.loads((tpl / f"tags.shard-0-of-{shards}.jsonl").read_text().splitlines()[0])
    for i in range(shards):
        shard = Shard(i, shards)
        mine = select(inputs, shard)
        status = ShardStatus(out, shard, command, settings, mine, rows)
        if command == "extract":
            write_manifest(shard_path(manifest, shard), manifest_rows(row, mine, out))
        else:
            write_combined("jsonl", out / f"tags.{shard.name}.jsonl", tag_docs(row, mine))
        for p in mine:
            status.record(p, "ok")
        status.finish()


def manifest_rows(row: dict[str, Any], inputs: list[str], out: Path) -> Iterator[dict[str, Any]]:
    for p in inputs:
        r = dict(row)
        r["input"], r["output"] = p, str(out / Path(p).relative_to("/data").with_suffix(
            ".conv5.npy"))
        yield r


def tag_docs(doc: dict[str, Any], inputs: list[str]) -> Iterator[dict[str, Any]]:
    for p in inputs:
        d = copy.copy(doc)
        d["path"] = p
        yield d


def check_merged(command: str, out: Path, rows: int) -> None:
    """The merged table holds one row per generated input (a header line besides for CSV)."""
    table, header = (out / "manifest.csv", 1) if command == "extract" else (out / "tags.jsonl", 0)
    with open(table, encoding="utf-8") as f:
        lines = sum(1 for _ in f)
    if lines != rows + header:
        sys.exit(f"{table}: {lines - header} rows after the merge, expected {rows}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--commands", nargs="+", choices=["extract", "tag"],
                    default=["extract", "tag"])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()) / "soundnet-merge")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    print(f"soundnet merge over {args.shards} shards; load {load()}")
    results: dict[str, Any] = {}
    for command in args.commands:
        tpl = template(command, args.shards, args.tmp)
        for rows in args.rows:
            out = args.tmp / f"{command}-{rows}"
            generate(command, tpl, out, rows, args.shards)
            times = []
            for _ in range(args.reps):
                for f in ("manifest.csv", "tags.jsonl", "tags.csv", "run.json"):
                    (out / f).unlink(missing_ok=True)
                times.append(run(soundnet("merge", str(out))))
            check_merged(command, out, rows)
            wall = min(t.wall for t in times)
            rss = max(t.rss for t in times)
            size = sum(p.stat().st_size for p in out.glob("*.shard-*")) / 2**20
            print(f"  {command:7s} {rows:>8,} rows ({size:6.1f} MiB of shard files): merge "
                  f"{wall:6.2f} s (best of {args.reps}; cpu {min(t.cpu for t in times):.2f} s),"
                  f" peak RSS {rss:5.0f} MiB   (load {load()})", flush=True)
            results[f"{command}-{rows}"] = dict(rows=rows, wall=wall, rss_mib=rss,
                                                cpu=min(t.cpu for t in times),
                                                shard_mib=size)
            shutil.rmtree(out)
    print(f"generator's own peak RSS {self_rss_mib():.0f} MiB; load at the end {load()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
