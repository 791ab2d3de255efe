"""`appliance selftest`: check every configured device end to end, with reasons.

Each check makes the device do its real job once: the printer reports its status and
prints a test page, the drawer is kicked and its sensor must see it open, a scanner
must read a code, an NFC reader must see a card, the terminal must answer a status
enquiry, a scale must zero and then weigh a load. With simulators the input is injected
on the far side of the wire; with hardware, a technician is asked (unless
--non-interactive, where what needs a person is skipped, never passed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, cast

from appliance.core.devices import (
    BarcodeScanned,
    CardTapped,
    CashDrawer,
    DeviceHealth,
    DrawerOpening,
    ReceiptPrinter,
)
from appliance.core.events import EventBus
from appliance.core.payment import PaymentTerminal
from appliance.core.scale import (
    InMotion,
    Overload,
    Scale,
    StableWeight,
    Underload,
    WeightReading,
)
from appliance.drivers.base import DeviceBase
from appliance.drivers.manager import DeviceManager
from appliance.errors import ApplianceError, DeviceError
from appliance.settings import Settings

log = logging.getLogger(__name__)

Verdict = Literal["pass", "fail", "skip"]
# How long one wait on the bus lasts before the deadline is looked at again.
POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one device, with a reason a technician can act on."""

    device: str
    kind: str
    verdict: Verdict
    reason: str
    address: str = ""


class Prompter(Protocol):
    """Talks to the technician in interactive mode."""

    def tell(self, message: str) -> None:
        """Show an instruction."""
        ...

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question."""
        ...


class SilentPrompter:
    """For --non-interactive: instructions are logged, every question is answered no."""

    def tell(self, message: str) -> None:
        """Log the instruction."""
        log.info("%s", message)

    def confirm(self, question: str) -> bool:
        """No one to ask: no."""
        return False


class Selftest:
    """Runs one check per device of a DeviceManager; call on the thread that drains `bus`."""

    def __init__(
        self,
        manager: DeviceManager,
        bus: EventBus,
        *,
        timeout: float,
        interactive: bool,
        prompter: Prompter,
        injectors: Mapping[str, Callable[[], None]] | None = None,
        currency: str = "EUR",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._manager = manager
        self._bus = bus
        self._timeout = timeout
        self._interactive = interactive
        self._prompter = prompter
        self._injectors = dict(injectors or {})
        self._currency = currency
        self._monotonic = monotonic
        self._scans: list[BarcodeScanned] = []
        self._taps: list[CardTapped] = []
        bus.subscribe(BarcodeScanned, self._scans.append)
        bus.subscribe(CardTapped, self._taps.append)
        self._checks: dict[str, Callable[[DeviceBase], tuple[Verdict, str]]] = {
            "printer": self._check_printer,
            "drawer": self._check_drawer,
            "scanner": self._check_scanner,
            "card_reader": self._check_card_reader,
            "payment_terminal": self._check_terminal,
            "scale": self._check_scale,
        }

    def run(self) -> list[CheckResult]:
        """Check every device in turn; never raises for a device's failure."""
        return [self.check(device) for device in self._manager]

    def check(self, device: DeviceBase) -> CheckResult:
        """Check one device."""
        health = self._health(device)
        check = self._checks.get(device.kind)
        verdict: Verdict
        if check is None:
            verdict, reason = "skip", f"no self-test for a {device.kind}"
        elif health.reason.startswith(("failed to open", "cannot be built")):
            verdict, reason = "fail", health.reason
        else:
            try:
                verdict, reason = check(device)
            except ApplianceError as err:
                verdict, reason = "fail", str(err)
            except Exception as err:  # a broken adapter fails its check, not the self-test
                log.exception("self-test of %s crashed", device.name)
                verdict, reason = "fail", f"{type(err).__name__}: {err}"
        log.info("self-test %s %s: %s (%s)", device.kind, device.name, verdict, reason)
        return CheckResult(device.name, device.kind, verdict, reason, device.address)

    def _check_printer(self, device: DeviceBase) -> tuple[Verdict, str]:
        printer = cast(ReceiptPrinter, device)
        status = printer.status()
        # A printer out of paper or with its cover open also says "offline": name the cause.
        if status.paper_out:
            return "fail", "out of paper"
        if status.cover_open:
            return "fail", "cover open"
        if not status.online:
            if status.paper_out is None and status.cover_open is None:
                return "fail", "printer does not answer (offline)"
            return "fail", "printer reports itself offline"
        printer.print_test_page()
        note = " (paper near end)" if status.paper_near_end else ""
        return "pass", f"status ok, test page printed{note}"

    def _check_drawer(self, device: DeviceBase) -> tuple[Verdict, str]:
        drawer = cast(CashDrawer, device)
        if drawer.is_open:
            if not self._interactive:
                return "fail", "already open: close it so the kick can be seen"
            self._prompter.tell(f"Close the cash drawer {device.name}.")
            if not self._wait(lambda: drawer.is_open is False):
                return "fail", f"still open after {self._timeout:g} s: the kick cannot be seen"
        drawer.kick(DrawerOpening("selftest"))
        if drawer.is_open is None:
            if self._interactive and not self._prompter.confirm(
                f"Did the cash drawer {device.name} open?"
            ):
                return "fail", "kicked, but the technician saw it stay shut"
            return "pass", "kicked (no sensor to confirm it opened)"
        if self._wait(lambda: drawer.is_open is True):
            return "pass", "kicked; the sensor saw it open"
        return "fail", f"kicked, but the sensor did not see it open within {self._timeout:g} s"

    def _check_scanner(self, device: DeviceBase) -> tuple[Verdict, str]:
        return self._check_input(device, self._scans, "scan any barcode with", "a scan")

    def _check_card_reader(self, device: DeviceBase) -> tuple[Verdict, str]:
        return self._check_input(device, self._taps, "tap any NFC card on", "a card")

    def _check_input(
        self, device: DeviceBase, seen: list[BarcodeScanned] | list[CardTapped], ask: str, what: str
    ) -> tuple[Verdict, str]:
        """A scanner or reader: wait until it is up, get input to it, see the event arrive."""
        inject = self._injectors.get(device.name)
        if inject is None and not self._interactive:
            if self._wait(lambda: device.health.state != "offline"):
                return "skip", f"connected; {what} needs a person (run without --non-interactive)"
            return "fail", device.health.reason or "offline"
        if not self._wait(lambda: device.health.state != "offline"):
            return "fail", device.health.reason or "offline"
        del seen[:]
        if inject is not None:
            inject()
        else:
            self._prompter.tell(f"Please {ask} {device.name} (within {self._timeout:g} s).")
        if self._wait(lambda: any(event.device == device.name for event in seen)):
            event = next(event for event in seen if event.device == device.name)
            got = event.code if isinstance(event, BarcodeScanned) else event.uid
            return "pass", f"read {got}"
        return "fail", f"nothing read within {self._timeout:g} s"

    def _check_terminal(self, device: DeviceBase) -> tuple[Verdict, str]:
        """Status Enquiry: the terminal answers and is ready, and no card is charged."""
        terminal = cast(PaymentTerminal, device)
        try:
            answer = terminal.check(timeout=self._timeout)
        except DeviceError as err:
            return "fail", str(err)
        return "pass", answer

    def _check_scale(self, device: DeviceBase) -> tuple[Verdict, str]:
        """Zero the empty scale, then weigh: a load put on it when someone or a simulator can."""
        scale = cast(Scale, device)
        if not self._wait(lambda: device.health.state != "offline"):
            return "fail", device.health.reason or "offline"
        zeroed = scale.zero()
        if zeroed != StableWeight(0):
            return "fail", f"did not zero: {reading_text(zeroed)}"
        inject = self._injectors.get(device.name)
        if inject is None and not self._interactive:
            empty = scale.weigh()
            if empty != StableWeight(0):
                return "fail", f"zeroed, then read {reading_text(empty)}"
            return (
                "pass",
                "zeroed, reads 0 g (a load needs a person: run without --non-interactive)",
            )
        if inject is not None:
            inject()
        else:
            self._prompter.tell(
                f"Please put any item on the scale {device.name} (within {self._timeout:g} s)."
            )
        readings: list[WeightReading] = []

        def loaded() -> bool:
            readings.append(scale.weigh())
            last = readings[-1]
            return isinstance(last, StableWeight) and last.grams > 0

        if self._wait(loaded):
            return "pass", f"zeroed, weighed {reading_text(readings[-1])}"
        return (
            "fail",
            f"zeroed, but no load weighed within {self._timeout:g} s: {reading_text(readings[-1])}",
        )

    def _health(self, device: DeviceBase) -> DeviceHealth:
        return next((h for h in self._manager.health() if h.device == device.name), device.health)

    def _wait(self, done: Callable[[], bool]) -> bool:
        """Deliver bus events until `done()` holds or the timeout passes."""
        deadline = self._monotonic() + self._timeout
        while not done():
            left = deadline - self._monotonic()
            if left <= 0:
                return False
            self._bus.wait(min(left, POLL_SECONDS))
            self._bus.drain()
        return True


def reading_text(reading: WeightReading) -> str:
    """A scale's answer in words, for a technician."""
    if isinstance(reading, StableWeight):
        return f"{reading.grams} g"
    if isinstance(reading, InMotion):
        return "the platter is moving"
    if isinstance(reading, Underload):
        return "below zero"
    if isinstance(reading, Overload):
        return "over capacity"
    return reading.reason


@dataclass(frozen=True, slots=True)
class UnderTest:
    """Opened devices, their bus, ways to drive their simulators, and simulators that failed."""

    manager: DeviceManager
    bus: EventBus
    injectors: Mapping[str, Callable[[], None]]
    missing: Mapping[str, str]  # simulator name -> why it did not start


@contextmanager
def devices_under_test(settings: Settings, *, simulate: bool) -> Iterator[UnderTest]:
    """The configured devices opened (or, simulated with none configured, the simulator lab)."""
    from appliance.drivers.sim.lab import SimLab

    bus = EventBus()
    lab = (
        SimLab.start(currency=settings.store.currency)
        if simulate and not settings.devices
        else None
    )
    try:
        if lab is not None:
            manager = DeviceManager.build(lab.settings, overrides=lab.overrides)
        else:
            manager = DeviceManager.build(settings.devices)
        try:
            manager.open_all(bus)
            if lab is None:
                yield UnderTest(manager, bus, {}, {})
            else:
                yield UnderTest(manager, bus, lab.injectors(), dict(lab.problems))
        finally:
            manager.close_all()
    finally:
        if lab is not None:
            lab.close()


def run_selftest(
    settings: Settings,
    *,
    simulate: bool,
    interactive: bool,
    timeout: float,
    prompter: Prompter | None = None,
) -> list[CheckResult]:
    """Open the devices, check each, close them; the results in device order."""
    with devices_under_test(settings, simulate=simulate) as under_test:
        test = Selftest(
            under_test.manager,
            under_test.bus,
            timeout=timeout,
            interactive=interactive,
            prompter=prompter or SilentPrompter(),
            injectors=under_test.injectors,
            currency=settings.store.currency,
        )
        missing = [
            CheckResult(name, "simulator", "fail", f"simulator did not start: {why}")
            for name, why in under_test.missing.items()
        ]
        return test.run() + missing
