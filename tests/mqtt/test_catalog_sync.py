"""Catalog deltas and snapshots reach the device through a real mosquitto and apply whole.

The device end is a paho v5 client feeding CatalogSync through the Dispatcher (as the
hub link does); the hub end is the real HubCatalog + CatalogPublisher on a hub database,
or a test client publishing hand-made messages where a test needs a precise sequence.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from msgspec.structs import replace
from paho.mqtt.enums import CallbackAPIVersion
from peewee import Database, SqliteDatabase

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.mqtt import topics
from appliance.mqtt.catalog_products import payload_from_product
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.payloads import (
    CatalogDelta,
    CatalogRequest,
    CatalogStatus,
    SnapshotChunk,
    decode,
    encode,
)
from appliance.store.catalog import SqliteCatalog
from appliance.store.catalog_versions import CatalogVersions, SnapshotStaging
from appliance.store.database import open_database
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import migrate
from hub.catalog import HubCatalog, create_catalog_tables
from hub.catalog_publisher import CatalogPublisher
from hub.db import open_hub_database
from hub.stores import assign_device
from tests.broker import MosquittoBroker

MQTTV5 = mqtt.MQTTv5
DEVICE = "kiosk-7"
STORE = "vienna-1"
WAIT = 10.0


def product(i: int, price: int | None = None) -> Product:
    """Product number i with one valid EAN-13."""
    body = f"401{i:09d}"
    return Product(
        sku=f"P{i:04d}",
        name=f"Product {i}",
        price=Money(100 + i if price is None else price, "EUR"),
        tax_class="standard",
        category="misc",
        barcodes=(normalize_gtin(body + gtin_check_digit(body)),),
    )


def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait for a condition (a timeout on a wait, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


class FakeClock:
    """Wall and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t


class DeviceEnd:
    """The appliance side: paho v5 → Dispatcher → CatalogSync (its worker applies)."""

    def __init__(self, broker: MosquittoBroker, db: SqliteDatabase, clock: FakeClock) -> None:
        self.broker = broker
        self.db = db
        self.sync = CatalogSync(db, DEVICE, self._publish, clock=clock)
        self.sync.start()
        self.dispatcher = Dispatcher(DEVICE)
        self.dispatcher.on(topics.catalog_down(DEVICE), self.sync.submit)
        self.received = 0
        self._lock = threading.Lock()
        self.client: mqtt.Client | None = None

    def _publish(self, topic: str, data: bytes) -> None:
        assert self.client is not None
        self.client.publish(topic, data, qos=1)

    def connect(self) -> None:
        """Connect; once the subscription is granted the sync resyncs (as after a reconnect)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
        subscribed = threading.Event()

        def on_connect(c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
            c.subscribe(topics.catalog_down(DEVICE), qos=1)

        def on_subscribe(_c: mqtt.Client, _u: object, _m: int, _rc: Any, _p: object) -> None:
            subscribed.set()
            self.sync.notify_connected()

        def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            self.dispatcher.dispatch(message.topic, message.payload)
            with self._lock:
                self.received += 1

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        # Before the network thread starts: the SUBACK makes the sync publish a request at
        # once, from its own thread, through this client.
        self.client = client
        client.connect(self.broker.host, self.broker.port, clean_start=True)
        client.loop_start()
        assert subscribed.wait(WAIT)

    def drop(self) -> None:
        """Lose the connection abruptly: no DISCONNECT, the socket just goes."""
        client, self.client = self.client, None
        assert client is not None
        client.loop_stop()
        sock = client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Disconnect and stop the sync worker."""
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
        self.sync.stop()

    def settle(self, messages: int) -> None:
        """Wait until `messages` have arrived in total and the worker handled them."""
        until(lambda: self.received >= messages)
        assert self.sync.wait_idle(WAIT)


class HubEnd:
    """The hub side: records catalog requests; answers them with CatalogPublisher if asked."""

    def __init__(
        self, broker: MosquittoBroker, db: Database, *, answer: bool, chunk_size: int = 5000
    ) -> None:
        self.db = db
        self.publisher = CatalogPublisher(db, self.publish, chunk_size=chunk_size)
        self.answer = answer
        self.requests: list[CatalogRequest] = []
        self.sent: list[bytes] = []
        self._inbox: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="hub", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self._inbox.put((m.topic, m.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"{topics.ROOT}/d/+/up/catalog-request", qos=1)
        assert subscribed.wait(WAIT)  # SUBACK: a device's request reaches us from now on
        self._worker = threading.Thread(target=self._run, daemon=True)
        self._worker.start()

    def publish(self, topic: str, data: bytes) -> None:
        self.sent.append(data)
        self.client.publish(topic, data, qos=1).wait_for_publish(WAIT)

    def send(self, message: CatalogDelta | SnapshotChunk) -> None:
        self.publish(topics.catalog_down(DEVICE), encode(message))

    def _run(self) -> None:
        # The hub's DB work runs here, off paho's network thread, as in hub/server.py.
        while (item := self._inbox.get()) is not None:
            topic, data = item
            device = topics.device_of(topic)
            assert device == DEVICE
            self.requests.append(decode(data, CatalogRequest))
            if self.answer:
                self.publisher.on_request(device, data)

    def close(self) -> None:
        self._inbox.put(None)
        self._worker.join(WAIT)
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def device_db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    db = open_database(tmp_path / "device" / "appliance.db")
    migrate(db)
    yield db
    db.close()


@pytest.fixture
def hub_db(tmp_path: Path) -> Iterator[Database]:
    db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    create_catalog_tables(db)
    assign_device(db, DEVICE, STORE)
    yield db
    db.close()


@pytest.fixture
def device(
    broker: MosquittoBroker, device_db: SqliteDatabase, clock: FakeClock
) -> Iterator[DeviceEnd]:
    end = DeviceEnd(broker, device_db, clock)
    yield end
    end.close()


def _hub(broker: MosquittoBroker, db: Database, **options: Any) -> Iterator[HubEnd]:
    end = HubEnd(broker, db, **options)
    yield end
    end.close()


@pytest.fixture
def hub(broker: MosquittoBroker, hub_db: Database) -> Iterator[HubEnd]:
    """A hub answering requests with the real publisher (5 products per snapshot chunk)."""
    yield from _hub(broker, hub_db, answer=True, chunk_size=5)


@pytest.fixture
def quiet_hub(broker: MosquittoBroker, hub_db: Database) -> Iterator[HubEnd]:
    """A hub that only records requests; the test publishes by hand."""
    yield from _hub(broker, hub_db, answer=False)


def device_products(db: SqliteDatabase) -> dict[str, Product]:
    return {p.sku: p for p in SqliteCatalog(db).all_products()}


def test_a_delta_arrives_and_the_checkout_sees_the_new_price(
    device: DeviceEnd, hub: HubEnd, hub_db: Database, device_db: SqliteDatabase, clock: FakeClock
) -> None:
    catalog = HubCatalog(hub_db, STORE)
    catalog.import_products((product(i), 10) for i in range(12))
    device.connect()  # asks with have_version 0: a snapshot of v1 in 3 chunks comes back
    device.settle(3)
    assert device.sync.version == 1 and len(device_products(device_db)) == 12
    memory = MemoryCatalog(SqliteCatalog(device_db), recheck_seconds=1.0, monotonic=clock.monotonic)
    memory.refresh()
    assert memory.by_sku("P0003").price == Money(103, "EUR")  # type: ignore[union-attr]

    result = catalog.import_products(
        [(product(i, price=999) if i == 3 else product(i), None) for i in range(12)]
    )
    assert (result.changed, result.version) == (1, 2)
    assert hub.publisher.publish_update(STORE, 1) == 1  # one delta message
    device.settle(4)
    assert device.sync.version == 2
    assert hub.requests == [CatalogRequest(have_version=0)]

    assert memory.by_sku("P0003").price == Money(103, "EUR")  # type: ignore[union-attr]
    clock.t += 1.5  # past the recheck: the version changed, a reload starts
    memory.by_sku("P0003")
    memory.wait_for_reload(WAIT)
    assert memory.by_sku("P0003").price == Money(999, "EUR")  # type: ignore[union-attr]


def test_a_delta_with_a_gap_asks_the_hub_and_changes_nothing(
    device: DeviceEnd, quiet_hub: HubEnd, device_db: SqliteDatabase
) -> None:
    device.connect()
    until(lambda: len(quiet_hub.requests) == 1)
    quiet_hub.send(
        SnapshotChunk(version=1, chunk=0, chunks=1, products=[payload_from_product(product(1))])
    )
    device.settle(1)
    before = device_products(device_db)

    quiet_hub.send(
        CatalogDelta(from_version=3, to_version=4, upserts=[payload_from_product(product(2))])
    )
    until(lambda: len(quiet_hub.requests) == 2)
    device.settle(2)
    assert quiet_hub.requests == [CatalogRequest(have_version=0), CatalogRequest(have_version=1)]
    assert device.sync.version == 1
    assert device_products(device_db) == before


def test_a_snapshot_in_five_chunks_applies_only_when_complete(
    device: DeviceEnd, quiet_hub: HubEnd, hub_db: Database, device_db: SqliteDatabase
) -> None:
    SqliteCatalog(device_db).upsert([(product(900), 5)])  # a product the hub does not have
    catalog = HubCatalog(hub_db, STORE)
    catalog.import_products((product(i), i) for i in range(23))
    chunks = catalog.snapshot_chunks(chunk_size=5)
    assert [len(c.products) for c in chunks] == [5, 5, 5, 5, 3]
    device.connect()
    version_before = device.sync.version
    for n, chunk in enumerate(chunks[:4], start=1):
        quiet_hub.send(chunk)
        device.settle(n)
        assert set(device_products(device_db)) == {"P0900"}
        assert device.sync.version == version_before
    quiet_hub.send(chunks[4])
    device.settle(5)
    assert device.sync.version == 1
    held = device_products(device_db)
    assert set(held) == {f"P{i:04d}" for i in range(23)}  # P0900 went: the snapshot is all
    assert held["P0007"] == product(7)
    assert SqliteCatalog(device_db).stock_of("P0007") == 7
    assert SnapshotStaging(device_db).state() is None


def test_a_snapshot_cut_after_chunk_2_resumes_at_chunk_3_after_reconnect_and_restart(
    device: DeviceEnd, hub: HubEnd
) -> None:
    device_db = device.db
    catalog = HubCatalog(hub.db, STORE)
    catalog.import_products((product(i), 50) for i in range(25))
    chunks = catalog.snapshot_chunks(chunk_size=5)
    hub.answer = False
    device.connect()
    until(lambda: len(hub.requests) == 1)
    hub.send(chunks[0])
    hub.send(chunks[1])
    device.settle(2)
    device.drop()
    for chunk in chunks[2:]:
        hub.send(chunk)  # lost: nobody is subscribed while the device is away
    staged = SnapshotStaging(device_db).state()
    assert staged is not None and staged.present == {0, 1} and staged.next_chunk == 2
    assert device.sync.version == 0

    device.sync.stop()  # and the appliance restarts: a new sync on the same database
    restarted = DeviceEnd(device.broker, device_db, FakeClock())
    try:
        hub.answer = True
        hub.sent.clear()
        restarted.connect()
        restarted.settle(3)
        assert hub.requests[-1] == CatalogRequest(
            have_version=0, have_store=STORE, resume_version=1, next_chunk=2
        )
        assert [decode(m, SnapshotChunk).chunk for m in hub.sent] == [2, 3, 4]
        assert restarted.sync.version == 1
        assert device_products(device_db) == {f"P{i:04d}": product(i) for i in range(25)}
    finally:
        restarted.close()


def test_a_reconnect_asks_from_the_version_held_and_gets_the_delta(
    broker: MosquittoBroker, device: DeviceEnd, hub: HubEnd, hub_db: Database
) -> None:
    catalog = HubCatalog(hub_db, STORE)
    catalog.import_products((product(i), None) for i in range(3))
    device.connect()
    device.settle(1)
    device.drop()
    catalog.import_products((product(i), None) for i in range(1, 4))  # P0 gone, P3 new
    hub.sent.clear()
    device.connect()
    until(lambda: len(hub.requests) == 2)
    device.settle(2)
    assert hub.requests[-1] == CatalogRequest(have_version=1, have_store=STORE)
    delta = decode(hub.sent[-1], CatalogDelta)
    assert (delta.from_version, delta.to_version, delta.deletes) == (1, 2, ["P0000"])
    assert [p.sku for p in delta.upserts] == ["P0003"]
    assert device.sync.version == 2
    assert set(device_products(device.db)) == {"P0001", "P0002", "P0003"}


def _tables(db: SqliteDatabase) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog as held (a snapshot staged for a retry is not part of it)."""
    tables = ("product", "barcode", "stock_movement", "meta")
    held = {t: db.execute_sql(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables}
    held["meta"] = [row for row in held["meta"] if not row[0].startswith("catalog_staging")]
    return held


def test_a_crash_inside_the_apply_transaction_leaves_the_old_catalog(
    device_db: SqliteDatabase, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []
    sync = CatalogSync(device_db, DEVICE, lambda _t, data: sent.append(data), clock=clock)
    first = [payload_from_product(product(i), stock=10) for i in range(6)]
    assert sync.add_chunk(SnapshotChunk(version=1, chunk=0, chunks=1, products=first)) == "applied"
    before = _tables(device_db)

    def crash(_self: CatalogVersions, _version: int, _store: str | None = None) -> None:
        raise RuntimeError("power cut")  # after the upserts, deletes and stock ran

    monkeypatch.setattr(CatalogVersions, "set_version", crash)
    delta = CatalogDelta(
        from_version=1,
        to_version=2,
        upserts=[
            payload_from_product(product(0, price=1), stock=3),
            payload_from_product(product(50)),
        ],
        deletes=["P0001"],
    )
    assert sync.apply_delta(delta) == "failed"
    assert _tables(device_db) == before
    snapshot = SnapshotChunk(version=2, chunk=0, chunks=1, products=first[:2])
    assert sync.add_chunk(snapshot) == "failed"
    assert _tables(device_db) == before
    assert sync.version == 1 and sync.failed == 2

    monkeypatch.undo()  # the next reconnect applies the staged snapshot it kept
    sync.connected()
    assert sync.version == 2 and set(device_products(device_db)) == {"P0000", "P0001"}


def test_a_stock_correction_from_the_hub_is_a_hub_movement(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    store = SqliteCatalog(device_db)
    sync = CatalogSync(device_db, DEVICE, lambda _t, _d: None, clock=clock)
    base = [payload_from_product(product(i)) for i in range(2)]
    sync.add_chunk(SnapshotChunk(version=1, chunk=0, chunks=1, products=base))
    device_db.execute_sql("UPDATE product SET stock_qty = 10")  # as if sales had run
    corrected = replace(base[0], stock=7)
    renamed = replace(base[1], name="Renamed")  # no stock: the local level stays
    delta = CatalogDelta(from_version=1, to_version=2, upserts=[corrected, renamed])
    assert sync.apply_delta(delta) == "applied"
    assert store.stock_of("P0000") == 7 and store.stock_of("P0001") == 10
    moves = device_db.execute_sql(
        "SELECT sku, delta, reason FROM stock_movement WHERE reason = 'hub'"
    ).fetchall()
    assert moves == [("P0000", -3, "hub")]


def test_stale_malformed_and_duplicate_messages_change_nothing(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    sent: list[CatalogRequest] = []
    sync = CatalogSync(
        device_db, DEVICE, lambda _t, data: sent.append(decode(data, CatalogRequest)), clock=clock
    )
    one = SnapshotChunk(version=2, chunk=0, chunks=1, products=[payload_from_product(product(1))])
    assert sync.handle(encode(one)) == "applied"
    before = _tables(device_db)
    bad_barcode = replace(payload_from_product(product(2)), barcodes=["12345"])
    assert sync.handle(b"\xff not json") == "malformed"
    assert sync.handle(b'{"kind": "delta", "from_version": "x"}') == "malformed"
    assert sync.handle(encode(CatalogDelta(from_version=2, to_version=2))) == "malformed"
    assert sync.apply_delta(CatalogDelta(from_version=2, to_version=3, upserts=[bad_barcode])) == (
        "malformed"
    )
    assert sync.apply_delta(CatalogDelta(from_version=1, to_version=2)) == "stale"
    assert sync.add_chunk(replace(one, version=1)) == "stale"
    assert _tables(device_db) == before and sync.malformed == 4
    gap = CatalogDelta(from_version=5, to_version=6)
    assert [sync.apply_delta(gap) for _ in range(3)] == ["gap"] * 3
    assert sent == [CatalogRequest(have_version=2)]  # asked once, not three times
    clock.t += 31
    sync.apply_delta(gap)
    assert len(sent) == 2  # and again once the retry interval passed


def _random_catalog(rng: random.Random) -> list[tuple[Product, int | None]]:
    """A random subset of 60 products with random prices; some carry a new count."""
    chosen = sorted(rng.sample(range(60), rng.randrange(10, 45)))
    return [
        (
            product(i, price=rng.randrange(1, 500)),
            rng.randrange(0, 40) if rng.random() < 0.3 else None,
        )
        for i in chosen
    ]


def _fault_rounds(device: DeviceEnd, hub: HubEnd, rounds: int, seed: int) -> None:
    """Each round: new hub versions, a download cut at a random chunk, maybe a restart."""
    rng = random.Random(seed)
    catalog = HubCatalog(hub.db, STORE)
    # Small deltas only: most catch-ups are snapshots, which is where resuming matters.
    hub.publisher = CatalogPublisher(hub.db, hub.publish, chunk_size=5, delta_limit=8)
    sync_end = device
    for _ in range(rounds):
        catalog.import_products(_random_catalog(rng))
        if rng.random() < 0.6:  # cut a snapshot download short
            hub.answer = False
            asked = len(hub.requests)
            sync_end.connect()
            until(lambda: len(hub.requests) > asked)  # noqa: B023 (called right here)
            chunks = catalog.snapshot_chunks(chunk_size=5)
            cut = rng.randrange(len(chunks))
            for chunk in chunks[:cut]:
                hub.send(chunk)
            until(lambda: sync_end.received >= cut)  # noqa: B023
            sync_end.received = 0
            assert sync_end.sync.wait_idle(WAIT)
            sync_end.drop()
            if rng.random() < 0.5:
                catalog.import_products(_random_catalog(rng))  # moves on while we are away
        if rng.random() < 0.3:  # the appliance restarts: a new sync on the same database
            sync_end.sync.stop()
            sync_end = DeviceEnd(device.broker, device.db, FakeClock())
        hub.answer = True
        sync_end.connect()
        target = catalog.version()
        until(lambda: sync_end.sync.version == target)  # noqa: B023
        assert sync_end.sync.wait_idle(WAIT)
        expected = catalog.products()
        held = device_products(device.db)
        assert {s: (p.name, p.price.minor, p.barcodes) for s, p in held.items()} == {
            s: (p.name, p.price, tuple(p.barcodes)) for s, p in expected.items()
        }
        store = SqliteCatalog(device.db)
        for sku, payload in expected.items():
            if payload.stock is not None:
                assert store.stock_of(sku) == payload.stock, sku
        sync_end.drop()
        sync_end.received = 0
    if sync_end is not device:
        sync_end.close()


def test_downloads_cut_at_random_chunks_always_end_at_the_hubs_catalog(
    device: DeviceEnd, hub: HubEnd
) -> None:
    _fault_rounds(device, hub, rounds=3, seed=7)


@pytest.mark.soak
def test_many_cut_downloads_and_restarts_end_at_the_hubs_catalog(
    device: DeviceEnd, hub: HubEnd
) -> None:
    _fault_rounds(device, hub, rounds=30, seed=2026)


# --- versions belong to a store; every request is answered or asked again ----------------


def _requests(sent: list[bytes]) -> list[CatalogRequest]:
    return [decode(data, CatalogRequest) for data in sent]


def test_a_delta_of_another_store_never_applies_and_its_snapshot_replaces_the_catalog(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    sent: list[bytes] = []
    sync = CatalogSync(device_db, DEVICE, lambda _t, data: sent.append(data), clock=clock)
    held = [payload_from_product(product(i)) for i in range(3)]
    assert sync.add_chunk(SnapshotChunk(store="A", version=5, chunk=0, chunks=1, products=held))
    assert (sync.store, sync.version) == ("A", 5)
    before = _tables(device_db)

    # Store B's line: from_version 5 is ours by number only.
    other = CatalogDelta(
        store="B", from_version=5, to_version=6, upserts=[payload_from_product(product(9))]
    )
    assert sync.apply_delta(other) == "foreign"
    assert _tables(device_db) == before
    assert _requests(sent) == [CatalogRequest(have_version=5, have_store="A")]

    # B's snapshot replaces A's catalog, though its version is lower than the one held.
    moved = [payload_from_product(product(i)) for i in (7, 8)]
    assert sync.add_chunk(SnapshotChunk(store="B", version=2, chunk=0, chunks=1, products=moved))
    assert (sync.store, sync.version) == ("B", 2)
    assert set(device_products(device_db)) == {"P0007", "P0008"}
    assert sync.apply_delta(replace(other, store="A", from_version=2, to_version=3)) == "foreign"
    assert sync.apply_delta(replace(other, from_version=2, to_version=3)) == "applied"
    assert set(device_products(device_db)) == {"P0007", "P0008", "P0009"}


def test_staged_chunks_of_two_stores_never_make_one_snapshot(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    sync = CatalogSync(device_db, DEVICE, lambda _t, _d: None, clock=clock)
    a = [payload_from_product(product(i)) for i in range(4)]
    b = [payload_from_product(product(i)) for i in range(10, 14)]
    assert sync.add_chunk(SnapshotChunk(store="A", version=3, chunk=0, chunks=2, products=a[:2]))
    # Same version and chunk count, another store: A's chunk 0 must not complete B's v3.
    assert sync.add_chunk(SnapshotChunk(store="B", version=3, chunk=1, chunks=2, products=b[2:]))
    staged = SnapshotStaging(device_db).state()
    assert staged is not None and (staged.store, staged.present) == ("B", frozenset({1}))
    assert sync.version == 0
    rest = SnapshotChunk(store="B", version=3, chunk=0, chunks=2, products=b[:2])
    assert sync.add_chunk(rest) == "applied"
    assert (sync.store, set(device_products(device_db))) == ("B", {p.sku for p in b})


def test_a_request_without_an_answer_is_asked_again_and_no_store_stops_asking(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    sent: list[bytes] = []
    sync = CatalogSync(device_db, DEVICE, lambda _t, data: sent.append(data), clock=clock)
    sync.connected()
    assert _requests(sent) == [CatalogRequest(have_version=0)]
    clock.t += 29
    assert not sync.poll() and len(sent) == 1
    clock.t += 2  # past the retry time with no answer: the message was lost
    assert sync.poll() and len(sent) == 2

    assert sync.handle(encode(CatalogStatus(store="A", version=0, state="current"))) == "current"
    clock.t += 120
    assert not sync.poll() and len(sent) == 2  # answered: content

    gap = CatalogDelta(from_version=4, to_version=5)
    assert sync.apply_delta(gap) == "gap" and len(sent) == 3
    assert sync.handle(encode(CatalogStatus(state="no_store"))) == "no_store"
    assert sync.in_no_store
    clock.t += 120
    assert not sync.poll()
    assert sync.apply_delta(replace(gap, from_version=5, to_version=6)) == "gap"
    assert len(sent) == 3  # quiet until the next connection
    sync.connected()
    assert len(sent) == 4 and not sync.in_no_store


def test_a_rebase_snapshot_applies_whatever_version_is_held(
    device_db: SqliteDatabase, clock: FakeClock
) -> None:
    sync = CatalogSync(device_db, DEVICE, lambda _t, _d: None, clock=clock)
    first = [payload_from_product(product(i)) for i in range(3)]
    assert sync.add_chunk(SnapshotChunk(store="A", version=9, chunk=0, chunks=1, products=first))
    back = SnapshotChunk(store="A", version=4, chunk=0, chunks=1, products=first[:1])
    assert sync.add_chunk(back) == "stale"
    assert sync.add_chunk(replace(back, rebase=True)) == "applied"
    assert (sync.store, sync.version, set(device_products(device_db))) == ("A", 4, {"P0000"})
