"""The bundle server: release payloads over HTTPS to devices with a fleet client certificate.

A small ASGI app under uvicorn. TLS asks every client for a certificate from the fleet CA
(the MQTT listener's), so only the fleet's appliances download releases; a client without
one fails the handshake. `GET /bundles/{version}/payload.bin` (and HEAD) answers a single
byte range with 206 and Content-Range, which is how a device resumes a download at its
first missing chunk, or the whole payload with 200 without a Range. The version must be a
release in the hub database, and the file served is the one recorded for it, so no path
a client sends ever reaches the file system.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from peewee import Database

from hub.releases.models import Release

log = logging.getLogger(__name__)

PIECE = 256 * 1024  # bytes per read and per body message
_PATH = re.compile(r"^/bundles/([0-9.]{1,64})/payload\.bin$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `first` to `last` inclusive of a file of `size` bytes."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.last - self.first + 1

    @property
    def content_range(self) -> str:
        """The Content-Range header's value."""
        return f"bytes {self.first}-{self.last}/{self.size}"


UNSATISFIABLE: Final = "unsatisfiable"  # the Range asks for no byte of the file: 416


def parse_range(header: str | None, size: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """The single byte range a Range header asks for; None to send the whole file.

    UNSATISFIABLE when the range starts past the end. A header that is not one `bytes=`
    range (several ranges, another unit, bad syntax) is ignored, as HTTP allows: the client
    gets the whole file.
    """
    if header is None:
        return None
    found = _RANGE.match(header.strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None
    first_text, last_text = found.groups()
    if first_text == "":  # a suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # syntactically invalid: ignored
    if first >= size:
        return UNSATISFIABLE
    last = size - 1 if last_text == "" else int(last_text)
    return ByteRange(first, min(last, size - 1), size)


class BundleApp:
    """The ASGI app: release payloads by version, with single byte ranges."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, "only GET and HEAD\n", [(b"allow", b"GET, HEAD")])
            return
        found = _PATH.match(scope["path"])
        path = await asyncio.to_thread(self._payload, found.group(1)) if found else None
        if path is None:
            await _plain(send, 404, "no such release here\n")
            return
        try:
            size = path.stat().st_size
        except OSError as err:
            log.error("release payload %s is missing: %s", path, err)
            await _plain(send, 404, "the release's payload is missing at the hub\n")
            return
        wanted = parse_range(_header(scope, b"range"), size)
        if wanted == UNSATISFIABLE:
            await _plain(
                send,
                416,
                "range not satisfiable\n",
                [(b"content-range", f"bytes */{size}".encode())],
            )
            return
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"accept-ranges", b"bytes"),
        ]
        if isinstance(wanted, ByteRange):
            status, first, length = 206, wanted.first, wanted.length
            headers.append((b"content-range", wanted.content_range.encode()))
        else:
            status, first, length = 200, 0, size
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        await _stream(path, first, length, send)

    def _payload(self, version: str) -> Path | None:
        """The payload file of a release in the database, or None."""
        row = (
            Release.select(Release.payload_path)
            .where(Release.version == version)
            .tuples()
            .first(self._db)
        )
        return None if row is None else Path(row[0])


async def _stream(path: Path, first: int, length: int, send: Send) -> None:
    """Send `length` bytes of `path` from `first`, a piece at a time, read off the event loop."""
    with path.open("rb") as file:
        await asyncio.to_thread(file.seek, first)
        left = length
        while left > 0:
            piece = await asyncio.to_thread(file.read, min(PIECE, left))
            if not piece:  # the file shrank under us: end short, the client sees it
                log.error("release payload %s ended %d bytes early", path, left)
                break
            left -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": left > 0})
    if left > 0 or length == 0:  # the body must still end
        await send({"type": "http.response.body", "body": b""})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _plain(
    send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@dataclass(frozen=True, slots=True)
class TlsServerFiles:
    """The bundle server's certificate and key, and the CA its clients' certificates come from."""

    cert: Path
    key: Path
    client_ca: Path  # the fleet CA: the devices' certificates


def server_config(db: Database, host: str, port: int, tls: TlsServerFiles, **options: Any) -> Any:
    """A uvicorn Config serving the bundle app over TLS that requires a client certificate."""
    import uvicorn

    return uvicorn.Config(
        BundleApp(db),
        host=host,
        port=port,
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        ssl_ca_certs=str(tls.client_ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,  # no fleet certificate, no handshake
        access_log=False,
        **options,
    )
