"""Opening benchmark databases: the appliance's way, and plain sqlite3 for the baselines."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from peewee import SqliteDatabase

from appliance.store.database import PRAGMAS, open_database
from appliance.store.migrations import migrate

# The baselines run with exactly the appliance's pragmas.
RAW_PRAGMAS = tuple(f"PRAGMA {name}={value}" for name, value in PRAGMAS.items())


def open_ours(path: Path) -> SqliteDatabase:
    """A database opened and migrated exactly as the appliance does."""
    db = open_database(path)
    migrate(db)
    return db


def create_migrated(path: Path) -> None:
    """Create a database file with the migrated schema, then close it."""
    open_ours(path).close()


def connect_raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the durability pragmas; transactions are explicit."""
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in RAW_PRAGMAS:
        connection.execute(pragma).fetchall()
    return connection
