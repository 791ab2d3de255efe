"""Void a sale of the shift with a supervisor, reprint any receipt or report, and the drawer's
notices on the till: on the real staffed till, offscreen."""

from __future__ import annotations

from kivy.uix.widget import Widget

from appliance.core.devices import DrawerClosed, DrawerLeftOpen
from appliance.core.report_receipt import report_number
from appliance.core.sale import Sale
from appliance.core.tender import Tender
from appliance.screens.i18n import tr
from appliance.screens.staff.reprint import ReprintRow
from appliance.screens.staff.void import SaleRow
from tests.screens.harness import Kiosk
from tests.screens.shift_steps import open_shift, supervisor_approves, x_report
from tests.screens.test_staff_flows import (
    COFFEE,
    WATER,
    current_screen,
    log_in_cashier,
    scan_into_till,
    sim_drawer,
    type_on,
)


def cash_sale(kiosk: Kiosk, code: str) -> Sale:
    """A cash sale of one item, paid exactly, back on the till."""
    member = kiosk.app.session.staff
    assert member is not None
    scan_into_till(kiosk, code)
    checkout = kiosk.services.app.checkout
    total = checkout.totals().total
    sale = checkout.pay([Tender.cash(total, total)], staff=member.staff_id)
    kiosk.app.session.go("till")
    kiosk.wait_for_screen("till")
    return sale


def sale_row(kiosk: Kiosk, sale_id: str) -> SaleRow:
    """The row of a sale on the void screen."""
    rows = [w for w in kiosk.widgets() if isinstance(w, SaleRow) and w.sale_id == sale_id]
    assert rows, f"no row for sale {sale_id}"
    return rows[0]


def reprint_row(kiosk: Kiosk, title: str) -> ReprintRow:
    """The row of a paper on the reprint screen, by its title."""
    rows = [w for w in kiosk.widgets() if isinstance(w, ReprintRow) and w.title == title]
    assert rows, f"no row {title!r}; rows: {[r['title'] for r in kiosk.app.reprint.rows]}"
    return rows[0]


def button_in(row: ReprintRow, text: str) -> Widget:
    """A row's button by its (untranslated) text."""
    wanted = tr._(text)
    return next(w for w in row.walk(restrict=True) if getattr(w, "text", "") == wanted)


def test_a_supervisor_voids_a_cash_sale_of_the_shift(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till, with_shift=False)
    open_shift(staff_till, {2000: 5})
    first = cash_sale(staff_till, COFFEE)
    second = cash_sale(staff_till, WATER)
    ledger = staff_till.services.app.ledger

    staff_till.tap_text(tr._("Void a sale"))
    staff_till.wait_for_screen("void")
    assert [r["sale_id"] for r in staff_till.app.void.rows] == [second.id, first.id]
    void_button = current_screen(staff_till).ids.void_sale
    assert void_button.disabled  # nothing chosen yet
    staff_till.tap(sale_row(staff_till, first.id))
    assert staff_till.app.void.selected == first.id and not void_button.disabled
    staff_till.screenshot("staff-void")
    staff_till.tap(void_button)
    supervisor_approves(staff_till)
    staff_till.wait_for_screen("receipt")

    void = ledger.last()
    assert void is not None and void.kind == "void" and void.references == first.id
    assert void.total == -first.total

    # Voided once: the sale stays listed but cannot be voided again.
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")
    staff_till.tap_text(tr._("Void a sale"))
    staff_till.wait_for_screen("void")
    staff_till.tap(sale_row(staff_till, first.id))
    assert not staff_till.app.void.can_void
    assert sale_row(staff_till, first.id).note == tr._("Cannot be voided")


def test_reprint_by_number_by_scan_from_the_list_and_a_report(staff_till: Kiosk) -> None:
    printer = staff_till.lab.printer
    assert printer is not None
    log_in_cashier(staff_till, with_shift=False)
    open_shift(staff_till, {2000: 5})
    first = cash_sale(staff_till, COFFEE)
    second = cash_sale(staff_till, WATER)

    def printed_copy_of(number: str, before: int) -> None:
        staff_till.wait_for(lambda: len(printer.jobs) > before, what=f"a copy of {number}")
        text = "\n".join(printer.jobs[-1].lines)
        assert "COPY" in text and number in text

    staff_till.tap_text(tr._("Reprint"))
    staff_till.wait_for_screen("reprint")
    before = len(printer.jobs)
    type_on(staff_till, current_screen(staff_till).ids.number, str(first.sequence), "Print")
    printed_copy_of(first.receipt_number, before)

    before = len(printer.jobs)
    staff_till.scan(second.receipt_number)
    printed_copy_of(second.receipt_number, before)

    staff_till.screenshot("staff-reprint")
    before = len(printer.jobs)
    row = reprint_row(staff_till, f"{tr._('Receipt')} {first.receipt_number}")
    staff_till.tap(
        next(w for w in row.walk(restrict=True) if getattr(w, "text", "") == tr._("Print a copy"))
    )
    printed_copy_of(first.receipt_number, before)

    # Reports reprint the same way.
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")
    x = x_report(staff_till)
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")
    staff_till.tap_text(tr._("Reprint"))
    staff_till.wait_for_screen("reprint")
    staff_till.tap(current_screen(staff_till).ids.reports)
    staff_till.wait_for(lambda: staff_till.app.reprint.rows, what="the reports listed")
    before = len(printer.jobs)
    title = tr._("X report {number} of shift {shift}").format(number=x.number, shift=x.shift_number)
    row = reprint_row(staff_till, title)
    staff_till.tap(
        next(w for w in row.walk(restrict=True) if getattr(w, "text", "") == tr._("Print a copy"))
    )
    staff_till.wait_for(lambda: len(printer.jobs) > before, what="a copy of the X")
    assert "COPY" in "\n".join(printer.jobs[-1].lines)

    # Or by scanning the barcode printed on it.
    before = len(printer.jobs)
    staff_till.scan(report_number(x))
    staff_till.wait_for(lambda: len(printer.jobs) > before, what="a copy of the scanned X")
    assert printer.jobs[-1].barcodes == [report_number(x)]
    assert "COPY" in "\n".join(printer.jobs[-1].lines)


def test_the_till_shows_the_drawer_left_open_and_an_opening_by_hand(staff_till: Kiosk) -> None:
    log_in_cashier(staff_till, with_shift=False)
    bus = staff_till.services.app.bus
    notices = current_screen(staff_till).ids
    bus.post(DrawerLeftOpen("drawer", 31.0))
    staff_till.wait_for(lambda: notices.drawer_left_open.opacity == 1, what="left open")
    left_open = tr._("Drawer left open for {seconds} s. Please close it.")
    staff_till.find_text(left_open.format(seconds=31))
    staff_till.screenshot("staff-drawer-left-open")
    bus.post(DrawerClosed("drawer"))
    staff_till.wait_for(lambda: notices.drawer_left_open.opacity == 0, what="closed")

    # Pulled open with no kick: the sensor reports an opening nobody explained.
    drawer = sim_drawer(staff_till)
    drawer.close()
    staff_till.pump(3)
    drawer.open()
    staff_till.wait_for(lambda: notices.drawer_unexplained.opacity == 1, what="by hand")
    assert staff_till.app.drawer_watch.unexplained_count == 1
    staff_till.screenshot("staff-drawer-by-hand")
    staff_till.tap_text(tr._("Seen"))
    assert notices.drawer_unexplained.opacity == 0
    drawer.close()


def test_papers_that_may_have_printed_are_shown_and_settled_by_staff(staff_till: Kiosk) -> None:
    printer = staff_till.lab.printer
    assert printer is not None
    after_sale = staff_till.services.after_sale
    log_in_cashier(staff_till)
    first = cash_sale(staff_till, COFFEE)
    second = cash_sale(staff_till, WATER)
    for sale in (first, second):  # the customers asked for their receipts
        assert after_sale.print_receipt(sale)
    staff_till.wait_for(lambda: len(after_sale.recent_jobs()) >= 2, what="both receipts queued")
    staff_till.wait_for(
        lambda: all(j.state == "printed" for j in after_sale.recent_jobs()), what="printed"
    )
    # The printer's answer was lost for both: they may have printed.
    jobs = {j.receipt.receipt_number: j for j in after_sale.recent_jobs()}
    for number in (first.receipt_number, second.receipt_number):
        after_sale.print_jobs.set_state(jobs[number].id, "uncertain", "the answer was lost")
    staff_till.app.session.go("status")
    staff_till.wait_for_screen("status")
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")
    notice = current_screen(staff_till).ids.unsure_prints
    assert notice.opacity == 1 and staff_till.app.reprint.unsure_count == 2
    staff_till.screenshot("staff-may-have-printed")

    staff_till.tap_text(tr._("Check"))
    staff_till.wait_for_screen("reprint")
    assert staff_till.app.reprint.section == "unsure"
    staff_till.screenshot("staff-reprint-unsure")
    title = tr._("{paper} may have printed").format
    # Staff find the first on paper: it is done, nothing prints.
    before = len(printer.jobs)
    staff_till.tap(
        button_in(reprint_row(staff_till, title(paper=first.receipt_number)), "It printed")
    )
    assert after_sale.print_jobs.get(jobs[first.receipt_number].id).state == "printed"
    # The second is not there: a COPY prints.
    staff_till.tap(
        button_in(reprint_row(staff_till, title(paper=second.receipt_number)), "Print again")
    )
    staff_till.wait_for(lambda: len(printer.jobs) > before, what="the copy")
    text = "\n".join(printer.jobs[-1].lines)
    assert "COPY" in text and second.receipt_number in text
    assert len(printer.jobs) == before + 1
    assert staff_till.app.reprint.unsure_count == 0 and not staff_till.app.reprint.rows
