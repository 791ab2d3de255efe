"""The ZVT TCP link over a real socket pair on 127.0.0.1: bytes on the wire, splits, closes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.link import open_link
from appliance.drivers.zvt.tcp_link import TcpLink
from appliance.errors import ZvtLinkError, ZvtTimeoutError

# Registration 06 00: password 000000, config byte 86, currency 0978 (EUR).
REGISTRATION = Apdu(0x06, 0x00, bytes.fromhex("000000 86 0978"))
ACKNOWLEDGE = Apdu(0x80, 0x00)
# More than 254 data bytes: LEN = FF, then 0x012C little-endian.
LONG_TEXT = Apdu(0x06, 0xD3, bytes(range(256)) + bytes(44))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on a free loopback port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


@pytest.fixture
def pair(listener: socket.socket) -> Iterator[tuple[TcpLink, socket.socket]]:
    """(the till's TcpLink, the terminal's raw accepted socket)."""
    link = TcpLink.connect("127.0.0.1", listener.getsockname()[1], timeout=5)
    terminal, _ = listener.accept()
    terminal.settimeout(5)
    with link, terminal:
        yield link, terminal


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """`n` bytes from `sock`, however they are split."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"closed after {data.hex(' ')}"
        data += chunk
    return data


def receive_on_thread(link: TcpLink, timeout: float) -> tuple[threading.Thread, list[object]]:
    """Start `link.receive(timeout)` on a thread; the list gets its result or error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(link.receive(timeout))
        except Exception as err:
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_tcp_sends_short_and_extended_apdus_as_bare_bytes(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, terminal = pair
    link.send(REGISTRATION)
    assert recv_exactly(terminal, 9) == bytes.fromhex("06 00 06 000000 86 0978")
    link.send(LONG_TEXT)
    wire = recv_exactly(terminal, 5 + 300)
    assert wire[:5] == bytes.fromhex("06 D3 FF 2C 01")
    assert wire[5:] == LONG_TEXT.data


def test_tcp_receives_short_and_extended_apdus(pair: tuple[TcpLink, socket.socket]) -> None:
    link, terminal = pair
    terminal.sendall(bytes.fromhex("80 00 00"))
    assert link.receive(5) == ACKNOWLEDGE
    terminal.sendall(LONG_TEXT.encode())
    assert link.receive(5) == LONG_TEXT


def test_tcp_round_trip_between_two_links(listener: socket.socket) -> None:
    till = TcpLink.connect("127.0.0.1", listener.getsockname()[1])
    with till, TcpLink(listener.accept()[0]) as terminal:
        till.send(REGISTRATION)
        assert terminal.receive(5) == REGISTRATION
        terminal.send(LONG_TEXT)
        assert till.receive(5) == LONG_TEXT


def test_tcp_two_apdus_in_one_segment_come_out_one_at_a_time(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, terminal = pair
    terminal.sendall(ACKNOWLEDGE.encode() + LONG_TEXT.encode() + REGISTRATION.encode())
    assert link.receive(5) == ACKNOWLEDGE
    assert link.receive(5) == LONG_TEXT
    assert link.receive(5) == REGISTRATION


def test_tcp_an_apdu_arriving_byte_by_byte_is_waited_for_and_whole(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, terminal = pair
    terminal.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wire = bytes.fromhex("06 D3 FF 04 00 41 42 43 44")  # an FF length on a short APDU
    for byte in wire[:-1]:
        terminal.sendall(bytes((byte,)))
        with pytest.raises(ZvtTimeoutError):  # not whole yet: what came is kept for the next call
            link.receive(0.02)
    terminal.sendall(wire[-1:])
    assert link.receive(5) == Apdu(0x06, 0xD3, b"ABCD")


def test_tcp_no_apdu_within_the_timeout_is_zvt_timeout(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, _ = pair
    started = time.monotonic()
    with pytest.raises(ZvtTimeoutError, match=r"within 0\.1 s"):
        link.receive(0.1)
    assert 0.09 <= time.monotonic() - started < 5


@pytest.mark.parametrize("sent_first", [b"", b"\x06\x00\x06\x00"], ids=["idle", "mid-apdu"])
def test_tcp_the_peer_closing_is_a_link_error(
    pair: tuple[TcpLink, socket.socket], sent_first: bytes
) -> None:
    link, terminal = pair
    terminal.sendall(sent_first)
    terminal.close()
    with pytest.raises(ZvtLinkError, match="closed by the peer"):
        link.receive(5)


def test_tcp_close_unblocks_a_receive_on_another_thread(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, _ = pair
    thread, outcome = receive_on_thread(link, 30)
    link.close()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome[0], ZvtLinkError)
    assert not isinstance(outcome[0], ZvtTimeoutError)
    assert "closed" in str(outcome[0])


def test_tcp_a_closed_link_refuses_to_send_and_receive_and_closes_twice(
    pair: tuple[TcpLink, socket.socket],
) -> None:
    link, terminal = pair
    link.close()
    link.close()
    with pytest.raises(ZvtLinkError, match="closed"):
        link.send(ACKNOWLEDGE)
    with pytest.raises(ZvtLinkError, match="closed"):
        link.receive(1)
    assert terminal.recv(16) == b""  # the terminal sees the connection end


def test_tcp_connect_to_a_closed_port_is_a_link_error(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ZvtLinkError, match=f"127.0.0.1:{port}"):
        TcpLink.connect("127.0.0.1", port, timeout=2)


def test_open_link_connects_over_tcp_from_the_settings(listener: socket.socket) -> None:
    settings = ZvtTerminalSettings(host="127.0.0.1", port=listener.getsockname()[1])
    link = open_link(settings)
    try:
        assert isinstance(link, TcpLink)
        with listener.accept()[0] as terminal:
            terminal.sendall(ACKNOWLEDGE.encode())
            assert link.receive(5) == ACKNOWLEDGE
    finally:
        link.close()
