"""``soundnet fit-svm``: cross-validate and fit a linear SVM on a layer's features."""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..runtime.options import BATCH_SIZE, RunOptions
from .common import (
    EXIT_USAGE,
    BatchOpt,
    DeviceOpt,
    QuietOpt,
    WeightsOpt,
    WorkersOpt,
    choose_shard,
    err,
    fail,
    make_progress,
    out,
    report_failures,
    user_errors,
    warn,
)

if TYPE_CHECKING:
    from ..datasets import Dataset
    from ..svm.features import FeatureSet
    from ..svm.report import CVReport


class ProtocolName(str, Enum):
    pooled = "pooled"
    paper = "paper"


class Solver(str, Enum):
    newton = "newton"
    liblinear = "liblinear"


class Layout(str, Enum):
    auto = "auto"
    esc50 = "esc50"
    folders = "folders"
    csv = "csv"


DatasetArg = Annotated[Optional[Path], typer.Argument(
    help="Dataset directory (ESC-50 style or one folder per class).", show_default=False)]
LayoutOpt = Annotated[Layout, typer.Option("--layout", help="Dataset layout.")]
LabelsOpt = Annotated[Optional[Path], typer.Option(
    "--labels", help="CSV with columns path,label[,fold] (paths relative to it or DATASET).",
    show_default=False)]
LayerOpt = Annotated[str, typer.Option("--layer", "-l", help="Feature layer: name or original "
                                   "module number.")]
ProtocolOpt = Annotated[ProtocolName, typer.Option(
    "--protocol", "-p", help="paper: the original ESC-50 evaluation; pooled: mean+max "
    "per clip, C by inner CV.")]
COpt = Annotated[float, typer.Option("--C", "-C",
                                 help="SVM C of the paper protocol.")]
CGridOpt = Annotated[str, typer.Option(
    "--c-grid", help="Comma-separated C candidates of the pooled protocol.")]
SolverOpt = Annotated[Solver, typer.Option(
    "--solver", help="newton: all classes at once in dense products (fast, any core "
    "count); liblinear: sklearn's LinearSVC. Same objective, same solution.")]
MaxIterOpt = Annotated[Optional[int], typer.Option(
    "--max-iter", min=1, help="Solver iteration limit (default: 50 Newton or 2000 "
    "liblinear iterations).", show_default=False)]
FoldsOpt = Annotated[Optional[int], typer.Option(
    "--folds", "-k", min=2, help="Stratified k-fold when the dataset has no folds "
    "(default 5).", show_default=False)]
TestFoldOpt = Annotated[Optional[list[int]], typer.Option(
    "--test-fold", help="Only hold out these predefined folds (repeatable), each trained on "
    "all the others: e.g. the folds the network was not trained on.",
    show_default=False)]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of k-fold shuffling and liblinear.")]
JobsOpt = Annotated[int, typer.Option("--jobs", help="Folds fitted in parallel (-1: all cores).")]
JsonOutOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
OutPathOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Fit on all clips and save the SVM here (.npz).",
    show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")]
PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Write the cross-validation's confusion matrix to this PNG (needs "
    "matplotlib).", dir_okay=False, show_default=False)]
CacheDirOpt = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Feature cache (default: <soundnet cache>/features).",
    show_default=False)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the "
                                       "feature cache.")]
InputScaleOpt = Annotated[Optional[float], typer.Option(
    "--input-scale", help="Scale of [-1, 1] audio (default: the "
    "network's, 256); the original ESC-50 evaluation used 512.", show_default=False)]
AllowMissingOpt = Annotated[bool, typer.Option(
    "--allow-missing", help="Go on without files the metadata lists but that are absent.")]
AllowSeenOpt = Annotated[bool, typer.Option(
    "--allow-seen", help="Keep test clips the network was trained on (its checkpoint's "
    "training-data record) instead of excluding them; every affected figure is then "
    "reported as contaminated.")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", metavar="I/N", show_default=False,
    help="Feature pass only: compute and cache the features of shard I of N of the clips "
    "(sorted by path, every N-th from the I-th) and exit without fitting; once every shard "
    "is done, fit-svm without --shard finds all features cached. Default: from SLURM "
    "(SLURM_ARRAY_TASK_ID/COUNT) or torchrun (RANK/WORLD_SIZE); --shard wins.")]
FilesFromOpt = Annotated[Optional[str], typer.Option(
    "--files-from", metavar="LIST", show_default=False,
    help="Use only the dataset's clips listed in LIST, one path per line ('-': standard "
    "input; relative to the current directory); a listed file the dataset lacks is an "
    "error.")]


def fit_svm_command(
    dataset: DatasetArg = None,
    layout: LayoutOpt = Layout.auto,
    labels: LabelsOpt = None,
    layer: LayerOpt = "pool5",
    protocol: ProtocolOpt = ProtocolName.pooled,
    c: COpt = 0.01,
    c_grid: CGridOpt = "0.0001,0.001,0.01,0.1",
    solver: SolverOpt = Solver.newton,
    max_iter: MaxIterOpt = None,
    folds: FoldsOpt = None,
    test_fold: TestFoldOpt = None,
    seed: SeedOpt = 0,
    jobs: JobsOpt = 1,
    json_out: JsonOutOpt = False,
    out_path: OutPathOpt = None,
    overwrite: OverwriteOpt = False,
    plot: PlotOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = BATCH_SIZE,
    workers: WorkersOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    input_scale: InputScaleOpt = None,
    allow_missing: AllowMissingOpt = False,
    allow_seen: AllowSeenOpt = False,
    shard: ShardOpt = None,
    files_from: FilesFromOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Cross-validate a linear SVM on a SoundNet layer and optionally save it fit on all data.

    With --shard (or under a SLURM job array or torchrun) only the features of that shard's clips are computed into the cache, and nothing is fitted.
    """
    from ..datasets import cv_splits
    from ..svm.protocol import SvmProtocol

    if out_path is not None and out_path.exists() and not overwrite:
        fail(f"{out_path} exists; pass --overwrite to replace it", EXIT_USAGE)
    grid = _parse_grid(c_grid)
    with user_errors():
        part = choose_shard(shard)
        if part is not None and no_cache:
            raise typer.BadParameter("a shard computes features into the cache for a later "
                                     "fit; drop --no-cache", param_hint="--shard")
        proto = SvmProtocol(protocol.value, C=c, c_grid=grid, input_scale=input_scale,
                         solver=solver.value, max_iter=max_iter)
        ds = _load(dataset, layout.value, labels, allow_missing, folds, quiet)
        if files_from is not None:
            ds = _only_listed(ds, files_from, quiet)
        splits = cv_splits(ds, folds or 5, seed=seed, test_folds=test_fold)  # bad folds fail early
        model = _network(weights, device, ds, splits, allow_seen)
        if part is not None:
            raise typer.Exit(_feature_shard(model, ds, part, layer, proto, cache_dir, workers,
                                            batch_size, quiet))
        started = time.perf_counter()
        options = RunOptions.plan(next(model.parameters()).device, len(ds), workers=workers,
                                  batch_size=batch_size)
        features = _features(model, ds, layer, proto, cache_dir, not no_cache, options, quiet)
        feature_seconds = time.perf_counter() - started
        for note in features.warnings:
            warn(note, quiet)
        check = _seen_check(model, features, allow_seen, quiet)
        report, cv_seconds = _cross_validate(features, proto, folds, seed, jobs, quiet, test_fold,
                                             model.provenance, allow_seen)
        saved = _save_final(features, proto, report, seed, out_path, model, quiet)
        if plot is not None:
            _plot_confusion(report, plot, ds, layer, model, quiet)
    summary = _summary(ds, features, proto, report, model, saved,
                       {"features": feature_seconds, "cross_validation": cv_seconds}, check)
    if json_out:
        typer.echo(json.dumps(summary, indent=2, allow_nan=False, default=_json_default))
    else:
        _print_report(summary, report)
    raise typer.Exit(report_failures([(str(p), m) for p, m in features.failures], quiet))


def _network(weights: Any, device: str, ds: Any, splits: Any, allow_seen: bool) -> Any:
    """The network, checked against the test clips: one that has seen every test clip fails
    here, before any feature is computed."""
    from ..provenance import exclude_seen, seen_mask
    from ..shards.partition import device_for_rank
    from ..weights.registry import load_model

    model = load_model(weights, device_for_rank(device), option="--weights")
    exclude_seen(splits, seen_mask(model.provenance, ds), allow_seen=allow_seen, dataset=ds)
    return model


def _plot_confusion(report: "CVReport", path: Path, ds: Any, layer: str, model: Any,
                    quiet: bool) -> None:
    from ..plot import confusion_figure, save_figure

    name = Path(model.source).stem if model.source else "network"
    provenance = {"network": {"name": name, "fingerprint": model.fingerprint}, "layer": layer,
                  "accuracy": {"mean": report.mean, "std": report.std,
                               "contaminated": report.contaminated,
                               "excluded_seen": report.excluded}}
    title = f"{Path(ds.root).name}, {layer} ({name})" + (
        ", CONTAMINATED: tested on training clips" if report.contaminated else "")
    save_figure(confusion_figure(report, title=title), path, provenance)
    if not quiet:
        err.print(f"confusion matrix: {path}", highlight=False, soft_wrap=True)


def _parse_grid(text: str) -> tuple[float, ...]:
    try:
        grid = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}",
                                 param_hint="--c-grid") from None
    if not grid or any(not v > 0 for v in grid):
        raise typer.BadParameter("C values must be positive", param_hint="--c-grid")
    return grid


def _load(root: Optional[Path], layout: str, labels: Optional[Path], allow_missing: bool,
          folds: Optional[int], quiet: bool) -> "Dataset":
    from ..datasets import load_dataset
    from ..errors import DatasetError

    if root is None and labels is None:
        fail("give a DATASET directory or --labels FILE.csv", EXIT_USAGE)
    ds = load_dataset(root, layout=layout, labels_csv=labels)
    if ds.missing:
        shown = ", ".join(str(p) for p in ds.missing[:5])
        more = f" and {len(ds.missing) - 5} more" if len(ds.missing) > 5 else ""
        if not allow_missing:
            raise DatasetError(f"{len(ds.missing)} file(s) listed in the metadata do not exist: "
                               f"{shown}{more} (pass --allow-missing to go on without them)")
        warn(f"going on without {len(ds.missing)} missing file(s): {shown}{more}", quiet)
    if ds.outside:
        warn(f"{len(ds.outside)} file(s) listed in {labels or root} lie outside its directory, "
             f"e.g. {ds.outside[0]}; they are used as listed", quiet)
    if folds is not None and ds.folds is not None:
        warn(f"{ds.root} defines its own folds; --folds {folds} is ignored", quiet)
    if not quiet:
        nfolds = len(set(ds.folds.tolist())) if ds.folds is not None else None
        err.print(f"{ds.root}: {len(ds)} clips, {len(ds.classes)} classes ({ds.layout} layout"
                  + (f", {nfolds} predefined folds)" if nfolds else ")"), highlight=False)
    return ds


def _only_listed(ds: "Dataset", files_from: str, quiet: bool) -> "Dataset":
    """The clips of ``ds`` that ``--files-from`` lists (matched by resolved path)."""
    from ..errors import DatasetError
    from ..shards.partition import read_files_from

    wanted = {p.resolve() for p in read_files_from(files_from)}
    index = [i for i, p in enumerate(ds.paths) if p.resolve() in wanted]
    extra = sorted(wanted - {ds.paths[i].resolve() for i in index})
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise DatasetError(f"--files-from {files_from}: {len(extra)} listed file(s) are not "
                           f"clips of {ds.root}: {', '.join(map(str, extra[:3]))}{more}")
    if not quiet:
        err.print(f"--files-from: {len(index)} of {len(ds)} clips", highlight=False)
    return ds.subset(index)


def _feature_shard(model: Any, ds: "Dataset", part: Any, layer: str, proto: Any,
                   cache_dir: Optional[Path], workers: Optional[int], batch_size: int,
                   quiet: bool) -> int:
    """Compute and cache the features of shard ``part``'s clips; the exit code (1 when a clip
    failed). Nothing is fitted."""
    from ..shards.partition import describe, input_key, select

    index = sorted(select(range(len(ds)), part, key=lambda i: input_key(ds.paths[i])))
    sub = ds.subset(index)
    if not quiet:
        err.print(describe(part, len(sub), len(ds)) + " (clips; feature pass only, no SVM "
                  "is fitted)", highlight=False, soft_wrap=True)
    if not len(sub):
        return 0
    options = RunOptions.plan(next(model.parameters()).device, len(sub), workers=workers,
                              batch_size=batch_size)
    features = _features(model, sub, layer, proto, cache_dir, True, options, quiet)
    for note in features.warnings:
        warn(note, quiet)
    out.print(f"{part}: features of {len(features.dataset)} of {len(sub)} clip(s) cached "
              f"({features.cached} were already); no SVM fitted: once every shard is done, run "
              "fit-svm without --shard", highlight=False, soft_wrap=True)
    return report_failures([(str(p), m) for p, m in features.failures], quiet)


def _features(model: Any, ds: "Dataset", layer: str, proto: Any, cache_dir: Optional[Path],
              use_cache: bool, options: RunOptions, quiet: bool) -> "FeatureSet":
    from ..svm.features import extract_features

    name = model.resolve_layers([layer])[0]
    with make_progress(quiet) as progress:
        task = progress.add_task(f"features {name}", total=len(ds), audio="", rate="")
        result = extract_features(
            model, ds, [name], proto, cache_dir=cache_dir, use_cache=use_cache, options=options,
            progress=lambda n: progress.advance(task, n),
        )
    features = result[name]
    if features.cached and not quiet:
        err.print(f"{features.cached} of {len(ds)} clips' features read from the cache")
    return features


def _seen_check(model: Any, features: "FeatureSet", allow_seen: bool, quiet: bool) -> Any:
    """How many of the clips the network was trained on, and say what happens to them."""
    from ..provenance import SeenCheck, TrainingData, seen_mask

    record = TrainingData.from_provenance(model.provenance)
    mask = seen_mask(model.provenance, features.dataset)
    check = SeenCheck(record, int(mask.sum()) if mask is not None else 0, allow_seen)
    if check.seen and record is not None:
        what = (f"{check.seen} of {len(features.dataset)} clips are in the network's training "
                f"data ({record.dataset!r}, {len(record.fingerprints)} clips)")
        warn(f"{what}: kept in the test folds (--allow-seen); their figures are contaminated"
             if allow_seen else f"{what}: excluded from the test folds (they still train the "
             "SVM); --allow-seen keeps them", quiet)
    return check


def _cross_validate(features: "FeatureSet", proto: Any, folds: Optional[int], seed: int,
                    jobs: int, quiet: bool, test_folds: Optional[list[int]] = None,
                    provenance: Any = None,
                    allow_seen: bool = False) -> tuple["CVReport", float]:
    from ..datasets import cv_splits
    from ..provenance import exclude_seen, seen_mask
    from ..svm.fit import cross_validate

    ds = features.dataset
    splits = exclude_seen(cv_splits(ds, folds or 5, seed=seed, test_folds=test_folds),
                          seen_mask(provenance, ds), allow_seen=allow_seen, dataset=ds)
    started = time.perf_counter()
    # On a terminal a bar; otherwise one line per fold (below), not the bar's last frame too.
    with make_progress(quiet or not err.is_terminal) as progress:
        task = progress.add_task("cross-validation (folds)",
                                 total=sum(s.test.size > 0 for s in splits), audio="", rate="")

        def on_fold(fold: Any) -> None:
            progress.update(task, advance=1,
                            audio=f"{fold.name}: {fold.accuracy:.1%}", rate=f"C={fold.C:g}")
            if not quiet and not err.is_terminal:  # a log, not a bar, when stderr is a file
                err.print(f"{fold.name}: accuracy {fold.accuracy:.1%}"
                          + (" contaminated" if fold.contaminated else "") + f" (C={fold.C:g}, "
                          f"{fold.n_train} train / {fold.n_test} test clips, "
                          f"{fold.seconds:.1f} s)", highlight=False)

        report = cross_validate(features, proto, splits, seed=seed, jobs=jobs, on_fold=on_fold)
    unconverged = [f.name for f in report.folds if not f.converged]
    if unconverged:
        warn(f"the {proto.solver} solver did not converge in {', '.join(unconverged)} "
             f"(--max-iter {proto.iterations}); accuracy may be slightly off", quiet)
    return report, time.perf_counter() - started


def _save_final(features: "FeatureSet", proto: Any, report: "CVReport", seed: int,
                out_path: Optional[Path], model: Any, quiet: bool) -> Optional[Path]:
    from .._version import __version__
    from ..svm.fit import fit_svm

    if out_path is None:
        return None
    info = {"dataset": str(features.dataset.root), "layout": features.dataset.layout,
            "weights": model.source, "soundnet_cli": __version__,
            "cv_accuracy": {"mean": report.mean, "std": report.std, "folds": len(report.folds),
                            "contaminated": report.contaminated,
                            "excluded_seen": report.excluded},
            "seed": seed}
    with err.status("fitting the final model on all clips…") if not quiet else nullcontext():
        svm = fit_svm(features, proto, seed=seed, info=info)
    svm.save(out_path)
    if not quiet:
        err.print(f"saved {out_path} (C={svm.C:g})", highlight=False)
    return out_path


def _summary(ds: "Dataset", features: "FeatureSet", proto: Any, report: "CVReport", model: Any,
             saved: Optional[Path], seconds: dict[str, float], check: Any) -> dict[str, Any]:
    key = features.key
    return {
        "dataset": {"root": str(ds.root), "layout": ds.layout, "clips": len(ds),
                    "classes": len(ds.classes), "used_clips": len(features.dataset),
                    "missing": [str(p) for p in ds.missing],
                    "failed": [{"path": str(p), "error": m} for p, m in features.failures]},
        "weights": {"source": model.source, "fingerprint": key.fingerprint},
        "seen": check.to_dict(),
        "layer": key.layer, "input_scale": key.input_scale,
        "protocol": proto.to_dict(), "window_frames": features.window,
        "frames_per_clip": sorted({a.shape[0] for a in features.activations}),
        **report.to_dict(),
        "model": str(saved) if saved else None,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "cached_clips": features.cached,
    }


def _print_report(summary: dict[str, Any], report: "CVReport") -> None:
    from rich.table import Table

    folds = Table(title=f"{summary['layer']} · {summary['protocol']['name']} protocol",
                  title_justify="left")
    checked = summary["seen"]["seen_clips"] > 0
    allowed = summary["seen"]["policy"].startswith("kept")
    counted = ("seen",) if allowed else ("excluded",)
    for col in ("fold", "train", "test", *(counted if checked else ()), "C", "accuracy"):
        folds.add_column(col, justify="left" if col == "fold" else "right")
    dirty = " [bold red]contaminated[/]"
    rows: list[tuple[int, list[str]]] = []
    for f in report.folds:
        rows.append((f.test_fold or 0, [f.name, str(f.n_train), str(f.n_test),
                                   *((str(f.seen if allowed else f.excluded),) if checked else ()),
                                   f"{f.C:g}",
                                   f"{f.accuracy:.1%}" + (dirty if f.contaminated else "")]))
    for k in report.skipped:
        rows.append((k.test_fold or 0, [k.name, "", "0", str(k.excluded), "", "not tested"]))
    rows.sort(key=lambda r: r[0])  # predefined folds in their order (k-fold: stable, all 0)
    for _, row in rows:
        folds.add_row(*row)
    folds.add_row("[bold]mean ± std", "", "", *(("",) if checked else ()), "",
                  f"[bold]{report.mean:.1%} ± {report.std:.1%}"
                  + (dirty if report.contaminated else ""))
    out.print(folds)
    if report.contaminated:
        out.print("contaminated: the test folds hold clips the network was trained on "
                  "(--allow-seen); these figures do not measure unseen data", highlight=False)
    elif report.excluded:
        out.print(f"excluded: {report.excluded} test clip(s) the network was trained on (its "
                  "training-data record); they still train the SVM", highlight=False)
    per_class = Table(title="per-class accuracy (worst first)"
                      + (", contaminated" if report.contaminated else ""), title_justify="left")
    per_class.add_column("class")
    per_class.add_column("accuracy", justify="right")
    tested = {c: a for c, a in report.per_class().items() if a == a}  # NaN: no clip tested
    for name, acc in sorted(tested.items(), key=lambda kv: (kv[1], kv[0])):
        per_class.add_row(name, f"{acc:.1%}")
    out.print(per_class)
    pairs = report.confused_pairs()
    if pairs:
        confused = Table(title="most confused (true → predicted)", title_justify="left")
        for col in ("true", "predicted", "clips"):
            confused.add_column(col, justify="right" if col == "clips" else "left")
        for t, p, n in pairs:
            confused.add_row(t, p, str(n))
        out.print(confused)
    if summary["model"]:
        out.print(f"model saved to {summary['model']}", highlight=False)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
