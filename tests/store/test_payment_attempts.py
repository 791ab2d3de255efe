"""The payment-attempt journal: durable before the terminal, closed once, never two sales."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from peewee import SqliteDatabase

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.sale import draft_sale
from appliance.core.tender import Tender
from appliance.errors import DocumentError, DomainError
from appliance.store.documents import SalesLedger
from appliance.store.payment_attempts import PaymentAttempts
from tests.store.crash_writer import CURRENCY, DEVICE_ID, POLICY

pytestmark = pytest.mark.usefixtures("catalog")


def _cart(products: dict[str, Product]) -> Cart:
    return Cart(CURRENCY).add(ProductMatch(products["COLA"]), 2)


def _request(cart: Cart, reference: str = "till-1-abc") -> PaymentRequest:
    return PaymentRequest(cart.totals(POLICY).total, CURRENCY, reference)


def _sell(ledger: SalesLedger, cart: Cart, tender: Tender) -> str:
    draft = draft_sale(cart, POLICY, [tender], device_id=DEVICE_ID, now=datetime.now(UTC))
    return ledger.commit(draft).id


def test_an_attempt_is_open_from_before_the_terminal_until_a_sale_carries_it(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)

    journal.begin(request, cart)
    assert [a.state for a in journal.open_attempts()] == ["sent"]
    journal.answered(
        request, PaymentResult("approved", request.merchant_reference, "T-9", "**** 4242")
    )
    attempt = journal.get(request.merchant_reference)
    assert attempt is not None and attempt.state == "approved" and attempt.cart == cart

    # The kiosk's tender carries the terminal's reference; it still finds its attempt.
    sale_id = _sell(ledger, cart, Tender("card", request.amount, reference="T-9"))

    closed = journal.get(request.merchant_reference)
    assert closed is not None and (closed.state, closed.sale_id) == ("paid", sale_id)
    assert journal.open_attempts() == []


def test_a_second_sale_on_one_charge_is_refused_and_leaves_nothing(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)
    journal.answered(request, PaymentResult("unknown", request.merchant_reference))
    tender = Tender("card", request.amount, reference=request.merchant_reference)
    _sell(ledger, cart, tender)

    with pytest.raises(DocumentError, match="already paid"):
        _sell(ledger, cart, tender)
    assert ledger.count() == 1


def test_settled_not_paid_once_and_then_no_sale_may_use_it(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)

    assert journal.settle_not_paid(request.merchant_reference).state == "not_paid"
    with pytest.raises(DomainError, match="already not_paid"):
        journal.settle_not_paid(request.merchant_reference)
    with pytest.raises(DocumentError, match="already not_paid"):
        _sell(ledger, cart, Tender("card", request.amount, reference=request.merchant_reference))
    assert ledger.count() == 0


def test_in_flight_at_shutdown_becomes_unknown_and_a_late_answer_still_lands(
    db: SqliteDatabase, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    first, second = _request(cart, "till-1-a"), _request(cart, "till-1-b")
    journal.begin(first, cart)
    journal.begin(second, cart)
    journal.answered(second, PaymentResult("declined", second.merchant_reference))

    assert journal.abandon_in_flight() == ["till-1-a"]
    journal.answered(first, PaymentResult("approved", first.merchant_reference, "T-1"))

    [open_one] = journal.open_attempts()
    assert (open_one.reference, open_one.state) == ("till-1-a", "approved")
    assert open_one.result() == dataclasses.replace(
        open_one.result(), outcome="approved", terminal_reference="T-1"
    )


def test_a_declined_attempt_cannot_pay_a_sale(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)
    journal.answered(request, PaymentResult("declined", request.merchant_reference, "T-2"))

    with pytest.raises(DocumentError, match="already declined"):
        _sell(ledger, cart, Tender("card", request.amount, reference="T-2"))


def test_card_tenders_without_an_attempt_are_untouched(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    cart = _cart(products)
    _sell(ledger, cart, Tender("card", cart.totals(POLICY).total, reference="elsewhere"))
    assert ledger.count() == 1
