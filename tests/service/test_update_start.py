"""The update's start-up step runs before the store opens: a rollback puts the snapshot back
before the appliance reads its database, and a try boot with nothing to pass its gate reboots."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from appliance.service.main_loop import run
from appliance.settings import Settings, parse_settings
from appliance.update.boot import take_snapshot
from appliance.update.host_firmware import firmware_boot
from appliance.update.slots import DirectorySlots
from appliance.update.state import StateFile, UpdateRecord


def settings_for(tmp_path: Path) -> Settings:
    return parse_settings(
        {
            "device": {"id": "kiosk-1"},
            "database": {"path": str(tmp_path / "data" / "appliance.db")},
            "update": {"slots": f"directory:{tmp_path / 'slots'}"},
        }
    )


def start_and_stop(settings: Settings) -> int:
    stop = threading.Event()
    stop.set()  # open everything, serve no tick, close
    return run(settings, simulate=False, stop=stop)


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        found = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    return found


def test_the_old_slot_restores_the_snapshot_before_the_store_opens(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    database = Path(settings.database.path)
    firmware_boot(tmp_path / "slots")
    assert start_and_stop(settings) == 0  # a first start makes the store
    state = StateFile(database.parent / "update" / "state.json")
    snapshot = database.parent / "update" / "snapshot.db"
    take_snapshot(database, snapshot)
    with sqlite3.connect(database) as db:  # the new release migrated, then failed its gate
        db.execute("CREATE TABLE added_by_the_new_release (x INTEGER)")
    db.close()
    state.save(
        UpdateRecord(
            job="job-1",
            version="2026.12.1",
            phase="gate_failed",
            reason="not within 300 s: the hub link",
            tried_from="A",
            snapshot=str(snapshot),
        )
    )
    firmware_boot(tmp_path / "slots")  # no tryboot flag: slot A
    assert start_and_stop(settings) == 0
    assert "added_by_the_new_release" not in tables(database)
    record = state.load()
    assert (record.phase, record.refused) == ("rolled_back", ("2026.12.1",))
    assert not snapshot.exists()


def test_a_try_boot_without_a_hub_link_fails_its_gate_at_once_and_reboots(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    root = tmp_path / "slots"
    slots = DirectorySlots(root)
    slots.arm_try()
    (root / "tryboot").write_text("1")
    assert firmware_boot(root) == ("B", True)
    state = StateFile(Path(settings.database.path).parent / "update" / "state.json")
    state.save(UpdateRecord(job="job-1", version="2026.12.1", phase="trying", tried_from="A"))
    assert start_and_stop(settings) == 0
    record = state.load()
    assert record.phase == "gate_failed"
    assert "no hub link" in record.reason
    assert (root / "reboot-requested").exists()
    assert firmware_boot(root) == ("A", False)  # the one-shot try is over


def test_the_gate_sees_the_store_migrated_from_its_own_thread(tmp_path: Path) -> None:
    from appliance.service.updates import database_migrated
    from appliance.store.database import open_database
    from appliance.store.migrations import migrate

    fresh = open_database(tmp_path / "fresh.db")
    migrated = open_database(tmp_path / "migrated.db")
    migrate(migrated)
    seen: dict[str, bool] = {}

    def gate_thread() -> None:  # the main thread's open connection counts for nothing here
        seen["fresh"] = database_migrated(fresh)
        seen["migrated"] = database_migrated(migrated)

    thread = threading.Thread(target=gate_thread)
    thread.start()
    thread.join()
    assert seen == {"fresh": False, "migrated": True}
    assert not migrated.is_closed()  # the main thread's connection stays open
    fresh.close()
    migrated.close()
