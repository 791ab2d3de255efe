"""The SQLite catalog: lookups, upserts with moving barcodes, import stock and atomicity."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest
from peewee import SqliteDatabase

from appliance.core.catalog import Product, find_product
from appliance.core.money import Money
from appliance.store.catalog import SqliteCatalog
from tests.store.conftest import Snapshot
from tests.store.crash_writer import BAG, BEER, BREAD, COLA, STOCK, ean13


def _movements(db: SqliteDatabase, sku: str) -> list[tuple[int, str, str | None]]:
    rows = db.execute_sql(
        "SELECT delta, reason, document_id FROM stock_movement WHERE sku = ? ORDER BY id", (sku,)
    )
    return [tuple(row) for row in rows.fetchall()]


def test_upserted_products_are_found_by_barcode_and_sku(db: SqliteDatabase) -> None:
    catalog = SqliteCatalog(db)
    assert catalog.count() == 0
    assert catalog.upsert([(COLA, 50), (BEER, None), (BREAD, 10)]) == 3

    for product in (COLA, BEER, BREAD):
        assert catalog.by_sku(product.sku) == product
        for key in product.barcodes:
            assert catalog.by_barcode_key(key) == product
    assert catalog.count() == 3
    assert catalog.barcode_count() == 4
    assert catalog.by_sku("NOPE") is None
    assert catalog.by_barcode_key(ean13("999999999999")) is None
    assert catalog.stock_of("COLA") == 50
    assert catalog.stock_of("BEER") == 0
    assert catalog.stock_of("NOPE") is None


def test_every_product_attribute_round_trips(catalog: SqliteCatalog) -> None:
    scale = Product(
        sku="APPLES",
        name="Apples",
        price=Money(299, "EUR"),
        tax_class="reduced",
        category="fruit",
        age_restriction=0,
        stock_tracked=False,
        sold_by="kg",
        names=(("de", "Äpfel"), ("ja", "りんご")),
        barcodes=(),
    )
    catalog.upsert([(scale, None)])
    assert catalog.by_sku("APPLES") == scale
    assert catalog.by_sku("BEER") == BEER
    assert catalog.by_sku("BAG") == BAG
    # The checkout's lookup finds them through the port.
    assert find_product(catalog, "4006381333931").product == COLA
    assert find_product(catalog, "APPLES").product == scale


def test_upsert_changes_price_and_moves_a_barcode(
    db: SqliteDatabase, catalog: SqliteCatalog
) -> None:
    moving = BREAD.barcodes[1]
    dearer_cola = dataclasses.replace(
        COLA, price=Money(249, "EUR"), barcodes=tuple(sorted((*COLA.barcodes, moving)))
    )
    bread_left = dataclasses.replace(BREAD, barcodes=(BREAD.barcodes[0],))
    movements = db.execute_sql("SELECT COUNT(*) FROM stock_movement").fetchone()[0]

    assert catalog.upsert([(dearer_cola, None)]) == 1

    assert catalog.by_sku("COLA") == dearer_cola
    assert catalog.by_barcode_key(moving) == dearer_cola
    assert catalog.by_sku("BREAD") == bread_left, "the barcode still belongs to the bread too"
    assert catalog.by_barcode_key(BREAD.barcodes[0]) == bread_left
    assert catalog.count() == 4
    assert catalog.barcode_count() == 5
    # No stock level given: stock and movements stay as they were.
    assert catalog.stock_of("COLA") == 50
    assert db.execute_sql("SELECT COUNT(*) FROM stock_movement").fetchone()[0] == movements


def test_a_product_upserted_without_barcodes_loses_them(catalog: SqliteCatalog) -> None:
    catalog.upsert([(dataclasses.replace(BEER, barcodes=()), None)])
    assert catalog.by_barcode_key(BEER.barcodes[0]) is None
    assert catalog.by_sku("BEER") == dataclasses.replace(BEER, barcodes=())


def test_stock_set_by_an_import_is_recorded_as_a_movement(
    db: SqliteDatabase, catalog: SqliteCatalog
) -> None:
    assert _movements(db, "COLA") == [(50, "import", None)]
    assert _movements(db, "BAG") == [], "no stock level was given for the bag"

    catalog.upsert([(COLA, 30), (BEER, 24), (BAG, None)])

    assert catalog.stock_of("COLA") == 30
    assert _movements(db, "COLA") == [(50, "import", None), (-20, "import", None)]
    assert _movements(db, "BEER") == [(24, "import", None)], "an unchanged level adds no movement"
    assert catalog.stock_of("BAG") == 0
    assert _movements(db, "BAG") == []
    sums = db.execute_sql(
        "SELECT p.sku, p.stock_qty, COALESCE(SUM(m.delta), 0) FROM product p"
        " LEFT JOIN stock_movement m ON m.sku = p.sku GROUP BY p.sku"
    ).fetchall()
    for sku, level, total in sums:
        assert level == total, f"{sku}: stock {level} but movements add up to {total}"


@pytest.mark.parametrize("chunk", [1, 2000])
def test_a_failing_upsert_leaves_the_catalog_as_it_was(
    catalog: SqliteCatalog, snapshot: Callable[[], Snapshot], chunk: int
) -> None:
    before = snapshot()

    def feed() -> Iterator[tuple[Product, int | None]]:
        yield dataclasses.replace(COLA, price=Money(1, "EUR"), barcodes=BREAD.barcodes), 999
        yield dataclasses.replace(BEER, name="renamed"), 1
        yield dataclasses.replace(BAG, sku="NEW", barcodes=(ean13("401234500100"),)), 5
        raise RuntimeError("the import file is truncated")

    with pytest.raises(RuntimeError, match="truncated"):
        catalog.upsert(feed(), chunk=chunk)

    assert snapshot() == before
    assert catalog.by_sku("COLA") == COLA
    assert catalog.by_barcode_key(BREAD.barcodes[0]) == BREAD
    assert catalog.by_sku("NEW") is None
    assert catalog.stock_of("COLA") == STOCK["COLA"]
    # The store is usable afterwards.
    assert catalog.upsert([(dataclasses.replace(BEER, name="renamed"), None)]) == 1
    assert catalog.by_sku("BEER") == dataclasses.replace(BEER, name="renamed")


def test_upsert_reports_progress_per_chunk(db: SqliteDatabase) -> None:
    catalog = SqliteCatalog(db)
    many = [
        (dataclasses.replace(COLA, sku=f"SKU{n}", barcodes=(ean13(f"40000000{n:04d}"),)), n)
        for n in range(5)
    ]
    seen: list[int] = []
    assert catalog.upsert(many, progress=seen.append, chunk=2) == 5
    assert seen == [2, 4, 5]
    assert catalog.count() == 5
    assert catalog.stock_of("SKU4") == 4
