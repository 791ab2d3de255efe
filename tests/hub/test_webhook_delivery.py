"""Webhook delivery: events recorded with their change, signed POSTs to a real receiver,
nothing lost while the receiver is down, a dead letter after the last attempt.

Each test runs on SQLite and on PostgreSQL. The receiver is a real HTTP server on
127.0.0.1; the delivery service's clock is stepped, so backoffs of an hour pass at once.
"""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from peewee import Database

from appliance.mqtt.payloads import DeviceStatus, SaleEnvelope, SalesBatch
from appliance.settings import StoreSettings
from hub.catalog import HubCatalog
from hub.db import open_hub_database
from hub.ingest import DeviceRecords, SalesIngest
from hub.migrations import migrate
from hub.stores import assign_device
from hub.webhooks.deliveries import Policy
from hub.webhooks.delivery import DeliveryService
from hub.webhooks.events import event_id, origin_of, record
from hub.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from hub.webhooks.signing import verify
from hub.webhooks.sources import DeviceEvents, SaleEvents
from tests.hub.databases import KINDS, each_kind
from tests.hub.test_ingest import START, envelope, sale_document, sale_id_of
from tests.hub.webhook_receiver import (
    Received,
    Receiver,
    SteppedClock,
    add_endpoint,
    deliveries_of,
    settle,
    step_to_next_due,
)
from tests.postgres import PostgresCluster

SALE_TYPES = ["sale.created", "refund.created", "sale.voided"]


@pytest.fixture(params=KINDS)
def wh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "postgres")


@pytest.fixture
def receiver(clock: SteppedClock) -> Iterator[Receiver]:
    """A receiver answering 200 on a loopback port, its clock the hub's."""
    running = Receiver(clock=clock).start()
    yield running
    running.stop()


@pytest.fixture
def clock() -> SteppedClock:
    """The clock of the hub's ingest and delivery, stepped by the test."""
    return SteppedClock()


@pytest.fixture
def delivery(wh_db: Database, clock: SteppedClock) -> Iterator[DeliveryService]:
    """The delivery service as `appliance-hub web` runs it, on the stepped clock."""
    service = DeliveryService(wh_db, clock=clock, poll=0.05, rng=random.Random(7))
    service.start()
    yield service
    service.stop()


def refund(device: str, seq: int, kind: str = "refund") -> SaleEnvelope:
    """A refund (or void) of the device at `seq`."""
    document = sale_document(device, seq, kind=kind)
    return SaleEnvelope(seq=seq, sale_id=sale_id_of(device, seq), document=msgspec.Raw(document))


def ingest_sales(db: Database, clock: SteppedClock, device: str = "kiosk-1") -> SalesIngest:
    """The ingest the serve worker runs, with the webhook events wired in."""
    return SalesIngest(db, clock=clock, on_stored=SaleEvents(db, clock=clock))


def checked(item: Received, secret: str) -> str:
    """The webhook-id of a message whose signature holds when it arrived."""
    return verify(secret, item.headers, item.body, now=item.now)


def test_a_sale_refund_and_void_reach_the_receiver_signed(
    wh_db: Database, receiver: Receiver, clock: SteppedClock, delivery: DeliveryService
) -> None:
    _, secret = add_endpoint(wh_db, receiver.url, SALE_TYPES)
    assign_device(wh_db, "kiosk-1", "berlin")
    sales = SalesBatch(
        device="kiosk-1",
        sales=[envelope("kiosk-1", 1), refund("kiosk-1", 2), refund("kiosk-1", 3, "void")],
    )
    ingest_sales(wh_db, clock).ingest("kiosk-1", sales)

    receiver.wait_for(lambda got: len(got) == 3)
    by_type = {item.message["type"]: item for item in receiver.received()}
    assert set(by_type) == {"sale.created", "refund.created", "sale.voided"}
    sale = by_type["sale.created"]
    assert checked(sale, secret) == sale.webhook_id
    assert sale.webhook_id == event_id(
        "sale.created", f"sale:kiosk-1:{sale_id_of('kiosk-1', 1)}", origin_of(wh_db)
    )
    data = sale.message["data"]
    assert data["id"] == sale_id_of("kiosk-1", 1)
    assert (data["device"], data["store"], data["seq"], data["kind"]) == (
        "kiosk-1",
        "berlin",
        1,
        "sale",
    )
    assert data["lines"][0]["sku"] == "SKU-1"
    assert data["tenders"] == [
        {"kind": "cash", "amount": 250, "tendered": 0, "reference": "", "card_mask": ""}
    ]
    assert data["received_at"].endswith("Z")
    assert sale.message["timestamp"].endswith("Z")
    assert by_type["refund.created"].message["data"]["total"] == -250
    settle(wh_db, clock)
    assert all(row["state"] == "delivered" for row in deliveries_of(wh_db))


def test_the_same_batch_again_is_no_new_event(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, SALE_TYPES)
    ingest = ingest_sales(wh_db, clock)
    sales = SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    ingest.ingest("kiosk-1", sales)
    ingest.ingest("kiosk-1", sales)  # a resend: the sale is a duplicate, no new row
    with wh_db.atomic():  # the same fact recorded again, as a retried transaction would
        record(
            wh_db, "sale.created", {"other": 1}, store=None, key="sale:kiosk-1:kiosk-1-sale-000001"
        )
    assert WebhookEvent.select().count(wh_db) == 1
    assert WebhookDelivery.select().count(wh_db) == 1


def test_nothing_is_written_without_a_subscriber_or_when_the_change_rolls_back(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    )
    assert WebhookEvent.select().count(wh_db) == 0  # nobody subscribed

    add_endpoint(wh_db, receiver.url, ["device.online"])
    ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 2)])
    )
    assert WebhookEvent.select().count(wh_db) == 0  # subscribed to something else

    add_endpoint(wh_db, receiver.url, ["sale.created"])
    with pytest.raises(RuntimeError), wh_db.atomic():
        record(wh_db, "sale.created", {"id": "x"}, store=None, key="sale:kiosk-1:x")
        raise RuntimeError("the change fails after the event was recorded")
    assert WebhookEvent.select().count(wh_db) == 0
    assert WebhookDelivery.select().count(wh_db) == 0


def test_an_endpoint_of_a_store_gets_that_stores_events_only(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    berlin, _ = add_endpoint(wh_db, receiver.url, SALE_TYPES, store="berlin")
    everyone, _ = add_endpoint(wh_db, receiver.url, SALE_TYPES)
    assign_device(wh_db, "kiosk-1", "berlin")
    assign_device(wh_db, "kiosk-2", "paris")
    ingest = ingest_sales(wh_db, clock)
    ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)]))
    ingest.ingest("kiosk-2", SalesBatch(device="kiosk-2", sales=[envelope("kiosk-2", 1)]))
    pairs = {(row["endpoint"], row["store"]) for row in deliveries_of(wh_db)}
    assert pairs == {(berlin, "berlin"), (everyone, "berlin"), (everyone, "paris")}


def test_device_online_and_offline_once_per_session_and_state(
    wh_db: Database, receiver: Receiver, clock: SteppedClock, delivery: DeliveryService
) -> None:
    _, secret = add_endpoint(wh_db, receiver.url, ["device.online", "device.offline"])
    records = DeviceRecords(wh_db, clock=clock)
    hook = DeviceEvents(wh_db, clock=clock)

    def status(online: bool, bd_seq: int) -> None:
        message = DeviceStatus(device="kiosk-1", online=online, bd_seq=bd_seq, firmware="1.2.3")
        if records.record_status("kiosk-1", message):  # as HubServer runs its after_status
            hook("kiosk-1", message)

    status(True, 4)
    status(True, 4)  # the retained birth delivered again (a resync)
    status(False, 3)  # a stale will of an older session: not current, no hook
    status(False, 4)
    status(True, 5)

    receiver.wait_for(lambda got: len(got) >= 3)
    settle(wh_db, clock)
    got = [(item.message["type"], item.message["data"]["bd_seq"]) for item in receiver.received()]
    assert sorted(got) == [("device.offline", 4), ("device.online", 4), ("device.online", 5)]
    for item in receiver.received():
        checked(item, secret)
        assert item.message["data"]["firmware"] == "1.2.3"


def test_a_receiver_down_for_an_hour_loses_nothing(
    wh_db: Database, receiver: Receiver, clock: SteppedClock, delivery: DeliveryService
) -> None:
    _, secret = add_endpoint(wh_db, receiver.url, SALE_TYPES)
    receiver.status = 500  # broken at first: it answers, but not with 2xx
    ingest = ingest_sales(wh_db, clock)
    for seq in range(1, 6):
        ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", seq)]))
    expected = {row[0] for row in WebhookEvent.select(WebhookEvent.id).tuples().execute(wh_db)}
    assert len(expected) == 5
    settle(wh_db, clock)
    receiver.stop()  # then gone: connections refused
    down_since = clock.now()
    while clock.now() - down_since < timedelta(hours=1):
        assert step_to_next_due(wh_db, clock)
        delivery.wake()
        settle(wh_db, clock)
        assert all(row["state"] == "pending" for row in deliveries_of(wh_db))
    receiver.status = 200
    receiver.start()  # back, on the same port
    for _ in range(20):  # each pending delivery at its own next time (jitter)
        if not step_to_next_due(wh_db, clock):
            break
        delivery.wake()
        settle(wh_db, clock)

    rows = deliveries_of(wh_db)
    assert [row["state"] for row in rows] == ["delivered"] * 5
    accepted = receiver.accepted()
    assert {item.webhook_id for item in accepted} == expected  # each at least once
    for item in accepted:
        assert checked(item, secret) == item.webhook_id
        assert item.message["type"] == "sale.created"
    # Every attempt is kept: the 500s, the refused connections, the success.
    attempts = list(
        WebhookAttempt.select().where(WebhookAttempt.delivery == rows[0]["id"]).execute(wh_db)
    )
    assert attempts[0].status == 500
    assert any(a.status is None and "connect" in (a.error or "") for a in attempts)
    assert attempts[-1].status == 200
    assert len(attempts) >= 6  # 5 s, 30 s, 2 min, 10 min, 30 min and on past the hour


def test_a_delivery_dies_after_its_last_attempt_and_keeps_each_outcome(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])
    receiver.status = 503
    ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    )
    service = DeliveryService(
        wh_db, clock=clock, poll=0.05, policy=Policy(max_attempts=3), rng=random.Random(1)
    )
    service.start()
    try:
        for _ in range(5):
            settle(wh_db, clock)
            if not step_to_next_due(wh_db, clock):
                break
            service.wake()
    finally:
        service.stop()
    (row,) = deliveries_of(wh_db)
    assert (row["state"], row["attempts"], row["last_status"]) == ("dead", 3, 503)
    assert row["finished_at"] is not None
    assert len(receiver.received()) == 3
    outcomes = [a.status for a in WebhookAttempt.select().execute(wh_db)]
    assert outcomes == [503, 503, 503]


def test_a_delivery_older_than_the_give_up_age_dies_at_its_next_failure(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])
    receiver.stop()
    ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    )
    clock.step(timedelta(days=3, seconds=1).total_seconds())
    service = DeliveryService(wh_db, clock=clock, poll=0.05)
    service.start()
    try:
        settle(wh_db, clock)
    finally:
        service.stop()
    (row,) = deliveries_of(wh_db)
    assert (row["state"], row["attempts"], row["last_status"]) == ("dead", 1, None)
    assert "connect" in row["last_error"]


def test_two_services_on_one_database_send_each_attempt_once(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])
    ingest = ingest_sales(wh_db, clock)
    for seq in range(1, 41):
        ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", seq)]))
    services = [DeliveryService(wh_db, clock=clock, poll=0.01, concurrency=3) for _ in range(2)]
    for service in services:
        service.start()
    try:
        receiver.wait_for(lambda got: len({item.webhook_id for item in got}) == 40)
        settle(wh_db, clock)
    finally:
        for service in services:
            service.stop()
    ids = [item.webhook_id for item in receiver.received()]
    assert len(ids) == len(set(ids)) == 40  # a 200 every time: nobody sent one twice


def test_a_redirect_is_not_followed(
    wh_db: Database, receiver: Receiver, clock: SteppedClock, delivery: DeliveryService
) -> None:
    elsewhere = Receiver().start()
    try:
        redirecting = Receiver(302, {"location": elsewhere.url}).start()
        try:
            add_endpoint(wh_db, redirecting.url, ["sale.created"])
            ingest_sales(wh_db, clock).ingest(
                "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
            )
            redirecting.wait_for(lambda got: len(got) == 1)
            settle(wh_db, clock)
        finally:
            redirecting.stop()
        assert elsewhere.received() == []
    finally:
        elsewhere.stop()
    (row,) = deliveries_of(wh_db)
    assert (row["state"], row["last_status"]) == ("pending", 302)
    assert "redirects are not followed" in row["last_error"]


def test_a_stopped_service_gives_back_what_it_claimed_and_another_sends_it(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])
    ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    )
    first = DeliveryService(wh_db, clock=clock, poll=0.05)
    first.start()
    first.stop()
    second = DeliveryService(wh_db, clock=clock, poll=0.05)
    second.start()
    try:
        receiver.wait_for(lambda got: len(got) >= 1)
        settle(wh_db, clock)
    finally:
        second.stop()
    assert [row["state"] for row in deliveries_of(wh_db)] == ["delivered"]


def test_event_bodies_are_the_recorded_json(wh_db: Database, receiver: Receiver) -> None:
    add_endpoint(wh_db, receiver.url, ["product.changed"])
    with wh_db.atomic():
        record(wh_db, "product.changed", {"sku": "A", "store": "s"}, store="s", key="p:s:A:3")
    (event,) = WebhookEvent.select().execute(wh_db)
    body = json.loads(event.body)
    assert body["type"] == "product.changed"
    assert body["data"] == {"sku": "A", "store": "s"}
    assert event.id == event_id("product.changed", "p:s:A:3", origin_of(wh_db))
    with pytest.raises(ValueError, match="unknown webhook event type"):
        record(wh_db, "product.exploded", {}, store=None, key="x")


CATALOG = (
    "sku,name,price,tax_class,stock_tracked,sold_by,stock\n"
    "SKU-1,Coffee,2.50,standard,yes,each,10\n"
    "SKU-2,Tea,1.50,standard,yes,each,\n"
)


def test_each_sale_sends_the_stock_level_of_what_it_sold(
    wh_db: Database, receiver: Receiver, clock: SteppedClock, delivery: DeliveryService
) -> None:
    _, secret = add_endpoint(wh_db, receiver.url, ["stock.changed"], store="berlin")
    catalog = HubCatalog(wh_db, "berlin")
    catalog.import_csv(io.StringIO(CATALOG), StoreSettings())
    catalog.count({"SKU-1": 10}, now=START - timedelta(days=1))  # before the sales were made
    assign_device(wh_db, "kiosk-1", "berlin")
    ingest = ingest_sales(wh_db, clock)
    ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)]))
    receiver.wait_for(lambda got: len(got) == 1)
    ingest.ingest(
        "kiosk-1",
        SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 2), envelope("kiosk-1", 3)]),
    )
    receiver.wait_for(lambda got: len(got) == 2)
    first, second = (item.message for item in receiver.received())
    assert first["type"] == "stock.changed"
    assert first["data"] == {
        "store": "berlin",
        "sku": "SKU-1",
        "level": 9,
        "cause": "sale",
        "sale_id": sale_id_of("kiosk-1", 1),
        "device": "kiosk-1",
    }
    assert (second["data"]["level"], second["data"]["sale_id"]) == (7, sale_id_of("kiosk-1", 3))
    assert all(checked(item, secret) for item in receiver.received())


def test_finished_deliveries_are_forgotten_after_a_month_and_pending_ones_kept(
    wh_db: Database, receiver: Receiver, clock: SteppedClock
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])
    ingest = ingest_sales(wh_db, clock)
    service = DeliveryService(wh_db, clock=clock, poll=0.05)
    service.start()
    try:
        ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)]))
        receiver.wait_for(lambda got: len(got) == 1)
        settle(wh_db, clock)
        receiver.stop()
        ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 2)]))
        settle(wh_db, clock)
    finally:
        service.stop()
    assert [row["state"] for row in deliveries_of(wh_db)] == ["delivered", "pending"]
    clock.step(timedelta(days=31).total_seconds())
    later = DeliveryService(wh_db, clock=clock, poll=0.05)
    later.start()  # prunes as it starts, then tries the pending one (and gives up: too old)
    try:
        settle(wh_db, clock)
    finally:
        later.stop()
    (left,) = deliveries_of(wh_db)
    assert left["event"] == event_id(
        "sale.created", f"sale:kiosk-1:{sale_id_of('kiosk-1', 2)}", origin_of(wh_db)
    )
    assert left["state"] == "dead"
    assert [e.id for e in WebhookEvent.select().execute(wh_db)] == [left["event"]]
    assert {a.delivery for a in WebhookAttempt.select().execute(wh_db)} == {left["id"]}


def test_a_sale_is_stored_even_when_its_event_cannot_be_built(
    wh_db: Database,
    receiver: Receiver,
    clock: SteppedClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_endpoint(wh_db, receiver.url, ["sale.created"])

    def broken(_row: object) -> None:
        raise ValueError("a bug in building the payload")

    monkeypatch.setattr("hub.webhooks.sources.sale_data", broken)
    result = ingest_sales(wh_db, clock).ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])
    )
    assert (result.inserted, result.upto_seq) == (1, 1)  # acknowledged: the device moves on
    assert WebhookEvent.select().count(wh_db) == 0
    assert "no webhook event for kiosk-1-sale-000001 of kiosk-1" in caplog.text


def test_two_hub_databases_never_give_one_fact_the_same_event_id(
    wh_db: Database, tmp_path: Path
) -> None:
    other = open_hub_database(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    migrate(other)
    try:
        assert origin_of(other) != origin_of(wh_db)
        key = "stock:berlin:A:movement:1"  # a movement row id a rebuilt database reuses
        assert event_id("stock.changed", key, origin_of(other)) != event_id(
            "stock.changed", key, origin_of(wh_db)
        )
    finally:
        other.close()


def test_two_devices_selling_at_once_send_a_last_level_that_counts_both_sales(
    postgres: PostgresCluster, clock: SteppedClock
) -> None:
    # PostgreSQL only: SQLite lets one writer in at a time, so the race cannot happen there.
    db = open_hub_database(postgres.new_database())
    migrate(db)
    try:
        add_endpoint(db, "http://127.0.0.1:9/", ["stock.changed"], store="berlin")
        catalog = HubCatalog(db, "berlin")
        catalog.import_csv(io.StringIO(CATALOG), StoreSettings())
        catalog.count({"SKU-1": 10}, now=START - timedelta(days=1))
        for device in ("kiosk-1", "kiosk-2"):
            assign_device(db, device, "berlin")
        first_stored, release_first = threading.Event(), threading.Event()
        events = SaleEvents(db, clock=clock)

        def hold_open(device: str, rows: Sequence[Mapping[str, Any]]) -> None:
            events(device, rows)  # kiosk-1's level is read; its transaction stays open
            first_stored.set()
            assert release_first.wait(10)

        first = threading.Thread(
            target=SalesIngest(db, clock=clock, on_stored=hold_open).ingest,
            args=("kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1)])),
        )
        first.start()
        assert first_stored.wait(10)
        second = threading.Thread(
            target=SalesIngest(db, clock=clock, on_stored=events).ingest,
            args=("kiosk-2", SalesBatch(device="kiosk-2", sales=[envelope("kiosk-2", 1)])),
        )
        second.start()
        second.join(0.5)
        assert second.is_alive(), "kiosk-2's level must wait for kiosk-1's open transaction"
        release_first.set()
        first.join(10)
        second.join(10)
        levels = [
            (json.loads(row.body)["data"]["device"], json.loads(row.body)["data"]["level"])
            for row in WebhookEvent.select().order_by(WebhookEvent.created_at).execute(db)
        ]
        assert sorted(levels) == [("kiosk-1", 9), ("kiosk-2", 8)]  # the later one counts both
    finally:
        db.close()
