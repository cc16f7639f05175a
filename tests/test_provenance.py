"""Training-data records and seen clips: fingerprints, records, the split policy, fit-svm's report.

The networks are the tiny random ones of conftest (accuracy does not matter here, only which
clips are tested); the datasets are generated tones in the ESC-50 layout, three folds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import make_tiny_model, synth
from soundnet_cli.datasets import Split, cv_splits, load_dataset
from soundnet_cli.errors import DatasetError, WeightsError
from soundnet_cli.provenance import (
    HEX_DIGITS,
    RECORD_KEY,
    SeenCheck,
    TrainingData,
    clip_fingerprint,
    dataset_record,
    exclude_seen,
    seen_mask,
    training_record,
)
from soundnet_cli.weights.checkpoint import load_checkpoint, rewrite_provenance, save_checkpoint

RATE = 22_050
FREQS = (300.0, 1200.0, 3600.0)
PER_CLASS = 6  # two clips per class and fold


def make_esc(root: Path) -> Path:
    """Three tone classes, ESC-50 layout, folds 1-3 (18 clips, 6 per fold)."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for c, f in enumerate(FREQS):
        for i in range(PER_CLASS):
            fold = i % 3 + 1
            name = f"{fold}-{c}{i}-A-{c}.wav"
            x = synth(1.0, freq=f * (1 + 0.01 * i))[:, 0] + 0.01 * synth(1.0, kind="noise",
                                                                          seed=c * 10 + i)[:, 0]
            sf.write(str(root / "audio" / name), x, RATE)
            rows.append(f"{name},{fold},{c},tone_{c},False,{c}{i},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def esc(tmp_path_factory) -> Path:
    return make_esc(tmp_path_factory.mktemp("data") / "tones")


def trained_on(tmp_path: Path, esc: Path, index) -> Path:
    """A tiny network checkpoint whose record says it was trained on clips ``index``."""
    ds = load_dataset(esc)
    path = tmp_path / "net.safetensors"
    save_checkpoint(make_tiny_model(), path,
                    provenance={"kind": "supervised", RECORD_KEY: dataset_record(ds, index)})
    return path


# -- fingerprints and records -------------------------------------------------------------------

def test_fingerprint_is_of_the_bytes_and_survives_copying(esc, tmp_path):
    ds = load_dataset(esc)
    record = dataset_record(ds, range(len(ds)))
    copy = tmp_path / "elsewhere" / "renamed"
    shutil.copytree(esc, copy)
    moved = load_dataset(copy)
    mask = seen_mask({RECORD_KEY: record}, moved)
    assert mask is not None and mask.all() and len(mask) == len(ds)
    # a labels CSV over the copied files (another layout, other paths) is still recognised
    rows = ["path,label"] + [f"audio/{p.name},{ds.classes[y]}" for p, y in zip(moved.paths,
                                                                              moved.labels)]
    (copy / "labels.csv").write_text("\n".join(rows) + "\n")
    as_csv = load_dataset(None, labels_csv=copy / "labels.csv")
    assert seen_mask({RECORD_KEY: record}, as_csv).all()  # type: ignore[union-attr]
    # other bytes (here: the same samples re-encoded as 24-bit) are another clip
    first = moved.paths[0]
    wave, rate = sf.read(str(first))
    sf.write(str(first), wave, rate, subtype="PCM_24")
    mask = seen_mask({RECORD_KEY: record}, load_dataset(copy))
    assert mask is not None and not mask[0] and mask[1:].all()


def test_record_holds_sorted_short_fingerprints_and_no_paths(esc):
    ds = load_dataset(esc)
    assert ds.folds is not None
    train = np.flatnonzero(ds.folds != 3)
    record = dataset_record(ds, train)
    assert record["dataset"] == "tones" and record["layout"] == "esc50"
    assert record["clips"] == 12 and record["fingerprint"] == "sha256-16"
    assert record["fingerprints"] == sorted(record["fingerprints"])
    assert all(len(f) == HEX_DIGITS and int(f, 16) >= 0 for f in record["fingerprints"])
    assert record["fingerprints"] == sorted(clip_fingerprint(ds.paths[i]) for i in train)
    assert str(esc) not in json.dumps(record) and record["inherited_clips"] == 0
    # about 20 bytes per clip in the header
    size = len(json.dumps(record["fingerprints"]))
    assert size == 12 * (HEX_DIGITS + 4)  # 16 digits, 2 quotes, ", "; brackets for the last


def test_record_carries_the_init_networks_clips_over(esc):
    ds = load_dataset(esc)
    assert ds.folds is not None
    parent = {RECORD_KEY: dataset_record(ds, np.flatnonzero(ds.folds == 1))}
    child = dataset_record(ds, np.flatnonzero(ds.folds == 2), init_provenance=parent)
    assert child["clips"] == 6 and child["inherited_clips"] == 6
    assert child["init"] == {"dataset": "tones", "clips": 6}
    mask = seen_mask({RECORD_KEY: child}, ds)
    assert mask is not None and mask.tolist() == (ds.folds != 3).tolist()
    # an --init without a record adds nothing
    plain = dataset_record(ds, np.flatnonzero(ds.folds == 2), init_provenance={"kind": "x"})
    assert plain["inherited_clips"] == 0 and plain["init"] is None


def test_without_a_record_nothing_is_seen(esc):
    ds = load_dataset(esc)
    assert seen_mask({}, ds) is None and seen_mask(None, ds) is None
    assert TrainingData.from_provenance({"kind": "imported"}) is None
    # a record without fingerprints (a distill student) cannot flag anything either
    empty = training_record([], dataset="targets", layout="soundnet-targets", clips=5)
    assert seen_mask({RECORD_KEY: empty}, ds) is None
    assert SeenCheck(TrainingData.from_provenance({RECORD_KEY: empty})).policy == "unchecked"


def test_malformed_records_are_refused(esc):
    with pytest.raises(WeightsError, match="scheme"):
        TrainingData.from_provenance({RECORD_KEY: {"fingerprint": "md5",
                                                   "fingerprints": ["0" * 16]}})
    with pytest.raises(WeightsError, match="malformed"):
        TrainingData.from_provenance({RECORD_KEY: {"fingerprint": "sha256-16",
                                                   "fingerprints": ["abc"]}})
    with pytest.raises(WeightsError, match="malformed"):
        TrainingData.from_provenance({RECORD_KEY: ["not", "a", "dict"]})


def test_rewrite_provenance_keeps_every_tensor(tmp_path, esc):
    src = tmp_path / "a.safetensors"
    save_checkpoint(make_tiny_model(), src, provenance={"kind": "old"}, half=True)
    before = load_checkpoint(src)
    out = rewrite_provenance(src, {**before.provenance, "note": "added"}, tmp_path / "b.st")
    after = load_checkpoint(out)
    assert after.provenance == {"kind": "old", "note": "added"}
    assert after.config == before.config and after.state_dict.keys() == before.state_dict.keys()
    for k, v in before.state_dict.items():
        assert after.state_dict[k].dtype == v.dtype and bool((after.state_dict[k] == v).all())
    assert after.build().fingerprint == before.build().fingerprint


# -- the split policy ---------------------------------------------------------------------------

def splits_and_mask(esc, seen_clips):
    ds = load_dataset(esc)
    mask = np.zeros(len(ds), dtype=bool)
    mask[list(seen_clips)] = True
    return ds, cv_splits(ds), mask


def test_seen_test_clips_are_excluded_and_counted(esc):
    ds, splits, _ = splits_and_mask(esc, [])
    assert ds.folds is not None
    fold1 = np.flatnonzero(ds.folds == 1)
    fold2 = np.flatnonzero(ds.folds == 2)
    mask = np.isin(np.arange(len(ds)), np.concatenate([fold1, fold2[:2]]))
    out = exclude_seen(splits, mask, dataset=ds)
    assert [s.excluded for s in out] == [6, 2, 0]
    assert [s.test.size for s in out] == [0, 4, 6]
    assert not mask[np.concatenate([s.test for s in out])].any()
    for before, after in zip(splits, out):  # seen clips still train
        assert np.array_equal(before.train, after.train) and not after.contaminated


def test_allow_seen_keeps_them_and_marks_the_fold(esc):
    ds, splits, mask = splits_and_mask(esc, [0, 1])
    out = exclude_seen(splits, mask, allow_seen=True)
    assert [s.test.size for s in out] == [s.test.size for s in splits]
    assert sum(s.seen for s in out) == 2 and any(s.contaminated for s in out)
    assert all(s.excluded == 0 for s in out)
    assert exclude_seen(splits, None) == splits


def test_nothing_unseen_left_is_an_error_with_advice(esc):
    ds, splits, _ = splits_and_mask(esc, range(18))
    with pytest.raises(DatasetError) as e:
        exclude_seen(splits, np.ones(len(ds), dtype=bool), dataset=ds)
    msg = str(e.value)
    assert "every test clip (18 of 18" in msg and "--allow-seen" in msg
    assert "--train-folds 1,2" in msg and "--test-fold 3" in msg
    one = [Split("split 1/2", np.arange(9), np.arange(9, 18))]
    with pytest.raises(DatasetError, match="evaluate on clips it has not seen"):
        exclude_seen(one, np.ones(18, dtype=bool))


# -- fit-svm ------------------------------------------------------------------------------------

def fit(run, esc, weights, tmp_path, *extra):
    return run("fit-svm", esc, "-w", weights, "--cache-dir", tmp_path / "cache", "--workers", "0",
               "--device", "cpu", "--layer", "conv3", "--c-grid", "0.01", *extra)


def test_fit_svm_all_test_clips_seen_exits_1_with_advice(run, esc, tmp_path):
    weights = trained_on(tmp_path, esc, range(18))
    r = fit(run, esc, weights, tmp_path, "--json")
    assert r.exit_code == 1 and r.stdout == ""
    assert "trained on every test clip" in r.stderr and "--train-folds 1,2" in r.stderr
    assert "--allow-seen" in r.stderr
    assert not (tmp_path / "cache").exists()  # refused before computing any feature
    # --test-fold of a seen fold: the same
    r = fit(run, esc, weights, tmp_path, "--test-fold", "2")
    assert r.exit_code == 1 and "--test-fold 2" in r.stderr


def test_fit_svm_excludes_seen_clips_and_reports_them(run, esc, tmp_path):
    ds = load_dataset(esc)
    assert ds.folds is not None
    seen = np.concatenate([np.flatnonzero(ds.folds == 1), np.flatnonzero(ds.folds == 2)[:2]])
    weights = trained_on(tmp_path, esc, seen)
    r = fit(run, esc, weights, tmp_path, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert [(f["test_fold"], f["test_clips"], f["excluded_seen"]) for f in report["folds"]] \
        == [(2, 4, 2), (3, 6, 0)]
    assert report["skipped_folds"] == [{"name": "fold 1", "test_fold": 1, "excluded_seen": 6,
                                        "reason": "every test clip was in the network's "
                                                  "training data"}]
    assert report["excluded_seen"] == 8 and not report["accuracy"]["contaminated"]
    assert report["accuracy"]["folds"] == 2
    assert not any(f["contaminated"] for f in report["folds"])
    assert report["seen"]["seen_clips"] == 8 and report["seen"]["policy"].startswith("excluded")
    assert report["seen"]["record"]["dataset"] == "tones" and report["seen"]["reason"]
    assert "8 of 18 clips are in the network's training data" in r.stderr
    assert all(v is None or 0 <= v <= 1 for v in report["per_class"].values())
    table = fit(run, esc, weights, tmp_path)
    assert table.exit_code == 0, table.output
    assert "excluded" in table.stdout and "not tested" in table.stdout
    assert "8 test clip(s) the network was trained on" in table.stdout
    assert "contaminated" not in table.stdout


def test_fit_svm_allow_seen_marks_every_affected_figure(run, esc, tmp_path):
    ds = load_dataset(esc)
    assert ds.folds is not None
    weights = trained_on(tmp_path, esc, np.flatnonzero(ds.folds == 1))
    r = fit(run, esc, weights, tmp_path, "--json", "--allow-seen")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert [(f["test_fold"], f["test_clips"], f["seen_test_clips"], f["contaminated"])
            for f in report["folds"]] == [(1, 6, 6, True), (2, 6, 0, False), (3, 6, 0, False)]
    assert report["accuracy"]["contaminated"] and report["excluded_seen"] == 0
    assert report["seen"]["policy"] == "kept (contaminated)"
    table = fit(run, esc, weights, tmp_path, "--allow-seen")
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines()
            if line.count("│") > 3}
    assert "contaminated" in rows["fold 1"] and "contaminated" not in rows["fold 2"]
    assert "contaminated" in rows["mean ± std"]


def test_fit_svm_network_without_record_is_not_checked(run, esc, tmp_path, tiny_checkpoint):
    r = fit(run, esc, tiny_checkpoint, tmp_path, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["seen"] == {"record": None, "seen_clips": 0, "policy": "unchecked",
                              "reason": None}
    assert report["excluded_seen"] == 0 and len(report["folds"]) == 3
    assert "training data" not in r.stderr


# -- train --val-fold with an --init network ----------------------------------------------------

def test_train_validation_leaves_out_clips_the_init_network_saw(esc):
    from soundnet_cli.training.supervised import split, unseen_validation

    ds = load_dataset(esc)
    assert ds.folds is not None
    train, val = split(ds, 3, None)
    fold3 = np.flatnonzero(ds.folds == 3)
    some = {RECORD_KEY: dataset_record(ds, fold3[:2])}
    kept, what = unseen_validation(ds, train, val, some, 3, False)
    assert kept.tolist() == fold3[2:].tolist()
    assert what == {"excluded": 2, "kept": 0, "contaminated": False}
    kept, what = unseen_validation(ds, train, val, some, 3, True)
    assert kept.tolist() == val.tolist() and what["contaminated"] and what["kept"] == 2
    every = {RECORD_KEY: dataset_record(ds, fold3)}
    with pytest.raises(DatasetError, match="every validation clip.*--allow-seen"):
        unseen_validation(ds, train, val, every, 3, False)
    kept, what = unseen_validation(ds, train, val, {"kind": "imported"}, 3, False)
    assert kept.tolist() == val.tolist() and what == {"excluded": 0, "kept": 0,
                                                       "contaminated": False}


def test_cli_train_refuses_to_validate_only_on_clips_init_saw(run, esc, tmp_path):
    ds = load_dataset(esc)
    assert ds.folds is not None
    init = trained_on(tmp_path, esc, np.flatnonzero(ds.folds == 3))
    r = run("train", esc, "--init", init, "--val-fold", "3", "--epochs", "1", "--run-dir",
            tmp_path / "run", "--workers", "0", "--device", "cpu", "-q")
    assert r.exit_code == 1 and "every validation clip" in r.stderr
    assert "--allow-seen" in r.stderr and not (tmp_path / "run" / "last.safetensors").exists()


def test_a_heads_own_record_counts_only_for_that_head():
    """The embedded network's layout: no trunk record, the esc50 head's clips under its name."""
    from soundnet_cli.provenance import ANY_HEAD, TrainingData, training_record

    record = training_record(["a" * 16, "b" * 16], dataset="esc50", layout="esc50", clips=2)
    prov = {"heads": {"esc50": {"training_data": record}, "objects": {"trained_on": "videos"}}}
    assert TrainingData.from_provenance(prov) is None  # the trunk: fit-svm tests on every clip
    assert TrainingData.from_provenance(prov, "objects") is None
    head = TrainingData.from_provenance(prov, "esc50")
    assert head is not None and head.fingerprints == {"a" * 16, "b" * 16}
    assert TrainingData.from_provenance(prov, ANY_HEAD).fingerprints == head.fingerprints
    trunk = training_record(["c" * 16], dataset="x", layout="folders", clips=1)
    both = TrainingData.from_provenance({"training_data": trunk, **prov}, "esc50")
    assert both.fingerprints == {"a" * 16, "b" * 16, "c" * 16}
    # a fine-tune drops the head, so it inherits only the trunk's record
    child = training_record(["d" * 16], dataset="mine", layout="folders", clips=1,
                            init_provenance={"training_data": trunk, **prov})
    assert set(child["fingerprints"]) == {"c" * 16, "d" * 16}
    with pytest.raises(WeightsError, match="malformed"):
        TrainingData.from_provenance({"heads": {"esc50": "not a record"}}, "esc50")
