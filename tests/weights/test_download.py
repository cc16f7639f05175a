"""Downloads against a local HTTP server on 127.0.0.1: success, checksum mismatch, truncated
transfer (and resume), a server that ignores ranges, a server that is gone, and the whole
``download_network`` path with a fake release archive."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest


from soundnet_cli.weights.download import HASHES_FILE, RemoteFile, fetch, load_hashes
from soundnet_cli.errors import DownloadError, WeightsError
from soundnet_cli.weights.registry import KNOWN_NETWORKS, download_network, load_model
from helpers.server import FileServer, fake_release


@pytest.fixture
def server():
    s = FileServer({"weights.bin": bytes(range(256)) * 400})
    yield s
    s.stop()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def remote(server: FileServer, name: str = "weights.bin", sha256: str | None = None) -> RemoteFile:
    return RemoteFile(f"{server.url}/{name}", sha256)


def test_success_records_hash_and_reuses_the_file(tmp_path, server):
    calls = []
    path, digest = fetch(remote(server), tmp_path, progress=lambda *a: calls.append(a))
    data = server.files["weights.bin"]
    assert path == tmp_path / "weights.bin" and path.read_bytes() == data
    assert digest == sha(data)
    assert load_hashes(tmp_path)["weights.bin"]["sha256"] == digest
    assert calls[0] == ("weights.bin", 0, len(data))
    assert calls[-1] == ("weights.bin", len(data), len(data))
    before = len(server.requests)
    assert fetch(remote(server), tmp_path) == (path, digest)
    assert len(server.requests) == before  # present and matching: no request


def test_checksum_mismatch_after_first_fetch(tmp_path, server):
    path, first = fetch(remote(server), tmp_path)
    path.unlink()
    server.files["weights.bin"] = b"something else entirely"
    with pytest.raises(DownloadError, match=f"checksum mismatch: expected sha256 {first}, got "
                                            f"{sha(b'something else entirely')}.*--reset-hash"):
        fetch(remote(server), tmp_path)
    assert not path.exists()  # nothing unverified is kept
    assert load_hashes(tmp_path)["weights.bin"]["sha256"] == first
    _, new = fetch(remote(server), tmp_path, reset_hash=True)
    assert new == sha(b"something else entirely") == load_hashes(tmp_path)["weights.bin"]["sha256"]


def test_published_hash_is_enforced(tmp_path, server):
    with pytest.raises(DownloadError, match="checksum mismatch: expected sha256 0000"):
        fetch(remote(server, sha256="0" * 64), tmp_path)
    assert not (tmp_path / HASHES_FILE).exists()
    good = sha(server.files["weights.bin"])
    assert fetch(remote(server, sha256=good), tmp_path)[1] == good


def test_truncated_transfer_is_kept_and_resumed(tmp_path, server):
    data = server.files["weights.bin"]
    server.modes["weights.bin"] = "truncate"
    with pytest.raises(DownloadError, match="rerun to resume"):
        fetch(remote(server), tmp_path)
    partial = tmp_path / "weights.bin.partial"
    assert partial.stat().st_size == len(data) // 2
    assert not (tmp_path / "weights.bin").exists()
    assert not (tmp_path / HASHES_FILE).exists()  # never trust a file that did not arrive whole
    del server.modes["weights.bin"]
    path, digest = fetch(remote(server), tmp_path)
    assert server.requests[-1] == ("weights.bin", f"bytes={len(data) // 2}-")
    assert path.read_bytes() == data and digest == sha(data)
    assert not partial.exists() and not (tmp_path / "weights.bin.partial.validator").exists()


def test_file_changed_upstream_between_attempts_is_not_spliced(tmp_path, server):
    server.modes["weights.bin"] = "truncate"
    with pytest.raises(DownloadError, match="rerun to resume"):
        fetch(remote(server), tmp_path)
    del server.modes["weights.bin"]
    server.files["weights.bin"] = new = bytes(reversed(server.files["weights.bin"]))
    path, digest = fetch(remote(server), tmp_path)
    assert server.requests[-1][1] is not None  # it asked to resume ...
    assert path.read_bytes() == new and digest == sha(new)  # ... and got the new file whole


def test_partial_without_validator_starts_over(tmp_path, server):
    data = server.files["weights.bin"]
    server.modes["weights.bin"] = "truncate"
    with pytest.raises(DownloadError):
        fetch(remote(server), tmp_path)
    (tmp_path / "weights.bin.partial.validator").unlink()
    del server.modes["weights.bin"]
    path, _ = fetch(remote(server), tmp_path)
    assert server.requests[-1] == ("weights.bin", None) and path.read_bytes() == data


def test_server_ignoring_ranges_restarts_cleanly(tmp_path, server):
    data = server.files["weights.bin"]
    (tmp_path / "weights.bin.partial").write_bytes(b"stale bytes from another file")
    (tmp_path / "weights.bin.partial.validator").write_text(f'"{sha(data)[:16]}"')
    server.modes["weights.bin"] = "no-range"
    path, digest = fetch(remote(server), tmp_path)
    assert path.read_bytes() == data and digest == sha(data)


def test_partial_that_is_already_whole(tmp_path, server):
    data = server.files["weights.bin"]
    (tmp_path / "weights.bin.partial").write_bytes(data)
    (tmp_path / "weights.bin.partial.validator").write_text(f'"{sha(data)[:16]}"')
    path, digest = fetch(remote(server), tmp_path)
    assert server.requests[-1] == ("weights.bin", f"bytes={len(data)}-")
    assert path.read_bytes() == data and digest == sha(data)


def test_http_error_and_server_gone(tmp_path, server):
    with pytest.raises(DownloadError, match="answered 404"):
        fetch(remote(server, "missing.bin"), tmp_path)
    url = server.url
    server.stop()
    with pytest.raises(DownloadError, match="cannot download .*ConnectionError"):
        fetch(RemoteFile(f"{url}/weights.bin"), tmp_path, timeout=5)


# ---------------------------------------------------------------------------------------------
# download_network with a fake release


def test_download_network_end_to_end(tmp_path):
    server = FileServer(fake_release())
    try:
        seen = set()
        result = download_network("soundnet8", cache_dir=tmp_path, mirror=server.url,
                                  progress=lambda name, done, total: seen.add(name))
        assert result.created and result.path == tmp_path / "soundnet8.safetensors"
        assert seen == set(server.files)
        model = load_model("soundnet8", cache_dir=tmp_path)
        assert model.config.heads[0].labels[3] == "n00000003 object 3"
        assert model.config.heads[1].labels[0] == "/s/scene_0"
        assert model.provenance["network"] == "soundnet8"
        assert model.provenance["member"] == "soundnet_models_public/soundnet8_final.t7"
        archive = KNOWN_NETWORKS["soundnet8"].archive.name
        assert model.provenance["downloaded"]["archive"] == {
            "url": f"{server.url}/{archive}", "sha256": sha(server.files[archive])}
        recorded = json.loads((tmp_path / "downloads" / HASHES_FILE).read_text())
        assert set(recorded) == set(server.files)

        n = len(server.requests)
        assert not download_network("soundnet8", cache_dir=tmp_path, mirror=server.url).created
        five = download_network("soundnet5", cache_dir=tmp_path, mirror=server.url)
        assert len(server.requests) == n  # the archive and category files are reused, checked
        assert load_model(five.path).config.arch == "soundnet5"
    finally:
        server.stop()


def test_download_network_offline_says_how_to_do_it_by_hand(tmp_path):
    server = FileServer({})
    url = server.url
    server.stop()
    with pytest.raises(DownloadError) as info:
        download_network("soundnet8", cache_dir=tmp_path, mirror=url)
    message = str(info.value)
    assert "cannot download" in message
    assert "http://data.csail.mit.edu/soundnet/soundnet_models_public.zip" in message
    assert "categories_places2.txt" in message
    assert "soundnet weights import soundnet_models_public.zip --arch soundnet8" in message
    assert not (tmp_path / "soundnet8.safetensors").exists()


def test_corrupt_archive_is_refused_before_anything_is_written(tmp_path):
    files = fake_release()
    archive = KNOWN_NETWORKS["soundnet8"].archive.name
    files[archive] = b"PK\x03\x04 this is not really a zip"
    server = FileServer(files)
    try:
        with pytest.raises(WeightsError, match="corrupt zip(.|\n)*--reset-hash"):
            download_network("soundnet8", cache_dir=tmp_path, mirror=server.url)
        assert not (tmp_path / "soundnet8.safetensors").exists()
    finally:
        server.stop()
    assert Path(tmp_path / "downloads" / archive).exists()  # kept: its checksum was recorded
