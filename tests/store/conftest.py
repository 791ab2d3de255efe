"""Fixtures for the local store: a migrated database in tmp_path and a small catalog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.migrations import migrate
from tests.store.crash_writer import PRODUCTS, RECEIPT_PREFIX, STOCK

TABLES = ("product", "barcode", "document", "document_line", "stock_movement", "outbox", "meta")
Snapshot = dict[str, list[tuple[object, ...]]]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's database lives (its folder does not exist yet)."""
    return tmp_path / "data" / "appliance.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[SqliteDatabase]:
    """A freshly migrated, empty database."""
    database = open_database(db_path)
    migrate(database)
    yield database
    if not database.is_closed():
        database.close()


@pytest.fixture
def products() -> dict[str, Product]:
    """The sample shop's products by SKU (one age-restricted, one not stock-tracked)."""
    return {p.sku: p for p in PRODUCTS}


@pytest.fixture
def catalog(db: SqliteDatabase, products: dict[str, Product]) -> SqliteCatalog:
    """The sample products imported into the database with their starting stock."""
    store = SqliteCatalog(db)
    store.upsert((p, STOCK[p.sku]) for p in products.values())
    return store


@pytest.fixture
def ledger(db: SqliteDatabase, catalog: SqliteCatalog) -> SalesLedger:
    """A ledger over the database holding the sample catalog."""
    return SalesLedger(db, RECEIPT_PREFIX)


@pytest.fixture
def snapshot(db: SqliteDatabase) -> Callable[[], Snapshot]:
    """Every row of every table, in a stable order: compare before and after."""

    def take() -> Snapshot:
        return {
            table: db.execute_sql(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in TABLES
        }

    return take
