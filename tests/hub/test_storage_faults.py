"""Naming database faults from the errors real drivers raise, and saying each once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peewee import Database, DatabaseError

from hub.db import HubDatabaseError, open_hub_database
from hub.ingest import SalesIngest
from hub.storage_faults import StorageFault, StorageWatch, driver_message, storage_fault
from tests.broker import free_port
from tests.hub.test_ingest import batch, sqlite_hub
from tests.postgres import PostgresCluster


@pytest.fixture(scope="module")
def pg(postgres: PostgresCluster) -> Iterator[Database]:
    """A PostgreSQL database to raise errors in."""
    db = open_hub_database(postgres.new_database())
    yield db
    db.close()


def raised_by(db: Database, sql: str) -> DatabaseError:
    """The peewee error `sql` raises, as the hub's code would catch it."""
    with pytest.raises(DatabaseError) as caught:
        db.execute_sql(sql)
    return caught.value


def test_a_sqlite_database_at_its_size_limit_is_named_full(tmp_path: Path) -> None:
    db = sqlite_hub(tmp_path / "hub.db")
    try:
        pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
        db.execute_sql(f"PRAGMA max_page_count = {pages}")  # this connection: no room left
        with pytest.raises(DatabaseError) as caught:
            SalesIngest(db).ingest("kiosk-1", batch("kiosk-1", range(1, 50)))
    finally:
        db.close()
    # SQLite rolls the transaction back itself: peewee's ROLLBACK then fails on top of it.
    assert storage_fault(caught.value) is StorageFault.FULL
    assert driver_message(caught.value) == "database or disk is full"


@pytest.mark.parametrize(
    ("condition", "fault"),
    [
        ("disk_full", StorageFault.FULL),
        ("io_error", StorageFault.IO_ERROR),
        ("admin_shutdown", StorageFault.UNREACHABLE),
        ("connection_failure", StorageFault.UNREACHABLE),
        ("unique_violation", None),
        ("raise_exception", None),
    ],
)
def test_postgresql_errors_are_named_by_their_sqlstate(
    pg: Database, condition: str, fault: StorageFault | None
) -> None:
    err = raised_by(pg, f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{condition}'; END $$")
    assert storage_fault(err) is fault


def test_a_postgresql_server_that_is_not_there_is_unreachable() -> None:
    with pytest.raises(HubDatabaseError) as caught:
        open_hub_database(f"postgresql://hub@127.0.0.1:{free_port()}/hub")
    assert storage_fault(caught.value) is StorageFault.UNREACHABLE
    assert "Connection refused" in driver_message(caught.value)


def test_an_error_of_the_query_itself_is_no_storage_fault(pg: Database) -> None:
    assert storage_fault(raised_by(pg, "SELECT * FROM no_such_table")) is None


class StepClock:
    """Monotonic time the test advances."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        """Not used by the watch."""
        return datetime(2030, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        """The time the test set."""
        return self.t


def test_a_fault_is_logged_once_until_it_ends_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hub")
    clock = StepClock()
    watch = StorageWatch("w1", clock)
    full = OSError("database or disk is full")
    assert watch.succeeded() is False
    for _ in range(5):
        watch.failed(StorageFault.FULL, full)
    clock.t = 42.0
    watch.failed(StorageFault.UNREACHABLE, OSError("refused"))  # a new fault: said again
    assert watch.fault is StorageFault.UNREACHABLE
    assert watch.succeeded() is True
    assert watch.succeeded() is False
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [level for level, _ in said] == [logging.ERROR, logging.ERROR, logging.WARNING]
    assert "database full (database or disk is full)" in said[0][1]
    assert "database unreachable (refused)" in said[1][1]
    assert "after 42 s" in said[2][1] and "6 message(s) failed" in said[2][1]
