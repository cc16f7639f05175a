"""Pictures: a tagged file's spectrogram and score timeline, and an SVM's confusion matrix.

Needs matplotlib (``pip install 'soundnet-cli[plot]'``); imported only when a picture is asked
for, with the non-interactive Agg backend, so it works on servers without a display. Every PNG
carries its provenance in its text chunks (``Software``, and ``Description`` holding the JSON
provenance) and in a footer line.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from .audio import SilentAudioWarning
from .errors import SoundNetError
from .files.fsutil import atomic_path
from .tagging.events import DetectOptions, detect, step_intervals

if TYPE_CHECKING:
    from .svm.report import CVReport
    from .tagging.results import TagResult

#: Files longer than this (seconds) are read in blocks for the spectrogram, never whole.
WHOLE_FILE_SECONDS = 600.0
#: Labels drawn per head (event lanes, score lines, legend): those with the most event time,
#: then the clip's best. Events of any other label share one grey lane ("other labels").
MAX_PLOTTED_LABELS = 5
#: Files longer than this (seconds) get the overview layout: per-step scores as the maximum
#: over about :data:`OVERVIEW_BINS` bins, a wider figure, and time as h:mm:ss.
LONG_PLOT_SECONDS = 600.0
OVERVIEW_BINS = 720
_N_FFT = 1024
_COLUMNS = 1600


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise SoundNetError("plots need matplotlib: pip install 'soundnet-cli[plot]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8,
                         "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def spectrogram(blocks: Iterable[np.ndarray], samples: int, columns: int = _COLUMNS,
                n_fft: int = _N_FFT) -> tuple[np.ndarray, int]:
    """Power spectrogram in dB of a signal given as blocks, without holding the signal.

    Returns ``(frames, n_fft // 2 + 1)`` float32 dB (relative to the loudest bin) and the hop in
    samples, chosen so that about ``columns`` frames cover ``samples`` samples.
    """
    hop = max(n_fft // 4, samples // columns)
    window = np.hanning(n_fft).astype(np.float32)
    carry = np.zeros(0, np.float32)
    rows = []
    for block in blocks:
        carry = np.concatenate([carry, np.asarray(block, np.float32)])
        if carry.shape[0] < n_fft:
            continue
        m = 1 + (carry.shape[0] - n_fft) // hop
        idx = np.arange(n_fft)[None, :] + hop * np.arange(m)[:, None]
        rows.append(np.abs(np.fft.rfft(carry[idx] * window, axis=1)) ** 2)
        carry = carry[m * hop:]
    if not rows:
        return np.full((1, n_fft // 2 + 1), -100.0, np.float32), hop
    power = np.concatenate(rows).astype(np.float64)
    db = 10 * np.log10(np.maximum(power, 1e-12) / max(power.max(), 1e-12))
    return np.maximum(db, -90.0).astype(np.float32), hop


def _audio_blocks(path: Path, duration: float, rate: int) -> Iterable[np.ndarray]:
    from .audio import iter_audio_blocks, load_audio

    if duration <= WHOLE_FILE_SECONDS:
        return [load_audio(path, sample_rate=rate)]
    return iter_audio_blocks(path, 60.0, sample_rate=rate)


def tag_figure(result: "TagResult", *, detect_options: DetectOptions | None = None,
               top_k: int = 5, provenance: dict[str, Any] | None = None,
               sample_rate: int = 22_050, audio: Iterable[np.ndarray] | None = None) -> Any:
    """A matplotlib figure of one tagged file: its spectrogram on top, then per head the
    per-step scores of its best labels, the threshold, and the detected events shaded.

    ``audio`` (blocks of mono samples at ``sample_rate``) defaults to decoding ``result.path``.
    """
    plt = _pyplot()
    options = detect_options or DetectOptions()
    found = detect(result, options, top_k)
    chosen = [_colors(head, det) for head, det in zip(result.heads, found)]
    lanes = [_lane_count(det, colors) for det, colors in zip(found, chosen)]
    ratios = [1.0]
    for n_lanes in lanes:
        ratios += [0.12 + 0.11 * max(n_lanes, 1), 1.15]
    long = result.duration > LONG_PLOT_SECONDS
    fig, axes = plt.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios},
                             figsize=(10.0 if long else 7.0, 0.9 + 1.1 * sum(ratios)))
    duration = max(result.duration, 1e-3)
    samples = int(round(duration * sample_rate))
    with warnings.catch_warnings():  # tagging already said it is silent; once is enough
        warnings.simplefilter("ignore", SilentAudioWarning)
        blocks = audio if audio is not None else _audio_blocks(result.path, duration, sample_rate)
        db, hop = spectrogram(blocks, samples)
    ax = axes[0]
    ax.imshow(db.T, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
              extent=(0.0, db.shape[0] * hop / sample_rate, 0.0, sample_rate / 2000),
              interpolation="nearest", rasterized=True)
    ax.set_ylabel("kHz")
    note = f", tiled to {result.analysed_duration:.2f} s" if result.tiled else ""
    length = clock(result.duration) if long else f"{result.duration:.2f} s"
    # A file name that is not UTF-8 holds surrogate escapes no font can draw: shown with U+FFFD.
    name = os.fsencode(result.path.name).decode("utf-8", errors="replace")
    ax.set_title(f"{name}  ({length}{note})", loc="left")
    for k, (head, det) in enumerate(zip(result.heads, found)):
        _lanes(axes[1 + 2 * k], det, chosen[k])
        _timeline(axes[2 + 2 * k], head, det, result, chosen[k], long)
    axes[-1].set_xlim(0.0, duration)
    if long:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 6, 10]))
        axes[-1].xaxis.set_major_formatter(FuncFormatter(lambda t, _: clock(t)))
        axes[-1].set_xlabel("time (h:mm:ss)")
    else:
        axes[-1].set_xlabel("time (s)")
    if provenance:
        net = provenance.get("network", {})
        fig.text(0.01, 0.005, f"soundnet-cli {provenance.get('soundnet_cli', '')} · network "
                 f"{net.get('name', '')} ({str(net.get('fingerprint', ''))[:12]}) · settings "
                 f"{provenance.get('settings_id', '')}", fontsize=6, color="0.45", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if provenance else 0, 1, 1), h_pad=0.4)
    return fig


def clock(seconds: float) -> str:
    """``h:mm:ss`` (``mm:ss`` under an hour) for an axis tick."""
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _colors(head: Any, det: Any) -> dict[int, str]:
    """A colour per drawn label, at most :data:`MAX_PLOTTED_LABELS`: the labels with the most
    event time, then the clip's best."""
    event_time: dict[int, float] = {}
    for e in det.events:
        event_time[e.index] = event_time.get(e.index, 0.0) + e.end - e.start
    shown = sorted(event_time, key=lambda j: (-event_time[j], j))[:MAX_PLOTTED_LABELS]
    shown += [lab.index for lab in head.top_k(MAX_PLOTTED_LABELS) if lab.index not in shown]
    return {j: f"C{k % 10}" for k, j in enumerate(shown[:MAX_PLOTTED_LABELS])}


def _lane_count(det: Any, colors: dict[int, str]) -> int:
    labels = {e.index for e in det.events}
    return len(labels & set(colors)) + bool(labels - set(colors))


def _lanes(ax: Any, det: Any, colors: dict[int, str]) -> None:
    """Detected events as bars, one lane per drawn label (a piano roll), then one grey lane for
    the events of every other label."""
    order = [j for j in dict.fromkeys(e.index for e in sorted(det.events, key=lambda e: e.start))
             if j in colors]
    names = {e.index: e.label for e in det.events}
    for lane, j in enumerate(order):
        spans = [(e.start, e.end - e.start) for e in det.events if e.index == j]
        ax.broken_barh(spans, (lane + 0.1, 0.8), facecolors=colors[j], edgecolor="white",
                       linewidth=0.5)
        ax.text(spans[0][0], lane + 0.5, f" {names[j]}", ha="left", va="center", fontsize=6,
                color="white", clip_on=True)
    rest = [e for e in det.events if e.index not in colors]
    if rest:
        lane = len(order)
        ax.broken_barh([(e.start, e.end - e.start) for e in rest], (lane + 0.1, 0.8),
                       facecolors="0.6", edgecolor="white", linewidth=0.3)
        ax.text(0.0, lane + 0.5, f" {len({e.index for e in rest})} other labels", ha="left",
                va="center", fontsize=6, color="0.15", clip_on=True)
        order.append(-1)
    ax.set_ylim(len(order) or 1, 0)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_ylabel("events", fontsize=7)
    if not order:
        ax.text(0.5, 0.5, "no confident label", transform=ax.transAxes, ha="center",
                va="center", color="0.3", fontsize=8, style="italic")


def _timeline(ax: Any, head: Any, det: Any, result: "TagResult",
              colors: dict[int, str], long: bool = False) -> None:
    """Per-step scores of the drawn labels as steps over the event timeline, and the threshold;
    for a long file (``long``) the maximum over bins of steps (:func:`overview`)."""
    bounds = step_intervals(head, result.duration, result.analysed_duration)
    edges = np.append(bounds[:, 0], bounds[-1, 1]) if head.steps else np.array([0.0, 1.0])
    scores = head.scores
    if long and head.steps > OVERVIEW_BINS:
        scores, edges = overview(scores, edges, OVERVIEW_BINS)
    for j, color in colors.items():
        ax.stairs(scores[:, j], edges, color=color, linewidth=1.0 if long else 1.2,
                  baseline=None, label=head.labels[j])
    ax.axhline(det.threshold, color="0.35", linestyle="--", linewidth=0.8)
    ax.text(0.004, det.threshold, f"min-conf {det.threshold:g}", transform=ax.get_yaxis_transform(),
            fontsize=6, color="0.35", va="bottom", ha="left")
    if head.probabilities:
        ax.set_ylim(0.0, 1.02)
    ax.set_ylabel(f"{head.name} ({'p' if head.probabilities else 'score'})"
                  + ("\nmax per bin" if long and head.steps > OVERVIEW_BINS else ""))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, handlelength=1.2,
              borderaxespad=0.2)


def overview(scores: np.ndarray, edges: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``scores (steps, classes)`` over ``edges (steps + 1,)`` seconds reduced to at most
    ``bins`` bins of consecutive steps, each the maximum of its steps (a short event stays
    visible); returns the binned scores and their edges."""
    size = -(-scores.shape[0] // bins)
    starts = np.arange(0, scores.shape[0], size)
    return np.maximum.reduceat(scores, starts, axis=0), np.append(edges[starts], edges[-1])


def save_figure(fig: Any, path: str | os.PathLike, provenance: dict[str, Any] | None = None,
                dpi: int = 200) -> Path:
    """Write ``fig`` as PNG atomically, its provenance in the PNG's text chunks; closes it."""
    from ._version import __version__

    plt = _pyplot()
    path = Path(path)
    meta = {"Software": f"soundnet-cli {__version__}"}
    if provenance:
        meta["Description"] = json.dumps(provenance, sort_keys=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata=meta, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def save_tag_plot(result: "TagResult", path: str | os.PathLike, *,
                  detect: DetectOptions | None = None, top_k: int = 5,
                  provenance: dict[str, Any] | None = None, sample_rate: int = 22_050,
                  dpi: int = 200) -> Path:
    """:func:`tag_figure` of ``result`` written to ``path`` (PNG, ``dpi`` dots per inch)."""
    fig = tag_figure(result, detect_options=detect, top_k=top_k, provenance=provenance,
                     sample_rate=sample_rate)
    return save_figure(fig, path, provenance, dpi=dpi)


def confusion_figure(report: "CVReport", title: str = "") -> Any:
    """A row-normalised confusion matrix (true class down, predicted across) of a
    cross-validation, with the mean ± std accuracy in the title."""
    plt = _pyplot()
    counts = report.confusion().astype(np.float64)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    k = len(report.classes)
    size = min(9.0, max(3.5, 0.15 * k + 1.5))
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    im = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(k)
    font = 7 if k <= 20 else 5
    ax.set_xticks(ticks, report.classes, rotation=90, fontsize=font)
    ax.set_yticks(ticks, report.classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6,
                            color="white" if rows[i, j] > 0.5 else "0.2")
    head = f"{title}  " if title else ""
    ax.set_title(f"{head}accuracy {report.mean:.1%} ± {report.std:.1%} "
                 f"({len(report.folds)} folds)", loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(True)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="fraction of the true class")
    fig.tight_layout()
    return fig
