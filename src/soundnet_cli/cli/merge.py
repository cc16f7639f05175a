"""``soundnet merge``: join the per-shard outputs of a sharded tag or extract run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import EXIT_FAILED, EXIT_OK, doc, err, out, user_errors


def merge(
    out_dir: Annotated[Path, typer.Argument(
        help="The --out directory the shards wrote into.", show_default=False)],
    partial: Annotated[bool, typer.Option(
        "--partial", help="Write the combined outputs of the shards that are there even when "
        "others are missing or unfinished (tag's run.json then says \"complete\": false); "
        "default: write nothing then.")]
        = False,
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout.")]
        = False,
) -> None:
    """Merge a sharded tag or extract run into the outputs one unsharded run writes.

    The shards' tables become the manifest (extract) or the combined tables (tag), byte-identical to a single run's, plus a run.json that says it was merged and whether every shard finished. Reports missing shards, unfinished ones and failed inputs; failed inputs are listed in OUT/rerun.txt for --files-from (with the run's DIRS, so outputs keep their place). Exit code 0 when every shard finished and no input failed, 1 otherwise.
    """
    with user_errors():
        from ..shards.merge import merge as run_merge

        reports = run_merge(out_dir, partial=partial)
    if json_out:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            _print(report)
    raise typer.Exit(EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED)


merge.__doc__ = f"{merge.__doc__}\n\n    Reference (clusters, SLURM, torchrun): {doc('scale.md')}\n"


def _print(report: Any) -> None:
    state = "complete" if report.complete else "INCOMPLETE"
    c = report.counts
    out.print(f"{report.out_dir}: {report.command} run of {report.count} shard(s), {state}; "
              f"{report.inputs_total} input(s): {c['ok'] + report.fixed} done, {c['skipped']} "
              f"skipped as done before, {len(report.failed)} failed"
              + (f" ({report.fixed} failed in a shard, redone later)" if report.fixed else ""),
              highlight=False, soft_wrap=True)
    for i in report.missing:
        err.print(f"  shard {i}/{report.count}: missing (no status file); run it with "
                  f"--shard {i}/{report.count}", highlight=False, soft_wrap=True)
    for i, reason in report.incomplete:
        err.print(f"  shard {i}/{report.count}: incomplete ({reason}); rerun it with "
                  f"--shard {i}/{report.count} (it resumes)", highlight=False, soft_wrap=True)
    for _path, message in report.failed[:20]:
        err.print(f"  failed: {message}", highlight=False, markup=False, soft_wrap=True)
    if len(report.failed) > 20:
        err.print(f"  ... and {len(report.failed) - 20} more", highlight=False)
    if report.rerun is not None:
        roots = " ".join(report.settings.get("roots", []))
        err.print(f"  to redo the failed inputs: the same command with {roots + ' ' if roots else ''}"
                  f"--files-from {report.rerun} and no --shard, then merge again",
                  highlight=False, soft_wrap=True)
    for path in report.unlisted:
        err.print(f"  not in {report.out_dir / 'rerun.txt'}: {path!r} (a newline in its name "
                  "would split its line); redo it by naming it", highlight=False, markup=False,
                  soft_wrap=True)
    if report.written:
        out.print("  wrote " + ", ".join(str(p) for p in report.written.values())
                  + ("" if report.complete else " (PARTIAL: shards missing)"),
                  highlight=False, soft_wrap=True)
    elif not report.complete:
        out.print("  nothing written while shards are missing or unfinished (--partial writes "
                  "what is there)", highlight=False, soft_wrap=True)
