"""Rich progress for training runs (stderr)."""

from __future__ import annotations

from typing import Callable

from .common import err, make_progress


class TrainingProgress:
    """Two bars: epochs, and batches of the current epoch with loss, accuracy and rate.

    ``metric`` names the accuracy-like metric to show (``accuracy``; ``agreement`` for
    distillation), ``short`` its label. Nothing is drawn until the first clip is decoded or the
    first batch trained, so a run that stops at its checks shows only its error.
    """

    def __init__(self, quiet: bool, epochs: int, metric: str = "accuracy", short: str = "acc") -> None:
        self.quiet = quiet
        self.metric, self.short = metric, short
        self.progress = make_progress(quiet, fields=("info",))
        self.epochs_task = self.progress.add_task("epochs", total=epochs, info="")
        self.batch_task = self.progress.add_task("batches", total=None, info="", visible=False)
        self.started = False

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.progress.__exit__(*exc)

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self.progress.__enter__()

    def decoded(self, total: int) -> Callable[[int], None]:
        task = self.progress.add_task("decoding", total=total, info="")

        def _one(_: int) -> None:
            self._start()
            self.progress.advance(task)

        return _one

    def update(self, r) -> None:
        self._start()
        acc = r.metrics.get(self.metric, r.metrics.get(f"train_{self.metric}"))
        if r.done:
            val = r.metrics.get(f"val_{self.metric}")
            info = f"loss {r.loss:.3f}" + (f" val {self.short} {val:.3f}" if val is not None else "")
            self.progress.update(self.epochs_task, completed=r.epoch, info=info)
            if not self.quiet:
                err.print(f"epoch {r.epoch}/{r.epochs}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in r.metrics.items() if isinstance(v, float)),
                    highlight=False, soft_wrap=True)
            return
        info = f"loss {r.loss:.3f}" + (f" {self.short} {acc:.3f}" if acc is not None else "") + \
            f" {r.samples_per_s:.1f} clips/s"
        self.progress.update(self.batch_task, total=r.batches, completed=r.batch, info=info,
                             visible=True, description=f"epoch {r.epoch}")
