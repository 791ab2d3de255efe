"""The hub's own database failing under live device traffic: full, stopped, restarted.

The device is the appliance's real PahoHubLink + SalesUploader on its own database; the
hub is the real HubServer; both talk through a real mosquitto. SQLite fills up on a small
tmpfs (the tests run as root); PostgreSQL is a cluster the test started and stops by its
PID. Each test checks that nothing was acknowledged beyond what was committed, no sale was
torn or lost, the fault was named once without a traceback, the worker's threads live on,
and that once the fault is cleared every sale is stored once and acknowledged, with no
restart of either side: the device's own resend schedule brings them back.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from peewee import Database

from appliance.core.clock import SystemClock
from appliance.core.events import EventBus
from appliance.mqtt import topics
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import DeviceStatus, SalesAck, SalesBatch, decode, encode
from appliance.mqtt.uploader import SalesUploader
from appliance.store.hub_session import SessionStore
from hub.cli import cli
from hub.db import open_hub_database
from hub.ingest import IngestResult, SalesIngest
from hub.migrations import migrate
from hub.models import Device, Sale
from hub.server import BrokerEndpoint, HubServer
from hub.storage_faults import StorageFault
from tests import real_parts
from tests.broker import MosquittoBroker
from tests.hub.test_catalog import HEADER, STORE, row
from tests.hub.test_ingest import batch
from tests.hub.test_server import DeviceClient
from tests.mqtt.fake_hub import DeviceStore
from tests.postgres import PostgresCluster, running_postgres

DEVICE = "till-db"
WAIT = 30.0
BEFORE = datetime(2030, 1, 1, 9, 0)  # the hub's clock before the fault (naive UTC, as stored)
AFTER = datetime(2030, 1, 1, 10, 0)  # ... and once it is cleared


# --- the rig ----------------------------------------------------------------------------


class PhaseClock(SystemClock):
    """The real monotonic clock, with a wall time the test sets: it stamps sales by phase."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        """The wall time the test set."""
        return self.at.replace(tzinfo=UTC)


class RecordingIngest:
    """The hub's real SalesIngest, remembering the sequences of each batch it starts."""

    def __init__(self, ingest: SalesIngest) -> None:
        self._ingest = ingest
        self.started: list[list[int]] = []

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        """Note the batch, then store it through the real ingest."""
        self.started.append([e.seq for e in batch.sales])
        return self._ingest.ingest(device, batch)


class AckWatch:
    """Every sales acknowledgement the hub publishes to the device, seen from the broker."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._client = DeviceClient(broker, "ack-watch", [topics.sales_ack(DEVICE)])
        self._highest = 0

    def highest(self) -> int:
        """The highest acknowledgement published so far."""
        while True:
            try:
                message = self._client.messages.get_nowait()
            except queue.Empty:
                return self._highest
            self._highest = max(self._highest, decode(message.payload, SalesAck).upto_seq)

    def close(self) -> None:
        """Disconnect."""
        self._client.close()


class Till:
    """The appliance's real outbox, link and uploader, resending on its own schedule."""

    def __init__(self, path: Path, broker: MosquittoBroker) -> None:
        self.store = DeviceStore(path)
        # Only this (selling) connection skips fsyncs; the uploader's keeps the real pragmas.
        self.store.db.execute_sql("PRAGMA synchronous = OFF")
        self.sold: list[str] = []
        self.link = PahoHubLink(
            DEVICE,
            broker.host,
            broker.port,
            bus=EventBus(),
            session_store=SessionStore(self.store.db),
            reconnect_min_s=1,
            reconnect_max_s=1,
        )
        # A short ack timeout and backoff: the device resends every second or so while the
        # hub's database is down, as it would every minute or so in the field.
        self.uploader = SalesUploader(
            self.store.outbox,
            self.link,
            batch_size=10,
            ack_timeout_s=1.0,
            backoff_min_s=0.1,
            backoff_max_s=1.0,
            poll_s=0.5,
            rng=random.Random(7),
        )
        self.uploader.start()
        self.link.open()
        assert self.link.wait_for(lambda state: state.ready, WAIT), self.link.state

    def sell(self, count: int) -> None:
        """Commit `count` more sales into the outbox and wake the uploader."""
        self.sold += self.store.sell(count, seed=len(self.sold))
        self.uploader.wake()

    def wait_acked(self, upto: int) -> None:
        """Wait until the hub has acknowledged every sale up to `upto`."""
        assert self.uploader.wait_for(lambda s: s.acked_upto >= upto, WAIT), (
            f"acknowledged {self.uploader.stats()}, not {upto}"
        )

    def kept(self) -> int:
        """The lowest sequence still in the outbox minus one: what the device dropped."""
        oldest = self.store.outbox.oldest_sequence()
        return len(self.sold) if oldest is None else oldest - 1

    def close(self) -> None:
        """Uploader first (it must not publish into a closing link), then the link."""
        self.uploader.close()
        self.link.close()
        self.store.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll observable state until `condition()` holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:g} s: {what}")
        time.sleep(0.02)


def start_hub(db: Database, broker: MosquittoBroker, clock: PhaseClock, **kw: object) -> HubServer:
    """The real hub worker on the test broker."""
    server = HubServer(
        db, BrokerEndpoint(broker.host, broker.port), worker_id="db", clock=clock, **kw
    )
    server.start(timeout=WAIT)
    return server


def assert_serving(server: HubServer) -> None:
    """The worker thread and paho's network thread are alive, and the worker subscribed."""
    alive = {t.name for t in threading.enumerate() if t.is_alive()}
    assert f"hub-worker-{server.worker_id}" in alive
    assert f"paho-mqtt-client-{server.client_id}" in alive
    assert server.wait_ready(WAIT)


def hub_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    """The hub's own log records at `level` or above."""
    return [r for r in caplog.records if r.name.startswith("hub.") and r.levelno >= level]


def assert_named_once(caplog: pytest.LogCaptureFixture, fault: StorageFault) -> None:
    """One error names the fault, with no traceback, however many messages failed."""
    errors = hub_logs(caplog, logging.ERROR)
    assert [fault.value in r.getMessage() for r in errors] == [True], [
        r.getMessage() for r in errors
    ]
    assert not [r for r in hub_logs(caplog, logging.DEBUG) if r.exc_info], "a traceback"


def stored(db: Database, received_at: datetime | None = None) -> list[tuple[int, str]]:
    """(seq, sale id) of the device's stored sales, optionally only those stored at a time."""
    query = Sale.select(Sale.seq, Sale.sale_id).where(Sale.device == DEVICE)
    if received_at is not None:
        query = query.where(Sale.received_at == received_at)
    return [(int(s), str(i)) for s, i in query.order_by(Sale.seq).tuples().execute(db)]


def assert_all_stored_once(db: Database, till: Till) -> None:
    """The hub holds each of the device's sales once, in order, and the outbox is empty."""
    assert stored(db) == list(enumerate(till.sold, start=1))
    assert till.store.outbox.depth() == 0


# --- SQLite: the disk fills up -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs for the hub's database, unmounted after the test."""
    if os.geteuid() != 0:
        real_parts.cannot_run("filling a file system of its own needs root (mount -t tmpfs)")
    mount = real_parts.binary("mount", "mount")
    umount = real_parts.binary("umount", "mount")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run([mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        done = subprocess.run([umount, str(where)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run([umount, "--lazy", str(where)], check=True)
            pytest.fail(f"the small disk was still in use: {done.stderr.decode()}")


def fill(disk: Path) -> Path:
    """Write a file until the file system has no block left; returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return filler


def test_a_full_sqlite_disk_acks_nothing_new_and_recovers_once_space_is_freed(
    small_disk: Path, tmp_path: Path, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    db = open_hub_database(f"sqlite:///{small_disk / 'hub.db'}")
    migrate(db)
    clock = PhaseClock(BEFORE)
    server = start_hub(db, broker, clock)
    acks = AckWatch(broker)
    till = Till(tmp_path / "till" / "appliance.db", broker)
    try:
        till.sell(20)
        till.wait_acked(20)
        # An empty WAL, then a full disk: the next write must grow the WAL and cannot.
        assert db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        filler = fill(small_disk)
        till.sell(20)
        wait_until(
            lambda: server.stats.failures >= 3 and till.uploader.stats().failures >= 2,
            "the hub failing the device's batch and its resends",
        )
        assert server.storage_fault is StorageFault.FULL
        assert acks.highest() == 20
        assert stored(db) == list(enumerate(till.sold[:20], start=1))
        assert till.kept() == 20  # the unstored sales stay in the device's outbox
        assert_named_once(caplog, StorageFault.FULL)
        assert_serving(server)

        filler.unlink()
        till.wait_acked(40)
        assert_all_stored_once(db, till)
        assert server.storage_fault is None
        assert_serving(server)
        assert_named_once(caplog, StorageFault.FULL)
        assert any("works again" in r.getMessage() for r in hub_logs(caplog, logging.WARNING))
    finally:
        till.close()
        acks.close()
        server.stop()
        db.close()


# --- PostgreSQL: stopped mid-ingest, restarted ---------------------------------------


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresCluster]:
    """A cluster of this test's own, which it may stop and start again."""
    with running_postgres(tmp_path / "pg") as cluster:
        yield cluster


class HeldInsert:
    """Makes the hub's insert of one sale wait on an advisory lock a session of ours holds."""

    def __init__(self, url: str, seq: int) -> None:
        import psycopg2  # present once running_postgres has checked for it

        self.seq = seq
        self._session = psycopg2.connect(url)
        self._session.autocommit = True
        with self._session.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION hold_sale() RETURNS trigger AS $$ BEGIN "
                "PERFORM pg_advisory_xact_lock(7); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER hold_sale BEFORE INSERT ON sale FOR EACH ROW "
                f"WHEN (NEW.seq = {int(seq)}) EXECUTE FUNCTION hold_sale()"
            )
            cursor.execute("SELECT pg_advisory_lock(7)")

    def waited_on(self) -> bool:
        """True once a session (the hub's, mid-transaction) waits for the lock."""
        with self._session.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            row = cursor.fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        """Close our session (dead or not); the lock goes with it, the trigger stays."""
        self._session.close()


def birth_while_down(server: HubServer, broker: MosquittoBroker, device: str) -> None:
    """Publish a device's retained birth and wait until the hub has handled (failed) it."""
    sender = DeviceClient(broker, device, [])
    try:
        sender.publish(
            topics.status(device),
            encode(DeviceStatus(device=device, online=True, bd_seq=1)),
            retain=True,
        )
        # The worker handles one device's messages in order: once the marker behind the
        # birth is counted, the birth has been tried.
        unhandled = server.stats.unhandled
        sender.publish(f"{topics.device_root(device)}/up/marker", b"{}")
        wait_until(lambda: server.stats.unhandled > unhandled, "the birth handled")
    finally:
        sender.close()


def assert_acked_only_what_was_committed(
    db: Database, till: Till, acked: int, dropped: int, open_batch: list[int]
) -> None:
    """Acks and the device's deletions during the outage stayed within the sales committed
    before the stop (stamped BEFORE), a contiguous prefix without the open transaction's."""
    before = stored(db, BEFORE)
    assert before == list(enumerate(till.sold[: len(before)], start=1))
    assert acked <= len(before)
    assert dropped <= len(before)
    assert not set(open_batch) & {seq for seq, _ in before}


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGQUIT], ids=["fast", "immediate"])
def test_postgresql_stopped_mid_ingest_loses_nothing_and_the_hub_recovers_on_its_return(
    how: signal.Signals,
    postgres: PostgresCluster,
    tmp_path: Path,
    broker: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    url = postgres.new_database()
    db = open_hub_database(url)
    migrate(db)
    held = HeldInsert(url, seq=95)
    clock = PhaseClock(BEFORE)
    ingest = RecordingIngest(SalesIngest(db, clock=clock))
    server = start_hub(db, broker, clock, ingest=ingest)
    acks = AckWatch(broker)
    till = Till(tmp_path / "till" / "appliance.db", broker)
    try:
        till.sell(200)
        wait_until(held.waited_on, "the hub's transaction inserting sale 95")
        open_batch = ingest.started[-1]
        assert held.seq in open_batch
        postgres.stop(how)  # by its PID, with the hub's transaction open
        held.close()
        wait_until(
            lambda: server.stats.failures >= 3 and till.uploader.stats().failures >= 2,
            "the hub failing the device's batches and its resends",
        )
        birth_while_down(server, broker, "till-late")
        assert server.storage_fault is StorageFault.UNREACHABLE
        assert_named_once(caplog, StorageFault.UNREACHABLE)
        assert_serving(server)
        acked_while_down, dropped_while_down = acks.highest(), till.kept()

        clock.at = AFTER
        postgres.launch()
        till.wait_acked(200)
        check = open_hub_database(url)
        try:
            assert_acked_only_what_was_committed(
                check, till, acked_while_down, dropped_while_down, open_batch
            )
            assert_all_stored_once(check, till)
            late = Device.select().where((Device.id == "till-late") & Device.online)
            wait_until(lambda: late.count(check) == 1, "the birth sent during the outage stored")
        finally:
            check.close()
        assert server.storage_fault is None
        assert_serving(server)
        assert_named_once(caplog, StorageFault.UNREACHABLE)
    finally:
        till.close()
        acks.close()
        server.stop()
        db.close()


def test_a_postgresql_restart_between_batches_costs_the_device_nothing(
    postgres: PostgresCluster, broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub")
    db = open_hub_database(postgres.new_database())
    migrate(db)
    server = start_hub(db, broker, PhaseClock(BEFORE))
    device = DeviceClient(broker, DEVICE, [topics.sales_ack(DEVICE)])
    try:
        device.publish(topics.sales_up(DEVICE), encode(batch(DEVICE, [1, 2, 3])))
        assert decode(device.next(topics.sales_ack(DEVICE)).payload, SalesAck).upto_seq == 3
        postgres.stop()  # the worker's connection dies while it is idle
        postgres.launch()
        # Sent once: without a reconnect the hub would fail it and the device wait its
        # ack timeout; with it, the first attempt is acknowledged.
        device.publish(topics.sales_up(DEVICE), encode(batch(DEVICE, [4, 5])))
        assert decode(device.next(topics.sales_ack(DEVICE)).payload, SalesAck).upto_seq == 5
        assert (server.stats.failures, server.stats.db_reconnects) == (0, 1)
        assert hub_logs(caplog, logging.ERROR) == []
        assert server.storage_fault is None
    finally:
        device.close()
        server.stop()
        db.close()


def test_a_command_on_a_full_database_says_so_in_one_line(small_disk: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{small_disk / 'hub.db'}"
    db = open_hub_database(url)
    migrate(db)
    assert db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    fill(small_disk)
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text(HEADER + row(1) + row(2))
    # Held open, as a running `serve` holds it: the last connection to close would remove
    # the WAL files, and a full disk could not create them again (the open itself fails).
    try:
        result = CliRunner().invoke(
            cli,
            ["catalog", "import", str(csv_file), "--store", STORE, "--db", url, "--no-publish"],
        )
    finally:
        db.close()
    assert result.exit_code == 1
    assert "Error: database full (database or disk is full)" in result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback
