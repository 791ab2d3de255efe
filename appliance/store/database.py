"""Opening the SQLite database with the durability the appliance promises."""

from __future__ import annotations

import logging
from pathlib import Path

from peewee import SqliteDatabase

log = logging.getLogger(__name__)

# A Pi loses power without warning: WAL plus synchronous=FULL makes a commit survive it.
PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "cache_size": -16_000,  # 16 MB page cache keeps a 100k-product catalog hot
}


def open_database(path: str | Path) -> SqliteDatabase:
    """Open (creating the folder if needed) the appliance database with its pragmas."""
    location = Path(path)
    if str(location) != ":memory:":
        location.parent.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(str(location), pragmas=PRAGMAS, autoconnect=True)
    db.connect(reuse_if_open=True)
    return db


def integrity_problems(db: SqliteDatabase) -> list[str]:
    """What `PRAGMA integrity_check` and `foreign_key_check` find; empty when healthy."""
    problems = [row[0] for row in db.execute_sql("PRAGMA integrity_check").fetchall()]
    problems = [p for p in problems if p != "ok"]
    for table, rowid, parent, _ in db.execute_sql("PRAGMA foreign_key_check").fetchall():
        problems.append(f"{table} row {rowid} points to a missing {parent} row")
    return problems
