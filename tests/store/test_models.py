"""The peewee models agree with the migrated schema and are never bound globally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from peewee import ForeignKeyField, InterfaceError, Model, SqliteDatabase

from appliance.store.database import open_database
from appliance.store.migrations import migrate
from appliance.store.models import MODELS, Barcode, Product


def _row(sku: str, price: int = 199) -> dict[Any, object]:
    return {
        Product.sku: sku,
        Product.name: f"Product {sku}",
        Product.price_minor: price,
        Product.currency: "EUR",
        Product.tax_class: "standard",
        Product.updated_at: "2024-01-01T00:00:00+00:00",
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_columns_match_the_table(db: SqliteDatabase, model: type[Model]) -> None:
    table = model._meta.table_name
    assert table in db.get_tables()
    found = {c.name: c for c in db.get_columns(table)}
    fields = {f.column_name: f for f in model._meta.sorted_fields}

    assert sorted(fields) == sorted(found), f"{table}: model and table columns differ"
    primary = set(db.get_primary_keys(table))
    assert {f.column_name for f in model._meta.get_primary_keys()} == primary
    for name, field in fields.items():
        # SQLite reports a non-INTEGER primary key of a rowid table as nullable; the model's
        # key fields never are, so only ordinary columns are compared.
        if name not in primary:
            assert field.null == found[name].null, f"{table}.{name}: nullability differs"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_foreign_keys_match_the_table(db: SqliteDatabase, model: type[Model]) -> None:
    table = model._meta.table_name
    declared = {
        (f.column_name, f.rel_model._meta.table_name, f.rel_field.column_name)
        for f in model._meta.sorted_fields
        if isinstance(f, ForeignKeyField)
    }
    found = {(k.column, k.dest_table, k.dest_column) for k in db.get_foreign_keys(table)}
    assert declared <= found, f"{table}: a model foreign key is missing from the schema"


def test_every_table_has_a_model(db: SqliteDatabase) -> None:
    tables = {t for t in db.get_tables() if not t.startswith("sqlite_")}
    assert tables == {m._meta.table_name for m in MODELS}


def test_models_are_not_bound_globally() -> None:
    for model in MODELS:
        assert model._meta.database is None, f"{model.__name__} is bound to a database"
    with pytest.raises(InterfaceError):
        Product.select().count()


def test_queries_run_through_bind(db: SqliteDatabase) -> None:
    Product.insert_many([_row("COLA"), _row("BEER", 129)]).bind(db).execute()
    Barcode.insert(key="04006381333931", sku="COLA").bind(db).execute()

    assert Product.select().bind(db).count() == 2
    beer = Product.select().where(Product.sku == "BEER").bind(db).get()
    assert (beer.price_minor, beer.stock_tracked, beer.stock_qty) == (129, True, 0)
    assert beer.names == "{}"
    joined = (
        Barcode.select(Barcode.key, Product.name)
        .join(Product)
        .where(Product.sku == "COLA")
        .bind(db)
        .tuples()
    )
    assert list(joined) == [("04006381333931", "Product COLA")]
    Product.update(stock_qty=Product.stock_qty + 5).where(Product.sku == "COLA").bind(db).execute()
    assert db.execute_sql("SELECT stock_qty FROM product WHERE sku = 'COLA'").fetchone()[0] == 5
    assert all(m._meta.database is None for m in MODELS)


def _prices(db: SqliteDatabase) -> list[Any]:
    query = Product.select(Product.sku, Product.price_minor).order_by(Product.sku)
    return list(query.bind(db).tuples())


def test_two_databases_do_not_interfere(tmp_path: Path) -> None:
    first = open_database(tmp_path / "one.db")
    second = open_database(tmp_path / "two.db")
    try:
        migrate(first)
        migrate(second)
        Product.insert(_row("COLA", 199)).bind(first).execute()
        Product.insert(_row("COLA", 250)).bind(second).execute()
        Product.insert(_row("ONLY2")).bind(second).execute()

        with first.atomic("IMMEDIATE"):
            Product.update(price_minor=111).bind(first).execute()
            # The other database neither sees the change nor is blocked by the write lock.
            Product.update(stock_qty=7).where(Product.sku == "ONLY2").bind(second).execute()
            assert _prices(second) == [("COLA", 250), ("ONLY2", 199)]

        assert _prices(first) == [("COLA", 111)]
        assert _prices(second) == [("COLA", 250), ("ONLY2", 199)]
        only2 = Product.select().where(Product.sku == "ONLY2").bind(second).get()
        assert only2.stock_qty == 7
        assert all(m._meta.database is None for m in MODELS)
    finally:
        first.close()
        second.close()
