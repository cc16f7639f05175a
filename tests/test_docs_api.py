"""Every example of docs/api.md runs, in order, against a tiny stand-in for the embedded network."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from helpers import make_tiny_model, synth
from soundnet_cli.model import HeadSpec
from soundnet_cli.weights import registry
from soundnet_cli.weights import save_checkpoint

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
#: Shell lines of the page that are not soundnet commands (they need other projects' tools).
FOREIGN = ("python3 -m heareval",)


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced python or bash block, in order."""
    return re.findall(r"```(python|bash)\n(.*?)```", text, flags=re.S)


def commands(code: str) -> list[str]:
    """The logical lines of a shell block (backslash continuations joined)."""
    return [line.strip() for line in code.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> Path:
    """A tiny network with ESC-50-like labels as the embedded default and as the cached
    ``soundnet8``, and the audio files the page names, in the working directory."""
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pytest.importorskip("onnxruntime")
    labels = ("dog", "rain", "rooster", "sea waves", "crickets", "siren")
    model = make_tiny_model(heads=(HeadSpec("classes", labels, 4, 1, 0),))
    embedded = tmp_path / "embedded.safetensors"
    save_checkpoint(model, embedded, provenance={"made_by": "tests"})
    monkeypatch.setattr(registry, "default_weights_path", lambda: embedded)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(embedded, cache / "soundnet8.safetensors")
    monkeypatch.setenv("SOUNDNET_HOME", str(cache))
    work = tmp_path / "work"
    (work / "recordings" / "street").mkdir(parents=True)
    sf.write(str(work / "dog.wav"), synth(3.0, 44_100, "clicks", channels=2), 44_100)
    sf.write(str(work / "rain.flac"), synth(12.0, 16_000, "noise"), 16_000)
    sf.write(str(work / "recordings" / "a.wav"), synth(2.0, 22_050, "tone"), 22_050)
    sf.write(str(work / "recordings" / "street" / "b.wav"), synth(4.0, 48_000, "noise"), 48_000)
    monkeypatch.chdir(work)
    return work


def test_every_example_runs(stand_in, run, capsys):
    found = blocks(DOC.read_text(encoding="utf-8"))
    assert sum(lang == "python" for lang, _ in found) >= 8
    namespace: dict = {"__name__": "docs_api"}
    ran = []
    for i, (lang, code) in enumerate(found):
        if lang == "python":
            exec(compile(code, f"{DOC}:block{i}", "exec"), namespace)
            ran.append(lang)
            continue
        for line in commands(code):
            if line.startswith(FOREIGN):
                continue
            assert line.startswith("soundnet "), f"docs/api.md runs an unknown command: {line}"
            result = run(*shlex.split(line)[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
            ran.append(line)
    printed = capsys.readouterr().out
    assert "<array 0>" in printed and "max |difference|" not in printed
    assert (stand_in / "soundnet.onnx").is_file() and (stand_in / "conv5.pt").is_file()
    assert (stand_in / "tags" / "tags.jsonl").is_file()
    assert (stand_in / "tags" / "street" / "b.tags.json").is_file()
    assert len(ran) >= 10
