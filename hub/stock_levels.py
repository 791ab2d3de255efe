"""A store's stock at the hub: the last count of each product minus what was sold after it.

Sold lines come from the sales the hub ingested from the store's devices (refunds and
voids put items back). A product's level is its last stocktake (hub/catalog.py) minus the
lines sold at or after that count; below zero it is an oversell. The levels that differ
from those last sent make a StockChange, which the catalog turns into a stock-only version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
from peewee import Database, chunked

from hub.catalog import HubCatalog, StockChange, StockCount
from hub.ingest import utc_naive
from hub.models import Sale
from hub.stores import devices_of

log = logging.getLogger(__name__)

_IN_BATCH = 500  # devices per IN (...) list: far below every parameter limit


@dataclass(frozen=True, slots=True)
class SoldLine:
    """Quantity of a product sold (negative: returned) by a store's device, and when."""

    sku: str
    quantity: int  # items, or grams for goods sold by weight
    sold_at: datetime  # naive UTC


@dataclass(frozen=True, slots=True)
class StockLevel:
    """A product's hub stock: the last count minus what was sold after it."""

    sku: str
    name: str
    counted: int
    counted_at: datetime | None
    sold: int
    level: int

    @property
    def oversold(self) -> bool:
        """More was sold than the count allowed."""
        return self.level < 0


def stock_levels(catalog: HubCatalog, sold: Iterable[SoldLine]) -> list[StockLevel]:
    """Per counted, stock-tracked product: count minus sales after it, in SKU order."""
    return _levels(catalog.counts(), sold)


def stock_changes(
    catalog: HubCatalog, sales: Callable[[datetime | None], Iterable[SoldLine]]
) -> StockChange:
    """The current levels that differ from those last sent; `sales(since)` gives sold lines.

    Sales before the oldest count in force count for nothing, so only later ones are
    asked for. Run inside `catalog.write_lock()` so the levels and the version agree.
    """
    version = catalog.version()
    counted = catalog.counts(version, sent=True)
    if not counted:
        return StockChange(version, {})
    times = [count.counted_at for count in counted.values() if count.counted_at is not None]
    since = min(times) if len(times) == len(counted) else None
    changed = {
        level.sku: level.level
        for level in _levels(counted, sales(since))
        if level.level != counted[level.sku].sent
    }
    return StockChange(version, changed)


def oversells(levels: Iterable[StockLevel]) -> list[StockLevel]:
    """The products sold below zero."""
    return [level for level in levels if level.oversold]


def _levels(counted: Mapping[str, StockCount], sold: Iterable[SoldLine]) -> list[StockLevel]:
    """Count minus what was sold after it, per counted product, in SKU order."""
    totals = dict.fromkeys(counted, 0)
    for line in sold:
        count = counted.get(line.sku)
        if count is not None and (count.counted_at is None or line.sold_at >= count.counted_at):
            totals[line.sku] += line.quantity
    levels = []
    for sku, count in sorted(counted.items()):
        out = totals[sku]
        levels.append(
            StockLevel(sku, count.name, count.count, count.counted_at, out, count.count - out)
        )
    return levels


class _Line(msgspec.Struct):
    sku: str
    quantity: int
    stock_tracked: bool = True


class _SoldDocument(msgspec.Struct):
    kind: Literal["sale", "refund", "void"]
    created_at: datetime
    lines: list[_Line]


_document_decoder = msgspec.json.Decoder(_SoldDocument)


def sold_lines(document: bytes | str) -> list[SoldLine]:
    """The stock-tracked lines of a device's sale document (refunds and voids are negative)."""
    doc = _document_decoder.decode(document)
    at = utc_naive(doc.created_at)
    return [SoldLine(line.sku, line.quantity, at) for line in doc.lines if line.stock_tracked]


def store_sales(db: Database, store: str, since: datetime | None = None) -> Iterator[SoldLine]:
    """Every sold line of the store's devices from the hub's ingested sales (since a moment)."""
    devices = devices_of(db, store)
    for batch in chunked(devices, _IN_BATCH):
        query = Sale.select(Sale.document).where(Sale.device.in_(batch))
        if since is not None:
            query = query.where(Sale.created_at >= since)
        for (document,) in query.tuples().execute(db):
            try:
                yield from sold_lines(document)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning("a stored sale of %s cannot be read for stock: %s", store, err)
