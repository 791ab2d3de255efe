"""End to end, real processes: a day of offline sales drains to the hub once the broker is
back; none lost, none duplicated, order kept. Appliance, hub and mosquitto all run for real."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import peewee
import pytest

from hub.db import HubDatabaseError, open_hub_database
from tests.broker import MosquittoBroker, free_port
from tests.e2e.conftest import Processes
from tests.mqtt.fake_hub import DeviceStore

BIN = Path(sys.executable).parent
DEVICE = "kiosk-e2e"


def _config(path: Path, db: Path, port: int) -> Path:
    path.write_text(
        f'[device]\nid = "{DEVICE}"\nreceipt_prefix = "E2E"\n'
        f'[database]\npath = "{db}"\n'
        f'[hub]\nhost = "127.0.0.1"\nport = {port}\ntelemetry_seconds = 5\n'
    )
    return path


def _hub_rows_once_created(url: str) -> list[tuple[str, int, str]]:
    """The hub's rows, or none while the hub is still creating its database (a busy machine
    can be polled between the file appearing and its tables being made)."""
    try:
        return _hub_rows(url)
    except (peewee.DatabaseError, HubDatabaseError):
        return []


def _hub_rows(url: str) -> list[tuple[str, int, str]]:
    db = open_hub_database(url, create=False)
    try:
        return [
            (str(d), int(s), str(i))
            for d, s, i in db.execute_sql("SELECT device, seq, sale_id FROM sale ORDER BY seq")
        ]
    finally:
        db.close()


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _day_offline_drains_exactly(tmp_path: Path, processes: Processes, sales: int) -> None:
    port = free_port()
    device_db = tmp_path / "device" / "appliance.db"
    device_db.parent.mkdir(parents=True)
    store = DeviceStore(device_db)
    sold = store.sell(sales, seed=7)
    store.close()
    config = _config(tmp_path / "appliance.toml", device_db, port)
    # The appliance starts while the broker is down: it sells on, the outbox keeps the day.
    appliance = processes.start(
        str(BIN / "appliance"),
        "run",
        "--headless",
        "--simulate",
        "--config",
        str(config),
        log=tmp_path / "appliance.log",
    )
    time.sleep(1.0)
    assert appliance.poll() is None, (tmp_path / "appliance.log").read_text()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    try:
        processes.start(
            str(BIN / "appliance-hub"),
            "serve",
            "--db",
            hub_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            log=tmp_path / "hub.log",
        )
        _wait(
            lambda: len(_hub_rows_once_created(hub_url)) >= sales,
            timeout=120,
            what=f"{sales} sales at the hub",
        )
        rows = _hub_rows(hub_url)
        assert len(rows) == sales, "duplicates or losses at the hub"
        assert [r[1] for r in rows] == list(range(1, sales + 1)), "sequence order per device"
        assert [r[2] for r in rows] == sold, "the same sales, in the order they were made"
        assert {r[0] for r in rows} == {DEVICE}
        # The device dropped its outbox rows only on the hub's acknowledgement.
        check = DeviceStore(device_db)
        try:
            _wait(lambda: check.outbox.depth() == 0, timeout=30, what="an empty outbox")
        finally:
            check.close()
    finally:
        processes.stop_all()
        broker.stop()


def test_a_day_of_offline_sales_drains_to_the_hub_exactly_once(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    _day_offline_drains_exactly(tmp_path, processes, sales=3000)


@pytest.mark.soak
def test_a_busy_week_offline_drains_exactly_once(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    _day_offline_drains_exactly(tmp_path, processes, sales=30000)
