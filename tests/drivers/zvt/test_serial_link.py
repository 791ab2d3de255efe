"""The ZVT serial link over a real pty: pyserial on the slave, the test (or a link) on the master.

The test plays the terminal on the master side and asserts every byte the link puts on
the line: frames, and the single ACK 06 / NAK 15 answers.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.link import open_link
from appliance.drivers.zvt.serial_frame import frame
from appliance.drivers.zvt.serial_link import FdStream, SerialLink
from appliance.errors import ZvtError, ZvtLinkError, ZvtTimeoutError

ACK, NAK = b"\x06", b"\x15"
# The Completion of a Status Enquiry, the CRC check vector of PA00P016's examples.
STATUS_COMPLETION_FRAME = bytes.fromhex(
    "10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11"
)
STATUS_COMPLETION = Apdu(0x06, 0x0F, bytes.fromhex("F0 F0 F7 32 2E 31 34 2E 31 35 00"))
ACKNOWLEDGE = Apdu(0x80, 0x00)
ACKNOWLEDGE_FRAME = bytes.fromhex("10 02 80 00 00 10 03 F5 1F")
REGISTRATION = Apdu(0x06, 0x00, bytes.fromhex("000000 86 0978"))
REGISTRATION_FRAME = bytes.fromhex("10 02 06 00 06 00 00 00 86 09 78 10 03 16 03")
# A Status-Information with terminal id 10100001: both 10 bytes are doubled on the line.
TERMINAL_ID = Apdu(0x04, 0x0F, bytes.fromhex("29 10 10 00 01"))
TERMINAL_ID_FRAME = bytes.fromhex("10 02 04 0F 05 29 10 10 10 10 00 01 10 03 45 82")


class Pty:
    """Both ends of a raw pty; each closed once, by the test or at its end."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._open = {self.master, self.slave}

    def close(self, fd: int) -> None:
        """Close one end (once; it may already be closed by the test)."""
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def write(self, data: bytes) -> None:
        """Write `data` into the master side: the terminal speaks."""
        os.write(self.master, data)

    def read(self, n: int, timeout: float = 5.0) -> bytes:
        """Exactly `n` bytes from the master side: what the link put on the line."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < n:
            ready, _, _ = select.select([self.master], [], [], deadline - time.monotonic())
            assert ready, f"only {data.hex(' ')} of {n} bytes came"
            data += os.read(self.master, n - len(data))
        return data


@pytest.fixture
def pty() -> Iterator[Pty]:
    """A fresh raw pty, closed at the end."""
    ends = Pty()
    yield ends
    ends.close(ends.master)
    ends.close(ends.slave)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """One thread for the side that blocks (a send awaiting its ACK, a receive)."""
    with ThreadPoolExecutor(1) as executor:
        yield executor


@pytest.fixture
def till(pty: Pty) -> Iterator[SerialLink]:
    """The till's link: pyserial on the pty's slave, as the adapter opens a real port."""
    with SerialLink.open_port(pty.path) as link:
        yield link


def test_serial_the_port_is_opened_8n2_at_9600_baud(pty: Pty, till: SerialLink) -> None:
    _, _, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(pty.slave)
    assert cflag & termios.CSIZE == termios.CS8
    assert cflag & termios.CSTOPB
    assert not cflag & termios.PARENB
    assert ispeed == ospeed == termios.B9600


def test_serial_the_crc_check_vector_frame_is_acked_and_decoded(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    pty.write(STATUS_COMPLETION_FRAME)
    assert till.receive(5) == STATUS_COMPLETION
    sent = pool.submit(till.send, ACKNOWLEDGE)
    # Exactly one ACK byte, then the next frame: nothing else went onto the line between.
    assert pty.read(1 + len(ACKNOWLEDGE_FRAME)) == ACK + ACKNOWLEDGE_FRAME
    pty.write(ACK)
    sent.result(5)


def test_serial_a_bad_crc_is_nakked_and_the_resent_frame_accepted(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    received = pool.submit(till.receive, 5)
    pty.write(STATUS_COMPLETION_FRAME[:-1] + b"\x12")
    assert pty.read(1) == NAK
    pty.write(STATUS_COMPLETION_FRAME)
    assert pty.read(1) == ACK
    assert received.result(5) == STATUS_COMPLETION


def test_serial_three_naks_are_a_link_error_after_exactly_three_sends(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    sent = pool.submit(till.send, REGISTRATION)
    for _ in range(3):
        assert pty.read(len(REGISTRATION_FRAME)) == REGISTRATION_FRAME
        pty.write(NAK)
    with pytest.raises(ZvtLinkError, match="NAK 3 times"):
        sent.result(5)
    # No fourth copy: the next bytes on the line are the next message.
    sent = pool.submit(till.send, ACKNOWLEDGE)
    assert pty.read(len(ACKNOWLEDGE_FRAME)) == ACKNOWLEDGE_FRAME
    pty.write(ACK)
    sent.result(5)


def test_serial_a_nak_then_an_ack_sends_twice_and_succeeds(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    sent = pool.submit(till.send, REGISTRATION)
    assert pty.read(len(REGISTRATION_FRAME)) == REGISTRATION_FRAME
    pty.write(b"\x00" + NAK)  # noise before the answer is skipped
    assert pty.read(len(REGISTRATION_FRAME)) == REGISTRATION_FRAME
    pty.write(ACK)
    sent.result(5)


def test_serial_no_ack_within_t2_is_a_timeout(pty: Pty) -> None:
    with SerialLink.open_port(pty.path, t2=0.2) as link:
        started = time.monotonic()
        with pytest.raises(ZvtTimeoutError, match="T2"):
            link.send(ACKNOWLEDGE)
        assert 0.19 <= time.monotonic() - started < 5
    assert pty.read(len(ACKNOWLEDGE_FRAME)) == ACKNOWLEDGE_FRAME  # sent once, not again


def test_serial_a_gap_longer_than_t1_inside_a_frame_abandons_it(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    received = pool.submit(till.receive, 5)
    pty.write(STATUS_COMPLETION_FRAME[:7])
    assert pty.read(1) == NAK  # comes once T1 passed without the rest
    pty.write(STATUS_COMPLETION_FRAME)
    assert pty.read(1) == ACK
    assert received.result(5) == STATUS_COMPLETION


def test_serial_noise_before_dle_stx_is_skipped(pty: Pty, till: SerialLink) -> None:
    pty.write(bytes.fromhex("00 FF 06 15 10 10 03 10") + STATUS_COMPLETION_FRAME)
    assert till.receive(5) == STATUS_COMPLETION
    assert pty.read(1) == ACK


def test_serial_a_frame_begun_again_replaces_the_broken_one(pty: Pty, till: SerialLink) -> None:
    pty.write(REGISTRATION_FRAME[:6] + STATUS_COMPLETION_FRAME)
    assert till.receive(5) == STATUS_COMPLETION
    assert pty.read(1) == ACK


def test_serial_dle_bytes_are_doubled_on_the_line_and_single_in_the_apdu(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    sent = pool.submit(till.send, TERMINAL_ID)
    assert pty.read(len(TERMINAL_ID_FRAME)) == TERMINAL_ID_FRAME
    pty.write(ACK)
    sent.result(5)
    pty.write(TERMINAL_ID_FRAME)
    assert till.receive(5) == TERMINAL_ID
    assert pty.read(1) == ACK


def test_serial_no_frame_within_the_timeout_is_zvt_timeout(till: SerialLink) -> None:
    started = time.monotonic()
    with pytest.raises(ZvtTimeoutError, match=r"within 0\.1 s"):
        till.receive(0.1)
    assert 0.09 <= time.monotonic() - started < 5


def test_serial_an_intact_frame_with_a_wrong_apdu_length_is_acked_and_refused(
    pty: Pty, till: SerialLink
) -> None:
    pty.write(frame(bytes.fromhex("80 00 02 00")))  # says 2 data bytes, holds 1
    with pytest.raises(ZvtError, match="holds 4 bytes, its APDU 80 00 says 5"):
        till.receive(5)
    assert pty.read(1) == ACK


def test_serial_link_on_pyserial_talks_to_a_link_on_the_pty_master(
    pty: Pty, till: SerialLink, pool: ThreadPoolExecutor
) -> None:
    long_text = Apdu(0x06, 0xD3, bytes(range(256)) * 2)  # extended length, with 10 bytes
    with SerialLink(FdStream(os.dup(pty.master))) as terminal:
        received = pool.submit(terminal.receive, 5)
        till.send(REGISTRATION)
        assert received.result(5) == REGISTRATION
        received = pool.submit(till.receive, 5)
        terminal.send(long_text)
        assert received.result(5) == long_text
        received = pool.submit(terminal.receive, 5)
        till.send(long_text)
        assert received.result(5) == long_text


def test_serial_the_peer_closing_is_a_link_error_on_the_pyserial_side(
    pty: Pty, till: SerialLink
) -> None:
    pty.close(pty.master)
    with pytest.raises(ZvtLinkError, match="closed"):
        till.receive(5)


def test_serial_the_peer_closing_is_a_link_error_on_the_fd_side(pty: Pty, till: SerialLink) -> None:
    with SerialLink(FdStream(os.dup(pty.master))) as terminal:
        till.close()
        pty.close(pty.slave)  # nobody holds the slave side now
        with pytest.raises(ZvtLinkError, match="closed"):
            terminal.receive(5)


@pytest.mark.parametrize("side", ["pyserial", "fd"])
def test_serial_close_unblocks_a_receive_on_another_thread(
    pty: Pty, pool: ThreadPoolExecutor, side: str
) -> None:
    if side == "pyserial":
        link = SerialLink.open_port(pty.path)
    else:
        link = SerialLink(FdStream(os.dup(pty.master)))
    received: Future[Apdu] = pool.submit(link.receive, 30)
    link.close()
    link.close()
    with pytest.raises(ZvtLinkError, match="closed") as caught:
        received.result(5)
    assert not isinstance(caught.value, ZvtTimeoutError)
    with pytest.raises(ZvtLinkError, match="closed"):
        link.send(ACKNOWLEDGE)


def test_serial_a_missing_port_is_a_link_error(tmp_path: Path) -> None:
    with pytest.raises(ZvtLinkError, match="cannot open"):
        SerialLink.open_port(str(tmp_path / "ttyUSB9"))


def test_open_link_opens_the_serial_port_from_the_settings(pty: Pty) -> None:
    link = open_link(ZvtTerminalSettings(transport="serial", serial_port=pty.path))
    try:
        assert isinstance(link, SerialLink)
        pty.write(STATUS_COMPLETION_FRAME)
        assert link.receive(5) == STATUS_COMPLETION
    finally:
        link.close()
