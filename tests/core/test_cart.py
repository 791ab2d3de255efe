"""Tests for the immutable cart: adding, merging, weighing, discounts, age checks and totals."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.barcode import VariableMeasureRule, gtin_check_digit, parse_barcode
from appliance.core.cart import Cart, CartLine
from appliance.core.catalog import Product, ProductMatch
from appliance.core.discount import Discount
from appliance.core.money import Money
from appliance.core.sale import draft_sale
from appliance.core.tax import TaxLine, TaxPolicy
from appliance.core.tender import Tender
from appliance.errors import CartError

EU = TaxPolicy.of({"standard": 1900, "reduced": 700}, prices_include_tax=True, rounding="line")
US = TaxPolicy.of({"standard": 1900, "reduced": 700}, prices_include_tax=False, rounding="total")
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")
PRICE_20 = VariableMeasureRule(prefix="20", item_digits=5, measure="price")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

COLA = Product("COLA", "Cola", Money(249, "EUR"), "standard")
BREAD = Product("BREAD", "Bread", Money(199, "EUR"), "reduced", stock_tracked=False)
APPLES = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
CHEESE = Product("CHEESE", "Cheese", Money(0, "EUR"), "reduced")
WHISKY = Product("WHISKY", "Whisky", Money(2999, "EUR"), "standard", age_restriction=18)
WINE = Product("WINE", "Wine", Money(899, "EUR"), "standard", age_restriction=16)


def plain(product: Product) -> ProductMatch:
    """A product found by SKU or an ordinary barcode."""
    return ProductMatch(product)


def labelled(product: Product, code: str) -> ProductMatch:
    """A product found by an in-store weight or price label."""
    return ProductMatch(product, parse_barcode(code, [WEIGHT_21, PRICE_20]))


def weight_label(grams: int) -> str:
    """A prefix-21 weight label for item 12345 with `grams` embedded, check digit included."""
    body = f"2112345{grams:05d}"
    return body + gtin_check_digit(body)


# --- adding --------------------------------------------------------------------------------------


def test_a_new_cart_is_empty() -> None:
    cart = Cart("EUR")
    assert cart.is_empty
    assert cart.totals(EU).total == 0


def test_adding_a_product_makes_a_line_with_its_details() -> None:
    cart = Cart("EUR").add(plain(BREAD), 2)
    (line,) = cart.lines
    assert line == CartLine(
        line_id=1,
        sku="BREAD",
        name="Bread",
        unit_price=199,
        quantity=2,
        measure="each",
        tax_class="reduced",
        stock_tracked=False,
    )
    assert line.amount == 398
    assert cart.next_line_id == 2


def test_repeats_of_a_plain_item_merge_into_one_line() -> None:
    cart = Cart("EUR").add(plain(COLA)).add(plain(BREAD)).add(plain(COLA), 3)
    assert [(x.line_id, x.sku, x.quantity) for x in cart.lines] == [(1, "COLA", 4), (2, "BREAD", 1)]


def test_a_repeat_does_not_merge_into_a_discounted_line() -> None:
    cart = Cart("EUR").add(plain(COLA)).discount_line(1, Discount.percent(5000)).add(plain(COLA))
    assert [(x.line_id, x.quantity, x.discount) for x in cart.lines] == [
        (1, 1, Discount.percent(5000)),
        (2, 1, None),
    ]


def test_a_barcode_scan_is_kept_on_the_line() -> None:
    match = ProductMatch(COLA, parse_barcode("4006381333931"))
    assert Cart("EUR").add(match).lines[0].barcode == "4006381333931"


@pytest.mark.parametrize("quantity", [0, -1])
def test_adding_less_than_one_item_is_refused(quantity: int) -> None:
    with pytest.raises(CartError, match="at least 1"):
        Cart("EUR").add(plain(COLA), quantity)


def test_a_product_priced_in_another_currency_is_refused() -> None:
    dollar_cola = dataclasses.replace(COLA, price=Money(199, "USD"))
    with pytest.raises(CartError, match="USD"):
        Cart("EUR").add(plain(dollar_cola))


# --- weighed and price-embedded items ------------------------------------------------------------


def test_a_weight_label_makes_a_line_in_grams_priced_per_kg_rounded_half_up() -> None:
    cart = Cart("EUR").add(labelled(APPLES, weight_label(1234)))
    (line,) = cart.lines
    assert (line.measure, line.quantity, line.unit_price) == ("weight", 1234, 299)
    assert line.base_amount == 369  # 299 * 1234 / 1000 = 368.966
    assert line.barcode == weight_label(1234)


def test_a_weighed_price_at_exactly_half_a_cent_rounds_up() -> None:
    line = Cart("EUR").add(labelled(APPLES, weight_label(500))).lines[0]
    assert line.base_amount == 150  # 299 * 500 / 1000 = 149.5


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=99_999), st.integers(min_value=1, max_value=100_000))
def test_a_weighed_price_is_per_kg_price_times_grams_over_1000_half_up(
    grams: int, per_kg: int
) -> None:
    product = dataclasses.replace(APPLES, price=Money(per_kg, "EUR"))
    line = Cart("EUR").add(labelled(product, weight_label(grams))).lines[0]
    assert line.base_amount == (per_kg * grams + 500) // 1000


def test_two_weighings_of_one_product_stay_two_lines() -> None:
    cart = Cart("EUR").add(labelled(APPLES, weight_label(500)))
    cart = cart.add(labelled(APPLES, weight_label(700)))
    assert [(x.line_id, x.quantity) for x in cart.lines] == [(1, 500), (2, 700)]


def test_a_price_label_makes_one_item_at_the_embedded_price() -> None:
    cart = Cart("EUR").add(labelled(CHEESE, "2098765003495"))
    (line,) = cart.lines
    assert (line.measure, line.quantity, line.unit_price, line.amount) == ("price", 1, 349, 349)


def test_a_label_scan_cannot_be_multiplied() -> None:
    # Every label carries its own weight or price; "3 x" used to be dropped without a word.
    with pytest.raises(CartError, match="label"):
        Cart("EUR").add(labelled(CHEESE, "2098765003495"), 3)
    with pytest.raises(CartError, match="label"):
        Cart("EUR").add(labelled(APPLES, weight_label(500)), 2)


def test_a_weight_label_for_a_product_not_sold_by_weight_is_refused() -> None:
    with pytest.raises(CartError, match="not sold by weight"):
        Cart("EUR").add(labelled(COLA, weight_label(500)))


def test_a_product_sold_by_weight_needs_the_scale() -> None:
    with pytest.raises(CartError, match="weigh"):
        Cart("EUR").add(plain(APPLES))


# --- changing lines ------------------------------------------------------------------------------


def test_set_quantity_changes_a_plain_line() -> None:
    cart = Cart("EUR").add(plain(COLA)).set_quantity(1, 5)
    assert cart.line(1).quantity == 5


def test_set_quantity_refuses_a_weighed_or_label_priced_line() -> None:
    cart = (
        Cart("EUR").add(labelled(APPLES, weight_label(500))).add(labelled(CHEESE, "2098765003495"))
    )
    for line_id in (1, 2):
        with pytest.raises(CartError, match="remove and rescan"):
            cart.set_quantity(line_id, 2)


@pytest.mark.parametrize("quantity", [0, -3])
def test_set_quantity_below_one_is_refused(quantity: int) -> None:
    with pytest.raises(CartError, match="remove the line"):
        Cart("EUR").add(plain(COLA)).set_quantity(1, quantity)


def test_remove_drops_only_that_line_and_ids_are_not_reused() -> None:
    cart = Cart("EUR").add(plain(COLA)).add(plain(BREAD)).remove(1).add(plain(COLA))
    assert [(x.line_id, x.sku) for x in cart.lines] == [(2, "BREAD"), (3, "COLA")]


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.line(9),
        lambda c: c.set_quantity(9, 1),
        lambda c: c.remove(9),
        lambda c: c.discount_line(9, Discount.fixed(1)),
        lambda c: c.approve_age("anna", 9),
    ],
    ids=["line", "set_quantity", "remove", "discount_line", "approve_age"],
)
def test_an_unknown_line_is_a_cart_error(change: object) -> None:
    cart = Cart("EUR").add(plain(COLA))
    with pytest.raises(CartError, match="no line 9"):
        change(cart)  # type: ignore[operator]


# --- immutability --------------------------------------------------------------------------------


def test_every_change_returns_a_new_cart_and_leaves_the_old_one_alone() -> None:
    empty = Cart("EUR")
    one = empty.add(plain(COLA))
    two = one.add(plain(COLA))
    discounted = two.discount_all(Discount.percent(1000))
    removed = discounted.remove(1)
    assert empty.lines == ()
    assert one.lines[0].quantity == 1
    assert two.lines[0].quantity == 2
    assert two.discount is None
    assert discounted.lines == two.lines
    assert removed.is_empty and not discounted.is_empty


def test_a_cart_and_its_lines_cannot_be_changed_in_place() -> None:
    cart = Cart("EUR").add(plain(COLA))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cart.lines = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cart.lines[0].quantity = 9  # type: ignore[misc]


# --- discounts and totals ------------------------------------------------------------------------


def test_line_and_cart_discounts_make_the_totals() -> None:
    cart = (
        Cart("EUR")
        .add(plain(COLA), 2)  # 498
        .add(plain(BREAD))  # 199
        .discount_line(1, Discount.percent(1000, "promo"))  # 49.8 -> 50 off: 448
        .discount_all(Discount.fixed(100, "voucher"))
    )
    totals = cart.totals(EU)
    assert totals.subtotal == 647
    assert totals.line_discounts == 50
    assert totals.cart_discount == 100
    assert totals.discount_total == 150
    # 100 shared as 69.24 and 30.76: floors 69 and 30, the leftover cent to the larger remainder.
    assert totals.line_amounts == ((1, 379), (2, 168))
    assert totals.taxes.lines == (
        TaxLine("reduced", 700, net=157, tax=11, gross=168),  # 168 * 7/107 = 10.99
        TaxLine("standard", 1900, net=318, tax=61, gross=379),  # 379 * 19/119 = 60.51
    )
    assert totals.total == 547


def test_clearing_discounts_restores_the_full_price() -> None:
    cart = Cart("EUR").add(plain(COLA)).discount_line(1, Discount.fixed(50))
    cart = cart.discount_all(Discount.percent(1000))
    cleared = cart.discount_line(1, None).discount_all(None)
    assert cleared.totals(EU).total == 249
    assert cart.totals(EU).total == 179  # 249 - 50 = 199, then 10% = 19.9 -> 20 off


def test_exclusive_prices_add_the_tax_on_top() -> None:
    cart = Cart("EUR").add(plain(COLA), 2).add(plain(BREAD))
    totals = cart.totals(US)
    assert totals.line_amounts == ((1, 498), (2, 199))
    assert totals.taxes.lines == (
        TaxLine("reduced", 700, net=199, tax=14, gross=213),  # 13.93
        TaxLine("standard", 1900, net=498, tax=95, gross=593),  # 94.62
    )
    assert totals.total == totals.taxes.gross == 806


def test_a_cart_discount_larger_than_the_cart_takes_it_to_zero() -> None:
    cart = Cart("EUR").add(plain(COLA)).add(plain(BREAD)).discount_all(Discount.fixed(10_000))
    totals = cart.totals(EU)
    assert totals.cart_discount == 448
    assert totals.line_amounts == ((1, 0), (2, 0))
    assert totals.total == 0


# --- age checks ----------------------------------------------------------------------------------


def test_staff_interventions_are_recorded_once_on_the_sale_after_the_age_checks() -> None:
    assert Cart("EUR").note_approval("bagging clear: Alex (S1, cashier)").approvals == ()
    cart = Cart("EUR").add(plain(WHISKY)).approve_age("S2", note="Sam (S2, supervisor) from till-1")
    cart = cart.note_approval("bagging clear: Alex (S1, cashier)")
    cart = cart.note_approval("bagging clear: Alex (S1, cashier)")  # the same twice: once
    cart = cart.note_approval("bagging skip item: Sam (S2, supervisor) from till-1")
    tenders = [Tender("card", cart.totals(EU).total)]
    sale = draft_sale(cart, EU, tenders, device_id="K01", now=NOW)
    assert sale.approved_by == (
        "Sam (S2, supervisor) from till-1; bagging clear: Alex (S1, cashier);"
        " bagging skip item: Sam (S2, supervisor) from till-1"
    )


def test_an_age_restricted_line_blocks_the_sale_until_approved() -> None:
    cart = Cart("EUR").add(plain(COLA)).add(plain(WHISKY))
    tenders = [Tender("card", cart.totals(EU).total)]
    assert [x.sku for x in cart.pending_age_checks] == ["WHISKY"]
    with pytest.raises(CartError, match="age check needed for: Whisky"):
        draft_sale(cart, EU, tenders, device_id="K01", now=NOW)
    approved = cart.approve_age("anna")
    assert approved.pending_age_checks == ()
    assert approved.line(2).age_approved_by == "anna"
    assert approved.line(1).age_approved_by is None  # nothing to approve on cola
    assert draft_sale(approved, EU, tenders, device_id="K01", now=NOW).total == 3248
    assert cart.pending_age_checks  # the unapproved cart still needs the check


def test_approving_one_line_leaves_the_others_pending() -> None:
    cart = Cart("EUR").add(plain(WHISKY)).add(plain(WINE)).approve_age("anna", 2)
    assert [x.sku for x in cart.pending_age_checks] == ["WHISKY"]


def test_an_age_approval_needs_the_staff_member() -> None:
    with pytest.raises(CartError, match="staff"):
        Cart("EUR").add(plain(WHISKY)).approve_age("")


# --- properties ----------------------------------------------------------------------------------

products = st.builds(
    Product,
    sku=st.sampled_from(["A", "B", "C", "D"]),
    name=st.just("item"),
    price=st.builds(Money, st.integers(min_value=0, max_value=50_000), st.just("EUR")),
    tax_class=st.sampled_from(["standard", "reduced"]),
)
discounts = st.one_of(
    st.none(),
    st.builds(Discount.percent, st.integers(min_value=0, max_value=10_000)),
    st.builds(Discount.fixed, st.integers(min_value=0, max_value=100_000)),
)


@st.composite
def carts(draw: st.DrawFn) -> Cart:
    """A random cart of plain items with random line and cart discounts."""
    cart = Cart("EUR")
    for product in draw(st.lists(products, max_size=8)):
        cart = cart.add(plain(product), draw(st.integers(min_value=1, max_value=20)))
    for line in cart.lines:
        cart = cart.discount_line(line.line_id, draw(discounts))
    return cart.discount_all(draw(discounts))


@settings(max_examples=100, deadline=None)
@given(carts(), st.sampled_from([EU, US]))
def test_final_line_amounts_add_up_to_subtotal_less_cart_discount_and_never_go_negative(
    cart: Cart, policy: TaxPolicy
) -> None:
    totals = cart.totals(policy)
    finals = [amount for _, amount in totals.line_amounts]
    assert [line_id for line_id, _ in totals.line_amounts] == [x.line_id for x in cart.lines]
    assert sum(finals) == totals.subtotal - totals.cart_discount
    assert totals.subtotal == sum(x.base_amount for x in cart.lines) - totals.line_discounts
    assert all(0 <= final <= line.amount for final, line in zip(finals, cart.lines, strict=True))
    assert totals.total == totals.taxes.gross >= 0
    if policy.prices_include_tax:
        assert totals.total == sum(finals)
    else:
        assert totals.total == sum(finals) + totals.taxes.tax
