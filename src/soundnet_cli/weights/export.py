"""Export a network as a fixed-window graph (ONNX or TorchScript) for runtimes without this package.

The graph takes ``waveform``: ``(batch, samples)`` float32 audio in [-1, 1] at the network's rate
(22,050 Hz), ``samples`` fixed at export time (``seconds * 22050``; the batch may vary), and returns
one output per requested layer, named after it: ``(batch, channels, frames)`` float32, exactly
:meth:`SoundNet.features <soundnet_cli.model.SoundNet.features>` (the input scale, x256, is inside
the graph; heads are logits, a softmax over channels gives ``soundnet tag``'s per-step
probabilities). A fixed length keeps the graph free of shape guards (a variable-length
``torch.export`` of this network fails on them); longer audio is cut into windows by the caller.

Every export is checked before it is kept: the written file is run (onnxruntime for ONNX, when
installed; ``torch.jit.load`` for TorchScript) on random noise and on real audio (files given,
else a synthetic chirp with clicks) and compared with the PyTorch network; a maximum difference
above :data:`MAX_RELATIVE_DIFFERENCE` of the activation scale fails the export and leaves no file.
The graph carries its description (layers, geometry, labels, fingerprint) as ONNX metadata
``soundnet`` or TorchScript extra file ``soundnet.json``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import LayerError, OutputError, SoundNetError
from ..files.fsutil import atomic_path
from ..model import SoundNet

FORMATS = ("onnx", "torchscript")
#: Default window, seconds: the original's 10 s clips.
DEFAULT_SECONDS = 10.0
#: ONNX operator set the graph is written with (Conv, MaxPool, Relu, BatchNormalization).
ONNX_OPSET = 17
#: Largest accepted difference between the exported graph and PyTorch, relative to the largest
#: activation of each output (float rounding is ~1e-6 of it).
MAX_RELATIVE_DIFFERENCE = 1e-4


class FixedWindow(nn.Module):
    """``waveform (batch, samples) -> tuple of (batch, channels, frames)``, one per layer, by
    :meth:`SoundNet.features`: what is traced and exported."""

    def __init__(self, network: SoundNet, layers: Sequence[str]) -> None:
        super().__init__()
        self.network = network
        self.layers = list(layers)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.network.features(waveform, self.layers)
        return tuple(feats[n] for n in self.layers)


@dataclass
class Check:
    """One comparison of the exported graph with PyTorch: ``input`` (what was fed), the
    largest absolute difference over all outputs and that difference relative to the largest
    activation of its output."""

    input: str
    max_abs: float
    relative: float


@dataclass
class ExportResult:
    """What :func:`export_network` wrote: the file, its format, window, layers with their output
    shapes for a batch of one, and the checks (empty when the runtime to check was missing,
    ``skipped`` says why)."""

    path: Path
    format: str
    samples: int
    layers: dict[str, tuple[int, int]]
    checks: list[Check] = field(default_factory=list)
    skipped: str | None = None

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.checks), default=float("nan"))


def default_layers(model: SoundNet) -> list[str]:
    """Every head, or the last trunk layer when the network has none."""
    return list(model.config.head_names) or [model.layer_names[-1]]


def describe(model: SoundNet, layers: Sequence[str], samples: int) -> dict[str, Any]:
    """The graph's description stored with it: input, and per output layer its channels, frames,
    geometry (samples) and, for heads, labels."""
    from .._version import __version__

    labels = {h.name: list(h.labels) for h in model.config.heads}
    outputs = []
    for name in layers:
        g = model.geometry(name)
        outputs.append({"name": name, "channels": model.channels(name), "frames": g.frames(samples),
                        "hop": g.hop, "receptive_field": g.receptive_field,
                        "first_sample": g.first_sample, "labels": labels.get(name)})
    return {"soundnet_cli": __version__, "fingerprint": model.fingerprint,
            "arch": model.config.arch, "source": str(model.source or ""),
            "input": {"name": "waveform", "shape": ["batch", samples], "dtype": "float32",
                      "sample_rate": model.config.sample_rate, "range": [-1.0, 1.0],
                      "input_scale_inside": model.config.input_scale},
            "outputs": outputs}


def export_network(model: SoundNet, out: str | os.PathLike, fmt: str, *,
                   seconds: float = DEFAULT_SECONDS, layers: Sequence[str | int] | None = None,
                   check_audio: Sequence[str | os.PathLike] = (), seed: int = 0) -> ExportResult:
    """Write ``model`` as a fixed-window ``fmt`` graph to ``out`` (atomically) and check it.

    Parameters
    ----------
    model
        Any :class:`SoundNet`; exported from a float32 CPU copy in eval mode.
    out
        The file to write (``.onnx`` / ``.pt`` by convention).
    fmt
        ``"onnx"`` (needs the ``onnx`` package; checked with onnxruntime when installed) or
        ``"torchscript"``.
    seconds
        The window: the graph's input has ``round(seconds * sample_rate)`` samples.
    layers
        Outputs (names or module numbers); default :func:`default_layers`.
    check_audio
        Audio files for the "real input" check (the first window of each, tiled if shorter);
        default: a synthetic chirp with clicks.
    seed
        Of the random-noise check input.

    Raises
    ------
    LayerError
        Unknown layer, or a window too short for one.
    SoundNetError
        Unknown format, missing ``onnx`` package, or an export that differs from PyTorch by more
        than :data:`MAX_RELATIVE_DIFFERENCE` (nothing is written then).
    """
    if fmt not in FORMATS:
        raise SoundNetError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise SoundNetError("--format onnx needs the onnx package: pip install "
                            "'soundnet-cli[export]'")
    net = copy.deepcopy(model).float().cpu().eval().requires_grad_(False)
    names = net.resolve_layers(layers if layers else default_layers(net))
    if not seconds > 0:
        raise SoundNetError(f"seconds must be positive, got {seconds:g}")
    samples = int(round(seconds * net.config.sample_rate))
    for name in names:
        if net.geometry(name).frames(samples) < 1:
            need = net.geometry(name).min_samples() / net.config.sample_rate
            raise LayerError(f"a {seconds:g} s window is too short for layer {name} (needs "
                             f"{need:.2f} s)")
    wrapper = FixedWindow(net, names).eval()
    meta = describe(net, names, samples)
    inputs = _check_inputs(net, samples, check_audio, seed)
    path = Path(out)
    with atomic_path(path) as tmp:
        _write(wrapper, Path(tmp), fmt, samples, names, meta)
        checks, skipped = _check(wrapper, Path(tmp), fmt, inputs)
        bad = [c for c in checks if not c.relative <= MAX_RELATIVE_DIFFERENCE]
        if bad:
            raise SoundNetError(f"the exported {fmt} graph differs from PyTorch on {bad[0].input} "
                                f"input by {bad[0].max_abs:.3g} ({bad[0].relative:.3g} of the "
                                f"activation scale, limit {MAX_RELATIVE_DIFFERENCE:g}); not "
                                "written")
    shapes = {o["name"]: (o["channels"], o["frames"]) for o in meta["outputs"]}
    return ExportResult(path, fmt, samples, shapes, checks, skipped)


def _write(wrapper: FixedWindow, path: Path, fmt: str, samples: int, names: list[str],
           meta: dict[str, Any]) -> None:
    example = torch.zeros(1, samples)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing a fixed window: the length checks in `features` are constants here, and the
        # deprecation notes of torch.jit / the TorchScript-based ONNX exporter are not the user's.
        warnings.simplefilter("ignore")
        try:
            if fmt == "torchscript":
                traced = torch.jit.trace(wrapper, (example,), check_trace=False)
                torch.jit.save(traced, str(path), _extra_files={"soundnet.json": json.dumps(meta)})
                return
            axes = {n: {0: "batch"} for n in ["waveform", *names]}
            torch.onnx.export(wrapper, (example,), str(path), dynamo=False,
                              input_names=["waveform"], output_names=names, dynamic_axes=axes,
                              opset_version=ONNX_OPSET)
        except (RuntimeError, ValueError) as e:
            raise OutputError(f"cannot export to {fmt}: {e}") from e
    import onnx

    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "soundnet", json.dumps(meta)
    onnx.save(graph, str(path))


def _check_inputs(net: SoundNet, samples: int, files: Sequence[str | os.PathLike],
                  seed: int) -> dict[str, np.ndarray]:
    """``{name: (1, samples) float32}``: noise, and real audio (files) or a synthetic signal."""
    from ..audio import load_audio, loop_to

    rate = net.config.sample_rate
    noise = np.random.default_rng(seed).uniform(-1, 1, samples).astype(np.float32)
    inputs = {"random": noise[None]}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # silence is still a valid check input
            wave = load_audio(f, rate)
        inputs[Path(f).name] = loop_to(wave, samples)[None]
    if not files:
        t = np.arange(samples) / rate
        chirp = 0.4 * np.sin(2 * np.pi * (100 + 400 * t) * t)
        chirp[:: rate // 4] += 0.5
        inputs["chirp"] = chirp.astype(np.float32)[None]
    return inputs


def _check(wrapper: FixedWindow, path: Path, fmt: str, inputs: dict[str, np.ndarray]
           ) -> tuple[list[Check], str | None]:
    """Run the written graph on ``inputs`` and compare with ``wrapper`` (PyTorch)."""
    run = _runner(path, fmt)
    if isinstance(run, str):
        return [], run
    checks = []
    for name, x in inputs.items():
        with torch.no_grad():
            ref = [t.numpy() for t in wrapper(torch.from_numpy(x))]
        got = run(x)
        diffs = [(float(np.abs(g - r).max()), float(np.abs(r).max()) or 1.0)
                 for g, r in zip(got, ref)]
        checks.append(Check(name, max(d for d, _ in diffs), max(d / s for d, s in diffs)))
    return checks, None


def _runner(path: Path, fmt: str) -> Any:
    """A function ``(1, samples) array -> list of arrays`` running the file, or why there is
    none."""
    if fmt == "torchscript":
        loaded = torch.jit.load(str(path))
        return lambda x: [t.detach().numpy() for t in loaded(torch.from_numpy(x))]
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'soundnet-cli[export]'); not checked"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"waveform": x})
