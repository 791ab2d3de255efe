"""Each stored sale keeps its device's store: filled at ingest, backfilled by migration 6."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from hub.api.access import authenticate, issue_token
from hub.db import is_sqlite
from hub.ingest import SalesIngest
from hub.migrations import SCHEMA_VERSION, migrate, schema_version
from hub.models import Sale
from hub.stores import assign_device
from tests.hub.databases import KINDS, each_kind
from tests.hub.test_ingest import batch


@pytest.fixture(params=KINDS)
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind (a new PostgreSQL database per test)."""
    yield from each_kind(request, tmp_path, "postgres")


def stores(db: Database) -> list[tuple[str, int, str | None]]:
    """(device, seq, store) of every stored sale."""
    query = Sale.select(Sale.device, Sale.seq, Sale.store).order_by(Sale.device, Sale.seq)
    return [(str(d), int(s), st) for d, s, st in query.tuples().execute(db)]


def as_version_5(db: Database) -> None:
    """Take the database back to what a version-5 hub left: no sale.store, no tokens."""
    if is_sqlite(db):
        db.execute_sql("DROP INDEX sale_store_created_at")  # SQLite keeps an indexed column
    db.execute_sql("ALTER TABLE sale DROP COLUMN store")
    db.execute_sql("DROP TABLE api_token")
    db.execute_sql("UPDATE hub_schema SET version = 5")


def test_the_ingest_stores_each_sale_with_its_devices_store_at_that_time(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    ingest.apply("kiosk-0", batch("kiosk-0", [1]))  # in no store yet
    assign_device(hub_db, "kiosk-1", "berlin")
    ingest.apply("kiosk-1", batch("kiosk-1", [1, 2]))
    assign_device(hub_db, "kiosk-1", "hamburg")  # moved: its next sales count there
    ingest.apply("kiosk-1", batch("kiosk-1", [3]))
    ingest.apply("kiosk-1", batch("kiosk-1", [1, 2, 3]))  # a resend changes nothing

    assert stores(hub_db) == [
        ("kiosk-0", 1, None),
        ("kiosk-1", 1, "berlin"),
        ("kiosk-1", 2, "berlin"),
        ("kiosk-1", 3, "hamburg"),
    ]


def test_migration_6_gives_older_sales_their_devices_store_and_adds_tokens(
    hub_db: Database,
) -> None:
    ingest = SalesIngest(hub_db)
    assign_device(hub_db, "kiosk-1", "berlin")
    ingest.apply("kiosk-1", batch("kiosk-1", [1, 2]))
    ingest.apply("kiosk-2", batch("kiosk-2", [1]))  # a device in no store
    as_version_5(hub_db)
    assert "store" not in {c.name for c in hub_db.get_columns("sale")}

    applied = migrate(hub_db)

    assert [m.version for m in applied] == list(range(6, SCHEMA_VERSION + 1))
    assert schema_version(hub_db) == SCHEMA_VERSION
    assert stores(hub_db) == [
        ("kiosk-1", 1, "berlin"),
        ("kiosk-1", 2, "berlin"),
        ("kiosk-2", 1, None),
    ]
    indexes = {index.name for index in hub_db.get_indexes("sale")}
    assert "sale_store_created_at" in indexes
    token = issue_token(hub_db, "shop", "read", "berlin")
    principal = authenticate(hub_db, token.value)
    assert principal is not None
    assert principal.store == "berlin"
    # The migrated database goes on filling the column, and migrating again changes nothing.
    assign_device(hub_db, "kiosk-2", "hamburg")
    ingest.apply("kiosk-2", batch("kiosk-2", [2]))
    assert stores(hub_db)[-1] == ("kiosk-2", 2, "hamburg")
    assert migrate(hub_db) == []
