"""Split tender on the real app: one sale, several tenders, and an approved card part never lost.

The staff till takes part of a sale by card and the rest in cash; the kiosk takes what a
stored-value card holds and the rest by bank card. The card parts go through the terminal
the harness runs, and the payment journal shows what happened to each.
"""

from __future__ import annotations

from typing import Any

from appliance.core.card_payment import receipt_mask
from appliance.core.tender import Tender
from appliance.drivers.sim.lab import TERMINAL_STEPS
from appliance.errors import StoreError
from appliance.screens.i18n import tr
from appliance.store.stored_value import StoredValueAccounts
from tests.screens.customer_steps import COFFEE, tap_card
from tests.screens.harness import Kiosk
from tests.screens.test_card_flows import attempts, emulator, to_card_payment
from tests.screens.test_staff_flows import (
    WATER,
    current_screen,
    euros,
    keypad_in,
    log_in_cashier,
    scan_into_till,
    shown_button,
    type_on,
)

SHORT_CARD = "04CAFE00000077"  # a stored-value card holding less than the coffee costs


def script_terminal(kiosk: Kiosk, *outcomes: str) -> None:
    """What the next card attempts end as ("approve", "decline", ...); then approvals."""
    emulator(kiosk).script(*(TERMINAL_STEPS[outcome] for outcome in outcomes))


def fail_commits(kiosk: Kiosk, times: int) -> list[str]:
    """The next `times` sale commits raise StoreError; the list collects every commit tried."""
    ledger = kiosk.services.app.ledger
    commit = ledger.commit
    tried: list[str] = []

    def failing(draft: Any) -> Any:
        tried.append(draft.tenders[0].kind if draft.tenders else "")
        if len(tried) <= times:
            raise StoreError("disk full")
        return commit(draft)

    ledger.commit = failing  # type: ignore[method-assign]
    return tried


# -- the staff till: card plus cash ------------------------------------------------------


def to_cash_with_card(staff_till: Kiosk) -> None:
    """Coffee and water (6.28) on the till, the cash screen up, card offered."""
    log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE, WATER)
    staff_till.tap_text(tr._("Cash"))
    staff_till.wait_for_screen("cash")
    staff_till.wait_for(lambda: staff_till.app.cash.card_offered, what="card offered")


def card_part(staff_till: Kiosk, digits: str = "") -> None:
    """Type an amount (or none: all still due) and touch Card for part."""
    if digits:
        type_on(staff_till, keypad_in(current_screen(staff_till)), digits)
    staff_till.tap_text(tr._("Card for part"))


def hold_card_part(staff_till: Kiosk, digits: str = "") -> Any:
    """On the cash screen with card offered: a card part approved; the cash presenter."""
    to_cash_with_card(staff_till)
    cash = staff_till.app.cash
    card_part(staff_till, digits)
    staff_till.wait_for(lambda: cash.card_state == "held", what="the card part approved")
    return cash


def test_card_part_and_cash_rest_make_one_sale_that_settles_the_attempt(
    staff_till: Kiosk,
) -> None:
    cash = hold_card_part(staff_till, "300")
    [attempt] = attempts(staff_till)
    mask = receipt_mask(attempt.card_mask)
    assert mask.startswith("**** ")
    staff_till.find_text(tr._("Card {card}: {amount}").format(card=mask, amount=euros(300)))
    assert cash.due == 628 - 300 and cash.due_text == euros(328)
    assert staff_till.app.session.busy
    staff_till.screenshot("staff-cash-split")

    staff_till.tap_text(euros(500))  # the rest in cash: change on the cash part only
    staff_till.find_text(euros(500 - 328))
    staff_till.tap_text(tr._("Complete sale"))
    staff_till.wait_for_screen("receipt")

    sale = staff_till.services.app.ledger.last()
    assert sale is not None and staff_till.services.app.ledger.count() == 1
    [attempt] = attempts(staff_till)
    assert sale.tenders == (
        Tender("card", 300, reference=attempt.reference, card_mask=mask),
        Tender("cash", 328, tendered=500),
    )
    assert sale.change == 500 - 328
    assert attempt.state == "settled" and attempt.sale_id == sale.id and attempt.amount == 300
    assert not staff_till.app.session.busy


def test_a_declined_card_part_leaves_the_due_and_makes_no_sale(staff_till: Kiosk) -> None:
    to_cash_with_card(staff_till)
    script_terminal(staff_till, "decline")
    cash = staff_till.app.cash
    card_part(staff_till, "300")
    staff_till.wait_for(lambda: attempts(staff_till), what="the attempt journalled")
    staff_till.wait_for(
        lambda: cash.card_state == "none" and attempts(staff_till)[0].state == "declined",
        what="the decline",
    )
    staff_till.wait_for(
        lambda: (
            staff_till.app.session.message == tr._("The card was declined. Nothing was charged.")
        ),
        what="the decline said",
    )
    assert cash.due == 628 and cash.card_part_text == "" and cash.card_offered
    assert staff_till.services.app.ledger.count() == 0
    assert not staff_till.app.session.busy
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")


def test_a_failed_commit_keeps_the_card_part_and_a_retry_commits_once(
    staff_till: Kiosk,
) -> None:
    tried = fail_commits(staff_till, 1)
    cash = hold_card_part(staff_till)  # nothing typed: all that is due
    assert cash.due == 0 and cash.can_complete
    staff_till.tap_text(tr._("Complete sale"))
    staff_till.wait_for(lambda: tried and not cash.saving, what="the failed commit")
    assert staff_till.screen == "cash" and cash.card_state == "held"
    assert staff_till.services.app.ledger.count() == 0
    [attempt] = attempts(staff_till)
    assert attempt.state == "approved"
    staff_till.screenshot("staff-cash-split-commit-failed")

    staff_till.tap_text(tr._("Complete sale"))
    staff_till.wait_for_screen("receipt")
    # The terminal was asked once: one attempt, and it paid the one sale.
    [attempt] = attempts(staff_till)
    sale = staff_till.services.app.ledger.last()
    assert sale is not None and staff_till.services.app.ledger.count() == 1
    assert [(t.kind, t.amount, t.reference) for t in sale.tenders] == [
        ("card", 628, attempt.reference)
    ]
    assert attempt.state == "settled" and attempt.sale_id == sale.id
    assert tried == ["card", "card"]


def test_the_card_part_holds_the_screen_until_undone_at_the_terminal(
    staff_till: Kiosk,
) -> None:
    cash = hold_card_part(staff_till, "200")
    assert shown_button(staff_till, tr._("Back to the till")).disabled
    cash.cancel()  # even when asked directly, the screen stays
    staff_till.pump(2)
    assert staff_till.screen == "cash"
    assert staff_till.app.session.message == tr._("Complete the sale, or undo the card part first.")

    staff_till.tap_text(tr._("Undo card part"))
    staff_till.wait_for(lambda: cash.card_state == "none", what="the card part undone")
    assert cash.due == 628 and cash.card_part_text == ""
    [payment] = attempts(staff_till)
    [reversal] = attempts(staff_till, "reversal")
    assert payment.state == "reversed"
    assert reversal.original_reference == payment.reference and reversal.state == "settled"
    # The terminal's own book shows the charge undone.
    book = emulator(staff_till).book
    assert [(b.kind, b.amount) for b in book] == [("payment", 200), ("reversal", 200)]
    assert not staff_till.app.session.busy
    staff_till.tap_text(tr._("Back to the till"))
    staff_till.wait_for_screen("till")
    assert staff_till.services.app.ledger.count() == 0


def test_card_for_part_is_off_with_the_gates_reason_while_the_terminal_is_gone(
    staff_till: Kiosk,
) -> None:
    to_cash_with_card(staff_till)
    cash = staff_till.app.cash
    device = staff_till.services.devices.terminal
    assert device is not None
    device.close()  # offline: the gate posts CardAvailability and the screen follows it
    staff_till.wait_for(lambda: not cash.card_offered, what="card off")
    gate = staff_till.services.app.card_gate
    assert gate is not None and not gate.availability.offered
    reason = gate.availability.reason
    staff_till.find_text(tr._("Card is not available: {reason}").format(reason=reason))
    assert shown_button(staff_till, tr._("Card for part")).disabled
    cash.card_part()  # asked directly all the same: nothing goes to the terminal
    staff_till.pump(2)
    assert cash.card_state == "none" and attempts(staff_till) == []


# -- the kiosk: stored value plus bank card ------------------------------------------------


def to_split_offer(kiosk: Kiosk) -> StoredValueAccounts:
    """Coffee (4.99) in the basket, a stored-value card with 1.00 tapped: the split offered."""
    accounts = StoredValueAccounts(kiosk.services.app.db, "EUR")
    accounts.top_up(SHORT_CARD, 100, reference="test-opening-balance")
    to_card_payment(kiosk)
    kiosk.tap_text("Store card")
    tap_card(kiosk, SHORT_CARD)
    kiosk.wait_for(lambda: kiosk.app.payment.state == "split_offer", what="the split offered")
    kiosk.find_text(
        tr._(
            "Your card has {balance}, which is not enough. Please choose another way to pay."
        ).format(balance=euros(100))
    )
    assert accounts.balance(SHORT_CARD) == 100 and attempts(kiosk) == []
    return accounts


def fail_debits(kiosk: Kiosk, times: int) -> list[str]:
    """The next `times` stored-value debits raise StoreError; the list collects every try."""
    accounts = kiosk.services.app.stores.stored_value
    debit = accounts.debit
    tried: list[str] = []

    def failing(uid: str, amount: int, reference: str) -> int:
        tried.append(uid)
        if len(tried) <= times:
            raise StoreError("disk full")
        return debit(uid, amount, reference)

    accounts.debit = failing  # type: ignore[method-assign]
    return tried


def split_offer_text() -> str:
    """The split's button for the 1.00 card."""
    return tr._("Pay {balance} with this card and the rest by card").format(balance=euros(100))


def test_a_short_stored_value_card_pays_its_balance_and_a_bank_card_the_rest(
    kiosk: Kiosk,
) -> None:
    accounts = to_split_offer(kiosk)
    kiosk.screenshot("customer-payment-split-offer")
    kiosk.tap_text(split_offer_text())
    kiosk.wait_for_screen("receipt")

    sale = kiosk.services.app.ledger.last()
    assert sale is not None and kiosk.services.app.ledger.count() == 1
    [attempt] = attempts(kiosk)
    assert [(t.kind, t.amount) for t in sale.tenders] == [("card", 399), ("stored_value", 100)]
    assert sale.tenders[0].reference == attempt.reference
    assert attempt.amount == 399 and attempt.state == "settled" and attempt.sale_id == sale.id
    assert accounts.balance(SHORT_CARD) == 0
    assert not kiosk.app.session.busy


def test_a_failed_stored_value_debit_keeps_the_approved_card_part_for_a_retry(
    kiosk: Kiosk,
) -> None:
    accounts = to_split_offer(kiosk)
    tried = fail_debits(kiosk, 1)
    kiosk.tap_text(split_offer_text())
    kiosk.wait_for(lambda: kiosk.app.payment.state == "split_failed", what="the failed debit")
    kiosk.find_text(
        tr._("Your card paid {amount}, but your store card could not be charged.").format(
            amount=euros(399)
        )
    )
    [attempt] = attempts(kiosk)
    assert attempt.state == "approved" and attempt.sale_id is None
    assert kiosk.services.app.ledger.count() == 0 and accounts.balance(SHORT_CARD) == 100
    assert kiosk.app.session.busy
    kiosk.screenshot("customer-payment-split")

    kiosk.tap_text(tr._("Try the card again"))
    kiosk.wait_for_screen("receipt")
    [attempt] = attempts(kiosk)  # the bank card was asked once
    sale = kiosk.services.app.ledger.last()
    assert sale is not None and kiosk.services.app.ledger.count() == 1
    assert [(t.kind, t.amount) for t in sale.tenders] == [("card", 399), ("stored_value", 100)]
    assert attempt.state == "settled" and attempt.sale_id == sale.id
    assert tried == [SHORT_CARD, SHORT_CARD] and accounts.balance(SHORT_CARD) == 0


def test_cancelling_a_failed_split_reverses_the_card_part_before_the_cart_is_free(
    kiosk: Kiosk,
) -> None:
    accounts = to_split_offer(kiosk)
    fail_debits(kiosk, 99)
    kiosk.tap_text(split_offer_text())
    kiosk.wait_for(lambda: kiosk.app.payment.state == "split_failed", what="the failed debit")
    kiosk.tap_text(tr._("Cancel"))
    kiosk.wait_for(lambda: kiosk.app.payment.state == "choose", what="the card part undone")
    kiosk.find_text(tr._("Your card payment was undone. Nothing was charged."))
    [payment] = attempts(kiosk)
    [reversal] = attempts(kiosk, "reversal")
    assert payment.state == "reversed" and reversal.state == "settled"
    assert reversal.original_reference == payment.reference
    assert kiosk.services.app.ledger.count() == 0 and accounts.balance(SHORT_CARD) == 100
    assert not kiosk.app.session.busy
