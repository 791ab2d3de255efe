"""Full product records in the store catalogs: descriptions, pictures, stock movements.

A picture is kept once, under the SHA-256 of the bytes sent, however many products and
stores show it; a product row names it by that hash. Stock movements (goods in, damage,
web orders, ...) move a product's level between two stocktakes. `catalog_pushed` says,
per store, up to which catalog version the serve workers have sent the changes to the
store's devices (hub/catalog_push.py). All of it is the hub schema's migration 7.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    BlobField,
    CharField,
    Database,
    DateTimeField,
    IntegerField,
    SchemaManager,
)

from hub.models import HubModel


class ProductImage(HubModel):
    """A product picture as uploaded, and the thumbnail the devices get; stored once."""

    sha256 = CharField(primary_key=True, max_length=64)  # hex, of `original`
    content_type = CharField(max_length=32)
    original = BlobField()
    thumbnail = BlobField()  # JPEG, fits the kiosk's product tile
    width = IntegerField()  # of the original, in pixels
    height = IntegerField()
    created_at = DateTimeField()


class StockMovement(HubModel):
    """Stock that came in or went out of a store other than by a sale (items, or grams)."""

    id = AutoField()
    store = CharField(max_length=64)
    sku = CharField(max_length=64)
    delta = BigIntegerField()
    reason = CharField(max_length=16)
    reference = CharField(max_length=128, null=True)  # the caller's id: a repeat is one movement
    # The store's catalog version when it was recorded: it moves the level of every count
    # made at or before that version, and none made after it.
    version = IntegerField()
    at = DateTimeField()  # naive UTC
    token = CharField(max_length=32, null=True)  # the API token that recorded it

    class Meta:
        indexes = ((("store", "reference"), True), (("store", "sku", "version"), False))


class CatalogPushed(HubModel):
    """The catalog version of a store whose changes the store's devices were last sent."""

    store = CharField(primary_key=True, max_length=64)
    version = IntegerField()


RECORD_MODELS: tuple[type[HubModel], ...] = (ProductImage, StockMovement, CatalogPushed)


def migrate_catalog_records(db: Database) -> None:
    """Migration 7: the product record columns and tables the integration API writes."""
    # Version 2 creates hub_product from today's model, so a new database has the columns.
    present = {column.name for column in db.get_columns("hub_product")}
    if "description" not in present:
        db.execute_sql("ALTER TABLE hub_product ADD COLUMN description TEXT NOT NULL DEFAULT ''")
    if "image" not in present:
        db.execute_sql("ALTER TABLE hub_product ADD COLUMN image VARCHAR(64)")
    for model in RECORD_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)
    # What existed before was sent by whoever made it (the import CLI, a worker's stock
    # correction): the serve workers push only what is made from now on.
    db.execute_sql(
        "INSERT INTO catalog_pushed (store, version) SELECT store, MAX(version)"
        " FROM hub_catalog_version WHERE store NOT IN (SELECT store FROM catalog_pushed)"
        " GROUP BY store"
    )
