"""Whole self-checkout sales on the real app: scanner bytes, touches, the simulators."""

from __future__ import annotations

import threading
from collections.abc import Callable

from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.drivers.sim.lab import TERMINAL_STEPS
from appliance.drivers.sim.zvt_terminal import ZvtEmulator
from appliance.service.demo import (
    DEMO_CASHIER_BADGE,
    DEMO_CASHIER_PIN,
    DEMO_STORED_VALUE_CARD,
    DEMO_SUPERVISOR_BADGE,
)
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts
from tests.screens.customer_steps import (
    CHOCOLATE,
    CHOCOLATE_NAME,
    COFFEE,
    COFFEE_NAME,
    WINE,
    cart_row,
    printer,
    scan_and_wait,
    tap_card,
    tap_in,
    type_pin,
)
from tests.screens.harness import Kiosk

WRONG_PIN = "2468"
SHORT_PIN = "12"  # no one's PIN, refused without a slow hash check: a quick wrong try


def emulator(kiosk: Kiosk) -> ZvtEmulator:
    """The lab's ZVT terminal emulator the kiosk pays at."""
    lab = kiosk.services.app.lab
    assert lab is not None and lab.terminal is not None
    return lab.terminal


def record_payments(kiosk: Kiosk) -> list[tuple[PaymentRequest, PaymentResult]]:
    """Every payment the terminal adapter runs, with its answer (the emulator still runs it)."""
    terminal = kiosk.services.devices.terminal
    assert terminal is not None
    pay: Callable[..., PaymentResult] = terminal.pay
    seen: list[tuple[PaymentRequest, PaymentResult]] = []

    def recording(request: PaymentRequest, *args: object, **kwargs: object) -> PaymentResult:
        result = pay(request, *args, **kwargs)
        seen.append((request, result))
        return result

    terminal.pay = recording  # type: ignore[method-assign]
    return seen


def to_payment(kiosk: Kiosk, *codes: str) -> None:
    """Scan `codes` and touch Pay."""
    for n, code in enumerate(codes, start=1):
        scan_and_wait(kiosk, code, n)
    kiosk.wait_for_screen("shop")
    kiosk.tap_text("Pay")


def staff_id(kiosk: Kiosk, badge: str) -> str:
    """The demo staff member carrying `badge`."""
    member = StaffDirectory(kiosk.services.app.db).by_badge(badge)
    assert member is not None
    return member.staff_id


def test_a_card_sale_prints_its_receipt_and_returns_to_welcome(kiosk: Kiosk) -> None:
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.wait_for_screen("shop")
    scan_and_wait(kiosk, CHOCOLATE, 2)
    tap_in(kiosk, cart_row(kiosk, COFFEE_NAME), "+")
    kiosk.wait_for(lambda: cart_row(kiosk, COFFEE_NAME).quantity == "2", what="two coffees")
    tap_in(kiosk, cart_row(kiosk, COFFEE_NAME), "-")
    kiosk.wait_for(lambda: cart_row(kiosk, COFFEE_NAME).quantity == "1", what="one coffee")
    kiosk.tap_text("Pay")
    kiosk.wait_for_screen("payment")
    kiosk.find_text("To pay: 7,18\xa0€")
    kiosk.screenshot("customer-payment-choose")
    kiosk.tap_text("Card")
    kiosk.wait_for_screen("receipt")
    kiosk.wait_for(lambda: kiosk.app.receipt.can_print, what="Print offered")
    kiosk.screenshot("customer-receipt-choose")
    sale = kiosk.services.app.ledger.last()
    assert sale is not None and sale.total == 718
    kiosk.tap_text("Print")
    kiosk.wait_for_screen("thanks")
    kiosk.screenshot("customer-thanks-printed")
    printed = "\n".join(printer(kiosk).wait_for_jobs(1)[0].lines)
    assert sale.receipt_number in printed
    assert COFFEE_NAME in printed and CHOCOLATE_NAME in printed
    kiosk.tap_text("Thank you for shopping with us!")
    kiosk.wait_for_screen("welcome")
    assert kiosk.services.app.ledger.count() == 1
    assert [(t.kind, t.amount) for t in sale.tenders] == [("card", 718)]
    assert kiosk.services.app.checkout.cart.is_empty


def test_wine_waits_for_a_staff_badge_and_the_sale_names_the_approver(kiosk: Kiosk) -> None:
    to_payment(kiosk, WINE)
    kiosk.wait_for_screen("age_check")
    kiosk.find_text("1 item in your basket needs an ID check.")
    kiosk.screenshot("customer-age_check-waiting")
    type_pin(kiosk, WRONG_PIN)
    kiosk.wait_for(
        lambda: kiosk.app.staff_check.message == "That PIN is not right. Please try again.",
        what="the wrong PIN refused",
    )
    kiosk.screenshot("customer-age_check-wrong-pin")
    assert kiosk.screen == "age_check" and kiosk.app.cart.needs_age_check
    tap_card(kiosk, DEMO_CASHIER_BADGE)
    kiosk.wait_for_screen("payment")
    cashier = staff_id(kiosk, DEMO_CASHIER_BADGE)
    assert [ln.age_approved_by for ln in kiosk.services.app.checkout.cart.lines] == [cashier]
    kiosk.tap_text("Card")
    kiosk.wait_for_screen("receipt")
    sale = kiosk.services.app.ledger.last()
    assert sale is not None and sale.staff == cashier
    assert [line.sku for line in sale.lines] == ["WINE-RED"]


def test_five_wrong_pins_lock_pins_out_and_the_wine_can_be_taken_off(kiosk: Kiosk) -> None:
    to_payment(kiosk, COFFEE, WINE)
    kiosk.wait_for_screen("age_check")
    for attempt in range(5):
        type_pin(kiosk, SHORT_PIN)
        kiosk.wait_for(lambda: not kiosk.app.staff_check.checking, what=f"PIN {attempt} checked")
    assert kiosk.app.staff_check.lockout_left == 30
    type_pin(kiosk, DEMO_CASHIER_PIN)  # right, but refused during the lockout
    kiosk.pump(5)
    assert kiosk.screen == "age_check"
    assert kiosk.app.staff_check.message.startswith("Too many wrong PINs.")
    kiosk.screenshot("customer-age_check-locked-out")
    kiosk.tap_text("Remove the restricted items")
    kiosk.wait_for_screen("payment")
    assert [line.sku for line in kiosk.services.app.checkout.cart.lines] == ["COFFEE-250"]


def test_a_declined_card_can_be_tried_again_and_is_charged_once(kiosk: Kiosk) -> None:
    emulator(kiosk).script(TERMINAL_STEPS["decline"], TERMINAL_STEPS["approve"])
    payments = record_payments(kiosk)
    to_payment(kiosk, COFFEE)
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "declined", what="the decline")
    kiosk.find_text("Card declined")
    kiosk.screenshot("customer-payment-declined")
    assert kiosk.services.app.ledger.count() == 0
    kiosk.tap_text("Try again")
    kiosk.wait_for_screen("receipt")
    assert [result.outcome for _request, result in payments] == ["declined", "approved"]
    first, second = (request.merchant_reference for request, _result in payments)
    assert first != second
    sale = kiosk.services.app.ledger.last()
    assert kiosk.services.app.ledger.count() == 1 and sale is not None
    assert [t.reference for t in sale.tenders] == [payments[1][0].merchant_reference]
    assert sale.tenders[0].card_mask == "**** 1234"  # the emulator's girocard, last 4 only


def pay_into_doubt(kiosk: Kiosk) -> None:
    """Card, then the terminal goes away mid-payment: the outcome is unknown, nobody to ask."""
    terminal = emulator(kiosk)
    terminal.script(TERMINAL_STEPS["timeout"])  # it waits for the card, silent
    to_payment(kiosk, COFFEE)
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "waiting", what="the terminal")
    kiosk.find_text("Follow the instructions on the card terminal.")
    assert kiosk.app.session.busy
    kiosk.screenshot("customer-payment-waiting")
    terminal.close()  # the link drops after the terminal took the payment
    kiosk.wait_for(lambda: kiosk.app.payment.state == "unknown", what="the unknown outcome")
    gate = kiosk.services.app.card_gate
    assert gate is not None
    # Recovery cannot ask a terminal that is gone: the payment waits for staff.
    kiosk.wait_for(lambda: gate.unresolved != (), what="recovery gave it to staff")


def test_an_unknown_outcome_locks_the_cart_until_staff_decide_not_taken(kiosk: Kiosk) -> None:
    pay_into_doubt(kiosk)
    kiosk.find_text("We could not confirm the payment. Please ask a member of staff.")
    kiosk.screenshot("customer-payment-unknown")
    shown = {getattr(w, "text", "") for w in kiosk.widgets() if kiosk.visible(w)}
    assert not shown & {"Try again", "Card", "Back to basket", "Store card"}
    assert kiosk.app.session.busy
    kiosk.scan(CHOCOLATE)  # the cart is locked
    kiosk.wait_for(lambda: "finish paying" in kiosk.app.session.message, what="the refusal")
    assert len(kiosk.services.app.checkout.cart.lines) == 1

    type_pin(kiosk, DEMO_CASHIER_PIN)
    kiosk.wait_for(lambda: kiosk.app.payment.state == "resolve", what="staff deciding")
    kiosk.screenshot("customer-payment-resolve")
    kiosk.tap_text("Not taken")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "choose", what="the methods again")
    assert kiosk.services.app.ledger.count() == 0 and not kiosk.app.session.busy
    journal = kiosk.services.app.stores.payments
    kiosk.wait_for(lambda: journal.open_attempts() == [], what="the attempt declined")


def test_an_unknown_outcome_staff_saw_taken_becomes_one_sale(kiosk: Kiosk) -> None:
    payments = record_payments(kiosk)
    pay_into_doubt(kiosk)
    tap_card(kiosk, DEMO_SUPERVISOR_BADGE)
    kiosk.wait_for(lambda: kiosk.app.payment.state == "resolve", what="the supervisor deciding")
    kiosk.tap_text("Payment was taken")
    kiosk.wait_for_screen("receipt")
    assert [result.outcome for _request, result in payments] == ["unknown"]
    sale = kiosk.services.app.ledger.last()
    assert kiosk.services.app.ledger.count() == 1 and sale is not None
    assert [t.reference for t in sale.tenders] == [payments[0][0].merchant_reference]
    attempt = kiosk.services.app.stores.payments.get(payments[0][0].merchant_reference)
    assert attempt is not None and (attempt.state, attempt.sale_id) == ("settled", sale.id)
    assert sale.staff == staff_id(kiosk, DEMO_SUPERVISOR_BADGE)
    assert not kiosk.app.session.busy


def test_a_sale_that_cannot_be_stored_is_retried_without_charging_again(kiosk: Kiosk) -> None:
    from appliance.errors import StoreError

    payments = record_payments(kiosk)
    ledger = kiosk.services.app.ledger
    commit = ledger.commit
    failures = [StoreError("disk full")]

    stored_on: list[str] = []

    def failing_once(draft: object) -> object:
        stored_on.append(threading.current_thread().name)
        if failures:
            raise failures.pop()
        return commit(draft)  # type: ignore[arg-type]

    ledger.commit = failing_once  # type: ignore[method-assign,assignment]
    to_payment(kiosk, COFFEE)
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "commit_failed", what="the failed commit")
    kiosk.find_text("Your payment went through.")
    kiosk.screenshot("customer-payment-commit-failed")
    assert kiosk.app.session.busy and ledger.count() == 0
    kiosk.tap_text("Try again")
    kiosk.wait_for_screen("receipt")
    assert len(payments) == 1 and ledger.count() == 1
    # Both attempts waited for the disk on the writer thread, never in a frame.
    assert len(stored_on) == 2 and all(name.startswith("store-writes") for name in stored_on)


def test_a_stored_value_card_pays_once_and_a_poor_card_is_refused(kiosk: Kiosk) -> None:
    accounts = StoredValueAccounts(kiosk.services.app.db, "EUR")
    poor = "04CAFE00000099"
    accounts.top_up(poor, 100, reference="test-opening-balance")
    to_payment(kiosk, COFFEE)
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Store card")
    kiosk.find_text("Hold your card to the card reader.")
    kiosk.screenshot("customer-payment-tap-card")
    tap_card(kiosk, poor)
    kiosk.wait_for(lambda: "not enough" in kiosk.app.payment.notice, what="the refusal")
    kiosk.find_text(
        "Your card has 1,00\xa0€, which is not enough. Please choose another way to pay."
    )
    kiosk.screenshot("customer-payment-card-refused")
    assert accounts.balance(poor) == 100
    tap_card(kiosk, DEMO_STORED_VALUE_CARD)
    kiosk.wait_for_screen("receipt")
    sale = kiosk.services.app.ledger.last()
    assert sale is not None and kiosk.services.app.ledger.count() == 1
    assert [(t.kind, t.amount) for t in sale.tenders] == [("stored_value", 499)]
    assert accounts.balance(DEMO_STORED_VALUE_CARD) == 5000 - 499


def test_a_scan_on_the_receipt_screen_is_the_next_customer_starting_a_sale(kiosk: Kiosk) -> None:
    """The last customer walked off without choosing a receipt: the next one just scans."""
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.tap_text("Pay")
    kiosk.wait_for_screen("payment")
    kiosk.tap_text("Card")
    kiosk.wait_for_screen("receipt")
    first = kiosk.services.app.ledger.last()

    kiosk.scan(CHOCOLATE)

    kiosk.wait_for_screen("shop")
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == 1, what="the new sale's line")
    assert [line.name for line in kiosk.services.app.checkout.cart.lines] == [CHOCOLATE_NAME]
    assert kiosk.services.app.ledger.last() == first, "the stored sale stays as it was"
