"""Card payments on the real app, offscreen, paid through the ZVT emulator at the wire.

The lab's emulated terminal is the far end of the real ZvtTerminal adapter and its TCP link:
what it booked (its `book`) is compared with the sale documents and the payment journal.
Split tender (card + cash at the till, stored value + card at the kiosk) through the same
terminal is proven in test_split_tender.py.
"""

from __future__ import annotations

from appliance.core.sale import Sale
from appliance.drivers.sim.zvt_terminal import Booked, Step, ZvtEmulator
from appliance.drivers.zvt.result_codes import DECLINED, message_for
from appliance.screens.i18n import tr
from appliance.store.payment_attempts import PaymentAttempt
from tests.screens.customer_steps import COFFEE, COFFEE_NAME, scan_and_wait
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import WATER, euros, log_in_cashier, scan_into_till
from tests.screens.test_staff_refund import choose_one_more, refund_row

COFFEE_PRICE = 499
# The customer takes a moment at the terminal, long enough to see "present the card".
SLOW_CUSTOMER = Step(intermediate=2, pause=0.5)


def emulator(kiosk: Kiosk) -> ZvtEmulator:
    """The lab's emulated terminal, behind the real adapter's TCP link."""
    found = kiosk.lab.terminal
    assert found is not None, "the lab runs no terminal emulator"
    return found


def attempts(kiosk: Kiosk, kind: str = "payment") -> list[PaymentAttempt]:
    """The payment journal's attempts of one kind, oldest first."""
    journal = kiosk.services.app.stores.payments
    rows = kiosk.services.app.db.execute_sql(
        "SELECT reference FROM payment_journal WHERE kind = ? ORDER BY started_utc, reference",
        (kind,),
    ).fetchall()
    found = [journal.get(str(row[0])) for row in rows]
    return [attempt for attempt in found if attempt is not None]


def booked(kiosk: Kiosk, kind: str = "payment") -> list[Booked]:
    """What the terminal booked of one kind (payment, refund, reversal), oldest first."""
    return [entry for entry in emulator(kiosk).book if entry.kind == kind]


def to_card_payment(kiosk: Kiosk) -> None:
    """Coffee in the basket, the payment screen up, card offered (recovery has run)."""
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Pay")
    kiosk.wait_for_screen("payment")
    gate = kiosk.services.app.card_gate
    assert gate is not None
    kiosk.wait_for(lambda: gate.availability.offered and kiosk.app.payment.card_ready, what="card")


def last_sale(kiosk: Kiosk) -> Sale:
    """The last document the ledger committed."""
    sale = kiosk.services.app.ledger.last()
    assert sale is not None
    return sale


def assert_sold_once_by_card(kiosk: Kiosk, attempt: PaymentAttempt) -> Sale:
    """One sale, its card tender naming `attempt`, settled by it; the terminal charged it once."""
    ledger = kiosk.services.app.ledger
    assert ledger.count() == 1
    sale = last_sale(kiosk)
    assert [(t.kind, t.amount, t.reference) for t in sale.tenders] == [
        ("card", sale.total, attempt.reference)
    ]
    assert attempt.state == "settled" and attempt.sale_id == sale.id
    [charge] = [b for b in booked(kiosk) if b.state == "approved"]
    assert (charge.amount, charge.receipt_number) == (sale.total, int(attempt.receipt_number))
    return sale


# -- the kiosk ----------------------------------------------------------------------------


def test_an_approved_card_makes_one_sale_whose_receipt_number_the_journal_keeps(
    kiosk: Kiosk,
) -> None:
    to_card_payment(kiosk)
    kiosk.tap_text("Card")
    kiosk.wait_for_screen("receipt")

    [attempt] = attempts(kiosk)
    sale = assert_sold_once_by_card(kiosk, attempt)
    assert sale.total == COFFEE_PRICE and sale.tenders[0].card_mask.startswith("**** ")
    assert [b.state for b in booked(kiosk)] == ["approved"]
    assert not kiosk.app.session.busy


def test_a_declined_card_says_why_keeps_the_cart_and_the_retry_is_charged_once(
    kiosk: Kiosk,
) -> None:
    emulator(kiosk).script(Step("decline", result_code=DECLINED))
    to_card_payment(kiosk)
    kiosk.tap_text("Card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "declined", what="the decline")
    kiosk.find_text(tr._("Card declined"))
    reason = tr.message(message_for(DECLINED))  # the terminal's result code, in plain words
    kiosk.find_text(tr._("{reason} Try again, or choose another way to pay.").format(reason=reason))
    kiosk.screenshot("customer-payment-declined-at-terminal")
    [declined] = attempts(kiosk)
    assert declined.state == "declined" and declined.result_code == DECLINED
    assert declined.message == message_for(DECLINED)
    assert [line.sku for line in kiosk.services.app.checkout.cart.lines] == ["COFFEE-250"]
    assert kiosk.services.app.ledger.count() == 0 and not kiosk.app.session.busy

    kiosk.tap_text(tr._("Try again"))
    kiosk.wait_for_screen("receipt")
    first, second = attempts(kiosk)
    assert first.reference == declined.reference and first.state == "declined"
    assert_sold_once_by_card(kiosk, second)
    assert [b.state for b in booked(kiosk)] == ["declined", "approved"]


def test_a_customer_abort_at_the_terminal_cancels_and_charges_nothing(kiosk: Kiosk) -> None:
    emulator(kiosk).script(Step("customer_abort"))
    to_card_payment(kiosk)
    kiosk.tap_text("Card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "cancelled", what="the cancel")
    kiosk.find_text(tr._("Payment cancelled"))
    kiosk.find_text(tr._("The payment was cancelled. Nothing was charged."))
    [attempt] = attempts(kiosk)
    assert attempt.state == "declined" and attempt.sale_id is None
    assert [b for b in booked(kiosk) if b.state == "approved"] == []
    assert kiosk.services.app.ledger.count() == 0 and not kiosk.app.session.busy
    assert len(kiosk.services.app.checkout.cart.lines) == 1


# -- the staff till: money back to the card -------------------------------------------


def sell_by_card_at_the_till(staff_till: Kiosk, *codes: str) -> Sale:
    """The cashier scans `codes` and takes the card through the terminal; the sale."""
    log_in_cashier(staff_till)
    scan_into_till(staff_till, *codes)
    staff_till.tap_text(tr._("Card"))
    staff_till.wait_for_screen("payment")
    gate = staff_till.services.app.card_gate
    assert gate is not None
    staff_till.wait_for(lambda: gate.availability.offered, what="card offered")
    staff_till.tap_text(tr._("Card"))
    staff_till.wait_for_screen("receipt")
    [attempt] = attempts(staff_till)
    return assert_sold_once_by_card(staff_till, attempt)


def open_refund(staff_till: Kiosk, sale: Sale) -> None:
    """The refund screen with `sale` found."""
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")
    staff_till.tap_text(tr._("Refund"))
    staff_till.wait_for_screen("refund")
    staff_till.scan(sale.receipt_number)  # the receipt's barcode, through the scanner
    staff_till.wait_for(lambda: staff_till.app.refund.found, what="the sale")


def refund_to_card(staff_till: Kiosk) -> Sale:
    """Touch "Refund to the card" while the customer takes a moment; the refund document."""
    emulator(staff_till).script(SLOW_CUSTOMER)
    staff_till.tap_text(tr._("Refund to the card"))
    staff_till.find_text(tr._("Ask the customer to present their card at the terminal."))
    staff_till.screenshot("staff-refund-to-card-waiting")
    staff_till.wait_for_screen("receipt")
    refund = last_sale(staff_till)
    assert refund.kind == "refund"
    return refund


def test_a_whole_refund_the_same_day_is_a_reversal_that_its_refund_document_settles(
    staff_till: Kiosk,
) -> None:
    sale = sell_by_card_at_the_till(staff_till, COFFEE)
    [payment] = attempts(staff_till)
    open_refund(staff_till, sale)
    staff_till.tap_text(tr._("Everything not yet refunded"))
    staff_till.find_text(euros(COFFEE_PRICE))
    staff_till.screenshot("staff-refund-to-card")
    refund = refund_to_card(staff_till)

    [reversal] = attempts(staff_till, "reversal")
    assert reversal.original_reference == payment.reference
    assert reversal.state == "settled" and reversal.sale_id == refund.id
    assert refund.references == sale.id and refund.total == -COFFEE_PRICE
    assert [(t.kind, t.amount, t.reference) for t in refund.tenders] == [
        ("card", -COFFEE_PRICE, reversal.reference)
    ]
    [undone] = booked(staff_till)
    assert (undone.state, undone.receipt_number) == ("reversed", int(payment.receipt_number))
    [booking] = booked(staff_till, "reversal")
    assert (booking.state, booking.amount) == ("approved", COFFEE_PRICE)
    assert booked(staff_till, "refund") == []


def test_a_partial_refund_is_a_terminal_refund_that_its_refund_document_settles(
    staff_till: Kiosk,
) -> None:
    sale = sell_by_card_at_the_till(staff_till, COFFEE, WATER)
    [payment] = attempts(staff_till)
    open_refund(staff_till, sale)
    refund_row(staff_till, COFFEE_NAME)
    choose_one_more(staff_till, COFFEE_NAME)
    staff_till.find_text(euros(COFFEE_PRICE))
    refund = refund_to_card(staff_till)

    [paid_back] = attempts(staff_till, "refund")
    assert paid_back.original_reference == payment.reference and paid_back.amount == COFFEE_PRICE
    assert paid_back.state == "settled" and paid_back.sale_id == refund.id
    assert refund.total == -COFFEE_PRICE
    assert [(t.kind, t.amount, t.reference) for t in refund.tenders] == [
        ("card", -COFFEE_PRICE, paid_back.reference)
    ]
    [charge] = booked(staff_till)
    assert (charge.state, charge.amount) == ("approved", sale.total)
    [booking] = booked(staff_till, "refund")
    assert (booking.state, booking.amount) == ("approved", COFFEE_PRICE)
    assert booked(staff_till, "reversal") == []
