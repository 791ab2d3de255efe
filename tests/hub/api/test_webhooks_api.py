"""/api/v1/webhooks: endpoints with a secret shown once, deliveries page by page, replay
with the same webhook-id, admin only, and nothing of another store."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient
from peewee import Database

from hub.webhooks.deliveries import Policy
from hub.webhooks.delivery import DeliveryService
from hub.webhooks.events import record
from hub.webhooks.models import DEAD, WebhookDelivery
from hub.webhooks.signing import verify
from tests.hub.api.conftest import Bearer
from tests.hub.webhook_receiver import Receiver, SteppedClock, settle, step_to_next_due

ENDPOINTS = "/api/v1/webhooks/endpoints"
DELIVERIES = "/api/v1/webhooks/deliveries"


def create(
    client: TestClient[Any], headers: dict[str, str], url: str, store: str | None = None
) -> dict[str, Any]:
    """Create an endpoint for sale.created; its JSON (with the secret)."""
    body: dict[str, Any] = {"url": url, "event_types": ["sale.created", "stock.changed"]}
    if store is not None:
        body["store"] = store
    response = client.post(ENDPOINTS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def sale_event(db: Database, store: str, n: int) -> None:
    """A sale.created event of `store`, as the ingest records it."""
    with db.atomic():
        record(db, "sale.created", {"id": f"s{n}", "store": store}, store=store, key=f"s:{n}")


def test_an_endpoint_shows_its_secret_once(client: TestClient[Any], bearer: Bearer) -> None:
    admin = bearer()
    made = create(client, admin, "https://shop.example/hooks?token=abc")
    assert made["secret"].startswith("whsec_")
    assert made["event_types"] == ["sale.created", "stock.changed"]
    assert made["store"] is None
    assert made["created_at"].endswith("Z")
    listed = client.get(ENDPOINTS, headers=admin).json()["items"]
    assert [item["id"] for item in listed] == [made["id"]]
    one = client.get(f"{ENDPOINTS}/{made['id']}", headers=admin).json()
    assert "secret" not in listed[0]
    assert "secret" not in one
    assert one["url"] == "https://shop.example/hooks?token=abc"


@pytest.mark.parametrize("scope", ["read", "write"])
def test_webhooks_need_the_admin_scope(client: TestClient[Any], bearer: Bearer, scope: str) -> None:
    headers = bearer(scope)
    answers = [
        client.get(ENDPOINTS, headers=headers),
        client.post(
            ENDPOINTS, json={"url": "http://x", "event_types": ["sale.created"]}, headers=headers
        ),
        client.get(DELIVERIES, headers=headers),
        client.post(f"{DELIVERIES}/1/replay", headers=headers),
        client.delete(f"{ENDPOINTS}/ep_1", headers=headers),
    ]
    for response in answers:
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "admin" in response.json()["detail"]
    assert client.get(ENDPOINTS).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://shop.example/x", "event_types": ["sale.created"]}, "url"),
        ({"url": "shop.example/hooks", "event_types": ["sale.created"]}, "url"),
        ({"url": "http://", "event_types": ["sale.created"]}, "url"),
        ({"url": "http://shop.example:port/x", "event_types": ["sale.created"]}, "url"),
        ({"url": "http://shop.example/x#top", "event_types": ["sale.created"]}, "url"),
        ({"url": "http://shop.example/x", "event_types": ["sale.exploded"]}, "event_types[0]"),
        ({"url": "http://shop.example/x", "event_types": []}, "event_types"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient[Any], bearer: Bearer, body: dict[str, Any], field: str
) -> None:
    response = client.post(ENDPOINTS, json=body, headers=bearer())
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    bad_state = client.get(DELIVERIES, params={"state": "lost"}, headers=bearer())
    assert bad_state.status_code == 422
    assert bad_state.json()["errors"][0]["field"] == "state"


def test_a_store_token_sees_and_makes_its_stores_endpoints_only(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin, berlin = bearer(), bearer("admin", "berlin")
    theirs = create(client, admin, "http://127.0.0.1:9/paris", store="paris")
    everyone = create(client, admin, "http://127.0.0.1:9/all")
    ours = create(client, berlin, "http://127.0.0.1:9/berlin")  # no store named: its own
    assert ours["store"] == "berlin"
    refused = client.post(
        ENDPOINTS,
        json={"url": "http://x.example", "event_types": ["sale.created"], "store": "paris"},
        headers=berlin,
    )
    assert refused.status_code == 403
    assert [e["id"] for e in client.get(ENDPOINTS, headers=berlin).json()["items"]] == [ours["id"]]
    for other in (theirs, everyone):
        assert client.get(f"{ENDPOINTS}/{other['id']}", headers=berlin).status_code == 404
        assert client.delete(f"{ENDPOINTS}/{other['id']}", headers=berlin).status_code == 404
        replay = client.post(
            f"{ENDPOINTS}/{other['id']}/replay",
            params={"since": "2020-01-01T00:00:00Z"},
            headers=berlin,
        )
        assert replay.status_code == 404

    sale_event(api_db, "berlin", 1)
    sale_event(api_db, "paris", 2)
    seen = client.get(DELIVERIES, headers=berlin).json()["items"]
    assert {(d["endpoint"], d["store"]) for d in seen} == {(ours["id"], "berlin")}
    every = client.get(DELIVERIES, headers=admin).json()["items"]
    assert len(every) == 4  # berlin: ours and everyone's; paris: theirs and everyone's
    hidden = [d for d in every if d["endpoint"] != ours["id"]]
    for delivery in hidden:
        assert client.get(f"{DELIVERIES}/{delivery['id']}", headers=berlin).status_code == 404
        assert (
            client.post(f"{DELIVERIES}/{delivery['id']}/replay", headers=berlin).status_code == 404
        )
    filtered = client.get(DELIVERIES, params={"endpoint": theirs["id"]}, headers=berlin).json()
    assert filtered["items"] == []


def test_deliveries_page_newest_first_and_filter(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    first = create(client, admin, "http://127.0.0.1:9/a")
    second = create(client, admin, "http://127.0.0.1:9/b")
    for n in range(5):
        sale_event(api_db, "berlin", n)
    oldest = WebhookDelivery.select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint == first["id"]
    )
    dead_ids = [
        row[0] for row in oldest.order_by(WebhookDelivery.id).limit(2).tuples().execute(api_db)
    ]
    WebhookDelivery.update(state=DEAD).where(WebhookDelivery.id.in_(dead_ids)).execute(api_db)
    ids: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "endpoint": first["id"]}
        if cursor:
            params["cursor"] = cursor
        page = client.get(DELIVERIES, params=params, headers=admin).json()
        ids += [item["id"] for item in page["items"]]
        assert all(item["endpoint"] == first["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            assert cursor is None
            break
    assert len(ids) == 5
    assert ids == sorted(ids, reverse=True)
    dead = client.get(DELIVERIES, params={"state": "dead"}, headers=admin).json()["items"]
    assert [d["id"] for d in dead] == dead_ids[::-1]
    assert {d["type"] for d in dead} == {"sale.created"}
    pending = client.get(
        DELIVERIES, params={"endpoint": second["id"], "state": "pending"}, headers=admin
    )
    assert len(pending.json()["items"]) == 5
    assert all(d["next_attempt_at"].endswith("Z") for d in pending.json()["items"])


@dataclass
class Sending:
    """A real receiver on loopback (answering 500 until told otherwise) and the delivery
    service, giving up after two attempts, on a clock the test steps."""

    receiver: Receiver
    clock: SteppedClock
    service: DeliveryService


@pytest.fixture
def sending(api_db: Database) -> Iterator[Sending]:
    """The receiver and the delivery service, stopped after the test."""
    clock = SteppedClock()
    receiver = Receiver(500, clock=clock).start()
    service = DeliveryService(
        api_db, clock=clock, poll=0.05, policy=Policy(max_attempts=2), rng=random.Random(3)
    )
    service.start()
    yield Sending(receiver, clock, service)
    service.stop()
    receiver.stop()


def until_settled(db: Database, sending: Sending) -> None:
    """Step the clock through every pending attempt until none is left."""
    settle(db, sending.clock)
    while step_to_next_due(db, sending.clock):
        sending.service.wake()
        settle(db, sending.clock)


def test_a_dead_delivery_replayed_arrives_with_the_same_webhook_id(
    client: TestClient[Any], bearer: Bearer, api_db: Database, sending: Sending
) -> None:
    receiver, clock, delivery = sending.receiver, sending.clock, sending.service
    admin = bearer()
    made = create(client, admin, receiver.url)
    sale_event(api_db, "berlin", 1)
    sale_event(api_db, "berlin", 2)
    until_settled(api_db, sending)
    dead = client.get(DELIVERIES, params={"state": "dead"}, headers=admin).json()["items"]
    assert len(dead) == 2
    detail = client.get(f"{DELIVERIES}/{dead[0]['id']}", headers=admin).json()
    assert [(a["status"], a["error"]) for a in detail["history"]] == [(500, "HTTP 500")] * 2
    assert detail["last_status"] == 500
    failed_ids = {item.webhook_id for item in receiver.received()}
    assert failed_ids == {d["webhook_id"] for d in dead}

    receiver.status = 200
    replayed = client.post(f"{DELIVERIES}/{dead[0]['id']}/replay", headers=admin)
    assert replayed.status_code == 202
    assert replayed.json()["state"] == "pending"
    assert replayed.json()["attempts"] == 0
    delivery.wake()
    receiver.wait_for(lambda got: any(item.status == 200 for item in got))
    settle(api_db, clock)
    (arrived,) = receiver.accepted()
    assert arrived.webhook_id == dead[0]["webhook_id"]
    assert verify(made["secret"], arrived.headers, arrived.body, now=arrived.now)
    assert arrived.body.decode() == detail["body"]
    again = client.get(f"{DELIVERIES}/{dead[0]['id']}", headers=admin).json()
    assert again["state"] == "delivered"
    assert len(again["history"]) == 3  # the two failures are kept

    # The endpoint's replay since a time: the other dead one and the delivered one again.
    whole = client.post(
        f"{ENDPOINTS}/{made['id']}/replay", params={"since": "2000-01-01T00:00:00Z"}, headers=admin
    )
    assert whole.status_code == 202
    assert whole.json() == {"queued": 2}
    delivery.wake()
    receiver.wait_for(lambda got: len([i for i in got if i.status == 200]) == 3)
    settle(api_db, clock)
    accepted = [item.webhook_id for item in receiver.accepted()]
    assert sorted(accepted) == sorted([dead[0]["webhook_id"], *failed_ids])  # de-duplicable
    future = client.post(
        f"{ENDPOINTS}/{made['id']}/replay", params={"since": "2999-01-01T00:00:00Z"}, headers=admin
    )
    assert future.json() == {"queued": 0}
    naive = client.post(
        f"{ENDPOINTS}/{made['id']}/replay", params={"since": "2024-01-01T00:00:00"}, headers=admin
    )
    assert naive.status_code == 422


def test_a_deleted_endpoint_gets_nothing_more(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    made = create(client, admin, "http://127.0.0.1:9/gone")
    sale_event(api_db, "berlin", 1)
    assert client.delete(f"{ENDPOINTS}/{made['id']}", headers=admin).status_code == 204
    assert client.get(f"{ENDPOINTS}/{made['id']}", headers=admin).status_code == 404
    assert client.get(DELIVERIES, headers=admin).json()["items"] == []
    sale_event(api_db, "berlin", 2)
    assert WebhookDelivery.select().count(api_db) == 0


def test_the_openapi_document_describes_the_webhook_routes(client: TestClient[Any]) -> None:
    document = client.get("/api/v1/schema/openapi.json").json()
    paths = document["paths"]
    assert set(paths[ENDPOINTS]) == {"get", "post"}
    assert "post" in paths[f"{DELIVERIES}/{{delivery_id}}/replay"]
    created = document["components"]["schemas"]["CreatedEndpoint"]
    assert "secret" in created["properties"]


def test_a_delivery_being_sent_cannot_be_replayed_until_the_attempt_ends(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    create(client, admin, "http://127.0.0.1:9/a")
    sale_event(api_db, "berlin", 1)
    (row,) = WebhookDelivery.select().execute(api_db)
    WebhookDelivery.update(lease_owner="sender-1").execute(api_db)  # an attempt in flight
    busy = client.post(f"{DELIVERIES}/{row.id}/replay", headers=admin)
    assert busy.status_code == 409
    assert busy.headers["content-type"].startswith("application/problem+json")
    WebhookDelivery.update(lease_owner=None).execute(api_db)  # it failed; retry now
    assert client.post(f"{DELIVERIES}/{row.id}/replay", headers=admin).status_code == 202
