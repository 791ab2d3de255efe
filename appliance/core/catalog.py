"""Products and how a scanned code or typed SKU finds one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.core.barcode import ScannedCode, VariableMeasureRule, is_barcode_like, parse_barcode
from appliance.core.money import Money
from appliance.errors import BarcodeError, UnknownProductError

SoldBy = Literal["each", "kg"]


@dataclass(frozen=True, slots=True)
class Product:
    """A sellable item; `price` is per item, or per kilogram when sold by weight."""

    sku: str
    name: str
    price: Money
    tax_class: str
    category: str = ""
    age_restriction: int = 0  # minimum age in years; 0 means none
    stock_tracked: bool = True
    sold_by: SoldBy = "each"
    names: tuple[tuple[str, str], ...] = ()  # (locale, name) translations
    barcodes: tuple[str, ...] = ()  # normalised 14-digit GTINs
    # Its picture: a file name in the device's picture folder ("" none), never the bytes.
    thumbnail: str = ""
    # The bagging-area check (core/bagging.py): what one item adds to the bag, in grams
    # (None: not known, any settled rise counts), and the grams either way allowed
    # (None: the store's default tolerance).
    bag_grams: int | None = None
    bag_tolerance: int | None = None

    def name_in(self, locale: str) -> str:
        """The name for `locale` ("de_AT" falls back to "de", then to the default name)."""
        translations = dict(self.names)
        language = locale.split("_", maxsplit=1)[0]
        return translations.get(locale) or translations.get(language) or self.name


class CatalogLookup(Protocol):
    """Finds products; implementations are read-only and safe to call from the main thread."""

    def by_barcode_key(self, key: str) -> Product | None:
        """The product carrying a normalised 14-digit GTIN, or None."""
        ...

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU, or None."""
        ...


@dataclass(frozen=True, slots=True)
class ProductMatch:
    """A product found for a code, with the decoded barcode when there was one."""

    product: Product
    scanned: ScannedCode | None = None


def find_product(
    catalog: CatalogLookup, code: str, rules: Sequence[VariableMeasureRule] = ()
) -> ProductMatch:
    """Resolve a scanned barcode or typed SKU; raises BarcodeError or UnknownProductError."""
    text = code.strip()
    if not text:
        raise UnknownProductError("empty code")
    if is_barcode_like(text):
        try:
            scanned = parse_barcode(text, rules)
        except BarcodeError:
            # All-digit SKUs exist; only a code that is neither is an error.
            product = catalog.by_sku(text)
            if product is None:
                raise
            return ProductMatch(product)
        product = catalog.by_barcode_key(scanned.lookup_key)
        if product is not None:
            return ProductMatch(product, scanned)
    product = catalog.by_sku(text)
    if product is None:
        raise UnknownProductError(f"no product with barcode or SKU {text}")
    return ProductMatch(product)
