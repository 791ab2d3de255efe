"""After a sale: the receipt reaches the printer (or waits for it), cash opens the drawer,
and every opening is logged with its reason. Real adapters against the simulator lab."""

from __future__ import annotations

import logging
import time

import pytest

from appliance.core.devices import DrawerOpening, ReceiptPrinted, ReceiptQueued
from appliance.core.tender import Tender
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.store.drawer_log import DrawerLog

COFFEE = "4006381333931"


def _pump(app: Appliance, until: object, timeout: float = 10.0) -> None:
    """Run the main loop until `until()` is true."""
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        app.bus.wait(0.05)
        app.bus.drain()


def _sell(app: Appliance, tender: str) -> str:
    app.checkout.scan(COFFEE)
    total = app.checkout.totals().total
    tenders = [Tender.cash(2000, total)] if tender == "cash" else [Tender("card", total)]
    return app.checkout.pay(tenders).receipt_number


def test_a_cash_sale_prints_its_receipt_opens_the_drawer_and_logs_why(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    assert app.lab is not None and app.lab.printer is not None and app.lab.drawer is not None
    number = _sell(app, "cash")
    printer = app.lab.printer
    _pump(app, lambda: len(printer.jobs) == 1)
    jobs = printer.jobs
    assert any(number in line for line in jobs[0].lines)
    assert number in jobs[0].barcodes
    _pump(app, lambda: len(DrawerLog(app.db).since()) == 1)
    logged = DrawerLog(app.db).since()[0]
    assert (logged.opening.reason, logged.device) == ("sale", "drawer")
    assert app.lab.drawer.kicks == 1


def test_the_last_opening_is_logged_when_it_arrives_after_close(
    till: tuple[Appliance, AfterSale], caplog: pytest.LogCaptureFixture
) -> None:
    """At shutdown the service closes AfterSale, then drains the bus once more: the last
    kick's DrawerOpened arrives after the drawer's worker stopped. It is logged all the
    same, not refused with "cannot schedule new futures after shutdown"."""
    app, after = till
    assert app.lab is not None and app.lab.drawer is not None
    _sell(app, "cash")
    app.bus.drain()  # SaleCommitted: the kick goes to the drawer's worker
    after.close()  # the kick finishes and posts DrawerOpened; the worker stops
    assert app.lab.drawer.kicks == 1
    with caplog.at_level(logging.WARNING):
        app.bus.drain()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [o.opening.reason for o in DrawerLog(app.db).since()] == ["sale"]
    assert not after.kick_drawer(DrawerOpening("no_sale", staff="Casey"))  # stopped: no kick


def test_a_card_sale_prints_but_leaves_the_drawer_shut(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None and app.lab.drawer is not None
    _sell(app, "card")
    printer = app.lab.printer
    _pump(app, lambda: len(printer.jobs) == 1)
    after.close()  # waits for any kick that was (wrongly) started
    assert app.lab.drawer.kicks == 0
    assert DrawerLog(app.db).since() == []


def test_out_of_paper_queues_the_receipt_and_prints_it_once_paper_is_back(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None
    queued: list[str] = []
    printed: list[str] = []
    app.bus.subscribe(ReceiptQueued, lambda e: queued.append(e.receipt_number))
    app.bus.subscribe(ReceiptPrinted, lambda e: printed.append(e.receipt_number))
    app.lab.printer.set_paper_out(True)
    number = _sell(app, "card")
    _pump(app, lambda: queued == [number])
    assert app.ledger.by_receipt(number) is not None, "the sale stands without its receipt"
    app.lab.printer.set_paper_out(False)
    after._queue.retry_now()  # type: ignore[union-attr]
    _pump(app, lambda: printed == [number])
    assert len(app.lab.printer.wait_for_jobs(1, timeout=10)) == 1
