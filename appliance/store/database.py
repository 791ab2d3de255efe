"""Opening the SQLite database with the durability the appliance promises."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from peewee import SqliteDatabase

from appliance.store.migrations import SCHEMA_VERSION

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


def open_database(path: str | Path) -> SqliteDatabase:
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
    db = SqliteDatabase(str(location), pragmas=pragmas, autoconnect=True)
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
