"""The bundle server over real TLS on 127.0.0.1 (uvicorn, as `appliance-hub bundles` runs it).

Certificates come from the hub's own CA code: the server's and a device's from the fleet
CA, the hub workers' from the hub CA (a client the bundle server must not accept). On
SQLite and PostgreSQL, since the version is looked up in the hub database.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.update.download import HttpsChunkSource
from hub.ca import CA_CERT, init_ca, issue_device, issue_hub, issue_server
from hub.releases.bundle_server import ByteRange, TlsServerFiles, parse_range, server_config
from hub.releases.models import Release
from tests.broker import free_port
from tests.hub.releases.making import store_release

VERSION = "2026.12.2"
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Running:
    """A bundle server and what its clients need."""

    port: int
    ca: Path  # the fleet CA's certificate: clients verify the server with it
    device: tuple[Path, Path]  # kiosk-1's certificate and key (fleet CA)
    hub: tuple[Path, Path]  # the hub workers' certificate and key (hub CA)
    payload: bytes


@pytest.fixture
def running(rel_db: Database, release_key: Ed25519PrivateKey, tmp_path: Path) -> Iterator[Running]:
    """The bundle server on a free port, serving release VERSION; stopped after the test."""
    ca_dir = tmp_path / "ca"
    init_ca(ca_dir)
    cert, key = issue_server(ca_dir, "127.0.0.1", tmp_path / "server")
    device = issue_device(ca_dir, "kiosk-1", tmp_path / "kiosk-1")
    hub = issue_hub(ca_dir, tmp_path / "hub")
    _, payload = store_release(
        rel_db, release_key, VERSION, tmp_path / "releases" / VERSION / "payload.bin"
    )
    port = free_port()
    tls = TlsServerFiles(cert, key, ca_dir / CA_CERT)
    server = uvicorn.Server(server_config(rel_db, "127.0.0.1", port, tls, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the bundle server did not start"
        time.sleep(0.01)
    try:
        yield Running(port, ca_dir / CA_CERT, device, hub, payload)
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)


def context(running: Running, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    """A TLS client context trusting the fleet CA, with `client`'s certificate if given."""
    made = ssl.create_default_context(cafile=str(running.ca))
    if client is not None:
        made.load_cert_chain(str(client[0]), str(client[1]))
    return made


def tls12(running: Running, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    """`context`, at most TLS 1.2 (where the handshake itself checks a client certificate)."""
    made = context(running, client)
    made.maximum_version = ssl.TLSVersion.TLSv1_2
    return made


def get(
    running: Running, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One request with kiosk-1's certificate: (status, headers, body)."""
    connection = http.client.HTTPSConnection(
        "127.0.0.1", running.port, timeout=TIMEOUT, context=context(running, running.device)
    )
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


PATH = f"/bundles/{VERSION}/payload.bin"


@pytest.mark.parametrize("client", ["none", "hub"])
def test_a_client_without_a_fleet_certificate_is_refused_at_the_handshake(
    running: Running, client: str
) -> None:
    chain = running.hub if client == "hub" else None
    # TLS 1.2: the server checks the client's certificate inside the handshake itself.
    with (
        socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw,
        pytest.raises(ssl.SSLError),  # the server ends the connection mid-handshake
    ):
        tls12(running, chain).wrap_socket(raw, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw:
        tls12(running, running.device).wrap_socket(raw, server_hostname="127.0.0.1").close()
    # TLS 1.3 ends the client's side of the handshake first: the refusal arrives at the
    # first read, as an alert or (with some OpenSSL builds) a bare end of the connection,
    # and not a byte of HTTP ever comes back.
    with socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT) as raw:
        tls = context(running, chain).wrap_socket(
            raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False
        )
        try:
            tls.sendall(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            got = tls.recv(1024)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            got = b""
        tls.close()
    assert got == b""
    # The same request with the device's certificate is answered.
    assert get(running, PATH)[0] == 200


def test_a_range_comes_back_as_206_with_exactly_those_bytes(running: Running) -> None:
    status, headers, body = get(running, PATH, {"Range": "bytes=100-1099"})
    size = len(running.payload)
    assert (status, body) == (206, running.payload[100:1100])
    assert headers["content-range"] == f"bytes 100-1099/{size}"
    assert headers["content-length"] == "1000" and headers["accept-ranges"] == "bytes"
    status, headers, body = get(running, PATH, {"Range": f"bytes={size - 10}-"})
    assert (status, body) == (206, running.payload[-10:])
    status, headers, body = get(running, PATH, {"Range": "bytes=-7"})
    assert (status, body, headers["content-range"]) == (
        206, running.payload[-7:], f"bytes {size - 7}-{size - 1}/{size}",
    )  # fmt: skip
    status, headers, body = get(running, PATH, {"Range": f"bytes=5-{size + 500}"})
    assert (status, body) == (206, running.payload[5:])  # clipped to the end


def test_a_device_reads_its_chunks_through_the_updater_source(running: Running) -> None:
    url = f"https://127.0.0.1:{running.port}{PATH}"
    cert, key = running.device
    with HttpsChunkSource(url, ca_file=running.ca, cert_file=cert, key_file=key) as source:
        assert source.read(0, 64) == running.payload[:64]
        assert source.read(64, 200) == running.payload[64:264]  # one kept-alive connection


def test_without_a_range_the_whole_payload_comes_back_and_head_sends_no_body(
    running: Running,
) -> None:
    status, headers, body = get(running, PATH)
    assert (status, body) == (200, running.payload)
    assert headers["content-length"] == str(len(running.payload))
    status, headers, body = get(running, PATH, method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(running.payload)))
    status, _, body = get(running, PATH, {"Range": "bytes=1-2, 5-6"})  # several: ignored
    assert (status, body) == (200, running.payload)


def test_a_range_past_the_end_is_416(running: Running) -> None:
    size = len(running.payload)
    status, headers, _ = get(running, PATH, {"Range": f"bytes={size}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{size}"
    assert get(running, PATH, {"Range": "bytes=-0"})[0] == 416


def test_only_releases_in_the_database_are_served(
    running: Running, rel_db: Database, tmp_path: Path
) -> None:
    (tmp_path / "releases" / "2026.12.3").mkdir()
    (tmp_path / "releases" / "2026.12.3" / "payload.bin").write_bytes(b"not released")
    for path in (
        "/bundles/2026.12.3/payload.bin",  # a file there, but no release row
        "/bundles/2026.12.9/payload.bin",
        f"/bundles/{VERSION}/../../ca/ca.key",
        "/bundles/..%2F..%2Fca%2Fca.key/payload.bin",
        f"/bundles/{VERSION}/manifest.json",
        "/",
    ):
        assert get(running, path)[0] == 404, path
    assert get(running, PATH, method="POST")[0] == 405
    Release.delete().execute(rel_db)
    assert get(running, PATH)[0] == 404  # withdrawn: gone at once


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 0, 10)),
        ("bytes=9-", ByteRange(9, 9, 10)),
        ("bytes=-20", ByteRange(0, 9, 10)),
        ("bytes=10-", "unsatisfiable"),
        ("bytes=5-3", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_headers(header: str | None, expected: object) -> None:
    assert parse_range(header, 10) == expected


def test_the_empty_payload_is_still_answered(running: Running, tmp_path: Path) -> None:
    os.truncate(tmp_path / "releases" / VERSION / "payload.bin", 0)
    status, headers, body = get(running, PATH)
    assert (status, body, headers["content-length"]) == (200, b"", "0")
