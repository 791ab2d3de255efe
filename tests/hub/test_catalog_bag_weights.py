"""Bagging-area weights in the hub's catalog: kept per version, sent in deltas and snapshots,
read from CSV with the device's own checks, and added to older databases by migration 13.

Every test runs on SQLite and on PostgreSQL (a fresh database per test in a module cluster).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from peewee import Database

from appliance.mqtt.catalog_products import product_rows
from appliance.mqtt.payloads import CatalogDelta, SnapshotChunk, decode, encode
from appliance.settings import StoreSettings
from hub.catalog import HubCatalog, ImportResult
from hub.catalog_rows import add_bag_columns
from hub.cli_catalog import catalog as catalog_group
from hub.db import open_hub_database
from hub.migrations import SCHEMA_VERSION, migrate, schema_version
from tests.hub.databases import KINDS, migrated_url

STORE = "graz-4"
BAGGED = "sku,name,price,tax_class,sold_by,bag_grams,bag_tolerance\n"
PLAIN = "sku,name,price,tax_class,sold_by\n"


@pytest.fixture(params=KINDS)
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, migrated hub database of each kind."""
    return migrated_url(request, tmp_path)


@pytest.fixture
def db(hub_url: str) -> Iterator[Database]:
    """The hub database at hub_url."""
    database = open_hub_database(hub_url)
    yield database
    database.close()


def imported(db: Database, text: str) -> ImportResult:
    """Import a CSV into the store; refused rows leave everything as it was."""
    return HubCatalog(db, STORE).import_csv(io.StringIO(text), StoreSettings())


def as_the_device_reads(delta: CatalogDelta) -> dict[str, tuple[int | None, int | None]]:
    """(bag_grams, bag_tolerance) per product, from the delta's bytes through the device's code."""
    decoded = decode(encode(delta), CatalogDelta)
    rows = product_rows(decoded.upserts).products
    return {row[0]: (row[-2], row[-1]) for row in rows}  # the device's rows end with them


def test_a_csv_s_bag_weights_go_out_in_deltas_and_snapshots(db: Database) -> None:
    result = imported(
        db, BAGGED + "TEA,Tea,4.50,standard,each,120,15\nJAM,Jam,3.00,standard,each,,\n"
    )
    assert result.report is not None and result.report.errors == []
    catalog = HubCatalog(db, STORE)
    first = catalog.delta(0)
    assert first is not None
    assert as_the_device_reads(first) == {"TEA": (120, 15), "JAM": (None, None)}

    # A new weight alone is a change: a new version whose delta carries it.
    again = imported(
        db, BAGGED + "TEA,Tea,4.50,standard,each,125,\nJAM,Jam,3.00,standard,each,300,40\n"
    )
    assert (again.version, again.changed, again.unchanged) == (2, 2, 0)
    delta = catalog.delta(1)
    assert delta is not None
    assert as_the_device_reads(delta) == {"TEA": (125, None), "JAM": (300, 40)}
    (chunk,) = catalog.snapshot_chunks()
    products = decode(encode(chunk), SnapshotChunk).products
    assert {p.sku: (p.bag_grams, p.bag_tolerance) for p in products} == {
        "TEA": (125, None),
        "JAM": (300, 40),
    }
    assert imported(db, BAGGED + "TEA,Tea,4.50,standard,each,125,\n").deleted == 1


def test_bad_bag_weights_are_refused_by_line_as_the_device_refuses_them(db: Database) -> None:
    result = imported(
        db,
        BAGGED
        + "OK,Fine,1.00,standard,each,50,5\n"
        + "APPLES,Apples,2.99,standard,kg,180,\n"  # sold by weight: its line's weight counts
        + "SACK,Sack,9.00,standard,each,50001,\n"
        + "CUP,Cup,1.00,standard,each,0,\n"
        + "BOX,Box,1.00,standard,each,200,5001\n"
        + "BAG,Bag,1.00,standard,each,1.5,\n",
    )
    assert result.report is not None
    assert [str(error) for error in result.report.errors] == [
        "line 3 (APPLES): bag_grams must be empty for a product sold by weight",
        "line 4 (SACK): bag_grams 50001 is out of range 1..50000",
        "line 5 (CUP): bag_grams 0 is out of range 1..50000",
        "line 6 (BOX): bag_tolerance 5001 is out of range 0..5000",
        "line 7 (BAG): bag_grams '1.5' is not a whole number",
    ]
    assert not result.changed_anything  # a bad row stops the whole import
    weighed = imported(db, BAGGED + "APPLES,Apples,2.99,standard,kg,,25\n")
    assert weighed.added == 1  # a tolerance alone is fine on a product sold by weight


def test_a_csv_without_the_bag_columns_keeps_each_product_s_weights(db: Database) -> None:
    catalog = HubCatalog(db, STORE)
    imported(db, BAGGED + "TEA,Tea,4.50,standard,each,120,15\nNUTS,Nuts,2.00,standard,each,90,10\n")
    # A file from a system that knows nothing of bagging: the weights set before stay.
    result = imported(db, PLAIN + "TEA,Tea,4.75,standard,each\nNUTS,Nuts,2.00,standard,each\n")
    assert (result.changed, result.unchanged) == (1, 1)
    delta = catalog.delta(1)
    assert delta is not None
    assert {p.sku: (p.price, p.bag_grams, p.bag_tolerance) for p in delta.upserts} == {
        "TEA": (475, 120, 15)
    }
    # Nuts now sold loose by weight: their bag weight no longer applies, the tolerance does.
    imported(db, PLAIN + "TEA,Tea,4.75,standard,each\nNUTS,Nuts,2.00,standard,kg\n")
    assert catalog.products()["NUTS"].bag_grams is None
    assert catalog.products()["NUTS"].bag_tolerance == 10
    # A file with the column and an empty cell clears the weight.
    imported(db, "sku,name,price,tax_class,bag_grams\nTEA,Tea,4.75,standard,\n")
    assert (catalog.products()["TEA"].bag_grams, catalog.products()["TEA"].bag_tolerance) == (
        None,
        15,  # its column was not in the file
    )


def test_the_hub_catalog_import_command_takes_bag_weights_and_names_bad_ones(
    hub_url: str, db: Database, tmp_path: Path
) -> None:
    csv_file = tmp_path / "catalog.csv"

    def run(text: str) -> str:
        csv_file.write_text(text, encoding="utf-8")
        result = CliRunner().invoke(
            catalog_group,
            ["import", str(csv_file), "--store", STORE, "--db", hub_url, "--no-publish"],
        )
        return f"exit {result.exit_code}: {result.output}"

    refused = run(BAGGED + "APPLES,Apples,2.99,standard,kg,180,\n")
    assert refused.startswith("exit 1")
    assert "line 2 (APPLES): bag_grams must be empty for a product sold by weight" in refused
    assert "nothing was imported" in refused
    done = run(BAGGED.replace(",", ";") + "TEA;Tea;4,50;standard;each;120;15\n")
    assert done.startswith("exit 0") and "1 added" in done
    tea = HubCatalog(db, STORE).products()["TEA"]
    assert (tea.price, tea.bag_grams, tea.bag_tolerance) == (450, 120, 15)


# --- migration 13 ------------------------------------------------------------------------


def test_migration_13_gives_an_older_hub_s_products_empty_bag_weights(db: Database) -> None:
    imported(db, PLAIN + "OLD,Old,1.00,standard,each\n")
    # As a version 12 hub had it: no bag columns.
    db.execute_sql("ALTER TABLE hub_product DROP COLUMN bag_grams")
    db.execute_sql("ALTER TABLE hub_product DROP COLUMN bag_tolerance")
    db.execute_sql("UPDATE hub_schema SET version = 12")

    assert [m.version for m in migrate(db)] == list(range(13, SCHEMA_VERSION + 1))
    assert schema_version(db) == SCHEMA_VERSION
    with db.atomic():
        add_bag_columns(db)  # idempotent, as a worker racing the migration may find it done
    columns = {column.name for column in db.get_columns("hub_product")}
    assert {"bag_grams", "bag_tolerance"} <= columns
    old = HubCatalog(db, STORE).products()["OLD"]
    assert (old.bag_grams, old.bag_tolerance) == (None, None)
    # And the migrated table takes new weights.
    imported(db, BAGGED + "OLD,Old,1.00,standard,each,75,5\n")
    assert HubCatalog(db, STORE).products()["OLD"].bag_grams == 75
