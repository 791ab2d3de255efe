"""A store's stock at the hub: the last count of each product, less sales, plus movements.

Sold lines come from the sales the hub ingested from the store's devices (refunds and
voids put items back). A product's level is its last stocktake (hub/catalog.py) minus the
lines sold at or after that count, plus the stock movements (goods in, damage, web orders:
hub/catalog_records.py) recorded after it; below zero it is an oversell. The levels that
differ from those last sent make a StockChange, which the catalog turns into a stock-only
version.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Literal

import msgspec
from peewee import Database, chunked, fn

from appliance.core.cart import grams_for_price
from hub.catalog import HubCatalog, StockChange, StockCount
from hub.catalog_rows import read_state
from hub.db import is_sqlite
from hub.ingest import utc_naive
from hub.models import Sale
from hub.stores import devices_of

log = logging.getLogger(__name__)

_IN_BATCH = 500  # devices per IN (...) list: far below every parameter limit
# Up to this many products, only the sales whose document names one of them are read;
# past it, reading every sale costs less than so many text searches per sale.
_NAMED_SKUS = 32


@dataclass(frozen=True, slots=True)
class SoldLine:
    """Quantity of a product sold (negative: returned) by a store's device, and when."""

    sku: str
    quantity: int  # items, or grams for goods sold by weight
    sold_at: datetime  # naive UTC


@dataclass(frozen=True, slots=True)
class StockLevel:
    """A product's hub stock: the last count minus what was sold after it, plus movements."""

    sku: str
    name: str
    counted: int
    counted_at: datetime | None
    sold: int
    level: int
    moved: int = 0  # stock movements since the count (in: positive)

    @property
    def oversold(self) -> bool:
        """More was sold than the count allowed."""
        return self.level < 0


def stock_levels(catalog: HubCatalog, sold: Iterable[SoldLine]) -> list[StockLevel]:
    """Per counted, stock-tracked product: count minus sales after it plus movements, by SKU."""
    counted = catalog.counts()
    return _levels(counted, sold, catalog.moved(counted))


def stock_changes(
    catalog: HubCatalog,
    sales: Callable[[datetime | None], Iterable[SoldLine]],
    *,
    skus: Collection[str] | None = None,
) -> StockChange:
    """The current levels that differ from those last sent; `sales(since)` gives sold lines.

    Sales before the oldest count in force count for nothing, so only later ones are
    asked for. Run inside `catalog.write_lock()` so the levels and the version agree.
    With `skus`, only those products are looked at.
    """
    version = catalog.version()
    counted = catalog.counts(version, sent=True, skus=skus)
    if not counted:
        return StockChange(version, {})
    changed = {
        level.sku: level.level
        for level in _levels(counted, sales(_since(counted)), catalog.moved(counted))
        if level.level != counted[level.sku].sent
    }
    return StockChange(version, changed)


def levels_of(db: Database, store: str, skus: Collection[str]) -> dict[str, StockLevel]:
    """The levels of these products (those stock-tracked and counted), read for them alone."""
    catalog = HubCatalog(db, store)
    counted = catalog.counts(skus=skus)
    if not counted:
        return {}
    sold = store_sales(db, store, _since(counted), skus=counted.keys())
    return {level.sku: level for level in _levels(counted, sold, catalog.moved(counted))}


def current_levels(db: Database, store: str, skus: Collection[str]) -> dict[str, int | None]:
    """Each product's level now; None when it is not stock-tracked or was never counted.

    Reads the store's sales since the products' counts that name them, so it is cheap for
    a handful of products; inside a transaction it counts that transaction's own sales.
    """
    found = levels_of(db, store, skus)
    return {sku: found[sku].level if sku in found else None for sku in skus}


def oversells(levels: Iterable[StockLevel]) -> list[StockLevel]:
    """The products sold below zero."""
    return [level for level in levels if level.oversold]


def _plain(sku: str) -> bool:
    """Whether every JSON writer writes this SKU as it is (printable ASCII, nothing escaped)."""
    return sku.isascii() and sku.isprintable() and not any(c in sku for c in '"\\/')


def _since(counted: Mapping[str, StockCount]) -> datetime | None:
    """The oldest of these counts (None: one has no time, so every sale counts)."""
    times = [count.counted_at for count in counted.values() if count.counted_at is not None]
    return min(times) if len(times) == len(counted) else None


def _levels(
    counted: Mapping[str, StockCount], sold: Iterable[SoldLine], moved: Mapping[str, int]
) -> list[StockLevel]:
    """Count minus what was sold after it plus what moved, per counted product, by SKU."""
    totals = dict.fromkeys(counted, 0)
    for line in sold:
        count = counted.get(line.sku)
        if count is not None and (count.counted_at is None or line.sold_at >= count.counted_at):
            totals[line.sku] += line.quantity
    levels = []
    for sku, count in sorted(counted.items()):
        out, came = totals[sku], moved.get(sku, 0)
        level = count.count - out + came
        levels.append(StockLevel(sku, count.name, count.count, count.counted_at, out, level, came))
    return levels


class _Line(msgspec.Struct):
    sku: str
    quantity: int
    stock_tracked: bool = True
    measure: str = "each"
    unit_price: int = 0


# Per SKU, the price per kg of each product sold by weight (0: none known); asked only
# when a document holds a price-label line, so most documents never read the catalog.
KgPrices = Callable[[], Mapping[str, int]]


class _SoldDocument(msgspec.Struct):
    kind: Literal["sale", "refund", "void"]
    created_at: datetime
    lines: list[_Line]


_document_decoder = msgspec.json.Decoder(_SoldDocument)


def sold_lines(document: bytes | str, kg_prices: KgPrices = dict) -> list[SoldLine]:
    """The stock-tracked lines of a device's sale document (refunds and voids are negative)."""
    doc = _document_decoder.decode(document)
    at = utc_naive(doc.created_at)
    sold = []
    for line in doc.lines:
        if not line.stock_tracked:
            continue
        quantity = line.quantity
        if line.measure == "price" and line.sku in (prices := kg_prices()):
            # An older release sold a price label of goods sold by weight as 1 item; their
            # stock is in grams, so the label's price is worked back to grams.
            per_kg = prices[line.sku]
            if per_kg <= 0 or line.unit_price <= 0:
                log.warning("price-label line of %s left out of stock: no price", line.sku)
                continue
            quantity = grams_for_price(line.unit_price, per_kg) * line.quantity
        sold.append(SoldLine(line.sku, quantity, at))
    return sold


def kg_prices_of(db: Database, store: str) -> dict[str, int]:
    """The price per kg of each product the store sells by weight, as its catalog says now."""
    catalog = HubCatalog(db, store)
    products = (row.payload(None, {}) for row in read_state(db, store, catalog.version()).values())
    return {p.sku: int(p.price) for p in products if p.sold_by == "kg"}


def store_sales(
    db: Database,
    store: str,
    since: datetime | None = None,
    *,
    skus: Collection[str] | None = None,
) -> Iterator[SoldLine]:
    """Every sold line of the store's devices from the hub's ingested sales (since a moment).

    With `skus`, only the lines of those products.
    """
    devices = devices_of(db, store)
    wanted = None if skus is None else set(skus)
    if wanted is not None and not wanted:
        return
    # The documents are JSON text: a plain SKU appears in one as "SKU" whoever wrote it.
    # A SKU that JSON may write in more than one way (escaped) turns the search off.
    find = fn.INSTR if is_sqlite(db) else fn.STRPOS
    named = (
        [find(Sale.document, f'"{sku}"') > 0 for sku in sorted(wanted)]
        if wanted is not None and len(wanted) <= _NAMED_SKUS and all(map(_plain, wanted))
        else []
    )
    known: list[dict[str, int]] = []

    def kg_prices() -> Mapping[str, int]:
        if not known:  # read once, and only for a document with a price-label line
            known.append(kg_prices_of(db, store))
        return known[0]

    for batch in chunked(devices, _IN_BATCH):
        query = Sale.select(Sale.document).where(Sale.device.in_(batch))
        if since is not None:
            query = query.where(Sale.created_at >= since)
        if named:
            query = query.where(reduce(operator.or_, named))
        for (document,) in query.tuples().execute(db):
            try:
                lines = sold_lines(document, kg_prices)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning("a stored sale of %s cannot be read for stock: %s", store, err)
                continue
            yield from (line for line in lines if wanted is None or line.sku in wanted)
