"""Price-label lines of goods sold by weight from older devices move the hub's stock in grams."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from peewee import Database

from appliance.core.catalog import Product
from appliance.core.money import Money
from hub.catalog import HubCatalog, create_catalog_tables
from hub.db import open_hub_database
from hub.migrations import migrate as migrate_hub
from hub.stock_levels import SoldLine, kg_prices_of, sold_lines

AT = datetime(2026, 3, 2, 9, 0)
APPLES = Product("APPLES", "Apples", Money(299, "EUR"), "reduced", sold_by="kg")
PREPACKED = Product("SALAD", "Salad bowl", Money(350, "EUR"), "reduced")


def document(kind: str, *lines: dict[str, object]) -> str:
    """A device's document as the hub stores it, with only what stock reads."""
    return json.dumps({"kind": kind, "created_at": AT.isoformat() + "Z", "lines": list(lines)})


def price_line(sku: str, label: int, quantity: int = 1) -> dict[str, object]:
    """A price-label line as an older release sent it: measure "price", one item."""
    return {"sku": sku, "quantity": quantity, "measure": "price", "unit_price": label}


def test_an_old_price_label_line_of_goods_sold_by_kg_counts_its_grams() -> None:
    """3.74 on apples at 2.99 per kg is 1,251 g, not 1 g; a void puts the grams back."""
    prices = {"APPLES": 299}
    assert sold_lines(document("sale", price_line("APPLES", 374)), lambda: prices) == [
        SoldLine("APPLES", 1251, AT)
    ]
    void = document("void", price_line("APPLES", 374, -1))
    assert sold_lines(void, lambda: prices) == [SoldLine("APPLES", -1251, AT)]


def test_a_price_label_on_goods_sold_by_the_item_stays_one_item() -> None:
    assert sold_lines(document("sale", price_line("SALAD", 350)), lambda: {"APPLES": 299}) == [
        SoldLine("SALAD", 1, AT)
    ]


def test_without_a_price_per_kg_the_line_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert sold_lines(document("sale", price_line("APPLES", 374)), lambda: {"APPLES": 0}) == []
    assert "left out of stock" in caplog.text


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate_hub(database)
    create_catalog_tables(database)
    yield database
    database.close()


def test_the_prices_per_kg_come_from_the_store_catalog(db: Database) -> None:
    HubCatalog(db, "linz-2").import_products([(APPLES, 10_000), (PREPACKED, 5)], now=AT)
    assert kg_prices_of(db, "linz-2") == {"APPLES": 299}
