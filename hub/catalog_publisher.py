"""Sends a store's catalog down to its devices: deltas after a change, answers to requests.

Everything goes on catalog_down(device), QoS 1. A device asks (CatalogRequest) after every
reconnect, on a version gap and when an answer is overdue; every request is answered: a
delta when one is small enough, a chunked snapshot otherwise (always when the device holds
another store's catalog, or a version this store never reached), the rest of a snapshot it
was already receiving, or a CatalogStatus when there is nothing to send. Not every device
has to be online for a change: the others catch up when they reconnect.

Every message fits the Maximum Packet Size the device announced (CatalogRequest.max_packet)
less HEADROOM for the PUBLISH packet's own bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from peewee import Database

from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.payloads import CatalogRequest, CatalogStatus, Payload, decode, encode
from hub.catalog import CHUNK_BYTES, CHUNK_SIZE, DELTA_LIMIT, HubCatalog
from hub.stock_levels import SoldLine, stock_levels
from hub.stores import devices_of, store_of

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload); the caller publishes QoS 1
SalesSource = Callable[[str], Iterable[SoldLine]]  # a store's sold lines, like store_sales

# Bytes of a PUBLISH packet besides its payload, kept free below the device's limit: fixed
# header 5, topic 2 + at most 86 (`pos/v1/d/` + a 64-character id + `/down/catalog`),
# packet id 2, properties 4 + what a broker may add on delivery (a subscription
# identifier, a topic alias, a message expiry: 15 together). 114 in all; 1 KiB is plenty.
HEADROOM = 1024


def payload_budget(max_packet: int | None) -> int:
    """The payload bytes a catalog message may have for a device announcing `max_packet`."""
    if max_packet is None:
        return CHUNK_BYTES
    return max(1, min(CHUNK_BYTES, max_packet - HEADROOM))


class CatalogPublisher:
    """Computes what each device needs and publishes it; call from one worker thread.

    `sales`, when given, makes snapshots carry the hub's current stock levels (count
    minus sales ingested since); without it they carry the level last sent.
    """

    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        chunk_size: int = CHUNK_SIZE,
        delta_limit: int = DELTA_LIMIT,
        sales: SalesSource | None = None,
    ) -> None:
        self._db = db
        self._publish = publish
        self._chunk_size = chunk_size
        self._delta_limit = delta_limit
        self._sales = sales
        # The limit each device gave in its last request to this worker. A push to a device
        # not in here uses the default chunking, the same as for a device announcing none.
        self._max_packet: dict[str, int | None] = {}
        self.malformed = 0  # requests that could not be decoded

    def publish_update(self, store: str, from_version: int, to_version: int | None = None) -> int:
        """After a change: send it to every device of the store; returns messages sent."""
        catalog = HubCatalog(self._db, store)
        to = catalog.version() if to_version is None else to_version
        devices = devices_of(self._db, store)
        if to <= from_version or not devices:
            return 0
        by_budget: dict[int, list[str]] = {}
        for device in devices:
            by_budget.setdefault(payload_budget(self._max_packet.get(device)), []).append(device)
        sent = 0
        for budget, group in by_budget.items():
            messages = self._change(catalog, from_version, to, budget)
            for device in group:
                self._send(device, messages)
            sent += len(messages) * len(group)
            log.info(
                "catalog of %s v%d -> v%d sent to %d device(s) in %d message(s) each",
                *(store, from_version, to, len(group), len(messages)),
            )
        return sent

    def on_request(self, device: str, data: bytes) -> int:
        """A message on catalog_request(device); malformed ones are counted, never raised."""
        try:
            request = decode(data, CatalogRequest)
        except DecodeError as err:
            self.malformed += 1
            log.warning("malformed catalog request from %s: %s", device, err)
            return 0
        return self.answer(device, request)

    def answer(self, device: str, request: CatalogRequest) -> int:
        """Send what the device is missing, or a status; returns how many messages went out."""
        self._max_packet[device] = request.max_packet
        store = store_of(self._db, device)
        if store is None:
            log.warning("catalog request from %s, which is in no store: told so", device)
            messages = [encode(CatalogStatus(state="no_store"))]
        else:
            messages = self._answer(device, store, request)
        self._send(device, messages)
        log.info(
            "catalog request from %s (have %s v%d%s): %d message(s)",
            device, request.have_store or "-", request.have_version,
            "" if request.resume_version is None else f", resume v{request.resume_version}",
            len(messages),
        )  # fmt: skip
        return len(messages)

    def _answer(self, device: str, store: str, request: CatalogRequest) -> list[bytes]:
        catalog = HubCatalog(self._db, store)
        current = catalog.version()
        budget = payload_budget(request.max_packet)
        have, resume = request.have_version, request.resume_version
        # A version counts only on its own store's line; "" with a version is an older
        # device that cannot say which store it holds: it gets a snapshot too.
        same_store = request.have_store == store
        if (have == 0 and current == 0) or (same_store and have == current):
            return [encode(CatalogStatus(store=store, version=current, state="current"))]
        if current == 0:
            # Another store's catalog, and this one has none yet: nothing can replace it.
            log.warning("%s holds %s v%d; %s has no catalog yet", device,
                        request.have_store, have, store)  # fmt: skip
            return [encode(CatalogStatus(store=store, version=0, state="current"))]
        if same_store and resume is not None and have < resume <= current:
            # The rest of the snapshot it was receiving, then what changed since then.
            chunks = self._snapshot(catalog, resume, budget)
            rest = chunks[request.next_chunk :] if request.next_chunk < len(chunks) else chunks
            messages = [encode(chunk) for chunk in rest]
            if resume < current:
                messages += self._change(catalog, resume, current, budget)
            return messages
        if not same_store and have > 0:
            log.info("%s holds %s v%d, belongs to %s: a snapshot", device,
                     request.have_store or "an unnamed store", have, store)  # fmt: skip
            return [encode(chunk) for chunk in self._snapshot(catalog, current, budget)]
        if have > current:
            # A restored or replaced hub database: the hub's catalog is the truth.
            log.warning("%s holds v%d of %s, which is only at v%d: a rebase snapshot",
                        device, have, store, current)  # fmt: skip
            chunks = self._snapshot(catalog, current, budget, rebase=True)
            return [encode(chunk) for chunk in chunks]
        return self._change(catalog, have, current, budget)

    def _change(self, catalog: HubCatalog, have: int, to: int, budget: int) -> list[bytes]:
        """A delta when the device has a version and the change is small; else a snapshot."""
        delta = catalog.delta(have, to, limit=self._delta_limit) if have > 0 else None
        if delta is not None:
            data = encode(delta)
            if len(data) <= budget:
                return [data]
        chunks: Sequence[Payload] = self._snapshot(catalog, to, budget)
        return [encode(chunk) for chunk in chunks]

    def _snapshot(
        self, catalog: HubCatalog, version: int, budget: int, *, rebase: bool = False
    ) -> list[Payload]:
        levels = None
        if self._sales is not None:
            levels = {s.sku: s.level for s in stock_levels(catalog, self._sales(catalog.store))}
        return list(
            catalog.snapshot_chunks(
                version, self._chunk_size, levels, max_bytes=budget, rebase=rebase
            )
        )

    def _send(self, device: str, messages: list[bytes]) -> None:
        topic = topics.catalog_down(device)
        for message in messages:
            self._publish(topic, message)
