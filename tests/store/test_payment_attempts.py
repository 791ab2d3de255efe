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


def test_an_attempt_is_pending_before_the_terminal_and_settled_with_its_sale(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)

    journal.begin(request, cart)
    assert [a.state for a in journal.open_attempts()] == ["pending"]
    journal.answered(request, _approved(request))
    attempt = journal.get(request.merchant_reference)
    assert attempt is not None and attempt.state == "approved" and attempt.cart == cart
    assert (attempt.card_mask, attempt.card_brand, attempt.receipt_number) == (
        "672559******1234",
        "girocard",
        "0042",
    )

    sale_id = _sell(
        ledger, cart, Tender("card", request.amount, reference=request.merchant_reference)
    )

    closed = journal.get(request.merchant_reference)
    assert closed is not None and (closed.state, closed.sale_id) == ("settled", sale_id)
    assert journal.open_attempts() == []


def test_a_second_sale_on_one_charge_is_refused_and_leaves_nothing(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)
    journal.answered(request, _approved(request))
    tender = Tender("card", request.amount, reference=request.merchant_reference)
    _sell(ledger, cart, tender)

    with pytest.raises(DocumentError, match="is settled"):
        _sell(ledger, cart, tender)
    assert ledger.count() == 1


def test_an_unknown_answer_stays_pending_and_no_sale_may_use_it_until_decided(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)
    journal.answered(request, PaymentResult("unknown", request.merchant_reference, message="gone"))
    tender = Tender("card", request.amount, reference=request.merchant_reference)

    assert [(a.state, a.message) for a in journal.pending()] == [("pending", "gone")]
    with pytest.raises(DocumentError, match="is pending"):
        _sell(ledger, cart, tender)
    assert journal.decide_paid(request.merchant_reference, "Ann").state == "approved"
    _sell(ledger, cart, tender)
    assert ledger.count() == 1


def test_settled_not_paid_once_and_then_no_sale_may_use_it(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)

    assert journal.settle_not_paid(request.merchant_reference).state == "declined"
    with pytest.raises(DomainError, match="already declined"):
        journal.settle_not_paid(request.merchant_reference)
    with pytest.raises(DocumentError, match="is declined"):
        _sell(ledger, cart, Tender("card", request.amount, reference=request.merchant_reference))
    assert ledger.count() == 0


def test_in_flight_at_shutdown_stays_pending_and_a_late_answer_still_lands(
    db: SqliteDatabase, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    first, second = _request(cart, "till-1-a"), _request(cart, "till-1-b")
    journal.begin(first, cart)
    journal.begin(second, cart)
    journal.answered(second, PaymentResult("declined", second.merchant_reference, result_code=5))

    assert journal.abandon_in_flight() == ["till-1-a"]
    journal.answered(first, _approved(first))

    [open_one] = journal.open_attempts()
    assert (open_one.reference, open_one.state) == ("till-1-a", "approved")
    assert open_one.result() == dataclasses.replace(
        _approved(first), message="", receipt_lines=(), amount=first.amount
    )
    declined = journal.get("till-1-b")
    assert declined is not None and (declined.state, declined.result_code) == ("declined", 5)


def test_a_declined_attempt_cannot_pay_a_sale(
    db: SqliteDatabase, ledger: SalesLedger, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request = _request(cart)
    journal.begin(request, cart)
    journal.answered(request, PaymentResult("declined", request.merchant_reference, "T-2"))

    with pytest.raises(DocumentError, match="is declined"):
        _sell(ledger, cart, Tender("card", request.amount, reference=request.merchant_reference))


def test_a_found_charge_and_its_reversal_are_recorded_together_then_reversed(
    db: SqliteDatabase, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    request, reversal = _request(cart, "till-1-a"), _request(cart, "till-1-a-R1")
    journal.begin(request, cart)

    journal.begin_reversal(reversal, request.merchant_reference, _approved(request))
    found = journal.get("till-1-a")
    assert found is not None and (found.state, found.receipt_number) == ("approved", "0042")
    assert journal.reversal_of("till-1-a") == journal.get("till-1-a-R1")
    journal.answered(reversal, _approved(reversal))
    journal.close(reversal.merchant_reference)
    journal.reversed(request.merchant_reference)

    states = {
        a.reference: a.state for a in (journal.get("till-1-a"), journal.get("till-1-a-R1")) if a
    }
    assert states == {"till-1-a": "reversed", "till-1-a-R1": "settled"}
    assert journal.open_attempts() == []


def test_offline_approvals_count_until_the_terminal_submits_them(
    db: SqliteDatabase, products: dict[str, Product]
) -> None:
    journal = PaymentAttempts(db)
    cart = _cart(products)
    for reference in ("till-1-a", "till-1-b"):
        request = _request(cart, reference)
        journal.begin(request, cart)
        journal.answered(request, dataclasses.replace(_approved(request), offline=True))

    usage = journal.offline_usage()
    assert (usage.count, usage.amount) == (2, 2 * cart.totals(POLICY).total)
    assert usage.oldest is not None
    assert journal.submitted_offline() == 2
    assert journal.offline_usage().count == 0


def test_card_tenders_without_an_attempt_are_untouched(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    cart = _cart(products)
    _sell(ledger, cart, Tender("card", cart.totals(POLICY).total, reference="elsewhere"))
    assert ledger.count() == 1


def _approved(request: PaymentRequest) -> PaymentResult:
    return PaymentResult(
        "approved",
        request.merchant_reference,
        "0042",
        "672559******1234",
        card_brand="girocard",
        auth_code="123456",
        terminal_id="52500038",
        trace_number="000077",
        receipt_number="0042",
        result_code=0,
    )
