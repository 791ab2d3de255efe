"""Resuming a parked cart on the till: only onto an empty till, announced like any change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.checkout import CartChanged, Checkout
from appliance.core.discount import Discount
from appliance.core.events import EventBus
from appliance.core.money import Money
from appliance.core.sale import Sale, SaleDraft
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.errors import CartError

POLICY = TaxPolicy.of({"standard": 2000}, prices_include_tax=True, rounding="line")
COLA = Product("COLA", "Cola", Money(250, "EUR"), "standard")
SOAP = Product("SOAP", "Soap", Money(199, "EUR"), "standard")


class Catalog:
    """Finds the two products by SKU."""

    def by_barcode_key(self, key: str) -> Product | None:
        """No barcodes here."""
        return None

    def by_sku(self, sku: str) -> Product | None:
        """COLA or SOAP."""
        return {"COLA": COLA, "SOAP": SOAP}.get(sku)


class Recorder:
    """Seals drafts in order, as the ledger would."""

    def commit(self, draft: SaleDraft) -> Sale:
        """Number the draft 1."""
        return draft.seal(1, "T-000001")


class Clock:
    """A fixed moment."""

    def now(self) -> datetime:
        """Always the same time."""
        return datetime(2024, 5, 1, 12, tzinfo=UTC)

    def monotonic(self) -> float:
        """Never moves."""
        return 0.0


def changes(bus: EventBus) -> list[CartChanged]:
    """The CartChanged events posted so far."""
    seen: list[CartChanged] = []
    bus.subscribe(CartChanged, seen.append)
    bus.drain()
    return seen


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def checkout(bus: EventBus) -> Checkout:
    return Checkout(
        Catalog(), Recorder(), POLICY, currency="EUR", device_id="till-1", clock=Clock(), bus=bus
    )


def parked() -> Cart:
    """A cart with two lines, a line discount and a cart discount."""
    cart = Cart("EUR").add(ProductMatch(COLA), 3).add(ProductMatch(SOAP))
    cart = cart.discount_line(2, Discount.percent(1000, "dented"))
    return cart.discount_all(Discount.fixed(50, "regular"))


def test_a_parked_cart_resumes_onto_an_empty_till_and_can_be_paid(
    checkout: Checkout, bus: EventBus
) -> None:
    cart = parked()
    assert checkout.resume(cart) == cart
    assert checkout.cart == cart
    assert changes(bus) == [CartChanged(2, cart.totals(POLICY).total)]
    # It carries on like any cart: the next line gets the next id, and it can be paid.
    checkout.scan("COLA")
    assert checkout.cart.line(1).quantity == 4
    sale = checkout.pay([Tender("card", checkout.totals().total)])
    assert [line.sku for line in sale.lines] == ["COLA", "SOAP"]
    assert checkout.cart.is_empty


def test_resuming_onto_a_till_with_a_cart_is_refused_and_keeps_that_cart(
    checkout: Checkout, bus: EventBus
) -> None:
    checkout.scan("SOAP")
    before = checkout.cart
    changes(bus)
    with pytest.raises(CartError, match="park the cart in progress"):
        checkout.resume(parked())
    assert checkout.cart == before
    assert not bus.drain(), "a refused resume announced a change"


def test_a_cart_in_another_currency_is_refused(checkout: Checkout) -> None:
    with pytest.raises(CartError, match="CHF"):
        checkout.resume(Cart("CHF"))
    assert checkout.cart == Cart("EUR")
