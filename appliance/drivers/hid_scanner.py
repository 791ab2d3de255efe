"""A USB keyboard-wedge barcode scanner read through evdev, grabbed so the UI never sees it."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

import evdev
from evdev import ecodes

from appliance.core.devices import BarcodeScanned, ScannerInputRejected
from appliance.device_settings import HidScannerSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.keymaps import LAYOUTS, KeyDecoder, KeyLine
from appliance.drivers.scan_filter import Accepted, Rejected, ScanFilter, warn_if_old_debounce
from appliance.drivers.worker import ReconnectingWorker
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

# HidScannerSettings has no max_length; the serial scanner's default fits every symbology
# a checkout reads (GS1-128 tops out at 48 data characters).
MAX_LENGTH = 128
# Upper bound on one wait for key events; close() wakes the reader sooner through a pipe.
WAIT_TIMEOUT = 1.0


class KeyEventSource(Protocol):
    """What the adapter needs of an evdev.InputDevice (the default opener's result)."""

    fd: int

    def grab(self) -> None:
        """Take the device exclusively (EVIOCGRAB)."""
        ...

    def ungrab(self) -> None:
        """Release the device."""
        ...

    def read(self) -> Iterator[evdev.InputEvent]:
        """The pending events; raises BlockingIOError when there are none."""
        ...

    def close(self) -> None:
        """Close the device file."""
        ...


class EvdevScanner(DeviceBase):
    """Posts BarcodeScanned for each code a keyboard-wedge scanner types; reopens it after a loss.

    The device is grabbed while open, so its keystrokes never reach the checkout screen
    (or a login prompt). `open_device` opens an event device by path: evdev.InputDevice.
    """

    kind = "scanner"

    def __init__(
        self,
        name: str,
        settings: HidScannerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        open_device: Callable[[str], KeyEventSource] = evdev.InputDevice,
    ) -> None:
        super().__init__(name, settings.device)
        self.settings = settings
        self.layout = LAYOUTS[settings.layout]
        self._open_device = open_device
        self._decoder = KeyDecoder(self.layout, MAX_LENGTH)
        self._filter = ScanFilter(
            max_length=MAX_LENGTH, hold_gap_ms=settings.hold_gap_ms, clock=clock
        )
        warn_if_old_debounce(name, settings.debounce_ms, settings.hold_gap_ms)
        self._worker: ReconnectingWorker | None = None
        self._wake: tuple[int, int] | None = None

    @classmethod
    def from_settings(
        cls, name: str, settings: HidScannerSettings, built: Mapping[str, DeviceBase]
    ) -> EvdevScanner:
        """Make the adapter from its `[devices.NAME]` table."""
        return cls(name, settings)

    def _start(self) -> None:
        self._wake = os.pipe()
        self._set_health("offline", "opening")
        self._worker = ReconnectingWorker(f"scanner-{self.name}", self._session, self._lost)
        self._worker.start()

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        wake, self._wake = self._wake, None
        if worker is not None:
            worker.stopping.set()
            if wake is not None:
                os.write(wake[1], b"x")
            worker.stop()
        if wake is not None:
            os.close(wake[0])
            os.close(wake[1])

    def _lost(self, err: BaseException) -> None:
        reason = str(err) if isinstance(err, DeviceError) else f"{type(err).__name__}: {err}"
        self._set_health("offline", reason)

    def _open(self) -> KeyEventSource:
        path = self.settings.device
        try:
            device = self._open_device(path)
        except FileNotFoundError as err:
            raise DeviceError(f"{path} not found") from err
        except PermissionError as err:
            raise DeviceError(f"no permission to read {path} (is the user in 'input'?)") from err
        except OSError as err:
            raise DeviceError(f"cannot open {path}: {err}") from err
        try:
            device.grab()
        except OSError as err:
            device.close()
            raise DeviceError(f"{path} is grabbed by another program: {err}") from err
        return device

    def _session(self, stopping: threading.Event) -> None:
        """Open and grab the device, decode keys until stopped; DeviceError when it is lost."""
        wake = self._wake
        if wake is None:
            return
        device = self._open()
        try:
            self._decoder.reset()
            self._set_health("ok")
            while not stopping.is_set():
                ready, _, _ = select.select([device.fd, wake[0]], [], [], WAIT_TIMEOUT)
                if wake[0] in ready or not ready:
                    continue
                try:
                    events = list(device.read())
                except BlockingIOError:
                    continue
                except OSError as err:
                    raise DeviceError("device unplugged") from err
                for event in events:
                    self._handle(event)
        finally:
            with contextlib.suppress(OSError):  # already gone with the device
                device.ungrab()
            device.close()

    def _handle(self, event: evdev.InputEvent) -> None:
        if event.type == ecodes.EV_SYN and event.code == ecodes.SYN_DROPPED:
            # The kernel's buffer overflowed: the line being typed has holes in it.
            self._decoder.reset()
            self._reject("key events were lost (input buffer overflow); scan again")
        elif event.type == ecodes.EV_KEY:
            line = self._decoder.feed(event.code, event.value)
            if line is not None:
                self._line(line)

    def _line(self, line: KeyLine) -> None:
        if line.unknown:
            keys = ", ".join(line.unknown)
            self._reject(f"keys the {self.layout.name} layout cannot type: {keys}")
            return
        if line.too_long:
            self._reject(f"line longer than {MAX_LENGTH} characters")
            return
        verdict = self._filter.check(line.text)
        if isinstance(verdict, Accepted):
            self._post(BarcodeScanned(self.name, verdict.code))
        elif isinstance(verdict, Rejected):
            hint = "" if line.text.isascii() else f" (is the scanner set to {self.layout.name}?)"
            self._reject(verdict.reason + hint)
        else:
            log.debug("scanner %s: %r re-read while held in the field", self.name, line.text)

    def _reject(self, reason: str) -> None:
        log.info("scanner %s rejected input: %s", self.name, reason)
        self._post(ScannerInputRejected(self.name, reason))
