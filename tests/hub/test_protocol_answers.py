"""What devices answer to the fleet, kept by a serving hub: jobs, configurations, logs.

A real mosquitto, the hub worker `appliance-hub serve` runs (in-process), the fleet CLI,
and a raw paho v5 client playing the device with JSON written by hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.dispatch import LOG_FIRST
from hub.cli import cli
from hub.device_answers import configs, jobs
from hub.fleet_keys import generate_fleet_keys
from hub.models import DeviceLog
from hub.server import HubServer
from tests.broker import MosquittoBroker
from tests.hub.serving import start_serving_hub
from tests.hub.test_server import DeviceClient, wait_until

DEVICE = "kiosk-1"


@pytest.fixture
def kiosk(broker: MosquittoBroker, serving_hub: HubServer) -> Iterator[DeviceClient]:
    """kiosk-1, born (so the hub knows it) and subscribed to its commands."""
    client = DeviceClient(broker, DEVICE, [topics.command(DEVICE)])
    birth = {"v": 1, "device": DEVICE, "online": True, "bd_seq": 1, "firmware": "2.0.0"}
    client.publish(topics.status(DEVICE), raw(birth), retain=True)
    wait_until(lambda: serving_hub.stats.statuses == 1)
    yield client
    client.close()


def raw(message: dict[str, Any]) -> bytes:
    """JSON as a device written from the document alone would send it."""
    return json.dumps(message).encode()


def hub_cli(*args: str) -> Result:
    """`appliance-hub ARGS`, in-process."""
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def words(output: str) -> str:
    """The output with table borders and padding made one space."""
    return "\n".join(" ".join(line.replace("│", " ").split()) for line in output.splitlines())


def test_an_answer_after_the_cli_stopped_waiting_is_kept_and_shown(
    serving_hub: HubServer,
    kiosk: DeviceClient,
    broker: MosquittoBroker,
    db_path: Path,
    tmp_path: Path,
) -> None:
    key, _ = generate_fleet_keys(tmp_path / "keys")
    net = ("--host", broker.host, "--port", str(broker.port))
    sent = hub_cli("fleet", "command", DEVICE, "lock", "--fleet-key", str(key), *net, "--wait", "0")
    assert sent.exit_code == 2, sent.output
    assert "the hub records later answers" in sent.output
    command = json.loads(kiosk.next(topics.command(DEVICE)).payload)
    wait_until(lambda: serving_hub.stats.commands == 1)
    listed = hub_cli("fleet", "jobs", DEVICE, "--db", f"sqlite:///{db_path}")
    assert listed.exit_code == 0, listed.output
    assert f"{DEVICE} {command['id']} lock SENT SENT" in words(listed.output)

    # The CLI is gone; the device answers now.
    for state, reason in (("QUEUED", ""), ("IN_PROGRESS", ""), ("SUCCEEDED", "locked")):
        update = {"v": 1, "id": command["id"], "state": state, "reason": reason}
        kiosk.publish(topics.command_update(DEVICE), raw(update))
    wait_until(lambda: serving_hub.stats.command_updates == 3)

    shown = hub_cli("fleet", "show", DEVICE, "--db", f"sqlite:///{db_path}")
    assert shown.exit_code == 0, shown.output
    assert (
        f"{command['id']} lock: SUCCEEDED: locked (SENT > QUEUED > IN_PROGRESS > SUCCEEDED, "
        f"issued {command['issued_at']})"
    ) in words(shown.output)
    listed = hub_cli("fleet", "jobs", "--json", "--db", f"sqlite:///{db_path}")
    (job,) = json.loads(listed.output)
    assert (job["id"], job["device"], job["state"], job["reason"]) == (
        command["id"],
        DEVICE,
        "SUCCEEDED",
        "locked",
    )
    assert (job["expires_at"], job["args"]) == (command["expires_at"], {})


def test_updates_out_of_order_and_redelivered_never_move_a_job_back(
    serving_hub: HubServer, kiosk: DeviceClient, hub_db: Database
) -> None:
    # Two workers may handle one job's updates the other way round, or see one twice.
    for state in ("QUEUED", "FAILED", "IN_PROGRESS", "FAILED"):
        update = {"v": 1, "id": "job-1", "state": state, "reason": "jammed" * (state == "FAILED")}
        kiosk.publish(topics.command_update(DEVICE), raw(update))
    wait_until(lambda: serving_hub.stats.command_updates == 4)
    (job,) = jobs(hub_db, DEVICE)
    assert (job.state, job.reason, job.name) == ("FAILED", "jammed", "")
    assert job.lifecycle() == "QUEUED > IN_PROGRESS > FAILED"


def test_an_update_for_another_devices_job_is_malformed(
    serving_hub: HubServer, kiosk: DeviceClient, broker: MosquittoBroker, hub_db: Database
) -> None:
    kiosk.publish(topics.command_update(DEVICE), raw({"v": 1, "id": "job-1", "state": "QUEUED"}))
    wait_until(lambda: serving_hub.stats.command_updates == 1)
    other = DeviceClient(broker, "kiosk-2", [])
    try:
        update = {"v": 1, "id": "job-1", "state": "SUCCEEDED"}
        other.publish(topics.command_update("kiosk-2"), raw(update))
    finally:
        other.close()
    wait_until(lambda: serving_hub.stats.malformed == 1)
    assert [job.state for job in jobs(hub_db)] == ["QUEUED"]
    assert serving_hub.per_device("malformed_by_device") == {"kiosk-2": 1}


def test_desired_and_reported_configuration_are_kept_and_shown(
    serving_hub: HubServer,
    kiosk: DeviceClient,
    broker: MosquittoBroker,
    db_path: Path,
    tmp_path: Path,
) -> None:
    desired = tmp_path / "desired.toml"
    desired.write_text("[hub]\nhealth_interval_s = 30\n")
    net = ("--host", broker.host, "--port", str(broker.port))
    pushed = hub_cli("fleet", "config", DEVICE, str(desired), *net, "--wait", "0")
    assert pushed.exit_code == 2, pushed.output
    wait_until(lambda: serving_hub.stats.configs == 1)
    shown = hub_cli("fleet", "show", DEVICE, "--db", f"sqlite:///{db_path}")
    assert "configuration pending: no report yet" in words(shown.output)
    assert 'desired version 1: {"hub": {"health_interval_s": 30}}' in words(shown.output)

    report = {"v": 1, "version": 0, "rejected_version": 1, "errors": ["hub.health: too low"]}
    kiosk.publish(topics.config_reported(DEVICE), raw(report), retain=True)
    # A retained report reaches the hub through its shared and its own subscription.
    wait_until(lambda: serving_hub.stats.configs == 3)
    shown = hub_cli("fleet", "show", DEVICE, "--db", f"sqlite:///{db_path}")
    assert "configuration rejected" in words(shown.output)
    assert "reported version 0 in force, version 1 rejected: hub.health: too low" in words(
        shown.output
    )
    as_json = json.loads(
        hub_cli("fleet", "show", DEVICE, "--json", "--db", f"sqlite:///{db_path}").output
    )
    assert as_json["config_desired"] == {
        "v": 1,
        "version": 1,
        "config": {"hub": {"health_interval_s": 30}},
    }
    assert as_json["config_reported"]["rejected_version"] == 1


def test_a_hub_started_later_learns_the_retained_configurations(
    broker: MosquittoBroker, hub_db: Database, db_path: Path
) -> None:
    kiosk = DeviceClient(broker, DEVICE, [])
    try:
        desired = {"v": 1, "version": 4, "config": {"printer": {"width": 42}}}
        kiosk.publish(topics.config_desired(DEVICE), raw(desired), retain=True)
        reported = {"v": 1, "version": 4}
        kiosk.publish(topics.config_reported(DEVICE), raw(reported), retain=True)
    finally:
        kiosk.close()
    # MQTT 5 sends retained messages to no shared subscription: the hub's own ones get them.
    server = start_serving_hub(broker, hub_db)
    try:
        wait_until(lambda: None not in configs(hub_db, DEVICE))
    finally:
        server.stop()
    shown = hub_cli("fleet", "show", DEVICE, "--db", f"sqlite:///{db_path}")
    assert "configuration in force" in words(shown.output)
    assert "reported version 4 in force" in words(shown.output)


def test_collected_logs_are_kept_and_lines_naming_another_device_are_malformed(
    serving_hub: HubServer, kiosk: DeviceClient, db_path: Path, hub_db: Database
) -> None:
    lines = {
        "v": 1,
        "device": DEVICE,
        "command_id": "job-7",
        "source": "ring",
        "lines": ["first", "second", "third"],
    }
    kiosk.publish(topics.logs_up(DEVICE), raw(lines))
    kiosk.publish(topics.logs_up(DEVICE), raw({**lines, "device": "kiosk-2", "command_id": "x"}))
    wait_until(lambda: serving_hub.stats.logs == 1 and serving_hub.stats.malformed == 1)
    assert DeviceLog.select().count(hub_db) == 1
    assert serving_hub.per_device("malformed_by_device") == {DEVICE: 1}
    shown = hub_cli("fleet", "show", DEVICE, "--logs", "--db", f"sqlite:///{db_path}")
    assert shown.exit_code == 0, shown.output
    assert "collected logs 3 lines from the ring" in words(shown.output)
    assert shown.output.splitlines()[-3:] == ["first", "second", "third"]


def test_more_log_lines_than_the_maximum_are_malformed(
    serving_hub: HubServer, kiosk: DeviceClient, hub_db: Database
) -> None:
    lines = {"v": 1, "device": DEVICE, "command_id": "j", "source": "ring", "lines": ["x"] * 5001}
    kiosk.publish(topics.logs_up(DEVICE), raw(lines))
    wait_until(lambda: serving_hub.stats.malformed == 1)
    assert DeviceLog.select().count(hub_db) == 0


def test_a_topic_the_hub_does_not_handle_is_counted_and_logged_at_warning_rate_limited(
    serving_hub: HubServer, kiosk: DeviceClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hub.server")
    topic = f"{topics.device_root(DEVICE)}/up/whatever"
    flood = LOG_FIRST + 5
    for _ in range(flood):
        kiosk.publish(topic, b"{}")
    wait_until(lambda: serving_hub.stats.unhandled == flood)
    warned = [
        r for r in caplog.records if r.levelno == logging.WARNING and "no handler for" in r.message
    ]
    assert len(warned) == LOG_FIRST  # the first few, then one in LOG_EVERY
    assert topic in warned[0].message
    assert serving_hub.per_device("unhandled_by_device") == {DEVICE: flood}
