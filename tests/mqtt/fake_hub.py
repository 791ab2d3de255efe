"""A minimal hub for the link and uploader tests, on the far side of a real broker.

FakeHub subscribes to every device's sales, status and health, stores sales idempotently
by (device, sale id) while counting every raw receipt, and acknowledges the highest
contiguous sequence. Tests switch its retained online state and its acknowledgements.
The real hub lives in hub/; this one only has to be obviously right.

`DeviceStore` is the appliance's side: a migrated database with the sample catalog and a
ledger that commits sales into the outbox.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    DeviceStatus,
    HubState,
    SalesAck,
    SalesBatch,
    Telemetry,
    decode,
    encode,
)
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger, decode_document
from appliance.store.migrations import migrate
from appliance.store.outbox import SalesOutbox
from tests.store.crash_writer import PRODUCTS, RECEIPT_PREFIX, sale_draft

HUB_ID = "fake-hub"


@dataclass(frozen=True, slots=True)
class Receipt:
    """One sale as the hub received it (possibly again)."""

    device: str
    seq: int
    sale_id: str


@dataclass(frozen=True, slots=True)
class HealthMessage:
    """A telemetry message with the QoS and message expiry the broker delivered it with."""

    telemetry: Telemetry
    qos: int
    expiry_s: int | None


class FakeHub:
    """Stores sales once, acknowledges the contiguous prefix, records statuses and health."""

    def __init__(self, host: str, port: int, *, online: bool = True, acks: bool = True) -> None:
        self.host, self.port = host, port
        self._cond = threading.Condition()
        self._online = online
        self._ack_limit: int | None = None if acks else 0  # acknowledge no further than this
        self.receipts: list[Receipt] = []  # every sale received, duplicates included
        self.stored: dict[tuple[str, str], int] = {}  # (device, sale id) -> seq, insertion order
        self.contiguous: dict[str, int] = {}
        self.statuses: list[DeviceStatus] = []
        self.health: list[HealthMessage] = []
        self.bad_documents = 0
        self.errors: list[str] = []  # messages the hub could not read (should stay empty)
        self.connections = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=HUB_ID, protocol=mqtt.MQTTv5
        )
        self._client.reconnect_delay_set(1, 2)
        self._client.will_set(topics.HUB_STATE, self._state(False), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    # --- control (test thread) ---

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and publish the retained hub state."""
        self._client.connect_async(self.host, self.port, clean_start=True)
        self._client.loop_start()
        assert self.wait_for(lambda: self.connections > 0, timeout), "fake hub did not connect"

    def stop(self) -> None:
        """Leave the way a crashing hub does: the broker publishes the offline will."""
        if self._client.is_connected():
            self._client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
            )
        else:
            self._client.disconnect()
        self._client.loop_stop()

    def set_online(self, online: bool) -> None:
        """Publish the retained hub state devices gate their flushing on."""
        with self._cond:
            self._online = online
        self._client.publish(topics.HUB_STATE, self._state(online), qos=1, retain=True)

    def set_acks(self, acks: bool) -> None:
        """Stop or resume acknowledging; resuming acknowledges what is stored at once."""
        self.set_ack_limit(None if acks else 0)

    def set_ack_limit(self, limit: int | None) -> None:
        """Acknowledge no sequence above `limit` (None: all); acknowledges what it may at once."""
        with self._cond:
            self._ack_limit = limit
            devices = dict(self.contiguous)
        for device, upto in devices.items():
            self._ack(device, upto)

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Send anything to any topic (malformed-message tests), QoS 1."""
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0) -> bool:
        """Wait until `predicate()` (evaluated under the hub's lock) holds."""
        with self._cond:
            return bool(self._cond.wait_for(predicate, timeout))

    def sequences(self, device: str) -> list[int]:
        """Stored sequences of a device in the order they were first received."""
        with self._cond:
            return [seq for (d, _), seq in self.stored.items() if d == device]

    def raw_count(self, device: str) -> int:
        """Sales received from a device, duplicates included."""
        with self._cond:
            return sum(1 for r in self.receipts if r.device == device)

    # --- paho's thread ---

    def _state(self, online: bool) -> bytes:
        return encode(HubState(online=online, hub_id=HUB_ID))

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(
            [
                (f"{topics.ROOT}/d/+/up/sales", SubscribeOptions(qos=1)),
                (f"{topics.ROOT}/d/+/up/health", SubscribeOptions(qos=1)),
                (f"{topics.ROOT}/d/+/status", SubscribeOptions(qos=1)),
            ]
        )
        # After SUBSCRIBE on the same connection: no device flushes before we listen.
        with self._cond:
            online = self._online
        client.publish(topics.HUB_STATE, self._state(online), qos=1, retain=True)
        with self._cond:
            self.connections += 1
            self._cond.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._receive(message)
        except Exception as err:  # an exception would end paho's loop: record it instead
            with self._cond:
                self.errors.append(f"{message.topic}: {err!r}")
                self._cond.notify_all()

    def _receive(self, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        if topic.endswith("/up/sales"):
            self._on_sales(decode(message.payload, SalesBatch))
        elif topic.endswith("/status") and message.payload:
            status = decode(message.payload, DeviceStatus)
            with self._cond:
                self.statuses.append(status)
                self._cond.notify_all()
        elif topic.endswith("/up/health"):
            expiry = getattr(message.properties, "MessageExpiryInterval", None)
            with self._cond:
                telemetry = decode(message.payload, Telemetry)
                self.health.append(HealthMessage(telemetry, message.qos, expiry))
                self._cond.notify_all()

    def _on_sales(self, batch: SalesBatch) -> None:
        device = batch.device
        with self._cond:
            stored_seqs = {s for (d, _), s in self.stored.items() if d == device}
            for sale in batch.sales:
                self.receipts.append(Receipt(device, sale.seq, sale.sale_id))
                if decode_document(sale.document).id != sale.sale_id:
                    self.bad_documents += 1
                self.stored.setdefault((device, sale.sale_id), sale.seq)
                stored_seqs.add(sale.seq)
            upto = self.contiguous.get(device, 0)
            while upto + 1 in stored_seqs:
                upto += 1
            self.contiguous[device] = upto
            self._cond.notify_all()
        self._ack(device, upto)

    def _ack(self, device: str, upto: int) -> None:
        with self._cond:
            limit = self._ack_limit
        if limit is not None:
            upto = min(upto, limit)
        if upto > 0:
            payload = encode(SalesAck(upto_seq=upto))
            self._client.publish(topics.sales_ack(device), payload, qos=1)


def eventually(predicate: Callable[[], object], timeout: float = 15.0) -> bool:
    """Poll `predicate` until it holds or `timeout` passes (for state no condition announces)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class DeviceStore:
    """The appliance's database with the sample catalog; commits sales into the outbox."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: SqliteDatabase = open_database(path)
        migrate(self.db)
        catalog = SqliteCatalog(self.db)
        if catalog.count() == 0:
            catalog.upsert((p, None) for p in PRODUCTS)
        self.catalog = catalog
        self.products: dict[str, Product] = {p.sku: p for p in PRODUCTS}
        self.ledger = SalesLedger(self.db, RECEIPT_PREFIX)
        self.outbox = SalesOutbox(self.db)

    def sell(self, count: int, *, seed: int = 0) -> list[str]:
        """Commit `count` sales of one or two random products; returns their ids in order."""
        rng = random.Random(seed)
        skus = sorted(self.products)
        ids = []
        for _ in range(count):
            items = [(sku, rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 2))]
            ids.append(self.ledger.commit(sale_draft(self.products, items)).id)
        return ids

    def close(self) -> None:
        """Close the calling thread's connection."""
        if not self.db.is_closed():
            self.db.close()
