"""Network faults mid-batch between the real device link and the real hub, through mosquitto.

The device side is the appliance's own PahoHubLink + SalesUploader on a real appliance
database with thousands of sales in its outbox; it reaches the broker only through a
FaultProxy (tests/proxy.py). The hub is the real HubServer with its SQLite database,
connected to the broker directly (or, in one test, through a second proxy). The proxy
drops the device's TCP connection at random byte offsets (so the cut splits a SalesBatch
PUBLISH), stalls it past the uploader's ack timeout, or blackholes it until the link
notices; the hub's connection is cut mid-batch too. Every test ends with the hub holding
exactly the device's sales (same ids, seq 1..N, once each) and the device's outbox empty,
and checks on the way that the device never dropped a row the hub had not committed.

paho resends its own unacknowledged QoS 1 publishes after a reconnect, so cuts on the
device's side alone are survived even by an uploader that never rewinds; the stall (ack
timeout) and the hub-side cut (the broker accepts batches nobody receives) are the tests
that need the uploader's rewind to the lowest unacknowledged row.

Random choices come from one seeded RNG; set SYNC_FAULT_SEED to replay a failure.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from peewee import Database

from appliance.core.events import EventBus
from appliance.mqtt.link import HubLinkChanged, LinkState, PahoHubLink
from appliance.mqtt.payloads import SalesBatch
from appliance.mqtt.uploader import SalesUploader, UploaderStats
from appliance.store.hub_session import SessionStore
from hub.db import open_hub_database
from hub.ingest import IngestResult, SalesIngest
from hub.migrations import migrate
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.mqtt.fake_hub import DeviceStore
from tests.proxy import PUBLISH, FaultProxy, MqttFraming

DEVICE = "till-faults"
SALES = 3000
BATCH = 200
WAIT = 30.0
DEFAULT_SEED = 20240613
NO_TIMEOUT = 600.0  # an ack timeout no wait in this file reaches
# A sales batch of BATCH sales is ~180 KB on the wire; anything this big is one.
SALES_BATCH_MIN_BYTES = 10_000


def fault_seed(default: int) -> int:
    """The RNG seed: SYNC_FAULT_SEED when set (to replay a failure), else `default`."""
    return int(os.environ.get("SYNC_FAULT_SEED") or default)


# --- the rig: broker, proxy, hub, device ----------------------------------------------


class CountingIngest:
    """The hub's real SalesIngest, recording every result (duplicates prove resends)."""

    def __init__(self, ingest: SalesIngest) -> None:
        self._ingest = ingest
        self._lock = threading.Lock()
        self.results: list[IngestResult] = []

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        """Store through the real ingest and remember what it did."""
        result = self._ingest.ingest(device, batch)
        with self._lock:
            self.results.append(result)
        return result

    def duplicates(self) -> int:
        """Sales the hub received again after storing them."""
        with self._lock:
            return sum(r.duplicates for r in self.results)

    def conflicts(self) -> int:
        """Sequences that arrived with a different sale id than the one stored."""
        with self._lock:
            return sum(len(r.conflicts) for r in self.results)


@dataclass
class Rig:
    """Everything one test runs; the device half is started by `start_device`."""

    tmp: Path
    broker: MosquittoBroker
    proxy: FaultProxy  # in front of the device
    hub_proxy: FaultProxy  # in front of the hub, when a test asks for it
    hub_db: Database
    ingest: CountingIngest
    store: DeviceStore
    sold: list[str]
    bus: EventBus = field(default_factory=EventBus)
    events: list[HubLinkChanged] = field(default_factory=list)
    hub: HubServer | None = None
    link: PahoHubLink | None = None
    uploader: SalesUploader | None = None

    def start_hub(self, *, behind_proxy: bool = False) -> HubServer:
        """The real hub worker, on the broker directly or through `hub_proxy`."""
        where = self.hub_proxy if behind_proxy else self.broker
        self.hub = HubServer(
            self.hub_db,
            BrokerEndpoint(where.host, where.port),
            worker_id="faults",
            ingest=self.ingest,
        )
        self.hub.start(timeout=10.0)
        return self.hub

    def start_device(
        self, *, keepalive: int, ack_timeout_s: float, seed: int, poll_s: float = 5.0
    ) -> tuple[PahoHubLink, SalesUploader]:
        """The appliance's link and uploader, connecting through the proxy."""
        self.bus.subscribe(HubLinkChanged, self.events.append)
        link = PahoHubLink(
            DEVICE,
            self.proxy.host,
            self.proxy.port,
            bus=self.bus,
            session_store=SessionStore(self.store.db),
            keepalive=keepalive,
            reconnect_min_s=1,
            reconnect_max_s=1,
        )
        uploader = SalesUploader(
            self.store.outbox,
            link,
            batch_size=BATCH,
            ack_timeout_s=ack_timeout_s,
            backoff_min_s=0.1,
            backoff_max_s=1.0,
            poll_s=poll_s,
            rng=random.Random(seed),
        )
        self.link, self.uploader = link, uploader
        uploader.start()
        link.open()
        return link, uploader

    def stop_device(self) -> None:
        """Uploader first (it must not publish into a closing link), then the link."""
        if self.uploader is not None:
            self.uploader.close()
        if self.link is not None:
            self.link.close()

    def hub_rows(self) -> list[tuple[int, str]]:
        """The hub's (seq, sale id) rows for the device, in seq order."""
        cursor = self.hub_db.execute_sql(
            "SELECT seq, sale_id FROM sale WHERE device = ? ORDER BY seq", (DEVICE,)
        )
        return [(int(seq), str(sale_id)) for seq, sale_id in cursor]

    def hub_progress(self) -> int:
        """The hub's committed contiguous sequence for the device."""
        row = self.hub_db.execute_sql(
            "SELECT upto_seq FROM device_progress WHERE device = ?", (DEVICE,)
        ).fetchone()
        return int(row[0]) if row else 0

    def hub_device_online(self) -> bool | None:
        """The hub's view of the device's online status (None: never heard of it)."""
        row = self.hub_db.execute_sql(
            "SELECT online FROM device WHERE id = ?", (DEVICE,)
        ).fetchone()
        return bool(row[0]) if row else None

    def drain_events(self, timeout: float = 0.05) -> None:
        """Deliver the link events queued on the bus (this thread is the bus's main thread)."""
        self.bus.wait(timeout)
        self.bus.drain()

    def wait_event(self, predicate: Callable[[HubLinkChanged], bool], timeout: float) -> bool:
        """Wait until some delivered HubLinkChanged satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while not any(predicate(e) for e in self.events):
            if time.monotonic() > deadline:
                return False
            self.drain_events(0.1)
        return True


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An appliance database with SALES committed sales, built once and copied per test."""
    path = tmp_path_factory.mktemp("faults-template") / "appliance.db"
    store = DeviceStore(path)
    # Only the template skips fsyncs; the tests run on copies with the real pragmas.
    store.db.execute_sql("PRAGMA synchronous = OFF")
    ids = store.sell(SALES, seed=13)
    store.close()
    return path, ids


@pytest.fixture
def rig(tmp_path: Path, template: tuple[Path, list[str]]) -> Iterator[Rig]:
    """mosquitto, proxies in front of it, the hub's database and a copy of the device db."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    proxy = FaultProxy(broker.host, broker.port)
    hub_proxy = FaultProxy(broker.host, broker.port)
    hub_db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(hub_db)
    ingest = CountingIngest(SalesIngest(hub_db))
    path = tmp_path / "device" / "appliance.db"
    path.parent.mkdir()
    shutil.copyfile(template[0], path)
    store = DeviceStore(path)
    assert store.outbox.depth() == SALES
    running = Rig(tmp_path, broker, proxy, hub_proxy, hub_db, ingest, store, list(template[1]))
    try:
        yield running
    finally:
        running.stop_device()
        if running.hub is not None:
            running.hub.stop()
        proxy.close()
        hub_proxy.close()
        broker.stop()
        store.close()
        hub_db.close()


# --- checks -----------------------------------------------------------------------------


def drained(total: int) -> Callable[[UploaderStats], bool]:
    """The hub has acknowledged every one of `total` sales to the uploader."""
    return lambda stats: stats.acked_upto == total


def assert_nothing_lost_so_far(rig: Rig, why: str) -> None:
    """Mid-run: the hub holds only the device's sales, and every row the device dropped."""
    # Read in this order: the device's deletions only follow the hub's commits, and the
    # hub's progress only follows its rows, so later reads can only see more.
    oldest = rig.store.outbox.oldest_sequence()
    dropped_upto = len(rig.sold) if oldest is None else oldest - 1
    progress = rig.hub_progress()
    rows = rig.hub_rows()
    wrong = [(seq, sid) for seq, sid in rows if rig.sold[seq - 1] != sid]
    assert not wrong, f"{why}: the hub stored other sales than the device's: {wrong[:5]}"
    assert len({sid for _, sid in rows}) == len(rows), f"{why}: a sale stored twice"
    stored = {seq for seq, _ in rows}
    missing = [seq for seq in range(1, dropped_upto + 1) if seq not in stored]
    assert not missing, (
        f"{why}: the device dropped outbox rows the hub never committed: {missing[:10]}"
    )
    assert all(seq in stored for seq in range(1, progress + 1)), (
        f"{why}: the hub's progress {progress} covers sequences it does not hold"
    )


def assert_exactly_the_device_sales(rig: Rig, why: str) -> None:
    """End state: the hub holds each of the device's sales once, in order; outbox empty."""
    rows = rig.hub_rows()
    total = len(rig.sold)
    assert len(rows) == total, f"{why}: hub has {len(rows)} of {total} sales"
    assert len({sid for _, sid in rows}) == total, f"{why}: duplicate sale ids at the hub"
    assert [seq for seq, _ in rows] == list(range(1, total + 1)), f"{why}: seq not 1..N"
    assert [sid for _, sid in rows] == rig.sold, f"{why}: not the device's sales in order"
    assert rig.hub_progress() == total, f"{why}: hub progress is not {total}"
    assert rig.store.outbox.depth() == 0, f"{why}: the device still holds unacknowledged rows"
    assert rig.ingest.conflicts() == 0, f"{why}: the hub saw conflicting sequences"


def wait_ready_after(link: PahoHubLink, session: int, why: str) -> LinkState:
    """Wait for a new session, connected with the hub online."""
    assert link.wait_for(lambda s: s.ready and s.session > session, WAIT), (
        f"{why}: the link did not come back ({link.state})"
    )
    return link.state


# --- the proxy itself (fast, against an echo server) -----------------------------------


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    received: list[bytes]


class _Echo(socketserver.BaseRequestHandler):
    server: _EchoServer

    def handle(self) -> None:
        got = b""
        try:
            while data := self.request.recv(65536):
                got += data
                self.request.sendall(data)
        except ConnectionError:
            pass  # the proxy reset us: that is the point
        finally:
            self.server.received.append(got)


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    """A loopback echo server that records what each connection sent it."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _address(server: _EchoServer) -> tuple[str, int]:
    host, port = server.server_address[:2]
    return str(host), int(port)


def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _recv_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data


def test_the_proxy_cuts_after_exactly_n_client_bytes_and_accepts_again(
    echo: _EchoServer,
) -> None:
    with FaultProxy(*_address(echo)) as proxy:
        proxy.drop_after(10)
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as client:
            client.sendall(b"0123456789abcdefghijklmno")
            assert b"0123456789".startswith(_recv_until_closed(client))
        assert proxy.wait_for(lambda s: s.active == 0, 5)
        assert _eventually(lambda: echo.received == [b"0123456789"]), echo.received
        stats = proxy.stats()
        assert (stats.bytes_up, stats.drops, len(stats.cuts)) == (10, 1, 1)
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as again:
            again.sendall(b"still here")
            assert again.recv(100) == b"still here"


def test_the_proxy_holds_bytes_during_a_stall_and_delivers_them_in_order(
    echo: _EchoServer,
) -> None:
    with (
        FaultProxy(*_address(echo)) as proxy,
        socket.create_connection((proxy.host, proxy.port), timeout=5) as client,
    ):
        client.sendall(b"before")
        assert client.recv(100) == b"before"
        proxy.stall(60)
        client.sendall(b"held-1 ")
        client.sendall(b"held-2")
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(100)  # a 60 s stall cannot have ended: nothing may come through
        proxy.resume()
        client.settimeout(5)
        got = b""
        while len(got) < len(b"held-1 held-2"):
            got += client.recv(100)
        assert got == b"held-1 held-2"


def test_the_proxy_blackhole_swallows_and_restore_resets_and_forwards(
    echo: _EchoServer,
) -> None:
    with FaultProxy(*_address(echo)) as proxy:
        old = socket.create_connection((proxy.host, proxy.port), timeout=5)
        proxy.blackhole()
        old.sendall(b"lost")
        late = socket.create_connection((proxy.host, proxy.port), timeout=5)
        late.sendall(b"lost too")
        assert proxy.wait_for(lambda s: s.swallowed == len(b"lostlost too"), 5)
        for sock in (old, late):
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(100)
        proxy.restore()
        for sock in (old, late):
            assert _recv_until_closed(sock) == b""  # reset: their streams lost bytes
            sock.close()
        with socket.create_connection((proxy.host, proxy.port), timeout=5) as fresh:
            fresh.sendall(b"back")
            assert fresh.recv(100) == b"back"
        assert proxy.stats().bytes_up == len(b"back")


def test_mqtt_framing_tells_a_cut_inside_a_publish_from_one_between_packets() -> None:
    body = bytes(300)
    publish = bytes([0x32, 0xAC, 0x02]) + body  # PUBLISH QoS 1, remaining length 300
    ping = bytes([0xC0, 0x00])
    framing = MqttFraming()
    assert framing.feed(ping + publish[:2]) == 0  # the length is not complete yet
    assert framing.position() == (PUBLISH, 0, 2)
    assert framing.feed(publish[2:100]) == 1
    assert framing.position() == (PUBLISH, 303, 100)
    framing.feed(publish[100:] + ping)
    assert framing.position() == (None, 0, 0)


# --- the faults, end to end -------------------------------------------------------------


def _drop_rounds(rig: Rig, rounds: int, seed: int, max_offset: int) -> None:
    """`rounds` times: cut the device's stream after a random number of bytes, reconnect."""
    rng = random.Random(seed)
    rig.start_hub()
    # No ack timeout within the test's waits: only the reconnect may restart the stream.
    link, uploader = rig.start_device(keepalive=10, ack_timeout_s=NO_TIMEOUT, seed=seed)
    why = f"seed {seed}"
    session = -1
    for number in range(rounds):
        session = wait_ready_after(link, session, why).session
        drops = rig.proxy.stats().drops
        offset = rng.randint(1, max_offset)
        rig.proxy.drop_after(offset)
        assert rig.proxy.wait_for(lambda s, d=drops: s.drops > d, WAIT), (
            f"{why}: round {number}: no cut after {offset} bytes ({uploader.stats()})"
        )
        # The link reconnects on its own; the uploader resends from the lowest unacked row.
        assert_nothing_lost_so_far(rig, f"{why}, round {number}")
    assert uploader.wait_for(drained(len(rig.sold)), WAIT), f"{why}: {uploader.stats()}"
    assert_exactly_the_device_sales(rig, why)
    cuts = rig.proxy.stats().cuts
    mid_batch = [c for c in cuts if c.inside_publish and c.packet_size > SALES_BATCH_MIN_BYTES]
    assert len(cuts) == rounds
    # Sales batches are almost every byte the device sends: nearly every cut splits one.
    assert len(mid_batch) >= rounds - 1, f"{why}: only {len(mid_batch)} cuts split a batch"
    # Every failure (here: a publish refused by a link already down) restarts the stream
    # once; the other restarts are the link's: the first connection, then one per cut.
    stats = uploader.stats()
    assert stats.restarts - stats.failures >= rounds + 1, f"{why}: no rewind per cut: {stats}"


def test_connections_dropped_mid_batch_lose_and_duplicate_nothing(rig: Rig) -> None:
    # Offsets up to two batches: the cut lands in the first or a later in-flight batch.
    _drop_rounds(rig, rounds=5, seed=fault_seed(DEFAULT_SEED), max_offset=2 * 180_000)


def test_a_stall_past_the_ack_timeout_resends_and_stores_once(rig: Rig) -> None:
    seed = fault_seed(DEFAULT_SEED + 1)
    ack_timeout = 2.0
    rig.start_hub()
    # Keepalive 10 s: the connection survives the stall, so only the ack timeout can resend.
    link, uploader = rig.start_device(keepalive=10, ack_timeout_s=ack_timeout, seed=seed)
    assert link.wait_for(lambda s: s.ready, WAIT)
    session = link.state.session
    assert rig.proxy.wait_for(lambda s: s.bytes_up > 300_000, WAIT)
    rig.proxy.stall(ack_timeout + 2.0)
    stalled_at = uploader.stats()
    assert stalled_at.acked_upto < SALES, "the upload finished before the stall"
    assert uploader.wait_for(lambda s: s.failures > stalled_at.failures, WAIT), (
        "no ack timeout during a stall longer than the ack timeout"
    )
    assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
    assert_exactly_the_device_sales(rig, f"seed {seed}")
    # The resend path ran: the hub received sales again (and ignored them).
    assert rig.ingest.duplicates() > 0, "no sale was resent: the stall caught nothing in flight"
    assert uploader.stats().published_sales > SALES
    assert rig.proxy.stats().publishes_up > SALES // BATCH
    assert link.state.session == session, "the stall was meant to keep the connection up"


def test_a_blackholed_link_goes_down_comes_back_and_delivers_once(rig: Rig) -> None:
    seed = fault_seed(DEFAULT_SEED + 2)
    rig.start_hub()
    link, uploader = rig.start_device(keepalive=2, ack_timeout_s=3.0, seed=seed)
    assert link.wait_for(lambda s: s.ready, WAIT)
    assert rig.wait_event(lambda e: e.connected and e.hub_online, WAIT)
    session = link.state.session
    assert rig.proxy.wait_for(lambda s: s.bytes_up > 300_000, WAIT)
    rig.proxy.blackhole()
    assert uploader.stats().acked_upto < SALES, "the upload finished before the blackhole"
    # Keepalive: paho gives up on the silent path; the bus hears it.
    assert rig.wait_event(lambda e: not e.connected and e.session == session, WAIT), rig.events
    assert not link.state.connected
    # The broker times the device out too and publishes its will: the hub marks it offline.
    deadline = time.monotonic() + WAIT
    while rig.hub_device_online() is not False:
        assert time.monotonic() < deadline, "the hub never saw the device go offline"
        time.sleep(0.1)
    stored = len(rig.hub_rows())
    assert_nothing_lost_so_far(rig, "blackholed")
    assert not link.state.connected, "connected through a blackhole"
    assert len(rig.hub_rows()) == stored, "sales reached the hub through a blackhole"
    rig.proxy.restore()
    back = wait_ready_after(link, session, "after restore")
    assert rig.wait_event(lambda e: e.connected and e.hub_online and e.session > session, WAIT)
    assert uploader.wait_for(drained(SALES), WAIT), uploader.stats()
    assert_exactly_the_device_sales(rig, f"seed {seed}")
    assert rig.hub_device_online() is True
    assert back.session > session


def test_the_hub_cut_off_mid_batch_gets_every_sale_once(rig: Rig) -> None:
    seed = fault_seed(DEFAULT_SEED + 3)
    rng = random.Random(seed)
    why = f"seed {seed}"
    hub = rig.start_hub(behind_proxy=True)
    # Batches the broker accepted while the hub was away reached nobody. With no ack
    # timeout in reach, only the rewind when the hub is back online can resend them.
    link, uploader = rig.start_device(keepalive=10, ack_timeout_s=NO_TIMEOUT, seed=seed)
    rounds = 3
    for number in range(rounds):
        assert rig.hub_proxy.wait_for(lambda s, n=number: s.accepted > n, WAIT), why
        assert hub.wait_ready(WAIT), f"{why}: round {number}: the hub did not resubscribe"
        assert link.wait_for(lambda s: s.ready, WAIT), f"{why}: round {number}: {link.state}"
        drops = rig.hub_proxy.stats().drops
        # Count the broker's bytes to the hub: the cut splits a batch on its way in.
        rig.hub_proxy.drop_after(rng.randint(1, 2 * 180_000), upstream=False)
        assert rig.hub_proxy.wait_for(lambda s, d=drops: s.drops > d, WAIT), (
            f"{why}: round {number}: no cut ({uploader.stats()})"
        )
        assert_nothing_lost_so_far(rig, f"{why}, round {number}")
    assert uploader.wait_for(drained(SALES), WAIT), f"{why}: {uploader.stats()}"
    assert_exactly_the_device_sales(rig, why)
    cuts = rig.hub_proxy.stats().cuts
    mid_batch = [c for c in cuts if c.inside_publish and c.packet_size > SALES_BATCH_MIN_BYTES]
    assert len(mid_batch) >= rounds - 1, f"{why}: only {len(mid_batch)} cuts split a batch"
    # The device heard the hub's will each time, and its connection never dropped.
    rig.drain_events()
    offline = [e for e in rig.events if e.connected and not e.hub_online and e.session == 1]
    assert len(offline) >= rounds, f"{why}: {rig.events}"
    assert link.state.session == 1
    # The hub coming back online, not a failure, restarted the stream each time.
    stats = uploader.stats()
    assert stats.failures == 0 and stats.restarts >= rounds + 1, f"{why}: {stats}"


# --- soak -------------------------------------------------------------------------------


@pytest.mark.soak
def test_fifty_rounds_of_drops_and_stalls_while_the_till_keeps_selling(rig: Rig) -> None:
    seed = fault_seed(random.SystemRandom().randrange(1, 2**31))
    rng = random.Random(seed)
    why = f"seed {seed}"
    rig.start_hub(behind_proxy=True)
    link, uploader = rig.start_device(keepalive=3, ack_timeout_s=2.0, seed=seed, poll_s=0.5)
    kinds = ("cut", "cut", "hub cut", "drop", "stall", "long stall")
    for number in range(50):
        assert link.wait_for(lambda s: s.ready, WAIT), f"{why}: round {number}: {link.state}"
        kind = rng.choice(kinds)
        where = f"{why}, round {number} ({kind})"
        proxy = rig.hub_proxy if kind == "hub cut" else rig.proxy
        drops = proxy.stats().drops
        if kind in ("cut", "hub cut"):
            proxy.drop_after(rng.randint(1, 150_000), upstream=kind == "cut")
        # The till keeps selling: ~270 KB of new batches, so an armed cut always fires.
        rig.sold += rig.store.sell(300, seed=seed + number)
        uploader.wake()
        if kind == "drop":
            proxy.drop()
        elif kind == "stall":
            proxy.stall(rng.uniform(0.5, 3.0))  # around the ack timeout
        elif kind == "long stall":
            proxy.stall(rng.uniform(5.0, 7.0))  # past keepalive: both ends give up
        if kind in ("cut", "hub cut", "drop"):
            assert proxy.wait_for(lambda s, d=drops: s.drops > d, WAIT), f"{where}: no drop"
        deadline = time.monotonic() + 10
        while proxy.stalled:
            assert time.monotonic() < deadline, f"{where}: the stall never ended"
            time.sleep(0.05)
        assert_nothing_lost_so_far(rig, where)
    assert uploader.wait_for(drained(len(rig.sold)), 120), f"{why}: {uploader.stats()}"
    assert_exactly_the_device_sales(rig, why)
    assert rig.ingest.duplicates() > 0, f"{why}: no resend was exercised"
