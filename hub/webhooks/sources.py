"""Where the hub's events come from: new sales (in their transaction) and device status.

`SaleEvents` is SalesIngest's `on_stored`: inside the batch's transaction it records
sale.created / refund.created / sale.voided for each new sale, and stock.changed for each
stock-tracked product the batch moved in the device's store, with the level after it.
`DeviceEvents` is HubServer's `after_status`: device.online for a birth, device.offline
for a current will. Both only read and write the hub database; delivery is elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from peewee import Database, DatabaseError

from appliance.core.clock import Clock, SystemClock
from appliance.mqtt.payloads import DeviceStatus
from hub.prepared import Prepared
from hub.stock_levels import current_levels
from hub.store_locks import lock_store
from hub.stores import store_of
from hub.webhooks.events import (
    DEVICE_OFFLINE,
    DEVICE_ONLINE,
    STOCK_CHANGED,
    Event,
    record_many,
    subscribers,
)
from hub.webhooks.payloads import (
    SALE_EVENT_TYPES,
    StockData,
    device_data,
    sale_data,
    to_data,
)

log = logging.getLogger(__name__)


class SaleEvents:
    """SalesIngest's on_stored: the webhook events of a batch's new sales, in its transaction."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._sql = Prepared(db)  # asked per sales batch: rendered once

    def __call__(self, device: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record the events of `rows` (the sales just inserted for `device`)."""
        db = self._db
        types = [*SALE_EVENT_TYPES.values(), STOCK_CHANGED]
        endpoints = subscribers(db, types, prepared=self._sql)
        if not endpoints:
            return  # the common case: one query, nothing written
        events: list[Event] = []
        for row in rows:
            type_ = SALE_EVENT_TYPES.get(str(row["kind"]))
            store = row.get("store")
            if type_ is not None and any(sub.wants(type_, store) for sub in endpoints):
                with _unless_broken(device, row["sale_id"]):
                    data = to_data(sale_data(row))
                    events.append(Event(type_, data, store, f"sale:{device}:{row['sale_id']}"))
        stores = {row.get("store") for row in rows}
        for store in stores:
            if store is not None and any(sub.wants(STOCK_CHANGED, store) for sub in endpoints):
                with _unless_broken(device, "stock"):
                    events.extend(self._stock_events(device, store, rows))
        # A database error here propagates: the batch rolls back and the device sends it
        # again, so its events are recorded with it or not at all.
        record_many(db, events, now=self._clock.now(), endpoints=endpoints)

    def _stock_events(
        self, device: str, store: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[Event]:
        # Each product the batch moved, with the last sale that moved it; the level read
        # now (in the transaction) already counts every sale of the batch.
        moved: dict[str, str] = {}
        for row in rows:
            if row.get("store") != store:
                continue
            for sku in _tracked_skus(row["document"]):
                moved[sku] = str(row["sale_id"])
        if not moved:
            return []
        # Another worker may be storing a sale of this store right now: wait for it, so
        # the level read below counts its sales too and the last level sent is right.
        lock_store(self._db, store)
        levels = current_levels(self._db, store, sorted(moved))
        events = []
        for sku, sale_id in moved.items():
            level = levels.get(sku)
            if level is None:
                continue  # not stock-tracked here, or never counted: no level to tell
            data = StockData(
                store=store, sku=sku, level=level, cause="sale", sale_id=sale_id, device=device
            )
            key = f"stock:{store}:{sku}:sale:{device}:{sale_id}"
            events.append(Event(STOCK_CHANGED, to_data(data), store, key))
        return events


class DeviceEvents:
    """HubServer's after_status: device.online / device.offline once a status is recorded.

    A retained birth can arrive again (a reconnect, a resync): the event is keyed by the
    device, its session (bd_seq) and the state, so the same status is one event.
    """

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def __call__(self, device: str, status: DeviceStatus) -> None:
        """Record the event of a birth (online) or a current will (offline)."""
        type_ = DEVICE_ONLINE if status.online else DEVICE_OFFLINE
        db = self._db
        with db.atomic():
            endpoints = subscribers(db, [type_])
            if not endpoints:
                return
            store = store_of(db, device)
            data = to_data(device_data(status, store, self._clock.now()))
            state = "online" if status.online else "offline"
            key = f"device:{device}:{status.bd_seq}:{state}"
            event = Event(type_, data, store, key)
            record_many(db, [event], now=self._clock.now(), endpoints=endpoints)


class _Line(msgspec.Struct):
    sku: str
    stock_tracked: bool = True


class _Lines(msgspec.Struct):
    lines: list[_Line]


_lines_decoder = msgspec.json.Decoder(_Lines)


def _tracked_skus(document: str | bytes) -> list[str]:
    return [line.sku for line in _lines_decoder.decode(document).lines if line.stock_tracked]


@contextmanager
def _unless_broken(device: str, what: object) -> Iterator[None]:
    # A sale the hub has just accepted is never refused because its webhook cannot be
    # built (that would stall the device's stream on a bug here): it is stored without
    # the event, loudly. Database errors are not caught: the batch must roll back whole.
    try:
        yield
    except DatabaseError:
        raise
    except Exception:
        log.exception("no webhook event for %s of %s: building it failed", what, device)
