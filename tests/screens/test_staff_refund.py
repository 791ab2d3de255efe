"""Refunds on the real app: by the receipt's barcode or its typed number, once per item."""

from __future__ import annotations

from datetime import UTC, datetime

from kivy.core.window import Window
from kivy.uix.widget import Widget

from appliance.core.sale import Sale, draft_refund
from appliance.core.tender import Tender
from appliance.screens.i18n import tr
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.staff.refund import RefundRow
from appliance.service.demo import DEMO_CASHIER_BADGE, DEMO_SUPERVISOR_PIN
from appliance.store.staff import StaffDirectory
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import (
    COFFEE,
    COFFEE_NAME,
    WATER,
    current_screen,
    ensure_shift,
    euros,
    keypad_in,
    log_in_cashier,
    sim_drawer,
    type_on,
)


def sell(kiosk: Kiosk, codes: tuple[str, ...], tender: Tender | None = None) -> Sale:
    """A sale made at this till (its screens are proven elsewhere)."""
    ensure_shift(kiosk)
    checkout = kiosk.services.app.checkout
    for code in codes:
        checkout.scan(code)
    total = checkout.totals().total
    cashier = StaffDirectory(kiosk.services.app.db).by_badge(DEMO_CASHIER_BADGE)
    assert cashier is not None
    paid = tender or Tender.cash(total, total)
    if paid.kind == "card":
        paid = Tender("card", total, reference=paid.reference, card_mask=paid.card_mask)
    sale = checkout.pay([paid], staff=cashier.staff_id)
    kiosk.pump(2)
    return sale


def refund_row(kiosk: Kiosk, name: str) -> RefundRow:
    """The line of the sale on show."""
    row: RefundRow = kiosk.wait_for(
        lambda: next(
            (w for w in kiosk.widgets() if isinstance(w, RefundRow) and w.name == name), None
        ),
        what=f"refund line {name}",
    )
    return row


def plus_of(row: Widget) -> Widget:
    """The + button of a refund line."""
    return next(w for w in row.walk(restrict=True) if getattr(w, "text", None) == "+")


def choose_one_more(kiosk: Kiosk, name: str) -> None:
    """Touch + on a line (in a list, the release arrives once the list knows it is no scroll)."""
    chosen = int(refund_row(kiosk, name).chosen)
    kiosk.tap(plus_of(refund_row(kiosk, name)))
    # The list reuses its row widgets as the data changes: look the line up again each time.
    kiosk.wait_for(
        lambda: refund_row(kiosk, name).chosen == str(chosen + 1), what=f"one more {name}"
    )


def test_refund_by_scanned_receipt_then_a_second_refund_of_the_same_item_is_refused(
    staff_till: Kiosk,
) -> None:
    sale = sell(staff_till, (COFFEE, COFFEE, WATER))
    member = log_in_cashier(staff_till)
    ledger = staff_till.services.app.ledger
    staff_till.tap_text(tr._("Refund"))
    staff_till.wait_for_screen("refund")
    staff_till.screenshot("staff-refund-find")

    # The receipt's barcode holds its number: real bytes through the scanner.
    staff_till.scan(sale.receipt_number)
    staff_till.wait_for(lambda: staff_till.app.refund.found, what="the sale")
    coffee = refund_row(staff_till, COFFEE_NAME)
    assert coffee.detail == tr._("{sold} sold, {refunded} refunded").format(sold=2, refunded=0)
    choose_one_more(staff_till, COFFEE_NAME)
    staff_till.find_text(euros(499))
    staff_till.screenshot("staff-refund-sale")
    kicks = sim_drawer(staff_till).kicks
    staff_till.tap_text(tr._("Refund in cash"))
    staff_till.wait_for_screen("receipt")

    refund = ledger.last()
    assert refund is not None and refund.kind == "refund" and refund.references == sale.id
    assert [(line.name, line.quantity, line.refers_to_line) for line in refund.lines] == [
        (COFFEE_NAME, -1, 1)
    ]
    assert refund.total == -499 and refund.tenders == (Tender("cash", -499),)
    assert refund.staff == member.staff_id
    assert staff_till.app.session.last_sale_id == refund.id
    staff_till.wait_for(lambda: sim_drawer(staff_till).kicks == kicks + 1, what="the drawer")

    # The number typed this time; the last coffee goes back on another till meanwhile.
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")
    staff_till.tap_text(tr._("Refund"))
    staff_till.wait_for_screen("refund")
    screen = current_screen(staff_till)
    type_on(staff_till, keypad_in(screen), str(sale.sequence), tr._("Find"))
    coffee = refund_row(staff_till, COFFEE_NAME)
    assert coffee.detail == tr._("{sold} sold, {refunded} refunded").format(sold=2, refunded=1)
    choose_one_more(staff_till, COFFEE_NAME)
    elsewhere = draft_refund(
        sale,
        {1: 1},
        [Tender("cash", -499)],
        already_refunded=ledger.refunded_quantities(sale.id),
        device_id="sim-0001",
        now=datetime.now(UTC),
        staff=member.staff_id,
    )
    ledger.commit(elsewhere)
    documents = ledger.count()
    staff_till.tap_text(tr._("Refund in cash"))
    refused = tr._("This refund is not possible: part of it was already refunded.")
    staff_till.find_text(refused)
    assert ledger.count() == documents and staff_till.screen == "refund"
    coffee = refund_row(staff_till, COFFEE_NAME)
    assert coffee.detail == tr._("{sold} sold, {refunded} refunded").format(sold=2, refunded=2)
    assert not coffee.can_more
    staff_till.screenshot("staff-refund-refused")


def test_a_refund_over_50_needs_a_supervisor_and_goes_back_to_the_card(
    staff_till: Kiosk,
) -> None:
    card = Tender("card", 0, reference="T-4711", card_mask="**** 1234")
    sale = sell(staff_till, (COFFEE,) * 11, card)  # 54.89, over the cashier's 50.00
    log_in_cashier(staff_till)
    staff_till.tap_text(tr._("Refund"))
    staff_till.wait_for_screen("refund")
    staff_till.app.refund.find(sale.receipt_number)  # what a scan or typed number does
    refund_row(staff_till, COFFEE_NAME)
    staff_till.tap_text(tr._("Everything not yet refunded"))
    staff_till.find_text(euros(11 * 499))
    staff_till.tap_text(tr._("Refund to the card"))
    approval = next(w for w in Window.children if isinstance(w, StaffApproval))
    assert staff_till.services.app.ledger.count() == 1  # nothing stored yet: only the sale
    type_on(staff_till, keypad_in(approval), DEMO_SUPERVISOR_PIN, tr._("Approve"))
    staff_till.wait_for_screen("receipt")

    refund = staff_till.services.app.ledger.last()
    assert refund is not None and refund.references == sale.id and refund.total == -11 * 499
    # The money went back through the terminal: a refund (06 31), since the sale's own
    # card payment is not in this till's journal to be reversed.
    [tender] = refund.tenders
    assert (tender.kind, tender.amount, tender.card_mask) == ("card", -11 * 499, "**** 1234")
    attempt = staff_till.services.app.stores.payments.get(tender.reference)
    assert attempt is not None
    assert (attempt.kind, attempt.state, attempt.sale_id) == ("refund", "settled", refund.id)
    lab = staff_till.services.app.lab
    assert lab is not None and lab.terminal is not None
    assert [(b.kind, b.amount, b.state) for b in lab.terminal.book] == [
        ("refund", 11 * 499, "approved")
    ]
    assert "approved by" in refund.reason
