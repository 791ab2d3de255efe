"""A day's totals: the store's local day, voids cancelling sales, refunds, tenders, pieces."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from appliance.core.barcode import VariableMeasureRule, gtin_check_digit, parse_barcode
from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.money import Money
from appliance.core.sale import Sale, draft_sale
from appliance.core.tender import Tender
from appliance.store.day_totals import DayTotals, day_totals
from appliance.store.documents import SalesLedger
from tests.store.crash_writer import (
    CURRENCY,
    DEVICE_ID,
    POLICY,
    refund_draft,
    sale_draft,
    void_draft,
)

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+2 in May
DAY = date(2024, 5, 17)
APPLES = Product("APPLES", "Apples", Money(299, CURRENCY), "reduced", sold_by="kg")
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")


def utc(text: str) -> datetime:
    """A UTC moment from "YYYY-MM-DD HH:MM"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cash_sale(ledger: SalesLedger, products: dict[str, Product], when: datetime) -> Sale:
    """Two colas and a bread, paid with a 10 euro note."""
    cart = Cart(CURRENCY).add(ProductMatch(products["COLA"]), 2)
    cart = cart.add(ProductMatch(products["BREAD"]))
    total = cart.totals(POLICY).total
    draft = draft_sale(
        cart, POLICY, [Tender.cash(1000, total)], device_id=DEVICE_ID, now=when, staff="ann"
    )
    return ledger.commit(draft)


def test_a_day_in_the_stores_time_zone(ledger: SalesLedger, products: dict[str, Product]) -> None:
    # 23:00 on the 16th in Berlin: a card sale voided the next morning.
    earlier = ledger.commit(sale_draft(products, [("COLA", 3)], now=utc("2024-05-16 21:00")))
    # 00:30 on the 17th in Berlin, though still the 16th in UTC.
    first = cash_sale(ledger, products, utc("2024-05-16 22:30"))
    ledger.commit(void_draft(earlier, now=utc("2024-05-17 06:00")))
    mistake = ledger.commit(sale_draft(products, [("COLA", 1)], now=utc("2024-05-17 08:00")))
    ledger.commit(void_draft(mistake, now=utc("2024-05-17 08:01")))
    ledger.commit(refund_draft(first, {1: 1}, now=utc("2024-05-17 12:00")))
    ledger.commit(sale_draft(products, [("BREAD", 1)], now=utc("2024-05-17 21:59")))
    # 00:01 on the 18th in Berlin: another day.
    ledger.commit(sale_draft(products, [("COLA", 5)], now=utc("2024-05-17 22:01")))

    totals = day_totals(ledger, DAY, BERLIN)

    assert first.total == 747 and earlier.total == 597
    assert totals == DayTotals(
        day=DAY,
        currency="EUR",
        sales=2,  # the cash sale and the bread; the voided mistake does not count
        refunds=1,
        voids=2,
        gross=747 + 349,
        refunded=199 + 597,  # the refunded cola, and the void of the 16th's sale
        net=747 + 349 - 199 - 597,
        by_tender={"cash": 747, "card": 349 - 199 - 597},
        items=3 + 1 - 1 - 3,
    )


def test_a_closed_day_keeps_its_totals_when_a_sale_is_voided_later(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    sale = ledger.commit(sale_draft(products, [("COLA", 3)], now=utc("2024-05-16 10:00")))
    before = day_totals(ledger, date(2024, 5, 16), BERLIN)
    ledger.commit(void_draft(sale, now=utc("2024-05-17 10:00")))

    assert day_totals(ledger, date(2024, 5, 16), BERLIN) == before
    assert (before.sales, before.gross, before.items, before.by_tender) == (
        1,
        597,
        3,
        {"card": 597},
    )
    after = day_totals(ledger, DAY, BERLIN)
    assert (after.sales, after.voids, after.refunded, after.net) == (0, 1, 597, -597)


def test_a_day_without_documents_is_all_zero(ledger: SalesLedger) -> None:
    assert day_totals(ledger, DAY, BERLIN, currency="EUR") == DayTotals(
        DAY, "EUR", 0, 0, 0, 0, 0, 0, {}, 0
    )


def test_a_weighed_line_is_one_piece(ledger: SalesLedger, products: dict[str, Product]) -> None:
    body = "211234501250"  # 1,250 g of apples
    label = parse_barcode(body + gtin_check_digit(body), [WEIGHT_21])
    cart = Cart(CURRENCY).add(ProductMatch(APPLES, label)).add(ProductMatch(products["COLA"]), 2)
    total = cart.totals(POLICY).total
    ledger.commit(
        draft_sale(
            cart,
            POLICY,
            [Tender("card", total)],
            device_id=DEVICE_ID,
            now=utc("2024-05-17 10:00"),
        )
    )
    totals = day_totals(ledger, DAY, BERLIN)
    assert (totals.items, totals.gross) == (3, total)
    assert total == 374 + 398  # 1.25 kg at 2.99 a kg, rounded half up, and two colas


def test_cash_rounding_is_counted_beside_the_tenders(
    ledger: SalesLedger, products: dict[str, Product]
) -> None:
    cart = Cart(CURRENCY).add(ProductMatch(products["COLA"]), 2)  # 3.98
    draft = draft_sale(
        cart,
        POLICY,
        [Tender.cash(500, 400)],
        device_id=DEVICE_ID,
        now=utc("2024-05-17 10:00"),
        cash_rounding=5,
    )
    ledger.commit(draft)
    totals = day_totals(ledger, DAY, BERLIN)
    assert (totals.net, totals.rounding, totals.by_tender) == (398, 2, {"cash": 400})
