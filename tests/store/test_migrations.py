"""Schema migrations, the refusal of a newer database, backups and connection pragmas."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.errors import SchemaTooNewError
from appliance.store import migrations
from appliance.store.database import integrity_problems, open_database
from appliance.store.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    check_not_newer,
    migrate,
    pending_migrations,
    schema_version,
)

TABLES = {"product", "barcode", "document", "document_line", "stock_movement", "outbox", "meta"}


def _schema(db: SqliteDatabase) -> list[tuple[str, str, str]]:
    rows = db.execute_sql("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
    return [tuple(row) for row in rows.fetchall()]


def _add_product(db: SqliteDatabase, sku: str = "COLA") -> None:
    db.execute_sql(
        "INSERT INTO product (sku, name, price_minor, currency, tax_class, updated_at)"
        " VALUES (?, 'Cola', 199, 'EUR', 'standard', '2024-01-01T00:00:00+00:00')",
        (sku,),
    )


def _file_state(path: Path) -> tuple[bytes, int, list[str]]:
    """The database file's bytes and mtime, and which files sit beside it."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.iterdir())


def test_fresh_database_migrates_to_the_current_version(db_path: Path) -> None:
    db = open_database(db_path)
    try:
        assert schema_version(db) == 0
        assert pending_migrations(db) == MIGRATIONS
        applied = migrate(db)
        assert applied == list(MIGRATIONS)
        assert schema_version(db) == SCHEMA_VERSION == MIGRATIONS[-1].version
        assert check_not_newer(db) == SCHEMA_VERSION
        assert pending_migrations(db) == ()
        assert set(db.get_tables()) >= TABLES
        assert integrity_problems(db) == []
    finally:
        db.close()


def test_versions_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert all(m.description and m.statements for m in MIGRATIONS)


def test_migrating_twice_changes_nothing(db: SqliteDatabase, tmp_path: Path) -> None:
    _add_product(db)
    schema = _schema(db)
    backups = tmp_path / "backups"
    assert migrate(db, backup_dir=backups) == []
    assert schema_version(db) == SCHEMA_VERSION
    assert _schema(db) == schema
    assert db.execute_sql("SELECT sku FROM product").fetchall() == [("COLA",)]
    assert not backups.exists(), "nothing to migrate, so nothing to back up"


def test_migration_persists_across_reopening(db: SqliteDatabase, db_path: Path) -> None:
    db.close()
    again = open_database(db_path)
    try:
        assert schema_version(again) == SCHEMA_VERSION
        assert migrate(again) == []
    finally:
        again.close()


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_newer_database_is_refused_and_left_untouched(tmp_path: Path, journal_mode: str) -> None:
    # A newer appliance's database: WAL as the appliance keeps it, or rollback-journal mode as
    # a VACUUM INTO backup of one is.
    path = tmp_path / "newer.db"
    writer = sqlite3.connect(path)
    writer.execute(f"PRAGMA journal_mode = {journal_mode}")
    writer.execute("CREATE TABLE future (x TEXT NOT NULL)")
    writer.execute("INSERT INTO future VALUES ('keep me')")
    writer.commit()
    writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    writer.close()
    before = _file_state(path)
    time.sleep(0.02)  # a write now would show in the mtime

    db = open_database(path)
    try:
        with pytest.raises(SchemaTooNewError) as refused:
            migrate(db, backup_dir=tmp_path / "backups")
        with pytest.raises(SchemaTooNewError):
            check_not_newer(db)
    finally:
        db.close()

    message = str(refused.value)
    assert "newer" in message
    assert "not touched" in message
    assert str(SCHEMA_VERSION + 1) in message
    assert _file_state(path) == before, "the newer database's file was changed"
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert check.execute("SELECT x FROM future").fetchall() == [("keep me",)]
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == journal_mode
    finally:
        check.close()


V2 = Migration(
    SCHEMA_VERSION + 1,
    "a test-only column on meta",
    ("ALTER TABLE meta ADD COLUMN note TEXT NOT NULL DEFAULT ''",),
)


def _with_extra_migration(monkeypatch: pytest.MonkeyPatch, extra: Migration) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, extra))
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", extra.version)


def test_upgrading_a_database_with_data_backs_it_up_first(
    db: SqliteDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_product(db)
    _with_extra_migration(monkeypatch, V2)
    backups = tmp_path / "backups"

    assert migrate(db, backup_dir=backups) == [V2]

    assert schema_version(db) == V2.version
    assert "note" in {c.name for c in db.get_columns("meta")}
    backup = backups / f"before-migration-from-v{SCHEMA_VERSION}.db"
    assert sorted(p.name for p in backups.iterdir()) == [backup.name]
    old = sqlite3.connect(backup)
    try:
        assert old.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert old.execute("SELECT sku FROM product").fetchall() == [("COLA",)]
        assert "note" not in {row[1] for row in old.execute("PRAGMA table_info(meta)")}
        assert old.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        old.close()


def test_backup_replaces_an_older_backup(db: SqliteDatabase, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    _add_product(db, "FIRST")
    migrations._backup(db, backups, SCHEMA_VERSION)
    _add_product(db, "SECOND")
    migrations._backup(db, backups, SCHEMA_VERSION)
    copy = sqlite3.connect(backups / f"before-migration-from-v{SCHEMA_VERSION}.db")
    try:
        assert copy.execute("SELECT sku FROM product ORDER BY sku").fetchall() == [
            ("FIRST",),
            ("SECOND",),
        ]
    finally:
        copy.close()


def test_a_fresh_database_is_not_backed_up(db_path: Path, tmp_path: Path) -> None:
    db = open_database(db_path)
    try:
        migrate(db, backup_dir=tmp_path / "backups")
    finally:
        db.close()
    assert not (tmp_path / "backups").exists()


def test_a_failing_migration_leaves_the_previous_version(
    db: SqliteDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_product(db)
    schema = _schema(db)
    broken = Migration(
        SCHEMA_VERSION + 1,
        "fails halfway",
        ("CREATE TABLE half_done (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y TEXT"),
    )
    _with_extra_migration(monkeypatch, broken)

    with pytest.raises(Exception, match="no_such_table"):
        migrate(db, backup_dir=tmp_path / "backups")

    assert schema_version(db) == SCHEMA_VERSION
    assert _schema(db) == schema, "the first statement of the failed migration was kept"
    assert not db.in_transaction()
    assert (tmp_path / "backups" / f"before-migration-from-v{SCHEMA_VERSION}.db").exists()


def test_connection_pragmas(db: SqliteDatabase, db_path: Path) -> None:
    db.close()
    fresh = open_database(db_path)
    try:
        assert fresh.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert fresh.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert fresh.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert fresh.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        fresh.close()
    # WAL is a property of the file: any other connection sees it too.
    plain = sqlite3.connect(db_path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        plain.close()


def test_open_database_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "appliance.db"
    db = open_database(path)
    try:
        assert migrate(db) == list(MIGRATIONS)
    finally:
        db.close()
    assert path.is_file()


def test_integrity_problems_reports_a_dangling_reference(db: SqliteDatabase) -> None:
    assert integrity_problems(db) == []
    db.execute_sql("PRAGMA foreign_keys = OFF")
    db.execute_sql("INSERT INTO barcode (key, sku) VALUES ('04006381333931', 'GHOST')")
    db.execute_sql("PRAGMA foreign_keys = ON")
    problems = integrity_problems(db)
    assert len(problems) == 1
    assert "barcode" in problems[0]
    assert "product" in problems[0]


def test_the_payment_journal_keeps_every_attempts_meaning_across_version_6(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "v5.db")
    for migration in MIGRATIONS[:5]:
        with db.atomic():
            for statement in migration.statements:
                db.execute_sql(statement)
            db.execute_sql(f"PRAGMA user_version = {migration.version}")
    old_states = ("sent", "approved", "declined", "cancelled", "refused", "unknown", "not_paid")
    for state in old_states:
        db.execute_sql(
            "INSERT INTO payment_attempt (reference, amount, currency, state, card_mask,"
            " started_utc, updated_utc) VALUES (?, 100, 'EUR', ?, '**** 4242', 't', 't')",
            (state, state),
        )

    migrate(db)

    rows = dict(db.execute_sql("SELECT reference, state FROM payment_journal").fetchall())
    assert rows == {
        "sent": "pending",
        "unknown": "pending",
        "approved": "approved",
        "declined": "declined",
        "cancelled": "declined",
        "refused": "declined",
        "not_paid": "declined",
    }
    assert "payment_attempt" not in db.get_tables()
    db.close()
