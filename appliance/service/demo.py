"""A small demo catalog, so `--simulate` can sell something out of the box."""

from __future__ import annotations

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.settings import StoreSettings
from appliance.store.catalog import SqliteCatalog

# (sku, name, price in minor units, tax class, category, minimum age, barcode body or "")
_DEMO = (
    ("COFFEE-250", "Ground coffee 250 g", 499, "reduced", "Grocery", 0, "400638133393"),
    ("WATER-05", "Still water 0.5 l", 129, "standard", "Drinks", 0, "500011254812"),
    ("CHOC-100", "Dark chocolate 100 g", 219, "reduced", "Grocery", 0, "761328902404"),
    ("WINE-RED", "Red wine 0.75 l", 899, "standard", "Drinks", 18, "800032001014"),
    ("BAG", "Carrier bag", 20, "standard", "Other", 0, ""),
)


def seed_demo_catalog(catalog: SqliteCatalog, store: StoreSettings) -> int:
    """Fill an empty catalog with demo products; returns how many were added."""
    if catalog.count():
        return 0
    tax_classes = sorted(store.tax_classes)
    products = []
    for sku, name, price, tax_class, category, age, body in _DEMO:
        barcodes = (normalize_gtin(body + gtin_check_digit(body)),) if body else ()
        products.append(
            (
                Product(
                    sku=sku,
                    name=name,
                    price=Money(price, store.currency),
                    tax_class=tax_class if tax_class in store.tax_classes else tax_classes[0],
                    category=category,
                    age_restriction=age,
                    barcodes=barcodes,
                ),
                100,
            )
        )
    return catalog.upsert(products)
