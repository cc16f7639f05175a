"""Regression tests for the failures of the fault campaigns (issues #16 and #22), one or more
per item.

Each test failed before its fix. They are fast (tiny network, generated audio, in process);
the campaign itself (subprocesses, signals, a full file system, fuzzing) is tests/test_fault.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from soundnet_cli.audio import AUDIO_SUFFIXES, LoudAudioWarning, audio_info, load_audio
from soundnet_cli.datasets import cv_splits, load_dataset
from soundnet_cli.distill import (
    read_clip_probs,
    read_header,
    read_index,
)
from soundnet_cli.errors import (
    AudioError,
    DatasetError,
    SvmError,
    TargetsError,
    WeightsError,
)
from soundnet_cli.extract import extract_files
from soundnet_cli.files import ExtractRecord, Manifest
from soundnet_cli.files.fsutil import find_files, remove_stale_parts
from soundnet_cli.svm.cache import FeatureCache, FeatureKey
from soundnet_cli.svm import SvmModel
from soundnet_cli.tagging import tag_files
from soundnet_cli.weights import load_checkpoint
from helpers import tiny_svm, tiny_targets

SRC = str(Path(__file__).resolve().parents[1] / "src")


def finishes(fn, seconds: float = 60.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"did not finish within {seconds} s (hung)"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def strict_json(line: str):
    def refuse(token):
        raise ValueError(f"invalid JSON constant {token}")
    return json.loads(line, parse_constant=refuse)


# -- 1. special files ----------------------------------------------------------------------------


def test_fifo_input_is_reported_not_opened(tmp_path, write_audio, tiny_model):
    good = write_audio("good.wav", 0.5)
    fifo = tmp_path / "f.wav"
    os.mkfifo(fifo)
    files, problems = find_files([good, fifo], AUDIO_SUFFIXES)
    assert files == [good] and "not a regular file (a FIFO)" in problems[0][1]
    with pytest.raises(AudioError, match="f.wav: not a regular file"):
        finishes(lambda: audio_info(fifo), 20)
    results = finishes(lambda: list(tag_files(tiny_model, [good, fifo])), 60)
    assert results[0].ok and not results[1].ok and "FIFO" in results[1].error


def test_fifo_inside_a_directory_is_not_listed(tmp_path, write_audio):
    good = write_audio("d/good.wav", 0.2)
    os.mkfifo(tmp_path / "d" / "f.wav")
    assert find_files([tmp_path / "d"], AUDIO_SUFFIXES) == ([good], [])


# -- 2. decoding processes die with their parent ---------------------------------------------------


def test_decoders_die_with_a_killed_parent(tmp_path, write_audio):
    files = [str(write_audio(f"a{i}.wav", 2.0)) for i in range(8)]
    script = (
        "import sys, time\n"
        "from soundnet_cli.runtime.decode import DecodePool\n"
        "pool = DecodePool(sys.argv[1:], 22050, workers=2, max_bytes=1)\n"
        "print(' '.join(str(p.pid) for p in pool._procs), flush=True)\n"
        "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, *files], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    proc.kill()  # SIGKILL: no clean-up runs in the parent
    proc.wait()
    deadline = 30
    import time
    start = time.monotonic()
    while any(_alive(p) for p in pids) and time.monotonic() - start < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a decoding process outlived its parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


# -- 3. huge finite samples -----------------------------------------------------------------------


@pytest.fixture
def huge(tmp_path) -> Path:
    path = tmp_path / "huge.wav"
    sf.write(str(path), np.full(22_050, 3e38, np.float32), 22_050, subtype="FLOAT")
    return path


def test_huge_samples_fail_the_file_in_tag_and_extract(huge, write_audio, tiny_model, tmp_path):
    good = write_audio("good.wav", 1.0)
    tags = list(tag_files(tiny_model, [good, huge]))
    assert tags[0].ok and not tags[1].ok and "not finite" in tags[1].error
    outs = {o.path: o for o in extract_files(tiny_model, [good, huge], ["conv4"], tmp_path / "o")}
    assert outs[good].ok and not outs[huge].ok and "peaks at 3e+38" in outs[huge].error
    assert not (tmp_path / "o" / "huge.conv4.npy").exists()


def test_huge_samples_fail_a_streamed_file(huge, tiny_model, tmp_path):
    from soundnet_cli.runtime import RunOptions

    outs = list(extract_files(tiny_model, [huge], ["conv3"], tmp_path / "o",
                              options=RunOptions(long_seconds=0.1, chunk_seconds=0.25)))
    assert not outs[0].ok and "not finite" in outs[0].error
    assert not list((tmp_path / "o").glob("*.npy"))


def test_loud_files_warn(write_audio, tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(str(path), np.full(2205, 50.0, np.float32), 22_050, subtype="FLOAT")
    with pytest.warns(LoudAudioWarning, match="peaks at 50"):
        load_audio(path)


def test_tag_json_never_holds_nan(huge, write_audio, tiny_checkpoint, run):
    good = write_audio("good.wav", 1.0)
    r = run("tag", good, huge, "--json", "--weights", tiny_checkpoint, "--workers", "0", "-q")
    assert r.exit_code == 1
    docs = [strict_json(line) for line in r.stdout.splitlines()]
    assert [d["ok"] for d in docs] == [True, False]


def test_training_excludes_huge_clips(huge, write_audio):
    from soundnet_cli.training.supervised import decode_all

    waves, errors = decode_all([write_audio("ok.wav", 0.5), huge], 22_050, workers=0)
    assert waves[0] is not None and waves[1] is None
    assert "huge.wav" in errors[0] and "excluded from training" in errors[0]


# -- 4 and 18. unreadable inputs ------------------------------------------------------------------


def test_unreadable_file_on_the_command_line_is_one_failure(write_audio, tiny_checkpoint, run,
                                                            monkeypatch):
    good, locked = write_audio("good.wav", 0.5), write_audio("locked.wav", 0.5)
    real = os.access
    monkeypatch.setattr(os, "access",  # what a non-root user sees for a mode-000 file
                        lambda p, mode, *a, **k: False if Path(p) == locked else real(p, mode))
    r = run("tag", good, locked, "--json", "--weights", tiny_checkpoint, "--workers", "0", "-q")
    assert r.exit_code == 1, r.output
    docs = {Path(d["path"]).name: d for d in map(json.loads, r.stdout.splitlines())}
    assert docs["good.wav"]["ok"] and "permission denied" in docs["locked.wav"]["error"]


def test_unreadable_subdirectory_is_reported(tmp_path, write_audio, monkeypatch):
    a = write_audio("d/a.wav", 0.2)
    write_audio("d/sub/b.wav", 0.2)
    real = os.scandir

    def scandir(path):
        if Path(path) == tmp_path / "d" / "sub":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, problems = find_files([tmp_path / "d"], AUDIO_SUFFIXES, recursive=True)
    assert files == [a]
    assert problems[0][0] == tmp_path / "d" / "sub" and "cannot list" in problems[0][1]


# -- 5. concurrent runs into one manifest -----------------------------------------------------------


def _record(i: int, out: Path) -> ExtractRecord:
    return ExtractRecord(f"in{i}.wav", str(out / f"in{i}.pool5.npy"), "pool5", "none", 3, 4,
                         0.1, 0.2, 0.0, 1.0, 0.0)


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_two_runs_into_one_manifest_keep_both_rows(tmp_path, name):
    path = tmp_path / name
    first, second = Manifest(path), Manifest(path)  # both started before either wrote
    first.update([_record(i, tmp_path) for i in range(0, 5)])
    second.update([_record(i, tmp_path) for i in range(5, 9)])
    first.write()
    second.write()
    assert len(Manifest(path).rows) == 9
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no lock or temporary files left


# -- 6. a full disk --------------------------------------------------------------------------------


def test_full_disk_still_lists_failures_and_summary(write_audio, tiny_checkpoint, run, tmp_path,
                                                    monkeypatch):
    import soundnet_cli.extract as extract

    write_audio("d/a.wav", 0.5)
    b = write_audio("d/b.wav", 0.5)
    real = extract.save_array

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(extract, "save_array",
                        lambda path, array: full() if path.name.startswith("b.") else
                        real(path, array))
    monkeypatch.setattr("soundnet_cli.files.manifest.write_manifest", full)  # the manifest writer
    r = run("extract", tmp_path / "d", "--out", tmp_path / "o", "--weights", tiny_checkpoint,
            "--layer", "conv3", "--workers", "0")
    assert r.exit_code == 1
    text = " ".join(r.stderr.split())  # Rich may wrap
    assert "1 file(s) written" in text
    assert f"{b}: cannot write" in text
    assert "cannot write the manifest: No space left on device" in text


# -- 7. SIGTERM and stale temporary files ------------------------------------------------------------


def test_sigterm_is_handled_like_ctrl_c():
    import time

    import typer

    from soundnet_cli.cli.common import Terminated, handle_sigterm, user_errors

    before = signal.getsignal(signal.SIGTERM)
    try:
        handle_sigterm()
        with pytest.raises(typer.Exit) as info:
            with user_errors():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises Terminated here
        assert info.value.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second one kills at once
        assert issubclass(Terminated, KeyboardInterrupt)  # every Ctrl-C clean-up applies
    finally:
        signal.signal(signal.SIGTERM, before)


def test_stale_part_files_of_dead_writers_are_removed(tmp_path):
    from soundnet_cli.files import atomic_write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".x.npy.pid{dead}.abc123.part"
    live = tmp_path / f".x.npy.pid{os.getppid()}.def456.part"  # a running process's write
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    atomic_write_text(tmp_path / "x.npy", "done")
    assert not stale.exists() and live.exists()
    assert remove_stale_parts(tmp_path / "x.npy") == []


# -- 8 and 9. malformed checkpoints ------------------------------------------------------------------


def _rewrite(src: Path, dst: Path, *, config=None, tensors=None) -> Path:
    ckpt = load_checkpoint(src)
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["config"])
    if config:
        cfg.update(config)
    meta["config"] = json.dumps(cfg)
    state = {k: v.clone() for k, v in ckpt.state_dict.items()}
    if tensors:
        tensors(state)
    save_file(state, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("change,message", [
    ({"sample_rate": 0}, "sample_rate is 0"),
    ({"tile_seconds": 1e9}, "tile_seconds is 1000000000.0"),
    ({"input_scale": float("nan")}, "input_scale is nan"),
    ({"bn_eps": -1}, "bn_eps is -1"),
    ({"heads": "x"}, "malformed"),
])
def test_bad_config_values_are_refused_on_load(tiny_checkpoint, tmp_path, change, message):
    bad = _rewrite(tiny_checkpoint, tmp_path / "bad.safetensors", config=change)
    with pytest.raises(WeightsError, match=f"bad.safetensors: .*{message}"):
        load_checkpoint(bad)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.__setitem__("trunk.conv1.conv.weight", torch.zeros(3, 1, 64)), "has shape"),
    (lambda s: s.pop("heads.scenes.bias"), "missing"),
    (lambda s: s.__setitem__("extra.weight", torch.zeros(2)), "unexpected"),
    (lambda s: s["trunk.conv2.conv.weight"].fill_(float("nan")), "NaN"),
])
def test_bad_tensors_are_refused_on_load(tiny_checkpoint, tmp_path, edit, message, run):
    bad = _rewrite(tiny_checkpoint, tmp_path / "bad.safetensors", tensors=edit)
    with pytest.raises(WeightsError, match=f"bad.safetensors: .*{message}"):
        load_checkpoint(bad)
    for args in (("weights", "info", bad), ("weights", "import", bad, "--out",
                                            tmp_path / "x.safetensors")):
        r = run(*args)
        assert r.exit_code == 1 and "bad.safetensors" in r.stderr and "Traceback" not in r.output


def test_nan_input_scale_on_import_is_refused(tiny_checkpoint, tmp_path, run):
    r = run("weights", "import", tiny_checkpoint, "--out", tmp_path / "x.safetensors",
            "--input-scale", "nan")
    assert r.exit_code != 0 and not (tmp_path / "x.safetensors").exists()


def test_pt_file_given_as_weights_gets_the_import_hint(tiny_model, tmp_path):
    from soundnet_cli.weights import load_model

    torch.save(tiny_model.state_dict(), tmp_path / "foo.pt")
    with pytest.raises(WeightsError, match="soundnet weights import .*foo.pt"):
        load_model(tmp_path / "foo.pt")


# -- 10. Torch7 memory caps -------------------------------------------------------------------------


def test_torch7_stride_zero_view_is_refused(tmp_path):
    import io

    from soundnet_cli.weights.formats.torch7 import read_t7
    from helpers.torch7_writer import Storage, Tensor, write_t7

    buf = io.BytesIO()
    write_t7(Tensor(Storage(np.zeros(1, np.float32)), 0, (10**8,), (0,)), buf)
    assert len(buf.getvalue()) < 200
    with pytest.raises(WeightsError, match="view of 100,000,000 elements on a storage of 1"):
        read_t7(io.BytesIO(buf.getvalue()))


def test_torch7_declared_storage_beyond_the_cap_is_refused():
    import io
    import struct

    from soundnet_cli.weights.formats.torch7 import read_t7

    header = struct.pack("<ii", 4, 1) + struct.pack("<i", 3) + b"V 1"
    header += struct.pack("<i", 18) + b"torch.FloatStorage" + struct.pack("<q", 1 << 40)
    with pytest.raises(WeightsError, match="more than the"):
        read_t7(io.BytesIO(header))


def test_zip_bomb_member_is_refused_before_reading(tmp_path):
    from soundnet_cli.weights.formats.source import read_release_archive

    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("soundnet8_final.t7", b"\x00" * (40 << 20))
    assert path.stat().st_size < 100_000
    with pytest.raises(WeightsError, match="would expand to 41,943,040 bytes"):
        read_release_archive(path)


# -- 11. SVM model files ---------------------------------------------------------------------------


def _svm_with(tmp_path: Path, **meta) -> Path:
    path = tiny_svm().save(tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    m = json.loads(str(arrays["meta"][()]))
    m.update(meta)
    arrays["meta"] = np.array(json.dumps(m))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("meta,message", [
    ({"format_version": "x"}, "bad format_version"),
    ({"window": 0}, "window is 0"),
    ({"window": -1}, "window is -1"),
    ({"min_samples": 2e7}, "min_samples is 20000000.0"),
    ({"input_scale": float("nan")}, "input_scale is nan"),
    ({"classes": ["a"]}, "at least two"),
])
def test_bad_svm_headers_are_refused(tmp_path, meta, message):
    with pytest.raises(SvmError, match=f"m.npz: .*{message}"):
        SvmModel.load(_svm_with(tmp_path, **meta))


def test_truncated_and_text_svm_files_are_refused(tmp_path):
    path = tiny_svm().save(tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SvmError, match="m.npz: not a soundnet-cli SVM model"):
        SvmModel.load(path)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(SvmError, match="not a zip archive") as info:
        SvmModel.load(text)
    assert "allow_pickle" not in str(info.value)


# -- 12. feature cache entries ------------------------------------------------------------------------


@pytest.mark.parametrize("entry", [np.zeros((0, 4), np.float32), np.zeros((5, 3), np.float32),
                                   np.full((5, 4), np.nan, np.float32),
                                   np.zeros((5, 4), np.float64)])
def test_bad_cache_entries_are_misses(tmp_path, write_audio, entry):
    audio = write_audio("a.wav", 0.1)
    cache = FeatureCache(tmp_path / "c", FeatureKey("f" * 8, "conv2", 256.0, None, 100),
                         channels=4)
    cache.put(audio, np.ones((5, 4), np.float32))
    assert cache.get(audio) is not None
    np.save(cache.entry(audio), entry)
    assert cache.get(audio) is None


# -- 13. datasets -------------------------------------------------------------------------------------


def _csv_dataset(tmp_path: Path, write_audio, rows: list[tuple[str, str, int]]) -> Path:
    for i, (name, _, _) in enumerate(rows):
        if not (tmp_path / name).exists():
            # distinct seeds: hash(name) % 100 varied per process and gave two clips the same noise
            # about one run in four, which is a duplicate the tests did not mean to make
            write_audio(name, 0.2, seed=1000 + i, kind="noise")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,fold\n" + "".join(f"{n},{c},{f}\n" for n, c, f in rows))
    return csv


def test_duplicate_clip_across_folds_is_refused(tmp_path, write_audio):
    rows = [(f"c{c}_{i}.wav", f"c{c}", i % 2 + 1) for c in range(2) for i in range(4)]
    csv = _csv_dataset(tmp_path, write_audio, rows)
    cv_splits(load_dataset(None, labels_csv=csv))  # no duplicates: fine
    (tmp_path / "copy.wav").write_bytes((tmp_path / "c0_0.wav").read_bytes())  # fold 1 clip
    csv = _csv_dataset(tmp_path, write_audio, rows + [("copy.wav", "c0", 2)])
    with pytest.raises(DatasetError, match="identical audio"):
        cv_splits(load_dataset(None, labels_csv=csv))
    with pytest.raises(DatasetError, match="identical audio"):
        cv_splits(load_dataset(None, labels_csv=csv), n_folds=2, predefined=False)


def test_one_class_dataset_is_refused(tmp_path, write_audio):
    csv = _csv_dataset(tmp_path, write_audio, [(f"a{i}.wav", "dog", i % 2 + 1) for i in range(4)])
    with pytest.raises(DatasetError, match="at least two classes"):
        load_dataset(None, labels_csv=csv)


def test_csv_paths_outside_the_dataset_are_listed(tmp_path, write_audio):
    outside = write_audio("elsewhere/x.wav", 0.2)
    (tmp_path / "ds").mkdir()
    rows = [(f"ds/a{i}.wav", f"c{i % 2}", 1) for i in range(4)]
    for name, _, _ in rows:
        write_audio(name, 0.2, seed=int(name[-5]))
    csv = tmp_path / "ds" / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"{Path(n).name},{c}\n" for n, c, _ in rows)
                   + "../elsewhere/x.wav,c0\n")
    ds = load_dataset(None, labels_csv=csv)
    assert len(ds) == 5 and ds.outside == (tmp_path / "ds" / "../elsewhere/x.wav",)
    assert outside.exists()


# -- 14. train exits 1 after skipping a file ------------------------------------------------------------


def test_train_exits_1_after_skipping_an_undecodable_file(tmp_path, run):
    from helpers import make_dataset

    root = make_dataset(tmp_path / "ds", per_class=2, seconds=1.0, folds=2)
    (root / "audio" / "1-00-A-0.wav").write_bytes(b"not audio at all")
    r = run("train", root, "--width", "0.0625", "--epochs", "1", "--batch-size", "2",
            "--clip-seconds", "3.6", "--run-dir", tmp_path / "run", "--workers", "0",
            "--device", "cpu", "--quiet", "--mix", "0")
    assert r.exit_code == 1, r.output
    assert "1-00-A-0.wav" in r.stderr.replace("\n", "")
    assert (tmp_path / "run" / "model.safetensors").is_file()


# -- 15. distill targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("edit,message", [
    (lambda h: [h], "not an object"),
    (lambda h: {**h, "teachers": [{"name": "colours", "labels": "rgb"}]}, "labels"),
    (lambda h: {**h, "step_seconds": 0}, "step_seconds is 0"),
    (lambda h: {**h, "teachers": [{"name": "../../x", "labels": ["r"]}]}, "not a plain name"),
    (lambda h: {**h, "format_version": "1"}, "bad format_version"),
])
def test_malformed_targets_headers_are_refused(tmp_path, edit, message):
    root = tiny_targets(tmp_path)
    header = json.loads((root / "targets.json").read_text())
    (root / "targets.json").write_text(json.dumps(edit(header)))
    with pytest.raises(TargetsError, match=message):
        read_header(root)


def test_malformed_index_lines_are_refused(tmp_path):
    root = tiny_targets(tmp_path)
    line = json.loads((root / "index.jsonl").read_text())
    (root / "index.jsonl").write_text(json.dumps({**line, "steps": 1e9}) + "\n")
    with pytest.raises(TargetsError, match="index.jsonl:1: malformed"):
        read_index(root)
    (root / "index.jsonl").write_text(json.dumps({**line, "steps": 10**9}) + "\n")
    with pytest.raises(TargetsError, match="claims 1000000000 steps"):
        read_index(root)
    (root / "index.jsonl").write_bytes(b'{"key": "\xff\xfe"}\n')
    with pytest.raises(TargetsError, match="cannot read the index"):
        read_index(root)


@pytest.mark.parametrize("probs,message", [
    (np.full((2, 3), np.nan, np.float32), "not probabilities"),
    (np.full((2, 3), 0.5, np.float32), "do not sum to 1"),
    (np.full((2, 4), 0.25, np.float32), "shape"),
    (np.full((3, 3), 1 / 3, np.float32), "3 steps, the index says 2"),
])
def test_bad_clip_probabilities_are_refused(tmp_path, probs, message):
    from safetensors.numpy import save_file as save_np

    from soundnet_cli.distill.targets import clip_paths

    root = tiny_targets(tmp_path)
    header = read_header(root)
    save_np({"probs.colours": probs}, str(clip_paths(root, "a.mp4")[0]))
    with pytest.raises(TargetsError, match=message):
        read_clip_probs(root, "a.mp4", ["colours"], header=header, steps=2)


def test_a_clip_read_error_in_a_loader_is_a_clean_error(tmp_path):
    from soundnet_cli.distill.student import DistillConfig, DistillTask, open_targets

    root = tiny_targets(tmp_path)
    header, refs = open_targets(root)
    task = DistillTask(refs, [], header, ("colours",), DistillConfig(clip_seconds=2.0, workers=0),
                       1, 0)
    next(iter(task.batches(0, 0, 1)))  # reads fine
    from soundnet_cli.distill.targets import clip_paths

    clip_paths(root, "a.mp4")[1].write_bytes(b"broken flac")
    with pytest.raises(TargetsError, match="a.mp4.flac: cannot read clip audio"):
        next(iter(task.batches(0, 0, 1)))


# -- 16. non-UTF-8 file names -----------------------------------------------------------------------------


def test_non_utf8_file_names_are_readable(tmp_path, tiny_checkpoint, run):
    name = os.fsdecode(b"caf\xe9.wav")  # Latin-1 bytes: not valid UTF-8
    path = tmp_path / name
    sf.write(os.fsencode(path), np.sin(np.arange(11_025) / 5).astype(np.float32) * 0.3, 22_050)
    assert load_audio(path).shape[0] == 11_025
    r = run("tag", path, "--json", "--weights", tiny_checkpoint, "--workers", "0", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ok"]


# -- 17. weights import --name -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "x" * 200])
def test_import_name_must_be_plain(tiny_checkpoint, tmp_path, run, name):
    r = run("weights", "import", tiny_checkpoint, "--name", name, "--weights-dir",
            tmp_path / "cache")
    assert r.exit_code == 1 and "not a plain name" in r.stderr
    assert [p.name for p in tmp_path.rglob("*.safetensors")] == ["tiny.safetensors"]
    assert not (tmp_path.parent / "x.safetensors").exists()


# -- unclear ones: batching tolerance ---------------------------------------------------------------------------


def test_batching_changes_activations_by_at_most_the_documented_tolerance(tiny_model, tmp_path,
                                                                           write_audio):
    """docs/reliability.md: batch composition may change float32 results by at most 1e-5
    relative to the layer's largest value (summation order); this bounds it."""
    from soundnet_cli.runtime import iter_activations

    paths = [write_audio(f"{i}.wav", 1.0, kind="noise", seed=i) for i in range(4)]
    from soundnet_cli.runtime import RunOptions

    def run(batch_size: int) -> list:
        return [r.activations["conv5"] for r in iter_activations(
            tiny_model, paths, ["conv5"], options=RunOptions(batch_size=batch_size))]

    alone, batched = run(1), run(4)
    for a, b in zip(alone, batched):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(a).max(), 1e-12)


# ==========================================================================================
# Second campaign (issue #22)
# ==========================================================================================


def _tag_out(run, src, out, ckpt, *extra):
    return run("tag", src, "--out", out, "--weights", ckpt, "--workers", "0", "-q", *extra)


def _settings_ids(out: Path) -> set:
    return {json.loads(p.read_text())["provenance"]["settings_id"]
            for p in out.rglob("*.tags.json")}


# -- #22.1 tag --out: one folder, one set of settings ----------------------------------------------


def test_tag_out_refuses_a_second_run_with_other_settings(tmp_path, write_audio, tiny_checkpoint,
                                                          run):
    for i in range(3):
        write_audio(f"d/{i}.wav", 0.5, freq=300 + 100 * i)
    out = tmp_path / "o"
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.2",
                 "--format", "jsonl,csv,audacity")
    assert r.exit_code == 0, r.output
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run.json"}
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.8",
                 "--format", "jsonl")
    assert r.exit_code == 1 and "Traceback" not in r.output
    text = " ".join(r.stderr.split())
    assert "min_conf: 0.2 -> 0.8" in text and "another output folder" in text
    # nothing of the first run was touched, nothing of the second written
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "run.json"}
    assert after == before and len(_settings_ids(out)) == 1
    assert json.loads((out / "run.json").read_text())["settings"]["min_conf"] == 0.2
    # --overwrite does not take a folder made with other settings either
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.8", "--overwrite")
    assert r.exit_code == 1 and len(_settings_ids(out)) == 1
    # the same settings (any formats) resume
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.2")
    assert r.exit_code == 0, r.output


def test_tag_out_refuses_a_folder_of_an_older_run_with_other_settings(
        tmp_path, write_audio, tiny_checkpoint, run):
    """A folder made before tag.json existed: its run.json says what made it."""
    write_audio("d/a.wav", 0.5)
    out = tmp_path / "o"
    assert _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.2").exit_code == 0
    (out / "tag.json").unlink()
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--min-conf", "0.8")
    assert r.exit_code == 1 and "run.json" in r.stderr


# -- #22.2 full disk under tag --out -------------------------------------------------------------


def test_tag_out_full_disk_names_every_input_and_prints_the_summary(
        tmp_path, write_audio, tiny_checkpoint, run, monkeypatch):
    import soundnet_cli.tagging.outputs as outputs
    import soundnet_cli.tagging.views as views

    paths = [write_audio(f"d/{i}.wav", 0.5, freq=300 + 100 * i) for i in range(4)]
    real = outputs.atomic_write_text

    def full(path, text):
        if Path(path).name.startswith(("2.", "3.")) or Path(path).name == "run.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    def full_table(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "atomic_write_text", full)
    monkeypatch.setitem(views._COMBINERS, "jsonl", full_table)
    r = run("tag", tmp_path / "d", "--out", tmp_path / "o", "--weights", tiny_checkpoint,
            "--workers", "0")
    assert r.exit_code == 1 and "Traceback" not in r.output
    text = " ".join(r.stderr.split())
    assert "2 file(s) tagged" in text
    for p in paths[2:]:
        assert f"{p}: cannot write its results: No space left on device" in text
    assert "cannot write the combined table: No space left on device" in text
    assert "input(s) failed" in text


# -- #22.3 read-only file system -------------------------------------------------------------------


@pytest.mark.parametrize("existing", [True, False])
def test_tag_out_read_only_file_system_is_one_line(tmp_path, write_audio, tiny_checkpoint, run,
                                                   monkeypatch, existing):
    import tempfile

    write_audio("d/a.wav", 0.5)
    out = tmp_path / "o"
    if existing:
        out.mkdir()

    def read_only(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(out))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    real_mkdir = os.mkdir
    monkeypatch.setattr(os, "mkdir", lambda p, *a, **k: read_only() if str(p).startswith(str(out))
                        else real_mkdir(p, *a, **k))
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "Read-only file system" in r.stderr and str(out) in " ".join(r.stderr.split())


# -- #22.4 merge of a damaged shard table --------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "garble", "not an object"])
def test_merge_of_a_damaged_shard_table_names_the_file(tmp_path, write_audio, tiny_checkpoint,
                                                       run, damage):
    for i in range(4):
        write_audio(f"d/{i}.wav", 0.5, freq=300 + 100 * i)
    out = tmp_path / "o"
    for s in ("0/2", "1/2"):
        r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--shard", s)
        assert r.exit_code == 0, r.output
    table = out / "tags.shard-1-of-2.jsonl"
    data = table.read_bytes()
    table.write_bytes({"truncate": data[:-10], "garble": data[:40] + b"\x00{]" +
                       data[43:], "not an object": b"[1, 2]\n" + data}[damage])
    r = run("merge", out)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "tags.shard-1-of-2.jsonl" in r.stderr


# -- #22.6 deeply nested JSON --------------------------------------------------------------------------


def test_deeply_nested_record_is_not_done_and_does_not_stop_the_run(
        tmp_path, write_audio, tiny_checkpoint, run):
    write_audio("d/a.wav", 0.5)
    write_audio("d/b.wav", 0.5, freq=600)
    out = tmp_path / "o"
    assert _tag_out(run, tmp_path / "d", out, tiny_checkpoint).exit_code == 0
    (out / "a.tags.json").write_text("[" * 100_000 + "]" * 100_000)
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert json.loads((out / "a.tags.json").read_text())["ok"]
    assert len((out / "tags.jsonl").read_text().splitlines()) == 2


def test_deeply_nested_checkpoint_config_is_refused(tiny_checkpoint, tmp_path, run):
    from safetensors import safe_open

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["config"] = "[" * 100_000 + "]" * 100_000
    bad = tmp_path / "deep.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(WeightsError, match="deep.safetensors"):
        load_checkpoint(bad)
    r = run("weights", "info", bad)
    assert r.exit_code == 1 and "Traceback" not in r.output


# -- #22.7 non-finite thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("mode", [("--json",), ("--out", "o")])
def test_non_finite_min_conf_is_a_usage_error(tmp_path, write_audio, tiny_checkpoint, run, value,
                                              mode):
    a = write_audio("a.wav", 0.5)
    mode = tuple(str(tmp_path / m) if m == "o" else m for m in mode)
    r = run("tag", a, "--weights", tiny_checkpoint, "--workers", "0", "-q", "--min-conf", value,
            *mode)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "min-conf" in r.stderr and "finite" in r.stderr
    assert not (tmp_path / "o").exists()


def test_huge_min_conf_gives_no_numpy_warning(tmp_path, write_audio, tiny_checkpoint, run):
    import warnings

    a = write_audio("a.wav", 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run("tag", a, "--weights", tiny_checkpoint, "--workers", "0", "--min-conf", "1e308",
                "--json")
    assert r.exit_code == 0, r.output
    assert "Warning" not in r.stderr and "overflow" not in r.stderr


# -- #22.8 a record that is not strict JSON is not done --------------------------------------------------


def test_record_with_nan_is_recomputed(tmp_path, write_audio, tiny_checkpoint, run):
    write_audio("d/a.wav", 0.5)
    out = tmp_path / "o"
    assert _tag_out(run, tmp_path / "d", out, tiny_checkpoint).exit_code == 0
    record = out / "a.tags.json"
    doc = json.loads(record.read_text())
    doc["heads"][0]["window"] = float("nan")
    record.write_text(json.dumps(doc))
    r = _tag_out(run, tmp_path / "d", out, tiny_checkpoint)
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "NaN" not in record.read_text()
    for line in (out / "tags.jsonl").read_text().splitlines():
        strict_json(line)


# -- #22.10 non-UTF-8 file names in manifests and lists ----------------------------------------------------


def test_extract_manifest_of_non_utf8_names(tmp_path, tiny_checkpoint, run):
    d = tmp_path / "d"
    d.mkdir()
    name = os.fsdecode(b"caf\xe9.wav")
    sf.write(os.fsencode(d / name), np.sin(np.arange(11_025) / 5).astype(np.float32) * 0.3,
             22_050)
    sf.write(str(d / "plain.wav"), np.sin(np.arange(11_025) / 7).astype(np.float32) * 0.3, 22_050)
    out = tmp_path / "o"
    r = run("extract", d, "--out", out, "--weights", tiny_checkpoint, "--layer", "conv3",
            "--workers", "0", "-q")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    rows = Manifest(out / "manifest.csv").rows
    assert str(out / os.fsdecode(b"caf\xe9.conv3.npy")) in rows and len(rows) == 2
    # a rerun reads the manifest back and merges into it
    r = run("extract", d, "--out", out, "--weights", tiny_checkpoint, "--layer", "conv3",
            "--workers", "0", "-q")
    assert r.exit_code == 0 and len(Manifest(out / "manifest.csv").rows) == 2


def test_files_from_with_a_non_utf8_name(tmp_path, tiny_checkpoint, run):
    name = os.fsencode(tmp_path) + b"/caf\xe9.wav"
    sf.write(name, np.sin(np.arange(11_025) / 5).astype(np.float32) * 0.3, 22_050)
    sf.write(str(tmp_path / "plain.wav"), np.zeros(11_025, np.float32) + 0.1, 22_050)
    listing = tmp_path / "list.txt"
    listing.write_bytes(name + b"\n" + os.fsencode(tmp_path / "plain.wav") + b"\n")
    r = run("tag", "--files-from", listing, "--json", "--weights", tiny_checkpoint, "--workers",
            "0", "-q")
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["ok"] for line in r.stdout.splitlines()] == [True, True]


def test_tag_out_of_a_non_utf8_name_writes_every_view(tmp_path, tiny_checkpoint, run):
    d = tmp_path / "d"
    d.mkdir()
    sf.write(os.fsencode(d) + b"/caf\xe9.wav",
             np.sin(np.arange(11_025) / 5).astype(np.float32) * 0.3, 22_050)
    out = tmp_path / "o"
    r = _tag_out(run, d, out, tiny_checkpoint, "--format", "all")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert os.path.exists(os.fsencode(out) + b"/caf\xe9.tags.csv")
    assert b"caf\xe9.wav" in (out / "tags.csv").read_bytes()


# -- #22.9 teach: videos shorter than --min-partial-step of one step are skipped -----------------


@pytest.mark.parametrize("seconds", [0.2, 2.0])
def test_teach_skips_videos_of_mostly_silence(tmp_path, seconds):
    pytest.importorskip("av")
    from helpers.avworld import class_sound, write_video
    from soundnet_cli.distill.video import FrameSampling, decode_video
    from soundnet_cli.errors import VideoError

    path = write_video(tmp_path / "v.mp4", [0], seconds, audio=class_sound(0, seconds, 22_050, 1))
    with pytest.raises(VideoError, match=r"v\.mp4: .* shorter than 2\.5 s .*--min-partial-step"):
        decode_video(path, FrameSampling(step_seconds=5.0))
    kept = write_video(tmp_path / "w.mp4", [0], 3.0, audio=class_sound(0, 3.0, 22_050, 1))
    assert decode_video(kept, FrameSampling(step_seconds=5.0)).steps == 1  # 60 % of a step


# -- #22 unclear: checkpoint messages -----------------------------------------------------------


def _with_header_length_low_byte(src: Path, dst: Path, low: int, edit) -> Path:
    """``src`` rewritten with ``edit(state)`` applied and its provenance padded until the
    safetensors header length ends in the byte ``low``."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    edit(state)
    for pad in range(0, 4096):
        meta["provenance"] = json.dumps({"pad": "x" * pad})
        save_file(state, str(dst), metadata=meta)
        if dst.read_bytes()[0] == low:
            return dst
    raise AssertionError("no padding gives that header length")


def test_weights_info_names_a_bad_checkpoint_whatever_its_header_length(tiny_checkpoint, tmp_path,
                                                                        run):
    def wrong_shape(state):
        state["heads.objects.weight"] = torch.zeros(3, 3)

    bad = _with_header_length_low_byte(tiny_checkpoint, tmp_path / "bad.safetensors", 0x80,
                                       wrong_shape)
    r = run("weights", "info", bad)
    assert r.exit_code == 1 and "torch" not in r.stderr.replace("safetensors", "")
    assert "heads.objects.weight has shape (3, 3)" in " ".join(r.stderr.split())


def test_checkpoint_listing_too_many_tensors_is_refused_before_loading(tiny_checkpoint, tmp_path):
    from safetensors import safe_open

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        meta = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    state.update({f"extra{i}": torch.zeros(0) for i in range(5000)})
    save_file(state, str(tmp_path / "many.safetensors"), metadata=meta)
    with pytest.raises(WeightsError, match="many.safetensors: lists 5,0.. tensors"):
        load_checkpoint(tmp_path / "many.safetensors")


# -- #22 unclear: long names, links inside --out, forged records, newlines -----------------------


def test_a_235_character_input_name_is_written(tmp_path, write_audio, tiny_checkpoint, run):
    name = "n" * 231 + ".wav"
    write_audio(f"d/{name}", 0.5)
    r = _tag_out(run, tmp_path / "d", tmp_path / "o", tiny_checkpoint, "--format", "all")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / ("n" * 231 + ".tags.json")).is_file()
    r = run("extract", tmp_path / "d", "--out", tmp_path / "e", "--weights", tiny_checkpoint,
            "--layer", "conv3", "--workers", "0", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "e" / ("n" * 231 + ".conv3.npy")).is_file()
    assert not list(tmp_path.rglob("*.part"))


def test_stale_parts_of_a_long_name_are_removed(tmp_path):
    target = tmp_path / ("n" * 240 + ".npy")
    from soundnet_cli.files.fsutil import atomic_path, part_prefix

    stale = tmp_path / f"{part_prefix(target)}999999999.x.part"
    stale.write_bytes(b"")
    assert len(stale.name.encode()) <= 255
    with atomic_path(target) as tmp:
        assert len(tmp.name.encode()) <= 255
        tmp.write_bytes(b"1")
    assert target.read_bytes() == b"1" and not stale.exists()


@pytest.mark.parametrize("command", ["tag", "extract"])
def test_a_directory_link_inside_out_is_not_written_through(tmp_path, write_audio,
                                                            tiny_checkpoint, run, command):
    write_audio("d/sub/a.wav", 0.5)
    write_audio("d/b.wav", 0.5, freq=700)
    out, elsewhere = tmp_path / "o", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "sub")
    extra = ("--layer", "conv3") if command == "extract" else ()
    r = run(command, tmp_path / "d", "-r", "--out", out, "--weights", tiny_checkpoint,
            "--workers", "0", "-q", *extra)
    assert r.exit_code == 1 and "Traceback" not in r.output
    text = " ".join(r.stderr.split())
    assert "a.wav" in text and "outside" in text and str(elsewhere) in text
    assert list(elsewhere.iterdir()) == []
    assert any(p.name.startswith("b.") for p in out.iterdir())  # the other input is done


def test_a_record_with_a_forged_path_is_not_carried_into_the_tables(tmp_path, write_audio,
                                                                    tiny_checkpoint, run):
    write_audio("d/a.wav", 0.5)
    write_audio("d/b.wav", 0.5, freq=700)
    out = tmp_path / "o"
    assert _tag_out(run, tmp_path / "d", out, tiny_checkpoint).exit_code == 0
    record = out / "a.tags.json"
    doc = json.loads(record.read_text())
    doc["path"] = "/etc/passwd"
    record.write_text(json.dumps(doc))
    assert _tag_out(run, tmp_path / "d", out, tiny_checkpoint).exit_code == 0
    paths = [json.loads(x)["path"] for x in (out / "tags.jsonl").read_text().splitlines()]
    assert paths == [str(tmp_path / "d" / "a.wav"), str(tmp_path / "d" / "b.wav")]
    assert "/etc/passwd" not in (out / "tags.csv").read_text()


def test_manifest_rows_outside_out_are_dropped(tmp_path, write_audio, tiny_checkpoint, run):
    import csv

    write_audio("d/a.wav", 0.5)
    out = tmp_path / "o"
    args = ("extract", tmp_path / "d", "--out", out, "--weights", tiny_checkpoint, "--layer",
            "conv3", "--workers", "0", "-q")
    assert run(*args).exit_code == 0
    manifest = out / "manifest.csv"
    rows = list(csv.DictReader(manifest.open()))
    forged = dict(rows[0], input="/etc/passwd", output="/etc/passwd.conv3.npy")
    escaped = dict(rows[0], input="x", output=str(out / ".." / "x.conv3.npy"))
    with manifest.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writerows([forged, escaped])
    write_audio("d/b.wav", 0.5, freq=700)
    r = run(*args)
    assert r.exit_code == 0 and "Traceback" not in r.output
    outputs = [row["output"] for row in csv.DictReader(manifest.open())]
    assert outputs == [str(out / "a.conv3.npy"), str(out / "b.conv3.npy")]


def test_merge_drops_manifest_rows_outside_out(tmp_path, write_audio, tiny_checkpoint, run):
    import csv

    for i in range(2):
        write_audio(f"d/{i}.wav", 0.5, freq=300 + 200 * i)
    out = tmp_path / "o"
    for s in ("0/2", "1/2"):
        assert run("extract", tmp_path / "d", "--out", out, "--weights", tiny_checkpoint,
                   "--layer", "conv3", "--workers", "0", "-q", "--shard", s).exit_code == 0
    shard = out / "manifest.shard-1-of-2.csv"
    rows = list(csv.DictReader(shard.open()))
    with shard.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=list(rows[0])).writerow(
            dict(rows[0], input="~", output="/etc/passwd.conv3.npy"))  # sorts last
    assert run("merge", out).exit_code == 0
    outputs = [r["output"] for r in csv.DictReader((out / "manifest.csv").open())]
    assert outputs == [str(out / "0.conv3.npy"), str(out / "1.conv3.npy")]


def test_rerun_list_never_splits_a_name_with_a_newline(tmp_path, write_audio, tiny_checkpoint,
                                                       run):
    write_audio("d/good.wav", 0.5)
    (tmp_path / "d" / "bad\nname.wav").write_bytes(b"not audio at all" * 10)
    (tmp_path / "d" / "bad.wav").write_bytes(b"not audio either" * 10)
    out = tmp_path / "o"
    for s in ("0/2", "1/2"):
        _tag_out(run, tmp_path / "d", out, tiny_checkpoint, "--shard", s)
    r = run("merge", out)
    assert r.exit_code == 1 and "Traceback" not in r.output
    listed = (out / "rerun.txt").read_text().splitlines()
    assert listed == [str(tmp_path / "d" / "bad.wav")]  # no half names
    assert "newline" in " ".join(r.stderr.split())


def test_an_mp4_with_garbled_metadata_is_read(tmp_path, tiny_checkpoint, run):
    """A bit flip in an MP4's metadata (its encoder tag) is not a UTF-8 error: the tags are
    read with replacement characters and the audio decodes."""
    pytest.importorskip("av")
    from helpers.avworld import class_sound, write_video
    from soundnet_cli.distill.video import FrameSampling, decode_video

    path = write_video(tmp_path / "v.mp4", [0], 2.0, audio=class_sound(0, 2.0, 22_050, 1))
    data = bytearray(path.read_bytes())
    at = data.find(b"Lavf")
    assert at > 0
    data[at + 4] = 0xFF  # never valid in UTF-8
    path.write_bytes(bytes(data))
    r = run("tag", path, "--json", "--weights", tiny_checkpoint, "--workers", "0", "-q")
    doc = json.loads(r.stdout)
    assert doc["ok"] and r.exit_code == 0, doc.get("error")
    assert decode_video(path, FrameSampling(step_seconds=1.0)).steps == 2


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_min_gap_is_a_usage_error(tmp_path, write_audio, tiny_checkpoint, run, value):
    a = write_audio("a.wav", 0.5)
    r = run("tag", a, "--weights", tiny_checkpoint, "--workers", "0", "-q", "--min-gap", value,
            "--json")
    assert r.exit_code == 2 and "min-gap" in r.stderr and "Traceback" not in r.output
