"""Synthetic products with valid EAN-13 barcodes, shared by the benchmarks."""

from __future__ import annotations

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money

CURRENCY = "EUR"
TAX_CLASSES = ("standard", "reduced", "zero")  # StoreSettings() defaults
TAX_RATES = {"standard": 2000, "reduced": 500, "zero": 0}


def ean13(index: int) -> str:
    """A valid EAN-13 (GS1 prefix 400) for a product number, as a scanner reads it."""
    body = f"400{index:09d}"
    return body + gtin_check_digit(body)


def product(index: int) -> Product:
    """Product number `index`, carrying one EAN-13; every 50th is age-restricted."""
    return Product(
        sku=f"SKU{index:07d}",
        name=f"Product {index}",
        price=Money(99 + index % 1900, CURRENCY),
        tax_class=TAX_CLASSES[index % len(TAX_CLASSES)],
        category=f"Category {index % 40}",
        age_restriction=18 if index % 50 == 49 else 0,
        barcodes=(normalize_gtin(ean13(index)),),
    )


def stock_of(index: int) -> int:
    """The stock level a catalog file gives product number `index`."""
    return 10 + index % 90
