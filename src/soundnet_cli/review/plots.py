"""Pictures of findings: precision-recall curves per class, detections over clock time.

Need matplotlib (``pip install 'soundnet-cli[plot]'``); PNGs are written atomically with the
provenance in their text chunks (:func:`soundnet_cli.plot.save_figure`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .evaluate import EvalReport


def pr_curves(report: "EvalReport", folder: Path) -> dict[str, Path]:
    """One PNG per class with a curve: precision against recall, the run's threshold and the
    chosen one marked. Returns ``{"pr:CLASS": path}``."""
    from ..plot import _pyplot, save_figure

    plt = _pyplot()
    written = {}
    for label, units in report.classes.items():
        unit = next((u for u in ("steps", "verdicts", "clips") if u in units), None)
        scores = units.get(unit) if unit else None
        if not scores or not scores.get("curve"):
            continue
        curve = scores["curve"]
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
        ax.step(curve["recall"], curve["precision"], where="post", color="#2f6fdb")
        at = scores.get("at_threshold") or {}
        if at.get("precision") is not None and at.get("recall") is not None:
            ax.plot(at["recall"], at["precision"], "o", color="#d9480f",
                    label=f"run threshold {at['threshold']:.2f}")
        chosen = report.thresholds.get(label) or {}
        if chosen.get("threshold") is not None:
            ax.plot(chosen["recall"], chosen["precision"], "s", color="#2b8a3e",
                    label=f"{chosen['how']}: {chosen['threshold']:.3f}")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
               title=f"{label} ({unit}): AP {scores['ap']:.3f}")
        ax.legend(loc="lower left", frameon=False)
        path = folder / f"{_safe(label)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        written[f"pr:{label}"] = save_figure(fig, path, {"evaluation": report.settings}, dpi=120)
    return written


def activity_figure(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Detections per hour of day (0-23), one line per class, from :func:`.timeinfo.per_hour`
    rows (``hour_of_day``, ``class``, ``detections``)."""
    from ..plot import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    classes = sorted({r["class"] for r in rows})
    for label in classes:
        counts = [0] * 24
        for r in rows:
            if r["class"] == label:
                counts[int(r["hour_of_day"])] += int(r["detections"])
        ax.plot(range(24), counts, marker="o", ms=3, label=label)
    ax.set(xlabel="hour of day", ylabel="detections", xticks=range(0, 24, 3), title=title)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if classes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path, None, dpi=120)


def _safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "_"
