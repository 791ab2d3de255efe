"""`appliance-hub status`: the workers' counters, malformed messages included, from the database."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from peewee import Database

from appliance.mqtt import topics
from hub.cli import cli
from hub.models import WorkerStats
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.hub.serving import start_serving_hub
from tests.hub.test_server import TIMEOUT, DeviceClient, wait_until


def status(db_path: Path, *args: str) -> Result:
    """`appliance-hub status` on the test database."""
    return CliRunner().invoke(
        cli, ["status", *args, "--db", f"sqlite:///{db_path}"], env={"COLUMNS": "200"}
    )


def send_garbage(broker: MosquittoBroker, device: str, count: int) -> None:
    """A device publishes `count` sales batches that are not JSON."""
    kiosk = DeviceClient(broker, device, [])
    try:
        for _ in range(count):
            kiosk.publish(topics.sales_up(device), b"\xff not json")
    finally:
        kiosk.close()


def test_status_shows_the_malformed_count_of_a_stopped_worker_and_per_device(
    broker: MosquittoBroker, hub_db: Database, db_path: Path
) -> None:
    server = start_serving_hub(broker, hub_db)
    try:
        kiosk = DeviceClient(broker, "kiosk-1", [])
        birth = b'{"v": 1, "device": "kiosk-1", "online": true, "bd_seq": 1}'
        kiosk.publish(topics.status("kiosk-1"), birth, retain=True)
        kiosk.close()
        send_garbage(broker, "kiosk-1", 2)
        send_garbage(broker, "kiosk-2", 1)
        wait_until(lambda: server.stats.malformed == 3 and server.stats.statuses == 1)
    finally:
        server.stop()  # writes the counters one last time
    shown = status(db_path)
    assert shown.exit_code == 0, shown.output
    row = next(line for line in shown.output.splitlines() if " w1 " in line)
    assert row.replace("│", " ").split()[1] == "stopped"
    assert row.replace("│", " ").split()[-5:] == ["4", "3", "0", "0", "0"]  # + the birth
    assert "malformed messages by device:\n  kiosk-1: 2\n  kiosk-2: 1\n" in shown.output
    as_json = json.loads(status(db_path, "--json").output)
    assert as_json["totals"]["counters"]["malformed"] == 3
    assert as_json["totals"]["per_device"]["malformed_by_device"] == {"kiosk-1": 2, "kiosk-2": 1}
    shown = CliRunner().invoke(cli, ["fleet", "show", "kiosk-1", "--db", f"sqlite:///{db_path}"])
    assert "malformed messages at the hub 2" in " ".join(shown.output.split())


def test_a_running_worker_saves_its_counters_on_its_interval_and_shows_alive(
    broker: MosquittoBroker, hub_db: Database, db_path: Path
) -> None:
    endpoint = BrokerEndpoint(broker.host, broker.port)
    server = HubServer(hub_db, endpoint, worker_id="w2", stats_every=0.05)
    server.start(timeout=TIMEOUT)
    try:
        send_garbage(broker, "kiosk-1", 1)
        saved = WorkerStats.select(WorkerStats.counters).where(WorkerStats.worker_id == "w2")
        wait_until(lambda: '"malformed": 1' in (saved.scalar(hub_db) or ""))
        shown = json.loads(status(db_path, "--json").output)
    finally:
        server.stop()
    (worker,) = shown["workers"]
    assert (worker["worker_id"], worker["state"]) == ("w2", "alive")
    assert worker["counters"]["malformed"] == 1
    assert shown["totals"]["counters"]["received"] >= 1


def test_status_on_a_database_with_no_worker_yet(hub_db: Database, db_path: Path) -> None:
    shown = status(db_path)
    assert shown.exit_code == 0, shown.output
    assert "0 worker(s), 0 alive" in shown.output
