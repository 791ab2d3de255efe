"""/api/v1/webhooks: endpoints that receive the hub's events, and their deliveries.

Admin scope only. An endpoint's signing secret (`whsec_...`) is shown once, in the answer
that creates it. A token limited to a store creates endpoints for that store only and
sees only those endpoints and their deliveries; anything else is "not found".
Replaying queues a delivery again with the same `webhook-id`, so a receiver that already
has it recognises it.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from peewee import Database

from hub.api.access import Principal
from hub.api.paging import (
    DEFAULT_LIMIT,
    MAX_ID,
    Cursor,
    Limit,
    decode_id_cursor,
    encode_cursor,
    invalid,
    rfc3339,
    utc_param,
)
from hub.api.problems import ProblemError
from hub.api.webhook_views import (
    Attempt,
    CreatedEndpoint,
    Delivery,
    DeliveryDetail,
    DeliveryPage,
    Endpoint,
    EndpointIn,
    EndpointList,
    Replayed,
    delivery_view,
    endpoint_view,
)
from hub.webhooks import deliveries
from hub.webhooks.models import (
    DEAD,
    DELIVERED,
    STATES,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from hub.webhooks.signing import new_secret

_CURSOR_KIND = "deliveries"
DeliveryId = Annotated[int, PathParameter(description="The delivery's id.")]
_OPT = {"scope": "admin"}
_TAGS = ["webhooks"]


class BeingSentError(ProblemError):
    """409: the delivery is being attempted right now; replay it once that attempt ends."""

    status_code = 409

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


def _state_param(description: str) -> QueryParameter:
    # `state` is a name Litestar keeps for itself: the handler argument is `only`, the
    # query parameter `state`, checked by hand so a 422 names `state`.
    return QueryParameter(
        name="state", description=description, schema_extra={"enum": list(STATES)}
    )


def _state(value: str) -> str:
    if value not in STATES:
        raise invalid("state", f"{value!r} is not one of {', '.join(STATES)}")
    return value


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _control_or_space(char: str) -> bool:
    return char.isspace() or ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0


def _check_url(url: str) -> None:
    if any(map(_control_or_space, url)):
        raise invalid("url", "must not contain spaces or control characters", "body")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        raise invalid("url", f"not a URL: {err}", "body") from err
    if parts.scheme not in ("http", "https"):
        raise invalid("url", "must be an http:// or https:// URL", "body")
    if not parts.hostname:
        raise invalid("url", "names no host", "body")
    if "@" in parts.netloc:
        # It would be shown on every read of the endpoint and in failure logs: the shared
        # secret signs each message instead.
        raise invalid("url", "must not carry credentials (user:password@)", "body")
    if parts.fragment:
        raise invalid("url", "a fragment (#...) is never sent; leave it out", "body")


def _visible_endpoint(db: Database, principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    row = WebhookEndpoint.select().where(WebhookEndpoint.id == endpoint_id).first(db)
    if row is None or not principal.sees_store(row.store):
        raise NotFoundException(f"no webhook endpoint {endpoint_id}")
    return row  # type: ignore[no-any-return]


@post(
    "/webhooks/endpoints",
    operation_id="createWebhookEndpoint",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    raises=[PermissionDeniedException],
)
def create_endpoint(
    db: NamedDependency[Database], principal: NamedDependency[Principal], data: JSONBody[EndpointIn]
) -> CreatedEndpoint:
    """Create a receiver; the answer holds its signing secret, shown this once."""
    _check_url(data.url)
    store = data.store if data.store is not None else principal.store
    if not principal.sees_store(store):
        raise PermissionDeniedException(
            f"this token is limited to store {principal.store!r}: create endpoints for it only"
        )
    row = WebhookEndpoint(
        id=f"ep_{secrets.token_hex(8)}",
        url=data.url,
        secret=new_secret(),
        event_types=json.dumps(sorted(set(data.event_types))),
        store=store,
        description=data.description,
        created_at=_now(),
    )
    WebhookEndpoint.insert(row.__data__).execute(db)
    view = endpoint_view(row)
    return CreatedEndpoint(**msgspec.structs.asdict(view), secret=row.secret)


@get(
    "/webhooks/endpoints",
    operation_id="listWebhookEndpoints",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
)
def list_endpoints(
    db: NamedDependency[Database], principal: NamedDependency[Principal]
) -> EndpointList:
    """The receivers this token may see."""
    query = WebhookEndpoint.select().order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if principal.store is not None:
        query = query.where(WebhookEndpoint.store == principal.store)
    return EndpointList(items=[endpoint_view(row) for row in query.execute(db)])


@get(
    "/webhooks/endpoints/{endpoint_id:str}",
    operation_id="getWebhookEndpoint",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    raises=[NotFoundException],
)
def get_endpoint(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    endpoint_id: FromPath[str],
) -> Endpoint:
    """One receiver (without its secret)."""
    return endpoint_view(_visible_endpoint(db, principal, endpoint_id))


@delete(
    "/webhooks/endpoints/{endpoint_id:str}",
    operation_id="deleteWebhookEndpoint",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    raises=[NotFoundException],
)
def delete_endpoint(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    endpoint_id: FromPath[str],
) -> None:
    """Delete a receiver with its queued and past deliveries; nothing more is sent to it."""
    with db.atomic():
        _visible_endpoint(db, principal, endpoint_id)
        ids = WebhookDelivery.select(WebhookDelivery.id).where(
            WebhookDelivery.endpoint == endpoint_id
        )
        WebhookAttempt.delete().where(WebhookAttempt.delivery.in_(ids)).execute(db)
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint_id).execute(db)
        WebhookEndpoint.delete().where(WebhookEndpoint.id == endpoint_id).execute(db)


_SINCE = "Only deliveries created at or after this RFC 3339 time."


@post(
    "/webhooks/endpoints/{endpoint_id:str}/replay",
    operation_id="replayWebhookEndpoint",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    status_code=202,
    raises=[NotFoundException],
)
def replay_endpoint(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    endpoint_id: FromPath[str],
    since: Annotated[datetime, QueryParameter(description=_SINCE)],
    only: Annotated[
        str | None,
        _state_param("Only dead (or delivered) ones; default both."),
    ] = None,
) -> Replayed:
    """Send an endpoint's dead and delivered webhooks since a time again, same webhook-ids."""
    since_at = utc_param("since", since)
    _visible_endpoint(db, principal, endpoint_id)
    states = [_state(only)] if only is not None else [DEAD, DELIVERED]
    query = WebhookDelivery.select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint == endpoint_id,
        WebhookDelivery.created_at >= since_at,
        WebhookDelivery.state << states,
    )
    ids = [row[0] for row in query.tuples().execute(db)]
    return Replayed(queued=deliveries.replay(db, ids, _now()) if ids else 0)


def _deliveries(principal: Principal) -> Any:
    query = WebhookDelivery.select(WebhookDelivery, WebhookEvent.type).join(
        WebhookEvent, on=WebhookEvent.id == WebhookDelivery.event
    )
    if principal.store is not None:
        visible = WebhookEndpoint.select(WebhookEndpoint.id).where(
            WebhookEndpoint.store == principal.store
        )
        query = query.where(WebhookDelivery.endpoint.in_(visible))
    return query


@get(
    "/webhooks/deliveries",
    operation_id="listWebhookDeliveries",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
)
def list_deliveries(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    *,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    endpoint: Annotated[str | None, QueryParameter(description="Only this endpoint's.")] = None,
    only: Annotated[str | None, _state_param("Only in this state.")] = None,
) -> DeliveryPage:
    """Deliveries newest first: their state, attempts and the last outcome."""
    before = decode_id_cursor(_CURSOR_KIND, cursor)
    query = _deliveries(principal)
    if before:
        query = query.where(WebhookDelivery.id < before)
    if endpoint is not None:
        query = query.where(WebhookDelivery.endpoint == endpoint)
    if only is not None:
        query = query.where(WebhookDelivery.state == _state(only))
    rows = list(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1).dicts().execute(db))
    page = rows[:limit]
    has_more = len(rows) > limit
    last = encode_cursor(_CURSOR_KIND, page[-1]["id"]) if page and has_more else None
    return DeliveryPage(
        items=[delivery_view(row) for row in page], next_cursor=last, has_more=has_more
    )


def _visible_delivery(db: Database, principal: Principal, delivery_id: int) -> dict[str, Any]:
    if not 0 < delivery_id <= MAX_ID:  # past 64 bits the database cannot even compare it
        raise invalid("delivery_id", f"a delivery id is from 1 to {MAX_ID}", "path")
    query = _deliveries(principal).where(WebhookDelivery.id == delivery_id)
    row = query.dicts().first(db)
    if row is None:
        raise NotFoundException(f"no webhook delivery {delivery_id}")
    return row  # type: ignore[no-any-return]


@get(
    "/webhooks/deliveries/{delivery_id:int}",
    operation_id="getWebhookDelivery",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    raises=[NotFoundException],
)
def get_delivery(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    delivery_id: DeliveryId,
) -> DeliveryDetail:
    """One delivery with the body sent and every attempt's outcome."""
    row = _visible_delivery(db, principal, delivery_id)
    body = WebhookEvent.select(WebhookEvent.body).where(WebhookEvent.id == row["event"])
    attempts = (
        WebhookAttempt.select()
        .where(WebhookAttempt.delivery == delivery_id)
        .order_by(WebhookAttempt.id)
        .execute(db)
    )
    history = [
        Attempt(
            at=rfc3339(item.at) or "",
            status=item.status,
            error=item.error,
            duration_ms=item.duration_ms,
        )
        for item in attempts
    ]
    view = delivery_view(row)
    return DeliveryDetail(
        **msgspec.structs.asdict(view), body=body.scalar(db) or "", history=history
    )


@post(
    "/webhooks/deliveries/{delivery_id:int}/replay",
    operation_id="replayWebhookDelivery",
    sync_to_thread=True,
    opt=_OPT,
    tags=_TAGS,
    status_code=202,
    raises=[NotFoundException, BeingSentError],
)
def replay_delivery(
    db: NamedDependency[Database],
    principal: NamedDependency[Principal],
    delivery_id: DeliveryId,
) -> Delivery:
    """Send a delivery again now, with the same webhook-id (a dead one comes back to life)."""
    _visible_delivery(db, principal, delivery_id)
    if not deliveries.replay(db, [delivery_id], _now()):
        raise BeingSentError(f"delivery {delivery_id} is being sent right now; replay it after")
    return delivery_view(_visible_delivery(db, principal, delivery_id))


ROUTES: list[Any] = [
    create_endpoint,
    list_endpoints,
    get_endpoint,
    delete_endpoint,
    replay_endpoint,
    list_deliveries,
    get_delivery,
    replay_delivery,
]
