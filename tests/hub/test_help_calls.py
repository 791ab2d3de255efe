"""Calls for help through a real mosquitto and the worker `appliance-hub serve` runs.

The device side is the real uplink on a real PahoHubLink; the worker stores each call's
latest state and `appliance-hub fleet help` lists the ones not cleared. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from peewee import Database

from appliance.core.events import EventBus
from appliance.core.help_calls import HelpCall, HelpCallChanged, HelpCalls
from appliance.mqtt import topics
from appliance.mqtt.help_uplink import HelpUplink, help_payload
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import encode
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate as migrate_device
from hub.cli_fleet import fleet
from hub.db import open_hub_database
from hub.help_calls import HelpCallRow, open_calls
from hub.server import HubServer
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.hub.databases import KINDS, migrated_url
from tests.hub.serving import start_serving_hub
from tests.hub.test_server import DeviceClient, wait_until
from tests.mqtt.main_loop import start_main_loop

DEVICE = "kiosk-7"
STORE = "berlin"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=KINDS)
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, migrated hub database of each kind."""
    return migrated_url(request, tmp_path)


@pytest.fixture
def db(hub_url: str) -> Iterator[Database]:
    opened = open_hub_database(hub_url)
    yield opened
    opened.close()


@pytest.fixture
def hub(broker: MosquittoBroker, db: Database) -> Iterator[HubServer]:
    server = start_serving_hub(broker, db)
    yield server
    server.stop()


class Kiosk:
    """A device's calls and its uplink on a real link, with a main loop delivering the bus."""

    def __init__(self, broker: MosquittoBroker, tmp_path: Path) -> None:
        ticks = itertools.count()
        ids = itertools.count(1)
        self.calls = HelpCalls(
            lambda: T0 + timedelta(seconds=next(ticks)),
            lambda: f"0190f3c2-0000-7000-8000-{next(ids):012d}",
        )
        self.device_db = open_database(tmp_path / "device.db")
        migrate_device(self.device_db)
        self.bus = EventBus()
        self.link = PahoHubLink(
            DEVICE,
            broker.host,
            broker.port,
            bus=self.bus,
            session_store=SessionStore(self.device_db),
        )
        HelpUplink(self.link, self.bus, lambda: self.calls.active)
        self.stop = threading.Event()
        self.loop = start_main_loop(self.bus, self.stop)

    def changed(self, call: HelpCall | None) -> HelpCall:
        assert call is not None
        self.bus.post(HelpCallChanged(call))
        return call

    def close(self) -> None:
        self.link.close()
        self.stop.set()
        self.loop.join()
        self.device_db.close()


@pytest.fixture
def kiosk(broker: MosquittoBroker, tmp_path: Path) -> Iterator[Kiosk]:
    kiosk = Kiosk(broker, tmp_path)
    yield kiosk
    kiosk.close()


def stored(db: Database, call_id: str) -> tuple[str, str, str] | None:
    """(state, urgency, by) of a stored call, or None."""
    rows = (
        HelpCallRow.select(HelpCallRow.state, HelpCallRow.urgency, HelpCallRow.by)
        .where(HelpCallRow.id == call_id)
        .tuples()
        .execute(db)
    )
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def fleet_help(hub_url: str, *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(fleet, ["help", "--db", hub_url, "--json", *args])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_a_call_reaches_the_hub_and_fleet_help_lists_it_until_cleared(
    hub: HubServer, db: Database, hub_url: str, kiosk: Kiosk
) -> None:
    assign_device(db, DEVICE, STORE)
    kiosk.link.open()
    assert kiosk.link.wait_for(lambda s: s.ready, 10)
    call = kiosk.changed(kiosk.calls.open("paper_out", sale_open=True, detail="printer: paper out"))
    wait_until(lambda: stored(db, call.id) == ("open", "urgent", ""))
    listed = fleet_help(hub_url)
    assert [(c["device"], c["store"], c["reason"], c["urgency"], c["state"]) for c in listed] == [
        (DEVICE, STORE, "paper_out", "urgent", "open")
    ]
    assert listed[0]["detail"] == "printer: paper out"
    assert fleet_help(hub_url, "--store", "hamburg") == []

    kiosk.changed(kiosk.calls.clear("paper_out", "Ana"))
    wait_until(lambda: stored(db, call.id) == ("cleared", "urgent", "Ana"))
    assert fleet_help(hub_url) == []
    table = CliRunner().invoke(fleet, ["help", "--db", hub_url])
    assert table.exit_code == 0 and "0 open call(s) for help" in table.output


def test_calls_opened_offline_are_sent_when_the_link_is_ready(
    hub: HubServer, db: Database, kiosk: Kiosk
) -> None:
    customer = kiosk.changed(kiosk.calls.open("customer", sale_open=True))  # link not open yet
    age = kiosk.changed(kiosk.calls.open("age_check", sale_open=True))
    kiosk.changed(kiosk.calls.clear("age_check", "Ana"))  # cleared before the hub heard of it
    kiosk.link.open()
    wait_until(lambda: stored(db, customer.id) == ("open", "help", ""))
    wait_until(lambda: stored(db, age.id) == ("cleared", "help", "Ana"))
    assert [c.reason for c in open_calls(db)] == ["customer"]


def test_a_late_older_state_never_reopens_a_call(
    hub: HubServer, db: Database, broker: MosquittoBroker
) -> None:
    calls = HelpCalls(lambda: T0, lambda: "0190f3c2-0000-7000-8000-000000000001")
    opened = calls.open("payment_in_doubt", sale_open=True)
    answered = calls.answer("payment_in_doubt", "Ana")
    cleared = calls.clear("payment_in_doubt", "Ana")
    assert opened and answered and cleared
    client = DeviceClient(broker, DEVICE, [])
    try:
        for call in (answered, cleared, opened, answered):  # duplicates, out of order
            client.publish(topics.help_up(DEVICE), encode(help_payload(DEVICE, call)))
        # A call on one device's topic naming another is malformed and stored nowhere.
        other = help_payload("kiosk-8", calls.open("customer", sale_open=False) or opened)
        client.publish(topics.help_up(DEVICE), encode(other))
        wait_until(lambda: hub.stats.malformed == 1)
    finally:
        client.close()
    assert stored(db, opened.id) == ("cleared", "urgent", "Ana")
    assert open_calls(db) == []
