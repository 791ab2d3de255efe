"""The durable delivery queue in the hub database: claim, finish, replay.

A pending delivery is due when `next_at` has passed. Claiming moves `next_at` a lease
ahead under a fresh owner token in one conditional UPDATE, so of several web processes
polling at once exactly one gets each attempt (the UPDATE re-checks the row under its
lock), and a sender that dies mid-attempt leaves the delivery due again when the lease
runs out: at least once, never lost. Finishing only touches a delivery still held by the
same claim.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from peewee import Database

from hub.ingest import utc_naive
from hub.webhooks.models import (
    DEAD,
    DELIVERED,
    PENDING,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

# Seconds to wait after the n-th failed attempt (the last repeats): a receiver that is
# down for an hour is tried at 5 s, 35 s, 2.5 min, 12.5 min, 42.5 min and 1.7 h.
BACKOFF: tuple[int, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800)
JITTER = 0.2  # each wait is stretched or shrunk by up to this share, so retries spread
MAX_ATTEMPTS = 18  # with BACKOFF, about three days of trying
GIVE_UP_AFTER = timedelta(days=3)
LEASE = timedelta(seconds=60)  # well above the send timeout
KEEP = timedelta(days=30)  # delivered and dead deliveries are kept this long, for replay


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a sender holds: what to send where, and the claim that holds it."""

    id: int
    owner: str
    event: str  # the webhook-id
    url: str
    secret: str
    body: str
    attempts: int  # before this one
    queued_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: the HTTP status if any answer came, else why not."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        """A 2xx answer: the receiver has it."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Policy:
    """When to try again and when to give up."""

    backoff: tuple[int, ...] = BACKOFF
    jitter: float = JITTER
    max_attempts: int = MAX_ATTEMPTS
    give_up_after: timedelta = GIVE_UP_AFTER
    lease: timedelta = LEASE
    keep: timedelta = KEEP

    def delay(self, failed: int, rng: random.Random) -> timedelta:
        """The wait after `failed` attempts have failed, with jitter."""
        base = self.backoff[min(failed, len(self.backoff)) - 1]
        return timedelta(seconds=base * rng.uniform(1 - self.jitter, 1 + self.jitter))


def claim(db: Database, now: datetime, limit: int, policy: Policy) -> list[Claimed]:
    """Take up to `limit` due deliveries for one sender; none is given to two claims."""
    if limit <= 0:
        return []
    now = utc_naive(now)
    due = WebhookDelivery.state == PENDING, WebhookDelivery.next_at <= now
    candidates = [
        row[0]
        for row in WebhookDelivery.select(WebhookDelivery.id)
        .where(*due)
        .order_by(WebhookDelivery.next_at)
        .limit(limit)
        .tuples()
        .execute(db)
    ]
    if not candidates:
        return []
    owner = uuid.uuid4().hex
    with db.atomic():
        taken = (
            WebhookDelivery.update(next_at=now + policy.lease, lease_owner=owner)
            .where(WebhookDelivery.id.in_(candidates), *due)
            .execute(db)
        )
    if not taken:
        return []
    query = (
        WebhookDelivery.select(
            WebhookDelivery.id,
            WebhookDelivery.event,
            WebhookDelivery.attempts,
            WebhookDelivery.queued_at,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEvent.body,
        )
        .join(WebhookEvent, on=WebhookEvent.id == WebhookDelivery.event)
        .switch(WebhookDelivery)
        .join(WebhookEndpoint, on=WebhookEndpoint.id == WebhookDelivery.endpoint)
        .where(WebhookDelivery.id.in_(candidates), WebhookDelivery.lease_owner == owner)
        .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
    )
    return [
        Claimed(
            id=row[0],
            owner=owner,
            event=row[1],
            attempts=row[2],
            queued_at=_moment(row[3]),
            url=row[4],
            secret=row[5],
            body=row[6],
        )
        for row in query.tuples().execute(db)
    ]


def finish(
    db: Database,
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    *,
    policy: Policy,
    rng: random.Random,
) -> str:
    """Keep an attempt's outcome and move the delivery on; returns its new state."""
    now = utc_naive(now)
    attempts = claimed.attempts + 1
    update: dict[Any, Any] = {
        WebhookDelivery.attempts: attempts,
        WebhookDelivery.last_status: outcome.status,
        WebhookDelivery.last_error: outcome.error,
        WebhookDelivery.lease_owner: None,
    }
    if outcome.delivered:
        state = DELIVERED
    elif attempts >= policy.max_attempts or now - claimed.queued_at >= policy.give_up_after:
        state = DEAD  # the dead letter: kept, listed, replayable
    else:
        state = PENDING
        update[WebhookDelivery.next_at] = now + policy.delay(attempts, rng)
    update[WebhookDelivery.state] = state
    if state != PENDING:
        update[WebhookDelivery.finished_at] = now
    with db.atomic():
        WebhookAttempt.insert(
            delivery=claimed.id,
            at=now,
            status=outcome.status,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        ).execute(db)
        held = (
            WebhookDelivery.update(update)
            .where(WebhookDelivery.id == claimed.id, WebhookDelivery.lease_owner == claimed.owner)
            .execute(db)
        )
    # Not held any more: the lease ran out and another claim has it (or the endpoint was
    # deleted). Its attempt is kept; the state is that claim's to set.
    return state if held else PENDING


def release(db: Database, claimed: list[Claimed], now: datetime) -> None:
    """Give back claims never attempted (on stop), due again at once."""
    for item in claimed:
        WebhookDelivery.update(next_at=utc_naive(now), lease_owner=None).where(
            WebhookDelivery.id == item.id, WebhookDelivery.lease_owner == item.owner
        ).execute(db)


def replay(db: Database, ids: list[int], now: datetime) -> int:
    """Queue deliveries again as a new round of attempts with the same webhook-id.

    Dead and delivered ones start over (their attempts are kept); a pending one not
    being sent right now becomes due at once. Returns how many were queued.
    """
    now = utc_naive(now)
    queued = 0
    with db.atomic():
        for part in _chunks(ids, 500):
            queued += (
                WebhookDelivery.update(
                    state=PENDING,
                    attempts=0,
                    next_at=now,
                    queued_at=now,
                    finished_at=None,
                    lease_owner=None,
                )
                .where(
                    WebhookDelivery.id.in_(part),
                    (WebhookDelivery.state << [DEAD, DELIVERED])
                    | ((WebhookDelivery.state == PENDING) & WebhookDelivery.lease_owner.is_null()),
                )
                .execute(db)
            )
    return queued


def prune(db: Database, before: datetime) -> int:
    """Forget deliveries finished before `before`, their attempts, and events left unused."""
    before = utc_naive(before)
    with db.atomic():
        old = WebhookDelivery.select(WebhookDelivery.id).where(
            WebhookDelivery.state << [DELIVERED, DEAD], WebhookDelivery.finished_at < before
        )
        WebhookAttempt.delete().where(WebhookAttempt.delivery.in_(old)).execute(db)
        gone = int(
            WebhookDelivery.delete()
            .where(WebhookDelivery.state << [DELIVERED, DEAD], WebhookDelivery.finished_at < before)
            .execute(db)
        )
        used = WebhookDelivery.select(WebhookDelivery.event)
        WebhookEvent.delete().where(
            WebhookEvent.created_at < before, WebhookEvent.id.not_in(used)
        ).execute(db)
    return gone


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
