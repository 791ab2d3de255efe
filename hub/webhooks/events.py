"""Recording webhook events in the transaction of the change that causes them.

`record` writes the event and one pending delivery per endpoint subscribed to its type
(and, for an endpoint limited to a store, to that store) using the caller's connection,
so the event commits with the change or not at all. Nothing is written when no endpoint
wants it. The event id derives from `key` (what the fact is: "sale:<device>:<sale_id>"),
so the same fact recorded twice, by a retried transaction or a birth delivered again,
stays one event, and receivers see one `webhook-id` for it.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from peewee import Database

from hub.prepared import Prepared
from hub.webhooks.models import (
    PENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookOrigin,
)

SALE_CREATED = "sale.created"
REFUND_CREATED = "refund.created"
SALE_VOIDED = "sale.voided"
STOCK_CHANGED = "stock.changed"
PRODUCT_CHANGED = "product.changed"
DEVICE_ONLINE = "device.online"
DEVICE_OFFLINE = "device.offline"

EVENT_TYPES: tuple[str, ...] = (
    SALE_CREATED,
    REFUND_CREATED,
    SALE_VOIDED,
    STOCK_CHANGED,
    PRODUCT_CHANGED,
    DEVICE_ONLINE,
    DEVICE_OFFLINE,
)

_T = TypeVar("_T")
_CHUNK = 200  # rows per INSERT: well below either database's parameter limit


@dataclass(frozen=True, slots=True)
class Event:
    """One fact to record: its type, data, store (None: no store) and identifying key."""

    type: str
    payload: Mapping[str, Any]
    store: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An endpoint as the recording sees it: which types it wants, of which store."""

    endpoint: str
    types: frozenset[str]
    store: str | None  # None: every store

    def wants(self, type_: str, store: str | None) -> bool:
        """Whether an event of `type_` in `store` goes to this endpoint."""
        return type_ in self.types and (self.store is None or self.store == store)


def event_id(type_: str, key: str, origin: str) -> str:
    """The deterministic id of the event `key` identifies in the hub database `origin`."""
    digest = hashlib.sha256(f"{origin}\n{type_}\n{key}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


_origins: weakref.WeakKeyDictionary[Database, str] = weakref.WeakKeyDictionary()


def origin_of(db: Database) -> str:
    """The hub database's own random id (WebhookOrigin), read once per database object."""
    found = _origins.get(db)
    if found is None:
        found = str(WebhookOrigin.select(WebhookOrigin.id).scalar(db))
        _origins[db] = found
    return found


def rfc3339(moment: datetime) -> str:
    """A moment as RFC 3339 UTC text with `Z` (naive counts as UTC), to the millisecond."""
    return _utc_naive(moment).isoformat(timespec="milliseconds") + "Z"


def _utc_naive(moment: datetime) -> datetime:
    # Naive counts as UTC (the hub stores naive UTC), never as the machine's local time.
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def event_body(type_: str, payload: Mapping[str, Any], moment: datetime) -> str:
    """The JSON body receivers get: `{"type", "timestamp", "data"}`."""
    body = {"type": type_, "timestamp": rfc3339(moment), "data": payload}
    return msgspec.json.encode(body).decode()


def record(
    db: Database,
    type: str,
    payload: Mapping[str, Any],
    *,
    store: str | None,
    key: str,
    now: datetime | None = None,
) -> None:
    """Queue `payload` as a `type` event for every endpoint subscribed, in db's transaction."""
    record_many(db, [Event(type, payload, store, key)], now=now)


def record_many(
    db: Database,
    events: Sequence[Event],
    *,
    now: datetime | None = None,
    endpoints: Sequence[Subscriber] | None = None,
) -> int:
    """Queue several events with one look at the endpoints; returns deliveries written.

    `endpoints`: what `subscribers` just returned in this transaction, to save the query.
    """
    if not events:
        return 0
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook event type {event.type!r}")
    if endpoints is None:
        endpoints = subscribers(db, {event.type for event in events})
    if not endpoints:
        return 0
    moment = _utc_naive(now or datetime.now(UTC))
    origin = origin_of(db)
    wanted: dict[str, tuple[Event, list[str]]] = {}
    for event in events:
        targets = [sub.endpoint for sub in endpoints if sub.wants(event.type, event.store)]
        if targets:
            wanted.setdefault(event_id(event.type, event.key, origin), (event, targets))
    if not wanted:
        return 0
    # An event already held was recorded before (a retried transaction, a birth seen
    # again): it and its deliveries stand, and nobody is told twice.
    held = _existing(db, list(wanted))
    new = {ident: item for ident, item in wanted.items() if ident not in held}
    event_rows: list[dict[str, Any]] = [
        {
            "id": ident,
            "type": event.type,
            "store": event.store,
            "body": event_body(event.type, event.payload, moment),
            "created_at": moment,
        }
        for ident, (event, _targets) in new.items()
    ]
    delivery_rows: list[dict[str, Any]] = [
        {
            "event": ident,
            "endpoint": endpoint_id,
            "store": event.store,
            "state": PENDING,
            "attempts": 0,
            "next_at": moment,
            "created_at": moment,
            "queued_at": moment,
        }
        for ident, (event, targets) in new.items()
        for endpoint_id in targets
    ]
    for part in _chunks(event_rows):
        WebhookEvent.insert_many(part).on_conflict(action="NOTHING").execute(db)
    written = 0
    for part in _chunks(delivery_rows):
        query = WebhookDelivery.insert_many(part).on_conflict(action="NOTHING")
        written += int(query.as_rowcount().execute(db))
    return written


def subscribers(
    db: Database, types: Iterable[str], *, prepared: Prepared | None = None
) -> list[Subscriber]:
    """Every endpoint wanting any of `types`: its id, event types and store.

    `prepared`: for a caller asking per sales batch, the statement rendered once.
    """
    wanted = set(types)
    found = []

    def query() -> Any:
        return WebhookEndpoint.select(
            WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.store
        )

    rows = (prepared or Prepared(db)).rows("endpoints", [], query)
    for row in rows:
        endpoint_types = frozenset(json.loads(row[1]))
        if endpoint_types & wanted:
            found.append(Subscriber(row[0], endpoint_types, row[2]))
    return found


def _existing(db: Database, ids: list[str]) -> set[str]:
    held: set[str] = set()
    for part in _chunks(ids):
        query = WebhookEvent.select(WebhookEvent.id).where(WebhookEvent.id.in_(part))
        held.update(row[0] for row in query.tuples().execute(db))
    return held


def _chunks(items: list[_T]) -> Iterable[list[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
