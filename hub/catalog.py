"""The hub's catalog of one store: versioned products from CSV imports and the API, deltas.

Every import or API change that changes something makes a new version; a product's row is
written for each version in which it changed (a deleted product gets a tombstone row), so
the state at any version, and the delta between two, can be computed again later. A stock
value in an import (or a count through the API) is a stocktake: it goes to the devices as
an authoritative correction, and the hub's level (hub/stock_levels.py) is that count minus
what was sold after it plus the stock movements recorded after it.
A level sent later (hub/stock_corrections.py) is a PublishedStock row of a stock-only
version; a product's level at a version is the newer of its count and that row.
A product's description and picture (hub/catalog_records.py) are part of its record: the
devices get the description and the picture's thumbnail with the product. So are its
bagging-area weight and tolerance, which a CSV may carry: a file without those columns
leaves each product's as they are. How the rows are kept and read is hub/catalog_rows.py;
the API's view of them, hub/catalog_entries.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TextIO

import msgspec
from peewee import Database, chunked, fn

from appliance.catalog_import import ImportReport, read_catalog_csv
from appliance.core.catalog import Product
from appliance.mqtt.payloads import MAX_SAFE, CatalogDelta, ProductPayload, SnapshotChunk
from appliance.settings import StoreSettings
from hub.catalog_records import CatalogPushed, StockMovement
from hub.catalog_rows import (
    BAG_GRAMS,
    IN_BATCH,
    KEPT_UNLESS_GIVEN,
    NO_COUNT,
    SOLD_BY,
    TOMBSTONE,
    TRACKED,
    HubCatalogVersion,
    HubProduct,
    ProductRecord,
    Row,
    create_catalog_tables,
    insert_sql,
    product_fields,
    read_rows,
    read_state,
    read_thumbnails,
    record_fields,
)
from hub.db import is_sqlite
from hub.ingest import utc_naive
from hub.models import PublishedStock
from hub.snapshot_parts import cut_into_parts
from hub.store_locks import lock_store

# Where the catalog's tables and rows are defined; imported from here by the rest of the hub.
__all__ = [
    "CHUNK_BYTES",
    "CHUNK_SIZE",
    "DELTA_LIMIT",
    "HubCatalog",
    "HubCatalogVersion",
    "HubProduct",
    "ImportResult",
    "ProductRecord",
    "StockChange",
    "StockCount",
    "create_catalog_tables",
    "store_transaction",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 5000  # products per snapshot chunk at most (about 1 MB of JSON)
CHUNK_BYTES = 1 << 20  # JSON bytes per catalog message at most, whatever the device's limit
DELTA_LIMIT = 5000  # a bigger change goes out as a snapshot instead of one huge message


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import changed; `version` is the new one (or the old one when nothing did)."""

    store: str
    from_version: int
    version: int
    added: int
    changed: int
    deleted: int
    unchanged: int
    report: ImportReport | None = None  # rows read and refused, for CSV imports

    @property
    def changed_anything(self) -> bool:
        """Whether a new version was made."""
        return self.version != self.from_version


@dataclass(frozen=True, slots=True)
class StockCount:
    """A counted, stock-tracked product at a version: its last stocktake, the level sent."""

    sku: str
    name: str
    count: int
    counted_at: datetime | None  # naive UTC
    sent: int | None = None  # the level last sent (the count or a later correction), if asked
    counted_version: int | None = None  # the catalog version the count came with


class HubCatalog:
    """The versioned catalog of one store in the hub database; thread-safe as peewee is."""

    def __init__(self, db: Database, store: str) -> None:
        self._db = db
        self.store = store

    @property
    def db(self) -> Database:
        """The hub database the catalog is in."""
        return self._db

    def version(self) -> int:
        """The store's current catalog version (0 before the first import)."""
        query = HubCatalogVersion.select(fn.MAX(HubCatalogVersion.version)).where(
            HubCatalogVersion.store == self.store
        )
        return int(query.scalar(self._db) or 0)

    def write_lock(self) -> AbstractContextManager[None]:
        """A transaction holding this store's catalog lock: one new version at a time."""
        return store_transaction(self._db, self.store)

    def import_csv(
        self, handle: TextIO, settings: StoreSettings, *, skip_bad_rows: bool = False
    ) -> ImportResult:
        """Validate a CSV export (as the appliance does); import it unless a row is bad.

        With `skip_bad_rows` the good rows are imported and the refused SKUs are left as
        they were (not deleted). Without it a bad row leaves everything unchanged.
        """
        report, rows = read_catalog_csv(handle, settings)
        if report.errors and not skip_bad_rows:
            v = self.version()
            return ImportResult(self.store, v, v, 0, 0, 0, 0, report)
        keep = {e.sku for e in report.errors if e.sku}
        rows_read = ((r.product, r.stock) for r in rows)
        result = self.import_products(rows_read, keep=keep, columns=_csv_columns(handle))
        report.imported = len(rows)
        return replace(result, report=report)

    def import_products(
        self,
        rows: Iterable[tuple[Product, int | None]],
        *,
        keep: Collection[str] = (),
        columns: Collection[str] | None = None,
        now: datetime | None = None,
    ) -> ImportResult:
        """Make the store's catalog exactly `rows` (others deleted unless in `keep`).

        A CSV carries no description and no picture: a product keeps the ones it has, and
        its bagging-area fields too when `columns` (the file's header) lacks theirs.
        """
        moment = utc_naive(now or datetime.now().astimezone())
        kept = [n for c, n in KEPT_UNLESS_GIVEN.items() if columns is not None and c not in columns]
        with self.write_lock():
            old = self.version()
            new = old + 1
            current = self._state(old)
            writes: list[tuple[Any, ...]] = []
            seen: set[str] = set()
            added = changed = 0
            counted: tuple[int | None, int | None, datetime | None]
            for product, stock in rows:
                seen.add(product.sku)
                was = current.get(product.sku)
                base = product_fields(product)
                if was is not None and kept:
                    base = _keeping(base, was.fields, kept)
                fields = (*base, *(was.fields[len(base) :] if was is not None else ("", None)))
                if was is None:
                    added += 1
                    counted = (stock, new, moment) if stock is not None else NO_COUNT
                elif fields != was.fields or (stock is not None and stock != was.stock):
                    changed += 1
                    counted = (
                        (stock, new, moment)
                        if stock is not None and stock != was.stock
                        else (was.stock, was.stock_version, was.stock_at)
                    )
                else:
                    continue
                writes.append((self.store, product.sku, new, False, *fields, *counted))
            gone = sorted(current.keys() - seen - set(keep))
            writes.extend((self.store, sku, new, True, *TOMBSTONE, *NO_COUNT) for sku in gone)
            unchanged = len(seen) - added - changed
            return self._commit(old, writes, moment, (added, changed, len(gone), unchanged))

    def upsert(
        self, records: Iterable[ProductRecord], *, now: datetime | None = None
    ) -> ImportResult:
        """Create or replace these products' records (their counts stay): one version at most.

        Runs in the caller's transaction when it holds `write_lock()` (the API's request).
        """
        moment = utc_naive(now or datetime.now().astimezone())
        wanted = {record.product.sku: record for record in records}
        with self.write_lock():
            old = self.version()
            current = self._state(old, skus=wanted)
            writes: list[tuple[Any, ...]] = []
            added = changed = 0
            for sku, record in sorted(wanted.items()):
                fields = record_fields(record)
                was = current.get(sku)
                if was is None:
                    added += 1
                    counted: tuple[Any, ...] = NO_COUNT
                elif fields != was.fields:
                    changed += 1
                    counted = (was.stock, was.stock_version, was.stock_at)
                else:
                    continue
                writes.append((self.store, sku, old + 1, False, *fields, *counted))
            unchanged = len(wanted) - added - changed
            return self._commit(old, writes, moment, (added, changed, 0, unchanged))

    def delete(self, skus: Iterable[str], *, now: datetime | None = None) -> ImportResult:
        """Delete these products (those present): one version at most."""
        moment = utc_naive(now or datetime.now().astimezone())
        with self.write_lock():
            old = self.version()
            gone = sorted(self._state(old, skus=set(skus)))
            writes = [(self.store, sku, old + 1, True, *TOMBSTONE, *NO_COUNT) for sku in gone]
            return self._commit(old, writes, moment, (0, 0, len(gone), 0))

    def count(self, levels: Mapping[str, int], *, now: datetime | None = None) -> ImportResult:
        """A stocktake of these products (those present): each count starts a new level."""
        moment = utc_naive(now or datetime.now().astimezone())
        with self.write_lock():
            old = self.version()
            current = self._state(old, skus=set(levels))
            writes = [
                (self.store, sku, old + 1, False, *row.fields, levels[sku], old + 1, moment)
                for sku, row in sorted(current.items())
            ]
            return self._commit(old, writes, moment, (0, len(writes), 0, 0))

    def _commit(
        self,
        old: int,
        writes: list[tuple[Any, ...]],
        moment: datetime,
        tally: tuple[int, int, int, int],
    ) -> ImportResult:
        """Make version old + 1 of these product rows (inside `write_lock()`); none: no version."""
        added, changed, deleted, unchanged = tally
        if not writes:
            return ImportResult(self.store, old, old, 0, 0, 0, unchanged)
        new = old + 1
        HubCatalogVersion.insert(
            store=self.store, version=new, created_at=moment,
            added=added, changed=changed, deleted=deleted,
        ).execute(self._db)  # fmt: skip
        if old == 0:
            # A new store: its serve workers send its first version and every later one.
            CatalogPushed.insert(store=self.store, version=0).on_conflict_ignore().execute(self._db)
        # executemany: peewee builds a 100,000-row insert_many ten times slower.
        self._db.cursor().executemany(insert_sql(self._db), writes)
        log.info(
            "catalog of %s: v%d -> v%d, %d added, %d changed, %d deleted",
            *(self.store, old, new, added, changed, deleted),
        )
        return ImportResult(self.store, old, new, added, changed, deleted, unchanged)

    def moved(self, counted: Mapping[str, StockCount]) -> dict[str, int]:
        """Per counted product, the sum of the stock movements recorded since its count."""
        if not counted:
            return {}
        floor = min(count.counted_version or 0 for count in counted.values())
        query = StockMovement.select(
            StockMovement.sku, StockMovement.version, StockMovement.delta
        ).where(StockMovement.store == self.store, StockMovement.version >= floor)
        if len(counted) <= IN_BATCH:
            query = query.where(StockMovement.sku.in_(sorted(counted)))
        totals: dict[str, int] = {}
        for sku, version, delta in query.tuples().execute(self._db):
            count = counted.get(sku)
            if count is not None and version >= (count.counted_version or 0):
                totals[sku] = totals.get(sku, 0) + int(delta)
        return totals

    def delta(
        self, from_version: int, to_version: int | None = None, *, limit: int | None = DELTA_LIMIT
    ) -> CatalogDelta | None:
        """The changes from one version to another (the current one by default).

        A product whose level was sent in between (a count, or a published correction)
        carries its level at `to_version`. None when more than `limit` products changed:
        send a snapshot instead. ValueError unless from_version < to_version <= current.
        """
        current = self.version()
        to = current if to_version is None else to_version
        if not 0 <= from_version < to <= current:
            raise ValueError(f"no delta {from_version} -> {to} (the store is at v{current})")
        latest: dict[str, Row] = {}
        changed = (HubProduct.version > from_version, HubProduct.version <= to)
        for row in read_rows(self._db, self.store, *changed):
            latest[row.sku] = row
        sent = self._published(PublishedStock.version > from_version, PublishedStock.version <= to)
        only_stock = [sku for sku in sent if sku not in latest]
        if limit is not None and len(latest) + len(only_stock) > limit:
            return None
        before = self._state(from_version, skus=[s for s, r in latest.items() if r.deleted])
        latest.update(self._state(to, skus=only_stock))  # still there at `to`
        upserts = []
        present = [row for row in latest.values() if not row.deleted]
        thumbnails = read_thumbnails(self._db, present)
        for sku, row in sorted(latest.items()):
            if row.deleted:
                continue
            moved = (row.stock_version or 0) > from_version or sku in sent
            upserts.append(row.payload(_level(row, sent.get(sku)) if moved else None, thumbnails))
        return CatalogDelta(
            store=self.store,
            from_version=from_version,
            to_version=to,
            upserts=upserts,
            deletes=[sku for sku, row in latest.items() if row.deleted and sku in before],
        )

    def snapshot_chunks(
        self,
        version: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        levels: Mapping[str, int] | None = None,
        *,
        max_bytes: int | None = CHUNK_BYTES,
        rebase: bool = False,
    ) -> list[SnapshotChunk]:
        """The whole catalog at `version` (current by default) in chunks, in SKU order.

        A chunk holds at most `chunk_size` products and `max_bytes` bytes of JSON (None: no
        byte limit). `levels` (from `stock_levels`) replaces each counted product's stock
        with the hub's current level; without it the level last sent goes.
        """
        current = self.version()
        at = current if version is None else version
        if not 1 <= at <= current:
            raise ValueError(f"no snapshot of v{at} (the store is at v{current})")
        levels = levels or {}
        sent = self._newest_published(at)
        state = self._state(at)
        thumbnails = read_thumbnails(self._db, state.values())
        payloads = [
            row.payload(
                levels.get(sku, _level(row, sent.get(sku))) if row.stock is not None else None,
                thumbnails,
            )
            for sku, row in sorted(state.items())
        ]
        widest = SnapshotChunk(
            store=self.store, version=MAX_SAFE, chunk=MAX_SAFE, chunks=MAX_SAFE, products=[],
            rebase=True,
        )  # fmt: skip
        header = len(msgspec.json.encode(widest)) - len(b"[]")
        parts = cut_into_parts(payloads, max(1, chunk_size), max_bytes, header)
        whole = SnapshotChunk(store=self.store, version=at, chunk=0, chunks=len(parts),
                              products=[], rebase=rebase)  # fmt: skip
        return [
            msgspec.structs.replace(whole, chunk=k, products=part) for k, part in enumerate(parts)
        ]

    def products(self, version: int | None = None) -> dict[str, ProductPayload]:
        """The catalog at `version` (current by default) as payloads, stock = level last sent."""
        at = self.version() if version is None else version
        sent = self._newest_published(at)
        state = self._state(at)
        thumbnails = read_thumbnails(self._db, state.values())
        return {
            sku: row.payload(_level(row, sent.get(sku)), thumbnails) for sku, row in state.items()
        }

    def counts(
        self,
        version: int | None = None,
        *,
        sent: bool = False,
        skus: Collection[str] | None = None,
    ) -> dict[str, StockCount]:
        """The stock-tracked products with a count at `version` (current by default).

        With `sent`, each carries the level last sent for it (one more query); with `skus`,
        only those products are read.
        """
        at = self.version() if version is None else version
        state = self._state(at, skus=skus)
        counted = [row for row in state.values() if row.stock is not None and row.fields[TRACKED]]
        published = self._newest_published(at) if sent and counted else {}
        return {
            row.sku: StockCount(
                row.sku, row.fields[0], row.stock or 0, row.stock_at,
                _level(row, published.get(row.sku)) if sent else None, row.stock_version,
            )
            for row in counted
        }  # fmt: skip

    def add_stock_version(self, change: StockChange, now: datetime | None = None) -> int:
        """Make the next version from new stock levels only (inside `write_lock()`)."""
        moment = utc_naive(now or datetime.now().astimezone())
        new = change.version + 1
        HubCatalogVersion.insert(
            store=self.store, version=new, created_at=moment, changed=len(change.levels)
        ).execute(self._db)
        rows = [(self.store, sku, new, level) for sku, level in sorted(change.levels.items())]
        fields = [PublishedStock.store, PublishedStock.sku, PublishedStock.version,
                  PublishedStock.level]  # fmt: skip
        for batch in chunked(rows, IN_BATCH):
            PublishedStock.insert_many(batch, fields=fields).execute(self._db)
        log.info(
            "stock of %s: v%d -> v%d, %d level(s) corrected",
            self.store, change.version, new, len(change.levels),
        )  # fmt: skip
        return new

    def _state(self, version: int, skus: Collection[str] | None = None) -> dict[str, Row]:
        """The products present at `version` (only those of `skus` when given)."""
        return read_state(self._db, self.store, version, skus)

    def _published(self, *where: Any) -> dict[str, tuple[int, int]]:
        """Per product, the newest published (version, level) among the rows `where` picks."""
        query = (
            PublishedStock.select(PublishedStock.sku, PublishedStock.version, PublishedStock.level)
            .where(PublishedStock.store == self.store, *where)
            .order_by(PublishedStock.sku, PublishedStock.version)
        )
        found: dict[str, tuple[int, int]] = {}
        for sku, version, level in self._db.execute_sql(*self._db.get_sql_context().parse(query)):
            found[sku] = (int(version), int(level))
        return found

    def _newest_published(self, version: int) -> dict[str, tuple[int, int]]:
        """Per product, its newest published (version, level) at or before `version`."""
        left, right = str(self._db.quote)[0], str(self._db.quote)[-1]
        table = f"{left}{PublishedStock._meta.table_name}{right}"
        level, p = f"{left}level{right}", self._db.param
        # One grouped pass in the database: the rows grow with every correction.
        sql = (
            f"SELECT s.sku, s.version, s.{level} FROM {table} s JOIN (SELECT sku,"
            f" MAX(version) AS newest FROM {table} WHERE store = {p} AND version <= {p}"
            f" GROUP BY sku) m ON s.sku = m.sku AND s.version = m.newest WHERE s.store = {p}"
        )
        rows = self._db.execute_sql(sql, (self.store, version, self.store))
        return {str(sku): (int(v), int(value)) for sku, v, value in rows}


@dataclass(frozen=True, slots=True)
class StockChange:
    """Levels that differ from those last sent, as of catalog `version`."""

    version: int
    levels: dict[str, int]


def store_transaction(db: Database, store: str) -> AbstractContextManager[None]:
    """A transaction that holds `store`'s catalog lock until it ends.

    Several hub workers (and the import CLI) make versions of the same store: SQLite
    serialises writers (BEGIN IMMEDIATE); PostgreSQL takes an advisory lock per store.
    """
    return _store_transaction(db, store)


@contextmanager
def _store_transaction(db: Database, store: str) -> Iterator[None]:
    if is_sqlite(db):
        with db.atomic("IMMEDIATE"):
            yield
        return
    with db.atomic():
        lock_store(db, store)
        yield


def _csv_columns(handle: TextIO) -> set[str]:
    """The names in a CSV's header line; the handle is rewound (read_catalog_csv seeks too)."""
    handle.seek(0)
    header = handle.readline()
    handle.seek(0)
    # Any of the separators the import sniffs: a name holds none of them.
    return {cell.strip().strip('"').strip() for cell in re.split(r"[,;\t]", header)}


def _keeping(base: tuple[Any, ...], was: tuple[Any, ...], kept: list[int]) -> tuple[Any, ...]:
    """A product's CSV fields with the `kept` positions as they were."""
    fields = [was[n] if n in kept else value for n, value in enumerate(base)]
    if fields[BAG_GRAMS] is not None and fields[SOLD_BY] == "kg":
        # Sold by weight now: its line's own weight is what the bag gains (as the import rules).
        fields[BAG_GRAMS] = None
    return tuple(fields)


def _level(row: Row, sent: tuple[int, int] | None) -> int | None:
    """The level last sent for a product: its count, or a correction published after it."""
    if sent is not None and sent[0] > (row.stock_version or 0):
        return sent[1]
    return row.stock
