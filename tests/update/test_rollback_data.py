"""A rollback puts the pre-try snapshot back, but never rewinds what must only go forward:
the hub session counter and the seen command ids the try boot used stay used."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.store.carry_over import carry_across_restore
from appliance.store.command_log import SqliteSeenCommands
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import SCHEMA_VERSION, migrate
from appliance.update.boot import restore_snapshot, take_snapshot
from tests.update.cut_off import cut_off_after

NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=7)


class FixedClock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """A migrated store that used sessions 1-2 and saw one command before the try."""
    path = tmp_path / "data" / "appliance.db"
    db = open_database(path)
    migrate(db)
    sessions = SessionStore(db)
    sessions.advance()
    sessions.advance()
    SqliteSeenCommands(db, FixedClock()).remember("before-the-try", EXPIRES)
    db.close()
    yield path


def open_restored(database: Path) -> tuple[int, bool, bool]:
    db = open_database(database)
    try:
        migrate(db)  # the old release opens it as always: no SchemaTooNewError
        seen = SqliteSeenCommands(db, FixedClock())
        return SessionStore(db).current(), "before-the-try" in seen, "in-the-try" in seen
    finally:
        db.close()


def test_the_session_count_and_the_seen_commands_of_the_try_survive_its_rollback(
    database: Path,
) -> None:
    snapshot = database.parent / "update" / "snapshot.db"
    take_snapshot(database, snapshot)
    cut_off_after(
        database,
        "UPDATE meta SET value = '7' WHERE key = 'mqtt_bd_seq'",
        "INSERT INTO command_seen (id, expires_at, seen_at)"
        f" VALUES ('in-the-try', '{EXPIRES.isoformat()}', '{NOW.isoformat()}')",
    )
    restore_snapshot(snapshot, database, carry_across_restore)
    assert open_restored(database) == (7, True, True)


def test_the_session_count_never_goes_below_the_snapshot(database: Path) -> None:
    snapshot = database.parent / "update" / "snapshot.db"
    take_snapshot(database, snapshot)
    with sqlite3.connect(database) as db:  # a damaged counter in the discarded database
        db.execute("UPDATE meta SET value = 'x' WHERE key = 'mqtt_bd_seq'")
    db.close()
    restore_snapshot(snapshot, database, carry_across_restore)
    assert open_restored(database)[0] == 2


def test_a_rollback_after_a_newer_migration_opens_on_the_old_release(database: Path) -> None:
    snapshot = database.parent / "update" / "snapshot.db"
    take_snapshot(database, snapshot)
    # The try boot migrates the store as a newer release would, and is cut off mid-way.
    cut_off_after(
        database,
        "CREATE TABLE added_by_the_new_release (x INTEGER)",
        f"PRAGMA user_version = {SCHEMA_VERSION + 1}",
        "UPDATE meta SET value = '5' WHERE key = 'mqtt_bd_seq'",
    )
    restore_snapshot(snapshot, database, carry_across_restore)
    assert open_restored(database) == (5, True, False)
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert "added_by_the_new_release" not in tables and version == SCHEMA_VERSION
