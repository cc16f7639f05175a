"""The embedded network's model card: Hub metadata (YAML front matter) that agrees with its text.

Generic on purpose: it reads whatever card sits beside the embedded network
(``weights.registry.embedded_weights_dir() / "README.md"``), so a new network's card is held to
the same rules: the Hub's keys are there, every metric value in ``model-index`` is quoted in the
text, the datasets and the licence named in the metadata are the ones the text names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from soundnet_cli.weights import embedded_weights_dir

yaml = pytest.importorskip("yaml")

#: How the text names each licence the card may declare (Hub licence identifiers).
LICENCE_WORDS = {"mit": "MIT", "apache-2.0": "Apache", "cc-by-4.0": "Attribution 4.0",
                 "cc-by-nc-3.0": "NonCommercial 3.0", "cc-by-nc-4.0": "NonCommercial 4.0",
                 "cc-by-sa-4.0": "ShareAlike 4.0", "bsd-3-clause": "BSD"}


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """``(front matter, body)`` of a card that starts with a ``---`` YAML block."""
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "the card must start with YAML front matter between --- lines"
    meta = yaml.safe_load(match.group(1))
    assert isinstance(meta, dict), "the front matter must be a YAML mapping"
    return meta, text[match.end():]


@pytest.fixture(scope="module")
def card() -> tuple[dict[str, Any], str]:
    path = embedded_weights_dir() / "README.md"
    if not path.is_file():
        pytest.skip(f"no model card at {path}")
    return split_card(path.read_text(encoding="utf-8"))


def _quoted(value: float, body: str) -> bool:
    """Whether ``value`` (a percentage or a fraction) appears in ``body`` as a number."""
    candidates = {f"{value:g}", f"{value:.1f}", f"{value:.2f}"}
    if value <= 1:
        candidates |= {f"{100 * value:.1f}", f"{100 * value:g}"}
    return any(re.search(rf"(?<![\d.]){re.escape(c)}(?![\d])", body) for c in candidates)


def test_hub_keys(card):
    meta, _ = card
    assert meta["library_name"] == "soundnet-cli"
    assert isinstance(meta["license"], str) and meta["license"] in LICENCE_WORDS
    for key in ("tags", "datasets", "metrics"):
        assert isinstance(meta[key], list) and meta[key], key
        assert all(isinstance(x, str) and x for x in meta[key]), key
    assert "audio" in meta["tags"]


def test_licence_is_the_texts(card):
    meta, body = card
    assert LICENCE_WORDS[meta["license"]] in body


def test_every_metric_value_is_in_the_text(card):
    meta, body = card
    results = [r for m in meta.get("model-index", []) for r in m["results"]]
    assert results, "model-index lists no measured results"
    values = 0
    for result in results:
        assert result["dataset"]["name"] in body
        assert result["dataset"]["type"] in meta["datasets"]
        for metric in result["metrics"]:
            assert metric["type"] in meta["metrics"]
            assert isinstance(metric["value"], (int, float))
            assert _quoted(float(metric["value"]), body), \
                f"{metric['name']} = {metric['value']} is not quoted in the card's text"
            values += 1
    assert values >= 1


def test_split_card_rejects_cards_without_metadata(tmp_path: Path):
    with pytest.raises(AssertionError, match="front matter"):
        split_card("# A card\n\nno metadata\n")
    meta, body = split_card("---\nlicense: mit\n---\n# Card\n")
    assert meta == {"license": "mit"} and body == "# Card\n"
    assert _quoted(68.2, "scores 68.2 % top-1") and not _quoted(68.2, "scores 168.25 %")
