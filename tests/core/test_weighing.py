"""Goods sold by weight: priced from the stable weight in grams, and stock kept in grams."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.barcode import VariableMeasureRule, gtin_check_digit, parse_barcode
from appliance.core.cart import Cart, grams_for_price, price_for_weight
from appliance.core.catalog import Product, ProductMatch
from appliance.core.money import Money
from appliance.core.sale import draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.errors import CartError

POLICY = TaxPolicy.of({"reduced": 700}, prices_include_tax=True, rounding="line")
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")
PRICE_20 = VariableMeasureRule(prefix="20", item_digits=5, measure="price")
APPLES = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
CAN = Product("CAN", "Tomatoes", Money(129, "EUR"), "reduced")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def label(prefix: str, value: int) -> str:
    """An in-store label for item 12345 carrying `value` (grams or cents)."""
    body = f"{prefix}12345{value:05d}"
    return body + gtin_check_digit(body)


def labelled(product: Product, code: str) -> ProductMatch:
    """A product found by an in-store label."""
    return ProductMatch(product, parse_barcode(code, [WEIGHT_21, PRICE_20]))


@pytest.mark.parametrize(
    ("per_kg", "grams", "price"),
    [
        (299, 1250, 374),  # 373.75 -> 374
        (299, 500, 150),  # 149.5 exactly half -> away from zero
        (1000, 1, 1),  # 1.0
        (999, 1, 1),  # 0.999 -> 1
        (499, 1, 0),  # 0.499 -> 0
        (299, -500, -150),  # a return: half away from zero, not up
    ],
)
def test_the_price_is_per_kg_times_grams_over_1000_half_away_from_zero(
    per_kg: int, grams: int, price: int
) -> None:
    assert price_for_weight(per_kg, grams) == price


def test_a_weighed_item_is_a_line_in_grams_priced_by_its_unit_price_and_tax_class() -> None:
    cart = Cart("EUR").add_weighed(ProductMatch(APPLES), 1250)
    (line,) = cart.lines
    assert (line.measure, line.quantity, line.unit_price, line.amount) == ("weight", 1250, 299, 374)
    assert line.tax_class == "reduced"
    assert cart.totals(POLICY).total == 374


def test_two_weighings_stay_two_lines() -> None:
    cart = Cart("EUR").add_weighed(ProductMatch(APPLES), 500).add_weighed(ProductMatch(APPLES), 700)
    assert [x.quantity for x in cart.lines] == [500, 700]


def test_only_products_sold_by_weight_and_without_a_label_are_weighed() -> None:
    with pytest.raises(CartError, match="not weighed"):
        Cart("EUR").add_weighed(ProductMatch(CAN), 500)
    with pytest.raises(CartError, match="not weighed"):
        Cart("EUR").add_weighed(labelled(APPLES, label("21", 500)), 500)
    with pytest.raises(CartError, match="above zero"):
        Cart("EUR").add_weighed(ProductMatch(APPLES), 0)


def test_a_price_label_on_goods_sold_by_weight_charges_the_label_and_counts_grams() -> None:
    # 3.74 at 2.99/kg stands for 1250.8 g: the label's price is charged as printed.
    (line,) = Cart("EUR").add(labelled(APPLES, label("20", 374))).lines
    assert (line.measure, line.quantity, line.amount) == ("weight", 1251, 374)
    assert line.label_price == 374


def test_a_price_label_on_an_item_sold_each_stays_one_item() -> None:
    (line,) = Cart("EUR").add(labelled(CAN, label("20", 99))).lines
    assert (line.measure, line.quantity, line.amount) == ("price", 1, 99)


@given(grams=st.integers(min_value=1, max_value=30_000), per_kg=st.integers(100, 999_999))
def test_the_grams_worked_back_from_a_printed_label_are_within_its_rounding(
    grams: int, per_kg: int
) -> None:
    printed = price_for_weight(per_kg, grams)
    back = grams_for_price(printed, per_kg) if printed else 0
    # Half a cent of label rounding hides at most 500 / per_kg grams (rounded once more).
    assert abs(back - grams) <= 500 / per_kg + 1
    if printed:
        assert back >= 1


@given(price=st.integers(1, 99_999), per_kg=st.integers(1, 9_999_999))
def test_a_priced_label_always_stands_for_at_least_one_gram(price: int, per_kg: int) -> None:
    assert grams_for_price(price, per_kg) >= 1


def test_a_cheap_label_on_a_dear_product_is_one_gram_and_can_be_refunded() -> None:
    """0.99 on saffron at 2,500.00 per kg is 0.396 g: 1 g, so the line moves stock and refunds."""
    from appliance.core.sale import draft_refund

    saffron = Product("SAFFRON", "Saffron", Money(250_000, "EUR"), "reduced", sold_by="kg")
    assert grams_for_price(99, 250_000) == 1
    cart = Cart("EUR").add(labelled(saffron, label("20", 99)))
    (line,) = cart.lines
    assert (line.measure, line.quantity, line.amount) == ("weight", 1, 99)
    sale = draft_sale(cart, POLICY, [Tender("cash", 99)], device_id="dev-1", now=NOW).seal(1, "T-1")
    assert [x.stock_delta for x in sale.lines] == [-1]
    refund = draft_refund(
        sale,
        {1: 1},
        [Tender("cash", -99)],
        already_refunded={},
        device_id="dev-1",
        now=NOW,
        staff="s1",
    )
    assert [(x.quantity, x.amount) for x in refund.lines] == [(-1, -99)]


def test_both_kinds_of_weighed_sale_move_stock_by_grams(tmp_path: Path) -> None:
    from appliance.store.catalog import SqliteCatalog
    from appliance.store.database import open_database
    from appliance.store.documents import SalesLedger
    from appliance.store.migrations import migrate

    db = open_database(tmp_path / "appliance.db")
    migrate(db)
    try:
        catalog = SqliteCatalog(db)
        catalog.upsert([(APPLES, 10_000)])  # 10 kg in stock, in grams
        cart = (
            Cart("EUR")
            .add_weighed(ProductMatch(APPLES), 1250)  # on the scale
            .add(labelled(APPLES, label("21", 400)))  # weight label
            .add(labelled(APPLES, label("20", 299)))  # price label: 2.99 is 1000 g
        )
        assert [x.quantity for x in cart.lines] == [1250, 400, 1000]
        total = cart.totals(POLICY).total
        draft = draft_sale(cart, POLICY, [Tender("cash", total)], device_id="dev-1", now=NOW)
        assert [x.stock_delta for x in draft.lines] == [-1250, -400, -1000]
        SalesLedger(db, "T1").commit(draft)
        assert catalog.stock_of("APPLES") == 10_000 - 1250 - 400 - 1000
    finally:
        db.close()
