"""Several `appliance-hub serve` workers on one PostgreSQL database, sharing the `$share`
subscriptions, while many devices drain their outboxes; one worker is SIGKILLed mid-drain.

The devices are raw paho clients that behave as an appliance's uploader does: a few batches
in flight, the outbox advanced only by an ack, and everything from the last ack sent again
when acks stop coming (the killed worker's queued batches die with it). In the end every
sale is in the database exactly once, each device's progress is complete, and every
device was acknowledged to its last sale.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from peewee import Database, fn

from appliance.mqtt import topics
from appliance.mqtt.payloads import HubState, SalesAck, decode, encode
from hub.db import open_hub_database
from hub.migrations import migrate
from hub.models import DeviceProgress, Sale
from hub.worker_stats import workers as worker_views
from tests.broker import MosquittoBroker
from tests.hub.test_ingest import batch
from tests.postgres import PostgresCluster

START_S = 30.0  # bounds on waiting, never asserted as timings
DRAIN_S = 90.0
STOP_S = 10.0
PUBLISHERS = 4  # paho clients the simulated devices share


@dataclass(frozen=True, slots=True)
class Load:
    """The fleet: devices, sales each, sales per batch, batches in flight, resend delay."""

    devices: int
    sales: int
    per_batch: int = 5
    in_flight: int = 2
    resend_s: float = 1.0  # no new ack for this long: send again from the last ack

    @property
    def total(self) -> int:
        """Sales the hub must end up holding."""
        return self.devices * self.sales


@dataclass(slots=True)
class _Till:
    name: str
    acked: int = 0  # the highest seq the hub acknowledged
    sent: int = 0  # the highest seq sent since the last (re)start
    progress_at: float = 0.0  # monotonic time of the last ack that moved `acked`
    restarts: int = 0


class SimulatedDevices:
    """Many devices' uploaders on a few paho clients; one client receives every ack."""

    def __init__(self, broker: MosquittoBroker, load: Load) -> None:
        self.load = load
        self._lock = threading.Lock()
        self._tills = {f"till-{n:03d}": _Till(f"till-{n:03d}") for n in range(load.devices)}
        self._payloads: dict[tuple[str, int], bytes] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.online: set[str] = set()
        self.unexpected_acks = 0
        self._listener = self._client("acks", broker)
        self._publishers = [self._client(f"pub-{k}", broker) for k in range(PUBLISHERS)]
        subscribed = threading.Event()
        self._listener.on_subscribe = lambda *_args: subscribed.set()
        self._listener.on_message = self._on_message
        self._listener.subscribe([(topics.sales_ack("+"), 1), (topics.HUB_STATE, 1)])
        assert subscribed.wait(START_S), "no SUBACK"
        self._thread = threading.Thread(target=self._pump, name="devices", daemon=True)

    @staticmethod
    def _client(name: str, broker: MosquittoBroker) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        client.connect(broker.host, broker.port, keepalive=30)
        client.loop_start()
        return client

    def close(self) -> None:
        """Stop sending and disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(STOP_S)
        for client in (*self._publishers, self._listener):
            client.disconnect()
            client.loop_stop()

    def start(self) -> None:
        """Begin draining every device's outbox."""
        now = time.monotonic()
        for till in self._tills.values():
            till.progress_at = now
        self._thread.start()

    def acked(self) -> dict[str, int]:
        """Each device's highest acknowledged seq, right now."""
        with self._lock:
            return {name: till.acked for name, till in self._tills.items()}

    def acked_sales(self) -> int:
        """Sales acknowledged so far, over all devices."""
        return sum(self.acked().values())

    def restarts(self) -> int:
        """Times a device sent again from its last ack."""
        with self._lock:
            return sum(till.restarts for till in self._tills.values())

    def wait(self, condition: Any, timeout: float) -> bool:
        """Poll `condition()` until it holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- the devices' thread -----------------------------------------------------------

    def _pump(self) -> None:
        load = self.load
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            sends: list[tuple[int, str, int]] = []
            with self._lock:
                for k, till in enumerate(self._tills.values()):
                    if till.acked >= load.sales:
                        continue
                    if now - till.progress_at > load.resend_s:
                        # As the uploader does when acks stop: from the lowest unacked row.
                        till.sent, till.progress_at = till.acked, now
                        till.restarts += 1
                    while till.sent < load.sales and (
                        till.sent - till.acked < load.in_flight * load.per_batch
                    ):
                        sends.append((k, till.name, till.sent + 1))
                        till.sent = min(load.sales, till.sent + load.per_batch)
            for k, name, first in sends:
                client = self._publishers[k % PUBLISHERS]
                client.publish(topics.sales_up(name), self._payload(name, first), qos=1)

    def _payload(self, name: str, first: int) -> bytes:
        """The batch starting at `first`: the same bytes every time, as an outbox resends."""
        key = (name, first)
        if key not in self._payloads:
            last = min(self.load.sales, first + self.load.per_batch - 1)
            self._payloads[key] = encode(batch(name, range(first, last + 1)))
        return self._payloads[key]

    # --- the listener's network thread ---------------------------------------------------

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == topics.HUB_STATE:
            state = decode(bytes(message.payload), HubState)
            if state.online:
                with self._lock:
                    self.online.add(state.hub_id)
            return
        name = topics.device_of(message.topic) or ""
        upto = decode(bytes(message.payload), SalesAck).upto_seq
        with self._lock:
            till = self._tills.get(name)
            if till is None or upto <= till.acked:
                self.unexpected_acks += 1  # a duplicate's ack, or one below a gap
                return
            till.acked = upto
            till.sent = max(till.sent, upto)
            till.progress_at = time.monotonic()
        self._wake.set()


@pytest.fixture
def devices_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto that queues enough for many devices' batches (stopped after the test)."""
    broker = MosquittoBroker(tmp_path / "broker", extra_config="max_inflight_messages 100\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def pg_hub(postgres: PostgresCluster) -> Iterator[tuple[str, Database]]:
    """A fresh PostgreSQL hub database, migrated once as a deployment does: (URL, db)."""
    url = postgres.new_database()
    db = open_hub_database(url)
    migrate(db)
    yield url, db
    db.close()


def start_worker(
    url: str, broker: MosquittoBroker, worker_id: str, logs: Path
) -> subprocess.Popen[bytes]:
    """`appliance-hub serve` as a child process (its output kept in `logs`)."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{worker_id}.log").open("wb") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "hub.cli_serve", "--db", url),
                *("--host", broker.host, "--port", str(broker.port)),
                *("--worker-id", worker_id, "--log-level", "WARNING"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_workers(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM the running workers by PID (they save their counters), and reap them all."""
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_S)


def logs_of(logs: Path) -> str:
    """The workers' logs, for a failure message."""
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(logs.glob("*.log")))


def assert_held_once(db: Database, load: Load) -> None:
    """Every sale of every device exactly once, and every device's progress complete."""
    cursor = db.execute_sql(
        "SELECT COUNT(*), (SELECT COUNT(*) FROM (SELECT DISTINCT device, seq FROM sale) AS p)"
        " FROM sale"
    )
    assert tuple(cursor.fetchone()) == (load.total, load.total)
    per_device = (
        Sale.select(Sale.device, fn.MIN(Sale.seq), fn.MAX(Sale.seq), fn.COUNT(Sale.id))
        .group_by(Sale.device)
        .tuples()
        .execute(db)
    )
    assert (
        sorted((int(lo), int(hi), int(n)) for _, lo, hi, n in per_device)
        == [(1, load.sales, load.sales)] * load.devices
    )
    progress = DeviceProgress.select(DeviceProgress.upto_seq).tuples().execute(db)
    assert sorted(int(upto) for (upto,) in progress) == [load.sales] * load.devices


def assert_acks_follow_commits(db: Database, acked: dict[str, int]) -> None:
    """What any device saw acknowledged is in the database (an ack never runs ahead)."""
    for name, upto in acked.items():
        stored = (
            Sale.select(fn.COUNT(Sale.id))
            .where((Sale.device == name) & (Sale.seq <= upto))
            .scalar(db)
        )
        assert stored == upto, (name, upto, stored)


def drain_with_kills(
    url: str,
    db: Database,
    broker: MosquittoBroker,
    logs: Path,
    *,
    workers: int,
    load: Load,
    kills: int,
    seed: int,
) -> None:
    """`workers` workers drain `load`; `kills` times one is SIGKILLed mid-drain (and, but the
    last time, started again), then the survivors finish the drain."""
    rng = random.Random(seed)
    devices = SimulatedDevices(broker, load)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in range(1, workers + 1):
            processes[f"w{n}"] = start_worker(url, broker, f"w{n}", logs)
        assert devices.wait(lambda: set(processes) <= devices.online, START_S), logs_of(logs)
        devices.start()
        for k in range(1, kills + 1):
            mark = load.total * k // (kills + 1)
            reached = devices.wait(lambda mark=mark: devices.acked_sales() >= mark, DRAIN_S)
            assert reached, logs_of(logs)
            victim = rng.choice(sorted(name for name, p in processes.items() if p.poll() is None))
            processes[victim].kill()  # SIGKILL by PID: its queue and transaction die with it
            processes[victim].wait(timeout=STOP_S)
            assert_acks_follow_commits(db, devices.acked())
            if k < kills:
                restarted = f"{victim}r{k}"
                processes[restarted] = start_worker(url, broker, restarted, logs)
        done = devices.wait(lambda: devices.acked_sales() == load.total, DRAIN_S)
        assert done, (devices.acked_sales(), load.total, devices.restarts(), logs_of(logs))
    finally:
        devices.close()
        stop_workers(processes)
    import os

    if os.environ.get("SHOW_RESTARTS"):
        print("RESTARTS", devices.restarts(), "UNEXPECTED", devices.unexpected_acks)
    assert devices.acked() == {name: load.sales for name in devices.acked()}
    assert_held_once(db, load)
    # The broker shared the devices' batches among the workers: each survivor stored some.
    survivors = {name for name, p in processes.items() if p.returncode == 0}
    now = datetime.now(UTC)
    batches = {v.worker_id: v.counters.get("batches", 0) for v in worker_views(db, now)}
    assert survivors and all(batches.get(name, 0) > 0 for name in survivors), batches


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_postgresql_and_a_killed_one_loses_and_duplicates_nothing(
    workers: int,
    pg_hub: tuple[str, Database],
    devices_broker: MosquittoBroker,
    tmp_path: Path,
) -> None:
    url, db = pg_hub
    load = Load(devices=40, sales=60)
    drain_with_kills(
        url, db, devices_broker, tmp_path / "logs", workers=workers, load=load, kills=1, seed=7
    )


@pytest.mark.soak
@pytest.mark.parametrize("workers", [2, 4])
def test_workers_killed_again_and_again_lose_and_duplicate_nothing(
    workers: int,
    pg_hub: tuple[str, Database],
    devices_broker: MosquittoBroker,
    tmp_path: Path,
) -> None:
    url, db = pg_hub
    load = Load(devices=200, sales=200, per_batch=10)
    drain_with_kills(
        url,
        db,
        devices_broker,
        tmp_path / "logs",
        workers=workers,
        load=load,
        kills=6,
        seed=int(time.time()),
    )
