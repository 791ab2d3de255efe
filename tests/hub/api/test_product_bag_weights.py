"""A product's bagging-area weight and tolerance through /api/v1: set, shown, checked as the
device's CSV import checks them, and sent to the devices; a kiosk's bagging counts shown."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient
from peewee import Database

from appliance.mqtt.payloads import BaggingReport, CatalogDelta, decode, encode
from hub.catalog import HubCatalog
from hub.ingest import DeviceRecords
from hub.telemetry_history import TelemetryPoint
from hub.webhooks.models import WebhookEvent
from tests.hub.api.conftest import Bearer
from tests.hub.api.test_devices_api import telemetry
from tests.hub.api.test_products import PRODUCTS, STORE, put, record

Client = TestClient[Any]


def test_a_bag_weight_set_through_the_api_is_shown_and_sent_to_the_devices(
    client: Client, bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    made = put(client, admin, "TIN-1", record(bag_grams=410, bag_tolerance=12))
    assert made.status_code == 201, made.text
    assert (made.json()["bag_grams"], made.json()["bag_tolerance"]) == (410, 12)
    shown = client.get(f"{PRODUCTS}/TIN-1", headers=admin).json()
    assert (shown["bag_grams"], shown["bag_tolerance"]) == (410, 12)
    delta = HubCatalog(api_db, STORE).delta(0)
    assert delta is not None
    (sent,) = decode(encode(delta), CatalogDelta).upserts  # as the device reads it
    assert (sent.bag_grams, sent.bag_tolerance) == (410, 12)

    # A new weight alone is a new version; the webhook event shows the product as it is.
    endpoint = {"url": "https://shop.example/hooks", "event_types": ["product.changed"]}
    client.post("/api/v1/webhooks/endpoints", json=endpoint, headers=admin)
    heavier = put(client, admin, "TIN-1", record(bag_grams=415), **{"If-Match": '"1"'})
    assert (heavier.status_code, heavier.json()["version"]) == (200, 2)
    delta = HubCatalog(api_db, STORE).delta(1)
    assert delta is not None
    assert [(p.bag_grams, p.bag_tolerance) for p in delta.upserts] == [(415, None)]
    (body,) = WebhookEvent.select(WebhookEvent.body).tuples().execute(api_db)
    assert json.loads(body[0])["data"]["product"]["bag_grams"] == 415


def test_bag_weights_out_of_range_or_on_a_product_sold_by_weight_are_422_naming_the_field(
    client: Client, bearer: Bearer
) -> None:
    admin = bearer()
    for field, value, says in (
        ("bag_grams", 0, ">= 1"),
        ("bag_grams", 50_001, "<= 50000"),
        ("bag_grams", 12.5, "Expected `int | null`"),
        ("bag_tolerance", -1, ">= 0"),
        ("bag_tolerance", 5_001, "<= 5000"),
    ):
        refused = put(client, admin, "TIN-2", record(2, **{field: value}))
        assert refused.status_code == 422, (field, value)
        (error,) = refused.json()["errors"]
        assert error["field"] == field and says in error["message"], error

    loose = record(3, sold_by="kg", bag_grams=180, bag_tolerance=20)
    refused = put(client, admin, "APPLES", loose)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"field": "bag_grams", "message": "must be null for a product sold by weight (sold_by kg)"}
    ]
    assert client.get(f"{PRODUCTS}/TIN-2", headers=admin).status_code == 404  # nothing made
    assert client.get(f"{PRODUCTS}/APPLES", headers=admin).status_code == 404
    # Sold by weight with a tolerance only, and the bounds themselves, are fine.
    assert (
        put(client, admin, "APPLES", record(3, sold_by="kg", bag_tolerance=20)).status_code == 201
    )
    edges = record(4, bag_grams=50_000, bag_tolerance=0)
    assert put(client, admin, "SACK", edges).json()["bag_grams"] == 50_000
    assert put(client, admin, "CLIP", record(5, bag_grams=1, bag_tolerance=5000)).status_code == 201


def test_a_put_without_the_weights_clears_them_and_a_price_change_keeps_them(
    client: Client, bearer: Bearer
) -> None:
    admin = bearer()
    put(client, admin, "TIN-1", record(bag_grams=410, bag_tolerance=12))
    prices = f"/api/v1/stores/{STORE}/prices"
    changed = client.patch(prices, json=[{"sku": "TIN-1", "price": 5, "version": 1}], headers=admin)
    assert changed.status_code == 200, changed.text
    (item,) = changed.json()["items"]
    assert (item["price"], item["bag_grams"], item["bag_tolerance"]) == (5, 410, 12)
    # What GET gives goes back as it is: a PUT of the whole record keeps them...
    again = {**client.get(f"{PRODUCTS}/TIN-1", headers=admin).json(), "name": "Tin"}
    assert put(client, admin, "TIN-1", again).json()["bag_grams"] == 410
    # ...and one that leaves them out says they are not known any more (PUT replaces).
    cleared = put(client, admin, "TIN-1", record(price=5), **{"If-Match": '"3"'}).json()
    assert (cleared["version"], cleared["bag_grams"], cleared["bag_tolerance"]) == (4, None, None)


def test_a_kiosk_s_bagging_counts_show_in_its_telemetry(
    client: Client, bearer: Bearer, api_db: Database
) -> None:
    records = DeviceRecords(api_db)
    counts = BaggingReport(mode="enforce", unexpected_item=3, not_bagged=1, put_right=2, cleared=1)
    records.record_telemetry("kiosk-1", telemetry("kiosk-1", bagging=counts))
    records.record_telemetry("kiosk-2", telemetry("kiosk-2"))  # no bagging scale
    shown = client.get("/api/v1/devices/kiosk-1", headers=bearer("read")).json()["telemetry"]
    assert shown["bagging"] == {
        "mode": "enforce",
        "unexpected_item": 3,
        "item_removed": 0,
        "not_bagged": 1,
        "put_right": 2,
        "cleared": 1,
        "skipped_item": 0,
        "skipped_sale": 0,
    }
    other = client.get("/api/v1/devices/kiosk-2", headers=bearer("read")).json()["telemetry"]
    assert other["bagging"] is None
    # The charts' history keeps its own figures; the report was taken whole.
    assert TelemetryPoint.select().where(TelemetryPoint.device == "kiosk-1").count(api_db) == 1
