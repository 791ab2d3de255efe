"""EscposPrinter: an ESC/POS receipt printer over the network, a serial port or USB.

python-escpos does the protocol and the transports; this adapter asks the printer for
its status (DLE EOT) before every job, lays the receipt out (receipt_layout), confirms
the printer is still there afterwards, and maps every failure to DeviceError and a
health state a person can act on. python-escpos is imported on first use only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from appliance.core.devices import PrinterStatus
from appliance.core.receipt import Receipt
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.escpos_cache import ENV as ESCPOS_CACHE_ENV
from appliance.drivers.escpos_cache import discard_broken_profiles
from appliance.drivers.receipt_layout import columns_of, lay_out
from appliance.errors import DeviceError, PrintOutcomeUnknownError

log = logging.getLogger(__name__)

# DLE EOT n, real-time status: 1 printer, 2 offline cause, 4 paper roll sensor.
STATUS_QUERY = b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"
STATUS_FIXED_MASK, STATUS_FIXED = 0x93, 0x12  # bits 1 and 4 set, 0 and 7 clear
OFFLINE, COVER_OPEN, PAPER_STOP, NEAR_END, PAPER_END = 0x08, 0x04, 0x20, 0x0C, 0x60
STATUS_SECONDS = 1.0  # a printer that is there answers DLE EOT at once
KICK_PINS = {2: 0, 5: 1}  # connector pin -> ESC p m
_IMPORT_LOCK = threading.Lock()


def decode_status(printer: int, offline: int, paper: int) -> PrinterStatus:
    """The answers to DLE EOT 1, 2 and 4 as a PrinterStatus (None where a byte is malformed)."""

    def bit(byte: int, mask: int) -> bool | None:
        if byte & STATUS_FIXED_MASK != STATUS_FIXED:
            return None
        return bool(byte & mask)

    online = bit(printer, OFFLINE)
    return PrinterStatus(
        online=online is not True,
        paper_near_end=bit(paper, NEAR_END),
        paper_out=bit(paper, PAPER_END) or bit(offline, PAPER_STOP),
        cover_open=bit(offline, COVER_OPEN),
    )


def kick_command(pin: int, pulse_ms: int) -> tuple[int, int, int, int, int]:
    """ESC p m t1 t2 (decimal) for a pulse of `pulse_ms` on connector pin 2 or 5 (2 ms units)."""
    if pin not in KICK_PINS:
        raise DeviceError(f"a drawer kick connector has pins 2 and 5, not {pin}")
    on = max(1, min(255, round(pulse_ms / 2)))
    return (0x1B, 0x70, KICK_PINS[pin], on, on)  # off time = on time, as escpos does


def escpos_printers() -> ModuleType:
    """`escpos.printer`, imported without leaving a root log handler or a temp folder behind.

    DeviceError when it cannot be imported (its profile cache unreadable, a full disk).
    """
    with _IMPORT_LOCK:
        first = "escpos.capabilities" not in sys.modules
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            printers = _import_escpos()
        finally:
            # escpos.capabilities calls logging.basicConfig() at import: the appliance
            # configures logging itself (journald), so undo it.
            for handler in root.handlers[:]:
                if handler not in handlers:
                    root.removeHandler(handler)
            root.setLevel(level)
        # Its transports log through the root logger (`logging.info(...)`), which calls
        # basicConfig() whenever root has no handler yet: give them a named logger instead.
        named = logging.getLogger("escpos.printer")
        for transport in ("network", "serial", "usb"):
            module = sys.modules.get(f"escpos.printer.{transport}")
            if module is not None:
                module.logging = named  # type: ignore[attr-defined]
        if first and "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ:
            # It also pickles its capabilities into a fresh mkdtemp() on every import, read
            # only by a later import that never finds it again: remove it.
            pickle_dir = str(sys.modules["escpos.capabilities"].pickle_dir)
            if os.path.dirname(pickle_dir) == tempfile.gettempdir():
                shutil.rmtree(pickle_dir, ignore_errors=True)
        return printers


def _import_escpos() -> ModuleType:
    """Import escpos.printer; a broken profile cache is removed and the import tried again."""
    try:
        import escpos.printer
    except Exception as err:  # EOFError, UnpicklingError, OSError: the profile cache
        cache = os.environ.get(ESCPOS_CACHE_ENV)
        if cache is None or not discard_broken_profiles(Path(cache)):
            raise DeviceError(f"python-escpos cannot be loaded: {err}") from err
        try:
            import escpos.printer
        except Exception as again:
            raise DeviceError(f"python-escpos cannot be loaded: {again}") from again
    printers: ModuleType = escpos.printer
    return printers


class EscposPrinter(DeviceBase):
    """The ReceiptPrinter port on python-escpos; thread-safe (one job at a time).

    Network and serial printers are opened for each job and closed after it (a network
    printer serves one client at a time; a re-plugged serial adapter is simply found
    again); a USB printer stays claimed between jobs, because opening resets it.
    """

    kind = "printer"

    def __init__(self, name: str, settings: EscposPrinterSettings) -> None:
        super().__init__(name, settings.address)
        self.settings = settings
        self._status_seconds = min(STATUS_SECONDS, settings.timeout)
        self._io = threading.Lock()
        self._usb: Any = None
        self._probe: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls, name: str, settings: EscposPrinterSettings, built: Mapping[str, DeviceBase]
    ) -> EscposPrinter:
        """The adapter for a `[devices.NAME]` table of kind escpos_printer."""
        return cls(name, settings)

    def _check_profile(self) -> None:
        """Refuse an unknown profile with a clear reason (python-escpos raises a bare KeyError).

        Checked on the worker threads, not at build time: loading python-escpos's profile
        table takes about 0.4 s, which would delay READY=1.
        """
        escpos_printers()
        from escpos.capabilities import get_profile

        try:
            get_profile(self.settings.profile)
        except KeyError:
            reason = (
                f"devices.{self.name}.profile: unknown printer profile {self.settings.profile!r}"
            )
            self._set_health("offline", reason)
            raise DeviceError(reason) from None

    def _start(self) -> None:
        # Ask once in the background so health is known soon without blocking open().
        self._probe = threading.Thread(target=self.status, name=f"{self.name}-probe", daemon=True)
        self._probe.start()

    def _stop(self) -> None:
        if self._probe is not None:
            self._probe.join(self.settings.timeout + STATUS_SECONDS)
            self._probe = None
        with self._io:
            self._drop_usb()

    def wait_ready(self, timeout: float) -> bool:
        """Wait for the status check open() started; True once it is done (health is known)."""
        probe = self._probe
        if probe is not None:
            probe.join(timeout)
            return not probe.is_alive()
        return self._opened

    def status(self) -> PrinterStatus:
        """Ask the printer; PrinterStatus(online=False) when it cannot be reached."""
        with self._io:
            try:
                self._check_profile()
                printer = self._connect()
                try:
                    status = self._exchange(printer, b"", self._status_seconds)
                finally:
                    self._release(printer)
            except DeviceError as err:
                log.debug("%s: status: %s", self.name, err)
                return PrinterStatus(online=False)
        if status is None:  # USB: reachable, but it does not say more
            self._set_health("ok")
            return PrinterStatus(online=True)
        self._health_from(status)
        return status

    def print_receipt(self, receipt: Receipt) -> None:
        """Check, lay out, send and cut; raises DeviceError when the receipt did not print.

        PrintOutcomeUnknownError (a DeviceError) when the job was sent but the printer's
        answer did not come back: it may have printed, and must not be sent again blindly.
        """
        self._job(lambda printer: lay_out(printer, receipt, columns_of(printer)))
        log.info("%s: printed receipt %s", self.name, receipt.receipt_number)

    def print_test_page(self) -> None:
        """A short page with the printer's name, address, time, a character ruler and a cut."""

        def page(printer: Any) -> None:
            width = columns_of(printer)
            printer.hw("INIT")
            printer.set(align="center", bold=True, double_height=True)
            printer.textln("TEST PAGE")
            printer.set(normal_textsize=True, bold=False)
            printer.textln(self.name)
            printer.textln(self.address)
            printer.textln(time.strftime("%Y-%m-%d %H:%M:%S"))
            printer.textln("".join(chr(0x21 + i % 94) for i in range(width)))
            printer.textln(f"{width} columns")
            printer.cut()

        self._job(page)

    def kick_drawer(self, pin: int, pulse_ms: int) -> None:
        """Pulse the drawer connector (ESC p); raises DeviceError when it could not be sent."""
        command = kick_command(pin, pulse_ms)
        # A kick is not a receipt: no paper is needed, so only the connection must work.
        self._job(lambda printer: printer.cashdraw(command), check_paper=False)

    # -- one job on one connection ---------------------------------------------------------

    def _job(self, render: Callable[[Any], None], *, check_paper: bool = True) -> None:
        if not self._opened:
            raise DeviceError(f"printer {self.name} is not open")
        self._check_profile()
        payload = self._encode(render)
        with self._io:
            printer = self._connect()
            try:
                before = self._exchange(printer, b"", self._status_seconds)
                if check_paper and before is not None:
                    self._refuse_if_stopped(before)
                # The status request after the job is answered only once the printer read
                # all of it: a vanished printer fails here, not silently. Paper running out
                # during the job is only reported: the printer keeps the rest in its
                # buffer and prints it once paper is loaded.
                try:
                    after = self._exchange(printer, payload, self.settings.timeout)
                except DeviceError as err:
                    # The job's bytes may have reached the printer and only its answer been
                    # lost: sending it again could print it twice.
                    cause = err.__cause__ or err  # the transport's own error, as before
                    raise PrintOutcomeUnknownError(f"{err}; it may have printed") from cause
            finally:
                self._release(printer)
        if after is not None:
            self._health_from(after)
        else:
            self._set_health("ok")

    def _encode(self, render: Callable[[Any], None]) -> bytes:
        """The job's bytes, laid out in memory (python-escpos Dummy, same profile).

        Sent in one write: one TCP segment train instead of a write per command (which
        Nagle and delayed ACKs turn into 40 ms stalls), and a layout error can never leave
        half a receipt on paper.
        """
        from escpos.exceptions import Error as EscposError

        dummy = escpos_printers().Dummy(profile=self.settings.profile)
        try:
            render(dummy)
        except EscposError as err:
            raise DeviceError(f"printer {self.name}: cannot lay out the job: {err}") from err
        return bytes(dummy.output)

    def _refuse_if_stopped(self, status: PrinterStatus) -> None:
        self._health_from(status)
        for problem, reason in ((status.paper_out, "paper out"), (status.cover_open, "cover open")):
            if problem:
                raise DeviceError(reason)
        if not status.online:
            raise DeviceError("printer offline")

    def _health_from(self, status: PrinterStatus) -> None:
        if status.paper_out:
            self._set_health("degraded", "paper out")
        elif status.cover_open:
            self._set_health("degraded", "cover open")
        elif not status.online:
            self._set_health("degraded", "printer offline")
        elif status.paper_near_end:
            self._set_health("degraded", "paper near end")
        else:
            self._set_health("ok")

    def _connect(self) -> Any:
        """An open python-escpos printer for this job; DeviceError (offline) when unreachable."""
        if self._usb is not None:
            return self._usb
        printers = escpos_printers()
        s = self.settings
        if s.transport == "network":
            printer = printers.Network(s.host, s.port, timeout=s.timeout, profile=s.profile)
        elif s.transport == "serial":
            printer = printers.Serial(
                s.serial_port, s.baudrate, timeout=s.timeout, profile=s.profile
            )
        else:
            printer = printers.Usb(
                s.usb_vendor, s.usb_product, timeout=int(s.timeout * 1000), profile=s.profile
            )
        self._guard(lambda p: p.open(), printer)
        if s.transport == "usb":
            self._usb = printer
        return printer

    def _release(self, printer: Any) -> None:
        if printer is not self._usb:
            with contextlib.suppress(Exception):  # the job's outcome is already decided
                printer.close()

    def _drop_usb(self) -> None:
        usb, self._usb = self._usb, None
        if usb is not None:
            with contextlib.suppress(Exception):
                usb.close()

    def _guard(self, action: Any, printer: Any) -> None:
        """Run `action(printer)`; a transport or library failure becomes DeviceError."""
        from escpos.exceptions import Error as EscposError

        try:
            action(printer)
        except (OSError, EscposError) as err:
            self._drop_usb()
            reason = _reason(err)
            self._set_health("offline", reason)
            raise DeviceError(f"printer {self.name}: {reason}") from err

    def _exchange(self, printer: Any, payload: bytes, timeout: float) -> PrinterStatus | None:
        """Send `payload` and DLE EOT 1, 2, 4 in one write; decode the answers.

        None on USB, where many printers do not answer on the in endpoint.
        """
        if self.settings.transport == "usb":
            if payload:
                self._guard(lambda p: p._raw(payload), printer)  # the transport's write
            return None
        answer, want = bytearray(), len(STATUS_QUERY) // 3  # one byte per DLE EOT n
        data = payload + STATUS_QUERY

        def ask(p: Any) -> None:
            device = p.device
            if self.settings.transport == "network":
                device.settimeout(timeout)
                device.sendall(data)
                while len(answer) < want:
                    chunk = device.recv(want - len(answer))
                    if not chunk:
                        raise ConnectionResetError("the printer closed the connection")
                    answer.extend(chunk)
            else:
                device.timeout = timeout
                device.reset_input_buffer()
                device.write(data)
                answer.extend(device.read(want))

        self._guard(ask, printer)
        if len(answer) < want:
            self._set_health("offline", "no answer")
            raise DeviceError(f"printer {self.name}: no answer to a status request")
        return decode_status(answer[0], answer[1], answer[2])


def _reason(err: BaseException) -> str:
    """A short reason for health, from the library error or the OS error under it."""
    cause = err.__cause__ or err.__context__
    for error in (err, cause):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, TimeoutError):
            return "timed out"
        if isinstance(error, ConnectionError):
            return "connection lost"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
    return str(err).splitlines()[0] or type(err).__name__
