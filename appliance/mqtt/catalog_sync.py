"""Catalog, prices and stock from the hub: versioned deltas and chunked, resumable snapshots.

The device holds one catalog version (meta 'catalog_version'). A delta `from -> to` is
applied only when `from` is the version held; a gap, a reconnect or a failed apply asks
the hub (CatalogRequest on catalog_request(device)), which answers with a delta or a
snapshot. Snapshot chunks are staged durably and applied when all of a version are
there; after a reconnect the download resumes at the first missing chunk. Every apply is
ONE transaction: products, deletes, the hub's stock corrections and the new version.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

from peewee import SqliteDatabase

from appliance.core.catalog import Product
from appliance.core.clock import Clock, SystemClock
from appliance.core.events import Event, EventBus
from appliance.core.money import is_known_currency
from appliance.errors import CatalogSyncError, DecodeError
from appliance.mqtt import topics
from appliance.mqtt.dispatch import decode_catalog
from appliance.mqtt.payloads import (
    CatalogDelta,
    CatalogRequest,
    ProductPayload,
    SnapshotChunk,
    decode,
    encode,
)
from appliance.store.catalog_versions import CatalogVersions, ProductRows, SnapshotStaging

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload); the caller publishes QoS 1
Outcome = Literal["applied", "staged", "stale", "gap", "malformed", "failed"]
RETRY_SECONDS = 30.0  # the same request is not repeated sooner (a burst of gapped deltas)


@dataclass(frozen=True, slots=True)
class CatalogApplied(Event):
    """The catalog moved to a new hub version (posted from the sync worker)."""

    kind: Literal["delta", "snapshot"]
    from_version: int
    version: int
    upserts: int
    deletes: int
    stock_corrections: int


@cache
def _currency_ok(code: str) -> bool:
    return is_known_currency(code)


def _decode(data: bytes) -> CatalogDelta | SnapshotChunk:
    """Snapshot chunks are the big messages: one strict decode; anything else by its kind."""
    try:
        return decode(data, SnapshotChunk)
    except DecodeError:
        return decode_catalog(data)


def product_rows(payloads: Iterable[ProductPayload]) -> ProductRows:
    """The store's rows for the hub's products; CatalogSyncError on an unusable or repeated one.

    Checked here, before any write, so a bad product refuses the whole delta or snapshot.
    A snapshot brings 100,000 of these: the loop stays lean on purpose.
    """
    products: list[tuple[Any, ...]] = []
    barcodes: list[tuple[str, str]] = []
    add, add_code = products.append, barcodes.append
    for p in payloads:
        sku = p.sku
        if not sku or not p.name or p.price < 0 or not _currency_ok(p.currency):
            raise CatalogSyncError(f"product {sku!r}: needs a name and a price in a currency")
        for key in p.barcodes:
            # Normalised 14-digit keys; the hub checked their check digits at import.
            if len(key) != 14 or not (key.isascii() and key.isdigit()):
                raise CatalogSyncError(f"product {sku}: barcode {key!r} is not a GTIN-14")
            add_code((key, sku))
        names = json.dumps(p.names, ensure_ascii=False) if p.names else "{}"
        add((sku, p.name, names, p.price, p.currency, p.tax_class, p.category,
             p.age_restriction, p.stock_tracked, p.sold_by, p.stock))  # fmt: skip
    if len({row[0] for row in products}) != len(products):
        raise CatalogSyncError("a product appears twice")
    return ProductRows(products, barcodes)


def payload_from_product(product: Product, stock: int | None = None) -> ProductPayload:
    """The payload the hub sends for a product (with `stock` when it corrects the level)."""
    return ProductPayload(
        sku=product.sku,
        name=product.name,
        price=product.price.minor,
        currency=product.price.currency,
        tax_class=product.tax_class,
        category=product.category,
        age_restriction=product.age_restriction,
        stock_tracked=product.stock_tracked,
        sold_by=product.sold_by,
        names=dict(product.names),
        barcodes=list(product.barcodes),
        stock=stock,
    )


class CatalogSync:
    """Applies the hub's catalog messages to the store; asks for what is missing.

    Not thread-safe: call `handle`/`connected` from one thread, or `start()` the worker
    and use `submit`/`notify_connected`, which any thread (paho's included) may call.
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
    ) -> None:
        self._db = db
        self._device = device
        self._publish = publish
        self._bus = bus
        self._clock = clock or SystemClock()
        self._retry = retry_seconds
        self._versions = CatalogVersions(db)
        self._staging = SnapshotStaging(db)
        self._last_request: tuple[CatalogRequest, float] | None = None
        self._chunk_at: float | None = None  # when the last snapshot chunk arrived
        self._newest_seen = 0  # the highest version any message named
        # Decoded chunks of the snapshot being staged, so applying it needs no second decode
        # (after a restart they are decoded again from the staging table).
        self._decoded: dict[tuple[int, int], list[ProductPayload]] = {}
        self._inbox: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._pending = 0
        self._pending_lock = threading.Condition()
        self.malformed = 0  # messages that could not be decoded or used
        self.failed = 0  # applies that rolled back

    @property
    def version(self) -> int:
        """The catalog version this device holds."""
        return self._versions.version()

    # -- driven from one thread -------------------------------------------------------

    def connected(self) -> None:
        """After every (re)connect: resume a staged snapshot, or ask what changed since ours."""
        staged = self._staging.state()
        if staged is not None and staged.complete and staged.version >= self.version:
            self._apply_snapshot(staged.version)  # all there: a rollback or crash stopped it
            staged = self._staging.state()
        local = self.version
        if staged is not None and staged.version >= local:
            self._request(
                CatalogRequest(
                    have_version=local,
                    resume_version=staged.version,
                    next_chunk=staged.next_chunk,
                ),
                force=True,
            )
            return
        if staged is not None:
            self._staging.clear()
        self._request(CatalogRequest(have_version=local), force=True)

    def request_full(self) -> None:
        """Ask for a whole snapshot (the reload_catalog command): have_version 0 means none."""
        self._staging.clear()
        self._request(CatalogRequest(have_version=0), force=True)

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
        return self.add_chunk(message, raw=data)

    def apply_delta(self, delta: CatalogDelta) -> Outcome:
        """Apply a delta if it starts at our version; ask for the rest on a gap."""
        upserted = {p.sku for p in delta.upserts}
        if delta.to_version <= delta.from_version or not upserted.isdisjoint(delta.deletes):
            self.malformed += 1
            log.warning("malformed catalog delta %d -> %d", delta.from_version, delta.to_version)
            return "malformed"
        local = self.version
        self._newest_seen = max(self._newest_seen, delta.to_version)
        if delta.to_version <= local:
            log.debug("delta %d -> %d already held", delta.from_version, delta.to_version)
            return "stale"
        if delta.from_version != local:
            log.info(
                "catalog gap: delta %d -> %d, have %d", delta.from_version, delta.to_version, local
            )
            if not self._snapshot_arriving():
                self._request(CatalogRequest(have_version=local))
            return "gap"
        try:
            rows = product_rows(delta.upserts)
        except CatalogSyncError as err:
            self.malformed += 1
            log.warning(
                "catalog delta %d -> %d refused: %s", delta.from_version, delta.to_version, err
            )
            return "malformed"
        try:
            with self._versions.transaction():
                moved = self._versions.write_products(rows, self._clock.now())
                deleted = self._versions.delete_products(delta.deletes)
                self._versions.set_version(delta.to_version)
        except Exception:
            self.failed += 1
            log.exception(
                "catalog delta %d -> %d rolled back", delta.from_version, delta.to_version
            )
            self._request(CatalogRequest(have_version=local))
            return "failed"
        staged = self._staging.state()
        if staged is not None and staged.version <= delta.to_version:
            self._staging.clear()  # a snapshot we no longer need
        self._applied(
            CatalogApplied("delta", local, delta.to_version, len(rows.products), deleted, moved)
        )
        return "applied"

    def add_chunk(self, chunk: SnapshotChunk, raw: bytes | None = None) -> Outcome:
        """Stage a snapshot chunk; apply the snapshot when its last chunk is in."""
        if chunk.chunks < 1 or not 0 <= chunk.chunk < chunk.chunks:
            self.malformed += 1
            log.warning("malformed snapshot chunk %d of %d", chunk.chunk, chunk.chunks)
            return "malformed"
        local = self.version
        self._newest_seen = max(self._newest_seen, chunk.version)
        staged = self._staging.state()
        if chunk.version < local or (staged is not None and chunk.version < staged.version):
            log.debug("snapshot v%d chunk %d is old; ignored", chunk.version, chunk.chunk)
            return "stale"
        self._chunk_at = self._clock.monotonic()
        if any(v != chunk.version for v, _ in self._decoded):
            self._decoded.clear()
        self._decoded[chunk.version, chunk.chunk] = chunk.products
        staged = self._staging.stage(
            chunk.version, chunk.chunk, chunk.chunks, raw or encode(chunk), self._clock.now()
        )
        if not staged.complete:
            return "staged"
        return self._apply_snapshot(chunk.version)

    # -- internals --------------------------------------------------------------------

    def _apply_snapshot(self, version: int) -> Outcome:
        local = self.version
        try:
            rows = product_rows(self._snapshot_products(version))
        except (DecodeError, CatalogSyncError) as err:
            self.malformed += 1
            log.warning("snapshot v%d refused, asking again: %s", version, err)
            self._staging.clear()
            self._request(CatalogRequest(have_version=local), force=True)
            return "malformed"
        try:
            # Rows made before the transaction: the write lock is held for SQL only.
            with self._versions.transaction():
                # Read before the write: only products held before can be missing from it.
                gone = self._versions.skus().difference(row[0] for row in rows.products)
                moved = self._versions.write_products(rows, self._clock.now())
                deleted = self._versions.delete_products(gone)
                self._versions.set_version(version)
                self._staging.clear()
        except Exception:
            self.failed += 1
            log.exception("catalog snapshot v%d rolled back; still at v%d", version, local)
            return "failed"
        self._chunk_at = None
        self._decoded.clear()
        self._applied(
            CatalogApplied("snapshot", local, version, len(rows.products), deleted, moved)
        )
        if self._newest_seen > version:
            self._request(CatalogRequest(have_version=version))  # deltas that came meanwhile
        return "applied"

    def _snapshot_products(self, version: int) -> Iterator[ProductPayload]:
        staged = self._staging.state()
        chunks = staged.chunks if staged is not None and staged.version == version else 0
        if chunks and all((version, k) in self._decoded for k in range(chunks)):
            for k in range(chunks):
                yield from self._decoded[version, k]
            return
        for body in list(self._staging.bodies(version)):
            yield from decode(body, SnapshotChunk).products

    def _applied(self, event: CatalogApplied) -> None:
        log.info(
            "catalog %s applied: v%d -> v%d, %d product(s), %d deleted, %d stock correction(s)",
            *(event.kind, event.from_version, event.version),
            *(event.upserts, event.deletes, event.stock_corrections),
        )
        if self._bus is not None:
            self._bus.post(event)

    def _snapshot_arriving(self) -> bool:
        """A snapshot is streaming in now: a gap will be closed by it, no need to ask."""
        return self._chunk_at is not None and self._clock.monotonic() - self._chunk_at < self._retry

    def _request(self, request: CatalogRequest, *, force: bool = False) -> None:
        now = self._clock.monotonic()
        last = self._last_request
        if not force and last is not None and last[0] == request and now - last[1] < self._retry:
            return
        self._last_request = (request, now)
        log.info("catalog request: have v%d, resume %s", request.have_version,
                 f"v{request.resume_version} at {request.next_chunk}" if request.resume_version
                 else "none")  # fmt: skip
        try:
            self._publish(topics.catalog_request(self._device), encode(request))
        except Exception:
            # Offline: the next reconnect asks again, so nothing is lost by dropping it.
            log.warning("catalog request not sent", exc_info=True)

    # -- worker thread ----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread that applies submitted messages (off the main loop)."""
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="catalog-sync", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work and stop the worker; safe twice."""
        worker, self._worker = self._worker, None
        if worker is not None:
            self._inbox.put(None)
            worker.join(timeout)

    def submit(self, message: bytes | CatalogDelta | SnapshotChunk) -> None:
        """Queue a catalog_down message (raw or decoded) for the worker; safe from any thread."""
        self._queue(partial(self._take, message))

    def notify_connected(self) -> None:
        """Queue the after-(re)connect resync for the worker; safe from any thread."""
        self._queue(self.connected)

    def notify_reload(self) -> None:
        """Queue `request_full` for the worker (the reload_catalog command); any thread."""
        self._queue(self.request_full)

    def wait_idle(self, timeout: float) -> bool:
        """Block until the worker has processed everything queued; for tests and shutdown."""
        with self._pending_lock:
            return self._pending_lock.wait_for(lambda: self._pending == 0, timeout)

    def _take(self, message: bytes | CatalogDelta | SnapshotChunk) -> None:
        if isinstance(message, CatalogDelta):
            self.apply_delta(message)
        elif isinstance(message, SnapshotChunk):
            self.add_chunk(message)
        else:
            self.handle(message)

    def _queue(self, step: Callable[[], object]) -> None:
        with self._pending_lock:
            self._pending += 1
        self._inbox.put(step)

    def _run(self) -> None:
        try:
            while (step := self._inbox.get()) is not None:
                try:
                    step()
                except Exception:
                    log.exception("catalog sync step failed")
                finally:
                    with self._pending_lock:
                        self._pending -= 1
                        self._pending_lock.notify_all()
        finally:
            if not self._db.is_closed():
                self._db.close()  # peewee's per-thread connection of this worker
