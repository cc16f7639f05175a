"""A fitted SVM as plain data: scoring, time placement of steps, and the saved-model format.

The file format (``.npz``, read with ``np.load(allow_pickle=False)``, so loading never executes
code) holds four float64 arrays and one JSON string:

- ``coef`` ``(classes, dims)`` and ``intercept`` ``(classes,)``: one-vs-rest linear scores
  ``z @ coef.T + intercept`` (two-class models are stored as two rows ``-w, +w``);
- ``mean`` and ``scale`` ``(dims,)``: the standardisation ``z = (x - mean) / scale`` (zeros and
  ones for the paper protocol, which does not scale);
- ``meta``: a 0-d unicode array with JSON: ``format`` (``"soundnet-cli-svm"``),
  ``format_version``, ``classes``, ``layer``, ``protocol``, ``fingerprint`` (of the network whose
  features it was fit on), ``input_scale``, ``loop_samples``, ``min_samples``, ``window``,
  ``channels``, ``geometry``, ``C`` and free ``info`` (data, cross-validation summary, version).
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SvmError
from ..files.fsutil import atomic_path
from ..files.jsonutil import loads as strict_json
from ..model.geometry import TimeAxis

FORMAT_NAME = "soundnet-cli-svm"
FORMAT_VERSION = 1
_ARRAYS = ("coef", "intercept", "mean", "scale")


#: Longest input a saved SVM may ask clips to be tiled or looped to, seconds: a header asking for
#: more is refused instead of allocating it (the paper protocol loops to 10 s).
MAX_CLIP_SECONDS = 600.0


def _check_meta(meta: dict[str, Any]) -> None:
    """Every header value of a saved SVM in range; raises ``ValueError`` naming the field."""
    def number(key: str, low: float, high: float, integer: bool = False) -> None:
        v = meta[key]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
            and low <= v <= high and (not integer or float(v).is_integer())
        if not ok:
            raise ValueError(f"{key} is {v!r}; expected a{'n integer' if integer else ' number'} "
                             f"in [{low:g}, {high:g}]")

    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or \
            not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise ValueError("classes must be a list of at least two distinct names")
    for key in ("layer", "protocol", "fingerprint"):
        if not isinstance(meta[key], str):
            raise ValueError(f"{key} must be a string")
    geometry = meta["geometry"]
    if not isinstance(geometry, dict) or \
            not {"hop", "receptive_field", "first_sample", "sample_rate"} <= set(geometry):
        raise ValueError("geometry must hold hop, receptive_field, first_sample, sample_rate")
    for key, low, high in (("hop", 1, 1 << 24), ("receptive_field", 1, 1 << 26),
                           ("first_sample", -(1 << 26), 0), ("sample_rate", 1000, 768_000)):
        v = geometry[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise ValueError(f"geometry {key} is {v!r}; expected an integer in [{low}, {high}]")
    longest = MAX_CLIP_SECONDS * geometry["sample_rate"]
    number("input_scale", 1e-6, 1e6)
    number("C", 1e-12, 1e12)
    number("window", 1, 1 << 16, integer=True)
    number("channels", 1, 1 << 16, integer=True)
    number("min_samples", 1, longest, integer=True)
    if meta["loop_samples"] is not None:
        number("loop_samples", 1, longest, integer=True)
    if not isinstance(meta.get("info") or {}, dict):
        raise ValueError("info must be a JSON object")


def window_frames(frames: int) -> int:
    """The paper's window: ``ceil(T / 10)`` frames for a layer with ``T`` frames per 10 s."""
    return max(1, math.ceil(frames / 10))


def paper_windows(activations: np.ndarray, window: int) -> np.ndarray:
    """Every run of ``window`` consecutive frames (stride 1), flattened frame-major.

    ``activations`` ``(frames, channels)`` -> ``(frames - window + 1, window * channels)``.
    """
    frames = activations.shape[0]
    if frames < window:
        raise SvmError(f"{frames} frame(s) is shorter than the SVM's window of {window}")
    view = np.lib.stride_tricks.sliding_window_view(activations, window, axis=0)  # (n, C, w)
    return np.ascontiguousarray(view.transpose(0, 2, 1)).reshape(view.shape[0], -1)


def pooled_stats(activations: np.ndarray) -> np.ndarray:
    """Per-channel mean and max over time: ``(frames, channels)`` -> ``(2 * channels,)``."""
    return np.concatenate([activations.mean(axis=0), activations.max(axis=0)]).astype(np.float32)


def paper_clip_scores(clips: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                      window: int) -> np.ndarray:
    """Decision values of ``(clips, T, channels)`` inputs averaged over each clip's windows:
    ``(clips, classes)``."""
    return np.stack([(paper_windows(c, window) @ coef.T + intercept).mean(axis=0) for c in clips])


def pooled_scores(stats: np.ndarray, coef: np.ndarray, intercept: np.ndarray, mean: np.ndarray,
                  scale: np.ndarray) -> np.ndarray:
    """Decision values ``(clips, classes)`` of pooled statistics ``(clips, 2 * channels)``."""
    return ((stats - mean) / scale) @ coef.T + intercept


@dataclass
class SvmModel:
    """A linear SVM over one SoundNet layer (see the module docstring for the fields' meaning).

    ``geometry`` holds the layer's ``hop``, ``receptive_field`` and ``first_sample`` (samples)
    and ``sample_rate`` (Hz), so steps can be placed in time without the network.
    """

    classes: tuple[str, ...]
    layer: str
    protocol: str
    fingerprint: str
    input_scale: float
    loop_samples: int | None
    min_samples: int
    window: int
    channels: int
    geometry: dict[str, int]
    C: float
    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    # -- scoring ------------------------------------------------------------------------------
    def decision_steps(self, activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-step and clip-level decision values of one clip.

        Parameters
        ----------
        activations
            ``(frames, channels)`` of :attr:`layer`, computed at :attr:`input_scale`.

        Returns
        -------
        steps, clip
            ``(steps, classes)``: one row per window of :attr:`window` frames (stride 1);
            ``(classes,)``: the clip's score. Paper protocol: the mean of the step rows (as the
            original); pooled: the statistics of the whole clip (steps use each window's own
            mean and max). A pooled clip shorter than a window is one step.
        """
        a = np.asarray(activations, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise SvmError(f"expected (frames, {self.channels}) activations of {self.layer}, "
                           f"got shape {a.shape}")
        if self.protocol == "paper":
            steps = paper_windows(a, self.window) @ self.coef.T + self.intercept
            return steps, steps.mean(axis=0)
        w = min(self.window, a.shape[0])
        view = np.lib.stride_tricks.sliding_window_view(a, w, axis=0)  # (n, C, w)
        stats = np.concatenate([view.mean(axis=2), view.max(axis=2)], axis=1)
        steps = pooled_scores(stats, self.coef, self.intercept, self.mean, self.scale)
        clip = pooled_scores(pooled_stats(a)[None], self.coef, self.intercept, self.mean,
                             self.scale)[0]
        return steps, clip

    def clip_scores(self, activations: np.ndarray) -> np.ndarray:
        """Clip-level decision values ``(classes,)`` (see :meth:`decision_steps`)."""
        return self.decision_steps(activations)[1]

    def predict(self, activations: np.ndarray) -> str:
        """The class with the highest clip-level score."""
        return self.classes[int(np.argmax(self.clip_scores(activations)))]

    @property
    def axis(self) -> TimeAxis:
        """The layer's time axis (:class:`~soundnet_cli.model.TimeAxis`), from :attr:`geometry`."""
        g, rate = self.geometry, self.geometry["sample_rate"]
        return TimeAxis(g["hop"] / rate, g["receptive_field"] / rate, g["first_sample"] / rate)

    def step_times(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end seconds ``(steps,)`` of each step window on the network's input
        (clipped at 0 where the receptive field reaches into the padding)."""
        spans = np.maximum(self.axis.spans(steps, frames=self.window), 0.0)
        return spans[:, 0], spans[:, 1]

    def segments(self, step_scores: np.ndarray, seconds: float) -> list[dict[str, Any]]:
        """Runs of consecutive steps with the same best class, as non-overlapping segments.

        Each step owns one hop around its window's centre, so segments tile the input without
        overlap; ``seconds`` is the input length (clips the last segment). Returns
        ``[{"start", "end", "label", "score"}]`` with ``score`` the label's mean step score.
        """
        if len(step_scores) == 0:
            return []
        axis = self.axis
        centre = axis.spans(len(step_scores), frames=self.window).mean(axis=1)
        half = axis.hop / 2
        best = step_scores.argmax(axis=1)
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(best):
            j = i
            while j + 1 < len(best) and best[j + 1] == best[i]:
                j += 1
            start = 0.0 if i == 0 else max(0.0, centre[i] - half)
            end = seconds if j == len(best) - 1 else min(seconds, centre[j] + half)
            out.append({"start": round(float(start), 3), "end": round(float(end), 3),
                        "label": self.classes[best[i]],
                        "score": float(step_scores[i:j + 1, best[i]].mean())})
            i = j + 1
        return out

    # -- checks -------------------------------------------------------------------------------
    def check_network(self, fingerprint: str) -> None:
        """Raise :class:`SvmError` unless ``fingerprint`` is the network this SVM was fit on."""
        if fingerprint != self.fingerprint:
            raise SvmError(
                f"this SVM was fit on features of network {self.fingerprint[:12]}…, but the "
                f"loaded network is {fingerprint[:12]}…; load it with the --weights it was fit "
                "with (its features would be meaningless to this SVM)"
            )

    # -- files --------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "classes": list(self.classes), "layer": self.layer, "protocol": self.protocol,
            "fingerprint": self.fingerprint, "input_scale": self.input_scale,
            "loop_samples": self.loop_samples, "min_samples": self.min_samples,
            "window": self.window, "channels": self.channels, "geometry": self.geometry,
            "C": self.C, "info": self.info,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (``.npz``) atomically; returns the path."""
        buf = io.BytesIO()
        arrays: dict[str, Any] = {k: np.asarray(getattr(self, k), dtype=np.float64) for k in _ARRAYS}
        np.savez(buf, meta=np.array(json.dumps(self.meta(), sort_keys=True, default=str)), **arrays)
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expected_fingerprint: str | None = None) -> "SvmModel":
        """Read a model saved by :meth:`save`; never executes code from the file.

        With ``expected_fingerprint`` (the loaded network's), a model fit on another network is
        an :class:`SvmError`. Malformed files are :class:`SvmError` naming the file.
        """
        import zipfile

        from ..errors import WeightsError
        from ..weights.formats.safeload import read_npz

        path = Path(path)
        if not path.is_file():
            raise SvmError(f"{path}: no such SVM model file")
        if not zipfile.is_zipfile(path):
            raise SvmError(f"{path}: not a soundnet-cli SVM model (the .npz archive that "
                           "`soundnet fit-svm --out` writes); this file is not a zip archive")
        try:
            z = read_npz(path)
            meta = strict_json(str(z["meta"][()]), constants=True)  # validated next, by name
            arrays = {k: np.asarray(z[k], dtype=np.float64) for k in _ARRAYS}
        except WeightsError as e:
            raise SvmError(f"{path}: not a soundnet-cli SVM model: "
                           f"{str(e).removeprefix(f'{path}: ')}") from e
        except (ValueError, KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
            raise SvmError(f"{path}: not a soundnet-cli SVM model: {e}") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise SvmError(f"{path}: not a soundnet-cli SVM model (no {FORMAT_NAME} header)")
        version = meta.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SvmError(f"{path}: SVM model header has a bad format_version {version!r}")
        if version > FORMAT_VERSION:
            raise SvmError(f"{path}: SVM format {version} is newer than this "
                           f"soundnet-cli reads ({FORMAT_VERSION}); upgrade soundnet-cli")
        try:
            _check_meta(meta)
            model = cls(tuple(meta["classes"]), meta["layer"], meta["protocol"],
                        meta["fingerprint"], float(meta["input_scale"]), meta["loop_samples"],
                        int(meta["min_samples"]), int(meta["window"]), int(meta["channels"]),
                        {k: int(v) for k, v in meta["geometry"].items()}, float(meta["C"]),
                        info=dict(meta.get("info") or {}), **arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SvmError(f"{path}: SVM model header is malformed: {e}") from e
        model._validate(path)
        if expected_fingerprint is not None:
            try:
                model.check_network(expected_fingerprint)
            except SvmError as e:
                raise SvmError(f"{path}: {e}") from None
        return model

    def _validate(self, path: Path) -> None:
        """Array shapes against the header, every value finite, scales non-zero."""
        k = len(self.classes)
        dims = self.window * self.channels if self.protocol == "paper" else 2 * self.channels
        shapes = {"coef": (k, dims), "intercept": (k,), "mean": (dims,), "scale": (dims,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise SvmError(f"{path}: array {name} has shape {getattr(self, name).shape}, "
                               f"expected {shape}")
        if self.protocol not in ("paper", "pooled"):
            raise SvmError(f"{path}: unknown protocol {self.protocol!r}")
        if not all(np.isfinite(getattr(self, n)).all() for n in _ARRAYS) or (self.scale == 0).any():
            raise SvmError(f"{path}: SVM arrays hold non-finite values or zero scales")
