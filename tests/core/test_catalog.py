"""Tests for Product and find_product: barcode, SKU and variable-measure lookups."""

from __future__ import annotations

import pytest

from appliance.core.barcode import VariableMeasure, VariableMeasureRule, normalize_gtin
from appliance.core.catalog import CatalogLookup, Product, ProductMatch, find_product
from appliance.core.money import Money
from appliance.errors import BarcodeError, UnknownProductError

WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")
PRICE_20 = VariableMeasureRule(prefix="20", item_digits=5, measure="price")

COLA = Product(
    sku="COLA-05",
    name="Cola 0.5 l",
    price=Money(249, "EUR"),
    tax_class="standard",
    barcodes=(normalize_gtin("4006381333931"),),
)
SOUP = Product(  # carries a UPC-A, stored as its 14-digit GTIN like every barcode
    sku="SOUP",
    name="Tomato soup",
    price=Money(199, "EUR"),
    tax_class="reduced",
    barcodes=(normalize_gtin("036000291452"),),
)
NAILS = Product(  # an all-digit SKU whose last digit is not a valid check digit (12345670 is)
    sku="12345678", name="Nails", price=Money(99, "EUR"), tax_class="standard"
)
APPLES = Product(
    sku="APPLES",
    name="Apples",
    price=Money(299, "EUR"),
    tax_class="reduced",
    sold_by="kg",
    barcodes=("02112345000008",),  # the in-store code with its weight zeroed
)
CHEESE = Product(
    sku="CHEESE",
    name="Cheese",
    price=Money(0, "EUR"),
    tax_class="reduced",
    barcodes=("02098765000005",),
)


class FakeCatalog:
    """An in-memory CatalogLookup that records what it was asked."""

    def __init__(self, *products: Product) -> None:
        self.by_key = {key: p for p in products for key in p.barcodes}
        self.skus = {p.sku: p for p in products}
        self.asked: list[tuple[str, str]] = []

    def by_barcode_key(self, key: str) -> Product | None:
        """The product with this 14-digit GTIN."""
        self.asked.append(("barcode", key))
        return self.by_key.get(key)

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        self.asked.append(("sku", sku))
        return self.skus.get(sku)


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog(COLA, SOUP, NAILS, APPLES, CHEESE)


def test_fake_catalog_satisfies_the_port(catalog: FakeCatalog) -> None:
    lookup: CatalogLookup = catalog
    assert lookup.by_sku("COLA-05") is COLA


def test_a_scanned_barcode_finds_its_product_with_the_decoded_code(catalog: FakeCatalog) -> None:
    match = find_product(catalog, "4006381333931")
    assert match.product is COLA
    assert match.scanned is not None
    assert (match.scanned.raw, match.scanned.kind) == ("4006381333931", "ean13")
    assert catalog.asked == [("barcode", "04006381333931")]


def test_surrounding_whitespace_from_the_scanner_is_ignored(catalog: FakeCatalog) -> None:
    assert find_product(catalog, " 4006381333931\r\n").product is COLA


@pytest.mark.parametrize("code", ["036000291452", "0036000291452", "00036000291452"])
def test_upc_a_and_its_ean_13_and_gtin_14_forms_find_the_same_product(
    catalog: FakeCatalog, code: str
) -> None:
    assert find_product(catalog, code).product is SOUP


def test_an_all_digit_sku_with_a_bad_check_digit_is_found_by_sku(catalog: FakeCatalog) -> None:
    match = find_product(catalog, "12345678")
    assert match == ProductMatch(NAILS, None)
    assert catalog.asked == [("sku", "12345678")]


def test_a_valid_barcode_not_in_the_catalog_falls_back_to_the_sku(catalog: FakeCatalog) -> None:
    also_a_sku = Product("96385074", "Screws", Money(149, "EUR"), "standard")
    catalog = FakeCatalog(also_a_sku)
    match = find_product(catalog, "96385074")
    assert match.product is also_a_sku
    assert match.scanned is None
    assert catalog.asked == [("barcode", "00000096385074"), ("sku", "96385074")]


def test_a_typed_sku_finds_its_product(catalog: FakeCatalog) -> None:
    assert find_product(catalog, "COLA-05") == ProductMatch(COLA)


@pytest.mark.parametrize("code", ["4006381333948", "96385074", "NO-SUCH-SKU", "12345"])
def test_an_unknown_code_raises_unknown_product(catalog: FakeCatalog, code: str) -> None:
    with pytest.raises(UnknownProductError, match=code):
        find_product(catalog, code)


@pytest.mark.parametrize("code", ["", "   "])
def test_an_empty_code_raises_unknown_product(catalog: FakeCatalog, code: str) -> None:
    with pytest.raises(UnknownProductError):
        find_product(catalog, code)
    assert catalog.asked == []


@pytest.mark.parametrize("code", ["4006381333932", "036000291453", "96385075", "10036000291459"])
def test_a_bad_barcode_that_is_no_sku_raises_barcode_error(catalog: FakeCatalog, code: str) -> None:
    # A bad check digit, or a case code (GTIN-14 indicator 1), with no SKU of those digits.
    with pytest.raises(BarcodeError):
        find_product(catalog, code)


def test_a_weight_label_finds_the_product_by_its_zeroed_key(catalog: FakeCatalog) -> None:
    match = find_product(catalog, "2112345012346", [WEIGHT_21, PRICE_20])
    assert match.product is APPLES
    assert match.scanned is not None
    assert match.scanned.variable == VariableMeasure("weight", 1234)
    assert ("barcode", "02112345000008") in catalog.asked


def test_a_price_label_finds_the_product_and_carries_the_price(catalog: FakeCatalog) -> None:
    match = find_product(catalog, "2098765003495", [WEIGHT_21, PRICE_20])
    assert match.product is CHEESE
    assert match.scanned is not None
    assert match.scanned.variable == VariableMeasure("price", 349)


def test_without_rules_an_in_store_code_is_an_ordinary_unknown_barcode(
    catalog: FakeCatalog,
) -> None:
    with pytest.raises(UnknownProductError):
        find_product(catalog, "2112345012346")


def test_name_in_falls_back_from_locale_to_language_to_default() -> None:
    product = Product(
        "X",
        "Roll",
        Money(50, "EUR"),
        "reduced",
        names=(("de", "Brötchen"), ("de_AT", "Semmel")),
    )
    assert product.name_in("de_AT") == "Semmel"
    assert product.name_in("de_DE") == "Brötchen"
    assert product.name_in("de") == "Brötchen"
    assert product.name_in("fr_FR") == "Roll"
