"""Parked carts: stored whole, listed oldest first, handed back exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.barcode import VariableMeasureRule, gtin_check_digit, parse_barcode
from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.discount import Discount
from appliance.core.money import Money
from appliance.errors import CartError, StoreError
from appliance.store.database import open_database
from appliance.store.parked_carts import ParkedCarts
from tests.store.crash_writer import BEER, COLA

APPLES = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")


def full_cart() -> Cart:
    """Every kind of line field: a barcode, a weighed line, discounts, an age approval."""
    cart = Cart("EUR").add(ProductMatch(COLA, parse_barcode("4006381333931")), 2)
    cart = cart.add(ProductMatch(BEER)).approve_age("S2ABCDE")
    body = "211234501250"  # 1,250 g of item 12345
    label = parse_barcode(body + gtin_check_digit(body), [WEIGHT_21])
    cart = cart.add(ProductMatch(APPLES, label))
    cart = cart.discount_line(1, Discount.percent(1500, "damaged box"))
    return cart.discount_all(Discount.fixed(30, "loyalty"))


@pytest.fixture
def parked(db: SqliteDatabase) -> ParkedCarts:
    return ParkedCarts(db)


def test_a_parked_cart_comes_back_exactly_once(parked: ParkedCarts) -> None:
    cart = full_cart()
    before = datetime.now(UTC)

    entry = parked.park(cart, label="  blue jacket ", staff_id="S2ABCDE", total=986)

    assert entry.label == "blue jacket"
    assert (entry.staff_id, entry.lines, entry.total, entry.currency) == ("S2ABCDE", 3, 986, "EUR")
    assert before - timedelta(seconds=1) <= entry.parked_at <= datetime.now(UTC)
    assert parked.list() == [entry]
    assert parked.count() == 1

    back = parked.take(entry.park_id)

    assert back == cart
    assert back.lines[0].discount == Discount.percent(1500, "damaged box")
    assert back.lines[0].barcode == "4006381333931"
    assert back.lines[1].age_approved_by == "S2ABCDE"
    assert (back.lines[2].measure, back.lines[2].quantity) == ("weight", 1250)
    assert back.next_line_id == 4
    assert back.discount == Discount.fixed(30, "loyalty")
    assert parked.list() == []
    with pytest.raises(StoreError, match="already resumed"):
        parked.take(entry.park_id)


def test_carts_are_listed_oldest_first_and_survive_a_restart(
    parked: ParkedCarts, db: SqliteDatabase, db_path: Path
) -> None:
    cart = Cart("EUR").add(ProductMatch(COLA))
    entries = [parked.park(cart, label=f"cart {n}", staff_id="", total=199) for n in range(5)]
    assert [e.label for e in parked.list()] == [f"cart {n}" for n in range(5)]
    db.close()
    again = open_database(db_path)
    try:
        assert ParkedCarts(again).list() == entries
        assert ParkedCarts(again).take(entries[2].park_id) == cart
        assert [e.label for e in ParkedCarts(again).list()] == [
            "cart 0",
            "cart 1",
            "cart 3",
            "cart 4",
        ]
    finally:
        again.close()


def test_an_empty_cart_is_not_parked(parked: ParkedCarts) -> None:
    with pytest.raises(CartError, match="nothing in the cart"):
        parked.park(Cart("EUR"), label="", staff_id="", total=0)
    assert parked.list() == []


def test_two_tills_taking_the_same_cart_get_it_once(parked: ParkedCarts) -> None:
    entry = parked.park(full_cart(), label="", staff_id="", total=612)
    results: list[object] = []
    start = threading.Barrier(2)

    def take() -> None:
        start.wait()
        try:
            results.append(parked.take(entry.park_id))
        except StoreError as err:
            results.append(err)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(type(r).__name__ for r in results) == ["Cart", "StoreError"]


def test_an_unreadable_cart_is_reported_and_kept(parked: ParkedCarts, db: SqliteDatabase) -> None:
    entry = parked.park(full_cart(), label="", staff_id="", total=612)
    db.execute_sql(
        "UPDATE parked_cart SET body = ? WHERE park_id = ?", (b"{not json", entry.park_id)
    )
    with pytest.raises(StoreError, match="cannot be read"):
        parked.take(entry.park_id)
    assert [e.park_id for e in parked.list()] == [entry.park_id]


def test_a_cart_in_another_currency_is_refused_and_stays_parked(parked: ParkedCarts) -> None:
    """The till would refuse it; taken, it would be lost, so the take rolls back."""
    entry = parked.park(full_cart(), label="", staff_id="", total=986)
    with pytest.raises(StoreError, match="is in EUR, not CHF"):
        parked.take(entry.park_id, currency="CHF")
    assert parked.list() == [entry]
    assert parked.take(entry.park_id, currency="EUR") == full_cart()
