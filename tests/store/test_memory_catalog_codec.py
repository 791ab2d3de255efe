"""The in-memory catalog keeps products encoded: what comes back equals what was stored."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, replace

import pytest

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog
from tests.store.crash_writer import ean13

SAMPLE = (
    Product(
        "KAFFEE-500",
        "Ground coffee 500 g",
        Money(899, "EUR"),
        "reduced",
        category="Drinks",
        names=(("de", "Gemahlener Kaffee 500 g"), ("fr", "Café moulu 500 g")),
        barcodes=(ean13("400638133393"),),
    ),
    Product(
        "MULTI",
        "Multipack of three",
        Money(1299, "EUR"),
        "standard",
        category="Grocery",
        barcodes=tuple(sorted(ean13(f"40123450010{n}") for n in range(3))),
    ),
    Product(
        "WHISKY",
        "Single malt 0.7 l",
        Money(3999, "EUR"),
        "standard",
        category="Drinks",
        age_restriction=18,
        names=(("de", "Single Malt Whisky 0,7 l"),),
        barcodes=(ean13("501234567890"),),
    ),
    Product(
        "APPLES",
        "Apples (per kg)",
        Money(249, "EUR"),
        "reduced",
        category="Fruit & Veg",
        sold_by="kg",
        stock_tracked=False,
        names=(("de", "Äpfel (je kg)"),),
        barcodes=(ean13("200012300000"),),
    ),
    Product("SERVICE", "Gift wrapping", Money(150, "EUR"), "zero"),  # no barcode, no category
    Product("YEN", "Imported tea", Money(1200, "JPY"), "standard", category="Drinks"),
    Product(
        "ÜBER-ß",
        "Straße\tmap\n2024 — 東京",
        Money(2_000_000_000_00, "EUR"),
        "standard",
        category="Bücher",
        names=(("de", "Straßenkarte"), ("ja", "東京の地図")),
    ),
)


@pytest.fixture
def stored(catalog: SqliteCatalog) -> SqliteCatalog:
    """The store tests' sample catalog plus products that use every Product field."""
    catalog.upsert((product, None) for product in SAMPLE)
    return catalog


def test_every_product_comes_back_as_the_database_stores_it(stored: SqliteCatalog) -> None:
    memory = MemoryCatalog(stored)
    assert memory.refresh() == stored.count()
    every = list(stored.all_products())
    assert {p.sku for p in SAMPLE} <= {p.sku for p in every}
    for product in every:
        assert memory.by_sku(product.sku) == product
        for key in product.barcodes:
            assert memory.by_barcode_key(key) == stored.by_barcode_key(key) == product
    for original in SAMPLE:
        assert memory.by_sku(original.sku) == original  # nothing lost on the way in either


def test_a_decoded_product_is_a_real_frozen_product(stored: SqliteCatalog) -> None:
    memory = MemoryCatalog(stored)
    found = memory.by_sku("WHISKY")
    assert found is not None
    original = stored.by_sku("WHISKY")
    assert type(found) is Product and type(found.price) is Money
    assert hash(found) == hash(original) and repr(found) == repr(original)
    assert found.name_in("de_AT") == "Single Malt Whisky 0,7 l"
    assert found.price + found.price == Money(7998, "EUR")
    assert replace(found, name="Other") != found
    with pytest.raises(FrozenInstanceError):
        found.name = "changed"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        found.price.minor = 1  # type: ignore[misc]
    # Each lookup hands out its own object: changing one cannot reach the catalog.
    assert memory.by_sku("WHISKY") is not found


def test_search_and_categories_hand_out_the_stored_products(stored: SqliteCatalog) -> None:
    memory = MemoryCatalog(stored)
    assert memory.search("kaffee") == [stored.by_sku("KAFFEE-500")]
    assert memory.search("strasse 2024") == [stored.by_sku("ÜBER-ß")]
    assert memory.search("東京") == [stored.by_sku("ÜBER-ß")]
    assert memory.in_category("Drinks") == [
        stored.by_sku(sku) for sku in ("KAFFEE-500", "YEN", "WHISKY")
    ]
    assert "Bücher" in memory.categories()


class Source:
    """Stands in for SqliteCatalog: fixed products; records where they are read."""

    def __init__(self, products: list[Product]) -> None:
        self.products = products
        self.read_on: list[threading.Thread] = []
        self.closed_on: list[threading.Thread] = []

    def version(self) -> int:
        """The catalog version."""
        return 1

    def all_products(self) -> Iterator[Product]:
        """Every product."""
        self.read_on.append(threading.current_thread())
        return iter(self.products)

    def close_thread_connection(self) -> None:
        """Records the thread whose connection would close."""
        self.closed_on.append(threading.current_thread())


def memory_of(products: list[Product]) -> MemoryCatalog:
    return MemoryCatalog(Source(products))  # type: ignore[arg-type]


def item(sku: str, name: str = "Thing", *barcodes: str) -> Product:
    return Product(sku, name, Money(100, "EUR"), "standard", barcodes=barcodes)


def colliding(make: str) -> tuple[str, str]:
    """Two different keys `make.format(n)` whose hashes share the bits the index keeps."""
    seen: dict[int, str] = {}
    n = 0
    while True:
        key = make.format(n)
        bits = hash(key) >> (sys.hash_info.width - 32)
        if bits in seen:
            return seen[bits], key
        seen[bits] = key
        n += 1


def test_keys_whose_hashes_collide_are_told_apart() -> None:
    sku_a, sku_b = colliding("SKU-{}")
    key_a, key_b = colliding("{:014d}")
    products = [item(sku_a, "First", key_a), item(sku_b, "Second", key_b), item("OTHER")]
    memory = memory_of(products)
    assert memory.by_sku(sku_a) == products[0]
    assert memory.by_sku(sku_b) == products[1]
    assert memory.by_barcode_key(key_a) == products[0]
    assert memory.by_barcode_key(key_b) == products[1]
    assert len(memory) == 3
    assert memory.search("first") == [products[0]] and memory.search("second") == [products[1]]
    # A key missing from the catalog is not answered by the one whose hash it shares.
    alone = memory_of([products[0]])
    assert alone.by_sku(sku_b) is None and alone.by_barcode_key(key_b) is None


def test_a_sku_given_twice_counts_once_and_the_last_one_wins() -> None:
    first, last = item("DUP", "Old name", "00000000000017"), item("DUP", "New name")
    shared_a, shared_b = item("A", "Alpha", "00000000000024"), item("B", "Beta", "00000000000024")
    memory = memory_of([first, shared_a, last, shared_b])
    assert memory.by_sku("DUP") == last
    assert len(memory) == 3
    assert memory.search("name") == [last]
    assert memory.by_barcode_key("00000000000024") == shared_b  # the last one given it


def test_an_empty_catalog_answers_nothing() -> None:
    memory = memory_of([])
    assert memory.refresh() == 0
    assert len(memory) == 0
    assert memory.by_sku("X") is None and memory.by_barcode_key("00000000000017") is None
    assert memory.search("x") == [] and memory.categories() == []
    assert memory.in_category("x") == []


def test_refresh_reads_on_a_thread_whose_connection_closes_afterwards() -> None:
    # The main thread's connection serves the till; a full read would fill its page cache.
    source = Source([item("ONE")])
    memory = MemoryCatalog(source)  # type: ignore[arg-type]
    assert memory.refresh() == 1
    assert len(source.read_on) == 1
    assert source.read_on[0] is not threading.main_thread()
    assert source.closed_on == source.read_on
    assert memory.by_sku("ONE") == item("ONE")


def test_a_failed_first_load_raises_to_the_caller() -> None:
    class Broken(Source):
        def all_products(self) -> Iterator[Product]:
            raise RuntimeError("disk gone")

    memory = MemoryCatalog(Broken([]))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="disk gone"):
        memory.refresh()
