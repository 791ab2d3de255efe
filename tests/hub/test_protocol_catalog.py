"""The catalog protocol from the outside: a raw MQTT v5 client, as a second implementer's device.

The hub is what `appliance-hub serve` runs (catalog_serving_hub) against a real mosquitto;
the device is a bare paho client that publishes and reads JSON bytes on the topics of
docs/protocol.md, with none of the appliance's code.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from peewee import Database

from appliance.core.catalog import Product
from appliance.core.money import Money
from hub.catalog import HubCatalog
from hub.catalog_records import CatalogPushed
from hub.server import HubServer
from hub.stores import assign_device
from tests.broker import MosquittoBroker

WAIT = 10.0
T0 = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # the stocktake, before every sale below


def product(sku: str, *, name: str | None = None, names: dict[str, str] | None = None) -> Product:
    return Product(
        sku=sku,
        name=name or f"Item {sku}",
        price=Money(250, "EUR"),
        tax_class="standard",
        names=tuple(sorted((names or {}).items())),
    )


class RawDevice:
    """A bare paho v5 client: JSON bytes out on pos/v1/d/{id}/up/..., in on .../down/#."""

    def __init__(self, broker: MosquittoBroker, device: str, *, max_packet: int | None = None):
        self.device = device
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, bytes(m.payload)))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        connect = None
        if max_packet is not None:  # announced in CONNECT: the broker sends nothing bigger
            connect = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect.MaximumPacketSize = max_packet
        self.client.connect(broker.host, broker.port, clean_start=True, properties=connect)
        self.client.loop_start()
        self.client.subscribe(f"pos/v1/d/{device}/down/#", qos=1)
        assert subscribed.wait(WAIT), "no SUBACK"

    def send(self, leaf: str, body: dict[str, Any]) -> None:
        """Publish JSON on up/<leaf> at QoS 1 and wait for the PUBACK."""
        data = json.dumps(body).encode()
        self.client.publish(f"pos/v1/d/{self.device}/up/{leaf}", data, qos=1).wait_for_publish(WAIT)

    def ask(self, **request: Any) -> None:
        """A CatalogRequest, written by hand."""
        self.send("catalog-request", {"v": 1, **request})

    def next_raw(self, leaf: str = "catalog", timeout: float = WAIT) -> tuple[str, bytes]:
        """The next message on down/<leaf> as (topic, bytes); others are dropped."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, data = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if topic == f"pos/v1/d/{self.device}/down/{leaf}":
                return topic, data
        raise AssertionError(f"{self.device}: nothing on down/{leaf} within {timeout} s")

    def next(self, leaf: str = "catalog") -> dict[str, Any]:
        """The next message on down/<leaf>, decoded as plain JSON."""
        message: dict[str, Any] = json.loads(self.next_raw(leaf)[1])
        return message

    def snapshot(self) -> list[dict[str, Any]]:
        """Every chunk of the snapshot arriving now, in chunk order (chunk 0 included)."""
        chunks: dict[int, dict[str, Any]] = {}
        while True:
            message = self.next()
            assert message["kind"] == "snapshot", message["kind"]
            chunks[message["chunk"]] = message
            if len(chunks) == message["chunks"]:
                return [chunks[k] for k in range(message["chunks"])]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def devices(broker: MosquittoBroker) -> Iterator[Any]:
    """Connect raw devices by id; all are closed after the test."""
    made: list[RawDevice] = []

    def connect(device: str, **options: Any) -> RawDevice:
        made.append(RawDevice(broker, device, **options))
        return made[-1]

    yield connect
    for device in made:
        device.close()


def skus(chunks: list[dict[str, Any]]) -> list[str]:
    return [p["sku"] for chunk in chunks for p in chunk["products"]]


def pushed(db: Database, *stores: str) -> None:
    """Wait until the serve worker has pushed the stores' catalogs (to no device yet).

    Then a device assigned after it gets what it asks for, and no push on top.
    """
    deadline = time.monotonic() + WAIT
    for store in stores:
        current = HubCatalog(db, store).version()
        query = CatalogPushed.select(CatalogPushed.version).where(CatalogPushed.store == store)
        while query.scalar(db) != current:
            assert time.monotonic() < deadline, f"{store} v{current} was never pushed"
            time.sleep(0.01)


# --- a catalog's versions belong to its store ----------------------------------------


def test_a_device_moved_to_another_store_gets_that_stores_snapshot_never_its_delta(
    serving_hub: HubServer, hub_db: Database, devices: Any
) -> None:
    HubCatalog(hub_db, "store-a").import_products([(product("A1"), None)])
    store_b = HubCatalog(hub_db, "store-b")
    store_b.import_products([(product("B1"), None)])
    store_b.import_products([(product("B1"), None), (product("B2"), None)])  # B at v2
    pushed(hub_db, "store-a", "store-b")
    assign_device(hub_db, "kiosk-m", "store-b")  # it held store A's v1
    device = devices("kiosk-m")

    device.ask(have_version=1, have_store="store-a")
    chunks = device.snapshot()  # B's delta 1 -> 2 would have kept A1 and never brought B1
    assert {(c["store"], c["version"], c["rebase"]) for c in chunks} == {("store-b", 2, False)}
    assert skus(chunks) == ["B1", "B2"]

    # An older device that cannot name its store gets a snapshot too, never a delta.
    device.ask(have_version=1)
    assert skus(device.snapshot()) == ["B1", "B2"]
    # Named, on the store's own line: the delta.
    device.ask(have_version=1, have_store="store-b")
    delta = device.next()
    assert (delta["kind"], delta["store"], delta["from_version"], delta["to_version"]) == (
        "delta",
        "store-b",
        1,
        2,
    )


# --- every request gets an answer ----------------------------------------------------


def test_every_catalog_request_gets_an_answer(
    serving_hub: HubServer, hub_db: Database, devices: Any
) -> None:
    HubCatalog(hub_db, "store-a").import_products([(product("A1"), None), (product("A2"), None)])
    pushed(hub_db, "store-a")
    assign_device(hub_db, "kiosk-1", "store-a")
    device = devices("kiosk-1")

    device.ask(have_version=1, have_store="store-a")  # at the current version
    assert device.next() == {
        "v": 1, "kind": "status", "store": "store-a", "version": 1, "state": "current"
    }  # fmt: skip

    device.ask(have_version=7, have_store="store-a")  # a version the hub never reached
    chunks = device.snapshot()
    assert {(c["store"], c["version"], c["rebase"]) for c in chunks} == {("store-a", 1, True)}
    assert skus(chunks) == ["A1", "A2"]

    stray = devices("kiosk-stray")  # in no store
    stray.ask(have_version=3, have_store="store-a")
    assert stray.next() == {
        "v": 1,
        "kind": "status",
        "store": "",
        "version": 0,
        "state": "no_store",
    }


# --- stock corrections ---------------------------------------------------------------


def sale_of(device: str, seq: int, sku: str, quantity: int) -> dict[str, Any]:
    """A SaleEnvelope with a sale document as docs/schemas/SaleDocument.json has it."""
    amount = 250 * quantity
    sale_id = f"{device}-{seq:06d}"
    document = {
        "id": sale_id, "kind": "sale", "device_id": device,
        "created_at": datetime.now(UTC).isoformat(), "currency": "EUR",
        "prices_include_tax": True, "tax_rounding": "line",
        "lines": [{
            "line_no": 1, "sku": sku, "name": f"Item {sku}", "quantity": quantity,
            "measure": "each", "unit_price": 250, "discount": 0, "amount": amount,
            "tax_class": "standard", "tax_rate": 2000,
        }],
        "taxes": [], "discount_total": 0, "total": amount,
        "tenders": [{"kind": "cash", "amount": amount}],
        "sequence": seq, "receipt_number": f"R-{seq:06d}",
    }  # fmt: skip
    return {"v": 1, "seq": seq, "sale_id": sale_id, "document": document}


def test_a_sale_reaches_an_up_to_date_device_as_a_stock_delta_without_asking(
    serving_hub: HubServer, hub_db: Database, devices: Any
) -> None:
    catalog = HubCatalog(hub_db, "store-s")
    catalog.import_products([(product("A1"), 5), (product("B1"), 9)], now=T0)  # counted
    pushed(hub_db, "store-s")
    for device in ("till-x", "till-y", "till-z"):
        assign_device(hub_db, device, "store-s")
    x, y = devices("till-x"), devices("till-y")
    y.ask(have_version=1, have_store="store-s")
    assert y.next()["state"] == "current"  # Y holds v1 and is listening

    x.send("sales", {"v": 1, "device": "till-x", "sales": [sale_of("till-x", 1, "A1", 2)]})
    assert x.next("sales-ack")["upto_seq"] == 1

    delta = y.next()  # Y never asked again: the hub sent the correction by itself
    assert (delta["kind"], delta["store"], delta["from_version"], delta["to_version"]) == (
        "delta",
        "store-s",
        1,
        2,
    )
    assert [(p["sku"], p["stock"]) for p in delta["upserts"]] == [("A1", 3)]
    assert delta["deletes"] == []

    # A device that was away catches up through the same version line.
    z = devices("till-z")
    z.ask(have_version=1, have_store="store-s")
    assert [(p["sku"], p["stock"]) for p in z.next()["upserts"]] == [("A1", 3)]
    z.ask(have_version=0)
    levels = {p["sku"]: p["stock"] for p in z.snapshot()[0]["products"]}
    assert levels == {"A1": 3, "B1": 9}


# --- the device's Maximum Packet Size ------------------------------------------------

MAX_PACKET = 256 * 1024


def test_every_snapshot_chunk_fits_the_packet_size_the_device_announced(
    serving_hub: HubServer, hub_db: Database, devices: Any
) -> None:
    text = "x" * 300
    rows = [(product(f"P{i:05d}", name=text, names={"de": text}), i) for i in range(2000)]
    HubCatalog(hub_db, "store-big").import_products(rows)
    pushed(hub_db, "store-big")
    assign_device(hub_db, "kiosk-small", "store-big")
    device = devices("kiosk-small", max_packet=MAX_PACKET)

    device.ask(have_version=0, max_packet=MAX_PACKET)
    sizes: list[int] = []
    chunks: dict[int, dict[str, Any]] = {}
    while not chunks or len(chunks) < next(iter(chunks.values()))["chunks"]:
        topic, data = device.next_raw()
        # PUBLISH as delivered: fixed header <= 5, topic with its length, packet id,
        # property length (the broker adds no property here), payload.
        sizes.append(5 + 2 + len(topic.encode()) + 2 + 1 + len(data))
        message = json.loads(data)
        chunks[message["chunk"]] = message
    assert sum(sizes) > 1024 * 1024  # the catalog is over 1 MiB
    assert max(sizes) <= MAX_PACKET
    assert sorted(chunks) == list(range(len(chunks)))  # chunk 0 included
    assert skus([chunks[k] for k in sorted(chunks)]) == [f"P{i:05d}" for i in range(2000)]
