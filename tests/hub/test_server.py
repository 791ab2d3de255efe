"""The hub worker over a real mosquitto: acks after commit, shared load, status, hub state."""

from __future__ import annotations

import queue
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    DeviceHealthReport,
    DeviceStatus,
    HubState,
    SalesAck,
    SalesBatch,
    Telemetry,
    decode,
    encode,
)
from hub.ingest import IngestResult, SalesIngest
from hub.models import Device, Sale
from hub.server import BrokerEndpoint, HubServer, HubStats
from tests.broker import MosquittoBroker
from tests.hub.test_ingest import batch, install_failing_trigger, remove_failing_trigger, sqlite_hub

TIMEOUT = 10.0


class DeviceClient:
    """A raw paho v5 client playing an appliance (or an observer); collects what arrives."""

    def __init__(self, broker: MosquittoBroker, client_id: str, subscriptions: list[str]) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if subscriptions:
            self.client.subscribe([(topic, 1) for topic in subscriptions])
            assert self._subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, correlation: bytes | None = None
    ) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        props = None
        if correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        info.wait_for_publish(TIMEOUT)

    def next(self, topic: str, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        """The next message on `topic` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing on {topic} within {timeout} s")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message.topic == topic:
                return message

    def close(self) -> None:
        """Disconnect cleanly."""
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def retained_hub_state(broker: MosquittoBroker) -> HubState:
    """What a device connecting now reads first on the hub-state topic (the retained one)."""
    observer = DeviceClient(broker, f"observer-{time.monotonic_ns()}", [topics.HUB_STATE])
    try:
        return decode(observer.next(topics.HUB_STATE).payload, HubState)
    finally:
        observer.close()


def next_state(observer: DeviceClient) -> HubState:
    """The next hub state an observer sees."""
    return decode(observer.next(topics.HUB_STATE).payload, HubState)


@pytest.fixture
def start_server(broker: MosquittoBroker, hub_db: Database) -> Iterator[Callable[..., HubServer]]:
    """Start hub workers on the test broker; all are stopped after the test."""
    started: list[HubServer] = []

    def start(worker_id: str = "w1", **kwargs: object) -> HubServer:
        server = HubServer(
            hub_db, BrokerEndpoint(broker.host, broker.port), worker_id=worker_id, **kwargs
        )
        server.start(timeout=TIMEOUT)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def ack_of(message: mqtt.MQTTMessage) -> int:
    """The upto_seq of a SalesAck message."""
    return decode(message.payload, SalesAck).upto_seq


def test_a_batch_is_stored_and_then_acknowledged(
    start_server: Callable[..., HubServer], device: DeviceClient, hub_db: Database
) -> None:
    start_server()
    device.publish(
        topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1, 2, 3])), correlation=b"b-1"
    )
    message = device.next(topics.sales_ack("kiosk-1"))
    assert ack_of(message) == 3
    assert message.properties.CorrelationData == b"b-1"
    assert Sale.select().where(Sale.device == "kiosk-1").count(hub_db) == 3


def test_a_gap_over_mqtt_is_acked_below_it_then_past_it(
    start_server: Callable[..., HubServer], device: DeviceClient
) -> None:
    start_server()
    device.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1, 2, 4])))
    assert ack_of(device.next(topics.sales_ack("kiosk-1"))) == 2
    device.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [3])))
    assert ack_of(device.next(topics.sales_ack("kiosk-1"))) == 4


def test_no_ack_when_the_commit_fails_and_the_resend_is_acked(
    start_server: Callable[..., HubServer], device: DeviceClient, hub_db: Database
) -> None:
    server = start_server()
    install_failing_trigger(hub_db, seq=2)
    sales = encode(batch("kiosk-1", [1, 2, 3]))
    device.publish(topics.sales_up("kiosk-1"), sales, correlation=b"first")
    wait_until(lambda: server.stats.failures == 1)
    assert Sale.select().count(hub_db) == 0
    remove_failing_trigger(hub_db)
    device.publish(topics.sales_up("kiosk-1"), sales, correlation=b"second")
    # Acks go out in order: had the failed batch been acked, that ack would come first.
    message = device.next(topics.sales_ack("kiosk-1"))
    assert (message.properties.CorrelationData, ack_of(message)) == (b"second", 3)
    assert server.stats.acks == 1


def test_two_workers_share_the_load_and_process_every_batch_once(
    start_server: Callable[..., HubServer], broker: MosquittoBroker, hub_db: Database
) -> None:
    workers = [start_server("w1"), start_server("w2")]
    devices = [f"kiosk-{n}" for n in range(1, 4)]
    acks = DeviceClient(broker, "ack-watcher", [topics.sales_ack(d) for d in devices])
    senders = {d: DeviceClient(broker, d, []) for d in devices}
    try:
        per_device = 12
        for start in range(1, per_device * 5, 5):
            for d in devices:
                senders[d].publish(topics.sales_up(d), encode(batch(d, range(start, start + 5))))
        total_batches = per_device * len(devices)
        received: dict[str, list[int]] = {d: [] for d in devices}
        for _ in range(total_batches):
            message = acks.messages.get(timeout=TIMEOUT)
            received[topics.device_of(message.topic) or ""].append(ack_of(message))
        # Exactly one ack per batch: no batch was processed by both workers.
        assert sum(map(len, received.values())) == total_batches
        assert all(max(upto) == per_device * 5 for upto in received.values())
        assert acks.messages.empty()
        stats = [w.stats for w in workers]
        assert sum(s.batches for s in stats) == total_batches
        assert all(s.batches > 0 for s in stats), stats  # the broker split the load
        assert Sale.select().count(hub_db) == total_batches * 5
    finally:
        for client in (acks, *senders.values()):
            client.close()


def test_a_stale_will_is_ignored_and_the_current_one_is_not(
    start_server: Callable[..., HubServer], device: DeviceClient, hub_db: Database
) -> None:
    server = start_server()

    def status(online: bool, bd_seq: int) -> None:
        before = server.stats.statuses
        payload = DeviceStatus(device="kiosk-1", online=online, bd_seq=bd_seq, firmware="1.4.0")
        device.publish(topics.status("kiosk-1"), encode(payload), retain=True)
        wait_until(lambda: server.stats.statuses == before + 1)

    def row() -> tuple[bool, int, str]:
        values = (
            Device.select(Device.online, Device.bd_seq, Device.firmware)
            .where(Device.id == "kiosk-1")
            .tuples()
            .execute(hub_db)[0]
        )
        return bool(values[0]), int(values[1]), str(values[2])

    status(online=True, bd_seq=5)
    assert row() == (True, 5, "1.4.0")
    status(online=False, bd_seq=4)  # the will of the session before
    assert row() == (True, 5, "1.4.0")
    assert server.stats.stale_wills == 1
    status(online=False, bd_seq=5)
    assert row() == (False, 5, "1.4.0")


def test_telemetry_is_kept_on_the_device(
    start_server: Callable[..., HubServer], device: DeviceClient, hub_db: Database
) -> None:
    server = start_server()
    report = Telemetry(
        device="kiosk-1",
        at="2024-05-01T09:00:00Z",
        firmware="1.4.1",
        uptime_s=12.5,
        outbox_depth=7,
        catalog_version=42,
        disk_free_bytes=10**9,
        devices=[DeviceHealthReport(device="printer", kind="printer", state="ok")],
    )
    device.publish(topics.health("kiosk-1"), encode(report))
    wait_until(lambda: server.stats.telemetry == 1)
    firmware, text = (
        Device.select(Device.firmware, Device.telemetry)
        .where(Device.id == "kiosk-1")
        .tuples()
        .execute(hub_db)[0]
    )
    assert firmware == "1.4.1"
    assert decode(text.encode(), Telemetry) == report


def test_malformed_messages_are_counted_and_the_worker_keeps_serving(
    start_server: Callable[..., HubServer], device: DeviceClient
) -> None:
    server = start_server()
    good = batch("kiosk-1", [1])
    newer = encode(good).replace(b'"v":1', b'"v":2', 1)
    assert newer != encode(good)
    for topic, payload in [
        (topics.sales_up("kiosk-1"), b"\xff\x00 not json"),
        (topics.sales_up("kiosk-1"), b'{"v":1,"device":"kiosk-1"}'),  # no sales
        (topics.sales_up("kiosk-1"), b'{"v":1,"device":"kiosk-1","sales":"many"}'),
        (topics.sales_up("kiosk-1"), newer),
        (topics.sales_up("kiosk-1"), encode(batch("kiosk-9", [1]))),  # another device's
        (topics.status("kiosk-1"), b"[]"),
        (topics.health("kiosk-1"), b'{"v":1,"device":"kiosk-1"}'),
        (f"{topics.device_root('kiosk-1')}/up/no-such-topic", b"{}"),
    ]:
        device.publish(topic, payload)
    device.publish(topics.sales_up("kiosk-1"), encode(good))
    assert ack_of(device.next(topics.sales_ack("kiosk-1"))) == 1
    assert server.stats == HubStats(
        received=9, batches=1, acks=1, malformed=7, unhandled=1, statuses=0
    )


def test_a_slow_database_does_not_stall_the_network_thread(
    start_server: Callable[..., HubServer],
    device: DeviceClient,
    hub_db: Database,
    broker: MosquittoBroker,
) -> None:
    release = threading.Event()
    ingest_threads: list[str] = []

    class SlowIngest(SalesIngest):
        def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
            ingest_threads.append(threading.current_thread().name)
            assert release.wait(TIMEOUT)
            return super().ingest(device, batch)

    start_server(ingest=SlowIngest(hub_db))
    device.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1])))
    wait_until(lambda: bool(ingest_threads))
    # While the ingest hangs, the network thread still answers: it restores the hub
    # state that an observer knocks offline.
    observer = DeviceClient(broker, "observer", [topics.HUB_STATE])
    try:
        observer.next(topics.HUB_STATE)  # the retained "online"
        observer.publish(
            topics.HUB_STATE, encode(HubState(online=False, hub_id="gone")), retain=True
        )
        assert decode(observer.next(topics.HUB_STATE).payload, HubState).online is False
        assert decode(observer.next(topics.HUB_STATE).payload, HubState) == HubState(
            online=True, hub_id="w1"
        )
    finally:
        observer.close()
    release.set()
    assert ack_of(device.next(topics.sales_ack("kiosk-1"))) == 1
    assert ingest_threads == ["hub-worker-w1"]


def test_the_hub_state_is_retained_online_while_running_and_offline_when_stopped(
    start_server: Callable[..., HubServer], broker: MosquittoBroker
) -> None:
    server = start_server("w1")
    assert retained_hub_state(broker) == HubState(online=True, hub_id="w1")
    server.stop()
    assert retained_hub_state(broker) == HubState(online=False, hub_id="w1")


def test_one_worker_leaving_does_not_take_the_hub_offline(
    start_server: Callable[..., HubServer], broker: MosquittoBroker
) -> None:
    start_server("w1")
    leaving = start_server("w2")
    leaving.stop()  # announces offline; w1 puts online back
    wait_until(lambda: retained_hub_state(broker).online)
    assert retained_hub_state(broker) == HubState(online=True, hub_id="w1")


def test_the_last_will_marks_the_hub_offline_after_a_kill(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    observer = DeviceClient(broker, "observer", [topics.HUB_STATE])
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "hub.cli_serve", "--db", f"sqlite:///{tmp_path / 'hub.db'}"),
            *("--host", broker.host, "--port", str(broker.port), "--worker-id", "doomed"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert next_state(observer) == HubState(online=True, hub_id="doomed")
        assert retained_hub_state(broker) == HubState(online=True, hub_id="doomed")
        process.kill()  # SIGKILL: no clean stop, only the broker's Last Will
        process.wait(timeout=TIMEOUT)
        assert next_state(observer) == HubState(online=False, hub_id="doomed")
        assert retained_hub_state(broker) == HubState(online=False, hub_id="doomed")
    finally:
        observer.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=TIMEOUT)


def _drain_with_hub_kills(broker: MosquittoBroker, tmp_path: Path, rounds: int, seed: int) -> None:
    """A device drains its outbox while the hub process is SIGKILLed at random moments.

    After every kill the hub's table must hold every sale the device saw acknowledged
    (an ack never runs ahead of the commit), each once; the device resends from its last
    ack, as its durable outbox would, and in the end every sale is stored exactly once.
    """
    rng = random.Random(seed)
    db_path = tmp_path / "hub.db"
    total, size = 40 * rounds, 5
    observer = DeviceClient(broker, "observer", [topics.HUB_STATE])
    kiosk = DeviceClient(broker, "kiosk-1", [topics.sales_ack("kiosk-1")])
    acked = 0
    try:
        for n in range(rounds + 1):
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "hub.cli_serve", "--db", f"sqlite:///{db_path}"),
                    *("--host", broker.host, "--port", str(broker.port), "--worker-id", f"r{n}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while next_state(observer) != HubState(online=True, hub_id=f"r{n}"):
                    pass
                starts = list(range(acked + 1, total + 1, size))
                for start in starts:
                    seqs = range(start, min(start + size, total + 1))
                    kiosk.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", seqs)))
                last_round = n == rounds
                wanted = len(starts) if last_round else rng.randint(0, max(0, len(starts) - 1))
                for _ in range(wanted):
                    acked = max(acked, ack_of(kiosk.next(topics.sales_ack("kiosk-1"))))
            finally:
                process.kill()  # SIGKILL, mid-drain except in the last round
                process.wait(timeout=TIMEOUT)
            while not kiosk.messages.empty():  # acks that got out before the kill
                message = kiosk.messages.get()
                acked = max(acked, ack_of(message))
            db = sqlite_hub(db_path)
            try:
                seqs_stored = [
                    int(s) for (s,) in Sale.select(Sale.seq).order_by(Sale.seq).tuples().execute(db)
                ]
            finally:
                db.close()
            assert len(seqs_stored) == len(set(seqs_stored))
            assert set(range(1, acked + 1)) <= set(seqs_stored), (n, acked)
        assert acked == total
        assert seqs_stored == list(range(1, total + 1))
    finally:
        observer.close()
        kiosk.close()


def test_killing_the_hub_mid_drain_loses_and_duplicates_nothing(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    _drain_with_hub_kills(broker, tmp_path, rounds=50, seed=4)


@pytest.mark.soak
def test_killing_the_hub_mid_drain_many_times(broker: MosquittoBroker, tmp_path: Path) -> None:
    _drain_with_hub_kills(broker, tmp_path, rounds=200, seed=int(time.time()))


class HeldIngest(SalesIngest):
    """The ingest, held at kiosk-0's batch until released; records each call's device and
    whether it ran inside a transaction the worker had already begun (a group commit)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.release = threading.Event()
        self.calls: list[tuple[str, bool]] = []
        self._db_of_test = db

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        self.calls.append((device, self._db_of_test.in_transaction()))
        if device == "kiosk-0":
            assert self.release.wait(TIMEOUT)
        return super().ingest(device, batch)


def _queue_behind_a_held_batch(
    server: HubServer, held: HeldIngest, sender: DeviceClient, batches: dict[str, list[int]]
) -> None:
    """kiosk-0's batch holds the worker while these batches queue up behind it."""
    sender.publish(topics.sales_up("kiosk-0"), encode(batch("kiosk-0", [1])))
    wait_until(lambda: bool(held.calls))
    for name, seqs in batches.items():
        sender.publish(topics.sales_up(name), encode(batch(name, seqs)))
    wait_until(lambda: server.queued == len(batches))
    held.release.set()


def test_queued_batches_commit_together_and_every_ack_follows_that_commit(
    start_server: Callable[..., HubServer], broker: MosquittoBroker, hub_db: Database
) -> None:
    held = HeldIngest(hub_db)
    server = start_server(ingest=held)
    devices = [f"kiosk-{n}" for n in (3, 1, 5, 2, 4)]  # queued out of order
    acks = DeviceClient(broker, "ack-watcher", [topics.sales_ack("+")])
    sender = DeviceClient(broker, "sender", [])
    try:
        _queue_behind_a_held_batch(server, held, sender, {d: [1, 2] for d in devices})
        first = acks.next(topics.sales_ack("kiosk-0"))
        assert ack_of(first) == 1
        # The first ack of the group arrives only once every sale of the group is committed.
        message = acks.messages.get(timeout=TIMEOUT)
        assert Sale.select().count(hub_db) == 1 + 2 * len(devices)
        received = {topics.device_of(message.topic): ack_of(message)}
        for _ in devices[1:]:
            message = acks.messages.get(timeout=TIMEOUT)
            received[topics.device_of(message.topic)] = ack_of(message)
        assert received == {d: 2 for d in devices}
        # One transaction for the five, its devices taken in one order (no lock cycles).
        assert held.calls == [("kiosk-0", False)] + [(d, True) for d in sorted(devices)]
        assert server.stats.batches == server.stats.acks == 1 + len(devices)
    finally:
        acks.close()
        sender.close()


def test_a_failing_batch_in_a_group_costs_the_others_a_retry_never_their_ack(
    start_server: Callable[..., HubServer], broker: MosquittoBroker, hub_db: Database
) -> None:
    held = HeldIngest(hub_db)
    server = start_server(ingest=held)
    install_failing_trigger(hub_db, seq=2)  # only kiosk-3's batch holds a seq 2
    acks = DeviceClient(broker, "ack-watcher", [topics.sales_ack("+")])
    sender = DeviceClient(broker, "sender", [])
    good = ["kiosk-1", "kiosk-2", "kiosk-4"]
    try:
        batches = {"kiosk-3": [1, 2, 3], **{d: [1] for d in good}}
        _queue_behind_a_held_batch(server, held, sender, batches)
        received = {}
        for _ in range(1 + len(good)):
            message = acks.messages.get(timeout=TIMEOUT)
            received[topics.device_of(message.topic)] = ack_of(message)
        assert received == {"kiosk-0": 1, **{d: 1 for d in good}}
        wait_until(lambda: server.stats.failures == 1)
        # The group got as far as kiosk-3 and was rolled back whole (kiosk-1 and kiosk-2
        # with it); then each batch went on its own.
        group = [("kiosk-1", True), ("kiosk-2", True), ("kiosk-3", True)]
        alone = [(d, False) for d in sorted(batches)]
        assert held.calls == [("kiosk-0", False), *group, *alone]
        assert Sale.select().where(Sale.device == "kiosk-3").count(hub_db) == 0
        assert Sale.select().count(hub_db) == 1 + len(good)  # each once
        remove_failing_trigger(hub_db)
        sender.publish(topics.sales_up("kiosk-3"), encode(batch("kiosk-3", [1, 2, 3])))
        assert ack_of(acks.next(topics.sales_ack("kiosk-3"))) == 3
        assert acks.messages.empty()
    finally:
        acks.close()
        sender.close()


def test_a_database_fault_in_after_status_work_is_retried_with_the_status(
    start_server: Callable[..., HubServer], broker: MosquittoBroker, tmp_path: Path
) -> None:
    """A birth's after-status work (webhook event, held commands) that meets a database fault
    runs again once the database is back: the retained birth comes again with the resync."""
    readonly = tmp_path / "readonly.db"
    sqlite3.connect(readonly).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    done: queue.Queue[int] = queue.Queue()
    calls = []

    def hook(device: str, status: DeviceStatus) -> None:
        calls.append(status.bd_seq)
        if len(calls) == 1:
            with sqlite3.connect(f"file:{readonly}?mode=ro", uri=True) as db:
                db.execute("INSERT INTO t VALUES (1)")  # a real SQLITE_READONLY
        done.put(status.bd_seq)

    start_server(after_status=[hook])
    device = DeviceClient(broker, "kiosk-1", [])
    try:
        birth = DeviceStatus(device="kiosk-1", online=True, bd_seq=3)
        device.publish(topics.status("kiosk-1"), encode(birth), retain=True)
        # Any message that succeeds tells the worker the database is back: it resyncs.
        report = Telemetry(
            device="kiosk-1", at="2024-05-01T10:00:00+00:00", firmware="1", uptime_s=1,
            outbox_depth=0, catalog_version=0, disk_free_bytes=1,
        )  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while done.empty() and time.monotonic() < deadline:
            device.publish(topics.health("kiosk-1"), encode(report))
            time.sleep(0.1)
        assert done.get(timeout=1) == 3
        assert calls[:2] == [3, 3]
    finally:
        device.close()
