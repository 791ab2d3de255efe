"""Searching the in-memory catalog: words, accents, translations, categories, 100,000 products."""

from __future__ import annotations

import random
import threading
import unicodedata
from collections.abc import Iterator

import pytest

from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog, fold


def item(sku: str, name: str, category: str = "", **names: str) -> Product:
    """A product with translations given as locale=name."""
    return Product(
        sku, name, Money(100, "EUR"), "standard", category=category, names=tuple(names.items())
    )


SHOP = (
    item("CAFE-1", "Café crème 250 g", "Drinks", de="Kaffee Crème 250 g"),
    item("ROLL", "Bread roll", "Bakery", de="Brötchen"),
    item("CHOC-100", "Dark chocolate 100 g", "Grocery", de="Zartbitterschokolade 100 g"),
    item("CHOC-200", "dark chocolate 200 g", "Grocery"),
    item("STRASSE", "Street map", "", de="Straßenkarte"),
    item("WINE", "Red wine", "Drinks", de="Rotwein", fr="Vin rouge"),
    item("TAB", "Tab\tand\nnew line\x1fname", "Other"),
    item("ÄPFEL", "Äpfel 1 kg", "Fruit & Veg"),
    item("ZUCKER", "Zucker", "Grocery"),
)


class Source:
    """Stands in for SqliteCatalog: a fixed list of products, counting the loads."""

    def __init__(self, products: list[Product] | tuple[Product, ...]) -> None:
        self.products = list(products)
        self.loads = 0
        self.current = 1

    def version(self) -> int:
        """The catalog version."""
        return self.current

    def all_products(self) -> Iterator[Product]:
        """Every product."""
        self.loads += 1
        return iter(self.products)

    def close_thread_connection(self) -> None:
        """Nothing to close."""


def memory_of(products: list[Product] | tuple[Product, ...]) -> MemoryCatalog:
    return MemoryCatalog(Source(products))  # type: ignore[arg-type]


@pytest.fixture
def shop() -> MemoryCatalog:
    return memory_of(SHOP)


def skus(products: list[Product]) -> list[str]:
    return [p.sku for p in products]


def test_fold_ignores_case_accents_and_spacing() -> None:
    assert fold("  Café  CRÈME\t") == "cafe creme"
    assert fold("Straße") == "strasse"
    assert fold("Brötchen") == fold("BROTCHEN") == "brotchen"
    assert fold("ﬁne") == "fine"  # compatibility ligature


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cafe", ["CAFE-1"]),
        ("CAFÉ", ["CAFE-1"]),
        ("crème", ["CAFE-1"]),
        ("brotchen", ["ROLL"]),  # the German name, without its umlaut
        ("Brötchen", ["ROLL"]),
        ("kaffee", ["CAFE-1"]),
        ("vin rouge", ["WINE"]),
        ("strasse", ["STRASSE"]),  # ß folds to ss
        ("apfel", ["ÄPFEL"]),
        ("choc-100", ["CHOC-100"]),  # the SKU
        ("chocolate", ["CHOC-100", "CHOC-200"]),  # by name, whatever the case
        ("100 dark", ["CHOC-100"]),  # every word, in any order
        ("dark wine", []),
        ("new line", ["TAB"]),  # a line break in a name is a space
        ("map\x1f", ["STRASSE"]),
        ("", []),
        ("   ", []),
    ],
)
def test_search(shop: MemoryCatalog, query: str, expected: list[str]) -> None:
    assert skus(shop.search(query)) == expected


def test_results_are_ordered_by_name_and_limited(shop: MemoryCatalog) -> None:
    every = shop.search("e", limit=100)
    names = [fold(p.name) for p in every]
    assert names == sorted(names)
    assert skus(every)[0] == "ÄPFEL"  # "Äpfel" sorts as "apfel", not after "Zucker"
    assert shop.search("e", limit=3) == every[:3]
    assert shop.search("e", limit=0) == []


def test_a_name_cannot_leak_into_the_next_product(shop: MemoryCatalog) -> None:
    # The separator characters inside a name are spaces in the index, so no word spans two.
    assert shop.search("name") == [SHOP[6]]
    assert shop.search("tab and") == [SHOP[6]]


def test_categories_and_their_products(shop: MemoryCatalog) -> None:
    assert shop.categories() == ["Bakery", "Drinks", "Fruit & Veg", "Grocery", "Other"]
    assert skus(shop.in_category("Grocery")) == ["CHOC-100", "CHOC-200", "ZUCKER"]
    assert skus(shop.in_category("Grocery", limit=2)) == ["CHOC-100", "CHOC-200"]
    assert shop.in_category("Nope") == []
    # What is handed out is a copy: changing it does not change the catalog.
    shop.in_category("Grocery").clear()
    assert len(shop.in_category("Grocery")) == 3


def test_concurrent_first_searches_load_the_catalog_once() -> None:
    source = Source(SHOP)
    memory = MemoryCatalog(source)  # type: ignore[arg-type]
    start = threading.Barrier(4)
    results: list[list[str]] = []

    def search() -> None:
        start.wait()
        results.append(skus(memory.search("chocolate")))

    threads = [threading.Thread(target=search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [["CHOC-100", "CHOC-200"]] * 4
    assert source.loads == 1


def test_a_changed_catalog_is_searched_once_reloaded(catalog: SqliteCatalog) -> None:
    memory = MemoryCatalog(catalog, recheck_seconds=0)
    memory.refresh()
    assert memory.search("rye") and not memory.search("pumpernickel")
    catalog.upsert(
        [(item("PUMP", "Pumpernickel", "bakery"), None), (item("TART", "Tart", "Cakes"), None)]
    )
    memory.by_sku("PUMP")  # a scan notices the new version
    memory.wait_for_reload(timeout=10)
    assert skus(memory.search("pumpernickel")) == ["PUMP"]
    # Sorted as people read them: case does not put "Cakes" before "bakery".
    assert memory.categories() == ["bakery", "Cakes", "drinks"]


WORDS = ("organic", "Käse", "spicy", "crème", "brot", "tea", "green", "Apfel", "juice", "bio")


def big_catalog(size: int) -> list[Product]:
    rng = random.Random(5)
    products = []
    for i in range(size):
        words = rng.sample(WORDS, 3)
        products.append(
            item(
                f"SKU{i:07d}",
                f"{words[0].title()} {words[1]} {i}",
                f"Category {i % 40}",
                de=f"Produkt {words[2]} {i}",
            )
        )
    return products


def plain(text: str) -> str:
    """Case and accents dropped the slow, obvious way."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


class BruteForce:
    """What a search must find, by checking every product's fields one by one."""

    def __init__(self, products: list[Product]) -> None:
        self.rows = sorted(
            ([plain(f) for f in (p.name, *(n for _, n in p.names), p.sku)], p.sku) for p in products
        )

    def search(self, query: str, limit: int) -> list[str]:
        words = plain(query).split()
        hits = [sku for fields, sku in self.rows if all(any(w in f for f in fields) for w in words)]
        return hits[:limit]


def test_searching_100000_products_finds_what_brute_force_finds() -> None:
    products = big_catalog(100_000)
    memory = memory_of(products)
    expected = BruteForce(products)
    queries = [
        "99999",  # one product's number, and the numbers that contain it
        "sku0012345",  # a SKU
        "kase 1234",  # a common word and a rare one
        "organic spicy",  # two common words, in different fields
        "apfel crème 777",
        "BIO tea green",
        "nothing like this",
        "produkt 5",
    ]
    for query in queries:
        found = skus(memory.search(query, limit=50))
        assert found == expected.search(query, 50), query
    assert len(memory.search("produkt", limit=500)) == 500
    assert len(memory.categories()) == 40
    in_first = memory.in_category("Category 0", limit=5000)
    assert len(in_first) == 2500
    assert [fold(p.name) for p in in_first] == sorted(fold(p.name) for p in in_first)
