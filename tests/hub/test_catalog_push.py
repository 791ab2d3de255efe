"""Changes made through the HTTP API reach the store's devices as catalog deltas.

The hub is what `appliance-hub serve` runs (catalog_serving_hub) on a real mosquitto, and
the API is the web app on the same database; the device is a bare paho client subscribed
to its catalog topic (tests/hub/test_protocol_catalog.py). The time from the API call to
the delta's arrival is printed (`pytest -s`), never asserted: `make bench` measures it.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from peewee import Database
from PIL import Image

from hub.api.access import issue_token
from hub.api.app import create_app
from hub.catalog import HubCatalog
from hub.catalog_publisher import CatalogPublisher
from hub.catalog_push import CatalogPush
from hub.catalog_records import CatalogPushed
from hub.cli_serve import catalog_serving_hub
from hub.db import open_hub_database
from hub.migrations import migrate
from hub.server import BrokerEndpoint, HubServer
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.hub.api.test_products import record
from tests.hub.test_protocol_catalog import RawDevice, product, pushed
from tests.postgres import PostgresCluster

STORE = "wien-3"
PRODUCT = f"/api/v1/stores/{STORE}/products"


@pytest.fixture
def kiosk(broker: MosquittoBroker) -> Iterator[Callable[[], RawDevice]]:
    """Connect kiosk-a, a raw device subscribed to its topics; closed after the test."""
    made: list[RawDevice] = []

    def connect() -> RawDevice:
        made.append(RawDevice(broker, "kiosk-a"))
        return made[-1]

    yield connect
    for device in made:
        device.close()


@pytest.fixture
def api(hub_db: Database) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    """The web app on the serving hub's database, and an admin's Authorization header."""
    header = {"Authorization": f"Bearer {issue_token(hub_db, 'test', 'admin').value}"}
    with TestClient(create_app(hub_db)) as client:
        yield client, header


def listening(
    db: Database, client: TestClient[Any], headers: dict[str, str], kiosk: Callable[[], RawDevice]
) -> RawDevice:
    """A device of the store holding v1 (one product, made through the API), listening."""
    assert client.put(f"{PRODUCT}/TIN-1", json=record(), headers=headers).status_code == 201
    pushed(db, STORE)
    assign_device(db, "kiosk-a", STORE)
    device = kiosk()
    device.ask(have_version=1, have_store=STORE)
    assert device.next()["state"] == "current"
    return device


def timed(device: RawDevice, call: Any) -> tuple[dict[str, Any], float]:
    """Make an API call; the next catalog message and the seconds from the call to it."""
    started = time.monotonic()
    response = call()
    assert response.status_code in (200, 201, 204), response.text
    _topic, data = device.next_raw()
    return json.loads(data), time.monotonic() - started


def test_a_change_made_through_the_api_reaches_the_device_as_a_delta(
    serving_hub: HubServer,
    hub_db: Database,
    api: tuple[TestClient[Any], dict[str, str]],
    kiosk: Callable[[], RawDevice],
) -> None:
    client, admin = api
    device = listening(hub_db, client, admin, kiosk)
    seconds: dict[str, float] = {}

    change = record(price=199, description="Now with a ring pull.")
    delta, seconds["price"] = timed(
        device,
        lambda: client.put(f"{PRODUCT}/TIN-1", json=change, headers={**admin, "If-Match": '"1"'}),
    )
    assert (delta["kind"], delta["store"], delta["from_version"], delta["to_version"]) == (
        "delta", STORE, 1, 2,
    )  # fmt: skip
    (product,) = delta["upserts"]
    assert (product["sku"], product["price"], product["description"]) == (
        "TIN-1", 199, "Now with a ring pull.",
    )  # fmt: skip

    out = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(out, "JPEG")
    delta, seconds["picture"] = timed(
        device,
        lambda: client.put(
            f"{PRODUCT}/TIN-1/image",
            content=out.getvalue(),
            headers={**admin, "Content-Type": "image/jpeg"},
        ),
    )
    thumbnail = client.get(f"{PRODUCT}/TIN-1/thumbnail", headers=admin).content
    assert (delta["from_version"], delta["to_version"]) == (2, 3)
    assert base64.b64decode(delta["upserts"][0]["thumbnail"]) == thumbnail
    assert delta["upserts"][0]["price"] == 199

    stock = f"/api/v1/stores/{STORE}/stock/TIN-1"
    delta, seconds["count"] = timed(
        device, lambda: client.post(f"{stock}/count", json={"count": 12}, headers=admin)
    )
    assert [(p["sku"], p["stock"]) for p in delta["upserts"]] == [("TIN-1", 12)]
    delta, seconds["movement"] = timed(
        device,
        lambda: client.post(
            f"{stock}/movements",
            json={"delta": -3, "reason": "web_order", "reference": "W-1"},
            headers=admin,
        ),
    )
    assert (delta["from_version"], delta["to_version"]) == (4, 5)
    assert [(p["sku"], p["stock"]) for p in delta["upserts"]] == [("TIN-1", 9)]
    assert delta["deletes"] == []

    # A count or a movement leaves the record, and its version, as it was.
    delta, seconds["delete"] = timed(
        device, lambda: client.delete(f"{PRODUCT}/TIN-1", headers={**admin, "If-Match": '"3"'})
    )
    assert (delta["upserts"], delta["deletes"]) == ([], ["TIN-1"])
    print("API call -> device, seconds:", {k: round(v, 3) for k, v in seconds.items()})


def test_two_workers_on_postgresql_push_each_api_change_once(
    broker: MosquittoBroker, postgres: PostgresCluster, kiosk: Callable[[], RawDevice]
) -> None:
    url = postgres.new_database()
    db = open_hub_database(url)
    migrate(db)
    other = open_hub_database(url)  # the second worker's own connections, as another process
    endpoint = BrokerEndpoint(broker.host, broker.port)
    workers = [catalog_serving_hub(db, endpoint, "w1"), catalog_serving_hub(other, endpoint, "w2")]
    header = {"Authorization": f"Bearer {issue_token(db, 'test', 'admin').value}"}
    try:
        for worker in workers:
            worker.start(timeout=10)
        with TestClient(create_app(db)) as client:
            device = listening(db, client, header, kiosk)
            for version in range(1, 6):
                body = record(price=200 + version)
                answer = client.put(
                    f"{PRODUCT}/TIN-1", json=body, headers={**header, "If-Match": f'"{version}"'}
                )
                assert answer.status_code == 200, answer.text
            steps: list[tuple[int, int]] = []
            while not steps or steps[-1][1] < 6:
                message = device.next()
                steps.append((message["from_version"], message["to_version"]))
            time.sleep(0.6)  # a second push would show up now (a check, not a timing assertion)
            assert device.inbox.empty(), "a version was pushed twice"
            # Contiguous, none twice: each push starts where the one before it ended.
            assert [a for a, _ in steps] == [1] + [b for _, b in steps[:-1]]
            pushed_to = CatalogPushed.select(CatalogPushed.version).where(
                CatalogPushed.store == STORE
            )
            assert pushed_to.scalar(db) == 6
    finally:
        for worker in workers:
            worker.stop()
        other.close()
        db.close()


def test_a_push_that_fails_after_sending_is_sent_again(hub_db: Database) -> None:
    catalog = HubCatalog(hub_db, STORE)
    assign_device(hub_db, "kiosk-a", STORE)
    sent: list[bytes] = []
    failing = True

    def publish(_topic: str, data: bytes) -> None:
        sent.append(data)
        if failing:
            raise RuntimeError("the worker died before it could note the push")

    push = CatalogPush(hub_db, CatalogPublisher(hub_db, publish))
    catalog.import_products([(product("A1"), None)])
    assert push.behind() == [STORE]
    with pytest.raises(RuntimeError):
        push.run()
    assert push.behind() == [STORE]  # the row did not move: nothing counts as sent
    failing = False
    push.run()
    assert len(sent) == 2 and sent[0] == sent[1]  # the same snapshot again; devices ignore it
    assert push.behind() == []
    assert push.push(STORE) == 0

    quiet = CatalogPush(hub_db, CatalogPublisher(hub_db, publish), ready=lambda: False)
    catalog.import_products([(product("A1"), None), (product("A2"), None)])
    quiet.run()  # the broker is away: nothing is sent, nothing counts as sent
    assert len(sent) == 2 and quiet.behind() == [STORE]
