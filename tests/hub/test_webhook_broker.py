"""Webhooks end to end: a device's sales batch through mosquitto and the real serve worker,
and the delivery service of `appliance-hub web` POSTing sale.created to a real receiver.

The time from publishing the batch to the POST arriving is printed (run with -s to see
it); it is measured, never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import DeviceStatus, encode
from hub.server import HubServer
from hub.webhooks.delivery import DeliveryService
from hub.webhooks.signing import verify
from tests.hub.test_ingest import batch, sale_id_of
from tests.hub.test_server import DeviceClient
from tests.hub.webhook_receiver import Receiver, add_endpoint


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 200 on a loopback port."""
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def delivery(hub_db: Database) -> Iterator[DeliveryService]:
    """The delivery service as `appliance-hub web` starts it (real clock, default poll)."""
    service = DeliveryService(hub_db)
    service.start()
    yield service
    service.stop()


def test_a_published_sale_reaches_the_receiver_through_the_serve_worker(
    hub_db: Database,
    serving_hub: HubServer,
    device: DeviceClient,
    receiver: Receiver,
    delivery: DeliveryService,
) -> None:
    _, secret = add_endpoint(hub_db, receiver.url, ["sale.created", "device.online"])

    device.publish(
        topics.status("kiosk-1"),
        encode(DeviceStatus(device="kiosk-1", online=True, bd_seq=1)),
        retain=True,
    )
    receiver.wait_for(lambda got: any(i.message["type"] == "device.online" for i in got))

    published = time.monotonic()
    device.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1, 2])))
    receiver.wait_for(lambda got: len([i for i in got if i.message["type"] == "sale.created"]) == 2)
    sales = [item for item in receiver.received() if item.message["type"] == "sale.created"]
    print(
        f"\nsales batch published -> sale.created POSTed: "
        f"{(sales[0].at - published) * 1000:.0f} ms (first), "
        f"{(sales[-1].at - published) * 1000:.0f} ms (second)"
    )
    assert sorted(item.message["data"]["id"] for item in sales) == [
        sale_id_of("kiosk-1", 1),
        sale_id_of("kiosk-1", 2),
    ]
    for item in receiver.received():
        assert verify(secret, item.headers, item.body) == item.webhook_id
