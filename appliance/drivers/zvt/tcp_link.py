"""ZVT over TCP/IP: bare APDUs on a stream socket, no framing, no ACK (the terminal's port 20007).

TCP already delivers every byte once and in order, so the APDU's own length is the only
framing; a message may still arrive split over several segments, or two in one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from appliance.core.closing import Closing
from appliance.drivers.zvt.apdu import Apdu, apdu_size, decode_apdu
from appliance.errors import ZvtLinkError, ZvtTimeoutError

log = logging.getLogger(__name__)

DEFAULT_PORT = 20007
# A terminal takes an APDU of a few hundred bytes at once; one that does not take it within
# the ACK timer of the serial line (T2) is not listening any more.
SEND_TIMEOUT = 5.0


class TcpLink(Closing):
    """One TCP connection to the other side of a ZVT exchange (a ZvtLink); owns the socket.

    One thread sends and receives; close() may come from any thread and ends a blocked
    receive() at once with ZvtLinkError.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.peer = _peer_name(sock)
        # Only the bytes of the APDU being read: receive() asks the socket for no more than
        # that APDU still lacks, so whatever follows stays in the socket for the next call.
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._closed = False
        # APDUs are small and come one at a time: never hold one back waiting for more.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def connect(cls, host: str, port: int = DEFAULT_PORT, timeout: float = 5.0) -> TcpLink:
        """Connect to a terminal at `host`:`port`; ZvtLinkError if it cannot be reached."""
        try:
            sock = socket.create_connection((host, port), timeout)
        except OSError as err:
            raise ZvtLinkError(f"cannot connect to ZVT terminal {host}:{port}: {err}") from err
        log.info("ZVT link to %s:%d open", host, port)
        return cls(sock)

    def send(self, apdu: Apdu) -> None:
        """Write one APDU; ZvtLinkError when the link is closed or the write fails."""
        data = apdu.encode()
        self._check_open()
        try:
            self._sock.settimeout(SEND_TIMEOUT)
            self._sock.sendall(data)
        except TimeoutError as err:
            raise ZvtTimeoutError(
                f"ZVT peer {self.peer} took no data for {SEND_TIMEOUT:g} s"
            ) from err
        except OSError as err:
            raise self._failed("send to", err) from err
        log.debug("ZVT %s sent %02X %02X, %d data bytes", self.peer, *apdu.command, len(apdu.data))

    def receive(self, timeout: float) -> Apdu:
        """The next whole APDU; ZvtTimeoutError if none in `timeout` s; ZvtLinkError if closed."""
        deadline = time.monotonic() + timeout
        while True:
            size = apdu_size(bytes(self._buffer))
            if size is not None and len(self._buffer) == size:
                apdu, _ = decode_apdu(bytes(self._buffer))
                self._buffer.clear()
                log.debug(
                    "ZVT %s received %02X %02X, %d data bytes",
                    self.peer,
                    *apdu.command,
                    len(apdu.data),
                )
                return apdu
            # The header first (3 bytes, or 5 after an FF length), then the rest of the APDU.
            wanted = size if size is not None else 5 if len(self._buffer) >= 3 else 3
            self._check_open()
            try:
                # 0 makes the socket non-blocking: a last look at what already arrived.
                self._sock.settimeout(max(0.0, deadline - time.monotonic()))
                data = self._sock.recv(wanted - len(self._buffer))
            except (TimeoutError, BlockingIOError) as err:
                raise ZvtTimeoutError(
                    f"no APDU from ZVT peer {self.peer} within {timeout:g} s"
                ) from err
            except OSError as err:
                raise self._failed("receive from", err) from err
            if not data:
                self._check_open()
                raise ZvtLinkError(f"ZVT link to {self.peer} closed by the peer")
            self._buffer += data

    def close(self) -> None:
        """Close the connection; safe twice, and ends a receive() blocked on another thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # shutdown() wakes a recv() blocked on another thread at once, which close() alone
        # does not; that thread then finds the link closed and raises ZvtLinkError.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        log.info("ZVT link to %s closed", self.peer)

    def _check_open(self) -> None:
        if self._closed:
            raise ZvtLinkError(f"ZVT link to {self.peer} closed")

    def _failed(self, action: str, err: OSError) -> ZvtLinkError:
        if self._closed:
            return ZvtLinkError(f"ZVT link to {self.peer} closed")
        return ZvtLinkError(f"cannot {action} ZVT peer {self.peer}: {err}")


def _peer_name(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return "(not connected)"
    return f"{host}:{port}"
