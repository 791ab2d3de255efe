"""End to end: a bag weight set at the hub, through the API or `appliance-hub catalog
import`, reaches a store's device in a catalog delta, as the device decodes it; a kiosk's
telemetry with its bagging counts is taken and shown.

The hub is what `appliance-hub serve` runs on a real mosquitto, the web app on the same
database, on SQLite and on PostgreSQL; the device is a bare paho client
(tests/hub/test_protocol_catalog.py) whose messages are read with the appliance's decoder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.catalog_products import product_rows
from appliance.mqtt.payloads import BaggingReport, CatalogDelta, decode, encode
from hub.api.access import issue_token
from hub.api.app import create_app
from hub.cli_catalog import catalog as catalog_group
from hub.cli_serve import catalog_serving_hub
from hub.db import open_hub_database
from hub.migrations import migrate
from hub.models import Device
from hub.server import BrokerEndpoint
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.hub.api.test_devices_api import telemetry
from tests.hub.api.test_products import record
from tests.hub.databases import KINDS
from tests.hub.test_protocol_catalog import WAIT, RawDevice, pushed
from tests.postgres import PostgresCluster

STORE = "wels-1"
PRODUCT = f"/api/v1/stores/{STORE}/products/TIN-1"
KIOSK = "kiosk-b"


@dataclass(frozen=True, slots=True)
class Hub:
    """A serving worker and the web app on one hub database, and an admin's header."""

    url: str
    db: Database
    client: TestClient[Any]
    admin: dict[str, str]


@pytest.fixture(params=KINDS)
def hub(request: pytest.FixtureRequest, tmp_path: Path, broker: MosquittoBroker) -> Iterator[Hub]:
    """`appliance-hub serve` and `appliance-hub web` on a fresh database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres")
        url = cluster.new_database()
    db = open_hub_database(url)
    migrate(db)
    worker = catalog_serving_hub(db, BrokerEndpoint(broker.host, broker.port), "w1")
    worker.start(timeout=WAIT)
    admin = {"Authorization": f"Bearer {issue_token(db, 'test', 'admin').value}"}
    try:
        with TestClient(create_app(db)) as client:
            yield Hub(url, db, client, admin)
    finally:
        worker.stop()
        db.close()


@pytest.fixture
def kiosk(broker: MosquittoBroker) -> Iterator[RawDevice]:
    """A raw device of the store, connected; closed after the test."""
    device = RawDevice(broker, KIOSK)
    yield device
    device.close()


def bag_weights(device: RawDevice) -> tuple[int, dict[str, tuple[int | None, int | None]]]:
    """The next delta's version and each product's (bag_grams, bag_tolerance), as decoded."""
    _topic, data = device.next_raw()
    delta = decode(data, CatalogDelta)  # the appliance's decoder, with the payload's bounds
    rows = product_rows(delta.upserts).products  # the device's rows end with the two
    return delta.to_version, {row[0]: (row[-2], row[-1]) for row in rows}


def test_a_bag_weight_set_at_the_hub_reaches_the_device_in_a_delta(
    hub: Hub, kiosk: RawDevice, tmp_path: Path
) -> None:
    client, admin = hub.client, hub.admin
    assert client.put(PRODUCT, json=record(), headers=admin).status_code == 201
    pushed(hub.db, STORE)
    assign_device(hub.db, KIOSK, STORE)
    kiosk.ask(have_version=1, have_store=STORE)
    assert kiosk.next()["state"] == "current"

    weighed = record(bag_grams=410, bag_tolerance=12)
    answer = client.put(PRODUCT, json=weighed, headers={**admin, "If-Match": '"1"'})
    assert answer.status_code == 200, answer.text
    assert bag_weights(kiosk) == (2, {"TIN-1": (410, 12)})

    # The store's CSV through the import command; the serve worker pushes the version.
    csv_file = tmp_path / "catalog.csv"

    def import_csv(text: str) -> None:
        csv_file.write_text(text, encoding="utf-8")
        args = ["import", str(csv_file), "--store", STORE, "--db", hub.url, "--no-publish"]
        result = CliRunner().invoke(catalog_group, args)
        assert result.exit_code == 0, result.output

    import_csv("sku,name,price,tax_class,bag_grams,bag_tolerance\nTIN-1,Tin,1.01,standard,420,\n")
    assert bag_weights(kiosk) == (3, {"TIN-1": (420, None)})
    # A file without the columns changes the price and leaves the weight as it was.
    import_csv("sku,name,price,tax_class\nTIN-1,Tin,1.05,standard\n")
    assert bag_weights(kiosk) == (4, {"TIN-1": (420, None)})
    assert client.get(PRODUCT, headers=admin).json()["bag_grams"] == 420


def test_a_kiosk_s_telemetry_with_bagging_counts_is_taken_and_shown(
    hub: Hub, kiosk: RawDevice
) -> None:
    counts = BaggingReport(mode="log_only", unexpected_item=4, item_removed=1, skipped_sale=2)
    report = telemetry(KIOSK, bagging=counts)
    info = kiosk.client.publish(topics.health(KIOSK), encode(report), qos=1)
    info.wait_for_publish(WAIT)
    deadline = time.monotonic() + WAIT
    query = Device.select(Device.telemetry).where(Device.id == KIOSK)
    while not query.scalar(hub.db):
        assert time.monotonic() < deadline, "the hub never stored the telemetry"
        time.sleep(0.02)
    shown = hub.client.get(f"/api/v1/devices/{KIOSK}", headers=hub.admin).json()["telemetry"]
    assert shown["bagging"] == {
        "mode": "log_only",
        "unexpected_item": 4,
        "item_removed": 1,
        "not_bagged": 0,
        "put_right": 0,
        "cleared": 0,
        "skipped_item": 0,
        "skipped_sale": 2,
    }
    assert shown["outbox_depth"] == report.outbox_depth  # the rest of the report as before
