"""Migration 4 takes over the tables older appliances created at run time, rows and all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from peewee import SqliteDatabase

from appliance.core.clock import Clock
from appliance.store.catalog_versions import SnapshotStaging
from appliance.store.command_log import SqliteSeenCommands
from appliance.store.database import integrity_problems, open_database
from appliance.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN_TIME_TABLES = {"command_seen", "catalog_snapshot_chunk"}

# Verbatim what appliances before schema version 4 ran on first use of these tables.
OLD_COMMAND_SEEN = (
    "CREATE TABLE IF NOT EXISTS command_seen ("
    " id TEXT PRIMARY KEY, expires_at TEXT NOT NULL, seen_at TEXT NOT NULL"
    ") WITHOUT ROWID"
)
OLD_SNAPSHOT_CHUNK = (
    "CREATE TABLE IF NOT EXISTS catalog_snapshot_chunk ("
    " version INTEGER NOT NULL,"
    " chunk INTEGER NOT NULL,"
    " chunks INTEGER NOT NULL,"
    " body BLOB NOT NULL,"
    " received_at TEXT NOT NULL,"
    " PRIMARY KEY (version, chunk))"
)


class FixedClock:
    """A clock that always reads NOW."""

    def monotonic(self) -> float:
        """Unused by the seen-command store."""
        return 0.0

    def now(self) -> datetime:
        """The fixed wall time."""
        return NOW


def _written_by_schema_version_3(db: SqliteDatabase) -> None:
    """The database as an appliance of schema version 3 left it, run-time tables included."""
    for migration in MIGRATIONS:
        if migration.version <= 3:
            for statement in migration.statements:
                db.execute_sql(statement)
    db.execute_sql("PRAGMA user_version = 3")
    db.execute_sql(OLD_COMMAND_SEEN)
    db.execute_sql(OLD_SNAPSHOT_CHUNK)
    db.execute_sql(
        "INSERT INTO command_seen VALUES (?, ?, ?)",
        ("cmd-reboot-1", (NOW + timedelta(minutes=5)).isoformat(), NOW.isoformat()),
    )
    db.execute_sql(
        "INSERT INTO catalog_snapshot_chunk VALUES (?, ?, ?, ?, ?)",
        (7, 0, 2, b"first chunk", NOW.isoformat()),
    )


def test_an_old_database_holding_the_run_time_tables_migrates_and_keeps_their_rows(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "appliance.db")
    try:
        _written_by_schema_version_3(db)

        applied = migrate(db, backup_dir=tmp_path / "backups")

        assert [m.version for m in applied] == list(range(4, SCHEMA_VERSION + 1))
        assert schema_version(db) == SCHEMA_VERSION
        clock: Clock = FixedClock()
        seen = SqliteSeenCommands(db, clock)
        assert "cmd-reboot-1" in seen
        assert not seen.remember("cmd-reboot-1", NOW + timedelta(minutes=5)), "replayed"
        staged = SnapshotStaging(db).state()
        assert staged is not None
        assert (staged.version, staged.chunks, staged.present) == (7, 2, frozenset({0}))
        assert list(SnapshotStaging(db).bodies(7)) == [b"first chunk"]
        assert integrity_problems(db) == []
    finally:
        db.close()


def test_a_fresh_database_has_the_tables_after_migrate(tmp_path: Path) -> None:
    db = open_database(tmp_path / "appliance.db")
    try:
        assert not RUN_TIME_TABLES & set(db.get_tables())

        migrate(db)

        assert set(db.get_tables()) >= RUN_TIME_TABLES
        seen = SqliteSeenCommands(db, FixedClock())
        assert seen.remember("cmd-1", NOW + timedelta(minutes=5))
        assert not seen.remember("cmd-1", NOW + timedelta(minutes=5))
        staging = SnapshotStaging(db)
        assert staging.state() is None
        assert staging.stage(3, 0, 1, b"only chunk", NOW).complete
    finally:
        db.close()


def test_the_migrated_tables_have_the_columns_the_run_time_ones_had(tmp_path: Path) -> None:
    old = open_database(tmp_path / "old.db")
    new = open_database(tmp_path / "new.db")
    try:
        old.execute_sql(OLD_COMMAND_SEEN)
        old.execute_sql(OLD_SNAPSHOT_CHUNK)
        migrate(new)
        for table in sorted(RUN_TIME_TABLES):
            columns = [(c.name, c.data_type, c.null, c.primary_key) for c in old.get_columns(table)]
            assert [
                (c.name, c.data_type, c.null, c.primary_key) for c in new.get_columns(table)
            ] == columns, table
    finally:
        old.close()
        new.close()
