"""The catalog in SQLite: product lookups for the checkout, bulk replacement for imports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from sys import intern
from typing import Any

from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.store.models import Barcode
from appliance.store.models import Product as ProductRow
from appliance.store.thumbnails import folder_beside, picture_path

_COLUMNS = (
    "p.sku, p.name, p.names, p.price_minor, p.currency, p.tax_class, p.category,"
    " p.age_restriction, p.stock_tracked, p.sold_by,"
    " (SELECT group_concat(key, ' ') FROM barcode WHERE barcode.sku = p.sku), p.thumbnail,"
    " p.bag_grams, p.bag_tolerance"
)
# Lookups run on every scan: plain SQL on an indexed key, no query builder (see bench).
_BY_BARCODE = f"SELECT {_COLUMNS} FROM barcode b JOIN product p ON p.sku = b.sku WHERE b.key = ?"
_BY_SKU = f"SELECT {_COLUMNS} FROM product p WHERE p.sku = ?"
# Upserts stage rows in temporary tables, then merge them with a few set-based
# statements: five statements per product from Python cost twice as much (see bench).
# A staged description or thumbnail of NULL keeps the product's own (a local import has
# neither); '' clears it (the hub sent the product without one).
_STAGE_TABLES = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_product (sku TEXT PRIMARY KEY, name, names,"
    " price_minor, currency, tax_class, category, age_restriction, stock_tracked, sold_by,"
    " stock, description, thumbnail, bag_grams, bag_tolerance) WITHOUT ROWID",
    "CREATE TEMP TABLE IF NOT EXISTS staged_barcode (key TEXT PRIMARY KEY, sku) WITHOUT ROWID",
    "DELETE FROM temp.staged_product",
    "DELETE FROM temp.staged_barcode",
)
_STAGE_PRODUCT = "INSERT OR REPLACE INTO temp.staged_product VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_STAGE_BARCODE = "INSERT OR REPLACE INTO temp.staged_barcode VALUES (?,?)"
_MERGE = (
    # Stock set by an import is recorded as a movement first, so levels stay explainable.
    "INSERT INTO stock_movement (sku, delta, reason, created_at)"
    " SELECT s.sku, s.stock - COALESCE(p.stock_qty, 0), 'import', :now"
    " FROM temp.staged_product s LEFT JOIN product p ON p.sku = s.sku"
    " WHERE s.stock IS NOT NULL AND s.stock != COALESCE(p.stock_qty, 0)",
    "INSERT INTO product (sku, name, names, price_minor, currency, tax_class, category,"
    " age_restriction, stock_tracked, sold_by, stock_qty, updated_at, description, thumbnail,"
    " bag_grams, bag_tolerance)"
    " SELECT sku, name, names, price_minor, currency, tax_class, category, age_restriction,"
    " stock_tracked, sold_by, COALESCE(stock, 0), :now, description, thumbnail,"
    " bag_grams, bag_tolerance"
    " FROM temp.staged_product WHERE true"
    " ON CONFLICT(sku) DO UPDATE SET name=excluded.name, names=excluded.names,"
    " price_minor=excluded.price_minor, currency=excluded.currency,"
    " tax_class=excluded.tax_class, category=excluded.category,"
    " age_restriction=excluded.age_restriction, stock_tracked=excluded.stock_tracked,"
    " sold_by=excluded.sold_by, updated_at=excluded.updated_at,"
    " bag_grams=excluded.bag_grams, bag_tolerance=excluded.bag_tolerance,"
    " description=COALESCE(excluded.description, description),"
    " thumbnail=COALESCE(excluded.thumbnail, thumbnail),"
    " stock_qty=COALESCE((SELECT stock FROM temp.staged_product s"
    " WHERE s.sku = excluded.sku), stock_qty)",
    "DELETE FROM barcode WHERE sku IN (SELECT sku FROM temp.staged_product)",
    "INSERT OR REPLACE INTO barcode (key, sku) SELECT key, sku FROM temp.staged_barcode",
    "DELETE FROM temp.staged_product",
    "DELETE FROM temp.staged_barcode",
)
_ALL = f"SELECT {_COLUMNS} FROM product p ORDER BY p.sku"
_VERSION = "SELECT value FROM meta WHERE key = 'catalog_version'"
_BUMP_VERSION = (
    "INSERT INTO meta (key, value) VALUES ('catalog_version', '1')"
    " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)

Progress = Callable[[int], None]


def _product(row: Sequence[Any]) -> Product:
    names = json.loads(row[2]) if row[2] != "{}" else {}
    return Product(
        sku=row[0],
        name=row[1],
        # Interned: these repeat across products, and the checkout keeps all of them in RAM.
        price=Money(row[3], intern(row[4])),
        tax_class=intern(row[5]),
        category=intern(row[6]),
        age_restriction=row[7],
        stock_tracked=bool(row[8]),
        sold_by="kg" if row[9] == "kg" else "each",
        names=tuple(sorted(names.items())),
        barcodes=tuple(row[10].split()) if row[10] else (),
        thumbnail=row[11] or "",
        bag_grams=row[12],
        bag_tolerance=row[13],
    )


class SqliteCatalog:
    """The catalog as stored: the source of truth, and the lookups tools use (one query each)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._pictures = folder_beside(db.database)

    def picture_path(self, name: str) -> str:
        """The file of the picture a product names (its `thumbnail`); "" for none."""
        if not name or self._pictures is None:
            return ""
        return picture_path(self._pictures, name)

    def by_barcode_key(self, key: str) -> Product | None:
        """The product carrying a normalised GTIN."""
        row = self._db.connection().execute(_BY_BARCODE, (key,)).fetchone()
        return _product(row) if row else None

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        row = self._db.connection().execute(_BY_SKU, (sku,)).fetchone()
        return _product(row) if row else None

    def version(self) -> int:
        """The catalog version: raised by every write, so readers in any process see a change."""
        row = self._db.connection().execute(_VERSION).fetchone()
        return int(row[0]) if row else 0

    def all_products(self) -> Iterator[Product]:
        """Every product with its barcodes, in SKU order."""
        return map(_product, self._db.connection().execute(_ALL))

    def close_thread_connection(self) -> None:
        """Close the calling thread's connection (peewee keeps one per thread)."""
        if not self._db.is_closed():
            self._db.close()

    def count(self) -> int:
        """How many products the catalog holds."""
        return int(ProductRow.select().bind(self._db).count())

    def barcode_count(self) -> int:
        """How many barcodes point at products."""
        return int(Barcode.select().bind(self._db).count())

    def stock_of(self, sku: str) -> int | None:
        """Current stock level of a product, or None when it is unknown."""
        row = self._db.execute_sql("SELECT stock_qty FROM product WHERE sku = ?", (sku,))
        found = row.fetchone()
        return int(found[0]) if found else None

    def upsert(
        self,
        products: Iterable[tuple[Product, int | None]],
        progress: Progress | None = None,
        chunk: int = 2000,
    ) -> int:
        """Insert or update (product, stock level or None) pairs in ONE transaction.

        A product's barcodes are replaced by the ones given; a barcode that belonged to
        another product moves. Returns how many products were written.
        """
        written = 0
        now = {"now": datetime.now(UTC).isoformat()}
        # Staging writes only this connection's temp tables: the database stays open for
        # sale commits while a big file is staged; the lock is held only for the merge.
        connection = self._db.connection()
        for statement in _STAGE_TABLES:
            connection.execute(statement)
        batch: list[tuple[Product, int | None]] = []
        for item in products:
            batch.append(item)
            if len(batch) >= chunk:
                written += self._stage(connection, batch)
                batch.clear()
                if progress:
                    progress(written)
        written += self._stage(connection, batch)
        with self._db.atomic("IMMEDIATE"):
            for statement in _MERGE:
                connection.execute(statement, now if ":now" in statement else ())
            connection.execute(_BUMP_VERSION)
        if progress:
            progress(written)
        return written

    @staticmethod
    def _stage(connection: Any, batch: list[tuple[Product, int | None]]) -> int:
        products, barcodes = staged_rows(batch)
        connection.executemany(_STAGE_PRODUCT, products)
        connection.executemany(_STAGE_BARCODE, barcodes)
        return len(batch)


def staged_rows(
    batch: Iterable[tuple[Product, int | None]],
) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    """The staging-table rows for (product, stock) pairs (also the benchmark's baseline).

    A local import knows no descriptions or pictures: those the products have stay.
    """
    products: list[tuple[Any, ...]] = []
    barcodes: list[tuple[str, str]] = []
    for p, stock in batch:
        names = json.dumps(dict(p.names), ensure_ascii=False) if p.names else "{}"
        products.append(
            (
                p.sku,
                p.name,
                names,
                p.price.minor,
                p.price.currency,
                p.tax_class,
                p.category,
                p.age_restriction,
                int(p.stock_tracked),
                p.sold_by,
                stock,
                None,
                None,
                p.bag_grams,
                p.bag_tolerance,
            )
        )
        barcodes.extend((key, p.sku) for key in p.barcodes)
    return products, barcodes
