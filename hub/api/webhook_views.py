"""What /api/v1/webhooks reads and answers: endpoints, deliveries and their attempts."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec

from hub.api.paging import rfc3339
from hub.webhooks.models import PENDING, WebhookEndpoint

EventType = Literal[
    "sale.created",
    "refund.created",
    "sale.voided",
    "stock.changed",
    "product.changed",
    "device.online",
    "device.offline",
]
State = Literal["pending", "delivered", "dead"]
MAX_URL = 2048
MAX_STORE = 64  # the store column's length


class EndpointIn(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver to create: where to POST, which events, of which store (none: all)."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL)]
    event_types: Annotated[list[EventType], msgspec.Meta(min_length=1)]
    store: Annotated[str, msgspec.Meta(max_length=MAX_STORE)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=256)] = ""


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver of webhooks (its secret is never shown again)."""

    id: str
    url: str
    event_types: list[str]
    store: str | None  # null: events of every store
    description: str
    created_at: str


class CreatedEndpoint(Endpoint, frozen=True, kw_only=True):
    """A new receiver with its signing secret: keep it now, it is not shown again."""

    secret: str  # whsec_<base64>: verify each message's webhook-signature with it


class EndpointList(msgspec.Struct, frozen=True, kw_only=True):
    """The receivers this token may see, oldest first."""

    items: list[Endpoint]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP attempt: when, the status it got (null: no answer) and why it failed."""

    at: str
    status: int | None
    error: str | None
    duration_ms: int


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event for one endpoint: pending until delivered (2xx) or dead (gave up)."""

    id: int
    webhook_id: str  # the event id receivers de-duplicate on, the same on every attempt
    endpoint: str
    type: str
    store: str | None
    state: State
    attempts: int  # in this round (a replay starts a new one)
    next_attempt_at: str | None  # pending only
    last_status: int | None
    last_error: str | None
    created_at: str
    finished_at: str | None


class DeliveryDetail(Delivery, frozen=True, kw_only=True):
    """A delivery with its body and every attempt made, oldest first."""

    body: str  # exactly what was POSTed
    history: list[Attempt]


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of deliveries, newest first."""

    items: list[Delivery]
    next_cursor: str | None  # the cursor of the next (older) page
    has_more: bool


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    """How many deliveries were queued again."""

    queued: int


def endpoint_view(row: WebhookEndpoint) -> Endpoint:
    """An endpoint row as the API shows it (never its secret)."""
    return Endpoint(
        id=row.id,
        url=row.url,
        event_types=json.loads(row.event_types),
        store=row.store,
        description=row.description,
        created_at=rfc3339(row.created_at) or "",
    )


def delivery_view(row: dict[str, Any]) -> Delivery:
    """A delivery row (with its event's type) as the API shows it."""
    pending = row["state"] == PENDING
    return Delivery(
        id=row["id"],
        webhook_id=row["event"],
        endpoint=row["endpoint"],
        type=row["type"],
        store=row["store"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=rfc3339(row["next_at"]) if pending else None,
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=rfc3339(row["created_at"]) or "",
        finished_at=rfc3339(row["finished_at"]),
    )
