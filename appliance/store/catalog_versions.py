"""The hub's catalog versions in the store: products, deletes, stock, version, staging.

The writes are meant to run inside the caller's one transaction (`transaction()`), so a
delta or a snapshot is applied whole or not at all. Products go in through the same
staging tables and set-based merge as SqliteCatalog.upsert (its SQL, reused), fed with
rows made straight from the hub's payloads: building 100,000 Product objects first would
cost more than the SQL does (see bench/catalog_apply.py). Snapshot chunks wait in a
staging table (migration 4) until every chunk of their version is there, which also lets
a download resume after a reconnect or a restart. Versions count per store: the store of
the catalog held and of the snapshot staged are meta keys beside the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peewee import SqliteDatabase

from appliance.store import catalog as catalog_sql

# The hub's numbering lives in its own key, so a local `appliance catalog import` can never
# make this device claim a hub version it does not hold. Every applied change also raises
# the local change counter SqliteCatalog.version() reads, so the checkout's catalog reloads.
VERSION_KEY = "hub_catalog_version"
STORE_KEY = "catalog_store"  # the store whose catalog (and version) is held
_STAGING_STORE_KEY = "catalog_staging_store"  # the store of the snapshot being staged
_STAGING_REBASE_KEY = "catalog_staging_rebase"  # "1": that snapshot replaces any version
_BUMP_LOCAL = (
    "INSERT INTO meta (key, value) VALUES ('catalog_version', '1')"
    " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)
HUB_REASON = "hub"  # stock_movement.reason of the hub's authoritative corrections

_SET_VERSION = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)
_GET_VERSION = "SELECT value FROM meta WHERE key = ?"
_DELETE_KEY = "DELETE FROM meta WHERE key = ?"
_LAST_MOVEMENT = "SELECT COALESCE(MAX(id), 0) FROM stock_movement"
# The merge records a stock it is given as an 'import' movement; from the hub it is the
# hub's correction. Only this transaction's new rows are relabelled (id above the mark).
_RELABEL = "UPDATE stock_movement SET reason = ? WHERE id > ? AND reason = 'import'"
# Read between staging and merging: does a product give up a picture it had? Then that
# picture's file may be used by no product afterwards.
_DROPS_PICTURE = (
    "SELECT EXISTS (SELECT 1 FROM temp.staged_product s JOIN product p ON p.sku = s.sku"
    " WHERE p.thumbnail > '' AND s.thumbnail IS NOT NULL AND s.thumbnail != p.thumbnail)"
)
_DELETES_PICTURE = "SELECT EXISTS (SELECT 1 FROM product WHERE sku = ? AND thumbnail > '')"
_ANY_PICTURE = "SELECT EXISTS (SELECT 1 FROM product WHERE thumbnail > '')"  # the index: O(1)
_PICTURES = "SELECT DISTINCT thumbnail FROM product WHERE thumbnail > ''"


class CatalogVersions:
    """Products, deletes, the hub's stock and the version; writes go inside `transaction()`."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def transaction(self) -> AbstractContextManager[Any]:
        """One IMMEDIATE transaction: everything one delta or snapshot writes, or nothing."""
        return self._db.atomic("IMMEDIATE")

    def version(self) -> int:
        """The catalog version this device holds (0 before the first one)."""
        row = self._db.execute_sql(_GET_VERSION, (VERSION_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def store(self) -> str:
        """The store whose catalog this device holds ("" before the first one)."""
        row = self._db.execute_sql(_GET_VERSION, (STORE_KEY,)).fetchone()
        return str(row[0]) if row else ""

    def set_version(self, version: int, store: str | None = None) -> None:
        """Record the version the catalog is now at (the hub's number, not a local count).

        With `store`, the catalog is now that store's (a snapshot may change it).
        """
        self._db.execute_sql(_SET_VERSION, (VERSION_KEY, str(int(version))))
        if store is not None:
            self._db.execute_sql(_SET_VERSION, (STORE_KEY, store))
        self._db.execute_sql(_BUMP_LOCAL)

    def write_products(self, rows: ProductRows, now: datetime) -> Written:
        """Insert or update products (barcodes replaced); says what the merge changed.

        A row's stock, when not None, is the hub's level: each change becomes a 'hub'
        movement. Without a stock the local level stays (local sales keep counting down).
        """
        connection = self._db.connection()
        mark = int(connection.execute(_LAST_MOVEMENT).fetchone()[0])
        for statement in catalog_sql._STAGE_TABLES:
            connection.execute(statement)
        connection.executemany(catalog_sql._STAGE_PRODUCT, rows.products)
        connection.executemany(catalog_sql._STAGE_BARCODE, rows.barcodes)
        # A catalog without pictures (most) skips the join over every staged product.
        dropped = bool(connection.execute(_ANY_PICTURE).fetchone()[0]) and bool(
            connection.execute(_DROPS_PICTURE).fetchone()[0]
        )
        stamp = {"now": now.isoformat()}
        for statement in catalog_sql._MERGE:
            connection.execute(statement, stamp if ":now" in statement else ())
        corrections = int(connection.execute(_RELABEL, (HUB_REASON, mark)).rowcount)
        return Written(corrections, dropped)

    def delete_products(self, skus: Iterable[str]) -> int:
        """Delete these products (their barcodes go with them); returns how many existed."""
        cursor = self._db.connection().executemany(
            "DELETE FROM product WHERE sku = ?", ((sku,) for sku in skus)
        )
        return int(cursor.rowcount)

    def any_picture(self, skus: Iterable[str]) -> bool:
        """Whether any of these products has a picture (before deleting them)."""
        connection = self._db.connection()
        return any(connection.execute(_DELETES_PICTURE, (sku,)).fetchone()[0] for sku in skus)

    def release_memory(self) -> None:
        """Empty the calling thread's page cache (a snapshot filled it; deltas need little)."""
        self._db.execute_sql("PRAGMA shrink_memory")

    def pictures(self) -> set[str]:
        """The file names of every picture a product shows."""
        return {row[0] for row in self._db.connection().execute(_PICTURES)}

    def skus(self) -> set[str]:
        """Every product's SKU (a snapshot deletes those it does not list)."""
        return {row[0] for row in self._db.connection().execute("SELECT sku FROM product")}


@dataclass(frozen=True, slots=True)
class Written:
    """What writing products changed beside the products themselves."""

    stock_corrections: int  # the hub's stock levels recorded as 'hub' movements
    pictures_dropped: bool  # a product gave up a picture: its file may be unused now


@dataclass(frozen=True, slots=True)
class ProductRows:
    """Products in the catalog's staging-row layout (see appliance.store.catalog.staged_rows).

    products: (sku, name, names JSON, price minor, currency, tax class, category,
    age restriction, stock tracked 0/1, sold by, stock or None, description or None,
    picture file name or None); barcodes: (key, sku). A None description or picture keeps
    the product's own, "" clears it.
    """

    products: list[tuple[Any, ...]]
    barcodes: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class StagedSnapshot:
    """The chunks of one snapshot version received so far."""

    version: int
    chunks: int
    present: frozenset[int]
    store: str = ""
    rebase: bool = False  # applies whatever version is held (the hub's line went back)

    @property
    def complete(self) -> bool:
        """Every chunk is there."""
        return len(self.present) == self.chunks

    @property
    def next_chunk(self) -> int:
        """The first missing chunk: where a resumed download starts."""
        return next((k for k in range(self.chunks) if k not in self.present), self.chunks)


class SnapshotStaging:
    """Snapshot chunks kept durably until all of one version are there; one version at a time.

    The staged snapshot's store and rebase flag are meta keys (the staging table has no
    column for them): chunks of another store, or another version, replace what is staged.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def state(self) -> StagedSnapshot | None:
        """What is staged, or None when no snapshot is in progress."""
        rows = self._db.execute_sql(
            "SELECT version, chunks, chunk FROM catalog_snapshot_chunk ORDER BY version DESC"
        ).fetchall()
        if not rows:
            return None
        version, chunks = int(rows[0][0]), int(rows[0][1])
        present = frozenset(int(k) for v, n, k in rows if v == version and n == chunks)
        store = self._meta(_STAGING_STORE_KEY)
        return StagedSnapshot(
            version, chunks, present, store, self._meta(_STAGING_REBASE_KEY) == "1"
        )

    def stage(
        self,
        version: int,
        chunk: int,
        chunks: int,
        body: bytes,
        now: datetime,
        *,
        store: str = "",
        rebase: bool = False,
    ) -> StagedSnapshot:
        """Keep one chunk (other versions' and other stores' chunks are dropped)."""
        with self._db.atomic("IMMEDIATE"):
            if self._meta(_STAGING_STORE_KEY) != store:
                self._db.execute_sql("DELETE FROM catalog_snapshot_chunk")
            self._db.execute_sql(
                "DELETE FROM catalog_snapshot_chunk WHERE version != ? OR chunks != ?",
                (version, chunks),
            )
            self._db.execute_sql(
                "INSERT OR REPLACE INTO catalog_snapshot_chunk VALUES (?, ?, ?, ?, ?)",
                (version, chunk, chunks, body, now.isoformat()),
            )
            self._db.execute_sql(_SET_VERSION, (_STAGING_STORE_KEY, store))
            self._db.execute_sql(_SET_VERSION, (_STAGING_REBASE_KEY, "1" if rebase else "0"))
        state = self.state()
        assert state is not None  # just written, inside our own single-writer worker
        return state

    def bodies(self, version: int) -> Iterator[bytes]:
        """The staged chunk bodies of `version` in chunk order."""
        cursor = self._db.execute_sql(
            "SELECT body FROM catalog_snapshot_chunk WHERE version = ? ORDER BY chunk", (version,)
        )
        return (bytes(row[0]) for row in cursor)

    def clear(self) -> None:
        """Drop every staged chunk (inside the caller's transaction when there is one)."""
        self._db.execute_sql("DELETE FROM catalog_snapshot_chunk")
        self._db.execute_sql(_DELETE_KEY, (_STAGING_STORE_KEY,))
        self._db.execute_sql(_DELETE_KEY, (_STAGING_REBASE_KEY,))

    def _meta(self, key: str) -> str:
        row = self._db.execute_sql(_GET_VERSION, (key,)).fetchone()
        return str(row[0]) if row else ""
