"""Every drawer opening is recorded with its reason, and v1 databases gain the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from peewee import SqliteDatabase

from appliance.core.devices import DrawerOpening
from appliance.errors import StoreError
from appliance.store.database import open_database
from appliance.store.drawer_log import DrawerLog
from appliance.store.journal import FiscalJournal
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


def test_each_opening_is_journalled_with_it_and_by_hand_is_flagged(db: SqliteDatabase) -> None:
    log = DrawerLog(db)
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    sale = log.record("drawer", DrawerOpening("sale", reference="sale-1"), at=start)
    hand = log.record("drawer", DrawerOpening("by_hand"), at=start + timedelta(minutes=3))
    log.record("drawer", DrawerOpening("no_sale", staff="Ana"), at=start + timedelta(minutes=5))
    assert not sale.unexplained and hand.unexplained
    assert [x.id for x in log.unexplained()] == [hand.id]
    assert log.unexplained(start + timedelta(minutes=4)) == []
    assert [x.opening.reason for x in log.since(start, start + timedelta(minutes=4))] == [
        "sale",
        "by_hand",
    ]
    journal = FiscalJournal(db)
    entries = [e for e in journal.entries() if e.kind == "drawer"]
    assert [json.loads(e.body) for e in entries][1] == {
        "id": hand.id,
        "device": "drawer",
        "reason": "by_hand",
        "staff": "",
        "reference": "",
        "opened_at": "2026-11-22T09:03:00+00:00",
        "unexplained": True,
    }
    assert len(entries) == 3 and journal.verify().ok


def test_an_opening_and_its_journal_entry_commit_together(db: SqliteDatabase) -> None:
    db.execute_sql(
        "CREATE TRIGGER no_journal BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'x'); END"
    )
    with pytest.raises(StoreError):
        DrawerLog(db).record("drawer", DrawerOpening("by_hand"))
    assert DrawerLog(db).since() == []
