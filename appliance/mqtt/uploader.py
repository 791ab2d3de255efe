"""Uploader: drains a durable outbox to the hub, effectively once; SalesUploader for sales.

The outbox row, not MQTT, carries the guarantee: batches go out in number order (QoS 1),
the hub stores each item idempotently and acknowledges the highest contiguous number
after its own commit, and only that acknowledgement moves the outbox on. Whenever delivery
is in doubt (a new connection, the hub coming back online, an acknowledgement that is
late) the stream restarts from the lowest unacknowledged row: duplicates are harmless,
gaps are not.

What is uploaded is an `UploadStream` (mqtt/upload_stream.py): the sales outbox here, the
fiscal journal in mqtt/journal_uploader.py. One state machine serves both. A sales
acknowledgement may also name sales the hub rejected: those rows go to the quarantine
table instead of being deleted, in the same transaction (store/outbox.py).

All work happens on the uploader's own thread (it owns its peewee connection); paho's
thread only queues acks and link changes for it, and `wake()` is safe from any thread.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Self, Unpack

import msgspec

from appliance.core.clock import Clock, SystemClock
from appliance.core.closing import Closing
from appliance.mqtt import topics
from appliance.mqtt.link import HubLink, LinkState
from appliance.mqtt.payloads import SaleEnvelope, SalesAck, SalesBatch, encode
from appliance.mqtt.upload_stream import Chunk, UploaderOptions, UploadStream
from appliance.store.outbox import Rejection, SalesOutbox

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 15.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 60.0
# Even without a wake() (a sale committed by another process), look at the outbox this often.
POLL_S = 5.0


@dataclass(frozen=True, slots=True)
class UploaderStats:
    """Counters since the uploader started (status screens, tests, benchmarks)."""

    published_batches: int = 0
    published_items: int = 0  # resent items count again
    acked_upto: int = 0  # the highest number the hub acknowledged to this uploader
    acknowledged_rows: int = 0  # outbox rows acknowledged (sales: deleted) since the start
    restarts: int = 0  # times the stream went back to the lowest unacknowledged row
    held_back: int = 0  # wakes that found the link down or the hub offline
    failures: int = 0  # ack timeouts and refused publishes

    @property
    def published_sales(self) -> int:
        """The sales stream's name for published_items."""
        return self.published_items


class SalesStream:
    """The sales outbox as an UploadStream: rows are deleted (or quarantined) on acknowledgement."""

    name = "sales"
    keeps_acknowledged = False  # acknowledged rows are deleted

    def __init__(self, outbox: SalesOutbox, device: str) -> None:
        self._outbox = outbox
        self._device = device

    def up_topic(self, device: str) -> str:
        """topics.sales_up."""
        return topics.sales_up(device)

    def ack_topic(self, device: str) -> str:
        """topics.sales_ack."""
        return topics.sales_ack(device)

    def ack_number(self, ack: SalesAck) -> int:
        """The acknowledged sequence."""
        return ack.upto_seq

    def acked_upto(self) -> int:
        """Acknowledged rows are gone, so the stream starts at whatever is left."""
        return 0

    def next_chunk(self, after: int, limit: int) -> Chunk | None:
        """The next rows as a SalesBatch, saying how far this device has applied acks."""
        rows = self._outbox.pending(after=after, limit=limit)
        if not rows:
            return None
        # Every row below the oldest one left was acknowledged or quarantined: the hub need
        # name no rejection below it. Read afresh, so it holds after a restart too.
        oldest = self._outbox.oldest_sequence() or rows[0].sequence
        batch = SalesBatch(
            device=self._device,
            sales=[
                SaleEnvelope(seq=r.sequence, sale_id=r.document_id, document=msgspec.Raw(r.payload))
                for r in rows
            ],
            acked_upto=min(oldest, rows[0].sequence) - 1,
        )
        return Chunk(encode(batch), len(rows), rows[-1].sequence)

    def acknowledge(self, upto: int, ack: SalesAck) -> int:
        """Quarantine the rows the hub rejected and delete the rest, in one transaction."""
        rejected = [Rejection(r.seq, r.sale_id, r.code, r.reason) for r in ack.rejected]
        return self._outbox.acknowledge(upto, rejected)


@dataclass(frozen=True, slots=True)
class _Batch:
    last_seq: int
    deadline: float


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


@dataclass(frozen=True, slots=True)
class _Ack:
    upto: int
    ack: Any  # the decoded acknowledgement, for the stream


@dataclass(frozen=True, slots=True)
class _Link:
    state: LinkState


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


_Message = _Wake | _Ack | _Link | _Stop


class Uploader(Closing):
    """Publishes a stream's batches while the link is up and the hub online; a context manager."""

    def __init__(
        self,
        stream: UploadStream,
        link: HubLink,
        *,
        batch_size: int = 200,
        max_in_flight_batches: int = 4,
        clock: Clock | None = None,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        poll_s: float = POLL_S,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1 or max_in_flight_batches < 1:
            raise ValueError("batch_size and max_in_flight_batches must be at least 1")
        self._stream = stream
        self._name = stream.name
        self._link = link
        self._device = link.device_id
        self._topic = stream.up_topic(self._device)
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight_batches
        self._clock = clock or SystemClock()
        self._ack_timeout = ack_timeout_s
        self._backoff = (backoff_min_s, backoff_max_s)
        self._poll = poll_s
        self._rng = rng or random.Random()
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._stats = UploaderStats()
        self._stats_changed = threading.Condition()
        self._thread: threading.Thread | None = None
        # Below: the worker thread's own state.
        self._state = LinkState()
        self._stream_session = -1
        self._acked = 0  # read from the stream when the worker starts (_resume)
        self._sent_upto = 0  # the last number published in the current stream
        self._highest_published = 0  # never acknowledge past what was sent
        self._in_flight: deque[_Batch] = deque()
        self._failures_in_row = 0
        self._retry_at: float | None = None
        link.dispatcher.on(stream.ack_topic(self._device), self._on_ack)
        link.watch(self._on_link)

    # --- any thread ---

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        name = f"{self._name}-uploader"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current step; rows not acknowledged stay in the outbox."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._inbox.put(_Stop())
        thread.join(timeout)
        if thread.is_alive():
            log.error("%s uploader did not stop within %.1f s", self._name, timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def wake(self) -> None:
        """Something was committed: look at the outbox now. Never blocks."""
        self._inbox.put(_Wake())

    def stats(self) -> UploaderStats:
        """A snapshot of the counters."""
        with self._stats_changed:
            return self._stats

    def wait_for(self, predicate: Callable[[UploaderStats], bool], timeout: float) -> bool:
        """Block until `predicate(stats)` holds or `timeout` passes."""
        with self._stats_changed:
            return self._stats_changed.wait_for(lambda: predicate(self._stats), timeout)

    # --- paho's thread: queue and return ---

    def _on_ack(self, ack: Any) -> None:
        self._inbox.put(_Ack(self._stream.ack_number(ack), ack))

    def _on_link(self, state: LinkState) -> None:
        self._inbox.put(_Link(state))

    # --- the worker thread ---

    def _run(self) -> None:
        self._resume()
        self._apply_link(self._link.state)
        while True:
            messages = [self._next_message()]
            while True:
                try:
                    messages.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                for message in messages:
                    if isinstance(message, _Stop):
                        return
                    self._handle(message)
                self._flush()
            except Exception:
                # A database or encoding failure must not end uploading for good.
                log.exception("%s upload step failed", self._name)
                self._fail("error")

    def _resume(self) -> None:
        """Start after what the hub acknowledged before this start (read on this thread)."""
        try:
            acked = self._stream.acked_upto()
        except Exception:
            # Starting from nothing only resends what the hub holds (duplicates are harmless);
            # failing here would leave the stream not uploading at all.
            log.exception("%s: the acknowledged number was not read; resending all", self._name)
            acked = 0
        self._acked = self._sent_upto = self._highest_published = acked
        with self._stats_changed:
            self._stats = replace(self._stats, acked_upto=acked)
            self._stats_changed.notify_all()

    def _next_message(self) -> _Message | None:
        now = self._clock.monotonic()
        deadlines = [now + self._poll]
        if self._in_flight:
            deadlines.append(self._in_flight[0].deadline)
        if self._retry_at is not None:
            deadlines.append(self._retry_at)
        try:
            return self._inbox.get(timeout=max(0.001, min(deadlines) - now))
        except queue.Empty:
            return None

    def _handle(self, message: _Message | None) -> None:
        if isinstance(message, _Ack):
            self._acknowledge(message.upto, message.ack)
        elif isinstance(message, _Link):
            self._apply_link(message.state)
        elif isinstance(message, _Wake) and not self._state.ready:
            self._count(held_back=1)

    def _apply_link(self, state: LinkState) -> None:
        was_ready, self._state = self._state.ready, state
        if not state.ready:
            self._in_flight.clear()  # nothing can be acknowledged on a dead stream
            return
        if not was_ready or state.session != self._stream_session:
            # A new connection or a hub back online may have lost anything not acknowledged.
            self._stream_session = state.session
            self._restart(f"link ready (session {state.session})")
            self._retry_at = None

    def _acknowledge(self, upto: int, ack: Any) -> None:
        if upto > self._highest_published:
            # Deleting a row the hub never got would lose a sale: trust only what was sent.
            log.warning(
                "hub acknowledged %s up to %d, beyond the %d sent",
                self._name,
                upto,
                self._highest_published,
            )
            upto = self._highest_published
        if upto < self._acked and self._stream.keeps_acknowledged:
            # The hub holds less than it confirmed (restored from a backup, say): what it
            # lost is still here, so send it again. An ack that is merely late costs resends.
            log.warning(
                "hub holds %s only up to %d, not %d: sending again from there",
                self._name,
                upto,
                self._acked,
            )
            self._acked = upto
            self._restart("the hub holds less than it acknowledged")
            return
        if upto <= self._acked:
            return
        dropped = self._stream.acknowledge(upto, ack)
        self._acked = upto
        while self._in_flight and self._in_flight[0].last_seq <= upto:
            self._in_flight.popleft()
        self._failures_in_row = 0
        self._retry_at = None
        with self._stats_changed:
            self._stats = replace(
                self._stats,
                acked_upto=upto,
                acknowledged_rows=self._stats.acknowledged_rows + dropped,
            )
            self._stats_changed.notify_all()
        log.debug("hub acknowledged %s up to %d (%d rows)", self._name, upto, dropped)

    def _flush(self) -> None:
        if not self._state.ready:
            return
        now = self._clock.monotonic()
        if self._in_flight and now >= self._in_flight[0].deadline:
            log.warning("no acknowledgement past %d in %.1f s", self._acked, self._ack_timeout)
            self._fail("ack timeout")
        if self._retry_at is not None:
            if now < self._retry_at:
                return
            self._retry_at = None
        while len(self._in_flight) < self._max_in_flight:
            chunk = self._stream.next_chunk(self._sent_upto, self._batch_size)
            if chunk is None:
                return
            if not self._publish(chunk):
                self._fail("publish refused")
                return
            self._sent_upto = chunk.last
            self._highest_published = max(self._highest_published, self._sent_upto)
            self._in_flight.append(_Batch(self._sent_upto, now + self._ack_timeout))

    def _publish(self, chunk: Chunk) -> bool:
        if not self._link.publish(self._topic, chunk.payload, qos=1):
            return False
        with self._stats_changed:
            self._stats = replace(
                self._stats,
                published_batches=self._stats.published_batches + 1,
                published_items=self._stats.published_items + chunk.count,
            )
            self._stats_changed.notify_all()
        return True

    def _fail(self, why: str) -> None:
        """Back off (exponential, full jitter) and resend from the lowest unacknowledged row."""
        self._failures_in_row += 1
        low, high = self._backoff
        cap = min(high, low * 2 ** min(self._failures_in_row, 32))
        delay = self._rng.uniform(low, cap)
        self._retry_at = self._clock.monotonic() + delay
        self._restart(why)
        self._count(failures=1)
        log.info("%s upload: %s; retrying in %.1f s", self._name, why, delay)

    def _restart(self, why: str) -> None:
        self._in_flight.clear()
        self._sent_upto = self._acked
        self._count(restarts=1)
        log.debug("%s stream restarts after %d: %s", self._name, self._acked, why)

    def _count(self, **increments: int) -> None:
        with self._stats_changed:
            now = self._stats
            self._stats = replace(
                now, **{name: getattr(now, name) + n for name, n in increments.items()}
            )
            self._stats_changed.notify_all()


class SalesUploader(Uploader):
    """The sales outbox's uploader: rows are deleted once the hub acknowledges them."""

    def __init__(
        self, outbox: SalesOutbox, link: HubLink, **options: Unpack[UploaderOptions]
    ) -> None:
        super().__init__(SalesStream(outbox, link.device_id), link, **options)
