"""``soundnet weights list/download/import/info`` through Typer's CliRunner."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from helpers import tiny_config
from helpers.server import FileServer, fake_release
from helpers.torch7_writer import original_t7_bytes

from soundnet_cli.errors import SoundNetWarning
from soundnet_cli.weights import load_model, resolve_weights


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("SOUNDNET_HOME", str(home))
    return home


@pytest.fixture
def t7(tmp_path) -> Path:
    path = tmp_path / "soundnet8_final.t7"
    path.write_bytes(original_t7_bytes(tiny_config()))
    return path


@pytest.fixture
def label_paths(tmp_path) -> list[Path]:
    paths = []
    for head in tiny_config().heads:
        p = tmp_path / f"categories_{head.name}.txt"
        p.write_text("".join(f"{head.name} {i}\n" for i in range(head.classes)))
        paths.append(p)
    return paths


def test_list_shows_known_and_cached(run, cache, t7):
    result = run("weights", "list", "--json")
    assert result.exit_code == 0
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert entries["soundnet8"]["kind"] == "downloadable" and not entries["soundnet8"]["available"]
    assert entries["soundnet5"]["path"] == str(cache / "soundnet5.safetensors")
    assert entries["default"]["kind"] == "embedded"
    assert run("weights", "import", t7, "--name", "mine").exit_code == 0
    entries = {e["name"]: e for e in json.loads(run("weights", "list", "--json").stdout)}
    assert entries["mine"]["kind"] == "imported" and entries["mine"]["available"]
    assert entries["mine"]["heads"] == {"objects": 7, "scenes": 5}
    table = run("weights", "list")
    assert table.exit_code == 0 and "not downloaded" in table.stdout and "mine" in table.stdout


def test_import_then_use_by_name(run, cache, t7, label_paths, tmp_path):
    result = run("weights", "import", t7, "--labels", label_paths[0], "--labels",
                 f"scenes={label_paths[1]}")
    assert result.exit_code == 0, result.stderr
    target = cache / "soundnet8.safetensors"
    assert result.stdout.startswith(f"{target}\tsha256:")
    assert "--weights soundnet8" in result.stderr
    assert resolve_weights("soundnet8") == target
    model = load_model("soundnet8")
    assert model.config.heads[0].labels[:2] == ("objects 0", "objects 1")
    assert model.config.heads[1].labels[-1] == "scenes 4"

    again = run("weights", "import", t7)
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert run("weights", "import", t7, "--overwrite").exit_code == 0

    out = tmp_path / "elsewhere.safetensors"
    assert run("weights", "import", t7, "--out", out).exit_code == 0 and out.is_file()
    both = run("weights", "import", t7, "--out", out, "--name", "x")
    assert both.exit_code == 2


def test_import_warns_loudly_about_missing_batchnorm(run, cache, tmp_path):
    from helpers.torch7_writer import flat_state_dict, original_params

    config = tiny_config()
    path = tmp_path / "port.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SoundNetWarning)
        torch.save(flat_state_dict(original_params(config), config, bn="default"), path)
    result = run("weights", "import", path, "--quiet", "--name", "port")
    assert result.exit_code == 0
    assert "WARNING: BATCHNORM STATISTICS ARE DEFAULTS" in result.stderr
    assert "placeholders" not in result.stderr  # --quiet hides the ordinary warnings
    info = json.loads(run("weights", "info", "port", "--json").stdout)
    assert info["provenance"]["bn_statistics"] == "default"


def test_import_refuses_shapes_that_do_not_fit(run, cache, tmp_path):
    config = tiny_config()
    bad = config.with_heads([h.__class__(h.name, h.labels, 7, h.stride, h.padding)
                             for h in config.heads])
    path = tmp_path / "odd.t7"
    from helpers.torch7_writer import original_params
    from helpers.torch7_writer import soundnet_module, write_t7

    params = original_params(config)
    for h in config.heads:
        params[h.name]["weight"] = params[h.name]["weight"][:, :, :7]
    with open(path, "wb") as f:
        write_t7(soundnet_module(params, bad), f)
    result = run("weights", "import", path)
    assert result.exit_code == 1
    assert "kernel size 7, expected 8" in result.stderr
    assert not (cache / "soundnet8.safetensors").exists()


def test_info_text_and_json(run, cache, t7, label_paths):
    assert run("weights", "import", t7, "-l", label_paths[0], "-l", label_paths[1]).exit_code == 0
    text = run("weights", "info", "soundnet8")
    assert text.exit_code == 0
    assert "soundnet8" in text.stdout and "objects: 7 labels (objects 0, objects 1" in text.stdout
    assert "scale 256" in text.stdout and "looped to that length for tagging" in text.stdout
    data = json.loads(run("weights", "info", cache / "soundnet8.safetensors", "--json").stdout)
    assert data["arch"] == "soundnet8" and data["input_scale"] == 256.0
    assert data["tile_seconds"] == 10.0
    assert [h["name"] for h in data["heads"]] == ["objects", "scenes"]
    assert data["heads"][1]["labels"] == [f"scenes {i}" for i in range(5)]
    assert [layer["name"] for layer in data["layers"]][:3] == ["conv1", "pool1", "conv2"]
    assert data["provenance"]["source_format"] == "torch7"
    assert len(data["sha256"]) == 64


def test_info_on_a_foreign_file_says_to_import(run, cache, t7):
    result = run("weights", "info", t7)
    assert result.exit_code == 1
    assert "is a torch7 file, not a soundnet-cli checkpoint" in result.stderr
    missing = run("weights", "info", "soundnet8")
    assert missing.exit_code == 1 and "soundnet weights download soundnet8" in missing.stderr


def test_download_from_a_mirror(run, cache):
    server = FileServer(fake_release())
    try:
        result = run("weights", "download", "soundnet8", "--mirror", server.url)
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[-1] == f"soundnet8\t{cache / 'soundnet8.safetensors'}"
        assert any(line.startswith("archive\t") and "sha256:" in line for line in lines)
        again = run("weights", "download", "soundnet8", "--mirror", server.url)
        assert again.exit_code == 0 and "already in the cache" in again.stderr
    finally:
        server.stop()
    info = json.loads(run("weights", "info", "soundnet8", "--json").stdout)
    assert info["provenance"]["network"] == "soundnet8"
    assert {h["name"]: h["classes"] for h in info["heads"]} == {"objects": 7, "scenes": 5}


def test_download_offline_and_unknown(run, cache):
    server = FileServer({})
    url = server.url
    server.stop()
    result = run("weights", "download", "soundnet5", "--mirror", url, "--quiet")
    assert result.exit_code == 1
    assert "To install soundnet5 by hand" in result.stderr
    assert "soundnet weights import soundnet_models_public.zip --arch soundnet5" in result.stderr
    unknown = run("weights", "download", "soundnet9")
    assert unknown.exit_code == 1 and "known: soundnet8, soundnet5" in unknown.stderr
