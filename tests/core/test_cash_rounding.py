"""Cash rounding: only the cash part is rounded, the sale records it, a void reverses it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.cart import Cart
from appliance.core.cash_rounding import cash_due, round_cash, rounding_of
from appliance.core.catalog import Product, ProductMatch
from appliance.core.money import Money
from appliance.core.sale import draft_refund, draft_sale, draft_void
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender, check_settles
from appliance.errors import TenderError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CH = TaxPolicy.of({"standard": 810, "reduced": 260})
CHOCOLATE = Product("CHOC", "Chocolate", Money(1234, "CHF"), "reduced")


def cart_of(price: int, quantity: int = 1) -> Cart:
    """A CHF cart of `quantity` items at `price`."""
    product = Product("X", "Item", Money(price, "CHF"), "standard")
    return Cart("CHF").add(ProductMatch(product, None), quantity)


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [(1230, 1230), (1231, 1230), (1232, 1230), (1233, 1235), (1234, 1235), (-1233, -1235)],
)
def test_cash_rounds_to_the_nearest_five_centimes(amount: int, rounded: int) -> None:
    assert round_cash(amount, 5) == rounded
    assert cash_due(amount, 5) == rounded


def test_a_tie_rounds_away_from_zero() -> None:
    assert round_cash(1005, 10) == 1010
    assert round_cash(-1005, 10) == -1010


def test_no_increment_leaves_the_amount_exact() -> None:
    assert round_cash(1234, 0) == round_cash(1234, 1) == 1234


@given(st.integers(-(10**9), 10**9), st.sampled_from([5, 10, 25, 50, 100]))
def test_rounding_is_at_most_half_an_increment(amount: int, increment: int) -> None:
    rounded = round_cash(amount, increment)
    assert rounded % increment == 0
    assert 2 * abs(rounded - amount) <= increment


def test_a_cash_sale_pays_the_rounded_total_and_records_the_difference() -> None:
    cart = cart_of(1234)
    due = cash_due(cart.totals(CH).total, 5)
    sale = draft_sale(cart, CH, [Tender.cash(2000, due)], device_id="T1", now=NOW, cash_rounding=5)
    assert (sale.total, sale.rounding, sale.paid, sale.change) == (1234, 1, 1235, 765)
    assert sum(t.tax for t in sale.taxes) == sum(t.tax for t in cart.totals(CH).taxes.lines)


def test_a_card_sale_is_exact() -> None:
    sale = draft_sale(
        cart_of(1234), CH, [Tender("card", 1234)], device_id="T1", now=NOW, cash_rounding=5
    )
    assert sale.rounding == 0


def test_only_the_cash_part_of_a_split_is_rounded() -> None:
    tenders = [Tender("card", 1000), Tender.cash(500, cash_due(1234 - 1000, 5))]
    sale = draft_sale(cart_of(1234), CH, tenders, device_id="T1", now=NOW, cash_rounding=5)
    assert sale.rounding == 1
    assert sum(t.amount for t in sale.tenders) == 1235
    assert rounding_of(tenders, 1234, 5) == 1


def test_unrounded_cash_is_refused_where_cash_is_rounded() -> None:
    with pytest.raises(TenderError, match="rounded"):
        draft_sale(
            cart_of(1234), CH, [Tender.cash(1234, 1234)], device_id="T1", now=NOW, cash_rounding=5
        )


def test_a_rounding_without_cash_is_refused() -> None:
    with pytest.raises(TenderError, match="only cash"):
        check_settles([Tender("card", 1235)], 1234, 1)


def test_a_void_reverses_the_rounding_exactly() -> None:
    sale = draft_sale(
        cart_of(1234), CH, [Tender.cash(1235, 1235)], device_id="T1", now=NOW, cash_rounding=5
    ).seal(1, "T1-000001")
    void = draft_void(sale, device_id="T1", now=NOW, staff="ana", reason="wrong", approved_by="bo")
    assert (void.total, void.rounding, void.paid) == (-1234, -1, -1235)
    assert void.approved_by == "bo"
    check_settles(void.tenders, void.total, void.rounding)


def test_a_cash_refund_is_rounded_too() -> None:
    sale = draft_sale(
        cart_of(617, 2), CH, [Tender("card", 1234)], device_id="T1", now=NOW, cash_rounding=5
    ).seal(1, "T1-000001")
    back = -617
    refund = draft_refund(
        sale,
        {1: 1},
        [Tender("cash", cash_due(back, 5))],
        already_refunded={},
        device_id="T1",
        now=NOW,
        staff="ana",
        cash_rounding=5,
    )
    assert (refund.total, refund.rounding, refund.paid) == (-617, 2, -615)
