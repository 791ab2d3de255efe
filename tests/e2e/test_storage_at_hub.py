"""End to end: the hub hears at once when an appliance's data partition runs short, and again
when it is back. Appliance, hub and mosquitto run for real; the partition is a real tmpfs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.broker import MosquittoBroker, free_port
from tests.disks import small_tmpfs
from tests.e2e.conftest import Processes
from tests.e2e.test_fleet import _hub, _until

BIN = Path(sys.executable).parent
DEVICE = "kiosk-storage"
MIB = 1024 * 1024


def test_the_hub_hears_of_storage_low_at_once_and_of_its_return(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    port = free_port()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    hub_db = f"sqlite:///{tmp_path / 'hub.db'}"
    net = ("--host", "127.0.0.1", "--port", str(port))
    try:
        with small_tmpfs(tmp_path / "data", 16 * 1024) as disk:
            processes.start(
                str(BIN / "appliance-hub"), "serve", "--db", hub_db, *net, log=tmp_path / "hub.log"
            )
            _until(lambda: _hub("fleet", "list", "--db", hub_db).returncode == 0, 30, "the hub")
            config = tmp_path / "appliance.toml"
            config.write_text(
                f'[device]\nid = "{DEVICE}"\n'
                f'[database]\npath = "{disk.path / "appliance.db"}"\n'
                "reserve_mb = 4\nstorage_check_seconds = 0.2\n"
                # An hour between reports: only the change itself can bring the news in time.
                f'[hub]\nhost = "127.0.0.1"\nport = {port}\ntelemetry_seconds = 3600\n'
            )
            processes.start(
                str(BIN / "appliance"),
                *("run", "--headless", "--simulate", "--config", str(config)),
                log=tmp_path / "appliance.log",
            )

            def storage() -> str:
                listing = _hub("fleet", "list", "--json", "--db", hub_db)
                entries = json.loads(listing.stdout) if listing.returncode == 0 else []
                return next((e["storage"] for e in entries if e["device"] == DEVICE), "")

            _until(lambda: storage() == "ok", 30, "the first report, storage ok")
            filler = disk.fill(leave_bytes=2 * MIB)
            _until(lambda: storage() == "low", 30, "storage low at the hub")
            shown = _hub("fleet", "show", DEVICE, "--db", hub_db)
            assert "storage low: below the reserve" in shown.stdout, shown.stdout

            filler.unlink()
            _until(lambda: storage() == "ok", 30, "storage back at the hub")
            processes.stop_all()  # before the tmpfs goes: the appliance has its files open
    finally:
        processes.stop_all()
        broker.stop()
