"""The hub's products as catalog messages carry them, and as the store's rows.

`product_rows` checks every product of a delta or snapshot before anything is written
(a name, a price in a known currency, GTIN-14 barcodes, no SKU twice) and turns them into
the store's staging rows, each picture as the file name `picture` gave it (see
catalog_pictures.py); `payload_from_product` is the reverse way, a Product as the hub
sends it (without its picture: the device keeps only the file).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from appliance.core.catalog import Product
from appliance.core.money import is_known_currency
from appliance.errors import CatalogSyncError
from appliance.mqtt.payloads import ProductPayload
from appliance.store.catalog_versions import ProductRows


@cache
def _currency_ok(code: str) -> bool:
    return is_known_currency(code)


# A product's picture as the store keeps it: the file name of its picture ("" none; None
# keeps the picture the product has, as for a picture that could not be written now).
PictureOf = Callable[[ProductPayload], str | None]


def _no_picture(_product: ProductPayload) -> str | None:
    return ""


def product_rows(
    payloads: Iterable[ProductPayload], picture: PictureOf = _no_picture
) -> ProductRows:
    """The store's rows for the hub's products; CatalogSyncError on an unusable or repeated one.

    Checked here, before the database is written, so a bad product refuses the whole delta
    or snapshot. `picture` is asked only for products that bring one, one product at a
    time, so no picture outlives its product's turn here. A snapshot brings 100,000 of
    these: the loop stays lean on purpose.
    """
    products: list[tuple[Any, ...]] = []
    barcodes: list[tuple[str, str]] = []
    add, add_code = products.append, barcodes.append
    for p in payloads:
        sku = p.sku
        if not sku or not p.name or p.price < 0 or not _currency_ok(p.currency):
            raise CatalogSyncError(f"product {sku!r}: needs a name and a price in a currency")
        for key in p.barcodes:
            # Normalised 14-digit keys; the hub checked their check digits at import.
            if len(key) != 14 or not (key.isascii() and key.isdigit()):
                raise CatalogSyncError(f"product {sku}: barcode {key!r} is not a GTIN-14")
            add_code((key, sku))
        names = json.dumps(p.names, ensure_ascii=False) if p.names else "{}"
        add((sku, p.name, names, p.price, p.currency, p.tax_class, p.category,
             p.age_restriction, p.stock_tracked, p.sold_by, p.stock, p.description,
             picture(p) if p.thumbnail else "", p.bag_grams, p.bag_tolerance))  # fmt: skip
    if len({row[0] for row in products}) != len(products):
        raise CatalogSyncError("a product appears twice")
    return ProductRows(products, barcodes)


def payload_from_product(product: Product, stock: int | None = None) -> ProductPayload:
    """The payload the hub sends for a product (with `stock` when it corrects the level)."""
    return ProductPayload(
        sku=product.sku,
        name=product.name,
        price=product.price.minor,
        currency=product.price.currency,
        tax_class=product.tax_class,
        category=product.category,
        age_restriction=product.age_restriction,
        stock_tracked=product.stock_tracked,
        sold_by=product.sold_by,
        names=dict(product.names),
        barcodes=list(product.barcodes),
        stock=stock,
        bag_grams=product.bag_grams,
        bag_tolerance=product.bag_tolerance,
    )
