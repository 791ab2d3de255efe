"""Stock movements: what came into a store or left it other than by a sale, once each.

A movement (goods in, an adjustment, damage, a return, a web order, a transfer) moves a
product's level from the catalog version it was recorded at (hub/stock_levels.py). A
caller's `reference` (a delivery note, a web order id) makes it idempotent: the same
reference in the same store is the movement already recorded. After one, `send_levels`
makes the stock-only catalog version that carries the new level to the store's devices.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from peewee import Database

from hub.catalog import HubCatalog
from hub.catalog_records import StockMovement
from hub.stock_levels import stock_changes, store_sales

Reason = Literal["goods_in", "adjustment", "damage", "return", "web_order", "transfer"]
REASONS: tuple[Reason, ...] = get_args(Reason)


@dataclass(frozen=True, slots=True)
class Movement:
    """One recorded movement of a product's stock (items, or grams when sold by weight)."""

    id: int
    store: str
    sku: str
    delta: int
    reason: str
    reference: str | None
    version: int  # the store's catalog version it was recorded at
    at: datetime  # naive UTC


_COLUMNS = (
    StockMovement.id,
    StockMovement.store,
    StockMovement.sku,
    StockMovement.delta,
    StockMovement.reason,
    StockMovement.reference,
    StockMovement.version,
    StockMovement.at,
)


def by_reference(db: Database, store: str, reference: str) -> Movement | None:
    """The store's movement recorded with this reference, if any."""
    query = StockMovement.select(*_COLUMNS).where(
        StockMovement.store == store, StockMovement.reference == reference
    )
    found = query.tuples().execute(db)
    return _movement(found[0]) if found else None


def record_movement(
    catalog: HubCatalog,
    sku: str,
    change: tuple[int, Reason, str | None],
    *,
    token: str | None,
    at: datetime,
) -> Movement:
    """Record (delta, reason, reference) at the catalog's version; inside `write_lock()`."""
    delta, reason, reference = change
    version = catalog.version()
    new_id = StockMovement.insert(
        store=catalog.store, sku=sku, delta=delta, reason=reason, reference=reference,
        version=version, at=at, token=token,
    ).execute(catalog.db)  # fmt: skip
    return Movement(int(new_id), catalog.store, sku, delta, reason, reference, version, at)


def movements_of(
    db: Database, store: str, sku: str, *, after: int = 0, limit: int = 100
) -> list[Movement]:
    """A product's movements in the order they were recorded, after movement id `after`."""
    query = (
        StockMovement.select(*_COLUMNS)
        .where(StockMovement.store == store, StockMovement.sku == sku, StockMovement.id > after)
        .order_by(StockMovement.id)
        .limit(limit)
    )
    return [_movement(row) for row in query.tuples().execute(db)]


def send_levels(catalog: HubCatalog, skus: Collection[str]) -> int | None:
    """Make a stock-only version of these products' levels that differ from those last sent.

    Inside `write_lock()`, so it agrees with the worker's corrections; returns the new
    version, or None when every level was already sent. The serve workers push it.
    """
    db = catalog.db
    change = stock_changes(
        catalog,
        lambda since: store_sales(db, catalog.store, since, skus=skus),
        skus=skus,
    )
    return catalog.add_stock_version(change) if change.levels else None


def _movement(row: tuple[Any, ...]) -> Movement:
    ident, store, sku, delta, reason, reference, version, at = row
    # SQLite hands a time back as text, PostgreSQL as a datetime.
    moment = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    return Movement(int(ident), store, sku, int(delta), reason, reference, int(version), moment)
