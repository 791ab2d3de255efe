"""Opening the SQLite database with the durability the appliance promises."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from peewee import DatabaseError, SqliteDatabase

from appliance.core.storage import StorageState
from appliance.store.migrations import SCHEMA_VERSION
from appliance.store.storage_faults import storage_fault

log = logging.getLogger(__name__)

# A Pi loses power without warning: WAL plus synchronous=FULL makes a commit survive it.
PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "cache_size": -16_000,  # 16 MB page cache keeps a 100k-product catalog hot
    # Checkpoints copy the WAL back into the database; done inside a commit they make
    # that sale wait. The run loop checkpoints while the till is idle (checkpoint());
    # this high mark only bounds the WAL (~32 MB) if the till is never idle.
    "wal_autocheckpoint": 8192,
}


# Told of each disk failure a statement meets: (state, the kernel's or SQLite's words).
FaultListener = Callable[[StorageState, str], None]


class ApplianceDatabase(SqliteDatabase):
    """SQLite with the appliance's pragmas; a disk failure is reported as what it is."""

    fault_listener: FaultListener | None = None

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run a statement; a disk failure is told to the listener before it is raised."""
        try:
            return super().execute_sql(sql, params)  # type: ignore[no-untyped-call]
        except DatabaseError as err:
            notice_fault(self, err)
            raise

    def commit(self) -> None:
        """Commit; a disk failure is told to the listener before it is raised."""
        try:
            super().commit()
        except DatabaseError as err:
            notice_fault(self, err)
            raise

    def rollback(self) -> None:
        """Roll back, unless SQLite already did (after SQLITE_FULL or an I/O error).

        A ROLLBACK then would fail with "no transaction is active" and hide the real error.
        """
        connection = None if self.is_closed() else self.connection()  # type: ignore[no-untyped-call]
        if connection is not None and not connection.in_transaction:
            log.debug("rollback skipped: SQLite already rolled the transaction back")
            return
        super().rollback()


def notice_fault(db: SqliteDatabase, err: BaseException) -> None:
    """Tell `db`'s listener if `err` is a disk failure (full, read-only, I/O error)."""
    listener = getattr(db, "fault_listener", None)
    found = storage_fault(err)
    if listener is not None and found is not None:
        listener(found[0], str(found[1]))


def open_database(path: str | Path) -> ApplianceDatabase:
    """Open (creating the folder if needed) the appliance database with its pragmas.

    A database written by a newer appliance is opened without switching its journal mode
    (that would rewrite its header), so migrate() can refuse it with the file untouched.
    """
    location = Path(path)
    pragmas = PRAGMAS
    if str(location) != ":memory:":
        location.parent.mkdir(parents=True, exist_ok=True)
        if _stored_version(location) > SCHEMA_VERSION:
            log.warning("%s was written by newer software; opening it without changes", location)
            pragmas = {k: v for k, v in PRAGMAS.items() if k != "journal_mode"}
    db = ApplianceDatabase(str(location), pragmas=pragmas, autoconnect=True)
    db.connect(reuse_if_open=True)
    return db


def _stored_version(location: Path) -> int:
    """PRAGMA user_version of an existing file, read without writing; 0 when unknown."""
    if not location.is_file():
        return 0
    try:
        connection = sqlite3.connect(location, timeout=5)
        try:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return 0  # not a database (yet): opening it normally reports what is wrong


def integrity_problems(db: SqliteDatabase) -> list[str]:
    """What `PRAGMA integrity_check` and `foreign_key_check` find; empty when healthy."""
    problems = [row[0] for row in db.execute_sql("PRAGMA integrity_check").fetchall()]
    problems = [p for p in problems if p != "ok"]
    for table, rowid, parent, _ in db.execute_sql("PRAGMA foreign_key_check").fetchall():
        problems.append(f"{table} row {rowid} points to a missing {parent} row")
    return problems


def checkpoint(db: SqliteDatabase) -> bool:
    """Copy committed WAL pages into the database without blocking anyone; True if all went."""
    busy, _log_pages, _copied = db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return not busy
