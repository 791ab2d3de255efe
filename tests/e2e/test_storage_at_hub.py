"""End to end: the hub hears at once when an appliance's data partition runs short, and again
when it is back. Appliance, hub and mosquitto run for real; the partition is a real tmpfs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.disks import small_tmpfs
from tests.e2e.conftest import Processes
from tests.e2e.test_fleet import _hub, _until, hub_and_broker

BIN = Path(sys.executable).parent
DEVICE = "kiosk-storage"
MIB = 1024 * 1024


def test_the_hub_hears_of_storage_low_at_once_and_of_its_return(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    with (
        small_tmpfs(tmp_path / "data", 16 * 1024) as disk,
        # Inside the tmpfs's block: every process stops before the tmpfs is unmounted.
        hub_and_broker(tmp_path, processes) as (port, hub_db),
    ):
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
