"""Catalog, prices and stock from the hub: versioned deltas and chunked, resumable snapshots.

The device holds one catalog version of one store (meta 'hub_catalog_version' and
'catalog_store'). A delta `from -> to` is applied only when its store is the one held and
`from` is the version held; a gap, another store's delta, a reconnect or a failed apply
asks the hub (CatalogRequest on catalog_request(device)). The hub answers every request:
a delta, a snapshot, or a CatalogStatus ("current", or "no_store": then the device keeps
its catalog and stops asking until the next connection). No answer within the retry time
means a lost message: the device asks again. Snapshot chunks are staged durably and
applied when all of a version are there; a snapshot of another store, or a rebase one,
replaces whatever is held. After a reconnect the download resumes at the first missing
chunk. Every apply is ONE transaction: products, deletes, the hub's stock corrections,
the new version and its store. Product pictures go to files as their products are handled
(catalog_pictures.py): rows and staged chunks keep file names, and files no product shows
any more are removed after the apply, on the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Literal

from msgspec.structs import replace
from peewee import SqliteDatabase

from appliance.core.clock import Clock, SystemClock
from appliance.core.events import Event, EventBus
from appliance.errors import CatalogSyncError, DecodeError
from appliance.mqtt import topics
from appliance.mqtt.catalog_pictures import HubPictures
from appliance.mqtt.catalog_products import product_rows
from appliance.mqtt.dispatch import decode_catalog
from appliance.mqtt.payloads import (
    CatalogDelta,
    CatalogRequest,
    CatalogStatus,
    ProductPayload,
    SnapshotChunk,
    decode,
    encode,
)
from appliance.mqtt.step_worker import StepWorker
from appliance.store.catalog_versions import CatalogVersions, SnapshotStaging, StagedSnapshot

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload); the caller publishes QoS 1
Outcome = Literal[
    "applied", "staged", "stale", "gap", "foreign", "current", "no_store", "malformed", "failed"
]
Message = CatalogDelta | SnapshotChunk | CatalogStatus
# The same request is not repeated sooner (a burst of gapped deltas), and an answer that
# has not come (or a snapshot that stopped arriving) is asked for again after this long.
RETRY_SECONDS = 30.0
POLL_SECONDS = 5.0  # the worker looks for an overdue answer at least this often


@dataclass(frozen=True, slots=True)
class CatalogApplied(Event):
    """The catalog moved to a new hub version (posted from the sync worker)."""

    kind: Literal["delta", "snapshot"]
    from_version: int
    version: int
    upserts: int
    deletes: int
    stock_corrections: int
    store: str = ""


def _decode(data: bytes) -> Message:
    """Snapshot chunks are the big messages: one strict decode; anything else by its kind."""
    try:
        return decode(data, SnapshotChunk)
    except DecodeError:
        return decode_catalog(data)


class CatalogSync:
    """Applies the hub's catalog messages to the store; asks for what is missing.

    Not thread-safe: call `handle`/`connected`/`poll` from one thread, or `start()` the
    worker and use `submit`/`notify_connected`, which any thread (paho's included) may call.
    `max_packet` is the MQTT Maximum Packet Size the link announced in CONNECT (None: it
    announced none); every request carries it so the hub's answers fit. Pictures go to the
    folder beside the database unless `pictures` says otherwise.
    """

    def __init__(
        self,
        db: SqliteDatabase,
        device: str,
        publish: Publish,
        *,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        retry_seconds: float = RETRY_SECONDS,
        max_packet: int | None = None,
        pictures: HubPictures | None = None,
    ) -> None:
        self._db = db
        self.pictures = pictures or HubPictures.beside(db.database)
        self._device = device
        self._publish = publish
        self._bus = bus
        self._clock = clock or SystemClock()
        self._retry = retry_seconds
        self._max_packet = max_packet
        self._versions = CatalogVersions(db)
        self._staging = SnapshotStaging(db)
        self._last_request: tuple[CatalogRequest, float] | None = None
        self._waiting_since: float | None = None  # asked (or mid-snapshot), not answered yet
        self._no_store = False  # the hub said so: quiet until the next connection
        self._chunk_at: float | None = None  # when the last snapshot chunk arrived
        self._newest_seen = 0  # the highest version any message of the held store named
        # Decoded chunks of the snapshot being staged, so applying it needs no second decode
        # (after a restart they are decoded again from the staging table). Not those with
        # pictures: they are read back from staging, where their pictures are file names,
        # and thousands of products held across a download leave memory that stays.
        self._decoded: dict[tuple[str, int, int], list[ProductPayload]] = {}
        self._worker = StepWorker(
            "catalog-sync", db, self.poll, min(POLL_SECONDS, retry_seconds), log
        )
        self.malformed = 0  # messages that could not be decoded or used
        self.failed = 0  # applies that rolled back

    @property
    def version(self) -> int:
        """The catalog version this device holds."""
        return self._versions.version()

    @property
    def store(self) -> str:
        """The store whose catalog this device holds ("" before the first)."""
        return self._versions.store()

    @property
    def in_no_store(self) -> bool:
        """The hub said this device is in no store (until the next connection)."""
        return self._no_store

    # -- driven from one thread -------------------------------------------------------

    def connected(self) -> None:
        """After every (re)connect: resume a staged snapshot, or ask what changed since ours."""
        self._no_store = False
        staged = self._staging.state()
        if staged is not None and staged.complete and self._wanted(staged):
            self._apply_snapshot(staged)  # all there: a rollback or crash stopped it
        self._request(self._catch_up(), force=True)

    def request_full(self) -> None:
        """Ask for a whole snapshot (the reload_catalog command): have_version 0 means none."""
        self._staging.clear()
        self._request(self._asking(0, self.store), force=True)

    def poll(self) -> bool:
        """Ask again when an answer is overdue (no message for the retry time); True if so."""
        since = self._waiting_since
        if self._no_store or since is None or self._clock.monotonic() - since < self._retry:
            return False
        log.info("no catalog answer for %.0f s: asking again", self._clock.monotonic() - since)
        self._request(self._catch_up(), force=True)
        return True

    def handle(self, data: bytes) -> Outcome:
        """Apply or stage one message from catalog_down; never raises on bad input."""
        try:
            message = _decode(data)
        except DecodeError as err:
            self.malformed += 1
            log.warning("malformed catalog message ignored: %s", err)
            return "malformed"
        if isinstance(message, CatalogDelta):
            return self.apply_delta(message)
        if isinstance(message, CatalogStatus):
            return self.on_status(message)
        return self.add_chunk(message, raw=data)

    def on_status(self, status: CatalogStatus) -> Outcome:
        """The hub's answer when it has nothing to send."""
        self._waiting_since = None
        held, local = self.store, self.version
        if status.state == "no_store":
            if not self._no_store:
                log.warning(
                    "the hub has this device in no store: keeping catalog %s v%d and not "
                    "asking again until the next connection",
                    *(held or "(none)", local),
                )
            self._no_store = True
            return "no_store"
        if (status.store, status.version) != (held, local):
            # A store with no catalog yet, or an answer overtaken by a delta: keep ours.
            log.info("hub: current is %s v%d; keeping %s v%d", status.store, status.version,
                     held or "(none)", local)  # fmt: skip
        return "current"

    def apply_delta(self, delta: CatalogDelta) -> Outcome:
        """Apply a delta if it is of our store and starts at our version; ask on a gap."""
        upserted = {p.sku for p in delta.upserts}
        if delta.to_version <= delta.from_version or not upserted.isdisjoint(delta.deletes):
            self.malformed += 1
            log.warning("malformed catalog delta %d -> %d", delta.from_version, delta.to_version)
            return "malformed"
        held, local = self.store, self.version
        if delta.store != held:
            # Versions count per store: another store's line never applies to ours. The
            # device was moved: the hub answers our request with a snapshot of the new one.
            log.info("catalog delta of store %r, this device holds %r: asking",
                     delta.store, held)  # fmt: skip
            self._request(self._catch_up())
            return "foreign"
        self._newest_seen = max(self._newest_seen, delta.to_version)
        if delta.to_version <= local:
            log.debug("delta %d -> %d already held", delta.from_version, delta.to_version)
            return "stale"
        if delta.from_version != local:
            log.info(
                "catalog gap: delta %d -> %d, have %d", delta.from_version, delta.to_version, local
            )
            if not self._snapshot_arriving():
                self._request(self._catch_up())
            return "gap"
        try:
            rows = product_rows(delta.upserts, self.pictures.stored)
            self.pictures.sync()
        except CatalogSyncError as err:
            self.malformed += 1
            log.warning(
                "catalog delta %d -> %d refused: %s", delta.from_version, delta.to_version, err
            )
            return "malformed"
        try:
            with self._versions.transaction():
                written = self._versions.write_products(rows, self._clock.now())
                pictured = self._versions.any_picture(delta.deletes)
                deleted = self._versions.delete_products(delta.deletes)
                self._versions.set_version(delta.to_version)
        except Exception:
            self.failed += 1
            log.exception(
                "catalog delta %d -> %d rolled back", delta.from_version, delta.to_version
            )
            self._request(self._asking(local, held))
            return "failed"
        staged = self._staging.state()
        if staged is not None and staged.store == held and staged.version <= delta.to_version:
            self._staging.clear()  # a snapshot we no longer need
        self._waiting_since = None
        if written.pictures_dropped or pictured:
            self.pictures.may_have_left_some()
        self._applied(
            CatalogApplied(
                "delta", local, delta.to_version, len(rows.products), deleted,
                written.stock_corrections, held,
            )
        )  # fmt: skip
        self._collect_pictures()
        return "applied"

    def add_chunk(self, chunk: SnapshotChunk, raw: bytes | None = None) -> Outcome:
        """Stage a snapshot chunk; apply the snapshot when its last chunk is in."""
        if chunk.chunks < 1 or not 0 <= chunk.chunk < chunk.chunks:
            self.malformed += 1
            log.warning("malformed snapshot chunk %d of %d", chunk.chunk, chunk.chunks)
            return "malformed"
        held, local = self.store, self.version
        staged = self._staging.state()
        same_staged = staged is not None and staged.store == chunk.store
        # A rebase snapshot stays one for all its chunks, whichever message carries the flag.
        rebase = chunk.rebase or (
            same_staged and staged is not None and staged.rebase and staged.version == chunk.version
        )
        if chunk.store == held:
            self._newest_seen = max(self._newest_seen, chunk.version)
        # Versions compare only within one store: another store's snapshot always replaces.
        older_than_held = chunk.store == held and chunk.version < local
        older_than_staged = same_staged and staged is not None and chunk.version < staged.version
        if not rebase and (older_than_held or older_than_staged):
            log.debug("snapshot v%d chunk %d is old; ignored", chunk.version, chunk.chunk)
            return "stale"
        now = self._clock.monotonic()
        self._chunk_at = now
        self._waiting_since = now  # mid-snapshot: the next chunk is due within the retry time
        if any((s, v) != (chunk.store, chunk.version) for s, v, _ in self._decoded):
            self._decoded.clear()
        named = self.pictures.named(chunk.products)
        if named is not None:  # staged with file names: the bytes are on disk now
            chunk, raw = replace(chunk, products=named), None
            self.pictures.sync()
        else:
            self._decoded[chunk.store, chunk.version, chunk.chunk] = chunk.products
        staged = self._staging.stage(
            chunk.version, chunk.chunk, chunk.chunks, raw or encode(chunk), self._clock.now(),
            store=chunk.store, rebase=rebase,
        )  # fmt: skip
        if not staged.complete:
            return "staged"
        return self._apply_snapshot(staged)

    # -- internals --------------------------------------------------------------------

    def _wanted(self, staged: StagedSnapshot) -> bool:
        """Whether a staged snapshot would replace what is held once complete."""
        return staged.store != self.store or staged.rebase or staged.version >= self.version

    def _asking(
        self, have: int, store: str, resume: int | None = None, next_chunk: int = 0
    ) -> CatalogRequest:
        return CatalogRequest(
            have_version=have, have_store=store, resume_version=resume,
            next_chunk=next_chunk, max_packet=self._max_packet,
        )  # fmt: skip

    def _catch_up(self) -> CatalogRequest:
        """What to ask for now: the rest of a staged snapshot, or what changed since ours."""
        held, local = self.store, self.version
        staged = self._staging.state()
        if staged is not None and not self._wanted(staged):
            self._staging.clear()
        elif staged is not None and not staged.rebase:
            if staged.store == held:
                return self._asking(local, held, staged.version, staged.next_chunk)
            # A snapshot of the store we were moved to: its version says nothing of ours.
            return self._asking(0, staged.store, staged.version, staged.next_chunk)
        return self._asking(local, held)

    def _apply_snapshot(self, staged: StagedSnapshot) -> Outcome:
        held, local = self.store, self.version
        version, store = staged.version, staged.store
        try:
            rows = product_rows(self._snapshot_products(staged), self.pictures.stored_or_named)
            self.pictures.sync()
        except (DecodeError, CatalogSyncError) as err:
            self.malformed += 1
            log.warning("snapshot %s v%d refused, asking again: %s", store, version, err)
            self._staging.clear()
            self._request(self._asking(local, held), force=True)
            return "malformed"
        try:
            # Rows made before the transaction: the write lock is held for SQL only.
            with self._versions.transaction():
                # Read before the write: only products held before can be missing from it.
                gone = self._versions.skus().difference(row[0] for row in rows.products)
                written = self._versions.write_products(rows, self._clock.now())
                deleted = self._versions.delete_products(gone)
                self._versions.set_version(version, store)
                self._staging.clear()
        except Exception:
            self.failed += 1
            log.exception(
                "catalog snapshot %s v%d rolled back; still at v%d", store, version, local
            )
            return "failed"
        self._chunk_at = None
        self._waiting_since = None
        self._decoded.clear()
        if store != held or staged.rebase:
            self._newest_seen = version  # the numbers seen before were another line's
            why = " (the hub's line went back)" if staged.rebase else ""
            level = logging.WARNING if held else logging.INFO  # a move, not a first catalog
            log.log(level, "catalog replaced: %s v%d -> %s v%d%s",
                    held or "(none)", local, store, version, why)  # fmt: skip
        self._applied(
            CatalogApplied(
                "snapshot", local, version, len(rows.products), deleted,
                written.stock_corrections, store,
            )
        )  # fmt: skip
        self.pictures.may_have_left_some()  # a snapshot replaces whatever was held
        self._collect_pictures()
        # Staging and merging a whole catalog filled this worker's page cache (up to the
        # database's cache_size, megabytes the kiosk could use): deltas touch a few pages.
        self._versions.release_memory()
        if self._newest_seen > version:
            self._request(self._asking(version, store))  # deltas that came meanwhile
        return "applied"

    def _snapshot_products(self, staged: StagedSnapshot) -> Iterator[ProductPayload]:
        key, chunks = (staged.store, staged.version), staged.chunks
        if all((*key, k) in self._decoded for k in range(chunks)):
            for k in range(chunks):
                yield from self._decoded[(*key, k)]
            return
        for body in list(self._staging.bodies(staged.version)):
            yield from decode(body, SnapshotChunk).products

    def _collect_pictures(self) -> None:
        """Remove picture files no product shows any more, when an apply may have left some."""
        if not self.pictures.collect_due or self._staging.state() is not None:
            return  # nothing to do, or a snapshot on its way names pictures no row shows yet
        try:
            self.pictures.collect(self._versions.pictures())
        except OSError:
            log.warning("unused product pictures not removed; trying after the next apply",
                        exc_info=True)  # fmt: skip

    def _applied(self, event: CatalogApplied) -> None:
        log.info(
            "catalog %s applied: %s v%d -> v%d, %d product(s), %d deleted, %d stock correction(s)",
            *(event.kind, event.store or "(no store)", event.from_version, event.version),
            *(event.upserts, event.deletes, event.stock_corrections),
        )
        if self._bus is not None:
            self._bus.post(event)

    def _snapshot_arriving(self) -> bool:
        """A snapshot is streaming in now: a gap will be closed by it, no need to ask."""
        return self._chunk_at is not None and self._clock.monotonic() - self._chunk_at < self._retry

    def _request(self, request: CatalogRequest, *, force: bool = False) -> None:
        if self._no_store and not force:
            return  # the hub said this device is in no store; the next connection asks
        now = self._clock.monotonic()
        last = self._last_request
        if not force and last is not None and last[0] == request and now - last[1] < self._retry:
            return
        self._last_request = (request, now)
        self._waiting_since = now
        log.info("catalog request: have %s v%d, resume %s", request.have_store or "(none)",
                 request.have_version,
                 f"v{request.resume_version} at {request.next_chunk}" if request.resume_version
                 else "none")  # fmt: skip
        try:
            self._publish(topics.catalog_request(self._device), encode(request))
        except Exception:
            # Offline: the next reconnect (or the retry) asks again; nothing is lost.
            log.warning("catalog request not sent", exc_info=True)

    # -- worker thread ----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread that applies submitted messages (off the main loop)."""
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work and stop the worker; safe twice."""
        self._worker.stop(timeout)

    def submit(self, message: bytes | Message) -> None:
        """Queue a catalog_down message (raw or decoded) for the worker; safe from any thread."""
        self._worker.put(partial(self._take, message))

    def notify_connected(self) -> None:
        """Queue the after-(re)connect resync for the worker; safe from any thread."""
        self._worker.put(self.connected)

    def notify_reload(self) -> None:
        """Queue `request_full` for the worker (the reload_catalog command); any thread."""
        self._worker.put(self.request_full)

    def wait_idle(self, timeout: float) -> bool:
        """Block until the worker has processed everything queued; for tests and shutdown."""
        return self._worker.wait_idle(timeout)

    def _take(self, message: bytes | Message) -> None:
        if isinstance(message, CatalogDelta):
            self.apply_delta(message)
        elif isinstance(message, SnapshotChunk):
            self.add_chunk(message)
        elif isinstance(message, CatalogStatus):
            self.on_status(message)
        else:
            self.handle(message)
