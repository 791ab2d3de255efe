"""A real HTTPS server on 127.0.0.1 that serves one file by single ranges, and can misbehave.

It requires a client certificate from the test fleet CA (tests.mqtt.tls_broker.Pki), like
the hub's bundle server, and answers `Range: bytes=a-b` with 206 and Content-Range, no
Range with 200 and the whole file, and a range past the end with 416. Its knobs make it
misbehave the ways a link or a server does: cut a body in the middle, corrupt one range's
bytes, ignore ranges, refuse every range, stall, or drop every connection from some
request on. It counts connections, requests and body bytes sent, so a test can prove
reuse and resumption.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.mqtt.tls_broker import Pki

_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
WAIT = 10.0  # seconds a stalled answer waits at most; a bound, never an assertion


class RangeServer:
    """Serves `path` at https://127.0.0.1:<port>/payload.bin to clients of the fleet CA."""

    def __init__(self, path: Path, pki: Pki) -> None:
        self.path = path
        self.data = path.read_bytes()
        # Knobs a test sets before (or while) a client reads.
        self.cut_bodies = 0  # the next N answers stop halfway and drop the connection
        self.corrupt: dict[int, int] = {}  # range start -> answers still to corrupt
        self.ignore_range = False  # answer 200 with the whole file
        self.refuse_ranges = False  # answer 416 to every range
        self.stall = False  # hold every answer until close()
        self.drop_from: int | None = None  # from this request number on, drop the connection
        # What happened.
        self.connections = 0
        self.requests: list[tuple[int, int] | None] = []  # (start, end) or None: no Range
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        context.load_verify_locations(pki.ca_cert)
        context.verify_mode = ssl.CERT_REQUIRED
        self._httpd = _Server(self, context)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The payload's URL."""
        return f"https://127.0.0.1:{self._httpd.server_address[1]}/payload.bin"

    def requests_at(self, start: int) -> int:
        """How many requests asked for a range starting at `start`."""
        return sum(1 for asked in self.requests if asked and asked[0] == start)

    def start(self) -> RangeServer:
        """Serve on a thread; return self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Release stalled answers, stop serving and close the socket; safe twice."""
        self._release.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(WAIT)
        self._httpd.server_close()

    def __enter__(self) -> RangeServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _answer(self, handler: _Handler) -> None:
        with self._lock:
            number = len(self.requests)
            match = _RANGE.match(handler.headers.get("Range", ""))
            asked = (int(match[1]), int(match[2])) if match else None
            self.requests.append(asked)
            drop = self.drop_from is not None and number >= self.drop_from
            cut = bool(asked) and self.cut_bodies > 0 and not drop
            if cut:
                self.cut_bodies -= 1
            corrupt = bool(asked) and self.corrupt.get(asked[0] if asked else -1, 0) > 0
            if corrupt and asked:
                self.corrupt[asked[0]] -= 1
        if self.stall:
            self._release.wait(WAIT)
        if drop:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        size = len(self.data)
        if asked is None or self.ignore_range:
            self._send(handler, 200, self.data, {})
            return
        start, end = asked
        if self.refuse_ranges or start >= size or end < start:
            self._send(handler, 416, b"", {"Content-Range": f"bytes */{size}"})
            return
        end = min(end, size - 1)
        body = self.data[start : end + 1]
        if corrupt:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        headers = {"Content-Range": f"bytes {start}-{end}/{size}"}
        self._send(handler, 206, body, headers, cut=cut)

    def _send(
        self,
        handler: _Handler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        cut: bool = False,
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        sent = body[: len(body) // 2] if cut else body
        handler.wfile.write(sent)
        handler.wfile.flush()
        with self._lock:
            self.bytes_sent += len(sent)
        if cut:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    """Accepts on 127.0.0.1 and hands each handler thread a TLS socket to finish shaking."""

    daemon_threads = True

    def __init__(self, owner: RangeServer, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.context = context

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        with self.owner._lock:
            self.owner.connections += 1
        # The handshake happens on the handler's first read, off the accepting thread.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake or a client gone is part of the tests: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1, kept alive between ranges."""

    protocol_version = "HTTP/1.1"
    timeout = WAIT
    server: _Server

    def do_GET(self) -> None:
        """Answer one request the owner's way."""
        self.server.owner._answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the counters instead."""
