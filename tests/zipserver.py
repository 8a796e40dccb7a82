"""A loopback HTTP server of one zip file, with the faults a real download meets, for the URL-source tests.

Not a test module. It answers single byte ranges (``bytes=a-b``, ``a-``, ``-n``) with 206, or
with ``ranges=False`` ignores ``Range`` and sends the whole body with 200, as some servers do.
Faults are queued and each spoils the next request for the file: ``503`` (with
``Retry-After: 0``), ``("drop", n)`` (send ``n`` body bytes of the answer, then close the
connection) or ``("stall", s)`` (wait ``s`` seconds before the body). ``redirects`` maps a path
to the URL it answers 302 with (another host name: ``localhost`` is not ``127.0.0.1``), and
``guard`` decides per request whether it is served. Every request's host and headers are
recorded and every body byte sent is counted, so tests can check which headers went where and
how much of the archive was downloaded. ``latency`` (seconds) is waited before each answer, a
round trip, and ``rate`` (bytes/s) is one link shared by every connection: a distant server
without leaving the machine. ``busiest`` is the most answers that were ever under way at once.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK = 64 * 1024


@dataclass
class Seen:
    """One request as the server received it."""

    host: str
    path: str
    headers: dict[str, str]


@dataclass
class ZipServer:
    """Serves ``path`` at ``/<name>`` on 127.0.0.1 (also reachable as ``localhost``)."""

    path: Path
    ranges: bool = True
    guard: Callable[[Seen], int | None] = lambda seen: None
    """A status to answer instead of the file (401, 400...), or None to serve it."""
    faults: deque = field(default_factory=deque)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    served: int = 0
    latency: float = 0.0
    rate: float | None = None
    busiest: int = 0

    def __post_init__(self) -> None:
        self.faults = deque(self.faults)
        self.lock = threading.Lock()
        self.busy = 0
        self.link_free = 0.0
        self.size = self.path.stat().st_size
        self.httpd = _Quiet(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1", path: str | None = None) -> str:
        """The file's URL on ``host``, or the URL of another ``path`` on this server."""
        return f"http://{host}:{self.port}{path or '/' + self.path.name}"

    def __enter__(self) -> ZipServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, n: int) -> None:
        with self.lock:
            self.served += n

    def pace(self, n: int) -> None:
        """Wait for ``n`` bytes' turn on the shared link: each piece of every answer has its slot, one after another."""
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self.link_free = max(now, self.link_free) + n / self.rate
            until = self.link_free
        time.sleep(max(0.0, until - now))

    def answering(self, delta: int) -> None:
        with self.lock:
            self.busy += delta
            self.busiest = max(self.busiest, self.busy)

    def next_fault(self):
        with self.lock:
            return self.faults.popleft() if self.faults else None


class _Quiet(ThreadingHTTPServer):
    """A server that does not print a traceback when a client it serves is killed mid-answer.

    Its listen queue holds as many connections as a client opens at once (socketserver's 5
    would drop the rest of a burst of connects, each then retried a second later).
    """

    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _handler(server: ZipServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            server.answering(1)
            try:
                time.sleep(server.latency)
                self._get()
            finally:
                server.answering(-1)

        def _get(self) -> None:
            seen = Seen(self.headers.get("Host", "").rsplit(":", 1)[0], self.path, dict(self.headers.items()))
            with server.lock:
                server.requests.append(seen)
            status = server.guard(seen)
            if status is not None:
                self._answer(status)
                return
            path = self.path.split("?")[0]
            if path in server.redirects:
                self._answer(302, {"Location": server.redirects[path]})
                return
            if path != f"/{server.path.name}":
                self._answer(404)
                return
            fault = server.next_fault()
            if fault == 503:
                self._answer(503, {"Retry-After": "0"})
                return
            if isinstance(fault, tuple) and fault[0] == "stall":
                time.sleep(fault[1])
            self._send_file(fault[1] if isinstance(fault, tuple) and fault[0] == "drop" else None)

        def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send_file(self, drop_after: int | None) -> None:
            first, last = 0, server.size - 1
            wanted = _range(self.headers.get("Range"), server.size) if server.ranges else None
            if wanted == "bad":
                self._answer(416, {"Content-Range": f"bytes */{server.size}"})
                return
            if wanted is not None:
                first, last = wanted
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{server.size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(last + 1 - first))
            self.send_header("Accept-Ranges", "bytes" if server.ranges else "none")
            self.end_headers()
            sent = 0
            with open(server.path, "rb") as fh:
                fh.seek(first)
                while sent < last + 1 - first:
                    piece = fh.read(min(CHUNK, last + 1 - first - sent))
                    if drop_after is not None and sent + len(piece) > drop_after:
                        piece = piece[: drop_after - sent]
                    server.pace(len(piece))
                    server.count(len(piece))
                    try:
                        self.wfile.write(piece)
                        self.wfile.flush()
                    except OSError:
                        return
                    sent += len(piece)
                    if drop_after is not None and sent >= drop_after:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return

    return Handler


def _range(header: str | None, size: int):
    """(first, last) of a single byte range, None for no (or an unparsable) Range, "bad" when unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:
        return max(0, size - int(match[2])), size - 1
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    return (first, last) if first <= last else "bad"
