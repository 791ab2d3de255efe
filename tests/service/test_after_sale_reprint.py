"""Reprints marked COPY (found by the receipt's barcode or number), reports on the same queue,
receipts that wait across a restart, papers that may have printed, and drawer openings by
hand: AfterSale with the simulator lab's real adapters."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from appliance.core.devices import ReceiptMayHavePrinted, ReceiptPrinted, ReceiptQueued
from appliance.core.receipt import Receipt, TextLine
from appliance.core.reports import ReportMade
from appliance.core.tender import Tender
from appliance.drivers.receipt_layout import COPY_MARK
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.settings import simulated_settings
from appliance.store.drawer_log import DrawerLog
from appliance.store.journal import FiscalJournal
from tests.core.test_reports_receipt import Z

COFFEE = "4006381333931"


def pump(app: Appliance, until: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the main loop until `until()` is true."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        app.bus.wait(0.05)
        app.bus.drain()


def sell(app: Appliance, tender: str = "card") -> str:
    app.checkout.scan(COFFEE)
    total = app.checkout.totals().total
    tenders = [Tender.cash(2000, total)] if tender == "cash" else [Tender("card", total)]
    return app.checkout.pay(tenders).receipt_number


def test_a_scanned_receipt_is_found_and_reprinted_as_a_copy(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None
    printer = app.lab.printer
    number = sell(app)
    pump(app, lambda: len(printer.jobs) == 1)
    [original] = printer.jobs
    scanned = original.barcodes[0]  # what a scanner reads off the paper
    sale = after.find_receipt(scanned)
    assert sale is not None and sale.receipt_number == number
    assert after.find_receipt(original.qr[0]) == sale  # the QR code holds the sale's id
    assert after.find_receipt("NOPE-1") is None and after.find_receipt("  ") is None
    assert after.print_receipt(sale, copy=True)
    pump(app, lambda: len(printer.jobs) == 2)
    copy = printer.jobs[1]
    assert copy.lines.count(COPY_MARK) == 2 and COPY_MARK not in original.lines
    assert copy.barcodes == [number]
    jobs = after.recent_jobs(5)
    assert [(j.receipt.copy, j.state) for j in jobs] == [(True, "printed"), (False, "printed")]


def test_a_report_prints_and_reprints_on_the_queue(till: tuple[Appliance, AfterSale]) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None
    printer = app.lab.printer
    report = Receipt(
        store_name="Demo",
        header=(),
        title="Z REPORT",
        receipt_number="Z-000001",
        sale_id="",
        created_at="2026-12-06 18:00",
        lines=(),
        taxes=(),
        discount_total="",
        total="",
        tenders=(),
        change="",
        footer=(),
        body=(TextLine("Cash", "12,00 €"),),
    )
    assert after.print_report(report)
    assert after.print_report(report, copy=True)
    pump(app, lambda: len(printer.jobs) == 2)
    first, again = printer.jobs
    assert "Z REPORT" in first.lines and COPY_MARK not in first.lines
    assert again.lines.count(COPY_MARK) == 2 and again.barcodes == ["Z-000001"]


def test_a_till_report_prints_laid_out_by_the_core_and_reprints_as_a_copy(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None
    printer = app.lab.printer
    assert after.print_report(Z)
    assert after.print_report(Z, copy=True)
    pump(app, lambda: len(printer.jobs) == 2)
    first, again = printer.jobs
    assert "Z REPORT" in first.lines and first.barcodes == ["Z-000003"]
    assert COPY_MARK not in first.lines and again.lines.count(COPY_MARK) == 2
    words = [line for line in again.lines if line not in (COPY_MARK, "")]
    assert words == [line for line in first.lines if line]


def test_a_report_made_with_no_one_at_the_screen_prints_itself_once(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _after = till
    assert app.lab is not None and app.lab.printer is not None
    printer = app.lab.printer
    app.bus.post(ReportMade(Z))  # what a kiosk's scheduled close posts
    pump(app, lambda: len(printer.jobs) == 1)
    assert "Z REPORT" in printer.jobs[0].lines and printer.jobs[0].barcodes == ["Z-000003"]
    time.sleep(0.3)
    app.bus.drain()
    assert len(printer.jobs) == 1


def test_a_receipt_waiting_for_paper_prints_once_after_a_restart(tmp_path: Path) -> None:
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    devices = app.open_devices(simulate=True)
    after = AfterSale(app, devices)
    after.open()
    queued: list[str] = []
    app.bus.subscribe(ReceiptQueued, lambda e: queued.append(e.receipt_number))
    try:
        assert app.lab is not None and app.lab.printer is not None
        app.lab.printer.set_paper_out(True)
        number = sell(app)
        pump(app, lambda: queued == [number])
    finally:
        after.close()
        app.close_devices()
        app.close()
    # The appliance starts again (a new simulated printer, with paper).
    app = Appliance.open(settings)
    devices = app.open_devices(simulate=True)
    after = AfterSale(app, devices)
    printed: list[str] = []
    app.bus.subscribe(ReceiptPrinted, lambda e: printed.append(e.receipt_number))
    after.open()
    try:
        assert app.lab is not None and app.lab.printer is not None
        pump(app, lambda: printed == [number])
        [job] = app.lab.printer.wait_for_jobs(1)
        assert job.barcodes == [number]
        [kept] = after.recent_jobs(5)
        assert (kept.state, kept.receipt.receipt_number) == ("printed", number)
    finally:
        after.close()
        app.close_devices()
        app.close()


def test_a_paper_that_may_have_printed_is_reprinted_or_settled_by_staff(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, after = till
    assert app.lab is not None and app.lab.printer is not None
    printer = app.lab.printer
    unsure: list[ReceiptMayHavePrinted] = []
    app.bus.subscribe(ReceiptMayHavePrinted, unsure.append)
    printer.lose_answer_after_job(2)
    first, second = sell(app), sell(app)
    pump(app, lambda: len(unsure) == 2)
    assert [e.receipt_number for e in unsure] == [first, second]
    assert len(printer.jobs) == 2  # both came out; the till cannot know
    jobs = after.uncertain_jobs()
    assert [j.id for j in jobs] == [e.job_id for e in unsure]
    assert after.reprint_job(jobs[0].id)  # staff saw no receipt: a copy
    assert after.job_printed(jobs[1].id)  # staff saw it: done
    assert not after.job_printed(jobs[1].id)  # settled once
    pump(app, lambda: len(printer.jobs) == 3)
    assert printer.jobs[2].lines.count(COPY_MARK) == 2
    assert printer.jobs[2].barcodes == [first]
    assert after.uncertain_jobs() == []
    states = {j.id: (j.state, j.reason) for j in after.recent_jobs(5)}
    assert states[jobs[0].id][0] == "failed" and "reprinted as a copy" in states[jobs[0].id][1]
    assert states[jobs[1].id] == ("printed", "marked printed by staff")


def test_a_drawer_pulled_open_by_hand_is_logged_flagged_and_journalled(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    assert app.lab is not None and app.lab.drawer is not None
    app.lab.drawer.open()  # a key: no kick before it
    pump(app, lambda: len(DrawerLog(app.db).since()) == 1)
    [logged] = DrawerLog(app.db).unexplained()
    assert (logged.device, logged.opening.reason) == ("drawer", "by_hand")
    drawer_entries = [e for e in FiscalJournal(app.db).entries() if e.kind == "drawer"]
    assert len(drawer_entries) == 1
