"""Commands from the dashboard: signed with the fleet key, published to a real broker, held.

A real mosquitto and raw paho clients playing the devices; the web app in Litestar's test
client on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import Command, DeviceStatus, decode
from appliance.mqtt.signing import load_public_key, verify_command
from hub.cli_command import BrokerOptions, FleetClient, FleetClientError
from hub.command_hold import held_jobs
from hub.device_answers import jobs
from hub.fleet_keys import generate_fleet_keys
from hub.ingest import DeviceRecords
from hub.server import BrokerEndpoint
from hub.stores import assign_device
from tests.broker import MosquittoBroker, free_port
from tests.hub.dashboard.conftest import Client, MakeClient, csrf_of, log_in
from tests.hub.test_server import DeviceClient

STORE = "berlin"
DEVICES = ("kiosk-1", "kiosk-2")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """The fleet's private and public key."""
    return generate_fleet_keys(tmp_path / "keys")


@pytest.fixture
def kiosks(broker: MosquittoBroker, dash_db: Database) -> Iterator[dict[str, DeviceClient]]:
    """Two devices of the store, known to the hub and subscribed to their commands."""
    clients = {}
    for device in DEVICES:
        assign_device(dash_db, device, STORE)
        DeviceRecords(dash_db).record_status(
            device, DeviceStatus(device=device, online=True, bd_seq=1)
        )
        clients[device] = DeviceClient(broker, device, [topics.command(device)])
    yield clients
    for client in clients.values():
        client.close()


def sending_client(web: MakeClient, key: Path, port: int) -> Client:
    """Logged in, with a fleet key and a broker."""
    client = web(fleet_key=key, broker=BrokerEndpoint("127.0.0.1", port))
    assert log_in(client).status_code == 303
    return client


@pytest.fixture
def client(web: MakeClient, admin: str, broker: MosquittoBroker, keys: tuple[Path, Path]) -> Client:
    """Logged in to a dashboard that sends with the fleet key to the test broker."""
    return sending_client(web, keys[0], broker.port)


def press(client: Client, page: str, command: str, **extra: str) -> Any:
    """Press a command button on a page, as the browser sends the form (not followed)."""
    form = {"csrf": csrf_of(client, page), "command": command, "expires": "1h", **extra}
    return client.post(f"{page}/commands", data=form, follow_redirects=False)


def redirect_query(response: Any) -> tuple[str, dict[str, list[str]]]:
    """Where a 303 goes, and its query."""
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    return location.path, parse_qs(location.query)


def test_a_command_is_signed_with_the_fleet_key_published_and_held_until_answered(
    client: Client, kiosks: dict[str, DeviceClient], keys: tuple[Path, Path], dash_db: Database
) -> None:
    response = press(client, "/devices/kiosk-1", "lock")
    path, query = redirect_query(response)
    assert path == "/devices/kiosk-1" and query["published"] == ["1"]

    message = kiosks["kiosk-1"].next(topics.command("kiosk-1"))
    command = decode(message.payload, Command)
    verify_command(command, load_public_key(keys[1]))  # the device's own check passes
    assert (command.id, command.device, command.name) == (query["sent"][0], "kiosk-1", "lock")
    assert message.properties.CorrelationData == command.id.encode()
    assert message.properties.ResponseTopic == topics.command_update("kiosk-1")
    (job,) = jobs(dash_db, "kiosk-1")
    assert (job.id, job.state, job.name) == (command.id, "SENT", "lock")
    assert held_jobs(dash_db, "kiosk-1") == {command.id}  # until the device answers
    page = client.get(response.headers["location"]).text
    assert f"Command {command.id} sent. Its state" in " ".join(page.split())
    assert re.search(rf'data-job="{command.id}" data-name="lock" data-state="SENT"', page)


def test_reboot_asks_for_confirmation_before_anything_is_sent(
    client: Client, kiosks: dict[str, DeviceClient], dash_db: Database
) -> None:
    asked = press(client, "/devices/kiosk-1", "reboot")
    assert asked.status_code == 200 and "Reboot now" in asked.text
    assert jobs(dash_db, "kiosk-1") == []
    _, query = redirect_query(press(client, "/devices/kiosk-1", "reboot", confirm="yes"))
    command = decode(kiosks["kiosk-1"].next(topics.command("kiosk-1")).payload, Command)
    assert (command.name, command.id) == ("reboot", query["sent"][0])


def test_a_store_command_goes_to_every_device_of_the_store(
    client: Client, kiosks: dict[str, DeviceClient], dash_db: Database
) -> None:
    path, query = redirect_query(press(client, f"/stores/{STORE}", "reload_catalog"))
    assert (path, query["sent"], query["published"]) == (f"/stores/{STORE}", ["2"], ["1"])
    for device, kiosk in kiosks.items():
        command = decode(kiosk.next(topics.command(device)).payload, Command)
        assert (command.device, command.name) == (device, "reload_catalog")
        (job,) = jobs(dash_db, device)
        assert job.id == command.id
    page = client.get(f"/stores/{STORE}").text
    assert page.count("reload_catalog: <span") == 2


def test_a_broker_that_cannot_be_reached_leaves_the_command_held_and_says_so(
    web: MakeClient, admin: str, keys: tuple[Path, Path], dash_db: Database
) -> None:
    DeviceRecords(dash_db).record_status(
        "kiosk-1", DeviceStatus(device="kiosk-1", online=False, bd_seq=1)
    )
    client = sending_client(web, keys[0], free_port())  # nobody listens there
    response = press(client, "/devices/kiosk-1", "unlock")
    _, query = redirect_query(response)
    assert query["published"] == ["0"] and "cannot reach the broker" in query["problem"][0]
    assert held_jobs(dash_db, "kiosk-1") == set(query["sent"])
    page = client.get(response.headers["location"]).text
    assert "held at the hub" in page and "held at the hub until the device connects" in page


def test_without_a_fleet_key_nothing_is_signed_or_recorded(
    web: MakeClient, admin: str, kiosks: dict[str, DeviceClient], dash_db: Database
) -> None:
    client = web()  # `appliance-hub web` without --fleet-key
    assert log_in(client).status_code == 303
    form = {"csrf": csrf_of(client, "/devices/kiosk-1"), "command": "lock", "expires": "1h"}
    response = client.post("/devices/kiosk-1/commands", data=form, follow_redirects=False)
    assert response.status_code == 503 and "No fleet key" in response.text
    assert jobs(dash_db, "kiosk-1") == []


def test_a_broker_that_never_answers_leaves_no_client_thread_behind() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says CONNACK
        port = silent.getsockname()[1]
        client = FleetClient(BrokerOptions("127.0.0.1", port), timeout=0.3)
        with pytest.raises(FleetClientError, match="did not answer in time"), client:
            pass
    left = [t.name for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-")]
    assert left == []
