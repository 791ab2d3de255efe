"""A store's lock in the hub database: one writer at a time for what is counted per store.

SQLite serialises every writer already (BEGIN IMMEDIATE), so there is nothing to take.
PostgreSQL takes an advisory lock per store, held until the transaction ends: a catalog
version, a stock movement and the stock levels a sales batch reports are then made one
after another, each seeing what the one before committed.
"""

from __future__ import annotations

import hashlib

from peewee import Database

from hub.db import is_sqlite


def store_lock_key(store: str) -> int:
    """The advisory lock key of a store: a signed 64-bit hash of its name."""
    digest = hashlib.blake2b(f"catalog:{store}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_store(db: Database, store: str) -> None:
    """Take `store`'s lock in the current transaction (PostgreSQL); held until it ends."""
    if not is_sqlite(db):
        db.execute_sql(f"SELECT pg_advisory_xact_lock({db.param})", (store_lock_key(store),))
