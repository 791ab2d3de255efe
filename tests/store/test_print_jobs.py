"""The print queue's jobs are kept in SQLite: across a restart, under one id, with their paper."""

from __future__ import annotations

from pathlib import Path

from peewee import SqliteDatabase

from appliance.core.devices import DrawerOpening
from appliance.store.database import open_database
from appliance.store.drawer_log import DrawerLog
from appliance.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from appliance.store.print_jobs import PrintJobs
from tests.drivers.test_escpos_printer import receipt


def test_a_job_keeps_its_id_and_receipt_through_its_states(db: SqliteDatabase) -> None:
    jobs = PrintJobs(db)
    paper = receipt(1)
    first = jobs.add("receipts", paper)
    second = jobs.add("receipts", receipt(2).as_copy())
    assert second.id == first.id + 1
    jobs.set_state(first.id, "printing")
    jobs.set_state(first.id, "queued", "paper out")
    jobs.set_state(first.id, "printing")
    kept = jobs.get(first.id)
    assert kept is not None
    assert (kept.state, kept.attempts, kept.reason) == ("printing", 2, "")
    assert kept.receipt == paper
    assert jobs.get(second.id).receipt.copy  # type: ignore[union-attr]
    assert [j.id for j in jobs.unfinished("receipts")] == [first.id, second.id]
    assert jobs.unfinished("other") == []
    jobs.set_state(first.id, "uncertain", "connection lost")
    jobs.set_state(second.id, "printed")
    assert jobs.unfinished("receipts") == []
    assert [j.id for j in jobs.recent(10)] == [second.id, first.id]
    assert [j.id for j in jobs.of_state("uncertain")] == [first.id]
    assert jobs.get(999) is None


def test_queued_jobs_survive_reopening_the_database(db_path: Path) -> None:
    db = open_database(db_path)
    migrate(db)
    paper = receipt(7)
    job = PrintJobs(db).add("receipts", paper)
    db.close()
    again = open_database(db_path)
    [kept] = PrintJobs(again).unfinished("receipts")
    assert (kept.id, kept.state, kept.receipt) == (job.id, "queued", paper)
    again.close()


def test_prune_forgets_only_old_finished_jobs(db: SqliteDatabase) -> None:
    jobs = PrintJobs(db)
    ids = [jobs.add("receipts", receipt(n)).id for n in range(1, 6)]
    for job_id in ids[:4]:
        jobs.set_state(job_id, "printed")
    jobs.set_state(ids[1], "uncertain")
    assert jobs.prune(keep=1) == 2  # printed 1 and 3 go; 4 is the newest printed
    assert sorted(j.id for j in jobs.recent(10)) == [ids[1], ids[3], ids[4]]


def test_version_9_keeps_drawer_openings_and_allows_by_hand(tmp_path: Path) -> None:
    db = open_database(tmp_path / "v8.db")
    for migration in MIGRATIONS[:8]:
        for statement in migration.statements:
            db.execute_sql(statement)
    db.execute_sql("PRAGMA user_version = 8")
    db.execute_sql(
        "INSERT INTO drawer_opening (device, reason, staff, reference, opened_at)"
        " VALUES ('drawer', 'no_sale', 'Ana', '', '2026-11-22T09:00:00+00:00')"
    )
    assert [m.version for m in migrate(db)] == [m.version for m in MIGRATIONS[8:]]
    assert schema_version(db) == SCHEMA_VERSION
    log = DrawerLog(db)
    log.record("drawer", DrawerOpening("by_hand"))
    assert [(x.opening.reason, x.opening.staff) for x in log.since()] == [
        ("no_sale", "Ana"),
        ("by_hand", ""),
    ]
    db.close()
