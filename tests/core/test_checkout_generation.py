"""A weight read for one sale never lands in the next: Checkout.generation."""

from __future__ import annotations

import pytest

from appliance.core.catalog import Product, ProductMatch
from appliance.core.checkout import Checkout
from appliance.core.events import EventBus
from appliance.core.money import Money
from appliance.core.tender import Tender
from appliance.errors import CartError
from tests.core.test_checkout_resume import POLICY, Catalog, Clock, Recorder, parked

BANANAS = Product("BANANAS", "Bananas", Money(199, "EUR"), "standard", sold_by="kg")


@pytest.fixture
def checkout() -> Checkout:
    return Checkout(
        Catalog(),
        Recorder(),
        POLICY,
        currency="EUR",
        device_id="till-1",
        clock=Clock(),
        bus=EventBus(),
    )


def test_a_weight_for_the_sale_in_progress_is_added(checkout: Checkout) -> None:
    checkout.scan("COLA")
    generation = checkout.generation
    checkout.scan("SOAP")  # other changes to the same sale keep it
    checkout.add_weighed(ProductMatch(BANANAS), 1000, generation=generation)
    assert [line.sku for line in checkout.cart.lines] == ["COLA", "SOAP", "BANANAS"]


def test_a_weight_for_a_paid_sale_is_refused(checkout: Checkout) -> None:
    checkout.scan("COLA")
    generation = checkout.generation
    checkout.pay([Tender("card", checkout.totals().total)])
    with pytest.raises(CartError, match="the sale it was weighed for has ended"):
        checkout.add_weighed(ProductMatch(BANANAS), 1000, generation=generation)
    assert checkout.cart.is_empty


def test_a_weight_for_a_cancelled_or_parked_sale_is_refused(checkout: Checkout) -> None:
    checkout.scan("COLA")
    generation = checkout.generation
    checkout.cancel()  # parking ends with the same cancel
    with pytest.raises(CartError):
        checkout.add_weighed(ProductMatch(BANANAS), 1000, generation=generation)
    assert checkout.cart.is_empty


def test_a_weight_read_before_a_parked_cart_was_resumed_is_refused(checkout: Checkout) -> None:
    generation = checkout.generation
    checkout.resume(parked())
    with pytest.raises(CartError):
        checkout.add_weighed(ProductMatch(BANANAS), 1000, generation=generation)
    assert len(checkout.cart.lines) == 2
