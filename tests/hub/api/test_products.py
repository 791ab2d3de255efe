"""/api/v1/stores/{store}/products: full records with versions (412, 428), 422 naming the
field, one catalog version per change, product.changed events, and nothing of another store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from peewee import Database

from appliance.core.barcode import gtin_check_digit
from appliance.core.catalog import Product as CoreProduct
from appliance.core.money import Money
from hub.catalog import HubCatalog
from hub.catalog_records import CatalogPushed, migrate_catalog_records
from hub.db import open_hub_database
from hub.migrations import MIGRATIONS
from hub.webhooks.models import WebhookEvent
from tests.hub.api.conftest import Bearer
from tests.postgres import PostgresCluster

STORE = "linz-1"
PRODUCTS = f"/api/v1/stores/{STORE}/products"


def gtin(i: int) -> str:
    """A valid EAN-13."""
    body = f"400{i:09d}"
    return body + gtin_check_digit(body)


def record(i: int = 1, **changes: Any) -> dict[str, Any]:
    """A full product record as a PUT body."""
    body: dict[str, Any] = {
        "name": f"Item {i}",
        "names": {"de": f"Artikel {i}"},
        "description": f"The {i}th item, in a tin.",
        "price": 100 + i,
        "currency": "EUR",
        "tax_class": "standard",
        "category": "tins",
        "barcodes": [gtin(i)],
        "age_restriction": 0,
        "sold_by": "each",
        "stock_tracked": True,
    }
    return {**body, **changes}


def put(
    client: TestClient[Any], headers: dict[str, str], sku: str, body: dict[str, Any], **extra: str
) -> Any:
    return client.put(f"{PRODUCTS}/{sku}", json=body, headers={**headers, **extra})


def created(client: TestClient[Any], headers: dict[str, str], sku: str, i: int = 1) -> Any:
    response = put(client, headers, sku, record(i))
    assert response.status_code == 201, response.text
    return response.json()


# --- records and their versions --------------------------------------------------------


def test_a_product_is_created_and_then_changed_only_against_its_current_version(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    response = put(client, admin, "TIN-1", record())
    assert response.status_code == 201
    made = response.json()
    assert response.headers["etag"] == '"1"'
    assert made["version"] == 1 and made["image"] is None
    assert made["barcodes"] == ["0" + gtin(1)]  # GTIN-14, as the devices key them
    assert made["names"] == {"de": "Artikel 1"} and made["updated_at"].endswith("Z")
    got = client.get(f"{PRODUCTS}/TIN-1", headers=admin)
    assert got.json() == made and got.headers["etag"] == '"1"'

    cheaper = record(price=99)
    missing = put(client, admin, "TIN-1", cheaper)
    assert missing.status_code == 428
    assert missing.json()["version"] == 1
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert put(client, admin, "TIN-1", cheaper, **{"If-Match": '"7"'}).status_code == 412

    changed = put(client, admin, "TIN-1", cheaper, **{"If-Match": '"1"'})
    assert changed.status_code == 200
    assert (changed.json()["price"], changed.json()["version"]) == (99, 2)
    assert changed.headers["etag"] == '"2"'

    stale = put(client, admin, "TIN-1", record(price=98), **{"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["version"] == 2  # what to read again
    # The version may come in the body instead; what GET gave may be sent back as it is.
    again = {**client.get(f"{PRODUCTS}/TIN-1", headers=admin).json(), "price": 97}
    assert put(client, admin, "TIN-1", again).json()["version"] == 3
    # An unchanged record makes no version.
    same = put(client, admin, "TIN-1", again | {"version": 3})
    assert (same.status_code, same.json()["version"]) == (200, 3)
    # Create-only: If-None-Match: * refuses to replace.
    assert put(client, admin, "TIN-1", record(), **{"If-None-Match": "*"}).status_code == 412
    assert put(client, admin, "TIN-2", record(2), **{"If-None-Match": "*"}).status_code == 201


def test_a_delete_needs_the_version_and_a_new_put_creates_the_product_again(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    assert client.delete(f"{PRODUCTS}/TIN-1", headers=admin).status_code == 428
    assert (
        client.delete(f"{PRODUCTS}/TIN-1", headers={**admin, "If-Match": '"5"'}).status_code == 412
    )
    assert (
        client.delete(f"{PRODUCTS}/TIN-1", headers={**admin, "If-Match": '"1"'}).status_code == 204
    )
    assert client.get(f"{PRODUCTS}/TIN-1", headers=admin).status_code == 404
    assert client.delete(f"{PRODUCTS}/TIN-1", headers={**admin, "If-Match": "*"}).status_code == 404
    delta = HubCatalog(api_db, STORE).delta(1)
    assert delta is not None and delta.deletes == ["TIN-1"]

    assert put(client, admin, "TIN-1", record(), **{"If-Match": '"1"'}).status_code == 412
    again = put(client, admin, "TIN-1", record())
    assert (again.status_code, again.json()["version"]) == (201, 3)


def test_every_change_is_one_catalog_version_carrying_the_whole_record(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    catalog = HubCatalog(api_db, STORE)
    first = catalog.delta(0)
    assert first is not None and first.to_version == 1
    (payload,) = first.upserts
    assert (payload.name, payload.price, payload.description) == (
        "Item 1",
        101,
        record()["description"],
    )
    assert payload.names == {"de": "Artikel 1"} and payload.category == "tins"

    put(client, admin, "TIN-1", record(description="Now in glass."), **{"If-Match": '"1"'})
    delta = catalog.delta(1)
    assert delta is not None and (delta.from_version, delta.to_version) == (1, 2)
    assert [(p.sku, p.description) for p in delta.upserts] == [("TIN-1", "Now in glass.")]
    # The store's serve workers push from here: the first version is theirs to send.
    assert (
        CatalogPushed.select(CatalogPushed.version)
        .where(CatalogPushed.store == STORE)
        .scalar(api_db)
        == 0
    )


def test_a_csv_import_keeps_what_the_api_gave_the_product(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    catalog = HubCatalog(api_db, STORE)
    product = CoreProduct(sku="TIN-1", name="Tin", price=Money(150, "EUR"), tax_class="standard")
    result = catalog.import_products([(product, 4)])
    assert result.changed == 1
    now = client.get(f"{PRODUCTS}/TIN-1", headers=admin).json()
    assert (now["name"], now["price"], now["description"]) == ("Tin", 150, record()["description"])
    assert catalog.import_products([(product, 4)]).changed_anything is False


# --- checks ----------------------------------------------------------------------------


def test_bad_input_is_422_naming_every_wrong_field(client: TestClient[Any], bearer: Bearer) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")  # the store prices in EUR from now on
    wrong = record(
        2,
        sku="TIN-9",
        name="  ",
        currency="USD",
        tax_class="luxury",
        barcodes=["4000000000011", gtin(1), "12ab"],
        names={"de": "Dose", "not a locale": "x"},
    )
    response = put(client, admin, "TIN-2", wrong)
    assert response.status_code == 422
    fields = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert set(fields) == {
        "sku", "name", "currency", "tax_class", "barcodes[0]", "barcodes[1]", "barcodes[2]",
        "names.not a locale",
    }  # fmt: skip
    assert "the store's prices are in EUR" in fields["currency"]
    assert "check digit" in fields["barcodes[0]"]
    assert "barcode of TIN-1" in fields["barcodes[1]"]
    assert "not numeric" in fields["barcodes[2]"]
    assert client.get(f"{PRODUCTS}/TIN-2", headers=admin).status_code == 404  # nothing made

    for field, value in (("price", -1), ("age_restriction", 120), ("sold_by", "litre")):
        typed = put(client, admin, "TIN-2", record(2, **{field: value}))
        assert typed.status_code == 422, field
        assert [e["field"] for e in typed.json()["errors"]] == [field]
    bad_etag = put(client, admin, "TIN-1", record(), **{"If-Match": "yesterday"})
    assert bad_etag.status_code == 422
    assert bad_etag.json()["errors"][0]["field"] == "If-Match"


def test_a_barcode_belongs_to_one_product_of_a_store(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    taken = put(client, admin, "TIN-2", record(2, barcodes=[gtin(2), gtin(1)]))
    assert taken.status_code == 422
    assert taken.json()["errors"][0]["field"] == "barcodes[1]"
    other_store = client.put(
        "/api/v1/stores/graz-1/products/TIN-2", json=record(2, barcodes=[gtin(1)]), headers=admin
    )
    assert other_store.status_code == 201
    # A product keeps its own barcode through a change, and frees it when it drops it.
    put(client, admin, "TIN-1", record(barcodes=[gtin(3)]), **{"If-Match": '"1"'})
    assert put(client, admin, "TIN-2", record(2, barcodes=[gtin(1)])).status_code == 201


# --- pages, stores, scopes -------------------------------------------------------------


def test_the_list_pages_by_cursor_and_filters_by_category(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    for i in range(5):
        assert (
            put(client, admin, f"P{i}", record(i, category="odd" if i % 2 else "even")).status_code
            == 201
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(PRODUCTS, params=params, headers=admin).json()
        seen.extend(item["sku"] for item in page["items"])
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == ["P0", "P1", "P2", "P3", "P4"]
    odd = client.get(PRODUCTS, params={"category": "odd"}, headers=admin).json()
    assert [p["sku"] for p in odd["items"]] == ["P1", "P3"]
    bad = client.get(PRODUCTS, params={"cursor": "nonsense"}, headers=admin)
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "cursor")


def test_a_store_token_sees_and_changes_its_store_only(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    client.put("/api/v1/stores/graz-1/products/G-1", json=record(2), headers=admin)
    linz = bearer("write", store=STORE)
    assert client.get(f"{PRODUCTS}/TIN-1", headers=linz).status_code == 200
    missing = client.get(f"{PRODUCTS}/NOPE", headers=linz)
    foreign = client.get("/api/v1/stores/graz-1/products/G-1", headers=linz)
    assert missing.status_code == foreign.status_code == 404
    assert set(foreign.json()) == set(missing.json())
    assert client.get("/api/v1/stores/graz-1/products", headers=linz).status_code == 404
    written = client.put("/api/v1/stores/graz-1/products/G-2", json=record(3), headers=linz)
    assert written.status_code == 404
    assert client.get("/api/v1/stores/graz-1/products/G-2", headers=admin).status_code == 404
    reader = bearer("read")
    assert put(client, reader, "TIN-3", record(3)).status_code == 403
    assert client.get(PRODUCTS, headers=reader).status_code == 200
    assert client.get(PRODUCTS).status_code == 401


# --- prices ----------------------------------------------------------------------------


def test_prices_change_all_or_nothing_in_one_version(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    for i in (1, 2, 3):
        created(client, admin, f"TIN-{i}", i)  # versions 1, 2, 3
    prices = f"/api/v1/stores/{STORE}/prices"
    catalog = HubCatalog(api_db, STORE)

    stale = client.patch(
        prices,
        json=[
            {"sku": "TIN-1", "price": 5, "version": 1},
            {"sku": "TIN-2", "price": 5, "version": 1},
        ],
        headers=admin,
    )
    assert stale.status_code == 412
    assert stale.json()["conflicts"] == [{"sku": "TIN-2", "version": 2}]
    unnamed = client.patch(prices, json=[{"sku": "TIN-1", "price": 5}], headers=admin)
    assert (unnamed.status_code, unnamed.json()["conflicts"]) == (
        428,
        [{"sku": "TIN-1", "version": 1}],
    )
    unknown = client.patch(
        prices,
        json=[
            {"sku": "TIN-1", "price": 5, "version": 1},
            {"sku": "NOPE", "price": 5, "version": 1},
        ],
        headers=admin,
    )
    assert (unknown.status_code, unknown.json()["errors"][0]["field"]) == (422, "[1].sku")
    twice = client.patch(
        prices,
        json=[
            {"sku": "TIN-1", "price": 5, "version": 1},
            {"sku": "TIN-1", "price": 6, "version": 1},
        ],
        headers=admin,
    )
    assert twice.status_code == 422
    assert catalog.version() == 3  # nothing changed

    done = client.patch(
        prices,
        json=[
            {"sku": "TIN-1", "price": 7, "version": 1},
            {"sku": "TIN-3", "price": 9, "version": 3},
        ],
        headers=admin,
    )
    assert done.status_code == 200, done.text
    assert done.json()["version"] == 4
    assert [(p["sku"], p["price"], p["version"]) for p in done.json()["items"]] == [
        ("TIN-1", 7, 4),
        ("TIN-3", 9, 4),
    ]
    delta = catalog.delta(3)
    assert delta is not None and {p.sku: p.price for p in delta.upserts} == {"TIN-1": 7, "TIN-3": 9}


# --- webhook events --------------------------------------------------------------------


def test_each_change_is_a_product_changed_event_and_a_refused_one_is_none(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    endpoint = {"url": "https://shop.example/hooks", "event_types": ["product.changed"]}
    assert (
        client.post("/api/v1/webhooks/endpoints", json=endpoint, headers=admin).status_code == 201
    )
    created(client, admin, "TIN-1")
    put(client, admin, "TIN-1", record(price=5), **{"If-Match": '"1"'})
    assert put(client, admin, "TIN-1", record(price=6), **{"If-Match": '"1"'}).status_code == 412
    client.delete(f"{PRODUCTS}/TIN-1", headers={**admin, "If-Match": '"2"'})

    query = WebhookEvent.select(WebhookEvent.type, WebhookEvent.store, WebhookEvent.body)
    events = [
        (type_, store, json.loads(body)["data"])
        for type_, store, body in query.order_by(WebhookEvent.created_at).tuples().execute(api_db)
    ]
    assert [(t, s, d["action"], d["version"]) for t, s, d in events] == [
        ("product.changed", STORE, "created", 1),
        ("product.changed", STORE, "updated", 2),
        ("product.changed", STORE, "deleted", 3),
    ]
    assert events[1][2]["product"]["price"] == 5
    assert events[1][2]["product"]["description"] == record()["description"]
    assert events[2][2]["product"] is None


# --- migration 7 -----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def older_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A hub database at schema 6, before migration 7."""
    if request.param == "sqlite":
        db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    else:
        cluster: PostgresCluster = request.getfixturevalue("api_postgres")
        db = open_hub_database(cluster.new_database())
    for migration in MIGRATIONS[:6]:
        with db.atomic():
            migration.apply(db)
    yield db
    db.close()


def test_migration_7_adds_the_record_columns_and_counts_older_versions_as_sent(
    older_hub: Database,
) -> None:
    db = older_hub
    db.execute_sql("ALTER TABLE hub_product DROP COLUMN description")  # as a version 6 hub had it
    db.execute_sql("ALTER TABLE hub_product DROP COLUMN image")
    db.execute_sql(
        "INSERT INTO hub_catalog_version (store, version, created_at, added, changed, deleted)"
        " VALUES ('old-1', 1, '2026-01-01 00:00:00', 0, 0, 0),"
        " ('old-1', 2, '2026-01-02 00:00:00', 0, 0, 0)"
    )
    for _ in range(2):  # idempotent
        with db.atomic():
            migrate_catalog_records(db)
    columns = {column.name for column in db.get_columns("hub_product")}
    assert {"description", "image"} <= columns
    assert {"product_image", "stock_movement", "catalog_pushed"} <= set(db.get_tables())
    pushed = CatalogPushed.select(CatalogPushed.store, CatalogPushed.version).tuples()
    assert list(pushed.execute(db)) == [("old-1", 2)]
