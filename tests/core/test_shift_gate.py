"""A till that needs a shift refuses a new sale without one; cash is paid rounded at checkout."""

from __future__ import annotations

import pytest

from appliance.core.catalog import Product
from appliance.core.checkout import Checkout
from appliance.core.events import EventBus
from appliance.core.money import Money
from appliance.core.tender import Tender
from appliance.errors import NoOpenShift, SalesPausedError, TenderError, TillError
from tests.core.test_checkout_resume import POLICY, Catalog, Clock, Recorder


def till(cash_rounding: int = 0) -> Checkout:
    return Checkout(
        Catalog(),
        Recorder(),
        POLICY,
        currency="EUR",
        device_id="T1",
        clock=Clock(),
        bus=EventBus(),
        cash_rounding=cash_rounding,
    )


def test_without_a_check_nothing_changes() -> None:
    checkout = till()
    assert checkout.shift_missing() == ""
    checkout.scan("COLA")
    assert checkout.pay([Tender("card", 250)]).total == 250


def test_no_new_sale_while_no_shift_is_open() -> None:
    checkout = till()
    why = ["no shift is open on this till"]
    checkout.require_shift(lambda: why[0])
    with pytest.raises(NoOpenShift, match="no shift is open"):
        checkout.scan("COLA")
    assert checkout.cart.is_empty
    why[0] = ""
    checkout.scan("COLA")
    why[0] = "the shift was closed"
    with pytest.raises(NoOpenShift) as caught:
        checkout.pay([Tender("card", 250)])
    assert isinstance(caught.value, SalesPausedError) and isinstance(caught.value, TillError)
    assert not checkout.cart.is_empty  # the cart stays for the next shift
    checkout.scan("SOAP")  # a cart in progress may still change
    checkout.require_shift(None)
    assert checkout.pay([Tender("card", 449)]).total == 449


def test_cash_pays_the_rounded_amount() -> None:
    product = Product("X", "Item", Money(1234, "EUR"), "standard")

    class Catalog2(Catalog):
        def by_sku(self, sku: str) -> Product | None:
            return product

    checkout = Checkout(
        Catalog2(),
        Recorder(),
        POLICY,
        currency="EUR",
        device_id="T1",
        clock=Clock(),
        bus=EventBus(),
        cash_rounding=5,
    )
    assert (checkout.cash_rounding, checkout.cash_due(1234), checkout.cash_due(1232)) == (
        5,
        1235,
        1230,
    )
    checkout.scan("X")
    with pytest.raises(TenderError):
        checkout.pay([Tender.cash(2000, 1234)])
    sale = checkout.pay([Tender.cash(2000, checkout.cash_due(1234))])
    assert (sale.total, sale.rounding, sale.change) == (1234, 1, 765)
