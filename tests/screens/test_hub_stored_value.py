"""A stored-value card used at two kiosks, one of them the real kiosk app offscreen: the hub
holds the balance, confirms the payment before the sale completes, and each kiosk's spending
counts at the other. Real mosquitto, the real hub worker, the appliance's own hub link."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database

from appliance.core.staff import badge_key
from appliance.errors import TenderError
from appliance.mqtt.payloads import StoredValueReport, Telemetry, decode
from appliance.screens.i18n import tr
from appliance.settings import parse_settings
from hub.card_ledger import CardLedger
from hub.models import Device
from hub.server import HubServer
from tests.broker import MosquittoBroker
from tests.hub.serving import start_serving_hub
from tests.hub.test_card_two_kiosks import Kiosk as HeadlessKiosk
from tests.hub.test_ingest import sqlite_hub
from tests.screens.customer_steps import tap_card
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.test_card_flows import to_card_payment
from tests.screens.test_staff_flows import euros

UID = "04C0FFEE112233"
CARD = badge_key(UID)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, Database, HubServer]]:
    """A broker and the hub worker on a SQLite hub database holding the card with 10.00 EUR."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    db = sqlite_hub(tmp_path / "hub.db")
    CardLedger(db).top_up(CARD, 1000, "EUR", "issue-1")
    server = start_serving_hub(broker, db)
    try:
        yield broker, db, server
    finally:
        server.stop()
        db.close()
        broker.stop()


@pytest.fixture
def kiosk(tmp_path: Path, hub: tuple[MosquittoBroker, Database, HubServer]) -> Iterator[Kiosk]:
    """The kiosk app linked to the hub, connected."""
    broker = hub[0]
    settings = parse_settings(
        {
            "device": {"id": "kiosk-a", "receipt_prefix": "KA"},
            "database": {"path": str(tmp_path / "state" / "appliance.db")},
            "store": {"name": "Demo Store", "currency": "EUR", "locale": "de_DE"},
            "hub": {"host": broker.host, "port": broker.port},
            "stored_value": {"hub_timeout_s": 10},
        },
        source="test",
    )
    with open_kiosk(tmp_path, settings=settings) as harness:
        link = harness.services.hub.link if harness.services.hub else None
        assert link is not None
        harness.wait_for(lambda: link.state.ready, what="the hub link ready")
        yield harness


def pay_by_store_card(kiosk: Kiosk) -> None:
    """Coffee (4.99) in the basket, Store card chosen, the card tapped."""
    to_card_payment(kiosk)
    kiosk.tap_text("Store card")
    tap_card(kiosk, UID)


def test_one_card_at_two_kiosks_each_payment_confirmed_by_the_hub(
    kiosk: Kiosk, hub: tuple[MosquittoBroker, Database, HubServer], tmp_path: Path
) -> None:
    broker, hub_db, _server = hub
    other = HeadlessKiosk(broker, "kiosk-b", tmp_path / "b" / "appliance.db")
    try:
        other.online()
        # kiosk-b spends 3.00 first; kiosk-a has never seen the card.
        assert other.cards.debit(UID, 300, "sv-at-kiosk-b-1") == 700

        pay_by_store_card(kiosk)
        kiosk.wait_for_screen("receipt")
        sale = kiosk.services.app.ledger.last()
        assert sale is not None
        assert [(t.kind, t.amount) for t in sale.tenders] == [("stored_value", 499)]
        view = CardLedger(hub_db).card(CARD)
        assert view is not None and view.balance == 201  # taken at the hub before the receipt
        kiosk.find_text(
            tr._("Card balance: {balance}. Loyalty points: {points}").format(
                balance=euros(201), points=0
            )
        )

        # Back at kiosk-b, the hub's balance decides: 2.01 does not pay 3.00.
        with pytest.raises(TenderError, match="insufficient balance"):
            other.cards.debit(UID, 300, "sv-at-kiosk-b-2")
        known = other.cards.known(UID)
        assert known is not None and known.balance == 201
    finally:
        other.stop()
        other.db.close()
    view = CardLedger(hub_db).card(CARD)
    assert view is not None and view.balance == 201

    # Its health report counts the card debits the hub has not had: none, all confirmed.
    # A report made after the payment (the first was sent as the link came up).
    hub_connection = kiosk.services.hub
    assert hub_connection is not None
    paid_at = datetime.now(UTC)
    hub_connection.telemetry.nudge()
    kiosk.wait_for(lambda: _report_after(hub_db, "kiosk-a", paid_at), what="a new report")
    report = _report_after(hub_db, "kiosk-a", paid_at)
    assert report is not None
    assert report.stored_value == StoredValueReport(debits=0, debit_amount=0, currency="EUR")


def _report_after(hub_db: Database, device: str, moment: datetime) -> Telemetry | None:
    """The last telemetry the hub holds from `device`, if it was made after `moment`."""
    raw = Device.select(Device.telemetry).where(Device.id == device).scalar(hub_db)
    report = decode(raw, Telemetry) if raw else None
    return report if report and datetime.fromisoformat(report.at) > moment else None
