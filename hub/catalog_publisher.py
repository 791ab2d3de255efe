"""Sends a store's catalog down to its devices: deltas after an import, answers to requests.

Everything goes on catalog_down(device), QoS 1. A device asks (CatalogRequest) after every
reconnect and on a version gap; the answer is a delta when one is small enough, a
chunked snapshot otherwise, or the rest of a snapshot it was already receiving. Not
every device has to be online for an import: the others catch up when they reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from peewee import Database

from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.payloads import CatalogRequest, Payload, decode, encode
from hub.catalog import CHUNK_SIZE, DELTA_LIMIT, HubCatalog, SoldLine, devices_of, store_of

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload); the caller publishes QoS 1
SalesSource = Callable[[str], Iterable[SoldLine]]  # a store's sold lines (hub.catalog.store_sales)


class CatalogPublisher:
    """Computes what each device needs and publishes it; call from one worker thread.

    `sales`, when given, makes snapshots carry the hub's current stock levels (count
    minus sales ingested since); without it they carry the last count.
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
        self.malformed = 0  # requests that could not be decoded

    def publish_update(self, store: str, from_version: int, to_version: int | None = None) -> int:
        """After an import: send the change to every device of the store; returns messages."""
        catalog = HubCatalog(self._db, store)
        to = catalog.version() if to_version is None else to_version
        devices = devices_of(self._db, store)
        if to <= from_version or not devices:
            return 0
        messages = self._change(catalog, from_version, to)
        for device in devices:
            self._send(device, messages)
        log.info(
            "catalog of %s v%d -> v%d sent to %d device(s) in %d message(s) each",
            *(store, from_version, to, len(devices), len(messages)),
        )
        return len(messages) * len(devices)

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
        """Send what the device is missing; returns how many messages went out."""
        store = store_of(self._db, device)
        if store is None:
            log.warning("catalog request from %s, which is in no store", device)
            return 0
        catalog = HubCatalog(self._db, store)
        current = catalog.version()
        have, resume = request.have_version, request.resume_version
        if resume is not None and have < resume <= current:
            # The rest of the snapshot it was receiving, then what changed since then.
            rest = catalog.snapshot_chunks(resume, self._chunk_size, self._levels(catalog))
            messages = [encode(c) for c in rest[request.next_chunk :]]
            if resume < current:
                messages += self._change(catalog, resume, current)
        elif have == current:
            return 0
        elif have > current:
            # A restored or replaced hub database: the device keeps what it has; say so.
            log.warning("%s holds v%d of %s, which is only at v%d", device, have, store, current)
            return 0
        else:
            messages = self._change(catalog, have, current)
        self._send(device, messages)
        log.info(
            "catalog request from %s (have v%d%s): %d message(s)",
            *(device, have, "" if resume is None else f", resume v{resume}", len(messages)),
        )
        return len(messages)

    def _change(self, catalog: HubCatalog, have: int, to: int) -> list[bytes]:
        """A delta when the device has a version and the change is small; else a snapshot."""
        delta = catalog.delta(have, to, limit=self._delta_limit) if have > 0 else None
        if delta is not None:
            return [encode(delta)]
        chunks: Sequence[Payload] = catalog.snapshot_chunks(
            to, self._chunk_size, self._levels(catalog)
        )
        return [encode(chunk) for chunk in chunks]

    def _levels(self, catalog: HubCatalog) -> dict[str, int] | None:
        if self._sales is None:
            return None
        return {s.sku: s.level for s in catalog.stock_levels(self._sales(catalog.store))}

    def _send(self, device: str, messages: list[bytes]) -> None:
        topic = topics.catalog_down(device)
        for message in messages:
            self._publish(topic, message)
