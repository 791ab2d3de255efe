"""The in-memory catalog the checkout scans against: same answers, and it follows changes."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.memory_catalog import MemoryCatalog


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_exactly_what_the_database_answers(
    catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    memory = MemoryCatalog(catalog)
    for product in products.values():
        assert memory.by_sku(product.sku) == catalog.by_sku(product.sku)
        for key in product.barcodes:
            assert memory.by_barcode_key(key) == catalog.by_barcode_key(key)
    assert memory.by_sku("NO-SUCH-SKU") is None
    assert memory.by_barcode_key("00000000000000") is None
    assert len(memory) == catalog.count()


def test_a_change_made_by_another_process_arrives_after_the_recheck_interval(
    catalog: SqliteCatalog, db_path: Path, products: dict[str, Product]
) -> None:
    clock = FakeClock()
    memory = MemoryCatalog(catalog, recheck_seconds=1.0, monotonic=clock)
    product = next(iter(products.values()))
    assert memory.by_sku(product.sku) == product
    # A second connection stands in for `appliance catalog import` in another process.
    other: SqliteDatabase = open_database(db_path)
    try:
        dearer = replace(product, price=Money(product.price.minor + 100, product.price.currency))
        SqliteCatalog(other).upsert([(dearer, None)])
    finally:
        other.close()
    clock.now += 0.5
    assert memory.by_sku(product.sku) == product, "rechecked before the interval passed"
    clock.now += 1.0
    # The scan that notices the change is answered from the old catalog, without waiting.
    assert memory.by_sku(product.sku) == product
    memory.wait_for_reload(timeout=10)
    assert memory.by_sku(product.sku) == dearer


def test_an_upsert_in_this_process_raises_the_version_and_is_picked_up(
    catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    clock = FakeClock()
    memory = MemoryCatalog(catalog, monotonic=clock)
    before = catalog.version()
    memory.refresh()
    new = Product("NEW-1", "New thing", Money(150, "EUR"), "standard")
    catalog.upsert([(new, 3)])
    assert catalog.version() == before + 1
    assert memory.by_sku("NEW-1") is None
    clock.now += 5
    memory.by_sku("NEW-1")
    memory.wait_for_reload(timeout=10)
    assert memory.by_sku("NEW-1") == new


def test_the_reload_runs_off_the_calling_thread(catalog: SqliteCatalog) -> None:
    clock = FakeClock()
    memory = MemoryCatalog(catalog, monotonic=clock)
    memory.refresh()
    loaded_on: list[str] = []
    original = catalog.all_products

    def recording_all_products():  # type: ignore[no-untyped-def]
        loaded_on.append(threading.current_thread().name)
        return original()

    catalog.all_products = recording_all_products  # type: ignore[method-assign]
    catalog.upsert([(Product("NEW-2", "Other", Money(99, "EUR"), "standard"), None)])
    clock.now += 5
    memory.by_sku("NEW-2")
    memory.wait_for_reload(timeout=10)
    assert loaded_on == ["catalog-reload"]
    assert memory.by_sku("NEW-2") is not None


def test_a_failed_reload_keeps_the_previous_catalog(
    catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    clock = FakeClock()
    memory = MemoryCatalog(catalog, monotonic=clock)
    memory.refresh()
    product = next(iter(products.values()))

    def broken():  # type: ignore[no-untyped-def]
        raise RuntimeError("disk gone")

    catalog.all_products = broken  # type: ignore[method-assign]
    catalog.upsert([(Product("NEW-3", "X", Money(1, "EUR"), "standard"), None)])
    clock.now += 5
    memory.by_sku(product.sku)
    memory.wait_for_reload(timeout=10)
    assert memory.by_sku(product.sku) == product
