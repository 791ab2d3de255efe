"""Writers meeting each other: a locked database is a StoreError, an import never blocks a sale."""

from __future__ import annotations

from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.errors import StoreError
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from tests.store.crash_writer import RECEIPT_PREFIX, sale_draft


def test_a_sale_that_cannot_get_the_write_lock_is_a_store_error_and_leaves_nothing(
    db: SqliteDatabase, db_path: Path, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    other = open_database(db_path)
    try:
        other.execute_sql("BEGIN IMMEDIATE")
        db.execute_sql("PRAGMA busy_timeout = 50")
        ledger = SalesLedger(db, RECEIPT_PREFIX)
        with pytest.raises(StoreError, match="could not be stored"):
            ledger.commit(sale_draft(products, [("COLA", 1)]))
        other.execute_sql("ROLLBACK")
        assert ledger.count() == 0
        assert ledger.commit(sale_draft(products, [("COLA", 1)])).sequence == 1
    finally:
        other.close()


def test_a_sale_commits_while_a_large_import_is_being_staged(
    db: SqliteDatabase, db_path: Path, catalog: SqliteCatalog, products: dict[str, Product]
) -> None:
    till = open_database(db_path)
    till.execute_sql("PRAGMA busy_timeout = 0")  # would fail at once if the import held the lock
    ledger = SalesLedger(till, RECEIPT_PREFIX)
    sold: list[int] = []

    def sell_during_staging(done: int) -> None:
        if not sold:
            sold.append(ledger.commit(sale_draft(products, [("COLA", 1)])).sequence)

    many = (
        (Product(f"IMP-{i}", f"Imported {i}", Money(100 + i, "EUR"), "standard"), None)
        for i in range(5000)
    )
    try:
        assert catalog.upsert(many, progress=sell_during_staging, chunk=1000) == 5000
    finally:
        till.close()
    assert sold == [1]
    assert catalog.by_sku("IMP-4999") is not None
