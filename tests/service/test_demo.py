"""The demo store behind `--simulate`: products to find, two staff members, a paying card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.core.barcode import normalize_gtin
from appliance.core.catalog import find_product
from appliance.service import demo
from appliance.service.assembly import Appliance
from appliance.service.lifecycle import running
from appliance.settings import Settings, StoreSettings, simulated_settings
from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts

CATEGORIES = ["Bakery", "Drinks", "Fruit & Veg", "Grocery", "Other"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return simulated_settings(tmp_path / "state")


@pytest.fixture
def app(settings: Settings) -> Iterator[Appliance]:
    opened = Appliance.open(settings)
    yield opened
    opened.close()


def test_the_demo_catalog_has_categories_translations_and_unscannable_items() -> None:
    products = demo.demo_products(StoreSettings())
    skus = [p.sku for p in products]
    barcodes = [key for p in products for key in p.barcodes]

    assert 20 <= len(products) <= 30
    assert len(set(skus)) == len(skus) and len(set(barcodes)) == len(barcodes)
    assert sorted({p.category for p in products}) == CATEGORIES
    assert all(dict(p.names).get("de") for p in products), "a product has no German name"
    german = {p.sku: p.name_in("de_AT") for p in products}
    assert (german["ROLL"], german["COFFEE-250"]) == ("Brötchen", "Gemahlener Kaffee 250 g")
    assert all(normalize_gtin(key) == key for key in barcodes)  # every check digit is right
    without = {p.sku for p in products if not p.barcodes}
    assert {"ROLL", "BANANA", "BAG"} <= without
    assert len(without) >= 5
    assert all(p.sold_by == "each" for p in products)


def test_the_original_demo_products_keep_their_codes(app: Appliance, settings: Settings) -> None:
    added = demo.seed_demo_catalog(app.catalog, settings.store)

    assert added == len(demo.demo_products(settings.store))
    assert demo.seed_demo_catalog(app.catalog, settings.store) == 0, "seeded twice"
    coffee = find_product(app.catalog, "4006381333931").product
    chocolate = find_product(app.catalog, "7613289024044").product
    wine = find_product(app.catalog, "WINE-RED").product
    assert (coffee.sku, coffee.price.minor) == ("COFFEE-250", 499)
    assert chocolate.sku == "CHOC-100"
    assert wine.age_restriction == 18
    assert find_product(app.catalog, "BAG").product.barcodes == ()
    assert app.catalog.stock_of("ROLL") == demo.DEMO_STOCK


def test_items_without_barcodes_are_found_by_search_and_category(
    app: Appliance, settings: Settings
) -> None:
    demo.seed_demo_catalog(app.catalog, settings.store)
    lookup = MemoryCatalog(SqliteCatalog(app.db))

    assert [p.sku for p in lookup.search("brotchen")] == ["ROLL"]  # German, without umlaut
    assert [p.sku for p in lookup.search("banana")] == ["BANANA"]
    assert lookup.categories() == CATEGORIES
    assert {"ROLL", "PRETZEL", "CROISSANT"} <= {p.sku for p in lookup.in_category("Bakery")}


def test_demo_staff_log_in_by_pin_and_badge(app: Appliance) -> None:
    directory = StaffDirectory(app.db)

    assert demo.seed_demo_staff(directory) == 2
    assert demo.seed_demo_staff(directory) == 0

    cashier = directory.by_badge(demo.DEMO_CASHIER_BADGE)
    supervisor = directory.by_badge(demo.DEMO_SUPERVISOR_BADGE)
    assert cashier is not None and (cashier.name, cashier.role) == ("Alex", "cashier")
    assert supervisor is not None and (supervisor.name, supervisor.role) == ("Sam", "supervisor")
    assert directory.by_pin(demo.DEMO_CASHIER_PIN) == cashier
    assert directory.by_pin(demo.DEMO_SUPERVISOR_PIN) == supervisor


def test_the_demo_card_starts_with_50_once(app: Appliance) -> None:
    accounts = StoredValueAccounts(app.db, "EUR")

    assert demo.seed_demo_stored_value(accounts)
    assert accounts.balance(demo.DEMO_STORED_VALUE_CARD) == 5000
    accounts.debit(demo.DEMO_STORED_VALUE_CARD, 1000, "sale-1")
    assert not demo.seed_demo_stored_value(accounts)
    assert accounts.balance(demo.DEMO_STORED_VALUE_CARD) == 4000


def test_a_simulated_appliance_starts_with_the_whole_demo(settings: Settings) -> None:
    with running(settings, simulate=True) as services:
        app = services.app
        assert app.catalog.count() == len(demo.demo_products(settings.store))
        assert app.lookup.search("kaffee")  # the catalog is loaded and searchable
        assert StaffDirectory(app.db).count() == 2
        balance = StoredValueAccounts(app.db, "EUR").balance(demo.DEMO_STORED_VALUE_CARD)
        assert balance == 5000


def test_a_real_appliance_gets_no_demo_staff_or_card(settings: Settings) -> None:
    with running(settings, simulate=False) as services:
        app = services.app
        assert app.catalog.count() == 0
        assert StaffDirectory(app.db).count() == 0
        assert StoredValueAccounts(app.db, "EUR").balance(demo.DEMO_STORED_VALUE_CARD) is None
