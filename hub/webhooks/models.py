"""The webhook tables: endpoints, events and their deliveries (migration 8).

An event is written once (its id derives from what caused it, so recording the same fact
twice is one event) together with one delivery per endpoint subscribed to it, in the
transaction of the change. The delivery row is the durable queue: `pending` until an
attempt gets a 2xx (`delivered`) or the attempts run out (`dead`); each attempt's outcome
is kept in `webhook_attempt`.
"""

from __future__ import annotations

import secrets

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    Database,
    DateTimeField,
    IntegerField,
    SchemaManager,
    TextField,
)

from hub.models import HubModel

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATES = (PENDING, DELIVERED, DEAD)


class WebhookEndpoint(HubModel):
    """A receiver an admin configured: its URL, the event types it wants, its store."""

    id = CharField(primary_key=True, max_length=32)
    url = CharField(max_length=2048)
    # The signing secret, `whsec_<base64>`: kept as is, the hub signs with it.
    secret = CharField(max_length=128)
    event_types = TextField()  # JSON list of event type names
    store = CharField(max_length=64, null=True)  # None: events of every store
    description = CharField(max_length=256, default="")
    created_at = DateTimeField()


class WebhookEvent(HubModel):
    """One fact to tell receivers: its type, its store, and the exact body they get."""

    id = CharField(primary_key=True, max_length=40)  # the `webhook-id` receivers dedupe on
    type = CharField(max_length=64)
    store = CharField(max_length=64, null=True)
    body = TextField()  # {"type", "timestamp", "data"} as JSON, the same bytes every attempt
    created_at = DateTimeField()


class WebhookDelivery(HubModel):
    """One event for one endpoint: the queue entry the delivery service works off."""

    id = AutoField()
    event = CharField(max_length=40)
    endpoint = CharField(max_length=32)
    store = CharField(max_length=64, null=True)  # the event's store, for filtered lists
    state = CharField(max_length=16, default=PENDING)
    attempts = IntegerField(default=0)
    # When the next attempt is due. A sender claiming it moves it a lease ahead, so a
    # sender that dies mid-attempt leaves it due again once the lease runs out.
    next_at = DateTimeField()
    lease_owner = CharField(max_length=64, null=True)  # the claim that holds it, if any
    last_status = IntegerField(null=True)  # HTTP status of the last attempt, if it got one
    last_error = TextField(null=True)
    created_at = DateTimeField()
    queued_at = DateTimeField()  # created, or replayed: the give-up age counts from here
    finished_at = DateTimeField(null=True)  # delivered or dead

    class Meta:
        indexes = (
            (("event", "endpoint"), True),
            (("state", "next_at"), False),
            (("endpoint", "id"), False),
        )


class WebhookAttempt(HubModel):
    """One HTTP attempt of a delivery, kept for the admin: when, what came back, how long."""

    id = AutoField()
    delivery = BigIntegerField(index=True)
    at = DateTimeField()
    status = IntegerField(null=True)  # None: no HTTP answer (refused, timed out, ...)
    error = TextField(null=True)
    duration_ms = IntegerField()


class WebhookOrigin(HubModel):
    """One row: a random id of this hub database, part of every event id it makes.

    Event ids derive from facts (a sale, a movement row's id); the origin keeps a rebuilt or
    second hub database from reusing the ids a receiver has already seen.
    """

    id = CharField(primary_key=True, max_length=32)


WEBHOOK_MODELS: tuple[type[HubModel], ...] = (
    WebhookOrigin,
    WebhookEndpoint,
    WebhookEvent,
    WebhookDelivery,
    WebhookAttempt,
)


def create_webhook_tables(db: Database) -> None:
    """Migration 8: the webhook endpoints and the durable delivery queue."""
    for model in WEBHOOK_MODELS:
        SchemaManager(model, database=db).create_all(safe=True)
    if not WebhookOrigin.select().exists(db):
        WebhookOrigin.insert(id=secrets.token_hex(16)).execute(db)
