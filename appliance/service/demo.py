"""A demo store, so `--simulate` can sell something out of the box: products, staff, a card."""

from __future__ import annotations

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.settings import StoreSettings
from appliance.store.catalog import SqliteCatalog
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts

# Published in the README and the simulator docs: a demo till is not a secret.
DEMO_CASHIER_PIN = "1357"
DEMO_SUPERVISOR_PIN = "8642"
DEMO_CASHIER_BADGE = "04C0FFEE000001"
DEMO_SUPERVISOR_BADGE = "04C0FFEE000002"
DEMO_STORED_VALUE_CARD = "04CAFE00000001"
DEMO_STORED_VALUE_BALANCE = "50.00"
DEMO_STOCK = 100


# Tax class by category, as a German shop would have it (food reduced, the rest standard).
_TAX_CLASS = {
    "Grocery": "reduced",
    "Drinks": "standard",
    "Bakery": "reduced",
    "Fruit & Veg": "reduced",
    "Other": "standard",
}
_MINIMUM_AGE = {"WINE-RED": 18, "BEER-05": 16}
# category -> (sku, name, German name, price in minor units, GTIN body or "" for none).
# Products without a barcode are found through search or their category. The first five
# products of the original demo keep their codes: tests and docs rely on them.
_CATALOG: dict[str, tuple[tuple[str, str, str, int, str], ...]] = {
    "Grocery": (
        ("COFFEE-250", "Ground coffee 250 g", "Gemahlener Kaffee 250 g", 499, "400638133393"),
        ("CHOC-100", "Dark chocolate 100 g", "Zartbitterschokolade 100 g", 219, "761328902404"),
        ("PASTA-500", "Spaghetti 500 g", "Spaghetti 500 g", 129, "426012345001"),
        ("RICE-1000", "Basmati rice 1 kg", "Basmatireis 1 kg", 279, "426012345002"),
        ("MUESLI-750", "Muesli 750 g", "Müsli 750 g", 329, "426012345003"),
        ("HONEY-250", "Honey 250 g", "Honig 250 g", 349, "426012345004"),
        ("TEA-GREEN", "Green tea, 20 bags", "Grüner Tee, 20 Beutel", 199, "426012345005"),
    ),
    "Drinks": (
        ("WATER-05", "Still water 0.5 l", "Stilles Wasser 0,5 l", 129, "500011254812"),
        ("WINE-RED", "Red wine 0.75 l", "Rotwein 0,75 l", 899, "800032001014"),
        ("JUICE-APPLE", "Apple juice 1 l", "Apfelsaft 1 l", 189, "426012345006"),
        ("COLA-033", "Cola 0.33 l", "Cola 0,33 l", 119, "426012345007"),
        ("BEER-05", "Lager beer 0.5 l", "Helles Bier 0,5 l", 149, "426012345008"),
        ("COFFEE-TOGO", "Coffee to go", "Kaffee zum Mitnehmen", 250, ""),
    ),
    "Bakery": (
        ("ROLL", "Bread roll", "Brötchen", 45, ""),
        ("PRETZEL", "Pretzel", "Brezel", 89, ""),
        ("CROISSANT", "Croissant", "Croissant", 129, ""),
        ("MUFFIN", "Blueberry muffin", "Heidelbeer-Muffin", 199, ""),
        ("BREAD-RYE", "Rye bread 750 g", "Roggenbrot 750 g", 349, "426012345009"),
    ),
    "Fruit & Veg": (
        ("BANANA", "Banana", "Banane", 35, ""),
        ("APPLE", "Apple", "Apfel", 49, ""),
        ("LEMON", "Lemon", "Zitrone", 59, ""),
        ("TOMATO-500", "Cherry tomatoes 500 g", "Cherrytomaten 500 g", 249, "426012345010"),
    ),
    "Other": (
        ("BAG", "Carrier bag", "Tragetasche", 20, ""),
        ("NEWSPAPER", "Daily newspaper", "Tageszeitung", 220, ""),
        ("BATTERY-AA", "AA batteries, pack of 4", "AA-Batterien, 4er-Pack", 499, "426012345011"),
    ),
}


def demo_products(store: StoreSettings) -> list[Product]:
    """The demo products priced in the store's currency and taxed with its classes."""
    fallback = sorted(store.tax_classes)[0]
    products = []
    for category, rows in _CATALOG.items():
        tax_class = _TAX_CLASS[category]
        for sku, name, german, price, body in rows:
            barcodes = (normalize_gtin(body + gtin_check_digit(body)),) if body else ()
            products.append(
                Product(
                    sku=sku,
                    name=name,
                    price=Money(price, store.currency),
                    tax_class=tax_class if tax_class in store.tax_classes else fallback,
                    category=category,
                    age_restriction=_MINIMUM_AGE.get(sku, 0),
                    names=(("de", german),),
                    barcodes=barcodes,
                )
            )
    return products


def seed_demo_catalog(catalog: SqliteCatalog, store: StoreSettings) -> int:
    """Fill an empty catalog with demo products; returns how many were added."""
    if catalog.count():
        return 0
    return catalog.upsert((product, DEMO_STOCK) for product in demo_products(store))


def seed_demo_staff(directory: StaffDirectory) -> int:
    """Add a demo cashier and supervisor to an empty directory; returns how many were added."""
    if directory.count():
        return 0
    directory.add("Alex", "cashier", DEMO_CASHIER_PIN, DEMO_CASHIER_BADGE)
    directory.add("Sam", "supervisor", DEMO_SUPERVISOR_PIN, DEMO_SUPERVISOR_BADGE)
    return 2


def seed_demo_stored_value(accounts: StoredValueAccounts) -> bool:
    """Give the demo card its starting balance if the card is new; True when it was added."""
    if accounts.balance(DEMO_STORED_VALUE_CARD) is not None:
        return False
    amount = Money.parse(DEMO_STORED_VALUE_BALANCE, accounts.currency).minor
    accounts.top_up(DEMO_STORED_VALUE_CARD, amount, reference="demo-card-opening-balance")
    return True
