"""The hub worker: a paho MQTT v5 client that stores device traffic and acknowledges uploads.

Several workers (`appliance-hub serve` processes) share the device traffic through MQTT
shared subscriptions; each has its own client id. paho's network thread only queues what
arrives; one worker thread decodes, writes the database and publishes the answers, so a
slow database never stalls the MQTT keepalive. A sales or journal acknowledgement is
published only after the batch's transaction has committed. The worker also records the
fleet's commands with the job states, configurations and logs devices answer
(hub/device_answers.py), and writes its counters for `appliance-hub status`
(hub/worker_stats.py); a message it has no handler for is counted and logged, rate-limited.

When the database fails (full, unreachable, an I/O error) nothing is acknowledged and the
devices keep resending; the worker says so once (hub/storage_faults.py), reconnects as
needed and serves again as soon as a write succeeds, without a restart.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from peewee import Database

from appliance.core.clock import Clock, SystemClock
from appliance.errors import DecodeError, SyncError
from appliance.mqtt import topics
from appliance.mqtt.client import TlsFiles, Will, paho_client
from appliance.mqtt.dispatch import LOG_EVERY, LOG_FIRST
from appliance.mqtt.payloads import (
    DeviceStatus,
    HubState,
    JournalAck,
    JournalBatch,
    SalesAck,
    SalesBatch,
    Telemetry,
    decode,
    encode,
)
from hub.device_answers import DeviceAnswers
from hub.ingest import DeviceRecords, IngestResult, SalesIngest
from hub.journal_ingest import JournalIngest, JournalResult
from hub.periodic import Periodic, PeriodicWork
from hub.sales_group import gather
from hub.storage_faults import (
    StorageFault,
    StorageWatch,
    driver_message,
    reset_connection,
    storage_fault,
)
from hub.worker_counters import HubStats, WorkerCounters
from hub.worker_stats import STATS_EVERY, STOPPED, save_stats

log = logging.getLogger(__name__)


class HubConnectError(SyncError):
    """The hub worker could not connect to the broker and subscribe in time."""


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where the broker listens, and how to talk to it."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: TlsFiles | None = None
    keepalive: int = 30


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a device, as the worker thread sees it."""

    device: str
    topic: str
    payload: bytes
    correlation: bytes | None = None


class Ingestor(Protocol):
    """What the server needs from the sales ingest (SalesIngest; a test may wrap it)."""

    def ingest(self, device: str, batch: SalesBatch) -> IngestResult:
        """Store a batch in one transaction and say what may be acknowledged."""
        ...


class JournalIngestor(Protocol):
    """What the server needs from the journal ingest (JournalIngest; a test may wrap it)."""

    def ingest(self, device: str, batch: JournalBatch) -> JournalResult:
        """Store a batch in one transaction and say what may be acknowledged."""
        ...


Handler = Callable[[Inbound], None]
Record = Callable[[str, bytes], None]  # (device, payload): DeviceAnswers' handlers
AfterSales = Callable[[str, IngestResult], None]  # (device, result), after the ack went out
AfterStatus = Callable[[str, DeviceStatus], None]  # (device, status), a birth or will recorded


def _payload_size(item: Inbound) -> int:
    return len(item.payload)


def default_worker_id() -> str:
    """A worker id unique on this machine: host, process and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class HubServer:
    """One hub worker; `start()` connects (and reconnects) in the background, `stop()` ends it.

    Extra `handlers` map a device topic function (e.g. topics.command_update) to a callable
    run on the worker thread; raising DecodeError there counts the message as malformed.
    A handler must be safe to run twice: it is run again on a new connection when the
    database connection turns out dead (a restart or failover since the last message).
    `after_sales` runs on the worker thread once a batch is committed and acknowledged,
    each of `after_status` once a current birth or will is recorded (not a stale will),
    each of `after_command_update` once a device's command update is recorded;
    each `periodic` callable runs there every so many seconds. None may raise for long:
    an exception is logged and the worker goes on. The worker writes its counters to the
    database every `stats_every` seconds and when it stops (hub/worker_stats.py).
    """

    def __init__(
        self,
        db: Database,
        endpoint: BrokerEndpoint,
        *,
        worker_id: str | None = None,
        clock: Clock | None = None,
        ingest: Ingestor | None = None,
        journal: JournalIngestor | None = None,
        handlers: Mapping[Callable[[str], str], Handler] | None = None,
        after_sales: AfterSales | None = None,
        after_status: Sequence[AfterStatus] = (),
        after_command_update: Sequence[Record] = (),
        periodic: Sequence[Periodic] = (),
        stats_every: float = STATS_EVERY,
    ) -> None:
        self.worker_id = worker_id or default_worker_id()
        self._db = db
        self._endpoint = endpoint
        self._clock = clock or SystemClock()
        self._ingest: Ingestor = ingest or SalesIngest(db, clock=self._clock)
        self._journal: JournalIngestor = journal or JournalIngest(db, clock=self._clock)
        self._devices = DeviceRecords(db, clock=self._clock)
        self._storage = StorageWatch(self.worker_id, self._clock)  # the worker thread's
        answers = DeviceAnswers(db, clock=self._clock)
        self._routes: dict[Callable[[str], str], Handler] = {
            topics.sales_up: self._on_sales,
            topics.journal_up: self._on_journal,
            topics.status: self._on_status,
            topics.health: self._on_telemetry,
            topics.command: self._counted("commands", answers.command_sent),
            topics.command_update: self._counted(
                "command_updates", answers.command_update, after=after_command_update
            ),
            topics.config_desired: self._counted("configs", answers.config_desired),
            topics.config_reported: self._counted("configs", answers.config_reported),
            topics.logs_up: self._counted("logs", answers.logs),
            **(handlers or {}),
        }
        # Group commit only where this worker stores the sales itself (not a test's handler).
        self._groups_sales = self._routes[topics.sales_up] == self._on_sales
        self._after_sales = after_sales
        self._after_status = tuple(after_status)
        # Interval work meets the database like message handling does: a fault there is
        # said once per outage and a dead connection is replaced, rather than a traceback
        # every second while the database is away.
        periodic = [
            (every, self._guarded(getattr(work, "__qualname__", "interval work"), work))
            for every, work in [*periodic, (stats_every, self._save_stats)]
        ]
        self._periodic = PeriodicWork(periodic, self._clock)
        self._inbox: queue.Queue[Inbound | None] = queue.Queue()
        self._counters = WorkerCounters()
        self._started_at = self._clock.now()
        self._ready = threading.Event()
        self._unsubscribed = threading.Event()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._client = self._make_client()

    @property
    def client_id(self) -> str:
        """The MQTT client id: unique per worker, so workers never take over each other.

        ':' cannot occur in a device id, so no device certificate can claim this id.
        """
        return f"hub:{self.worker_id}"

    @property
    def stats(self) -> HubStats:
        """A snapshot of the counters."""
        return self._counters.stats()

    def per_device(self, name: str) -> dict[str, int]:
        """A snapshot of a per-device tally: `malformed_by_device` or `unhandled_by_device`."""
        return self._counters.per_device(name)

    @property
    def queued(self) -> int:
        """Messages waiting for the worker thread (how far behind it is); any thread."""
        return self._inbox.qsize()

    @property
    def storage_fault(self) -> StorageFault | None:
        """The database fault the last message met (None: it was stored); any thread."""
        return self._storage.fault

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Send a message to a device (catalog chunks, ...); thread-safe, queued by paho."""
        self._client.publish(topic, payload, qos)

    def start(self, timeout: float | None = 10.0) -> None:
        """Connect in the background; with a timeout, wait until subscribed or raise."""
        self._stopping.clear()
        self._started_at = self._clock.now()
        self._worker = threading.Thread(
            target=self._work, name=f"hub-worker-{self.worker_id}", daemon=True
        )
        self._worker.start()
        self._client.connect_async(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=self._endpoint.keepalive,
            clean_start=True,
        )
        self._client.loop_start()
        if timeout is not None and not self.wait_ready(timeout):
            self.stop(timeout=1.0)
            raise HubConnectError(
                f"no subscription on {self._endpoint.host}:{self._endpoint.port} "
                f"within {timeout:g} s"
            )

    def wait_ready(self, timeout: float) -> bool:
        """Block until connected and subscribed (True), or `timeout` seconds pass."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work, announce the hub offline (retained) and disconnect; safe twice."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._ready.is_set():
            # Leave the share group first, so the broker hands new batches to other workers.
            self._unsubscribed.clear()
            self._client.unsubscribe(list(topics.hub_subscriptions()))
            self._unsubscribed.wait(min(timeout, 2.0))
        worker, self._worker = self._worker, None
        if worker is not None:
            self._inbox.put(None)
            worker.join(timeout)
        if self._ready.is_set():
            info = self._client.publish(topics.HUB_STATE, self._state(online=False), 1, True)
            try:
                info.wait_for_publish(min(timeout, 2.0))
            except (RuntimeError, ValueError) as err:  # lost the connection meanwhile
                log.warning("could not announce the hub offline: %s", err)
        self._ready.clear()
        self._client.disconnect()
        self._client.loop_stop()
        log.info("hub worker %s stopped", self.worker_id)

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- paho network thread: only queue, publish and signal -------------------------

    def _make_client(self) -> mqtt.Client:
        will = Will(topics.HUB_STATE, self._state(online=False), qos=1, retain=True)
        client = paho_client(self.client_id, tls=self._endpoint.tls, will=will)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        return client

    def _state(self, *, online: bool) -> bytes:
        return encode(HubState(online=online, hub_id=self.worker_id))

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("hub worker %s refused by the broker: %s", self.worker_id, reason)
            return
        log.info(
            "hub worker %s connected to %s:%d",
            self.worker_id,
            self._endpoint.host,
            self._endpoint.port,
        )
        subscriptions = [(topic, 1) for topic in topics.hub_subscriptions()]
        # Not shared: every worker watches the hub state, to restore it (below).
        subscriptions.append((topics.HUB_STATE, 1))
        client.subscribe(subscriptions)

    def _on_subscribe(
        self, client: mqtt.Client, _userdata: Any, _mid: int, codes: list[Any], _props: Any
    ) -> None:
        refused = [str(code) for code in codes if code.is_failure]
        if refused:
            log.error("hub worker %s: subscriptions refused: %s", self.worker_id, refused)
            return
        # Online only once subscribed: devices flush on this, and a batch sent before the
        # subscription exists would reach nobody.
        client.publish(topics.HUB_STATE, self._state(online=True), qos=1, retain=True)
        self._ready.set()

    def _on_unsubscribe(self, *_args: Any) -> None:
        self._unsubscribed.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._ready.clear()
        if not self._stopping.is_set():
            log.warning("hub worker %s lost the broker (%s); reconnecting", self.worker_id, reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == topics.HUB_STATE:
            self._restore_hub_state(client, bytes(message.payload))
            return
        props = message.properties
        correlation = getattr(props, "CorrelationData", None) if props else None
        device = topics.device_of(message.topic) or ""
        self._inbox.put(Inbound(device, message.topic, bytes(message.payload), correlation))

    def _restore_hub_state(self, client: mqtt.Client, payload: bytes) -> None:
        """Another worker's will (or clean stop) said offline while this one still serves."""
        if self._stopping.is_set() or not self._ready.is_set():
            return  # not serving (yet): _on_subscribe announces online itself
        try:
            state = decode(payload, HubState)
        except DecodeError:
            state = HubState(online=False)  # garbage on the hub topic: put the truth back
        if not state.online:
            log.info("hub state went offline (worker %r); this worker still serves", state.hub_id)
            client.publish(topics.HUB_STATE, self._state(online=True), qos=1, retain=True)

    # --- worker thread: decode, store, answer -----------------------------------------

    def _work(self) -> None:
        try:
            pending: Inbound | None = None  # the message that ended a group, handled next
            while True:
                item: Inbound | None = pending
                if item is not None:
                    pending = None
                else:
                    try:
                        item = self._inbox.get(timeout=self._periodic.seconds_left())
                    except queue.Empty:
                        self._periodic.run_due()  # nothing arrived: only the periodic work
                        continue
                if item is None:
                    break
                if self._groups_sales and self._is_sales(item):
                    gathered = gather(item, self._inbox, self._is_sales, _payload_size)
                    self._store_sales(gathered.group)
                    pending = gathered.pending
                    if gathered.stop:
                        break
                else:
                    self._count("received")
                    self._dispatch(item)
                self._periodic.run_due()
            try:
                self._guarded("the last counters", lambda: self._save_stats(stopped=True))()
            except Exception:  # the worker is ending: say so, and end as planned
                log.exception("hub worker %s: the last counters were not saved", self.worker_id)
        finally:
            reset_connection(self._db)  # this thread's connection, even a dead one

    def _dispatch(self, item: Inbound) -> None:
        handler = next(
            (
                h
                for route, h in self._routes.items()
                if item.device and route(item.device) == item.topic
            ),
            None,
        )
        if handler is None:
            seen = self._counters.count_for(item.device, "unhandled", "unhandled_by_device")
            if seen <= LOG_FIRST or seen % LOG_EVERY == 0:  # a flood must not fill the log
                log.warning("no handler for %s (unhandled message #%d)", item.topic, seen)
            return
        try:
            self._run(handler, item)
        except DecodeError as err:
            seen = self._counters.count_for(item.device, "malformed", "malformed_by_device")
            if seen <= LOG_FIRST or seen % LOG_EVERY == 0:
                log.warning("malformed message #%d on %s: %s", seen, item.topic, str(err)[:300])
        except Exception as err:  # a handler must never end the worker; the device will resend
            self._count("failures")
            fault = storage_fault(err)
            if fault is None:
                log.exception("handling %s failed", item.topic)
                return
            if fault is StorageFault.UNREACHABLE:
                reset_connection(self._db)  # the next message connects afresh
            self._storage.failed(fault, err)  # logged once per outage, not per message
        else:
            if self._storage.succeeded():
                self._resync_statuses()

    def _run(self, handler: Handler, item: Inbound) -> None:
        """Run a handler; once more on a new connection if the one it used was dead."""
        try:
            handler(item)
        except Exception as err:
            if (
                self._storage.fault is not None
                or storage_fault(err) is not StorageFault.UNREACHABLE
            ):
                raise
            # peewee keeps a connection the server dropped (a restart or failover since the
            # last message) and fails every query on it; one retry on a new connection makes
            # that invisible to the device. During an outage the retry would only fail again.
            reset_connection(self._db)
            self._count("db_reconnects")
            log.info(
                "hub worker %s: database connection lost (%s); reconnecting",
                self.worker_id,
                driver_message(err),
            )
            handler(item)

    def _resync_statuses(self) -> None:
        """Have the broker send every retained device status again, after a storage outage."""
        # Births and wills that came while the database failed were dropped; subscribing
        # again makes the broker resend each device's retained status (retain handling 0).
        self._client.subscribe([(topic, 1) for topic in topics.hub_subscriptions()])

    def _is_sales(self, item: Inbound) -> bool:
        return bool(item.device) and item.topic == topics.sales_up(item.device)

    def _store_sales(self, items: list[Inbound]) -> None:
        """Store queued sales batches in one transaction, then acknowledge each (group commit).

        Every ack goes out after the commit that holds its sales. A group that fails is
        rolled back whole and each of its batches is handled on its own (a transaction
        each, with the usual counting and retry), so one bad batch or a database hiccup
        costs the others a second try, never their acknowledgement.
        """
        for _ in items:
            self._count("received")
        if len(items) == 1:
            self._dispatch(items[0])
            return
        batches: list[tuple[Inbound, SalesBatch]] = []
        for item in items:
            try:
                batches.append((item, decode(item.payload, SalesBatch)))
            except DecodeError:
                self._dispatch(item)  # counted and logged as malformed there
        # Devices in one order in every worker: two workers' groups never each hold a
        # progress row lock the other waits for. A group that also takes store locks (the
        # stock levels of stock.changed webhooks) can still meet another in a deadlock
        # across stores; PostgreSQL breaks it and the batches are stored one by one below.
        batches.sort(key=lambda pair: pair[0].device)
        if not batches:
            return
        try:
            with self._db.atomic():
                results = [self._ingest.ingest(item.device, batch) for item, batch in batches]
        except Exception as err:
            log.debug("a group of %d sales batches failed (%s); one by one", len(batches), err)
            for item, _ in batches:
                self._dispatch(item)
            return
        if self._storage.succeeded():
            self._resync_statuses()
        done = [(item, result) for (item, _), result in zip(batches, results, strict=True)]
        for item, result in done:  # every ack first: the after-sales work may query
            self._acknowledge(item, result)
        for item, result in done:
            self._sales_committed(item, result)

    def _on_sales(self, item: Inbound) -> None:
        batch = decode(item.payload, SalesBatch)
        result = self._ingest.ingest(item.device, batch)  # committed when this returns
        self._acknowledge(item, result)
        self._sales_committed(item, result)

    def _acknowledge(self, item: Inbound, result: IngestResult) -> None:
        """Publish a committed batch's SalesAck."""
        self._count("batches")
        ack = SalesAck(upto_seq=result.upto_seq, rejected=list(result.rejected))
        self._answer(item, topics.sales_ack(item.device), encode(ack))
        self._count("acks")

    def _sales_committed(self, item: Inbound, result: IngestResult) -> None:
        """The after-sales work of a committed, acknowledged batch."""
        if self._after_sales is not None:
            try:
                self._after_sales(item.device, result)
            except Exception:  # the batch is committed and acknowledged whatever happens here
                log.exception("after-sales work for %s failed", item.device)

    def _on_journal(self, item: Inbound) -> None:
        batch = decode(item.payload, JournalBatch)
        result = self._journal.ingest(item.device, batch)  # committed when this returns
        self._count("journal_batches")
        ack = JournalAck(upto_number=result.upto)
        self._answer(item, topics.journal_ack(item.device), encode(ack))
        self._count("journal_acks")

    def _answer(self, item: Inbound, topic: str, payload: bytes) -> None:
        """Publish an acknowledgement, echoing the request's correlation data if it had any."""
        props = None
        if item.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = item.correlation
        self._client.publish(topic, payload, qos=1, properties=props)

    def _on_status(self, item: Inbound) -> None:
        status = decode(item.payload, DeviceStatus)
        current = self._devices.record_status(item.device, status)
        self._count("statuses")
        if not current:
            self._count("stale_wills")
            return
        for hook in self._after_status:
            try:
                hook(item.device, status)
            except Exception as err:
                # A database fault here is the message's fault too: the status is seen
                # again (a retry, or the resync after the outage) and every hook is
                # idempotent, so a device.online event or a held command is not lost.
                if storage_fault(err) is not None:
                    raise
                log.exception("after-status work for %s failed", item.device)

    def _on_telemetry(self, item: Inbound) -> None:
        self._devices.record_telemetry(item.device, decode(item.payload, Telemetry))
        self._count("telemetry")

    def _counted(self, name: str, record: Record, *, after: Sequence[Record] = ()) -> Handler:
        """A route for one of DeviceAnswers' handlers, counted under `name` once recorded;
        then each of `after` (which must be idempotent: a retry runs them again)."""

        def handle(item: Inbound) -> None:
            record(item.device, item.payload)
            self._count(name)
            for hook in after:
                hook(item.device, item.payload)

        return handle

    def _count(self, name: str) -> None:
        self._counters.count(name)

    def _save_stats(self, *, stopped: bool = False) -> None:
        """Write the counters for `appliance-hub status`."""
        counters = self._counters.as_record()
        if stopped:
            counters[STOPPED] = 1
        save_stats(self._db, self.worker_id, self._started_at, counters, self._clock.now())

    def _guarded(self, what: str, work: Callable[[], object]) -> Callable[[], None]:
        """`work` that a database fault only delays: reconnect if needed, say so once."""
        failing = False

        def run() -> None:
            nonlocal failing
            try:
                work()
            except Exception as err:
                fault = storage_fault(err)
                if fault is None:
                    raise  # not the database: PeriodicWork logs it with its traceback
                if fault is StorageFault.UNREACHABLE:
                    reset_connection(self._db)  # the next run connects afresh
                if not failing:
                    log.warning(
                        "hub worker %s: %s waits for the database (%s)",
                        *(self.worker_id, what, driver_message(err)),
                    )
                failing = True
            else:
                failing = False

        return run
