"""PrintQueue: receipts wait in order while the printer cannot print, and print once each."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from appliance.core.devices import DeviceHealth, PrinterStatus, ReceiptPrinted, ReceiptQueued
from appliance.core.events import Event, EventBus
from appliance.core.receipt import Receipt
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.escpos_printer import EscposPrinter
from appliance.drivers.print_queue import PrintQueue
from appliance.drivers.sim.printer import SimPrinter
from appliance.errors import DeviceError
from tests.drivers.test_escpos_printer import receipt

WAIT = 10.0  # generous: only bounds a hang, never asserted as a duration
NEVER = 3600.0  # retry interval for tests that retry by hand


# Every thread a test starts is joined by its end (tests/drivers/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def bus() -> EventBus:
    """The bus the queue and the printer post to."""
    return EventBus()


@pytest.fixture
def seen(bus: EventBus) -> list[Event]:
    """Receipt events in the order the main loop gets them."""
    events: list[Event] = []
    bus.subscribe(ReceiptQueued, events.append)
    bus.subscribe(ReceiptPrinted, events.append)
    return events


@pytest.fixture
def sim() -> Iterator[SimPrinter]:
    """A network printer on 127.0.0.1."""
    with SimPrinter() as sim:
        yield sim


@pytest.fixture
def printer(sim: SimPrinter, bus: EventBus) -> Iterator[EscposPrinter]:
    """The real adapter, open, talking to `sim`."""
    table = EscposPrinterSettings(host=sim.host, port=sim.port, timeout=2.0)
    with EscposPrinter("receipts", table) as printer:
        printer.open(bus)
        assert printer.wait_ready(WAIT)
        yield printer


def pump(bus: EventBus, until: Callable[[], bool]) -> None:
    """Run the main loop until `until()` holds."""
    deadline = time.monotonic() + WAIT
    while not until():
        assert time.monotonic() < deadline, "timed out waiting on the bus"
        bus.wait(0.05)
    bus.drain()


def of(kind: type[ReceiptQueued | ReceiptPrinted], events: list[Event]) -> list[str]:
    """Receipt numbers of the events of one kind."""
    return [e.receipt_number for e in events if isinstance(e, kind)]


def test_a_receipt_prints_and_is_reported_once(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus, seen: list[Event]
) -> None:
    with PrintQueue(printer, bus, retry_seconds=NEVER) as queue:
        queue.submit(receipt(1))
        pump(bus, lambda: bool(of(ReceiptPrinted, seen)))
        assert queue.pending == []
    assert seen == [ReceiptPrinted("receipts", "K01-000001")]
    assert [job.barcodes for job in sim.jobs] == [["K01-000001"]]


def test_paper_out_queues_then_prints_exactly_once_after_a_retry(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus, seen: list[Event]
) -> None:
    sim.set_paper_out(True)
    r = receipt(1)
    with PrintQueue(printer, bus, retry_seconds=NEVER) as queue:
        queue.submit(r)
        pump(bus, lambda: bool(seen))
        assert seen == [ReceiptQueued("receipts", "K01-000001", "paper out")]
        assert queue.pending == [r]
        assert sim.jobs == []
        queue.retry_now()  # still out of paper: stays queued, not announced twice
        sim.set_paper_out(False)
        queue.retry_now()
        pump(bus, lambda: bool(of(ReceiptPrinted, seen)))
        assert queue.pending == []
    assert of(ReceiptQueued, seen) == ["K01-000001"]
    assert of(ReceiptPrinted, seen) == ["K01-000001"]
    assert len(sim.jobs) == 1


def test_queued_receipts_print_in_order_when_the_printer_is_back(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus, seen: list[Event]
) -> None:
    sim.vanish()
    receipts = [receipt(n) for n in (1, 2, 3)]
    with PrintQueue(printer, bus, retry_seconds=NEVER) as queue:
        for r in receipts:
            queue.submit(r)
        pump(bus, lambda: len(of(ReceiptQueued, seen)) == 3)
        assert queue.pending == receipts
        assert all("connection refused" in e.reason for e in seen if isinstance(e, ReceiptQueued))
        sim.restore()
        queue.retry_now()
        pump(bus, lambda: len(of(ReceiptPrinted, seen)) == 3)
    numbers = ["K01-000001", "K01-000002", "K01-000003"]
    assert of(ReceiptQueued, seen) == numbers
    assert of(ReceiptPrinted, seen) == numbers
    assert [job.barcodes[0] for job in sim.jobs] == numbers


def test_the_queue_retries_by_itself_every_retry_seconds(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus, seen: list[Event]
) -> None:
    sim.cover_open = True
    with PrintQueue(printer, bus, retry_seconds=0.05) as queue:
        queue.submit(receipt(1))
        pump(bus, lambda: bool(seen))
        sim.cover_open = False
        pump(bus, lambda: bool(of(ReceiptPrinted, seen)))
    assert of(ReceiptPrinted, seen) == ["K01-000001"]
    assert len(sim.jobs) == 1


class BlockingPrinter:
    """A ReceiptPrinter whose prints wait for `release`; for the queue's own behaviour."""

    name = "slow"

    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.release = threading.Event()
        self.printed: list[str] = []
        self.failures = failures or []

    def open(self, bus: EventBus) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    @property
    def health(self) -> DeviceHealth:
        """Always fine."""
        return DeviceHealth(self.name, "printer", "ok")

    def status(self) -> PrinterStatus:
        """Always online."""
        return PrinterStatus(online=True)

    def print_receipt(self, receipt: Receipt) -> None:
        """Wait for release, then fail with the next scripted error or print."""
        self.release.wait(WAIT)
        if self.failures:
            raise self.failures.pop(0)
        self.printed.append(receipt.receipt_number)

    def print_test_page(self) -> None:
        """Not used."""


def test_submit_never_waits_for_the_printer(bus: EventBus) -> None:
    printer = BlockingPrinter()
    with PrintQueue(printer, bus, retry_seconds=NEVER) as queue:
        queue.submit(receipt(1))
        queue.submit(receipt(2))  # returns although the first print is still blocked
        assert [r.receipt_number for r in queue.pending] == ["K01-000001", "K01-000002"]
        assert printer.printed == []
        printer.release.set()
        pump(bus, lambda: printer.printed == ["K01-000001", "K01-000002"])


def test_close_reports_unprinted_receipts_and_is_safe_twice(
    bus: EventBus, seen: list[Event], caplog: pytest.LogCaptureFixture
) -> None:
    printer = BlockingPrinter([DeviceError("paper out")])
    queue = PrintQueue(printer, bus, retry_seconds=NEVER)
    queue.open()
    queue.submit(receipt(1))
    printer.release.set()
    pump(bus, lambda: bool(seen))
    with caplog.at_level(logging.WARNING, logger="appliance.drivers.print_queue"):
        queue.close()
        queue.close()
    assert "1 receipt(s) not printed on slow: K01-000001" in caplog.text
    queue.submit(receipt(2))  # after close: logged, never raised
    assert printer.printed == []


def test_a_receipt_that_breaks_the_layout_is_dropped_and_the_rest_print(
    bus: EventBus, seen: list[Event]
) -> None:
    printer = BlockingPrinter([ValueError("bad layout")])
    printer.release.set()
    with PrintQueue(printer, bus, retry_seconds=NEVER) as queue:
        queue.submit(receipt(1))
        queue.submit(receipt(2))
        pump(bus, lambda: bool(of(ReceiptPrinted, seen)))
    assert printer.printed == ["K01-000002"]
    [dropped] = [e for e in seen if isinstance(e, ReceiptQueued)]
    assert dropped.receipt_number == "K01-000001" and "bad layout" in dropped.reason
