"""``soundnet evaluate OUT --truth ANNOTATIONS``: a run's scores against annotations or verdicts,
and per-class thresholds for ``tag --min-conf @thresholds.csv``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import QuietOpt, doc, err, user_errors, warn


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A `soundnet tag --out` folder, tagged with "
                                            "--format scores for annotations with times.",
                                            show_default=False)],
    truth: Annotated[Path, typer.Option(
        "--truth", "-t", show_default=False,
        help="Raven selection table(s), Audacity label file(s), a CSV file,onset,offset,label "
        "or file,label, a folder of them, or a clips.csv with verdicts.")],
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", file_okay=False, show_default="OUT/evaluation",
        help="Where report.json, thresholds.csv and pr/*.png go.")] = None,
    target_precision: Annotated[Optional[float], typer.Option(
        "--target-precision", show_default="best F1",
        help="Per class, choose the lowest threshold whose precision reaches this.")] = None,
    collar: Annotated[Optional[float], typer.Option(
        "--collar", min=0.0, show_default="the head's hop",
        help="Event-based scores: seconds an onset may differ from the annotation's.")] = None,
    segment: Annotated[float, typer.Option(
        "--segment", min=0.001, help="Segment-based scores: segment length in seconds.")] = 1.0,
    head: Annotated[Optional[str], typer.Option(
        "--head", show_default="any head with the label",
        help="Match annotation labels to this head's labels only.")] = None,
    all_inputs: Annotated[bool, typer.Option(
        "--all-inputs", help="Count the run's inputs that no annotation names as holding "
        "nothing (default: evaluate annotated inputs only).")] = False,
    label_column: Annotated[Optional[str], typer.Option(
        "--label-column", show_default="Annotation, Label, Class, Species, ...",
        help="Raven tables: the column holding the label.")] = None,
    plot: Annotated[Optional[bool], typer.Option(
        "--plot/--no-plot", show_default="on when matplotlib is installed",
        help="Precision-recall curve per class (pr/CLASS.png).")] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="The report as JSON on stdout instead of the table.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Score a run against annotations or verdicts, and choose a threshold per class.

    Per class and overall: average precision, ROC AUC, precision/recall/F1 at the run's
    thresholds, event- and segment-based F1, and the threshold reaching --target-precision.

    Writes OUT/evaluation/report.json, thresholds.csv (give it to `soundnet tag --min-conf
    @thresholds.csv`) and PR curves; prints one line per class (tab-separated) to stdout.
    """
    import importlib.util

    from ..review.evaluate import EvalOptions, evaluate_run, write_report
    from ..review.rundir import open_run
    from ..review.truth import read_truth

    if plot is None:
        plot = importlib.util.find_spec("matplotlib") is not None
    with user_errors():
        options = EvalOptions(collar=collar, segment=segment, target_precision=target_precision,
                              head=head, all_inputs=all_inputs)
        run = open_run(run_dir)
        annotations = read_truth(truth, label_column=label_column)
        for message in annotations.skipped:
            warn(message, quiet)
        report = evaluate_run(run, annotations, options)
        written = write_report(report, out_dir or run.out_dir / "evaluation", plots=plot)
    for name in report.unmatched_files:
        warn(f"annotated file {name} is not an input of the run; left out", quiet)
    for label in report.unknown_labels:
        warn(f"annotated label {label!r} is not a label of the run's heads; left out", quiet)
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict(), allow_nan=False) + "\n")
    else:
        _print_table(report)
    if not quiet:
        err.print(f"report: {written['report']}; thresholds: {written['thresholds']}"
                  + (f"; {sum(k.startswith('pr:') for k in written)} PR curve(s)" if plot else ""),
                  highlight=False, soft_wrap=True)


COLUMNS = ("class", "unit", "items", "positives", "ap", "roc_auc", "threshold", "precision",
           "recall", "f1", "event_f1", "segment_f1", "chosen_threshold")


def _print_table(report: Any) -> None:
    """Tab-separated: one row per class (the main unit), then ``overall``."""
    def f(x: Any) -> str:
        return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    lines = ["\t".join(COLUMNS)]
    unit = report.overall["unit"]
    for label, units in report.classes.items():
        s = units[unit]
        at = s["at_threshold"] or {}
        lines.append("\t".join(f(x) for x in (
            label, unit, s["items"], s["positives"], s["ap"], s["roc_auc"], at.get("threshold"),
            at.get("precision"), at.get("recall"), at.get("f1"),
            (units.get("events") or {}).get("f1"), (units.get("segments") or {}).get("f1"),
            report.thresholds[label]["threshold"])))
    o = report.overall
    lines.append("\t".join(f(x) for x in (
        "overall", unit, "", "", o.get("mean_ap"), o.get("mean_roc_auc"), "", "", "", "",
        (o.get("events") or {}).get("f1"), (o.get("segments") or {}).get("f1"), "")))
    sys.stdout.write("\n".join(lines) + "\n")


evaluate.__doc__ = f"{evaluate.__doc__}\n\n    Reference: {doc('review.md')}\n"
