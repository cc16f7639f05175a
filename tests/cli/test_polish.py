"""Rough edges a newcomer hit (issue #24, item 8): messages of the library and the docs' lines."""

from __future__ import annotations

import dataclasses
import re
import shlex

import pytest
from helpers import ROOT

ROOT = ROOT


def test_a_loop_option_given_to_a_run_config_says_where_it_goes():
    from soundnet_cli.distill import DistillConfig
    from soundnet_cli.training import TrainConfig

    for cls in (DistillConfig, TrainConfig):
        with pytest.raises(TypeError, match=rf"{cls.__name__} has no epochs: it belongs to its "
                                            r"loop settings .*replace\("):
            cls(epochs=3)
        fixed = cls(loop=dataclasses.replace(cls().loop, epochs=3))
        assert fixed.loop.epochs == 3


def test_load_model_errors_speak_of_load_model(tmp_path, monkeypatch):
    from soundnet_cli import load_model
    from soundnet_cli.errors import WeightsError

    monkeypatch.setenv("SOUNDNET_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as e:
        load_model("no-such-net")
    assert str(e.value).startswith("load_model('no-such-net'): no such file")
    assert "--weights" not in str(e.value)
    with pytest.raises(WeightsError, match=r"load_model\('nope/x.pt'\): no such file"):
        load_model("nope/x.pt")


def test_a_missing_head_names_the_heads_there(tmp_path):
    import numpy as np

    from soundnet_cli.tagging import HeadScores, TagResult

    result = TagResult(tmp_path / "a.wav", heads=[HeadScores("classes", ("a", "b"),
                                                               np.full((1, 2), 0.5), True, 1.0,
                                                               1.0, 0.0)])
    with pytest.raises(KeyError, match="no head 'objects' in this result; its heads: 'classes'"):
        result.head("objects")


def _distill_run_dirs() -> list[tuple[str, str]]:
    """(file, run dir) of every `soundnet distill` command line in README.md and docs/."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            m = re.search(r"^\s*(?:\$ )?soundnet distill (?!--resume)(\S.*)$", line)
            if not m:
                continue
            args = shlex.split(m.group(1).split("#")[0])
            if args[0].isupper():  # a synopsis (soundnet distill TARGETS [options])
                continue
            run_dir = args[args.index("--run-dir") + 1] if "--run-dir" in args else "runs/distill"
            found.append((page.name, run_dir))
    return found


def test_the_docs_distill_lines_do_not_share_a_run_directory():
    found = _distill_run_dirs()
    assert len(found) >= 2
    dirs = [d for _, d in found]
    assert len(set(dirs)) == len(dirs), found  # the second would stop: "already holds a run"


@pytest.mark.parametrize("command", [["tag"], ["extract"], ["train"], ["weights", "list"]])
def test_help_shows_no_bool_or_list_types(command):
    from typer.testing import CliRunner

    from soundnet_cli.cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "<list[" not in result.output


def test_plot_of_a_silent_file_gives_no_raw_warning(tiny_checkpoint, write_audio, tmp_path):
    import warnings

    from typer.testing import CliRunner

    from soundnet_cli.audio import SilentAudioWarning
    from soundnet_cli.cli import app

    pytest.importorskip("matplotlib")
    clip = write_audio("quiet.wav", 2.0, kind="silence")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["tag", str(clip), "-w", str(tiny_checkpoint), "--out",
                                          str(tmp_path / "res"), "--plot", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "res" / "quiet.tags.png").is_file()
    assert "silent" in result.output  # said once, by tag
    raw = [f"{w.filename}:{w.lineno} {w.message}" for w in caught
           if issubclass(w.category, SilentAudioWarning)]
    assert not raw


def test_weights_info_and_import_of_a_run_state_point_to_its_checkpoints(run, tmp_path,
                                                                        monkeypatch):
    import torch

    monkeypatch.setenv("SOUNDNET_HOME", str(tmp_path / "home"))
    state = tmp_path / "run" / "state.pt"
    state.parent.mkdir()
    torch.save({"epoch": 3, "model": {"trunk.conv1.conv.weight": torch.zeros(2, 1, 4)},
                "model_config": "{}", "optimizer": {}, "scheduler": {}, "best": 0.5}, state)
    for args in (("weights", "info", state), ("weights", "import", state, "--name", "x")):
        result = run(*args)
        text = " ".join(result.output.split())
        assert result.exit_code == 1, text
        assert "resumable training state" in text and "last.safetensors" in text
        assert "head's place" not in text and "convert it with" not in text


def test_teach_with_more_workers_than_cpus_says_so_once(tmp_path, monkeypatch):
    import warnings

    pytest.importorskip("av")
    from typer.testing import CliRunner

    from helpers.avworld import write_colour_teacher
    from helpers.avworld import movie
    from soundnet_cli.cli import app
    from soundnet_cli.runtime import options

    spec = write_colour_teacher(tmp_path / "teacher")
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        movie(tmp_path, name, [3], 2.0)
    monkeypatch.setattr(options, "available_cores", lambda: 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["teach", str(tmp_path / "videos"), "--teacher",
                                          str(spec), "--out", str(tmp_path / "t"),
                                          "--frame-every", "1", "--max-seconds", "4", "-j", "3"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.count("more decoding processes than this machine's 2 CPUs") == 1
    assert not [w for w in caught if "DataLoader will create" in str(w.message)]


def test_no_progress_bars_before_an_error(tmp_path):
    import numpy as np
    import soundfile as sf
    from typer.testing import CliRunner

    from soundnet_cli.cli import app

    for c in ("a", "b"):
        (tmp_path / "d" / c).mkdir(parents=True)
        for i in range(3):
            sf.write(str(tmp_path / "d" / c / f"{i}.wav"), np.zeros(22_050, np.float32) + 0.01 * i,
                     22_050)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "d"), "--init", "no-such-net",
                                      "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 1 and "--init no-such-net" in result.output
    assert "decoding" not in result.output and "epochs" not in result.output


def test_segment_rows_follow_each_other(tmp_path, write_audio):
    import re as _re

    from typer.testing import CliRunner

    from helpers import make_tiny_model
    from soundnet_cli.cli import app
    from soundnet_cli.model import HeadSpec
    from soundnet_cli.weights import save_checkpoint

    # a head on conv7 (kernel 1, as the embedded network's): receptive fields start before 0 s
    model = make_tiny_model(heads=(HeadSpec("classes", ("a", "b", "c"), 1, 1, 0),))
    save_checkpoint(model, tmp_path / "k1.safetensors", provenance={})
    clip = write_audio("long.wav", 12.0, kind="noise")
    result = CliRunner().invoke(app, ["tag", str(clip), "-w", str(tmp_path / "k1.safetensors"),
                                      "--segments", "--top-k", "1", "--min-conf", "0",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    spans = [(float(a), float(b)) for a, b in
             _re.findall(r"^│ \d+: ([\d.]+)-([\d.]+) s", result.stdout, flags=_re.M)]
    assert len(spans) > 3
    assert spans[0][0] == 0.0 and spans[1][0] > 0.0  # not two steps "starting at 0.00 s"
    for (a0, a1), (b0, _) in zip(spans, spans[1:]):
        assert a0 < b0 and abs(a1 - b0) < 0.011  # each row starts where the previous ended


def test_docs_link_only_to_pages_the_wheel_installs():
    """docs/ is installed as soundnet_cli/docs: a link out of it (../benchmarks/RESULTS.md) or to
    a file that is not in the repository (SOUNDNET.md) is broken for every pip user."""
    pages = sorted((ROOT / "docs").glob("*.md"))
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if "://" in target:
                continue
            assert not target.startswith(".."), f"{page.name} links out of docs/: {target}"
            assert (page.parent / target).exists(), f"{page.name}: {target} does not exist"
        assert "SOUNDNET.md" not in text, page.name
