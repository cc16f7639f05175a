"""fit-svm: features, both protocols, cross-validation, the saved model, tagging and the CLI.

The network is a fixed random SoundNet-8 (1/8 of the channels) whose BatchNorm statistics were
measured on generated noise: random filters, but activations of sensible scale at every layer
(the conftest tiny model, 1/16 wide with arbitrary BN statistics, has dead deep layers). The
dataset is four clearly different generated sound classes, six 1 s clips each.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from soundnet_cli.weights import save_checkpoint, weights_fingerprint
from soundnet_cli.cli import app
from soundnet_cli.datasets import cv_splits, load_dataset
from soundnet_cli.errors import DatasetError, SvmError
from soundnet_cli.model import SoundNet, make_config
from soundnet_cli.svm import extract_features
from soundnet_cli.svm.fit import cross_validate, fit_svm, inner_splits
from soundnet_cli.svm.model import SvmModel, paper_windows, window_frames
from soundnet_cli.svm import SvmProtocol
from soundnet_cli.tagging import SvmScorer, result_to_json, tag_files

RATE = 22_050
CLASSES = ("clicks", "high", "low", "noise")
PER_CLASS = 6


def calibrated_network(seed: int = 0, width: float = 1 / 8) -> SoundNet:
    """A fixed random network with BN statistics measured on generated noise."""
    model = SoundNet(make_config(width=width))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None  # cumulative average over the calibration batch
    rng = np.random.default_rng(seed)
    gains = np.geomspace(0.01, 0.5, 8)[:, None]
    noise = torch.from_numpy((rng.standard_normal((8, 2 * RATE)) * gains).astype(np.float32))
    model.train()
    with torch.no_grad():
        model.features(noise, [model.config.convs[-1].name])
    return model.eval()


def make_clip(kind: str, i: int, seconds: float = 1.0) -> np.ndarray:
    # a stable seed: hash() of strings changes with every process (PYTHONHASHSEED)
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{i}".encode()))
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    jitter = rng.uniform(0.9, 1.1)
    if kind == "low":
        x = 0.4 * np.sin(2 * np.pi * 300 * jitter * t)
    elif kind == "high":
        x = 0.4 * np.sin(2 * np.pi * 3000 * jitter * t)
    elif kind == "noise":
        x = 0.2 * rng.standard_normal(n)
    else:
        x = np.zeros(n)
        x[rng.integers(0, 500)::int(RATE / 10 * jitter)] = 0.9
    return (x + 0.005 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(scope="module")
def network() -> SoundNet:
    return calibrated_network()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """The same 24 clips in all three layouts under one directory."""
    root = tmp_path_factory.mktemp("data")
    meta = ["filename,fold,target,category,esc10,src_file,take"]
    labels = ["path,label,fold"]
    for target, kind in enumerate(CLASSES):
        for i in range(PER_CLASS):
            x = make_clip(kind, i)
            (root / "folders" / kind).mkdir(parents=True, exist_ok=True)
            sf.write(root / "folders" / kind / f"{i}.wav", x, RATE)
            fold = i % 3 + 1
            name = f"{fold}-{target}{i}-A-{target}.wav"
            (root / "esc" / "audio").mkdir(parents=True, exist_ok=True)
            sf.write(root / "esc" / "audio" / name, x, RATE)
            meta.append(f"{name},{fold},{target},{kind},False,{target}{i},A")
            labels.append(f"folders/{kind}/{i}.wav,{kind},{fold}")
    (root / "esc" / "meta").mkdir()
    (root / "esc" / "meta" / "esc50.csv").write_text("\n".join(meta) + "\n")
    (root / "labels.csv").write_text("\n".join(labels) + "\n")
    (root / "labels_nofold.csv").write_text(
        "\n".join(",".join(line.split(",")[:2]) for line in labels) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, network) -> Path:
    path = tmp_path_factory.mktemp("net") / "cal.safetensors"
    save_checkpoint(network, path)
    return path


def features(network, ds, layer, protocol, tmp_path, **kw):
    return extract_features(network, ds, [layer], protocol, cache_dir=tmp_path / "cache",
                            **kw)[layer]


# -- accuracy in every layout -------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["folders", "esc", "labels.csv", "labels_nofold.csv"])
def test_pooled_cross_validation_is_accurate_in_every_layout(layout, data_root, network,
                                                             tmp_path):
    ds = (load_dataset(None, labels_csv=data_root / layout) if layout.endswith(".csv")
          else load_dataset(data_root / layout))
    assert len(ds) == 24 and sorted(ds.classes) == sorted(CLASSES)
    fs = features(network, ds, "pool5", SvmProtocol("pooled"), tmp_path)
    report = cross_validate(fs, SvmProtocol("pooled"), n_folds=3)
    assert len(report.folds) == 3
    if ds.folds is not None:
        assert [f.test_fold for f in report.folds] == [1, 2, 3]
    assert report.mean >= 0.9, report.to_dict()


@pytest.mark.parametrize("layer", ["pool5", "conv7"])
def test_paper_cross_validation_is_accurate(layer, data_root, network, tmp_path):
    ds = load_dataset(data_root / "esc")
    fs = features(network, ds, layer, SvmProtocol("paper"), tmp_path)
    report = cross_validate(fs, SvmProtocol("paper"))
    assert all(f.C == 0.01 for f in report.folds)
    assert report.mean >= 0.9, report.to_dict()


@pytest.mark.parametrize("protocol", ["paper", "pooled"])
def test_newton_and_liblinear_solvers_agree(protocol, data_root, network, tmp_path):
    """Both solvers minimise the same objective: the same C, the same predictions, and
    decision values that agree to the solvers' tolerance."""
    ds = load_dataset(data_root / "esc")
    fs = features(network, ds, "conv5", SvmProtocol(protocol), tmp_path)
    newton = SvmProtocol(protocol, tol=1e-6, max_iter=500)  # float32 features: near its floor
    lib = SvmProtocol(protocol, solver="liblinear", tol=1e-8, max_iter=100_000)
    a, b = cross_validate(fs, newton), cross_validate(fs, lib)
    assert [f.converged for f in a.folds] == [f.converged for f in b.folds] == [True] * len(a.folds)
    assert [f.C for f in a.folds] == [f.C for f in b.folds]
    assert np.array_equal(a.predictions()[1], b.predictions()[1])
    ma, mb = fit_svm(fs, newton), fit_svm(fs, lib)
    assert ma.info["protocol"]["solver"] == "newton" and mb.info["protocol"]["solver"] == "liblinear"
    np.testing.assert_allclose(ma.coef, mb.coef, atol=1e-3 * np.abs(mb.coef).max())


def test_report_numbers_are_consistent(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders")
    fs = features(network, ds, "conv5", SvmProtocol("pooled"), tmp_path)
    report = cross_validate(fs, SvmProtocol("pooled"), cv_splits(ds, 3, seed=2))
    true, pred = report.predictions()
    assert sorted(np.concatenate([f.test_index for f in report.folds]).tolist()) == list(range(24))
    assert report.confusion().sum() == 24 and np.trace(report.confusion()) == (true == pred).sum()
    assert report.mean == pytest.approx(np.mean([f.accuracy for f in report.folds]))
    d = report.to_dict()
    assert set(d["per_class"]) == set(CLASSES)
    assert all(set(f["inner_cv"]) == {"0.0001", "0.001", "0.01", "0.1"} for f in d["folds"])
    assert json.dumps(d)  # JSON-clean


def test_parallel_folds_give_the_same_result(data_root, network, tmp_path):
    ds = load_dataset(data_root / "esc")
    fs = features(network, ds, "pool5", SvmProtocol("pooled"), tmp_path)
    one = cross_validate(fs, SvmProtocol("pooled"), jobs=1)
    seen = []
    two = cross_validate(fs, SvmProtocol("pooled"), jobs=2, on_fold=seen.append)
    assert [f.name for f in seen] == [f.name for f in two.folds]  # each reported when done
    assert [f.accuracy for f in one.folds] == [f.accuracy for f in two.folds]
    assert [f.C for f in one.folds] == [f.C for f in two.folds]


def test_inner_cv_uses_the_training_folds(data_root):
    ds = load_dataset(data_root / "esc")
    train = ds.subset(np.flatnonzero(ds.folds != 1))
    assert [s.test_fold for s in inner_splits(train)] == [2, 3]
    no_folds = load_dataset(data_root / "folders").subset(range(0, 24, 3))  # 2 clips per class
    assert len(inner_splits(no_folds)) == 2


# -- the paper protocol's geometry ---------------------------------------------------------------

@pytest.mark.parametrize("layer,frames,window,instances", [
    ("pool5", 27, 3, 25), ("conv5", 109, 11, 99), ("conv4", 216, 22, 195), ("conv7", 8, 1, 8),
])
def test_paper_windows_match_soundnet_md(layer, frames, window, instances):
    full = SoundNet(make_config())  # the real geometry; SOUNDNET.md: pool5 T=27, w=3, 25 x 768
    assert full.geometry(layer).frames(10 * RATE) == frames
    assert window_frames(frames) == window
    acts = np.random.default_rng(0).random((frames, full.channels(layer)), dtype=np.float32)
    windows = paper_windows(acts, window)
    assert windows.shape == (instances, window * full.channels(layer))
    if layer == "pool5":
        assert windows.shape == (25, 768)
    np.testing.assert_array_equal(windows[1], acts[1:1 + window].reshape(-1))  # frame-major


def test_paper_loops_every_clip_to_exactly_10_s(tmp_path, network):
    for name, seconds in (("long", 12.0), ("short", 3.3)):
        (tmp_path / "c" / name).mkdir(parents=True)
        sf.write(tmp_path / "c" / name / "x.wav", make_clip("noise", 0, seconds), RATE)
    ds = load_dataset(tmp_path / "c")
    paper = features(network, ds, "pool5", SvmProtocol("paper"), tmp_path)
    assert [a.shape[0] for a in paper.activations] == [27, 27]
    assert paper.key.loop_samples == 10 * RATE and paper.window == 3
    pooled = features(network, ds, "pool5", SvmProtocol("pooled"), tmp_path)
    frames = network.geometry("pool5").frames
    assert [a.shape[0] for a in pooled.activations] == [frames(12 * RATE), frames(int(3.3 * RATE))]


# -- features and the cache ----------------------------------------------------------------------

def test_cache_hits_misses_and_keys(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders").subset(range(4))
    first = features(network, ds, "conv6", SvmProtocol("pooled"), tmp_path)
    assert first.cached == 0
    again = features(network, ds, "conv6", SvmProtocol("pooled"), tmp_path)
    assert again.cached == 4
    for a, b in zip(first.activations, again.activations):
        np.testing.assert_array_equal(a, b)
    # the input scale is part of the key and changes the features
    louder = features(network, ds, "conv6", SvmProtocol("pooled", input_scale=512), tmp_path)
    assert louder.cached == 0 and louder.key.input_scale == 512
    assert not np.allclose(louder.activations[0], first.activations[0])
    assert first.key.directory(tmp_path) != louder.key.directory(tmp_path)
    # a modified file misses the cache
    st = ds.paths[0].stat()
    os.utime(ds.paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert features(network, ds, "conv6", SvmProtocol("pooled"), tmp_path).cached == 3
    # another network misses the cache
    other = calibrated_network(seed=1)
    assert features(other, ds, "conv6", SvmProtocol("pooled"), tmp_path).cached == 0
    key = json.loads((first.key.directory(tmp_path / "cache") / "key.json").read_text())
    assert key["layer"] == "conv6" and key["fingerprint"] == weights_fingerprint(network)


def test_input_scale_does_not_change_the_networks_identity(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders").subset([0])
    fs = features(network, ds, "conv1", SvmProtocol("pooled", input_scale=512), tmp_path,
                  use_cache=False)
    wave = torch.from_numpy(sf.read(ds.paths[0], dtype="float32")[0])[None]
    with torch.no_grad():
        direct = network.features(wave * 2, ["conv1"])["conv1"][0].T.numpy()
    np.testing.assert_allclose(fs.activations[0], direct, rtol=1e-5, atol=1e-5)
    assert fs.key.fingerprint == weights_fingerprint(network)


def test_layers_by_module_number_and_unknown_layers(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders").subset([0])
    assert set(extract_features(network, ds, ["18"], SvmProtocol(), use_cache=False)) == {"pool5"}
    from soundnet_cli.errors import LayerError
    with pytest.raises(LayerError, match="unknown layer 'pool9'"):
        extract_features(network, ds, ["pool9"], SvmProtocol(), use_cache=False)


def test_undecodable_clips_are_excluded_and_reported(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders")
    bad = tmp_path / "noise" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    from soundnet_cli.datasets import Dataset
    ds = Dataset(ds.root, ds.paths + (bad,), np.append(ds.labels, 3), ds.classes, None, "folders")
    fs = features(network, ds, "pool5", SvmProtocol("pooled"), tmp_path)
    assert len(fs.dataset) == 24 and [p for p, _ in fs.failures] == [bad]
    assert "broken.wav" in fs.failures[0][1]
    assert bad not in fs.dataset.paths


# -- the saved model -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(data_root, network, tmp_path_factory):
    ds = load_dataset(data_root / "esc")
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for proto in ("paper", "pooled"):
        fs = extract_features(network, ds, ["pool5"], SvmProtocol(proto), cache_dir=cache)["pool5"]
        out[proto] = (fs, fit_svm(fs, SvmProtocol(proto), info={"note": "test"}))
    return out


@pytest.mark.parametrize("proto", ["paper", "pooled"])
def test_saved_model_round_trips(proto, fitted, tmp_path, network):
    fs, svm = fitted[proto]
    path = svm.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:  # plain arrays, no pickles
        assert set(z.files) == {"coef", "intercept", "mean", "scale", "meta"}
    loaded = SvmModel.load(path, expected_fingerprint=weights_fingerprint(network))
    assert loaded.classes == svm.classes and loaded.layer == "pool5"
    assert loaded.protocol == proto and loaded.info["note"] == "test"
    for acts in fs.activations[:5]:
        s1, c1 = svm.decision_steps(acts)
        s2, c2 = loaded.decision_steps(acts)
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(c1, c2)
    predicted = [loaded.predict(a) for a in fs.activations]
    truth = [fs.dataset.classes[i] for i in fs.dataset.labels]
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.9  # training accuracy


def test_saved_model_rejects_other_weights_and_bad_files(fitted, tmp_path):
    _, svm = fitted["pooled"]
    path = svm.save(tmp_path / "m.npz")
    other = weights_fingerprint(calibrated_network(seed=1))
    with pytest.raises(SvmError, match=r"m\.npz: this SVM was fit on features of network"):
        SvmModel.load(path, expected_fingerprint=other)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SvmError, match="junk.npz: not a soundnet-cli SVM model"):
        SvmModel.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SvmError, match="obj.npz: not a soundnet-cli SVM model"):
        SvmModel.load(tmp_path / "obj.npz")  # object arrays would need pickle: refused
    with np.load(path) as z:
        arrays = dict(z)
    arrays["coef"] = arrays["coef"][:, :-1]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(SvmError, match="cut.npz: array coef has shape"):
        SvmModel.load(tmp_path / "cut.npz")
    meta = json.loads(str(arrays["meta"][()]))
    arrays["coef"] = np.load(path)["coef"]
    arrays["meta"] = np.array(json.dumps({**meta, "format_version": 99}))
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(SvmError, match="newer than this soundnet-cli reads"):
        SvmModel.load(tmp_path / "new.npz")
    with pytest.raises(SvmError, match="no such SVM model file"):
        SvmModel.load(tmp_path / "absent.npz")


def test_decision_steps_and_times(fitted):
    fs, paper = fitted["paper"]
    steps, clip = paper.decision_steps(fs.activations[0])
    assert steps.shape == (25, 4)
    np.testing.assert_allclose(clip, steps.mean(axis=0))  # the paper averages its windows
    starts, ends = paper.step_times(25)
    hop = 8192 / RATE
    np.testing.assert_allclose(np.diff(starts[1:]), hop)
    assert starts[0] == 0 and np.all(ends > starts) and ends[-1] <= 10 + 1e-9 + 17438 / RATE
    scores = np.eye(4)[[0, 0, 2, 2, 2, 0]]
    seg = paper.segments(scores, 10.0)
    assert [(s["label"], s["score"]) for s in seg] == [("clicks", 1.0), ("low", 1.0),
                                                       ("clicks", 1.0)]
    centre_1 = (starts[1] + ends[1]) / 2  # step 1 owns one hop around its centre
    assert seg[0]["end"] == seg[1]["start"] == pytest.approx(centre_1 + hop / 2, abs=1e-3)
    assert seg[0]["start"] == 0 and seg[-1]["end"] == 10.0 and paper.segments(scores[:0], 1) == []
    _, pooled = fitted["pooled"]
    acts = fs.activations[0]
    steps, clip = pooled.decision_steps(acts)
    assert steps.shape == (27 - 3 + 1, 4) and clip.shape == (4,)
    with pytest.raises(SvmError, match="expected \\(frames, 32\\) activations"):
        pooled.decision_steps(acts[:, :5])


def test_two_class_models(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders")
    two = ds.subset(np.flatnonzero(ds.labels < 2))
    from soundnet_cli.datasets import Dataset
    two = Dataset(two.root, two.paths, two.labels, ds.classes[:2], None, "folders")
    fs = features(network, two, "pool5", SvmProtocol("pooled"), tmp_path)
    svm = fit_svm(fs, SvmProtocol("pooled"))
    assert svm.coef.shape[0] == 2
    assert [svm.predict(a) for a in fs.activations] == [two.classes[i] for i in two.labels]


# -- tagging with an SVM -------------------------------------------------------------------------

def test_tag_files_with_an_svm_scorer(fitted, network, tmp_path):
    # The one way to tag with an SVM (soundnet tag --svm): tag_files with tag.SvmScorer.
    _, svm = fitted["paper"]
    sf.write(tmp_path / "high.wav", make_clip("high", 99, 2.0), RATE)
    sf.write(tmp_path / "long.wav", make_clip("clicks", 98, 14.0), RATE)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    results = list(tag_files(network, [tmp_path / "high.wav", tmp_path / "bad.wav",
                                       tmp_path / "long.wav"], scorers=[SvmScorer(svm)]))
    high, bad, long = results
    top = high.head("svm").top_k(2)
    assert high.ok and top[0].label == "high" and len(top) == 2
    assert high.tiled and high.analysed_duration == pytest.approx(10.0)  # looped to 10 s as in training
    assert high.head("svm").scores.shape == (25, 4)
    assert not bad.ok and "bad.wav" in bad.error
    assert long.head("svm").top_k(1)[0].label == "clicks" and not long.tiled
    assert long.head("svm").steps == network.geometry("pool5").frames(14 * RATE) - 2
    d = json.loads(json.dumps(result_to_json(high, top_k=2, segments=True)))
    assert d["heads"][0]["top"][0]["label"] == "high" and len(d["heads"][0]["segments"]) == 25
    with pytest.raises(SvmError, match="fit on features of network"):
        next(tag_files(calibrated_network(seed=1), [tmp_path / "high.wav"],
                       scorers=[SvmScorer(svm)]))


# -- options ------------------------------------------------------------------------------------

def test_protocol_validation():
    with pytest.raises(SvmError, match="unknown protocol"):
        SvmProtocol("nope")
    with pytest.raises(SvmError, match="positive"):
        SvmProtocol("paper", C=0)
    with pytest.raises(SvmError, match="positive"):
        SvmProtocol("pooled", input_scale=-1)
    with pytest.raises(SvmError, match="unknown solver"):
        SvmProtocol("pooled", solver="sgd")
    with pytest.raises(SvmError, match="max_iter"):
        SvmProtocol("pooled", max_iter=0)
    assert SvmProtocol("paper").iterations == 50
    assert SvmProtocol("paper", solver="liblinear").iterations == 2000


def test_too_few_clips_to_choose_c(data_root, network, tmp_path):
    ds = load_dataset(data_root / "folders").subset(range(0, 24, 3))  # 2 per class
    fs = features(network, ds, "pool5", SvmProtocol("pooled"), tmp_path)
    with pytest.raises(DatasetError, match="choose C by inner cross-validation"):
        cross_validate(fs, SvmProtocol("pooled"), n_folds=2)
    report = cross_validate(fs, SvmProtocol("pooled", c_grid=(1.0,)), n_folds=2)  # no inner CV
    assert all(f.C == 1.0 for f in report.folds)


# -- the command ---------------------------------------------------------------------------------

runner = CliRunner()


def fit(*args: str):
    return runner.invoke(app, ["fit-svm", *args, "--workers", "0", "--device", "cpu", "-q"])


def test_cli_fit_svm_plots_the_confusion_matrix(data_root, checkpoint, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "confusion.png"
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"),
            "--protocol", "paper", "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"soundnet-cli" in png.read_bytes()  # provenance in the PNG's text chunks


def test_cli_fit_svm_json_and_saved_model(data_root, checkpoint, network, tmp_path):
    out = tmp_path / "svm.npz"
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"),
            "--json", "--out", str(out), "--protocol", "paper", "--layer", "18")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["layer"] == "pool5" and report["protocol"]["name"] == "paper"
    assert report["protocol"]["C"] == 0.01 and report["window_frames"] == 3
    assert report["frames_per_clip"] == [27] and report["accuracy"]["mean"] >= 0.9
    assert [f["test_fold"] for f in report["folds"]] == [1, 2, 3]
    assert report["model"] == str(out) and report["dataset"]["failed"] == []
    svm = SvmModel.load(out, expected_fingerprint=weights_fingerprint(network))
    assert svm.info["cv_accuracy"]["mean"] == report["accuracy"]["mean"]
    # second run with another C reads every clip from the cache
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"),
            "--json", "--protocol", "paper", "--C", "0.1")
    assert r.exit_code == 0 and json.loads(r.stdout)["cached_clips"] == 24
    # refuses to overwrite
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--out", str(out))
    assert r.exit_code == 2 and "--overwrite" in r.output
    # only the held-out folds asked for, each trained on all the others
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"),
            "--json", "--protocol", "paper", "--test-fold", "3", "--test-fold", "1")
    assert r.exit_code == 0, r.output
    only = json.loads(r.stdout)
    assert [f["test_fold"] for f in only["folds"]] == [1, 3]
    assert [f["accuracy"] for f in only["folds"]] == [report["folds"][0]["accuracy"],
                                                      report["folds"][2]["accuracy"]]
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--test-fold", "7")
    assert r.exit_code == 1 and "no fold 7" in r.stderr


def test_cli_table_output(data_root, checkpoint, tmp_path):
    r = runner.invoke(app, ["fit-svm", "--labels", str(data_root / "labels_nofold.csv"), "-w",
                            str(checkpoint), "--cache-dir", str(tmp_path / "c"), "--folds", "3",
                            "--workers", "0", "--device", "cpu", "--seed", "3"])
    assert r.exit_code == 0, r.output
    assert "mean ± std" in r.stdout and "per-class accuracy" in r.stdout
    assert "split 3/3" in r.stdout and "24 clips, 4 classes (csv layout)" in r.stderr
    # stderr is not a terminal here: cross-validation logs a line per fold as it finishes.
    assert [line.split(":")[0] for line in r.stderr.splitlines() if ": accuracy " in line] == [
        "split 1/3", "split 2/3", "split 3/3"]
    assert "cross-validation (folds)" not in r.stderr  # the lines, not also the bar's last frame


def test_cli_reports_undecodable_clips_and_exits_1(data_root, checkpoint, tmp_path):
    import shutil
    ds = tmp_path / "ds"
    shutil.copytree(data_root / "folders", ds)
    (ds / "noise" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    r = fit(str(ds), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"), "--json",
            "--folds", "3")
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["dataset"]["used_clips"] == 24 and report["dataset"]["clips"] == 25
    assert report["dataset"]["failed"][0]["path"].endswith("broken.wav")
    assert "broken.wav" in r.stderr


def test_cli_bad_datasets_fail_clearly(data_root, checkpoint, tmp_path):
    w = ["-w", str(checkpoint), "--cache-dir", str(tmp_path / "c")]
    (tmp_path / "flat").mkdir()
    r = fit(str(tmp_path / "flat"), *w)
    assert r.exit_code == 1 and "cannot tell the dataset layout" in r.stderr
    r = fit(*w)
    assert r.exit_code == 2 and "give a DATASET directory or --labels" in r.stderr
    csv = tmp_path / "l.csv"
    csv.write_text((data_root / "labels_nofold.csv").read_text() + "missing/clip.wav,low\n")
    r = fit("--labels", str(csv), *w, "--folds", "3")  # paths relative to the CSV: none exist
    assert r.exit_code == 1 and "dataset is empty" in r.stderr
    assert "25 listed files missing" in r.stderr and "folders/clicks/0.wav" in r.stderr
    r = fit(str(data_root), "--labels", str(csv), *w, "--folds", "3")  # relative to DATASET
    assert r.exit_code == 1 and "listed in the metadata do not exist" in r.stderr
    assert "clip.wav" in r.stderr and "--allow-missing" in r.stderr
    r = fit(str(data_root), "--labels", str(csv), *w, "--folds", "3", "--allow-missing",
            "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dataset"]["missing"] == [str(data_root / "missing/clip.wav")]
    r = fit("--labels", str(data_root / "labels_nofold.csv"), *w, "--folds", "7")
    assert r.exit_code == 1 and "needs at least 7 clips per class" in r.stderr
    r = fit(str(data_root / "folders"), *w, "--layout", "esc50")
    assert r.exit_code == 1 and "esc50.csv" in r.stderr
    r = fit(str(data_root / "folders"), *w, "--layer", "conv99")
    assert r.exit_code == 2 and "unknown layer 'conv99'" in r.stderr
    r = fit(str(data_root / "folders"), *w, "--c-grid", "1,x")
    assert r.exit_code == 2 and "comma-separated" in r.output


@pytest.mark.parametrize("protocol", ["paper", "pooled"])
def test_cli_tag_with_svm_names_the_right_classes(protocol, data_root, checkpoint, tmp_path):
    """fit-svm --out, then `soundnet tag --svm`: SVM classes, decision values, segments, JSON."""
    out = tmp_path / "svm.npz"
    r = fit(str(data_root / "esc"), "-w", str(checkpoint), "--cache-dir", str(tmp_path / "c"),
            "--out", str(out), "--protocol", protocol, "--layer", "pool5")
    assert r.exit_code == 0, r.output
    clips = sorted((data_root / "folders").glob("*/0.wav"))
    r = runner.invoke(app, ["tag", *map(str, clips), "-w", str(checkpoint), "--svm", str(out),
                            "--json", "--segments", "--top-k", "1", "--device", "cpu",
                            "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == len(clips)
    for clip, row in zip(clips, rows):
        (head,) = row["heads"]
        assert head["name"] == "svm" and head["probabilities"] is False
        assert head["top"][0]["label"] == clip.parent.name
        assert head["segments"]
    other = tmp_path / "other.safetensors"
    save_checkpoint(calibrated_network(seed=1), other)
    r = runner.invoke(app, ["tag", str(clips[0]), "-w", str(other), "--svm", str(out),
                            "--device", "cpu", "-q"])
    assert r.exit_code == 1 and "network" in r.output.lower()
