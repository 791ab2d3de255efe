"""A checkout scale on a serial port speaking the Mettler Toledo 8217 request-response protocol.

Protocol (the "8217 / ECR" protocol of METTLER TOLEDO POS scales, also offered by the
scanner-scales built on them and by Ariva, Viva, Datalogic Magellan and many others as a
selectable "Toledo 8217" mode). Source: METTLER TOLEDO DIVA Service Manual, sections
6.1.3.2 "Command Descriptions" and 6.1.4.3 "Status Byte Format", as printed in the PSC
Magellan 8500 Service Manual (manualshelf.com, magellan-8500 service manual pages 45 and
51); line settings as in Odoo's IoT scale driver (Toledo8217Protocol: 9600 baud, 7 data
bits, even parity, 1 stop bit, no command terminator).

What we implement, byte for byte:
- request weight: host sends `W` (one byte, no terminator). The scale answers
  `STX <weight> CR` with a stable weight, `STX <weight> N CR` for a net weight, or
  `STX ? <status> CR` when it has none to give (in motion, below zero, over capacity,
  zero error). `<weight>` is the displayed weight with its decimal point and leading
  zeroes: `WW.WWW` in kilograms (three decimals), `WW.WW` in pounds (two decimals).
- zero: host sends `Z`; the scale zeroes when the weight is stable and within its zero
  capture range, and answers `STX ? <status> CR` either way.
- status byte (one ASCII character; bit 7 is parity): bit 0 motion, bit 1 over capacity,
  bit 2 under zero, bit 3 outside zero capture range, bit 4 centre of zero, bit 5 net
  weight, bit 6 always 1.

We sell in kilograms only: a scale set to pounds reads as a fault naming the setting.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import termios
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal

import serial

from appliance.core.scale import (
    InMotion,
    Overload,
    ReturnToZero,
    ScaleFault,
    StableWeight,
    Underload,
    WeightReading,
)
from appliance.device_settings import SerialScaleSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.worker import ReconnectingWorker
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

STX, CR = b"\x02", b"\r"
WEIGH, ZERO = b"W", b"Z"

MOTION = 0x01
OVER_CAPACITY = 0x02
UNDER_ZERO = 0x04
OUTSIDE_ZERO_RANGE = 0x08
CENTRE_OF_ZERO = 0x10
NET = 0x20
ALWAYS_ONE = 0x40

# How long the worker waits for a request before it looks at its stop flag again.
IDLE_POLL_SECONDS = 0.5
# The longest answer we accept: STX, a seven-character weight with its point, N, CR.
MAX_FRAME = 32

_WEIGHT = re.compile(rb"\s*(\d+)\.(\d+)(N?)")


def parse_answer(frame: bytes, command: bytes) -> WeightReading:
    """What one answer frame (STX..CR, both included) to `command` says."""
    if not (frame.startswith(STX) and frame.endswith(CR)):
        return ScaleFault(f"garbled answer {frame!r}")
    # With 7 data bits the parity bit never reaches us; a scale set to 8N1 sends it as
    # bit 7, which carries no meaning here.
    body = bytes(b & 0x7F for b in frame[1:-1])
    if body.startswith(b"?") and len(body) == 2:
        return _status(body[1], command)
    match = _WEIGHT.fullmatch(body)
    if match is None or command != WEIGH:
        return ScaleFault(f"unexpected answer {frame!r} to {command!r}")
    whole, decimals, _net = match.groups()
    if len(decimals) == 2:
        return ScaleFault("the scale weighs in pounds: set it to kilograms")
    if len(decimals) != 3:
        return ScaleFault(f"unexpected weight format {body!r}")
    grams = Decimal(f"{whole.decode()}.{decimals.decode()}") * 1000
    return StableWeight(int(grams))


def _status(byte: int, command: bytes) -> WeightReading:
    if not byte & ALWAYS_ONE:
        return ScaleFault(f"not a status byte: {byte:#04x}")
    if byte & OVER_CAPACITY:
        return Overload()
    if byte & UNDER_ZERO:
        return Underload()
    if byte & MOTION:
        return InMotion()
    if byte & OUTSIDE_ZERO_RANGE:
        return ScaleFault("the weight is outside the zero range: empty the scale")
    if command == ZERO and byte & CENTRE_OF_ZERO:
        return StableWeight(0)
    # A status-only answer to W with none of the flags above: a negative net weight, or a
    # zero error the manual leaves unnamed. Either way there is nothing to sell.
    return ScaleFault(f"no weight (status {byte:#04x})")


class FrameReader:
    """Collects one STX..CR answer from bytes as they come; skips noise before the STX."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; the complete frame once its CR is in, else None."""
        # A 7E1 scale read as 8N1 sends its parity as bit 7 of every byte (STX as 0x82,
        # CR as 0x8D): masked here, before the framing looks for them.
        self._buffer += bytes(b & 0x7F for b in data)
        start = self._buffer.find(STX)
        if start < 0:
            self._buffer.clear()
            return None
        del self._buffer[:start]
        end = self._buffer.find(CR)
        if end < 0:
            if len(self._buffer) > MAX_FRAME:
                self._buffer.clear()  # no CR in sight: never a valid answer
            return None
        frame = bytes(self._buffer[: end + 1])
        self._buffer.clear()
        return frame


@dataclass(frozen=True, slots=True)
class _Request:
    command: bytes
    answer: Future[WeightReading]


class SerialScale(DeviceBase):
    """A Toledo 8217 scale on a serial port; one worker thread owns the port and asks it."""

    kind = "scale"

    def __init__(self, name: str, settings: SerialScaleSettings) -> None:
        super().__init__(name, settings.port)
        self.settings = settings
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._worker: ReconnectingWorker | None = None
        self._zeroing = ReturnToZero()

    @classmethod
    def from_settings(
        cls, name: str, settings: SerialScaleSettings, built: Mapping[str, DeviceBase]
    ) -> SerialScale:
        """Make the adapter from its `[devices.NAME]` table."""
        return cls(name, settings)

    # --- any thread ---

    def weigh(self) -> WeightReading:
        """Ask for the weight; blocks up to the answer timeout."""
        return self._ask(WEIGH)

    def zero(self) -> WeightReading:
        """Zero the empty scale; StableWeight(0) when it did."""
        return self._ask(ZERO)

    @property
    def role(self) -> str:
        """ "checkout" (weighing goods sold by weight) or "bagging" (under the bagging area)."""
        return self.settings.role

    def sold(self) -> None:
        """The last weight was sold: no other until the scale has read zero."""
        self._zeroing.sold()

    @property
    def awaiting_zero(self) -> bool:
        """True while a weight sold may still be on the platter (no zero read since)."""
        return self._zeroing.armed

    def _ask(self, command: bytes) -> WeightReading:
        health = self.health
        if self._worker is None or health.state == "offline":
            return ScaleFault(health.reason or "the scale is not connected")
        request = _Request(command, Future())
        self._requests.put(request)
        try:
            # The worker answers within its own timeout; the margin covers a queue of two.
            return request.answer.result(timeout=3 * self.settings.answer_timeout + 1.0)
        except FutureTimeout:
            return ScaleFault("the scale did not answer")

    def _start(self) -> None:
        self._set_health("offline", "opening")
        self._worker = ReconnectingWorker(f"scale-{self.name}", self._session, self._lost)
        self._worker.start()

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
        self._fail_waiting("the scale is closed")

    def _lost(self, err: BaseException) -> None:
        reason = str(err) if isinstance(err, DeviceError) else f"{type(err).__name__}: {err}"
        self._set_health("offline", reason)
        self._fail_waiting(reason)

    def _fail_waiting(self, reason: str) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            request.answer.set_result(ScaleFault(reason))

    # --- the worker thread ---

    def _open_port(self) -> serial.Serial:
        path = self.settings.port
        try:
            # Exclusive (flock) so nothing else probing the port eats the scale's answers.
            return serial.Serial(
                path,
                self.settings.baudrate,
                bytesize=self.settings.bytesize,
                parity=self.settings.parity,
                stopbits=serial.STOPBITS_ONE,
                timeout=0.05,
                write_timeout=self.settings.answer_timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as err:
            if not os.path.exists(path):
                raise DeviceError(f"{path} not found") from err
            raise DeviceError(f"cannot open {path}: {err}") from err

    def _session(self, stopping: threading.Event) -> None:
        """Open the port and answer requests until stopped; DeviceError when the port is lost."""
        port = self._open_port()
        try:
            self._set_health("ok")
            while not stopping.is_set():
                try:
                    request = self._requests.get(timeout=IDLE_POLL_SECONDS)
                except queue.Empty:
                    if self._zeroing.armed:
                        # Watch for the item sold to be lifted off: a customer who swaps it
                        # for the next one between two scans leaves no zero for a request.
                        self._zeroing.passes(self._exchange(port, WEIGH))
                    continue
                try:
                    reading = self._exchange(port, request.command)
                except BaseException as err:
                    # Whatever ends the session, the caller taken off the queue hears it now
                    # rather than waiting out its timeout.
                    request.answer.set_result(ScaleFault(str(err) or type(err).__name__))
                    raise
                request.answer.set_result(self._zeroing.passes(reading))
        finally:
            port.close()

    def _exchange(self, port: serial.Serial, command: bytes) -> WeightReading:
        """Send one command and read its answer; a silent scale is degraded, not lost."""
        try:
            # A late answer to an earlier request must not pass for this one's.
            port.reset_input_buffer()
            port.write(command)
            port.flush()
            frame = self._read_frame(port)
        except (serial.SerialException, OSError, termios.error) as err:
            # A hung-up tty fails tcflush (reset_input_buffer) with termios.error, which is
            # not an OSError: it is the first sign of a pulled cable.
            raise DeviceError("device unplugged") from err
        if frame is None:
            self._set_health("degraded", "the scale does not answer")
            return ScaleFault("the scale did not answer")
        self._set_health("ok")
        reading = parse_answer(frame, command)
        if isinstance(reading, ScaleFault):
            log.info("scale %s: %s", self.name, reading.reason)
        return reading

    def _read_frame(self, port: serial.Serial) -> bytes | None:
        reader = FrameReader()
        deadline = time.monotonic() + self.settings.answer_timeout
        while time.monotonic() < deadline:
            data = port.read(max(1, port.in_waiting))
            if data and (frame := reader.feed(data)) is not None:
                return frame
        return None
