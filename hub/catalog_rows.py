"""How a store's catalog is kept: its versions, and a row per product per version it changed in.

A product's row holds its whole record as of that version (a deleted product gets a
tombstone row), so the catalog at any version is the newest row of each product up to it.
Rows are read with the driver's own values, in (sku, version) order, so that folding them
leaves each product's newest row. hub/catalog.py makes versions and deltas from them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    Database,
    DateTimeField,
    IntegerField,
    SchemaManager,
    TextField,
    chunked,
)

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.mqtt.payloads import ProductPayload
from hub.catalog_records import RECORD_MODELS, ProductImage
from hub.models import HubModel, PublishedStock
from hub.stores import DeviceStore

IN_BATCH = 500  # values per IN (...) list: far below every parameter limit


class HubCatalogVersion(HubModel):
    """One version of a store's catalog: when it was made and what it changed."""

    store = CharField(max_length=64)
    version = IntegerField()
    created_at = DateTimeField()
    added = IntegerField(default=0)
    changed = IntegerField(default=0)
    deleted = IntegerField(default=0)

    class Meta:
        primary_key = CompositeKey("store", "version")


class HubProduct(HubModel):
    """A product as it is from `version` on (until a later row); `deleted` is a tombstone."""

    id = AutoField()
    store = CharField(max_length=64)
    sku = CharField(max_length=64)
    version = IntegerField()
    deleted = BooleanField(default=False)
    name = TextField(default="")
    names = TextField(default="{}")  # JSON {locale: name}
    price = BigIntegerField(default=0)  # minor units
    currency = CharField(max_length=3, default="")
    tax_class = CharField(max_length=32, default="")
    category = TextField(default="")
    age_restriction = IntegerField(default=0)
    stock_tracked = BooleanField(default=True)
    sold_by = CharField(max_length=8, default="each")
    barcodes = TextField(default="")  # normalised GTIN-14 keys, space separated
    # The bagging-area check's grams one item adds to the bag, and grams either way allowed
    # (None: not known / the store's default); migration 13.
    bag_grams = IntegerField(null=True)
    bag_tolerance = IntegerField(null=True)
    description = TextField(default="")
    image = CharField(max_length=64, null=True)  # its ProductImage's sha256; None: no picture
    stock = BigIntegerField(null=True)  # the last stocktake's count, carried forward
    stock_version = IntegerField(null=True)  # the version that stocktake came with
    stock_at = DateTimeField(null=True)  # when it was imported (naive UTC)

    class Meta:
        indexes = ((("store", "sku", "version"), True), (("store", "version"), False))


# PublishedStock belongs to migration 5 and the record tables to migration 7; created here
# too (if missing) so every database the catalog code opens has them, whichever way it was made.
CATALOG_MODELS: tuple[type[HubModel], ...] = (
    HubCatalogVersion,
    HubProduct,
    DeviceStore,
    PublishedStock,
    *RECORD_MODELS,
)
# The product fields a change compares, in the order Row.fields holds them.
FIELDS = (HubProduct.name, HubProduct.names, HubProduct.price, HubProduct.currency,
          HubProduct.tax_class, HubProduct.category, HubProduct.age_restriction,
          HubProduct.stock_tracked, HubProduct.sold_by, HubProduct.barcodes,
          HubProduct.bag_grams, HubProduct.bag_tolerance,
          HubProduct.description, HubProduct.image)  # fmt: skip
TRACKED, SOLD_BY, CODES, BAG_GRAMS, BAG_TOLERANCE, IMAGE = 7, 8, 9, 10, 11, 13  # in FIELDS
# The optional CSV columns a product keeps its value of when a file has no such column.
KEPT_UNLESS_GIVEN = {"bag_grams": BAG_GRAMS, "bag_tolerance": BAG_TOLERANCE}
_STOCK = (HubProduct.stock, HubProduct.stock_version, HubProduct.stock_at)
_SELECT = (HubProduct.sku, HubProduct.version, HubProduct.deleted, *FIELDS, *_STOCK)
_INSERT = (HubProduct.store, *_SELECT)
TOMBSTONE = ("", "{}", 0, "", "", "", 0, True, "each", "", None, None, "", None)  # a deleted one's
NO_COUNT = (None, None, None)  # the stocktake columns of a product never counted


def insert_sql(db: Database) -> str:
    """One product row's INSERT, for executemany, in this database's dialect."""
    quotes = str(db.quote)  # the database's identifier quotes, e.g. '""'
    left, right = quotes[0], quotes[-1]
    columns = ", ".join(f"{left}{field.column_name}{right}" for field in _INSERT)
    values = ", ".join([db.param] * len(_INSERT))
    table = f"{left}{HubProduct._meta.table_name}{right}"
    return f"INSERT INTO {table} ({columns}) VALUES ({values})"


def create_catalog_tables(db: Database) -> None:
    """Create the catalog tables if missing (proposed as the hub's migration 2)."""
    for model in CATALOG_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)


def add_bag_columns(db: Database) -> None:
    """Migration 13: each product's bagging-area weight and tolerance (NULL: none given)."""
    # Version 2 creates hub_product from today's model, so a new database has the columns.
    present = {column.name for column in db.get_columns("hub_product")}
    for column in ("bag_grams", "bag_tolerance"):
        if column not in present:
            db.execute_sql(f"ALTER TABLE hub_product ADD COLUMN {column} INTEGER")


class Row(NamedTuple):
    """A product row as read: the comparable fields apart from the stocktake."""

    sku: str
    version: int
    deleted: bool
    fields: tuple[Any, ...]
    stock: int | None
    stock_version: int | None
    stock_at: datetime | None

    def payload(self, stock: int | None, thumbnails: Mapping[str, bytes]) -> ProductPayload:
        """The product as the devices get it, with `stock` when it is a correction."""
        (name, names, price, currency, tax_class, category, age, tracked, sold_by, codes,
         bag_grams, bag_tolerance, description, image) = self.fields  # fmt: skip
        return ProductPayload(
            sku=self.sku, name=name, price=price, currency=currency, tax_class=tax_class,
            category=category, age_restriction=age, stock_tracked=bool(tracked),
            sold_by=sold_by, names=json.loads(names) if names != "{}" else {},
            barcodes=codes.split(), stock=stock, description=description,
            thumbnail=thumbnails.get(image, b"") if image else b"",
            bag_grams=bag_grams, bag_tolerance=bag_tolerance,
        )  # fmt: skip

    def record(self) -> ProductRecord:
        """The product's record as the catalog keeps it."""
        (name, names, price, currency, tax_class, category, age, tracked, sold_by, codes,
         bag_grams, bag_tolerance, description, image) = self.fields  # fmt: skip
        product = Product(
            sku=self.sku, name=name, price=Money(int(price), currency), tax_class=tax_class,
            category=category, age_restriction=int(age), stock_tracked=bool(tracked),
            sold_by=sold_by, names=tuple(sorted(json.loads(names).items())),
            barcodes=tuple(codes.split()), bag_grams=bag_grams, bag_tolerance=bag_tolerance,
        )  # fmt: skip
        return ProductRecord(product, description, image)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """A product as the catalog keeps it: what the devices sell, its description and picture."""

    product: Product
    description: str = ""
    image: str | None = None  # the sha256 of its picture (hub/catalog_records.py)


def product_fields(p: Product) -> tuple[Any, ...]:
    """The compared fields of a product a CSV carries (no description, no picture)."""
    names = json.dumps(dict(p.names), ensure_ascii=False, sort_keys=True) if p.names else "{}"
    return (p.name, names, p.price.minor, p.price.currency, p.tax_class, p.category,
            p.age_restriction, p.stock_tracked, p.sold_by, " ".join(p.barcodes),
            p.bag_grams, p.bag_tolerance)  # fmt: skip


def record_fields(record: ProductRecord) -> tuple[Any, ...]:
    """The compared fields of a whole record."""
    return (*product_fields(record.product), record.description, record.image)


def read_state(
    db: Database, store: str, version: int, skus: Collection[str] | None = None
) -> dict[str, Row]:
    """The store's products present at `version` (only those of `skus` when given)."""
    if skus is not None and not skus:
        return {}
    latest: dict[str, Row] = {}
    for batch in chunked(sorted(skus), IN_BATCH) if skus is not None else [None]:
        where = [HubProduct.version <= version]
        if batch is not None:
            where.append(HubProduct.sku.in_(batch))
        for row in read_rows(db, store, *where):
            latest[row.sku] = row
    return {sku: row for sku, row in latest.items() if not row.deleted}


def read_rows(db: Database, store: str, *where: Any) -> Iterator[Row]:
    """The store's product rows in (sku, version) order: later rows win when folded."""
    query = (
        HubProduct.select(*_SELECT)
        .where(HubProduct.store == store, *where)
        .order_by(HubProduct.sku, HubProduct.version)
    )
    # The driver's own values: peewee's per-field conversion (dates parsed with
    # strptime) costs seconds on a 100,000-product catalog. Booleans may come as 0/1.
    # The SQL is made by this database (the models are unbound: `query.sql()` would
    # use SQLite's `?` placeholders, which PostgreSQL refuses).
    n = len(FIELDS)
    for r in db.execute_sql(*db.get_sql_context().parse(query)):
        yield Row(r[0], r[1], bool(r[2]), tuple(r[3 : 3 + n]), r[3 + n], r[4 + n], moment(r[5 + n]))


def read_thumbnails(db: Database, rows: Iterable[Row]) -> dict[str, bytes]:
    """The thumbnail of each picture these rows show, by its sha256."""
    shas = sorted({row.fields[IMAGE] for row in rows if row.fields[IMAGE]})
    found: dict[str, bytes] = {}
    for batch in chunked(shas, IN_BATCH):
        query = ProductImage.select(ProductImage.sha256, ProductImage.thumbnail).where(
            ProductImage.sha256.in_(batch)
        )
        # PostgreSQL hands a bytea back as a memoryview.
        found.update((sha, bytes(data)) for sha, data in query.tuples().execute(db))
    return found


def made_at(db: Database, store: str, versions: Collection[int]) -> dict[int, datetime | None]:
    """When each of these versions of the store was made."""
    made: dict[int, datetime | None] = {}
    for batch in chunked(sorted(versions), IN_BATCH):
        query = HubCatalogVersion.select(
            HubCatalogVersion.version, HubCatalogVersion.created_at
        ).where(HubCatalogVersion.store == store, HubCatalogVersion.version.in_(batch))
        made.update((int(v), moment(at)) for v, at in query.tuples().execute(db))
    return made


def moment(value: datetime | str | None) -> datetime | None:
    """A stored naive-UTC time (SQLite hands back text, PostgreSQL a datetime)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value
