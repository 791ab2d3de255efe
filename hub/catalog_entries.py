"""A store's products as the integration API reads them: now, with the version of each record.

A product's version is the catalog version in which its record last changed. A count
alone repeats the record in a new row (hub/catalog.py), so that row's version is not the
record's: folding a product's rows keeps the version where the fields last differed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from peewee import chunked, fn

from hub.catalog import HubCatalog
from hub.catalog_rows import (
    CODES,
    IN_BATCH,
    HubProduct,
    ProductRecord,
    Row,
    made_at,
    read_rows,
    read_state,
)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A product in the current catalog: its record, the version it last changed in, its count."""

    record: ProductRecord
    version: int  # where the record last changed (a new count alone does not change it)
    changed_at: datetime | None  # when that version was made (naive UTC)
    count: int | None  # its last stocktake
    counted_at: datetime | None


def product_entries(catalog: HubCatalog, skus: Collection[str]) -> dict[str, CatalogEntry]:
    """The products among `skus` now, each with the version its record last changed in."""
    db, store = catalog.db, catalog.store
    latest: dict[str, Row] = {}
    since: dict[str, int] = {}
    for batch in chunked(sorted(set(skus)), IN_BATCH):
        for row in read_rows(db, store, HubProduct.sku.in_(batch)):
            was = latest.get(row.sku)
            if was is None or was.deleted or row.deleted or was.fields != row.fields:
                since[row.sku] = row.version
            latest[row.sku] = row
    present = {sku: row for sku, row in latest.items() if not row.deleted}
    made = made_at(db, store, {since[sku] for sku in present})
    return {
        sku: CatalogEntry(row.record(), since[sku], made.get(since[sku]), row.stock, row.stock_at)
        for sku, row in present.items()
    }


def product_entry(catalog: HubCatalog, sku: str) -> CatalogEntry | None:
    """One product now, or None when the store does not have it."""
    return product_entries(catalog, [sku]).get(sku)


def products_page(
    catalog: HubCatalog,
    after: str | None,
    limit: int,
    *,
    category: str | None = None,
    tracked: bool | None = None,
) -> list[CatalogEntry]:
    """Up to `limit` products of the current catalog after SKU `after`, in SKU order."""
    newer = HubProduct.alias()
    newest = newer.select(fn.MAX(newer.version)).where(
        (newer.store == HubProduct.store) & (newer.sku == HubProduct.sku)
    )
    # Each product's newest row, found through the (store, sku, version) index.
    where = [HubProduct.store == catalog.store, HubProduct.version == newest, ~HubProduct.deleted]
    if after is not None:
        where.append(HubProduct.sku > after)
    if category is not None:
        where.append(HubProduct.category == category)
    if tracked is not None:
        where.append(HubProduct.stock_tracked == tracked)
    query = HubProduct.select(HubProduct.sku).where(*where).order_by(HubProduct.sku)
    skus = [str(sku) for (sku,) in query.limit(limit).tuples().execute(catalog.db)]
    found = product_entries(catalog, skus)
    return [found[sku] for sku in skus if sku in found]


def store_currency(catalog: HubCatalog) -> str | None:
    """The currency the store's products are priced in (None before it has any)."""
    query = (
        HubProduct.select(HubProduct.currency)
        .where(HubProduct.store == catalog.store, ~HubProduct.deleted)
        .order_by(HubProduct.version.desc())
        .limit(1)
    )
    found = query.tuples().execute(catalog.db)
    return str(found[0][0]) if found else None


def uses_tax_class(catalog: HubCatalog, tax_class: str) -> bool:
    """Whether a product of the store was ever given this tax class."""
    query = HubProduct.select(HubProduct.id).where(
        HubProduct.store == catalog.store, HubProduct.tax_class == tax_class
    )
    return bool(query.limit(1).tuples().execute(catalog.db))


def barcode_owners(catalog: HubCatalog, keys: Collection[str]) -> dict[str, str]:
    """The current product holding each of these GTIN-14 keys, where one does."""
    db, store = catalog.db, catalog.store
    candidates: set[str] = set()
    for key in set(keys):
        query = HubProduct.select(HubProduct.sku).where(
            HubProduct.store == store, HubProduct.barcodes.contains(key)
        )
        candidates.update(str(sku) for (sku,) in query.distinct().tuples().execute(db))
    owners: dict[str, str] = {}
    for sku, row in read_state(db, store, catalog.version(), candidates).items():
        owners.update({key: sku for key in row.fields[CODES].split() if key in keys})
    return owners
