"""The update's start-up step runs before the store opens: a rollback puts the snapshot back
before the appliance reads its database, and a try boot with nothing to pass its gate reboots."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.service.main_loop import run
from appliance.settings import Settings, parse_settings
from appliance.store.migrations import SCHEMA_VERSION
from appliance.update.boot import take_snapshot
from appliance.update.host_firmware import firmware_boot
from appliance.update.slots import DirectorySlots
from appliance.update.state import StateFile, UpdateRecord
from tests.update.cut_off import cut_off_after


def settings_for(tmp_path: Path, **tables: dict[str, Any]) -> Settings:
    return parse_settings(
        {
            "device": {"id": "kiosk-1"},
            "database": {"path": str(tmp_path / "data" / "appliance.db")},
            "update": {"slots": f"directory:{tmp_path / 'slots'}"},
            **tables,
        }
    )


def open_hours() -> dict[str, Any]:
    """[till] hours the kiosk is within now: its shift opens at start."""
    now = datetime.now()
    return {
        "kiosk_shift_open": f"{now - timedelta(hours=2):%H:%M}",
        "kiosk_shift_close": f"{now + timedelta(hours=2):%H:%M}",
    }


def try_boot(tmp_path: Path, settings: Settings) -> StateFile:
    """Slot B started as the one-shot try of a recorded update."""
    root = tmp_path / "slots"
    DirectorySlots(root).arm_try()
    (root / "tryboot").write_text("1")
    assert firmware_boot(root) == ("B", True)
    state = StateFile(Path(settings.database.path).parent / "update" / "state.json")
    state.save(UpdateRecord(job="job-1", version="2026.12.1", phase="trying", tried_from="A"))
    return state


def journal_kinds(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        found = [row[0] for row in db.execute("SELECT kind FROM journal ORDER BY number")]
    db.close()
    return found


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
    # The new release migrated past this one's schema, failed its gate and was cut off:
    # its last writes are only in the WAL beside the database.
    cut_off_after(
        database,
        "CREATE TABLE added_by_the_new_release (x INTEGER)",
        f"PRAGMA user_version = {SCHEMA_VERSION + 1}",
    )
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
    assert start_and_stop(settings) == 0  # opens and migrates: no SchemaTooNewError
    assert "added_by_the_new_release" not in tables(database)
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
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


def test_a_try_boot_opens_no_kiosk_shift_before_its_commit(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, till=open_hours())
    try_boot(tmp_path, settings)
    assert start_and_stop(settings) == 0  # the try boot: its gate fails (no hub link)
    # A shift opened here would be lost to a rollback, and its number used twice.
    assert journal_kinds(Path(settings.database.path)) == []


def test_the_kiosk_shift_opens_when_the_commit_lets_sales_go(tmp_path: Path) -> None:
    from appliance.service.assembly import Appliance
    from appliance.service.updates import SalesHold

    settings = settings_for(tmp_path, till=open_hours())
    app = Appliance.open(settings)
    try:
        release = threading.Thread(target=SalesHold(app), args=("",))
        release.start()  # from the gate's thread, as after a commit
        while release.is_alive():
            app.bus.drain()  # the main loop applies it
            release.join(0.01)
        assert journal_kinds(Path(settings.database.path)) == ["shift_open"]
    finally:
        app.close()


def test_while_a_try_boot_gates_a_remote_drawer_opening_is_rejected(tmp_path: Path) -> None:
    from appliance.core.clock import SystemClock
    from appliance.mqtt.commands import CommandHandler
    from appliance.service.updates import GATE_HOLD_REASON, UpdateStart, prepare_update
    from appliance.store.command_log import SqliteSeenCommands
    from appliance.store.database import open_database
    from appliance.store.migrations import migrate
    from hub.fleet_keys import new_command

    settings = settings_for(tmp_path)
    try_boot(tmp_path, settings)
    start: UpdateStart = prepare_update(
        settings, on_reboot=lambda: None, ready_sent=threading.Event()
    )
    assert start.gating
    db = open_database(settings.database.path)
    migrate(db)
    key = Ed25519PrivateKey.generate()
    opened: list[str] = []
    answers: list[tuple[str, str]] = []
    handler = CommandHandler(
        "kiosk-1",
        key.public_key(),
        publish_update=lambda update: answers.append((update.state, update.reason)),
        is_sale_open=lambda: False,
        actions={"open_drawer": lambda args: opened.append("drawer") or "opened"},
        clock=SystemClock(),
        seen_store=SqliteSeenCommands(db, SystemClock()),
        held=start.holds,
    )

    def drawer() -> str:
        command = new_command(key, "kiosk-1", "open_drawer", expires_in=timedelta(minutes=5))
        return handler.handle(command)

    assert drawer() == "REJECTED"
    assert answers[-1] == ("REJECTED", GATE_HOLD_REASON)
    start.boot.commit()
    assert drawer() == "QUEUED"  # committed: the drawer is the kiosk's again
    assert opened == []  # (the worker never ran)
    db.close()


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
