"""SalesUploader over a real mosquitto to a fake hub: effectively-once sales upload.

Every test checks the hub's side: each committed sale stored once (the hub dedups by
sale id, raw receipts are counted too), in sequence order, and the outbox empty only
after the hub's acknowledgements.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.mqtt import topics
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import SalesAck, encode
from appliance.mqtt.uploader import SalesUploader, UploaderStats
from appliance.store.hub_session import SessionStore
from tests.broker import MosquittoBroker
from tests.mqtt.fake_hub import DeviceStore, FakeHub, eventually
from tests.store.crash_writer import DEVICE_ID

ROOT = Path(__file__).resolve().parents[2]
SALES = 2000
WAIT = 30.0

Device = tuple[PahoHubLink, SalesUploader]
DeviceFactory = Callable[..., Device]


class FakeClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        """The current fake time."""
        return self.t

    def now(self) -> datetime:
        """Wall time (unused by the uploader's timeouts)."""
        return datetime.now(UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A database with SALES committed sales (built once, copied per test)."""
    path = tmp_path_factory.mktemp("template") / "appliance.db"
    store = DeviceStore(path)
    # Only this template skips the fsyncs: the tests run on copies with the real pragmas.
    store.db.execute_sql("PRAGMA synchronous = OFF")
    ids = store.sell(SALES)
    store.close()
    return path, ids


@pytest.fixture
def store(template: tuple[Path, list[str]], tmp_path: Path) -> Iterator[DeviceStore]:
    """This test's copy of the appliance database, SALES rows in its outbox."""
    path = tmp_path / "data" / "appliance.db"
    path.parent.mkdir(parents=True)
    shutil.copyfile(template[0], path)
    device = DeviceStore(path)
    assert device.outbox.depth() == SALES
    yield device
    device.close()


@pytest.fixture
def sale_ids(template: tuple[Path, list[str]]) -> list[str]:
    """The ids of the committed sales, in sequence order."""
    return template[1]


@pytest.fixture
def hub(broker: MosquittoBroker) -> Iterator[FakeHub]:
    """A fake hub, online and acknowledging."""
    fake = FakeHub(broker.host, broker.port)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def device(broker: MosquittoBroker) -> Iterator[DeviceFactory]:
    """Starts link + uploader on a store; stops them (uploader first) after the test."""
    started: list[Device] = []

    def start(store: DeviceStore, **options: object) -> Device:
        link = PahoHubLink(
            DEVICE_ID, broker.host, broker.port, session_store=SessionStore(store.db)
        )
        uploader = SalesUploader(store.outbox, link, **options)  # type: ignore[arg-type]
        started.append((link, uploader))
        link.open()
        uploader.start()
        return link, uploader

    yield start
    for link, uploader in reversed(started):
        uploader.close()
        link.close()


def drained(total: int) -> Callable[[UploaderStats], bool]:
    """The hub has acknowledged every one of `total` sales."""
    return lambda stats: stats.acked_upto == total


def assert_stored_once(hub: FakeHub, sale_ids: list[str]) -> None:
    """The hub holds exactly these sales, each once, every sequence number without a gap.

    After a broker restart the order of first receipt is not a promise: paho re-sends its
    unacknowledged batches while the uploader sends what follows them, and the hub
    acknowledges only the gapless prefix either way.
    """
    with hub._cond:
        stored = [sale_id for (device, sale_id) in hub.stored if device == DEVICE_ID]
        assert hub.errors == [] and hub.bad_documents == 0
    assert sorted(stored) == sorted(sale_ids) and len(stored) == len(set(stored))
    assert sorted(hub.sequences(DEVICE_ID)) == list(range(1, len(sale_ids) + 1))
    assert hub.raw_count(DEVICE_ID) >= len(sale_ids)


def assert_stored_once_in_order(hub: FakeHub, sale_ids: list[str]) -> None:
    """The hub holds exactly these sales, first received in sequence order."""
    with hub._cond:
        stored = [sale_id for (device, sale_id) in hub.stored if device == DEVICE_ID]
        assert hub.errors == [] and hub.bad_documents == 0
    assert stored == sale_ids
    assert hub.sequences(DEVICE_ID) == list(range(1, len(sale_ids) + 1))
    assert hub.raw_count(DEVICE_ID) >= len(sale_ids)


def test_committed_sales_drain_to_the_hub_once_and_in_order(
    store: DeviceStore, hub: FakeHub, device: DeviceFactory, sale_ids: list[str]
) -> None:
    _link, uploader = device(store)
    assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
    assert store.outbox.depth() == 0
    assert_stored_once_in_order(hub, sale_ids)
    assert hub.raw_count(DEVICE_ID) == SALES  # no fault, so not even a harmless duplicate
    stats = uploader.stats()
    assert stats.published_batches == SALES // 200
    assert stats.acknowledged_rows == SALES


def test_sales_committed_while_running_go_out_on_wake(
    store: DeviceStore, hub: FakeHub, device: DeviceFactory, sale_ids: list[str]
) -> None:
    _link, uploader = device(store, poll_s=3600.0)  # only wake() can start a flush
    assert uploader.wait_for(drained(SALES), WAIT)
    more = store.sell(5, seed=1)
    uploader.wake()
    assert uploader.wait_for(drained(SALES + 5), WAIT), uploader.stats()
    assert_stored_once_in_order(hub, sale_ids + more)


def test_nothing_is_sent_while_the_hub_is_offline(
    store: DeviceStore, broker: MosquittoBroker, device: DeviceFactory, sale_ids: list[str]
) -> None:
    hub = FakeHub(broker.host, broker.port, online=False)
    hub.start()
    try:
        link, uploader = device(store)
        assert link.wait_for(lambda s: s.connected, WAIT)
        # The retained "offline" has reached the link, so the uploader knows it is connected.
        assert eventually(lambda: link.dispatcher.counts().delivered >= 1)
        uploader.wake()
        assert uploader.wait_for(lambda s: s.held_back >= 1, WAIT)
        assert uploader.stats().published_batches == 0
        assert hub.raw_count(DEVICE_ID) == 0
        assert store.outbox.depth() == SALES

        hub.set_online(True)
        assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
        assert_stored_once_in_order(hub, sale_ids)
    finally:
        hub.stop()


def test_a_broker_restart_mid_drain_loses_and_duplicates_nothing(
    store: DeviceStore,
    broker: MosquittoBroker,
    hub: FakeHub,
    device: DeviceFactory,
    sale_ids: list[str],
) -> None:
    hub.set_ack_limit(600)  # the drain stalls part-way, batches in flight
    link, uploader = device(store)
    assert uploader.wait_for(lambda s: s.acked_upto == 600, WAIT)
    assert hub.wait_for(lambda: len(hub.stored) > 600, WAIT)
    session = link.state.session

    broker.stop()
    assert link.wait_for(lambda s: not s.connected, WAIT)
    assert store.outbox.depth() == SALES - 600
    broker.start()
    assert hub.wait_for(lambda: hub.connections >= 2, WAIT)
    hub.set_ack_limit(None)

    assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
    assert link.state.session > session
    assert store.outbox.depth() == 0
    assert_stored_once(hub, sale_ids)


def test_a_restarted_appliance_resends_what_was_not_acknowledged(
    store: DeviceStore, hub: FakeHub, device: DeviceFactory, sale_ids: list[str]
) -> None:
    hub.set_acks(False)
    link, uploader = device(store, batch_size=100, max_in_flight_batches=4)
    assert hub.wait_for(lambda: len(hub.receipts) == 400, WAIT)
    assert uploader.stats().published_sales == 400  # the window is full: no more without acks
    uploader.close()  # the appliance goes away before any acknowledgement
    link.close()
    store.close()
    assert hub.raw_count(DEVICE_ID) == 400

    again = DeviceStore(store.path)  # a new process on the same database
    try:
        assert again.outbox.depth() == SALES
        hub.set_acks(True)
        _link, resumed = device(again)
        assert resumed.wait_for(drained(SALES), WAIT), resumed.stats()
        assert again.outbox.depth() == 0
    finally:
        again.close()
    assert_stored_once_in_order(hub, sale_ids)
    assert hub.raw_count(DEVICE_ID) == SALES + 400  # the first 400 twice, stored once


def test_a_missing_acknowledgement_is_resent_after_a_backoff(
    store: DeviceStore, hub: FakeHub, device: DeviceFactory, sale_ids: list[str]
) -> None:
    clock = FakeClock()
    hub.set_acks(False)
    _link, uploader = device(
        store,
        batch_size=100,
        max_in_flight_batches=2,
        clock=clock,
        ack_timeout_s=10.0,
        backoff_min_s=1.0,
        backoff_max_s=4.0,
        rng=random.Random(7),
    )
    assert hub.wait_for(lambda: len(hub.receipts) == 200, WAIT)
    assert uploader.stats().failures == 0
    clock.t += 11.0  # past the ack timeout: resend from the lowest unacknowledged, after backoff
    uploader.wake()
    assert uploader.wait_for(lambda s: s.failures == 1, WAIT)
    assert uploader.stats().published_batches == 2  # still backing off
    clock.t += 4.0
    uploader.wake()
    assert hub.wait_for(lambda: len(hub.receipts) == 400, WAIT)
    with hub._cond:
        assert [r.seq for r in hub.receipts[200:]] == list(range(1, 201))

    hub.set_acks(True)
    assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
    assert_stored_once_in_order(hub, sale_ids)


def test_an_acknowledgement_beyond_what_was_sent_deletes_nothing(
    store: DeviceStore, broker: MosquittoBroker, device: DeviceFactory
) -> None:
    hub = FakeHub(broker.host, broker.port, online=False)
    hub.start()
    try:
        link, uploader = device(store)
        assert eventually(lambda: link.dispatcher.counts().delivered >= 1)
        hub.publish_raw(topics.sales_ack(DEVICE_ID), encode(SalesAck(upto_seq=SALES)))
        assert eventually(lambda: link.dispatcher.counts().delivered >= 2)
        uploader.wake()  # queued behind the ack: once counted, the ack was handled
        assert uploader.wait_for(lambda s: s.held_back >= 1, WAIT)
        assert store.outbox.depth() == SALES
        assert uploader.stats().acked_upto == 0
    finally:
        hub.stop()


# --- kill -9 of the appliance at random moments of the drain ---


def _uploader_child(db_path: str, host: str, port: int) -> None:
    """Child process: drain the outbox until killed."""
    store = DeviceStore(Path(db_path))
    link = PahoHubLink(DEVICE_ID, host, port, session_store=SessionStore(store.db))
    uploader = SalesUploader(store.outbox, link, batch_size=50, max_in_flight_batches=4)
    link.open()
    uploader.start()
    time.sleep(300)
    os._exit(4)


def _kill_rounds(
    store: DeviceStore, broker: MosquittoBroker, hub: FakeHub, *, rounds: int, seed: int
) -> list[str]:
    """Kill a draining child `rounds` times, selling more between rounds; new sale ids."""
    rng = random.Random(seed)
    sold: list[str] = []
    args = f"{str(store.path)!r}, {broker.host!r}, {broker.port}"
    code = f"from tests.mqtt.test_uploader import _uploader_child; _uploader_child({args})"
    for round_no in range(rounds):
        sold += store.sell(rng.randint(0, 40), seed=seed + round_no)
        pending = store.outbox.depth()
        if pending == 0:
            continue
        target = hub.raw_count(DEVICE_ID) + rng.randint(1, pending)
        last = store.ledger.count()  # every document has a sequence: the last one is this
        around_ack = rng.random() < 0.3
        with (store.path.parent / "child.log").open("ab") as log:
            child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=log)
        try:
            if around_ack:
                # All stored: the kill lands while the last acknowledgement is on its way.
                assert hub.wait_for(lambda: hub.contiguous.get(DEVICE_ID) == last, WAIT)  # noqa: B023
                time.sleep(rng.uniform(0, 0.05))
            else:
                # Part-way: the kill lands between publishes of the drain.
                assert hub.wait_for(lambda: len(hub.receipts) >= target, WAIT), round_no  # noqa: B023
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(WAIT)
    return sold


def test_killing_the_appliance_mid_drain_loses_and_duplicates_nothing(
    store: DeviceStore,
    broker: MosquittoBroker,
    hub: FakeHub,
    device: DeviceFactory,
    sale_ids: list[str],
) -> None:
    more = _kill_rounds(store, broker, hub, rounds=50, seed=11)
    device(store)  # the appliance comes back for good and finishes the drain
    assert hub.wait_for(lambda: hub.contiguous.get(DEVICE_ID) == SALES + len(more), WAIT)
    assert eventually(lambda: store.outbox.depth() == 0)
    assert_stored_once_in_order(hub, sale_ids + more)


@pytest.mark.soak
def test_soak_fifty_kills_of_the_appliance_mid_drain(
    store: DeviceStore,
    broker: MosquittoBroker,
    hub: FakeHub,
    device: DeviceFactory,
    sale_ids: list[str],
) -> None:
    more = _kill_rounds(store, broker, hub, rounds=200, seed=23)
    device(store)
    assert hub.wait_for(lambda: hub.contiguous.get(DEVICE_ID) == SALES + len(more), 120.0)
    assert eventually(lambda: store.outbox.depth() == 0, 60.0)
    assert_stored_once_in_order(hub, sale_ids + more)
