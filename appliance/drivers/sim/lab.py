"""The simulator lab: every simulator started, and the settings that point real adapters at them.

`appliance run --simulate` and `appliance selftest --simulate` use it when no device is
configured. Each simulator sits on the far side of a real transport (a pty, a TCP port
on 127.0.0.1, gpiozero mock pins, nfcpy's udp driver on 127.0.0.1), so the adapters,
and the libraries under them, run exactly as they would with hardware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from appliance.core.closing import Closing
from appliance.device_settings import (
    EscposPrinterSettings,
    GpioDrawerSettings,
    HardwareSettings,
    NfcReaderSettings,
    SerialScaleSettings,
    SerialScannerSettings,
    ZvtTerminalSettings,
)
from appliance.drivers.base import DeviceBase
from appliance.drivers.sim.zvt_script import Step

if TYPE_CHECKING:
    from appliance.drivers.sim.drawer import SimDrawer
    from appliance.drivers.sim.nfc_tag import SimNfcTag
    from appliance.drivers.sim.printer import SimPrinter
    from appliance.drivers.sim.scale import SimScale
    from appliance.drivers.sim.scanner import SimScanner
    from appliance.drivers.sim.zvt_terminal import ZvtEmulator

log = logging.getLogger(__name__)

# The names the lab's devices go by in logs, `appliance status` and selftest.
SCANNER, PRINTER, DRAWER, NFC, TERMINAL = "scanner", "printer", "drawer", "nfc", "terminal"
SCALE = "scale"
BAGGING_SCALE = "bagging-scale"  # started only for a store with the bagging-area check
SELFTEST_CODE = "4006381333931"  # a valid EAN-13 (the demo coffee)
SELFTEST_UID = "04A1B2C3D4E5F6"
SELFTEST_GRAMS = 250  # what selftest puts on the simulated scale after zeroing it
# The simulated customer's time before each message of the terminal: long enough to see
# "insert card" on the screen, short for tests.
TERMINAL_PAUSE_SECONDS = 0.1
# `appliance sim terminal OUTCOME`: what the emulated customer and card do next.
TERMINAL_STEPS: dict[str, Step] = {
    "approve": Step(pause=TERMINAL_PAUSE_SECONDS),
    "decline": Step("decline", pause=TERMINAL_PAUSE_SECONDS),
    "pin-wrong": Step("decline", result_code=0x37, pause=TERMINAL_PAUSE_SECONDS),
    "cancel": Step("customer_abort", pause=TERMINAL_PAUSE_SECONDS),
    "timeout": Step("silent", pause=TERMINAL_PAUSE_SECONDS),
    "hang": Step("silent", abort="refuse", pause=TERMINAL_PAUSE_SECONDS),  # ignores an abort
    "offline": Step("approve_offline", pause=TERMINAL_PAUSE_SECONDS),
    "drop": Step(drop="at_status", pause=TERMINAL_PAUSE_SECONDS),  # after it booked the charge
    "drop-early": Step(drop="before_status", pause=TERMINAL_PAUSE_SECONDS),  # before it did
    "drop-after-ack": Step(drop="after_ack", pause=TERMINAL_PAUSE_SECONDS),  # no Completion
}


class _Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class SimLab(Closing):
    """The running simulators, the device tables that reach them, and pre-built adapters.

    `settings` go to the DeviceManager as if read from a configuration file; `overrides`
    are adapters that need more than their table (the GPIO drawer needs the mock pin
    factory). close() stops every simulator; safe to call twice.
    """

    scanner: SimScanner | None = None
    printer: SimPrinter | None = None
    drawer: SimDrawer | None = None
    nfc_tag: SimNfcTag | None = None
    terminal: ZvtEmulator | None = None
    scale: SimScale | None = None
    bagging_scale: SimScale | None = None
    settings: dict[str, HardwareSettings] = field(default_factory=dict)
    overrides: dict[str, DeviceBase] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # simulator name -> why it is missing
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        nfc: bool = True,
        currency: str = "EUR",
        skip: frozenset[str] = frozenset(),
        bagging: bool = False,
    ) -> SimLab:
        """Start every simulator but those in `skip` (e.g. a terminal configured for real).

        With `bagging`, a second scale plays the one under the bagging area. One that
        cannot start is left out and named in `problems`.
        """
        lab = cls()
        try:
            for name, starter in (
                (SCANNER, lab._start_scanner),
                (PRINTER, lab._start_printer),
                (DRAWER, lab._start_drawer),
                (NFC, lab.start_nfc if nfc else None),
                (TERMINAL, lambda: lab._start_terminal(currency)),
                (SCALE, lab._start_scale),
                (BAGGING_SCALE, lab._start_bagging_scale if bagging else None),
            ):
                if starter is None or name in skip:
                    continue
                try:
                    starter()
                except Exception as err:  # e.g. a simulator module not in this build
                    log.warning("simulated %s not started: %s", name, err)
                    lab.problems[name] = str(err)
        except BaseException:
            lab.close()
            raise
        return lab

    def injectors(self) -> dict[str, Callable[[], None]]:
        """Per device name, a way to make its simulator produce input (selftest uses these)."""
        found: dict[str, Callable[[], None]] = {}
        if (scanner := self.scanner) is not None:
            found[SCANNER] = lambda: scanner.scan(SELFTEST_CODE)
        if (tag := self.nfc_tag) is not None:

            def tap() -> None:
                # Blocks until the reader has read the card; selftest then sees CardTapped.
                tag.tap(SELFTEST_UID, text="selftest")

            found[NFC] = tap
        if (scale := self.scale) is not None:
            found[SCALE] = lambda: scale.put(SELFTEST_GRAMS)
        return found

    def close(self) -> None:
        """Stop every simulator, last started first; safe to call twice."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                log.exception("a simulator failed to stop")

    def _own(self, simulator: _Closeable) -> None:
        self._closers.append(simulator.close)

    def _start_scanner(self) -> None:
        from appliance.drivers.sim.scanner import SimScanner

        self.scanner = SimScanner()
        self._own(self.scanner)
        self.settings[SCANNER] = SerialScannerSettings(port=self.scanner.port)

    def _start_scale(self) -> None:
        from appliance.drivers.sim.scale import SimScale

        self.scale = SimScale()
        self._own(self.scale)
        self.settings[SCALE] = SerialScaleSettings(port=self.scale.port)

    def _start_bagging_scale(self) -> None:
        from appliance.drivers.sim.scale import SimScale

        self.bagging_scale = SimScale(link_name="usb-Sim_Toledo_8217_Bagging_Scale_0002-if00")
        self._own(self.bagging_scale)
        self.settings[BAGGING_SCALE] = SerialScaleSettings(
            port=self.bagging_scale.port, role="bagging"
        )

    def _start_terminal(self, currency: str) -> None:
        """A ZVT terminal emulator on 127.0.0.1: the real adapter pays at the wire."""
        from appliance.drivers.sim.zvt_terminal import ZvtEmulator

        emulator = ZvtEmulator(currency=currency)
        self._own(emulator)
        self.terminal = emulator
        port = emulator.serve_tcp()
        self.settings[TERMINAL] = ZvtTerminalSettings(
            host="127.0.0.1", port=port, currency=currency
        )

    def _start_printer(self) -> None:
        from appliance.drivers.sim.printer import SimPrinter

        self.printer = SimPrinter()
        self._own(self.printer)
        self.settings[PRINTER] = EscposPrinterSettings(
            transport="network", host=self.printer.host, port=self.printer.port, timeout=2.0
        )

    def _start_drawer(self) -> None:
        from appliance.drivers.gpio_drawer import GpioDrawer
        from appliance.drivers.sim.drawer import SimDrawer

        drawer = SimDrawer()
        # A kicked drawer springs open, as a real one does; `drawer-close` pushes it shut.
        drawer.auto_open_on_kick = True
        self._closers.append(drawer.factory.close)  # after the drawer itself (reverse order)
        self._own(drawer)
        self.drawer = drawer
        table = GpioDrawerSettings(pin=drawer.kick_pin_number, sensor_pin=drawer.sensor_pin_number)
        self.settings[DRAWER] = table
        self.overrides[DRAWER] = GpioDrawer(DRAWER, table, pin_factory=drawer.factory)

    def start_nfc(self) -> NfcReaderSettings:
        """Start the NFC card simulator (nfcpy is slow to import: callable from a thread later).

        Returns the reader's table, also recorded in `settings`.
        """
        from appliance.drivers.sim.nfc_tag import SimNfcTag

        tag = SimNfcTag()
        self._own(tag)
        table = NfcReaderSettings(path=tag.path)
        self.settings[NFC] = table
        self.nfc_tag = tag
        return table
