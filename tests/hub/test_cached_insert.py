"""CachedInsert: the sale rows a batch inserts, with peewee's SQL rendered once per shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from peewee import Database

from hub.cached_insert import CachedInsert
from hub.models import Sale
from tests.hub.test_ingest import sqlite_hub

AT = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated hub database of each kind, with no sales."""
    if request.param == "sqlite":
        db = sqlite_hub(tmp_path / "hub.db")
    else:
        db = request.getfixturevalue("postgres_hub")
        db.execute_sql("TRUNCATE sale")
    yield db
    db.close()


def row(seq: int, **changes: Any) -> dict[str, Any]:
    """A sale row as the ingest builds it (hub/ingest.py _sale_row)."""
    base = {
        "device": "kiosk-1",
        "sale_id": f"sale-{seq}",
        "seq": seq,
        "kind": "sale",
        "created_at": AT,
        "total": 100 * seq,
        "currency": "EUR",
        "document": f'{{"seq": {seq}}}',
        "received_at": AT,
        "clock_verified": seq % 2 == 0,
        "store": "north" if seq % 3 else None,
    }
    return {**base, **changes}


def stored(db: Database) -> list[tuple[Any, ...]]:
    """Every sale row's columns, by seq."""
    query = Sale.select(
        Sale.device,
        Sale.sale_id,
        Sale.seq,
        Sale.kind,
        Sale.created_at,
        Sale.total,
        Sale.currency,
        Sale.document,
        Sale.clock_verified,
        Sale.store,
    ).order_by(Sale.seq)
    return list(query.tuples().execute(db))


def expected(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as stored() reads them back."""
    names = ("device", "sale_id", "seq", "kind", "created_at", "total", "currency", "document")
    return [(*(r[n] for n in names), r["clock_verified"], r["store"]) for r in rows]


def test_rows_are_stored_as_peewee_would_store_them(hub_db: Database) -> None:
    insert = CachedInsert(Sale)
    first, second = [row(s) for s in range(1, 4)], [row(s) for s in range(4, 7)]
    assert insert.execute(hub_db, first) == 3
    assert insert.execute(hub_db, second) == 3  # the same shape: the cached statement
    assert stored(hub_db) == expected(first + second)


def test_conflicting_rows_are_skipped_and_not_counted(hub_db: Database) -> None:
    insert = CachedInsert(Sale)
    assert insert.execute(hub_db, [row(1), row(2)]) == 2
    again = [row(2), row(3), row(1, sale_id="other-1")]  # a resend, a new one, a seq clash
    assert insert.execute(hub_db, again) == 1
    assert [r[2] for r in stored(hub_db)] == [1, 2, 3]
    assert insert.execute(hub_db, []) == 0


def test_rows_without_a_defaulted_column_take_peewees_own_statement(hub_db: Database) -> None:
    # peewee adds the column's default itself; the parameters built here differ from its
    # own, so its statement runs and nothing wrong is cached.
    insert = CachedInsert(Sale)
    rows = [{k: v for k, v in row(s).items() if k != "clock_verified"} for s in (1, 2)]
    assert insert.execute(hub_db, rows) == 2
    assert insert.execute(hub_db, [row(3), row(4)]) == 2
    assert [r[8] for r in stored(hub_db)] == [True, True, False, True]
