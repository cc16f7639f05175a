"""``soundnet weights``: list, download, import, describe and export networks."""

from __future__ import annotations

import json
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import QuietOpt, doc, err, fail, out, user_errors, warn

app = typer.Typer(
    name="weights",
    help="List, download, import, describe and export SoundNet networks.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class SourceFormat(str, Enum):
    auto = "auto"
    torch7 = "torch7"
    zip = "zip"
    npy = "npy"
    torch = "torch"
    safetensors = "safetensors"
    soundnet_cli = "soundnet-cli"


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


class Arch(str, Enum):
    auto = "auto"
    soundnet8 = "soundnet8"
    soundnet5 = "soundnet5"


WeightsDirOpt = Annotated[Optional[Path], typer.Option(
    "--weights-dir", help="Network cache (default: $SOUNDNET_HOME, else ~/.cache/soundnet).",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json",
                                        help=f"JSON on stdout (schema: {doc('weights.md')}).")]


@app.command("list")
def list_cmd(weights_dir: WeightsDirOpt = None, json_out: JsonOpt = False) -> None:
    """The embedded default, the networks that can be downloaded, and what is in the cache.

    Paths are in `--json` and `soundnet weights info NAME`.
    """
    with user_errors():
        from ..weights.registry import list_networks

        entries = list_networks(weights_dir)
    if json_out:
        out.print_json(json.dumps([e.to_dict() for e in entries]))
        return
    if out.is_terminal:
        out.print(network_table(entries))
    else:  # a pipe or a file: one plain tab-separated row per network, for cut, awk and grep
        out.file.write(network_rows(entries))
    if any(e.kind == "downloadable" and not e.available for e in entries):
        err.print("get one with: soundnet weights download NAME", highlight=False)


LIST_COLUMNS = ("name", "kind", "arch", "heads", "status", "description")


def _row(e: Any) -> tuple[str, ...]:
    heads = " ".join(f"{name}:{n}" for name, n in e.heads.items()) or "-"
    status = "ready" if e.available else \
        "not downloaded" if e.kind == "downloadable" else "missing"
    return e.name, e.kind, e.arch or "-", heads, status, e.description


def network_rows(entries: list) -> str:
    """``soundnet weights list`` for programs: a header and one tab-separated row per network
    (columns :data:`LIST_COLUMNS`; heads as ``name:classes`` separated by spaces)."""
    lines = ["\t".join(LIST_COLUMNS)]
    lines += ["\t".join(c.replace("\t", " ").replace("\n", " ") for c in _row(e))
              for e in entries]
    return "\n".join(lines) + "\n"


def network_table(entries: list) -> Any:
    """``soundnet weights list`` for people: a table that fits an 80-column terminal (long
    names and head lists wrap within their columns, one head per line; the description keeps
    room for words)."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, collapse_padding=True)
    table.add_column("name", overflow="fold", max_width=20)
    table.add_column("kind", no_wrap=True)
    table.add_column("arch", no_wrap=True)
    table.add_column("heads", overflow="fold", max_width=14)
    table.add_column("status", max_width=10)
    table.add_column("description", overflow="fold", min_width=16, ratio=1)
    for e in entries:
        name, kind, arch, heads, status, description = _row(e)
        table.add_row(name, kind, arch, heads.replace(" ", "\n"), status, description)
    return table


@app.command("download")
def download_cmd(
    name: Annotated[str, typer.Argument(help="A network from `soundnet weights list`, e.g. "
                                             "soundnet8.", show_default=False)],
    weights_dir: WeightsDirOpt = None,
    mirror: Annotated[Optional[str], typer.Option(
        "--mirror", help="Fetch the files by name from this base URL instead of the original "
        "hosts (a local copy or an intranet server).", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild the checkpoint even if it is already in the cache.")] = False,
    reset_hash: Annotated[bool, typer.Option(
        "--reset-hash", help="Forget the recorded SHA-256 and local copies, download again and "
        "trust the new files.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Download one of the authors' original networks and import it into the cache.

    Fetches the release archive and the two category files (resuming partial downloads and
    checking SHA-256), then converts the network. Afterwards `--weights NAME` works everywhere.
    """
    with user_errors():
        from ..weights.registry import download_network

        with _download_bars(quiet) as bars:
            result = download_network(name, cache_dir=weights_dir, mirror=mirror, force=force,
                                      reset_hash=reset_hash, progress=bars)
        for message in result.warnings:
            warn(message, quiet)
        if not result.created:
            if not quiet:
                err.print(f"{name} is already in the cache (--force rebuilds it)", highlight=False,
                          soft_wrap=True)
        for role, (path, sha256) in result.files.items():
            typer.echo(f"{role}\t{path}\tsha256:{sha256}")
        typer.echo(f"{name}\t{result.path}")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="A .t7, the release .zip, a .npy/.npz dict, a "
                                              "PyTorch state dict or a safetensors file.",
                                         show_default=False)],
    labels: Annotated[Optional[list[str]], typer.Option(
        "--labels", "-l", help="Category file, one name per line, as HEAD=FILE or FILE "
        "(bare files go to objects, then scenes). Repeat for both heads.",
        show_default=False)] = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", "-n", help="Store in the cache under this name (default: the architecture, "
        "soundnet8 or soundnet5).", show_default=False)] = None,
    out_path: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the checkpoint here instead of into the cache.",
        show_default=False)] = None,
    fmt: Annotated[SourceFormat, typer.Option("--format", "-f",
                                              help="Source format.")] = SourceFormat.auto,
    arch: Annotated[Arch, typer.Option(
        "--arch", help="Insist on an architecture (and, for the release zip, pick its "
        "member).")] = Arch.auto,
    member: Annotated[Optional[str], typer.Option(
        "--member", help="The .t7 inside a zip archive (default: ARCH_final.t7).",
        show_default=False)] = None,
    input_scale: Annotated[float, typer.Option(
        "--input-scale", min=0.0, help="Stored input scale: 256 as the original's demo and "
        "feature scripts, 512 as its ESC-50/DCASE evaluation.")] = 256.0,
    overwrite: Annotated[bool, typer.Option("--overwrite",
                                            help="Replace an existing checkpoint.")] = False,
    weights_dir: WeightsDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Convert weights from another format into a soundnet-cli checkpoint.

    Checks every layer against SoundNet-8/5 geometry and refuses what does not fit; warns loudly
    when BatchNorm statistics are missing.
    """
    if name and out_path:
        raise typer.BadParameter("give --name or --out, not both", param_hint="--out")
    with user_errors():
        from ..weights.convert import import_network, label_files
        from ..weights.registry import cached_checkpoint, check_network_name

        if name is not None:
            check_network_name(name)  # before the (slow) import

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # printed below, once, on stderr
            result = import_network(
                file, fmt=fmt.value, arch=None if arch is Arch.auto else arch.value,
                labels=label_files(labels or []), member=member, input_scale=input_scale)
        for message in result.warnings:
            _loud(message, quiet)
        target = out_path or cached_checkpoint(name or result.model.config.arch, weights_dir)
        if target.exists() and not overwrite:
            fail(f"{target} exists; pass --overwrite to replace it")
        result.save(target)
        from ..weights.checkpoint import file_sha256

        typer.echo(f"{target}\tsha256:{file_sha256(target)}")
        if not out_path and not quiet:
            err.print(f"use it with --weights {target.stem}", highlight=False, soft_wrap=True)


@app.command("info")
def info_cmd(
    spec: Annotated[str, typer.Argument(help="A checkpoint file, or the name of a cached network.",
                                        metavar="FILE|NAME", show_default=False)],
    weights_dir: WeightsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Architecture, heads, labels, input scale, SHA-256 and provenance of a checkpoint."""
    with user_errors():
        from ..errors import WeightsError
        from ..weights.checkpoint import load_checkpoint
        from ..weights.convert import detect_format
        from ..weights.registry import read_header, resolve_weights

        path = resolve_weights(spec, weights_dir)
        try:
            ckpt = load_checkpoint(path)
        except WeightsError:
            kind = detect_format(path)
            if kind == "soundnet-cli":
                raise
            if kind == "torch":
                _refuse_run_state(path)
            fail(f"{path} is a {kind} file, not a soundnet-cli checkpoint; convert it with "
                 f"`soundnet weights import {path}`")
        model = ckpt.build()
        summary = _summary(ckpt, model, read_header(path).get("format_version"))
    if json_out:
        out.print_json(json.dumps(summary, default=str))
    else:
        _print_summary(summary)


@app.command("export")
def export_cmd(
    spec: Annotated[str, typer.Argument(help="A checkpoint file, or the name of a cached network "
                                        "('default': the embedded one).", metavar="FILE|NAME",
                                        show_default=False)],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Graph format.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write (.onnx, .pt).",
                                           dir_okay=False, show_default=False)],
    seconds: Annotated[float, typer.Option(
        "--seconds", min=0.0, help="Window: the graph's fixed input length.")] = 10.0,
    layers: Annotated[Optional[list[str]], typer.Option(
        "--layers", "-l", help="Outputs, comma-separated or repeated (conv5, pool5, a head, ...; "
        "default: every head).", show_default=False)] = None,
    check_audio: Annotated[Optional[list[Path]], typer.Option(
        "--check-audio", help="Real audio to compare the graph with PyTorch on (repeatable; "
        "default: a synthetic chirp), besides random noise.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
    weights_dir: WeightsDirOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write a fixed-window ONNX or TorchScript graph of the trunk and heads, checked against PyTorch.

    Input `waveform` (batch, samples) float32 at 22,050 Hz; one output per layer,
    (batch, channels, frames). The maximum difference from PyTorch on random and real input is
    printed; an export that differs is not written.
    """
    with user_errors():
        from ..weights.export import export_network
        from ..weights.registry import load_model

        if out_path.exists() and not overwrite:
            fail(f"{out_path} exists; pass --overwrite to replace it")
        model = load_model(spec, "cpu", cache_dir=weights_dir)
        names = [n.strip() for item in layers or [] for n in item.split(",") if n.strip()]
        result = export_network(model, out_path, fmt.value, seconds=seconds, layers=names or None,
                                check_audio=check_audio or ())
        from ..weights.checkpoint import file_sha256

        shapes = ", ".join(f"{n} (batch, {c}, {f})" for n, (c, f) in result.layers.items())
        if not quiet:
            err.print(f"waveform (batch, {result.samples}) -> {shapes}", highlight=False,
                      soft_wrap=True)
        for check in result.checks:
            err.print(f"checked against PyTorch on {check.input} input: max |difference| "
                      f"{check.max_abs:.3g} ({check.relative:.3g} of the activation scale)",
                      highlight=False, soft_wrap=True)
        if result.skipped:
            warn(result.skipped, quiet)
        typer.echo(f"{result.path}\tsha256:{file_sha256(result.path)}")


# ---------------------------------------------------------------------------------------------


def _refuse_run_state(path: Path) -> None:
    """Stop with advice when ``path`` is a run's ``state.pt`` (a torch file import cannot take)."""
    from ..weights.formats.safeload import load_torch
    from ..weights.formats.source import is_run_state, run_state_message

    try:
        state = load_torch(path)
    except Exception:  # unreadable: the generic message below says what it is
        return
    if is_run_state(state):
        fail(run_state_message(path))


def _summary(ckpt: Any, model: Any, version: Any) -> dict[str, Any]:
    from ..model import min_tag_samples

    config = ckpt.config
    return {
        "path": str(ckpt.path),
        "sha256": ckpt.sha256,
        "format_version": int(version) if version is not None else None,
        "arch": config.arch,
        "layers": [{"name": n, "channels": model.channels(n), "hop": model.geometry(n).hop}
                   for n in model.layer_names],
        "heads": [{"name": h.name, "classes": h.classes, "kernel": h.kernel, "stride": h.stride,
                   "padding": h.padding, "skip_last": h.skip_last, "min_conf": h.min_conf,
                   "labels": list(h.labels)}
                  for h in config.heads],
        "pooled_heads": [{"name": p.name, "classes": p.classes, "layer": p.layer,
                          "window": p.window, "stride": p.stride, "hidden": p.hidden,
                          "min_conf": p.min_conf, "labels": list(p.labels)}
                         for p in config.pooled_heads],
        "sample_rate": config.sample_rate,
        "input_scale": config.input_scale,
        "tile_seconds": config.tile_seconds,
        "tag_seconds": min_tag_samples(model) / config.sample_rate if config.heads else None,
        "bn_eps": config.bn_eps,
        "parameters": model.parameter_count(),
        "fingerprint": model.fingerprint,
        "provenance": ckpt.provenance,
    }


def _print_summary(s: dict[str, Any]) -> None:
    def row(key: str, value: str) -> None:
        out.print(f"{key:<12}{value}", highlight=False, markup=False, soft_wrap=True)

    row("file", s["path"])
    row("sha256", s["sha256"])
    row("format", f"soundnet-cli checkpoint, version {s['format_version']}")
    row("arch", s["arch"])
    row("layers", "  ".join(f"{layer['name']} {layer['channels']}" for layer in s["layers"]))
    for i, h in enumerate(s["heads"]):
        sample = ", ".join(h["labels"][:3]) + (", ..." if h["classes"] > 3 else "")
        skip = (f", skips the last {h['skip_last']} frame(s) of the trunk"
                if h.get("skip_last") else "")
        conf = f", default --min-conf {h['min_conf']:g}" if h.get("min_conf") is not None else ""
        row("heads" if i == 0 else "", f"{h['name']}: {h['classes']} labels ({sample}); "
            f"kernel {h['kernel']} stride {h['stride']} pad {h['padding']}{skip}{conf}")
    for p in s.get("pooled_heads", []):
        sample = ", ".join(p["labels"][:3]) + (", ..." if p["classes"] > 3 else "")
        conf = f", default --min-conf {p['min_conf']:g}" if p.get("min_conf") is not None else ""
        mlp = f"MLP {p['hidden']} hidden" if p["hidden"] else "linear"
        row("", f"{p['name']}: {p['classes']} labels ({sample}); {p['layer']} mean+max over "
            f"{p['window']} frames every {p['stride']}, {mlp}{conf}")
    tag = (f", clips shorter than {s['tag_seconds']:.2f} s are looped to that length for "
           "tagging" if s.get("tag_seconds") else "")
    row("input", f"{s['sample_rate']} Hz, scale {s['input_scale']:g}{tag}")
    p = s["parameters"]
    row("parameters", f"{p['total']:,} (trunk {p['trunk']:,}, heads {p['heads']:,})")
    row("fingerprint", s["fingerprint"])
    prov = json.dumps(_condensed(s["provenance"]), indent=2, sort_keys=True,
                      default=str).splitlines()
    for i, line in enumerate(prov):
        row("provenance" if i == 0 else "", line)


def _condensed(value: Any, depth: int = 0) -> Any:
    """Provenance for people: a training-data record's clip fingerprints (the trunk's, or a
    head's) become a count; one line per training clip would bury the rest (``--json`` has
    them all)."""
    if depth > 8:
        return value
    if isinstance(value, dict):
        out = {k: _condensed(v, depth + 1) for k, v in value.items()}
        prints = value.get("fingerprints")
        if isinstance(prints, list):
            out["fingerprints"] = (f"{len(prints)} clip fingerprints "
                                   f"({value.get('fingerprint')}; --json lists them)")
        return out
    return value


def _loud(message: str, quiet: bool) -> None:
    """Missing BatchNorm statistics must not scroll by unnoticed, even with --quiet."""
    if message.startswith("BATCHNORM"):
        from rich.markup import escape

        err.print(f"[bold red]WARNING:[/] {escape(message)}", highlight=False, soft_wrap=True)
    else:
        warn(message, quiet)


class _download_bars:
    """Rich download bars on stderr, one per file: a ``progress(name, done, total)`` callable."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=err, disable=quiet)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> "_download_bars":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, completed=done)
        else:
            self.progress.update(self.tasks[name], completed=done, total=total)
