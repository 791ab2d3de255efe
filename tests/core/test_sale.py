"""Tests for sales, refunds and voids drafted from a cart or an earlier sale."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.barcode import VariableMeasureRule, gtin_check_digit, parse_barcode
from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.discount import Discount
from appliance.core.ids import new_document_id, receipt_number
from appliance.core.money import Money
from appliance.core.sale import (
    Sale,
    SaleDraft,
    SaleLine,
    draft_refund,
    draft_sale,
    draft_void,
)
from appliance.core.tax import TaxLine, TaxPolicy, compute_taxes
from appliance.core.tender import Tender
from appliance.errors import CartError, DocumentError, TenderError

RATES = {"standard": 1900, "reduced": 700}
EU = TaxPolicy.of(RATES, prices_include_tax=True, rounding="line")
POLICIES = [
    TaxPolicy.of(RATES, prices_include_tax=inclusive, rounding=rounding)
    for inclusive in (True, False)
    for rounding in ("line", "total")
]
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 3, 9, 30, tzinfo=UTC)

COLA = Product("COLA", "Cola", Money(249, "EUR"), "standard")
BREAD = Product("BREAD", "Bread", Money(199, "EUR"), "reduced", stock_tracked=False)
APPLES = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
CANDLE = Product("CANDLE", "Candle", Money(333, "EUR"), "standard")


def weighed(product: Product, grams: int) -> ProductMatch:
    """The product as found by a prefix-21 weight label."""
    body = f"2112345{grams:05d}"
    return ProductMatch(product, parse_barcode(body + gtin_check_digit(body), [WEIGHT_21]))


def paid_by_card(total: int) -> list[Tender]:
    """One card tender for `total` (none for a zero total)."""
    return [Tender("card", total, card_mask="**** 4242")] if total else []


def sell(cart: Cart, policy: TaxPolicy = EU, sequence: int = 1) -> Sale:
    """The cart sold, paid by card and sealed."""
    draft = draft_sale(
        cart, policy, paid_by_card(cart.totals(policy).total), device_id="K01", now=NOW
    )
    return draft.seal(sequence, receipt_number("K01", sequence))


def refund(
    original: Sale,
    quantities: Mapping[int, int],
    already: Mapping[int, int] | None = None,
    tenders: list[Tender] | None = None,
) -> SaleDraft:
    """A refund paid back by card for what the refund's own taxes say it is worth."""
    if tenders is None:
        tenders = paid_by_card(expected_refund_gross(original, quantities, already or {}))
    return draft_refund(
        original,
        quantities,
        tenders,
        already_refunded=already or {},
        device_id="K01",
        now=LATER,
        staff="anna",
        reason="returned",
    )


def expected_piece(amount: int, before: int, quantity: int, of: int) -> int:
    """Items before+1..before+quantity of `of` items worth `amount` (>= 0), cumulatively rounded."""

    def upto(n: int) -> int:  # amount * n / of, rounded half up, for non-negative values
        return (2 * amount * n + of) // (2 * of)

    return upto(before + quantity) - upto(before)


def expected_refund_gross(
    original: Sale, quantities: Mapping[int, int], already: Mapping[int, int]
) -> int:
    """What the refund should pay back: tax on everything refunded after it, minus before."""
    policy = TaxPolicy.of(
        {line.tax_class: line.tax_rate for line in original.lines},
        prices_include_tax=original.prices_include_tax,
        rounding=original.tax_rounding,
    )

    def refunded_gross(counts: Mapping[int, int]) -> int:
        amounts = [
            (line.tax_class, expected_piece(line.amount, 0, counts[line.line_no], line.quantity))
            for line in original.lines
            if counts.get(line.line_no)
        ]
        return compute_taxes(policy, amounts).gross

    after = dict(already)
    for n, q in quantities.items():
        after[n] = after.get(n, 0) + q
    return refunded_gross(already) - refunded_gross(after)


def negated(taxes: tuple[TaxLine, ...]) -> tuple[TaxLine, ...]:
    """Every tax line with net, tax and gross negated."""
    return tuple(dataclasses.replace(t, net=-t.net, tax=-t.tax, gross=-t.gross) for t in taxes)


@pytest.fixture
def cart() -> Cart:
    """Three colas (standard rate), a bread and 500 g of apples (reduced rate)."""
    return Cart("EUR").add(ProductMatch(COLA), 3).add(ProductMatch(BREAD)).add(weighed(APPLES, 500))


@pytest.fixture
def sale(cart: Cart) -> Sale:
    return sell(cart)


# --- draft_sale ----------------------------------------------------------------------------------


def test_draft_sale_lines_add_up_to_the_total_with_their_tax_rates(cart: Cart) -> None:
    draft = draft_sale(cart, EU, paid_by_card(1096), device_id="K01", now=NOW, staff="anna")
    assert [
        (x.line_no, x.sku, x.quantity, x.measure, x.amount, x.tax_rate) for x in draft.lines
    ] == [
        (1, "COLA", 3, "each", 747, 1900),
        (2, "BREAD", 1, "each", 199, 700),
        (3, "APPLES", 500, "weight", 150, 700),
    ]
    assert sum(x.amount for x in draft.lines) == draft.total == 1096
    assert draft.lines[2].barcode == "2112345005003"
    assert (draft.kind, draft.device_id, draft.created_at, draft.staff) == (
        "sale",
        "K01",
        NOW,
        "anna",
    )
    assert (draft.currency, draft.prices_include_tax, draft.tax_rounding) == ("EUR", True, "line")
    assert draft.references is None


def test_draft_sale_tax_lines_are_the_carts_taxes(cart: Cart) -> None:
    draft = draft_sale(cart, EU, paid_by_card(1096), device_id="K01", now=NOW)
    assert draft.taxes == cart.totals(EU).taxes.lines
    assert draft.taxes == (
        # 199 * 7/107 = 13.02 -> 13 and 150 * 7/107 = 9.81 -> 10, per line
        TaxLine("reduced", 700, net=326, tax=23, gross=349),
        TaxLine("standard", 1900, net=628, tax=119, gross=747),  # 119.27
    )
    assert draft.tax_total == 142


def test_draft_sale_in_exclusive_prices_adds_the_tax_to_the_total(cart: Cart) -> None:
    us = dataclasses.replace(EU, prices_include_tax=False)
    total = cart.totals(us).total
    draft = draft_sale(cart, us, paid_by_card(total), device_id="K01", now=NOW)
    assert sum(x.amount for x in draft.lines) == 1096
    assert draft.total == 1096 + draft.tax_total == sum(t.gross for t in draft.taxes)


def test_draft_sale_puts_every_discount_on_its_lines(cart: Cart) -> None:
    cart = cart.discount_line(1, Discount.percent(1000)).discount_all(Discount.fixed(100))
    totals = cart.totals(EU)
    draft = draft_sale(cart, EU, paid_by_card(totals.total), device_id="K01", now=NOW)
    assert draft.discount_total == totals.discount_total == 75 + 100
    assert sum(x.discount for x in draft.lines) == draft.discount_total
    for sold, line in zip(draft.lines, cart.lines, strict=True):
        assert sold.discount == line.base_amount - sold.amount
        assert sold.unit_price == line.unit_price


def test_draft_sale_refuses_an_empty_cart() -> None:
    with pytest.raises(CartError, match="empty"):
        draft_sale(Cart("EUR"), EU, [], device_id="K01", now=NOW)


def test_draft_sale_refuses_tenders_that_do_not_settle(cart: Cart) -> None:
    with pytest.raises(TenderError, match="1000 of 1096"):
        draft_sale(cart, EU, paid_by_card(1000), device_id="K01", now=NOW)


def test_draft_sale_keeps_cash_change(cart: Cart) -> None:
    tenders = [Tender("card", 96), Tender.cash(2000, due=1000)]
    draft = draft_sale(cart, EU, tenders, device_id="K01", now=NOW)
    assert draft.change == 1000
    assert draft.tenders == tuple(tenders)


# --- seal ----------------------------------------------------------------------------------------


def test_seal_numbers_the_document_and_keeps_everything_else(cart: Cart) -> None:
    draft = draft_sale(cart, EU, paid_by_card(1096), device_id="K01", now=NOW)
    sealed = draft.seal(42, "K01-000042")
    assert isinstance(sealed, Sale)
    assert (sealed.sequence, sealed.receipt_number) == (42, "K01-000042")
    for field in dataclasses.fields(SaleDraft):
        assert getattr(sealed, field.name) == getattr(draft, field.name), field.name


def test_a_sale_and_its_lines_are_frozen(sale: Sale) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        sale.total = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sale.sequence = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sale.lines[0].amount = 0  # type: ignore[misc]


def test_receipt_numbers_are_zero_padded_to_six_digits() -> None:
    assert receipt_number("K01", 123) == "K01-000123"
    assert receipt_number("K01", 1234567) == "K01-1234567"


def test_document_ids_are_uuid7_and_sort_in_creation_order() -> None:
    ids = [new_document_id() for _ in range(200)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(uuid.UUID(x).version == 7 for x in ids)
    assert all(uuid.UUID(x).variant == uuid.RFC_4122 for x in ids)


def test_stock_moves_out_on_a_sale_and_back_on_a_refund(sale: Sale) -> None:
    assert [x.stock_delta for x in sale.lines] == [-3, 0, -500]  # bread is not stock-tracked
    assert [x.stock_delta for x in refund(sale, {1: 2, 2: 1}).lines] == [2, 0]


# --- draft_refund --------------------------------------------------------------------------------


def test_partial_refund_returns_one_of_three_at_the_original_rate(sale: Sale) -> None:
    draft = refund(sale, {1: 1})
    (line,) = draft.lines
    assert line == dataclasses.replace(
        sale.lines[0], line_no=1, quantity=-1, amount=-249, discount=0, refers_to_line=1
    )
    assert draft.taxes == (TaxLine("standard", 1900, net=-209, tax=-40, gross=-249),)  # 39.76
    assert draft.total == -249
    assert (draft.kind, draft.references, draft.staff, draft.reason) == (
        "refund",
        sale.id,
        "anna",
        "returned",
    )
    assert draft.tenders == (Tender("card", -249, card_mask="**** 4242"),)
    assert draft.id != sale.id


def test_a_refund_keeps_the_rates_of_the_sale_not_of_todays_policy() -> None:
    old_rate = TaxPolicy.of({"standard": 1600, "reduced": 500})
    original = sell(Cart("EUR").add(ProductMatch(COLA)), old_rate)
    draft = refund(original, {1: 1})
    assert draft.lines[0].tax_rate == 1600
    assert draft.taxes == (TaxLine("standard", 1600, net=-215, tax=-34, gross=-249),)  # 34.34


def test_partial_refunds_add_up_to_exactly_what_the_line_cost() -> None:
    # 3 x 3.33 with 10% off is 8.99; refunding a third each time used to give 3.00 three
    # times, paying back 9.00 for a line that cost 8.99.
    original = sell(
        Cart("EUR").add(ProductMatch(CANDLE), 3).discount_line(1, Discount.percent(1000))
    )
    assert (original.lines[0].amount, original.lines[0].discount) == (899, 100)
    already: dict[int, int] = {}
    pieces = []
    for _ in range(3):
        piece = refund(original, {1: 1}, already)
        pieces.append((piece.lines[0].amount, piece.lines[0].discount))
        already[1] = already.get(1, 0) + 1
    assert pieces == [(-300, -33), (-299, -34), (-300, -33)]
    assert sum(a for a, _ in pieces) == -899
    assert sum(d for _, d in pieces) == -100


def test_a_full_refund_negates_the_sale_exactly(sale: Sale) -> None:
    draft = refund(sale, {1: 3, 2: 1, 3: 500}, tenders=[t.negated() for t in sale.tenders])
    assert draft.total == -sale.total
    assert draft.taxes == negated(sale.taxes)
    assert draft.discount_total == -sale.discount_total
    assert [(x.refers_to_line, x.quantity, x.amount) for x in draft.lines] == [
        (x.line_no, -x.quantity, -x.amount) for x in sale.lines
    ]


@pytest.mark.parametrize(
    ("quantities", "already", "message"),
    [
        ({1: 4}, {}, "3 left to refund, not 4"),
        ({1: 2}, {1: 2}, "1 left to refund, not 2"),
        ({1: 1}, {1: 3}, "0 left to refund, not 1"),
        ({1: 0}, {}, "not 0"),
        ({1: -1}, {}, "not -1"),
        ({9: 1}, {}, "no line 9"),
        ({}, {}, "nothing to refund"),
    ],
)
def test_refunding_more_than_is_left_is_refused(
    sale: Sale, quantities: dict[int, int], already: dict[int, int], message: str
) -> None:
    with pytest.raises(DocumentError, match=message):
        refund(sale, quantities, already, tenders=[Tender("card", -1)])


def test_a_refund_cannot_be_refunded_or_voided(sale: Sale) -> None:
    refunded = refund(sale, {1: 1}).seal(2, "K01-000002")
    with pytest.raises(DocumentError, match="not a refund"):
        refund(refunded, {1: 1}, tenders=[Tender("card", 249)])
    with pytest.raises(DocumentError, match="not a refund"):
        draft_void(refunded, device_id="K01", now=LATER, staff="anna", reason="x")


def test_a_void_cannot_be_refunded(sale: Sale) -> None:
    void = draft_void(sale, device_id="K01", now=LATER, staff="anna", reason="x")
    with pytest.raises(DocumentError, match="not a void"):
        refund(void.seal(2, "K01-000002"), {1: 1}, tenders=[Tender("card", 249)])


@pytest.mark.parametrize("grams", [1, 200, 499])
def test_a_weighed_line_cannot_be_refunded_in_part(sale: Sale, grams: int) -> None:
    with pytest.raises(DocumentError, match="refund it whole"):
        refund(sale, {3: grams}, tenders=[Tender("card", -1)])


def test_a_weighed_line_can_be_refunded_whole(sale: Sale) -> None:
    draft = refund(sale, {3: 500})
    assert [(x.quantity, x.amount) for x in draft.lines] == [(-500, -150)]


def test_a_refund_must_be_paid_back_exactly(sale: Sale) -> None:
    with pytest.raises(TenderError):
        refund(sale, {1: 1}, tenders=[Tender("card", 249)])
    with pytest.raises(TenderError, match="-200 of -249"):
        refund(sale, {1: 1}, tenders=[Tender("card", -200)])


def test_refund_lines_are_numbered_afresh_in_line_order(sale: Sale) -> None:
    draft = refund(sale, {3: 500, 1: 1})
    assert [(x.line_no, x.refers_to_line) for x in draft.lines] == [(1, 1), (2, 3)]


# --- draft_void ----------------------------------------------------------------------------------


def test_a_void_reverses_every_line_tax_and_tender_exactly(cart: Cart) -> None:
    cart = cart.discount_all(Discount.percent(1500))
    total = cart.totals(EU).total
    tenders = [Tender("card", 500, card_mask="**** 4242"), Tender.cash(1000, due=total - 500)]
    original = draft_sale(cart, EU, tenders, device_id="K01", now=NOW).seal(7, "K01-000007")
    void = draft_void(original, device_id="K02", now=LATER, staff="ben", reason="wrong customer")
    assert void.kind == "void"
    assert (void.references, void.staff, void.reason, void.device_id) == (
        original.id,
        "ben",
        "wrong customer",
        "K02",
    )
    assert void.total == -original.total
    assert void.discount_total == -original.discount_total
    assert void.taxes == negated(original.taxes)
    assert void.lines == tuple(
        dataclasses.replace(
            x,
            quantity=-x.quantity,
            discount=-x.discount,
            amount=-x.amount,
            refers_to_line=x.line_no,
        )
        for x in original.lines
    )
    assert [(t.kind, t.amount, t.change) for t in void.tenders] == [
        ("card", -500, 0),
        ("cash", -(total - 500), 0),  # the change was never the customer's
    ]


def test_a_void_needs_the_staff_member(sale: Sale) -> None:
    with pytest.raises(DocumentError, match="staff"):
        draft_void(sale, device_id="K01", now=LATER, staff="", reason="mistake")


# --- properties ----------------------------------------------------------------------------------

products = st.builds(
    Product,
    sku=st.sampled_from(["A", "B", "C", "D", "E"]),
    name=st.just("item"),
    price=st.builds(Money, st.integers(min_value=0, max_value=20_000), st.just("EUR")),
    tax_class=st.sampled_from(["standard", "reduced"]),
)
discounts = st.one_of(
    st.none(),
    st.builds(Discount.percent, st.integers(min_value=0, max_value=10_000)),
    st.builds(Discount.fixed, st.integers(min_value=0, max_value=50_000)),
)


@st.composite
def carts(draw: st.DrawFn) -> Cart:
    """A non-empty random cart: plain and weighed items, line and cart discounts."""
    cart = Cart("EUR")
    for product in draw(st.lists(products, min_size=1, max_size=6)):
        cart = cart.add(ProductMatch(product), draw(st.integers(min_value=1, max_value=9)))
    if draw(st.booleans()):
        per_kg = draw(st.integers(min_value=1, max_value=5_000))
        apples = dataclasses.replace(APPLES, price=Money(per_kg, "EUR"))
        cart = cart.add(weighed(apples, draw(st.integers(min_value=1, max_value=99_999))))
    for line in cart.lines:
        cart = cart.discount_line(line.line_id, draw(discounts))
    return cart.discount_all(draw(discounts))


@settings(max_examples=80, deadline=None)
@given(carts(), st.sampled_from(POLICIES))
def test_a_full_refund_of_every_line_is_the_exact_negation_of_the_sale(
    cart: Cart, policy: TaxPolicy
) -> None:
    original = sell(cart, policy)
    full = {line.line_no: line.quantity for line in original.lines}
    draft = refund(original, full, tenders=[t.negated() for t in original.tenders])
    assert draft.total == -original.total
    assert draft.taxes == negated(original.taxes)
    assert draft.discount_total == -original.discount_total
    assert [x.amount for x in draft.lines] == [-x.amount for x in original.lines]
    void = draft_void(original, device_id="K01", now=LATER, staff="anna", reason="x")
    assert (void.total, void.taxes) == (draft.total, draft.taxes)


@settings(max_examples=100, deadline=None)
@given(carts(), st.sampled_from(POLICIES), st.data())
def test_refunding_a_line_piece_by_piece_pays_back_exactly_what_it_cost(
    cart: Cart, policy: TaxPolicy, data: st.DataObject
) -> None:
    original = sell(cart, policy)
    plain_lines = [x for x in original.lines if x.measure == "each"]
    if not plain_lines:
        return
    line: SaleLine = data.draw(st.sampled_from(plain_lines))
    already: dict[int, int] = {}
    amounts, discounts_back, totals = [], [], []
    while already.get(line.line_no, 0) < line.quantity:
        left = line.quantity - already.get(line.line_no, 0)
        quantity = data.draw(st.integers(min_value=1, max_value=left))
        piece = refund(original, {line.line_no: quantity}, already)
        amounts.append(piece.lines[0].amount)
        discounts_back.append(piece.lines[0].discount)
        totals.append(piece.total)
        already[line.line_no] = already.get(line.line_no, 0) + quantity
    assert sum(amounts) == -line.amount
    assert sum(discounts_back) == -line.discount
    if policy.prices_include_tax:
        assert sum(totals) == -line.amount
