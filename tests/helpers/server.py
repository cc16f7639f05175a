"""A local HTTP file server with Range and ETag support, and a fake release of the
authors' networks, for the download tests."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile

from helpers import tiny_config
from helpers.torch7_writer import original_t7_bytes
from soundnet_cli.weights.registry import KNOWN_NETWORKS


class FileServer:
    """Serves ``files`` from memory with Range, ETag and If-Range support; ``modes[name]`` can be
    ``"truncate"`` (send half of the promised bytes, then hang up), ``"no-range"`` (ignore
    Range) or ``"no-etag"`` (send no validator)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, mode = server.files[name], server.modes.get(name)
                etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
                if self.headers.get("If-Range") not in (None, etag):
                    rng = None  # the file changed since the partial download: send it whole
                start = int(rng[6:].split("-")[0]) if rng and mode != "no-range" else 0
                if start >= len(data) and rng and mode != "no-range":
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                if mode != "no-etag":
                    self.send_header("ETag", etag)
                self.end_headers()
                body = data[start:]
                self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def fake_release() -> dict[str, bytes]:
    net = KNOWN_NETWORKS["soundnet8"]
    archive_name = net.archive.name
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for arch in ("soundnet8", "soundnet5"):
            z.writestr(f"soundnet_models_public/{arch}_final.t7",
                       original_t7_bytes(tiny_config(arch)))
    heads = tiny_config().heads
    return {
        archive_name: buf.getvalue(),
        net.labels[0][1].name:
            "".join(f"n{i:08d} object {i}\n" for i in range(heads[0].classes)).encode(),
        net.labels[1][1].name:
            "".join(f"/s/scene_{i}\n" for i in range(heads[1].classes)).encode(),
    }
