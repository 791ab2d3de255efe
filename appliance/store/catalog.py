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

_COLUMNS = (
    "p.sku, p.name, p.names, p.price_minor, p.currency, p.tax_class, p.category,"
    " p.age_restriction, p.stock_tracked, p.sold_by,"
    " (SELECT group_concat(key, ' ') FROM barcode WHERE barcode.sku = p.sku)"
)
# Lookups run on every scan: plain SQL on an indexed key, no query builder (see bench).
_BY_BARCODE = f"SELECT {_COLUMNS} FROM barcode b JOIN product p ON p.sku = b.sku WHERE b.key = ?"
_BY_SKU = f"SELECT {_COLUMNS} FROM product p WHERE p.sku = ?"
_UPSERT_PRODUCT = (
    "INSERT INTO product (sku, name, names, price_minor, currency, tax_class, category,"
    " age_restriction, stock_tracked, sold_by, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(sku) DO UPDATE SET name=excluded.name, names=excluded.names,"
    " price_minor=excluded.price_minor, currency=excluded.currency,"
    " tax_class=excluded.tax_class, category=excluded.category,"
    " age_restriction=excluded.age_restriction, stock_tracked=excluded.stock_tracked,"
    " sold_by=excluded.sold_by, updated_at=excluded.updated_at"
)
_SET_STOCK = "UPDATE product SET stock_qty = ? WHERE sku = ?"
_RECORD_STOCK = (
    "INSERT INTO stock_movement (sku, delta, reason, created_at)"
    " SELECT sku, ? - stock_qty, 'import', ? FROM product WHERE sku = ?"
)
_DROP_BARCODES = "DELETE FROM barcode WHERE sku = ?"
_PUT_BARCODE = "INSERT OR REPLACE INTO barcode (key, sku) VALUES (?, ?)"

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
    )


class SqliteCatalog:
    """The catalog as stored: the source of truth, and the lookups tools use (one query each)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

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
        now = datetime.now(UTC).isoformat()
        with self._db.atomic("IMMEDIATE"):
            connection = self._db.connection()
            batch: list[tuple[Product, int | None]] = []
            for item in products:
                batch.append(item)
                if len(batch) >= chunk:
                    written += self._write(connection, batch, now)
                    batch.clear()
                    if progress:
                        progress(written)
            written += self._write(connection, batch, now)
            connection.execute(_BUMP_VERSION)
            if progress:
                progress(written)
        return written

    @staticmethod
    def _write(connection: Any, batch: list[tuple[Product, int | None]], now: str) -> int:
        connection.executemany(
            _UPSERT_PRODUCT,
            [
                (
                    p.sku,
                    p.name,
                    json.dumps(dict(p.names), ensure_ascii=False) if p.names else "{}",
                    p.price.minor,
                    p.price.currency,
                    p.tax_class,
                    p.category,
                    p.age_restriction,
                    int(p.stock_tracked),
                    p.sold_by,
                    now,
                )
                for p, _ in batch
            ],
        )
        stocked = [(qty, now, p.sku) for p, qty in batch if qty is not None]
        # Stock set by an import is recorded as a movement, so levels stay explainable.
        connection.executemany(_RECORD_STOCK, stocked)
        connection.executemany(_SET_STOCK, [(qty, sku) for qty, _, sku in stocked])
        connection.executemany(_DROP_BARCODES, [(p.sku,) for p, _ in batch])
        connection.executemany(_PUT_BARCODE, [(key, p.sku) for p, _ in batch for key in p.barcodes])
        return len(batch)
