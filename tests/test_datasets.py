"""datasets: the three layouts, their errors, and cross-validation splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from soundnet_cli.datasets import cv_splits, detect_layout, load_dataset, readable_label
from soundnet_cli.errors import DatasetError


_tones = iter(range(200, 20_000, 37))


def _distinct() -> float:
    """A new tone frequency per clip: identical clips in two folds are refused as leakage."""
    return float(next(_tones))


def _esc50(root: Path, write_audio, rows: list[tuple[str, int, int, str]], suffix=".wav",
           write=True) -> Path:
    (root / "meta").mkdir(parents=True, exist_ok=True)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for name, fold, target, category in rows:
        lines.append(f"{name}{suffix},{fold},{target},{category},False,1,A")
        if write:
            write_audio(f"{root.name}/audio/{name}{suffix}", 0.2, freq=_distinct())
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


ROWS = [(f"{f}-{i}-A-{t}", f, t, c) for f in (1, 2, 3) for i in range(2)
        for t, c in ((0, "dog"), (14, "chirping_birds"))]


def test_esc50_layout_names_targets_and_folds(tmp_path, write_audio):
    root = _esc50(tmp_path / "esc", write_audio, ROWS, suffix=".ogg")
    ds = load_dataset(root)
    assert ds.layout == "esc50" and len(ds) == 12
    # Ordered by target, names from category, spelled as tag spells them (one spelling).
    assert ds.classes == ("dog", "chirping birds")
    assert all(p.suffix == ".ogg" for p in ds.paths)  # file names come from the CSV
    assert sorted(set(ds.folds.tolist())) == [1, 2, 3]
    assert ds.class_counts() == {"dog": 6, "chirping birds": 6}
    assert readable_label("chirping_birds") == "chirping birds"


def test_esc50_missing_files_are_listed(tmp_path, write_audio):
    root = _esc50(tmp_path / "esc", write_audio, ROWS)
    gone = root / "audio" / f"{ROWS[0][0]}.wav"
    gone.unlink()
    ds = load_dataset(root)
    assert len(ds) == 11 and ds.missing == (gone,)


def test_esc50_conflicting_target_names_fail(tmp_path, write_audio):
    rows = ROWS + [("x", 1, 0, "cat")]
    root = _esc50(tmp_path / "esc", write_audio, rows)
    with pytest.raises(DatasetError, match=r"esc50\.csv:\d+: target 0 is both 'dog' and 'cat'"):
        load_dataset(root)


def test_unreadable_or_incomplete_csv(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(DatasetError, match="esc50.csv: (cannot read CSV|missing column)"):
        load_dataset(tmp_path)
    (tmp_path / "meta" / "esc50.csv").write_text("filename,fold\na.wav,1\n")
    with pytest.raises(DatasetError, match="missing column.*target, category"):
        load_dataset(tmp_path)


def test_folder_layout(tmp_path, write_audio):
    for c in ("rain", "dog"):
        for i in range(2):
            write_audio(f"ds/{c}/{i}.wav", 0.2, freq=_distinct())
    write_audio("ds/dog/deeper/x.flac", 0.2)
    (tmp_path / "ds" / "rain" / "notes.txt").write_text("not audio")
    ds = load_dataset(tmp_path / "ds")
    assert ds.layout == "folders" and ds.folds is None
    assert ds.classes == ("dog", "rain") and ds.class_counts() == {"dog": 3, "rain": 2}


def test_folder_layout_empty_class_and_empty_dataset(tmp_path, write_audio):
    write_audio("ds/dog/0.wav", 0.2)
    (tmp_path / "ds" / "cat").mkdir()
    with pytest.raises(DatasetError, match="without audio files: cat"):
        load_dataset(tmp_path / "ds")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="dataset is empty"):
        load_dataset(tmp_path / "empty")


def test_undetectable_layout(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset layout"):
        detect_layout(tmp_path / "flat")
    with pytest.raises(DatasetError, match="no such dataset directory"):
        load_dataset(tmp_path / "nowhere")


def test_labels_csv_relative_paths_and_folds(tmp_path, write_audio):
    write_audio("clips/a.wav", 0.2)
    write_audio("clips/b.wav", 0.2)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,fold\nclips/a.wav,dog,1\nclips/b.wav,cat,2\nclips/c.wav,cat,2\n")
    ds = load_dataset(None, labels_csv=csv)
    assert ds.layout == "csv" and ds.classes == ("cat", "dog")
    assert ds.folds.tolist() == [1, 2] and ds.missing == (tmp_path / "clips" / "c.wav",)
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,fold\nclips/a.wav,dog,one\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: fold 'one' is not an integer"):
        load_dataset(None, labels_csv=bad)
    with pytest.raises(DatasetError, match="no such labels file"):
        load_dataset(None, labels_csv=tmp_path / "nope.csv")


def test_leave_one_fold_out_splits(tmp_path, write_audio):
    ds = load_dataset(_esc50(tmp_path / "esc", write_audio, ROWS))
    splits = cv_splits(ds, n_folds=7)  # n_folds is ignored for predefined folds
    assert [s.test_fold for s in splits] == [1, 2, 3]
    for s in splits:
        assert set(ds.folds[s.test].tolist()) == {s.test_fold}
        assert s.test_fold not in ds.folds[s.train]
        assert np.intersect1d(s.train, s.test).size == 0
        assert s.train.size + s.test.size == len(ds)
    # only the folds that are present: a subset with folds 1 and 3
    sub = ds.select_folds([1, 3])
    assert [s.name for s in cv_splits(sub)] == ["fold 1", "fold 3"]


def test_test_folds_hold_out_only_those(tmp_path, write_audio):
    ds = load_dataset(_esc50(tmp_path / "esc", write_audio, ROWS))
    (only,) = cv_splits(ds, test_folds=[2])
    assert only.test_fold == 2 and set(ds.folds[only.train].tolist()) == {1, 3}
    assert [s.test_fold for s in cv_splits(ds, test_folds=[3, 1])] == [1, 3]
    with pytest.raises(DatasetError, match=r"no fold 5 \(folds present: 1, 2, 3\)"):
        cv_splits(ds, test_folds=[5])


def test_predefined_folds_errors(tmp_path, write_audio):
    rows = ROWS + [("lonely", 2, 5, "cat")]
    ds = load_dataset(_esc50(tmp_path / "esc", write_audio, rows))
    with pytest.raises(DatasetError, match=r"single fold.*cat \(only in fold 2\)"):
        cv_splits(ds)
    one = load_dataset(_esc50(tmp_path / "one", write_audio, [r for r in ROWS if r[1] == 1]))
    with pytest.raises(DatasetError, match="needs at least 2 folds"):
        cv_splits(one)


def test_stratified_splits(tmp_path, write_audio):
    for c, n in (("a", 6), ("b", 4)):
        for i in range(n):
            write_audio(f"ds/{c}/{i}.wav", 0.1, freq=_distinct())
    ds = load_dataset(tmp_path / "ds")
    splits = cv_splits(ds, 3, seed=1)
    assert len(splits) == 3
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(len(ds)))
    for s in splits:
        assert set(ds.labels[s.test].tolist()) == {0, 1}  # stratified: every class in every fold
    assert [s.test.tolist() for s in cv_splits(ds, 3, seed=1)] == [s.test.tolist() for s in splits]
    assert [s.test.tolist() for s in cv_splits(ds, 3, seed=2)] != [s.test.tolist() for s in splits]
    with pytest.raises(DatasetError, match=r"5-fold cross-validation needs at least 5 clips per "
                                           r"class; too few in: b \(4\)"):
        cv_splits(ds, 5)
    with pytest.raises(DatasetError, match="at least 2 folds"):
        cv_splits(ds, 1)


def test_class_names_are_readable_in_every_layout(tmp_path, write_audio):
    """fit-svm printed ESC-50's 'clock_tick' where tag printed 'clock tick'."""
    write_audio("folders/clock_tick/a.wav", 0.2)
    write_audio("folders/rain/b.wav", 0.2)
    assert load_dataset(tmp_path / "folders").classes == ("clock tick", "rain")
    write_audio("clash/door_knock/a.wav", 0.2)
    write_audio("clash/door knock/b.wav", 0.2)
    with pytest.raises(DatasetError, match="differ only in '_'"):
        load_dataset(tmp_path / "clash")
