"""The card terminal's slip: printed with the sale's receipt while our printer can print,
and, when it cannot, the terminal is told so (ZVT 84 CC) and prints its slip itself."""

from __future__ import annotations

import re
import time
from concurrent.futures import Future

from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance

COFFEE = "4006381333931"
SLIP_TITLE = "Kartenzahlung"  # the emulated terminal's slip heading


def _pump(app: Appliance, until: object, timeout: float = 15.0) -> None:
    """Run the main loop until `until()` is true."""
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        app.bus.wait(0.05)
        app.bus.drain()


def _pay_by_card(app: Appliance) -> Sale:
    """Scan a coffee and pay by card through the headless till, as `sim pay card` does."""
    assert app.till is not None and app.card_gate is not None
    _pump(app, lambda: app.card_gate is not None and app.card_gate.availability.offered)
    app.checkout.scan(COFFEE)
    reply: Future[Sale] = Future()
    app.till.pay_card(reply)
    _pump(app, reply.done)
    return reply.result()


def test_the_slip_prints_with_the_receipt_and_shows_no_card_number(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    assert app.lab is not None and app.lab.printer is not None and app.lab.terminal is not None
    assert app.devices is not None and app.devices.printer is not None
    adapter = app.devices.printer
    _pump(app, lambda: adapter.health.state == "ok")  # the printer answered its first probe

    sale = _pay_by_card(app)

    printer = app.lab.printer
    _pump(app, lambda: len(printer.jobs) == 1)
    lines = printer.jobs[0].lines
    assert any(sale.receipt_number in line for line in lines)
    assert any(SLIP_TITLE in line for line in lines)
    assert not any(re.search(r"\d{13,19}", line) for line in lines)
    assert app.lab.terminal.printer_faults == 0


def test_a_printer_that_cannot_print_makes_the_terminal_print_its_own_slip(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    assert app.lab is not None and app.lab.printer is not None and app.lab.terminal is not None
    assert app.devices is not None and app.devices.printer is not None
    printer, emulator, adapter = app.lab.printer, app.lab.terminal, app.devices.printer
    printer.set_paper_out(True)
    # A cash sale's receipt finds the paper out: the printer's health says so.
    app.checkout.scan(COFFEE)
    app.checkout.pay([Tender.cash(1000, app.checkout.totals().total)])
    _pump(app, lambda: adapter.health.reason == "paper out")

    sale = _pay_by_card(app)

    assert emulator.printer_faults == 1  # told "cannot print": it prints the slip itself
    printer.set_paper_out(False)
    _pump(app, lambda: len(printer.jobs) == 2)  # both receipts, once paper is back
    card_receipt = next(j for j in printer.jobs if any(sale.receipt_number in x for x in j.lines))
    assert not any(SLIP_TITLE in line for line in card_receipt.lines)  # never printed twice
