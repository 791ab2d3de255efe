"""Every drawer opening is recorded with its reason, and v1 databases gain the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from peewee import SqliteDatabase

from appliance.core.devices import DrawerOpening
from appliance.store.database import open_database
from appliance.store.drawer_log import DrawerLog
from appliance.store.migrations import MIGRATIONS, migrate, schema_version


def test_openings_are_recorded_in_order_with_reason_and_staff(db: SqliteDatabase) -> None:
    log = DrawerLog(db)
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    log.record("drawer", DrawerOpening("sale", reference="sale-1"), at=start)
    log.record("drawer", DrawerOpening("no_sale", staff="Ana"), at=start + timedelta(minutes=5))
    log.record("drawer", DrawerOpening("remote", reference="cmd-9"), at=start + timedelta(hours=1))
    everything = log.since()
    assert [(x.opening.reason, x.opening.staff, x.opening.reference) for x in everything] == [
        ("sale", "", "sale-1"),
        ("no_sale", "Ana", ""),
        ("remote", "", "cmd-9"),
    ]
    later = log.since(start + timedelta(minutes=1))
    assert [x.opening.reason for x in later] == ["no_sale", "remote"]


def test_a_version_1_database_is_backed_up_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    for migration in MIGRATIONS[:1]:
        for statement in migration.statements:
            db.execute_sql(statement)
    db.execute_sql("PRAGMA user_version = 1")
    applied = migrate(db, backup_dir=tmp_path / "backups")
    assert [m.version for m in applied] == [m.version for m in MIGRATIONS[1:]]
    assert schema_version(db) == MIGRATIONS[-1].version
    DrawerLog(db).record("drawer", DrawerOpening("selftest"))
    assert len(DrawerLog(db).since()) == 1
    db.close()
    assert (tmp_path / "backups" / "before-migration-from-v1.db").exists()
