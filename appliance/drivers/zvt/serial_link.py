"""ZVT over a serial line (PA00P016): every APDU in a frame that the other side ACKs or NAKs.

The link runs over any ByteStream: a serial port through pyserial (the till's adapter) or a
raw file descriptor such as a pty master (a terminal emulator's side of the line).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import serial

from appliance.core.closing import Closing
from appliance.drivers.zvt.apdu import MAX_LENGTH, Apdu, apdu_size, decode_apdu
from appliance.drivers.zvt.serial_frame import ACK, DLE, ETX, NAK, STX, frame, unframe
from appliance.errors import ZvtError, ZvtLinkError, ZvtTimeoutError

log = logging.getLogger(__name__)

T1 = 0.2  # the longest gap between two bytes inside a frame
T2 = 5.0  # how long a sender waits for the ACK of its frame
SENDS = 3  # a NAKed frame is sent again at most twice
_CHUNK = 4096
# The longest frame: 5 + 65535 APDU bytes, every one a doubled DLE, then DLE ETX and the CRC.
# A "frame" running past that is noise that never ends; refuse it rather than grow forever.
_MAX_FRAME = 2 * (5 + MAX_LENGTH) + 6


class ByteStream(Protocol):
    """A byte pipe under the serial link; one thread reads and writes, any thread closes."""

    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes within `timeout` s, b"" if none came; ZvtLinkError when closed."""
        ...

    def write(self, data: bytes) -> None:
        """Write all of `data`; ZvtLinkError when the stream is closed or broken."""
        ...

    def close(self) -> None:
        """Close; safe twice; a read() blocked on another thread raises ZvtLinkError at once."""
        ...


class _Guard:
    """Releases a stream's descriptors only once no read or write is using them.

    close() may come from another thread while a read waits in select(). Closing the
    descriptors under it could hand their numbers to a file opened meanwhile, so close()
    wakes the reader instead, and the last user on its way out releases them.
    """

    def __init__(self, name: str, wake: Callable[[], None], release: Callable[[], None]) -> None:
        self.name = name
        self.closed = False
        self._wake, self._release = wake, release
        self._lock = threading.Lock()
        self._users = 0

    @contextlib.contextmanager
    def use(self) -> Iterator[None]:
        """Hold the descriptors open for one read or write; ZvtLinkError when closed."""
        with self._lock:
            self.check()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self.closed and not self._users:
                    self._release()

    def check(self) -> None:
        """ZvtLinkError once the stream was closed (on this side)."""
        if self.closed:
            raise ZvtLinkError(f"ZVT link on {self.name} closed")

    def close(self) -> None:
        """Mark closed; release now, or wake the user who releases on leaving."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._users:
                self._wake()
            else:
                self._release()


class FdStream:
    """A ByteStream over a file descriptor it owns, e.g. a pty master (os.read and select).

    The line discipline is the other side's business: the pty's slave must be raw, which
    pyserial makes it when it opens the port.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe()
        self._guard = _Guard(f"fd {fd}", self._wake, self._release)

    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes within `timeout` s, b"" if none came; ZvtLinkError when closed."""
        with self._guard.use():
            ready, _, _ = select.select([self._fd, self._wake_r], [], [], max(0.0, timeout))
            self._guard.check()
            if not ready:
                return b""
            try:
                data = os.read(self._fd, n)
            except OSError as err:  # EIO: nobody holds the pty's slave side any more
                raise ZvtLinkError(f"ZVT link on {self._guard.name} closed: {err}") from err
            if not data:
                raise ZvtLinkError(f"ZVT link on {self._guard.name} closed by the peer")
            return data

    def write(self, data: bytes) -> None:
        """Write all of `data`; ZvtLinkError when the stream is closed or broken."""
        with self._guard.use():
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except OSError as err:
                    raise ZvtLinkError(f"cannot write to {self._guard.name}: {err}") from err

    def close(self) -> None:
        """Close the descriptor; safe twice; ends a read() blocked on another thread."""
        self._guard.close()

    def _wake(self) -> None:
        os.write(self._wake_w, b"!")

    def _release(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            os.close(fd)


class PySerialStream:
    """A ByteStream over an open pyserial port, which it owns."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        # cancel_read() makes a read() blocked on another thread return at once.
        self._guard = _Guard(f"serial port {port.port}", port.cancel_read, port.close)

    def read(self, n: int, timeout: float) -> bytes:
        """Up to `n` bytes within `timeout` s, b"" if none came; ZvtLinkError when closed."""
        with self._guard.use():
            try:
                if self._port.timeout != max(0.0, timeout):  # each change re-configures the tty
                    self._port.timeout = max(0.0, timeout)
                data = self._port.read(1)  # blocks until the first byte only ...
                if data and n > 1:  # ... then takes what else is already there
                    data += self._port.read(min(n - 1, self._port.in_waiting))
            except (serial.SerialException, OSError) as err:
                self._guard.check()
                raise ZvtLinkError(f"ZVT link on {self._guard.name} closed: {err}") from err
            self._guard.check()  # a cancelled read returns early with nothing
            return bytes(data)

    def write(self, data: bytes) -> None:
        """Write all of `data`; ZvtLinkError when the port is closed or broken."""
        with self._guard.use():
            try:
                self._port.write(data)
            except (serial.SerialException, OSError) as err:
                raise ZvtLinkError(f"cannot write to {self._guard.name}: {err}") from err

    def close(self) -> None:
        """Close the port; safe twice; ends a read() blocked on another thread."""
        self._guard.close()


class SerialLink(Closing):
    """One serial line to the other side of a ZVT exchange (a ZvtLink); owns its stream.

    One thread sends and receives; close() may come from any thread. `t1` and `t2` are
    the spec's timers in seconds, adjustable so that tests need not wait for them.
    """

    def __init__(self, stream: ByteStream, *, t1: float = T1, t2: float = T2) -> None:
        self._stream = stream
        self._t1, self._t2 = t1, t2
        # Read from the stream, not looked at yet: the peer's frame may follow its ACK at once.
        self._pending = bytearray()

    @classmethod
    def open_port(
        cls, path: str, baudrate: int = 9600, *, t1: float = T1, t2: float = T2
    ) -> SerialLink:
        """Open the serial port at `path`, 8N2 as PA00P016 asks; ZvtLinkError if it cannot."""
        try:
            # Exclusive, so that nothing else probing the port (a modem manager) eats bytes.
            port = serial.Serial(
                path,
                baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_TWO,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            raise ZvtLinkError(f"cannot open ZVT serial port {path}: {err}") from err
        log.info("ZVT link on %s open, %d baud 8N2", path, baudrate)
        return cls(PySerialStream(port), t1=t1, t2=t2)

    def send(self, apdu: Apdu) -> None:
        """Send one APDU and wait for its ACK; re-send on NAK at most twice.

        ZvtLinkError after a third NAK or when the line is closed; ZvtTimeoutError when no
        answer came within T2.
        """
        wire = frame(apdu.encode())
        for attempt in range(1, SENDS + 1):
            self._stream.write(wire)
            if self._acknowledged(apdu):
                log.debug("ZVT sent %02X %02X, %d data bytes", *apdu.command, len(apdu.data))
                return
            log.info("ZVT frame %02X %02X NAKed (send %d of %d)", *apdu.command, attempt, SENDS)
        raise ZvtLinkError(
            f"ZVT peer refused {apdu.cls:02X} {apdu.instr:02X} with NAK {SENDS} times"
        )

    def receive(self, timeout: float) -> Apdu:
        """The next whole APDU, ACKed; ZvtTimeoutError if none in time; ZvtLinkError if closed.

        A damaged frame is NAKed and its re-sent copy awaited; bytes outside a frame are noise.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self._hunt(deadline):
                raise ZvtTimeoutError(f"no ZVT frame within {timeout:g} s")
            raw = self._rest_of_frame()
            if raw is None:
                log.info("ZVT frame broken off (a gap longer than T1): NAK")
                self._stream.write(bytes((NAK,)))
                continue
            try:
                message = unframe(raw)
            except ZvtError as err:
                log.info("ZVT frame damaged, NAK: %s", err)
                self._stream.write(bytes((NAK,)))
                continue
            self._stream.write(bytes((ACK,)))
            # Arrived intact, so a re-send would not mend it: the APDU itself is wrong.
            size = apdu_size(message)
            if size != len(message):
                raise ZvtError(
                    f"ZVT frame holds {len(message)} bytes, its APDU"
                    f" {message[:2].hex(' ')} says {size or 'at least 3'}"
                )
            apdu, _ = decode_apdu(message)
            log.debug("ZVT received %02X %02X, %d data bytes", *apdu.command, len(apdu.data))
            return apdu

    def close(self) -> None:
        """Close the line; safe twice; ends a receive() blocked on another thread."""
        self._stream.close()

    def _acknowledged(self, apdu: Apdu) -> bool:
        """True for the peer's ACK, False for its NAK; ZvtTimeoutError when neither came in T2."""
        deadline = time.monotonic() + self._t2
        while (byte := self._next_byte(deadline - time.monotonic())) is not None:
            if byte in (ACK, NAK):
                return byte == ACK
            # Anything else is line noise: the peer's own next frame comes only after its ACK.
        raise ZvtTimeoutError(
            f"no ACK for ZVT {apdu.cls:02X} {apdu.instr:02X} within T2 ({self._t2:g} s)"
        )

    def _hunt(self, deadline: float) -> bool:
        """Skip to just past the next DLE STX; False when none came before `deadline`."""
        previous = None
        while (byte := self._next_byte(deadline - time.monotonic())) is not None:
            if previous == DLE and byte == STX:
                return True
            previous = byte
        return False

    def _rest_of_frame(self) -> bytes | None:
        """The frame whose DLE STX was just read, through its CRC; None after a T1 gap."""
        raw = bytearray((DLE, STX))
        after_dle = False
        while len(raw) <= _MAX_FRAME:
            byte = self._next_byte(self._t1)
            if byte is None:
                return None
            raw.append(byte)
            if not after_dle:
                after_dle = byte == DLE
                continue
            after_dle = False
            if byte == ETX:
                for _ in range(2):  # the CRC, low byte first
                    if (byte := self._next_byte(self._t1)) is None:
                        return None
                    raw.append(byte)
                return bytes(raw)
            if byte == STX:  # a new frame: the peer gave up on this one and starts again
                del raw[2:]
            elif byte != DLE:  # not a doubled DLE either: unframe() says what is wrong
                return bytes(raw)
        return bytes(raw)  # no DLE ETX in sight: unframe() refuses it

    def _next_byte(self, timeout: float) -> int | None:
        """The next byte on the line, or None when none came within `timeout` s."""
        if not self._pending:
            self._pending += self._stream.read(_CHUNK, timeout)
            if not self._pending:
                return None
        byte = self._pending[0]
        del self._pending[0]
        return byte
