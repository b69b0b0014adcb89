"""A local HTTP file server for download tests (127.0.0.1 only): byte ranges, a request
log, and injected faults (an error status, a connection dropped mid-body)."""
from __future__ import annotations

import http.server
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_TYPES = {".mp4": "video/mp4", ".tar": "application/x-tar", ".gz": "application/gzip"}


@dataclass
class LocalServer:
    root: Path
    port: int = 0
    log: list = field(default_factory=list)  # (method, path, Range header or None)
    ranges: bool = True  # False: a plain server that ignores Range and always sends the whole file
    status: dict = field(default_factory=dict)  # path -> forced HTTP status
    # path -> (n, bytes): the n-th GET of path (from 1) drops its connection after `bytes`
    drop: dict = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: LocalServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            path = self.path.split("?")[0].lstrip("/")
            server.log.append((self.command, path, self.headers.get("Range")))
            file = server.root / path
            if path in server.status or not file.is_file():
                self.send_error(server.status.get(path, 404))
                return
            size = file.stat().st_size
            start, end = 0, size - 1
            match = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
            if server.ranges and match and (match[1] or match[2]):
                start = int(match[1] or 0)
                end = min(int(match[2]), size - 1) if match[2] else size - 1
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", _TYPES.get(file.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(end - start + 1))
            if server.ranges:
                self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if body:
                self._send_body(file, path, start, end - start + 1)

        def _send_body(self, file: Path, path: str, start: int, length: int) -> None:
            gets = sum(1 for method, p, _ in server.log if method == "GET" and p == path)
            nth, limit = server.drop.get(path, (0, None))
            limit = limit if self.command == "GET" and gets == nth else None
            with open(file, "rb") as f:
                f.seek(start)
                data = f.read(length)
            try:
                if limit is None:
                    self.wfile.write(data)
                    return
                self.wfile.write(data[:limit])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the connection drops mid-body
            except OSError:  # the client went away first
                pass
    return Handler


@contextmanager
def serve_directory(root: str | os.PathLike):
    """Serve `root` on 127.0.0.1 (a free port) for the duration of the block."""
    server = LocalServer(Path(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
