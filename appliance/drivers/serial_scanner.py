"""A barcode scanner on a serial port (RS-232 or USB CDC/ACM), read with pyserial."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import serial

from appliance.core.devices import BarcodeScanned, ScannerInputRejected
from appliance.device_settings import SerialScannerSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.scan_filter import (
    Accepted,
    Rejected,
    ScanFilter,
    quote,
    warn_if_old_debounce,
)
from appliance.drivers.worker import ReconnectingWorker
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

# How long one read waits before the loop looks at the stop flag again. close() also
# cancels the read, so this only bounds a missed cancel.
READ_TIMEOUT = 0.5
# Scanners send a code in one burst; reading what is waiting (at least one byte) keeps a
# scan to one or two reads without waiting for a fixed block size.
READ_CHUNK = 4096


class LineFramer:
    """Splits a byte stream into lines on `terminator`, guarding against endless lines.

    A line that grows past `max_length` before its terminator is reported once as
    over-long, and everything up to the next terminator is discarded.
    """

    def __init__(self, terminator: bytes, max_length: int) -> None:
        self._terminator = terminator
        self._max_length = max_length
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | Rejected]:
        """Yield each complete line (without terminator), or Rejected for an over-long one."""
        self._buffer += data
        while True:
            end = self._buffer.find(self._terminator)
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + len(self._terminator)]
            if self._discarding:
                self._discarding = False
                continue
            # A scanner set to CR LF while we expect CR (or the other way round) leaves a
            # stray CR or LF at one end of every line: that is framing, not a bad code.
            line = line.strip(b"\r\n")
            if len(line) > self._max_length:
                yield Rejected(self._too_long(line))
            else:
                yield line
        if not self._discarding and len(self._buffer) > self._max_length + len(self._terminator):
            yield Rejected(self._too_long(bytes(self._buffer)))
            self._discarding = True
        if self._discarding:
            # Keep only what could be the start of a terminator split across two reads.
            del self._buffer[: max(0, len(self._buffer) - len(self._terminator) + 1)]

    def reset(self) -> None:
        """Forget a partial line (after the port was lost)."""
        self._buffer.clear()
        self._discarding = False

    def _too_long(self, line: bytes) -> str:
        return f"line longer than {self._max_length} bytes: {quote(line)}"


class SerialScanner(DeviceBase):
    """Posts BarcodeScanned for each code read from a serial port; reopens a lost port."""

    kind = "scanner"

    def __init__(
        self,
        name: str,
        settings: SerialScannerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, settings.port)
        self.settings = settings
        self._filter = ScanFilter(
            prefix=settings.prefix,
            suffix=settings.suffix,
            max_length=settings.max_length,
            hold_gap_ms=settings.hold_gap_ms,
            clock=clock,
        )
        warn_if_old_debounce(name, settings.debounce_ms, settings.hold_gap_ms)
        self._framer = LineFramer(settings.terminator.encode("ascii"), settings.max_length)
        self._worker: ReconnectingWorker | None = None
        self._port_lock = threading.Lock()
        self._port: serial.Serial | None = None

    @classmethod
    def from_settings(
        cls, name: str, settings: SerialScannerSettings, built: Mapping[str, DeviceBase]
    ) -> SerialScanner:
        """Make the adapter from its `[devices.NAME]` table."""
        return cls(name, settings)

    def _start(self) -> None:
        self._set_health("offline", "opening")
        self._worker = ReconnectingWorker(f"scanner-{self.name}", self._session, self._lost)
        self._worker.start()

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.stopping.set()
        with self._port_lock:
            if self._port is not None:
                # Wakes the reader blocked in select() so close() returns at once.
                self._port.cancel_read()
        worker.stop()

    def _lost(self, err: BaseException) -> None:
        reason = str(err) if isinstance(err, DeviceError) else f"{type(err).__name__}: {err}"
        self._set_health("offline", reason)

    def _open_port(self) -> serial.Serial:
        path = self.settings.port
        try:
            # Exclusive (flock) so a second appliance instance or a modem manager probing
            # the port cannot steal half of every code.
            port = serial.Serial(path, self.settings.baudrate, timeout=READ_TIMEOUT, exclusive=True)
        except (serial.SerialException, OSError) as err:
            if not os.path.exists(path):
                raise DeviceError(f"{path} not found") from err
            raise DeviceError(f"cannot open {path}: {err}") from err
        with self._port_lock:
            self._port = port
        return port

    def _session(self, stopping: threading.Event) -> None:
        """Open the port and read until stopped; raises DeviceError when the port is lost."""
        port = self._open_port()
        try:
            self._framer.reset()
            self._set_health("ok")
            while not stopping.is_set():
                try:
                    data = port.read(max(1, port.in_waiting))
                except (serial.SerialException, OSError) as err:
                    if stopping.is_set():
                        return
                    raise DeviceError("device unplugged") from err
                if data:
                    self._handle(data)
        finally:
            with self._port_lock:
                self._port = None
            port.close()

    def _handle(self, data: bytes) -> None:
        for line in self._framer.feed(data):
            verdict = line if isinstance(line, Rejected) else self._filter.check(line)
            if isinstance(verdict, Accepted):
                self._post(BarcodeScanned(self.name, verdict.code))
            elif isinstance(verdict, Rejected):
                log.info("scanner %s rejected input: %s", self.name, verdict.reason)
                self._post(ScannerInputRejected(self.name, verdict.reason))
            else:
                log.debug("scanner %s: %r re-read while held in the field", self.name, line)
