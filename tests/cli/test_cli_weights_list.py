"""``soundnet weights list`` on an 80-column terminal and in a pipe."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from helpers import make_tiny_model
from soundnet_cli.model import HeadSpec
from soundnet_cli.weights import save_checkpoint
from soundnet_cli.weights.registry import NetworkEntry


def entries() -> list[NetworkEntry]:
    return [
        NetworkEntry("default", "embedded", Path("/x"), True, "soundnet8",
                     {"objects": 1000, "scenes": 401, "esc50": 50}, "used when --weights is not given"),
        NetworkEntry("soundnet8", "downloadable", Path("/y"), False, "soundnet8", {},
                     "the authors' SoundNet-8, trained on 2 M videos (recommended)"),
        NetworkEntry("my-very-long-network-name-fine-tuned-on-my-sounds", "imported", Path("/z"),
                     True, "soundnet8", {f"head{i}": 10 * i for i in range(4)},
                     "imported from " + "/very/long/path" * 6 + "/state_dict_final.pt"),
    ]


def test_the_table_fits_80_columns_and_keeps_words_together():
    from soundnet_cli.cli.weights import network_table

    console = Console(width=80, file=io.StringIO(), color_system=None)
    console.print(network_table(entries()))
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 25  # not one letter per line
    assert "trained on 2 M" in console.file.getvalue()  # words of the description stay whole


def test_in_a_pipe_the_list_is_tab_separated_rows(run, tmp_path, monkeypatch):
    home = tmp_path / "cache"
    monkeypatch.setenv("SOUNDNET_HOME", str(home))
    model = make_tiny_model(heads=(HeadSpec("colours", ("red", "green"), 8, 2, 0),))
    save_checkpoint(model, home / "mine.safetensors", provenance={"kind": "supervised"})
    result = run("weights", "list")
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["name", "kind", "arch", "heads", "status", "description"]
    assert all(len(r) == 6 for r in rows)
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["mine"][1:5] == ["imported", "soundnet8", "colours:2", "ready"]
    assert by_name["soundnet8"][4] == "not downloaded"
