"""Problems in words a customer understands: unknown item, no paper, no terminal, closed."""

from __future__ import annotations

from appliance.core.barcode import gtin_check_digit
from appliance.core.events import KioskLockChanged
from tests.screens.customer_steps import COFFEE, printer, scan_and_wait
from tests.screens.harness import Kiosk

UNKNOWN = "400000000001" + gtin_check_digit("400000000001")  # valid EAN-13, not sold here
NOT_FOUND = "We could not find this item. Please try again or ask for help."
PAPER_OUT = "The printer is out of paper. Take a QR receipt instead."
CLOSED = "This checkout is closed. Please use another checkout."


def pay_by_card(kiosk: Kiosk) -> None:
    """Scan coffee and pay by card, up to the receipt choice."""
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Pay")
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Card")
    kiosk.wait_for_screen("receipt")


def test_an_unknown_barcode_is_explained_and_nothing_is_added(kiosk: Kiosk) -> None:
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.scan(UNKNOWN)
    kiosk.wait_for(lambda: kiosk.app.session.message == NOT_FOUND, what="the message")
    kiosk.find_text(NOT_FOUND)
    assert len(kiosk.app.cart.rows) == 1


def test_without_paper_print_is_off_and_the_qr_receipt_is_offered(kiosk: Kiosk) -> None:
    printer(kiosk).set_paper_out(True)
    pay_by_card(kiosk)
    kiosk.wait_for(lambda: kiosk.app.receipt.printer_notice == PAPER_OUT, what="the notice")
    kiosk.find_text(PAPER_OUT)
    prints = [w for w in kiosk.widgets() if getattr(w, "text", None) == "Print"]
    assert prints and all(w.disabled for w in prints)
    kiosk.screenshot("customer-receipt-paper-out")
    kiosk.tap_text("QR code")
    kiosk.wait_for_screen("thanks")
    kiosk.wait_for(lambda: kiosk.app.receipt.qr is not None, what="the QR code")
    kiosk.find_text("Scan the code with your phone to keep your receipt.")
    kiosk.screenshot("customer-thanks-qr")
    assert printer(kiosk).jobs == []


def test_a_closed_terminal_leaves_the_other_ways_to_pay(kiosk: Kiosk) -> None:
    terminal = kiosk.services.devices.terminal
    assert terminal is not None
    terminal.close()
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Pay")
    kiosk.wait_for_screen("payment")
    kiosk.wait_for(lambda: not kiosk.app.payment.card_ready, what="the card turned off")
    notice = "The card terminal is not available. Please choose another way to pay."
    kiosk.find_text(notice)
    kiosk.find_text("Store card")
    cards = [w for w in kiosk.widgets() if getattr(w, "text", None) == "Card"]
    assert cards and all(w.disabled for w in cards)
    kiosk.screenshot("customer-payment-no-terminal")


def test_a_locked_kiosk_refuses_scans_until_unlocked(kiosk: Kiosk) -> None:
    bus = kiosk.services.app.bus
    bus.post(KioskLockChanged(True, "cmd-1"))
    kiosk.wait_for_screen("locked")
    kiosk.find_text("This checkout is closed")
    kiosk.screenshot("customer-locked")
    kiosk.scan(COFFEE)
    kiosk.wait_for(lambda: kiosk.app.session.message == CLOSED, what="the refusal")
    assert kiosk.services.app.checkout.cart.is_empty and kiosk.screen == "locked"
    bus.post(KioskLockChanged(False, "cmd-2"))
    kiosk.wait_for_screen("welcome")
