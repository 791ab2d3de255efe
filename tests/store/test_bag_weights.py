"""A product's expected weight in the bagging area, end to end on the device: hub, CSV, memory."""

from __future__ import annotations

import io

import pytest
from peewee import SqliteDatabase

from appliance.catalog_import import products_to_csv, read_catalog_csv
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.errors import DecodeError
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import CatalogDelta, ProductPayload, decode, encode
from appliance.settings import StoreSettings
from appliance.store.catalog import SqliteCatalog
from appliance.store.memory_catalog import MemoryCatalog

TEA = Product("TEA", "Green tea", Money(349, "EUR"), "reduced", bag_grams=130, bag_tolerance=8)
LOOSE = Product("ROLL", "Bread roll", Money(45, "EUR"), "reduced")


def test_the_hub_s_expected_weights_reach_the_checkout_s_catalog(db: SqliteDatabase) -> None:
    sync = CatalogSync(db, "k1", lambda _t, _d: None)
    upserts = [payload_from_product(TEA), payload_from_product(LOOSE)]
    assert sync.apply_delta(CatalogDelta(from_version=0, to_version=1, upserts=upserts)) == (
        "applied"
    )

    memory = MemoryCatalog(SqliteCatalog(db))
    memory.refresh()
    assert memory.by_sku("TEA") == TEA == SqliteCatalog(db).by_sku("TEA")
    assert memory.by_sku("ROLL") == LOOSE  # no expected weight: any settled rise counts


@pytest.mark.parametrize(("field", "value"), [("bag_grams", 0), ("bag_tolerance", -1)])
def test_a_payload_with_a_bad_expected_weight_is_refused_naming_the_field(
    field: str, value: int
) -> None:
    data = encode(payload_from_product(TEA)).replace(
        f'"{field}":{getattr(TEA, field)}'.encode(), f'"{field}":{value}'.encode()
    )
    with pytest.raises(DecodeError, match=field):
        decode(data, ProductPayload)


def test_the_csv_import_reads_and_writes_the_expected_weight() -> None:
    report, rows = read_catalog_csv(io.StringIO(products_to_csv(iter([(TEA, None)]))), STORE)

    assert not report.errors
    assert (rows[0].product.bag_grams, rows[0].product.bag_tolerance) == (130, 8)


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("0,", "bag_grams 0 is out of range 1..50000"),
        ("heavy,", "bag_grams 'heavy' is not a whole number"),
        ("130,9000", "bag_tolerance 9000 is out of range 0..5000"),
    ],
)
def test_the_csv_import_names_a_bad_expected_weight(cells: str, reason: str) -> None:
    text = f"sku,name,price,tax_class,bag_grams,bag_tolerance\nTEA,Tea,3.49,reduced,{cells}\n"

    report, rows = read_catalog_csv(io.StringIO(text), STORE)

    assert rows == [] and [e.reason for e in report.errors] == [reason]


def test_a_product_sold_by_weight_takes_no_expected_weight_in_the_csv() -> None:
    text = "sku,name,price,tax_class,sold_by,bag_grams\nAPPLE,Apples,2.99,reduced,kg,200\n"

    report, _rows = read_catalog_csv(io.StringIO(text), STORE)

    assert [e.reason for e in report.errors] == [
        "bag_grams must be empty for a product sold by weight"
    ]


STORE = StoreSettings()
