"""The receipt model: everything a printer needs, formatted for the store's locale."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.discount import Discount
from appliance.core.money import Money
from appliance.core.receipt import receipt_for
from appliance.core.sale import Sale, draft_sale, draft_void
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender

POLICY = TaxPolicy.of({"standard": 1900, "reduced": 700})
COFFEE = Product("COFFEE", "Kaffee 250 g", Money(499, "EUR"), "reduced")
WATER = Product("WATER", "Wasser 0,5 l", Money(129, "EUR"), "standard")
NOW = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)


def _sale() -> Sale:
    cart = Cart("EUR").add(ProductMatch(COFFEE), 2).add(ProductMatch(WATER))
    cart = cart.discount_line(1, Discount.fixed(100))
    total = cart.totals(POLICY).total
    draft = draft_sale(cart, POLICY, [Tender.cash(2000, total)], device_id="k1", now=NOW)
    return draft.seal(7, "K01-000007")


def test_a_receipt_carries_lines_taxes_totals_tenders_and_change_in_the_locale() -> None:
    sale = _sale()
    receipt = receipt_for(sale, store_name="Eckladen", locale="de_DE", footer=("Danke!",))
    assert receipt.receipt_number == "K01-000007"
    assert receipt.sale_id == sale.id
    assert receipt.title == ""
    assert [(x.text, x.quantity) for x in receipt.lines] == [
        ("Kaffee 250 g", "2"),
        ("Wasser 0,5 l", "1"),
    ]
    assert receipt.lines[0].amount == "8,98\xa0€"
    assert receipt.lines[0].discount == "-1,00\xa0€"
    assert receipt.lines[1].discount == ""
    assert receipt.total == Money(sale.total, "EUR").format("de_DE")
    assert receipt.tenders == (("Cash", "20,00\xa0€"),)
    assert receipt.change == Money(2000 - sale.total, "EUR").format("de_DE")
    assert [rate for rate, _, _ in receipt.taxes] == ["7%", "19%"]
    assert receipt.footer == ("Danke!",)
    assert receipt.created_at == "2026-11-22 14:30"


def test_a_void_is_titled_and_shows_negative_amounts() -> None:
    sale = _sale()
    void = draft_void(sale, device_id="k1", now=NOW, staff="Ana", reason="wrong item").seal(
        8, "K01-000008"
    )
    receipt = receipt_for(void, store_name="Eckladen", locale="en_US")
    assert receipt.title == "VOID"
    assert receipt.total.startswith("-")
    assert receipt.change == ""


def test_a_weighed_line_shows_kilograms() -> None:
    apples = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
    cart = Cart("EUR")
    from appliance.core.barcode import VariableMeasureRule, parse_barcode

    rule = VariableMeasureRule("21", 5, "weight")
    cart = cart.add(ProductMatch(apples, parse_barcode("2112345012346", [rule])))
    total = cart.totals(POLICY).total
    draft = draft_sale(cart, POLICY, [Tender("card", total)], device_id="k1", now=NOW)
    receipt = receipt_for(draft.seal(1, "K-000001"), store_name="S", locale="en_US")
    assert receipt.lines[0].quantity == "1.234 kg"


def test_a_rounded_cash_sale_and_an_approved_void_say_so_on_paper() -> None:
    chf = Product("BREAD", "Brot", Money(333, "CHF"), "standard")
    cart = Cart("CHF").add(ProductMatch(chf))
    draft = draft_sale(
        cart, POLICY, [Tender.cash(500, 335)], device_id="k1", now=NOW, cash_rounding=5
    )
    sale = draft.seal(1, "K01-000001")
    assert sale.rounding == 2
    receipt = receipt_for(sale, store_name="Laden", locale="de_CH")
    assert [(n.text, n.value) for n in receipt.body] == [("Cash rounding", "CHF\xa00.02")]
    void = draft_void(
        sale, device_id="k1", now=NOW, staff="Ana", reason="wrong item", approved_by="Sam"
    ).seal(2, "K01-000002")
    notes = {n.text: n.value for n in receipt_for(void, store_name="Laden", locale="de_CH").body}
    assert notes == {"Cash rounding": "CHF-0.02", "Approved by": "Sam"}
    plain = receipt_for(_sale(), store_name="Eckladen", locale="de_DE")
    assert plain.body == ()
