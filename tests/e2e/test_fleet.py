"""End to end, real processes: the fleet admin's catalog import reaches the appliance, and a
signed command runs through its whole lifecycle. Appliance, hub and mosquitto run for real."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.mqtt import topics
from appliance.mqtt.payloads import CommandName, encode
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from hub.fleet_keys import load_fleet_key, new_command
from tests.broker import MosquittoBroker, free_port
from tests.e2e.conftest import Processes

BIN = Path(sys.executable).parent
DEVICE = "kiosk-fleet"
_MINUTE = timedelta(minutes=1)


def _hub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "appliance-hub"), *args], capture_output=True, text=True, timeout=90, check=False
    )


def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@contextmanager
def hub_and_broker(tmp_path: Path, processes: Processes) -> Iterator[tuple[int, str]]:
    """A mosquitto on a free loopback port and `appliance-hub serve` on it, answering;
    yields the broker's port and the hub's database URL. Both stop after the block."""
    port = free_port()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    hub_db = f"sqlite:///{tmp_path / 'hub.db'}"
    net = ("--host", "127.0.0.1", "--port", str(port))
    try:
        processes.start(
            str(BIN / "appliance-hub"), "serve", "--db", hub_db, *net, log=tmp_path / "hub.log"
        )
        _until(lambda: _hub("fleet", "list", "--db", hub_db).returncode == 0, 30, "the hub")
        yield port, hub_db
    finally:
        processes.stop_all()
        broker.stop()


def _product_on_device(db_path: Path, sku: str) -> bool:
    db = open_database(db_path)
    try:
        return SqliteCatalog(db).by_sku(sku) is not None
    finally:
        db.close()


def test_catalog_import_and_a_signed_command_reach_the_appliance(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    with hub_and_broker(tmp_path, processes) as (port, hub_db):
        net = ("--host", "127.0.0.1", "--port", str(port))
        assert _hub("fleet", "keygen", str(tmp_path / "keys")).returncode == 0
        assert _hub("fleet", "assign", DEVICE, "berlin", "--db", hub_db).returncode == 0
        device_db = tmp_path / "device" / "appliance.db"
        config = tmp_path / "appliance.toml"
        config.write_text(
            f'[device]\nid = "{DEVICE}"\n[database]\npath = "{device_db}"\n'
            f'[hub]\nhost = "127.0.0.1"\nport = {port}\n'
            f'fleet_public_key = "{tmp_path / "keys" / "fleet.pub"}"\n'
        )
        processes.start(
            str(BIN / "appliance"),
            "run",
            "--headless",
            "--simulate",
            "--config",
            str(config),
            log=tmp_path / "appliance.log",
        )

        def online() -> bool:
            listing = _hub("fleet", "list", "--json", "--db", hub_db)
            return any(e["device"] == DEVICE and e["online"] for e in json.loads(listing.stdout))

        _until(online, 30, "the appliance's birth at the hub")

        csv = tmp_path / "berlin.csv"
        csv.write_text(
            "sku,name,price,tax_class,barcodes\nNEW-1,Fresh thing,3.50,standard,4006381333931\n"
        )
        imported = _hub("catalog", "import", str(csv), "--store", "berlin", "--db", hub_db, *net)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        _until(lambda: _product_on_device(device_db, "NEW-1"), 30, "the delta on the device")

        command = _hub(
            "fleet",
            "command",
            DEVICE,
            "lock",
            "--fleet-key",
            str(tmp_path / "keys" / "fleet.key"),
            *net,
        )
        assert command.returncode == 0, command.stdout + command.stderr
        states = command.stdout
        assert states.index("QUEUED") < states.index("IN_PROGRESS") < states.index("SUCCEEDED")

        # The serving hub recorded the job and every state the appliance reported.
        def job_states() -> dict[str, tuple[str, str, str]]:
            listing = _hub("fleet", "jobs", DEVICE, "--json", "--db", hub_db)
            return {
                j["name"]: (j["state"], j["reason"], " > ".join(h[0] for h in j["history"]))
                for j in json.loads(listing.stdout)
            }

        _until(lambda: job_states().get("lock", ("",))[0] == "SUCCEEDED", 30, "the job at the hub")
        assert job_states()["lock"][2] == "SENT > QUEUED > IN_PROGRESS > SUCCEEDED"

        # More log lines than one message carries: the CLI refuses, the appliance clamps.
        key = str(tmp_path / "keys" / "fleet.key")
        refused = _hub("fleet", "logs", DEVICE, "-n", "10000", "--fleet-key", key, *net)
        assert refused.returncode == 2
        assert "10000 is not in the range 1<=x<=5000" in refused.stderr
        _send_raw_command(port, key, "collect_logs", {"lines": 10_000})
        _until(lambda: "collect_logs" in job_states(), 30, "the logs job at the hub")
        _until(lambda: job_states()["collect_logs"][0] == "SUCCEEDED", 30, "the logs sent")
        reason = job_states()["collect_logs"][1]
        assert "(asked for 10000, at most 5000)" in reason
        # The ring holds what was logged since the hub link started; a quiet run has little.
        sent = int(reason.split(" lines sent", 1)[0])
        shown = json.loads(_hub("fleet", "show", DEVICE, "--json", "--db", hub_db).stdout)
        assert shown["logs"]["count"] == sent <= 5000


def _send_raw_command(port: int, key_path: str, name: CommandName, args: dict[str, Any]) -> None:
    """Sign a command and publish it as the fleet CLI would, bypassing the CLI's own checks."""
    command = new_command(load_fleet_key(Path(key_path)), DEVICE, name, args, expires_in=_MINUTE)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="admin", protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topics.command(DEVICE), encode(command), qos=1).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
